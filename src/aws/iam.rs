//! IAM: thin typed wrappers for the runners' role and its inline policy.

use aws_sdk_iam::Client;
use aws_sdk_iam::types::Tag;

use super::error::{AwsError, Context, build_error, optional};
use super::{Tags, tag_diff};

const IAM: &str = "iam";

/// The role as observed (GetRole carries trust policy, settings and tags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleInfo {
    /// Role ARN.
    pub arn: String,
    /// Trust policy, as IAM returns it (URL-encoded JSON).
    pub trust_policy: String,
    /// Maximum session duration, seconds.
    pub max_session_duration: i32,
    /// Permissions boundary ARN.
    pub permissions_boundary_arn: Option<String>,
    /// Tags.
    pub tags: Tags,
}

/// GetRole; `None` when the role does not exist.
pub async fn get_role(c: &Client, name: &str) -> Result<Option<RoleInfo>, AwsError> {
    let out = optional(c.get_role().role_name(name).send().await.ctx(IAM, "GetRole"))?;
    Ok(out.and_then(|o| o.role().cloned()).map(|r| RoleInfo {
        arn: r.arn().to_string(),
        trust_policy: r.assume_role_policy_document().unwrap_or_default().to_string(),
        max_session_duration: r.max_session_duration().unwrap_or(3600),
        permissions_boundary_arn: r
            .permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn())
            .map(str::to_string),
        tags: r.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect(),
    }))
}

/// GetRolePolicy; `None` when the inline policy does not exist. URL-encoded JSON.
pub async fn get_inline_policy(c: &Client, role: &str, policy_name: &str) -> Result<Option<String>, AwsError> {
    let out =
        optional(c.get_role_policy().role_name(role).policy_name(policy_name).send().await.ctx(IAM, "GetRolePolicy"))?;
    Ok(out.map(|o| o.policy_document().to_string()))
}

/// Creates the role.
#[allow(clippy::too_many_arguments)] // one per CreateRole parameter the operator sets
pub async fn create_role(
    c: &Client,
    name: &str,
    path: &str,
    description: &str,
    trust_json: &str,
    max_session_duration: i32,
    boundary: Option<&str>,
    tags: &Tags,
) -> Result<String, AwsError> {
    let out = c
        .create_role()
        .role_name(name)
        .path(path)
        .description(description)
        .assume_role_policy_document(trust_json)
        .max_session_duration(max_session_duration)
        .set_permissions_boundary(boundary.map(str::to_string))
        .set_tags(Some(sdk_tags(tags)?))
        .send()
        .await
        .ctx(IAM, "CreateRole")?;
    Ok(out.role().map(|r| r.arn().to_string()).unwrap_or_default())
}

/// Replaces the trust policy.
pub async fn update_trust(c: &Client, name: &str, trust_json: &str) -> Result<(), AwsError> {
    c.update_assume_role_policy()
        .role_name(name)
        .policy_document(trust_json)
        .send()
        .await
        .ctx(IAM, "UpdateAssumeRolePolicy")?;
    Ok(())
}

/// Changes the maximum session duration.
pub async fn update_max_session(c: &Client, name: &str, seconds: i32) -> Result<(), AwsError> {
    c.update_role().role_name(name).max_session_duration(seconds).send().await.ctx(IAM, "UpdateRole").map(|_| ())
}

/// Sets or removes the permissions boundary.
pub async fn set_boundary(c: &Client, name: &str, boundary: Option<&str>) -> Result<(), AwsError> {
    match boundary {
        Some(arn) => c
            .put_role_permissions_boundary()
            .role_name(name)
            .permissions_boundary(arn)
            .send()
            .await
            .ctx(IAM, "PutRolePermissionsBoundary")
            .map(|_| ()),
        None => optional(
            c.delete_role_permissions_boundary().role_name(name).send().await.ctx(IAM, "DeleteRolePermissionsBoundary"),
        )
        .map(|_| ()),
    }
}

/// Creates or replaces the inline policy.
pub async fn put_inline_policy(c: &Client, role: &str, policy_name: &str, json: &str) -> Result<(), AwsError> {
    c.put_role_policy()
        .role_name(role)
        .policy_name(policy_name)
        .policy_document(json)
        .send()
        .await
        .ctx(IAM, "PutRolePolicy")?;
    Ok(())
}

/// Makes the role's tags exactly `desired`.
pub async fn sync_tags(c: &Client, name: &str, current: &Tags, desired: &Tags) -> Result<(), AwsError> {
    let diff = tag_diff(current, desired);
    if !diff.set.is_empty() {
        c.tag_role().role_name(name).set_tags(Some(sdk_tags(&diff.set)?)).send().await.ctx(IAM, "TagRole")?;
    }
    if !diff.remove.is_empty() {
        c.untag_role().role_name(name).set_tag_keys(Some(diff.remove)).send().await.ctx(IAM, "UntagRole")?;
    }
    Ok(())
}

/// Deletes the inline policy (not found is fine).
pub async fn delete_inline_policy(c: &Client, role: &str, policy_name: &str) -> Result<(), AwsError> {
    optional(c.delete_role_policy().role_name(role).policy_name(policy_name).send().await.ctx(IAM, "DeleteRolePolicy"))
        .map(|_| ())
}

/// Deletes the inline policy and then the role (not found is fine).
pub async fn delete_role(c: &Client, name: &str, policy_name: &str) -> Result<(), AwsError> {
    delete_inline_policy(c, name, policy_name).await?;
    optional(c.delete_role().role_name(name).send().await.ctx(IAM, "DeleteRole")).map(|_| ())
}

fn sdk_tags(tags: &Tags) -> Result<Vec<Tag>, AwsError> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| build_error(IAM, "TagRole", e))
}
