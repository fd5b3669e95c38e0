//! The Cleanup side of a backend's life, when the object is deleted.
//!
//! `Retain` leaves AWS as it is. `Delete` removes the bucket only when it holds no object
//! versions at all; until then NOTHING is deleted (the key above all: deleting it would
//! make the remaining state unreadable), the condition `DeletionBlocked` says how many
//! versions remain, and the finalizer stays. Only resources carrying this object's
//! ownership tags are touched. Works whether or not Apply ever ran.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use crate::api::{DeletionPolicy, Reason, TerraformStateBackend};
use crate::aws::{AwsClients, AwsError, Tags, dynamodb, iam, kms, s3};
use crate::context::Context;

use super::backend::{event, owner_of};
use super::desired::{DesiredKey, INLINE_POLICY_NAME, Owner, TAG_OWNER_UID, desired_key};
use super::error::ReconcileError;
use super::status::{self, PartState, StatusReport, next_status};
use super::validate::{ObjectRef, ValidSpec, validate};

/// How many versions are counted at most for the DeletionBlocked message.
const COUNT_LIMIT: u64 = 10_000;

/// Cleans up a deleted backend according to its deletion policy.
pub async fn cleanup_backend(obj: &TerraformStateBackend, ctx: &Context) -> Result<Action, ReconcileError> {
    if obj.spec.deletion_policy == DeletionPolicy::Retain {
        let note = "deletionPolicy Retain: the AWS resources are left as they are";
        event(ctx, obj, EventType::Normal, Reason::Deleting, note.into()).await;
        let key = format!(
            "{}/{}",
            obj.metadata.namespace.as_deref().unwrap_or_default(),
            obj.metadata.name.as_deref().unwrap_or_default()
        );
        ctx.metrics.set_ready(&key, None);
        return Ok(Action::await_change());
    }
    let owner = owner_of(obj)?;
    let target = ObjectRef { namespace: &owner.namespace, name: &owner.name };
    let Ok(valid) = validate(target, &obj.spec, &ctx.config.defaults) else {
        // An invalid spec never reached AWS (validation comes first), so there is
        // nothing this object could have created under it.
        return Ok(Action::await_change());
    };
    let aws = ctx.aws.clients(&valid.region);

    let versions = bucket_versions(&aws, &valid.bucket, &owner).await?;
    if let Some(versions) = versions.filter(|n| *n > 0) {
        let err = ReconcileError::DeletionBlocked { bucket: valid.bucket.clone(), versions };
        let message = format!(
            "{err}: delete them (or set deletionPolicy: Retain) to let the deletion finish; nothing has been deleted"
        );
        let mut report = StatusReport::default();
        for t in status::PARTS {
            report.parts.insert(t, PartState::not_ready(Reason::DeletionBlocked, message.clone()));
        }
        report.kms_key_arn = obj.status.as_ref().and_then(|s| s.kms_key_arn.clone());
        let api: Api<TerraformStateBackend> = Api::namespaced(ctx.client.clone(), &owner.namespace);
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let status = next_status(obj.status.as_ref(), obj.metadata.generation.unwrap_or(0), report, &now);
        if status::write(&api, &owner.name, obj.status.as_ref(), &status).await? {
            event(ctx, obj, EventType::Warning, Reason::DeletionBlocked, message).await;
        }
        return Err(err);
    }

    delete_owned(ctx, &aws, &valid, &owner, obj, versions.is_some()).await?;
    ctx.metrics.set_ready(&format!("{}/{}", owner.namespace, owner.name), None);
    event(
        ctx,
        obj,
        EventType::Normal,
        Reason::Deleting,
        "deletionPolicy Delete: the AWS resources were deleted".into(),
    )
    .await;
    Ok(Action::await_change())
}

/// Object versions and delete markers left in our bucket; `None` when there is no bucket
/// of ours (gone, someone else's, or another account's).
async fn bucket_versions(aws: &AwsClients, bucket: &str, owner: &Owner) -> Result<Option<u64>, AwsError> {
    match s3::get_tags(&aws.s3, bucket).await {
        Ok(Some(tags)) if owned(&tags, owner) => s3::count_versions(&aws.s3, bucket, COUNT_LIMIT).await.map(Some),
        Ok(_) => Ok(None),
        Err(e) if e.kind == crate::aws::AwsErrorKind::AccessDenied => Ok(None),
        Err(e) => Err(e),
    }
}

fn owned(tags: &Tags, owner: &Owner) -> bool {
    tags.get(TAG_OWNER_UID) == Some(&owner.uid)
}

async fn delete_owned(
    ctx: &Context,
    aws: &AwsClients,
    valid: &ValidSpec,
    owner: &Owner,
    obj: &TerraformStateBackend,
    our_bucket: bool,
) -> Result<(), ReconcileError> {
    if our_bucket {
        s3::delete_bucket(&aws.s3, &valid.bucket).await?;
    }
    if let Some(table) = &valid.lock_table
        && let Some(info) = dynamodb::describe(&aws.dynamodb, &table.name).await?
    {
        let settings = dynamodb::get_settings(&aws.dynamodb, &table.name, &info.arn).await?;
        if owned(&settings.tags, owner) {
            if info.deletion_protection {
                dynamodb::update(&aws.dynamodb, &table.name, Some(false), None, false).await?;
            }
            dynamodb::delete(&aws.dynamodb, &table.name).await?;
        }
    }
    if let Some(role) = iam::get_role(&aws.iam, &valid.role.name).await?
        && owned(&role.tags, owner)
    {
        iam::delete_role(&aws.iam, &valid.role.name, INLINE_POLICY_NAME).await?;
    }
    let id = ctx.identity(aws).await?;
    if let DesiredKey::Managed { alias, deletion_window_days, .. } = desired_key(valid, &id, owner) {
        let known = obj.status.as_ref().and_then(|s| s.kms_key_arn.clone());
        let key = match kms::describe_key(&aws.kms, &alias).await? {
            Some(k) => Some(k),
            None => match known {
                Some(arn) => kms::describe_key(&aws.kms, &arn).await?,
                None => None,
            },
        };
        if let Some(key) = key
            && owned(&kms::get_tags(&aws.kms, &key.key_id).await?, owner)
        {
            kms::delete_alias(&aws.kms, &alias).await?;
            if key.state != "PendingDeletion" {
                kms::schedule_deletion(&aws.kms, &key.key_id, deletion_window_days).await?;
            }
        }
    }
    Ok(())
}
