//! KMS: thin typed wrappers.

use aws_sdk_kms::Client;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, Tag};

use super::error::{AwsError, Context, build_error, optional};
use super::{Tags, tag_diff};

const KMS: &str = "kms";

/// What DescribeKey says of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// Key ARN.
    pub arn: String,
    /// Key ID.
    pub key_id: String,
    /// KeyState (`Enabled`, `Disabled`, `PendingDeletion`...).
    pub state: String,
    /// Whether the key is a symmetric encryption key (what S3 and DynamoDB need).
    pub symmetric_encrypt_decrypt: bool,
}

impl KeyInfo {
    /// Whether the key can encrypt right now.
    pub fn is_enabled(&self) -> bool {
        self.state == "Enabled"
    }
}

/// Settings of a key the operator manages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySettings {
    /// The `default` key policy.
    pub policy: Option<String>,
    /// Automatic rotation.
    pub rotation_enabled: bool,
    /// Tags.
    pub tags: Tags,
}

/// DescribeKey by ID, ARN, alias name or alias ARN; `None` when it does not exist.
pub async fn describe_key(c: &Client, key: &str) -> Result<Option<KeyInfo>, AwsError> {
    let out = optional(c.describe_key().key_id(key).send().await.ctx(KMS, "DescribeKey"))?;
    Ok(out.and_then(|o| o.key_metadata().cloned()).map(|m| KeyInfo {
        arn: m.arn().unwrap_or_default().to_string(),
        key_id: m.key_id().to_string(),
        state: m.key_state().map(|s| s.as_str().to_string()).unwrap_or_default(),
        // AWS always reports both; a missing one (some emulators) means the default,
        // a symmetric encryption key.
        symmetric_encrypt_decrypt: m.key_spec().is_none_or(|s| *s == KeySpec::SymmetricDefault)
            && m.key_usage().is_none_or(|u| *u == KeyUsageType::EncryptDecrypt),
    }))
}

/// Reads the key policy, rotation status and tags concurrently (3 reads).
pub async fn get_settings(c: &Client, key_id: &str) -> Result<KeySettings, AwsError> {
    let (policy, rotation, tags) = tokio::try_join!(
        async { c.get_key_policy().key_id(key_id).policy_name("default").send().await.ctx(KMS, "GetKeyPolicy") },
        async { c.get_key_rotation_status().key_id(key_id).send().await.ctx(KMS, "GetKeyRotationStatus") },
        get_tags(c, key_id),
    )?;
    Ok(KeySettings {
        policy: policy.policy().map(str::to_string),
        rotation_enabled: rotation.key_rotation_enabled(),
        tags,
    })
}

/// The key's tags (at most 50, so one page).
pub async fn get_tags(c: &Client, key_id: &str) -> Result<Tags, AwsError> {
    let out = c.list_resource_tags().key_id(key_id).send().await.ctx(KMS, "ListResourceTags")?;
    Ok(out.tags().iter().map(|t| (t.tag_key().to_string(), t.tag_value().to_string())).collect())
}

/// Keys (not pending deletion) that carry `tag_key = tag_value`; with `only_unaliased`, only
/// among keys without an alias. The operator looks only there: it searches only to recover
/// from a CreateKey whose answer was lost (a crash, a reset, a timeout) before CreateAlias,
/// and such a key has no alias yet. ListAliases and ListKeys are paged (100 and 1,000 a
/// page), so an account whose keys all have aliases costs a few pages, not a call per key.
pub async fn find_tagged(
    c: &Client,
    tag_key: &str,
    tag_value: &str,
    only_unaliased: bool,
) -> Result<Vec<KeyInfo>, AwsError> {
    let mut aliased = std::collections::HashSet::new();
    if only_unaliased {
        let mut aliases = c.list_aliases().limit(100).into_paginator().send();
        while let Some(page) = aliases.next().await {
            let page = page.ctx(KMS, "ListAliases")?;
            aliased.extend(page.aliases().iter().filter_map(|a| a.target_key_id().map(str::to_string)));
        }
    }
    let mut found = Vec::new();
    let mut pages = c.list_keys().limit(1000).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.ctx(KMS, "ListKeys")?;
        for entry in page.keys() {
            let Some(id) = entry.key_id() else { continue };
            if aliased.contains(id) {
                continue;
            }
            let tags = match get_tags(c, id).await {
                Ok(t) => t,
                // Keys of other teams may deny us; they cannot be ours.
                Err(e) if e.kind == super::AwsErrorKind::AccessDenied => continue,
                Err(e) => return Err(e),
            };
            if tags.get(tag_key).map(String::as_str) == Some(tag_value)
                && let Some(info) = describe_key(c, id).await?
                && info.state != "PendingDeletion"
            {
                found.push(info);
            }
        }
    }
    Ok(found)
}

/// Creates a symmetric encryption key with `policy_json` and `tags`, in one attempt: CreateKey
/// is not idempotent, and an SDK retry after an answer lost on the way (a reset, a timeout, a
/// 5xx after the work was done) would create a second key. A failure is left to the caller:
/// the next pass finds a key that was created after all by its ownership tags.
pub async fn create_key(c: &Client, description: &str, policy_json: &str, tags: &Tags) -> Result<KeyInfo, AwsError> {
    let one_attempt = aws_sdk_kms::config::Builder::default()
        .retry_config(aws_smithy_types::retry::RetryConfig::standard().with_max_attempts(1));
    let out = c
        .create_key()
        .description(description)
        .key_spec(KeySpec::SymmetricDefault)
        .key_usage(KeyUsageType::EncryptDecrypt)
        .policy(policy_json)
        .set_tags(Some(sdk_tags(tags)?))
        .customize()
        .config_override(one_attempt)
        .send()
        .await
        .ctx(KMS, "CreateKey")?;
    let m = out.key_metadata().ok_or_else(|| missing("CreateKey", "KeyMetadata"))?;
    Ok(KeyInfo {
        arn: m.arn().unwrap_or_default().to_string(),
        key_id: m.key_id().to_string(),
        state: m.key_state().map(|s| s.as_str().to_string()).unwrap_or_default(),
        symmetric_encrypt_decrypt: true,
    })
}

/// Points `alias` at `key_id`, creating the alias or moving it.
pub async fn set_alias(c: &Client, alias: &str, key_id: &str, exists: bool) -> Result<(), AwsError> {
    if exists {
        c.update_alias().alias_name(alias).target_key_id(key_id).send().await.ctx(KMS, "UpdateAlias")?;
    } else {
        c.create_alias().alias_name(alias).target_key_id(key_id).send().await.ctx(KMS, "CreateAlias")?;
    }
    Ok(())
}

/// Deletes an alias (not found is fine).
pub async fn delete_alias(c: &Client, alias: &str) -> Result<(), AwsError> {
    optional(c.delete_alias().alias_name(alias).send().await.ctx(KMS, "DeleteAlias")).map(|_| ())
}

/// Turns automatic rotation on.
pub async fn enable_rotation(c: &Client, key_id: &str) -> Result<(), AwsError> {
    c.enable_key_rotation().key_id(key_id).send().await.ctx(KMS, "EnableKeyRotation").map(|_| ())
}

/// Replaces the key policy.
pub async fn put_policy(c: &Client, key_id: &str, policy_json: &str) -> Result<(), AwsError> {
    c.put_key_policy()
        .key_id(key_id)
        .policy_name("default")
        .policy(policy_json)
        .send()
        .await
        .ctx(KMS, "PutKeyPolicy")?;
    Ok(())
}

/// Makes the key's tags exactly `desired` (adds/overwrites, then removes extras).
pub async fn sync_tags(c: &Client, key_id: &str, current: &Tags, desired: &Tags) -> Result<(), AwsError> {
    let diff = tag_diff(current, desired);
    if !diff.set.is_empty() {
        c.tag_resource().key_id(key_id).set_tags(Some(sdk_tags(&diff.set)?)).send().await.ctx(KMS, "TagResource")?;
    }
    if !diff.remove.is_empty() {
        c.untag_resource().key_id(key_id).set_tag_keys(Some(diff.remove)).send().await.ctx(KMS, "UntagResource")?;
    }
    Ok(())
}

/// Schedules the key's deletion after `days` (7-30).
pub async fn schedule_deletion(c: &Client, key_id: &str, days: i32) -> Result<(), AwsError> {
    c.schedule_key_deletion()
        .key_id(key_id)
        .pending_window_in_days(days)
        .send()
        .await
        .ctx(KMS, "ScheduleKeyDeletion")?;
    Ok(())
}

fn sdk_tags(tags: &Tags) -> Result<Vec<Tag>, AwsError> {
    tags.iter()
        .map(|(k, v)| Tag::builder().tag_key(k).tag_value(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| build_error(KMS, "TagResource", e))
}

fn missing(operation: &'static str, what: &str) -> AwsError {
    AwsError {
        resource: None,
        service: KMS,
        operation,
        code: "IncompleteResponse".into(),
        message: format!("the response has no {what}"),
        kind: super::AwsErrorKind::Transient,
    }
}

/// Cancels a scheduled deletion (the key is left Disabled).
pub async fn cancel_deletion(c: &Client, key_id: &str) -> Result<(), AwsError> {
    c.cancel_key_deletion().key_id(key_id).send().await.ctx(KMS, "CancelKeyDeletion").map(|_| ())
}

/// Enables a disabled key.
pub async fn enable_key(c: &Client, key_id: &str) -> Result<(), AwsError> {
    c.enable_key().key_id(key_id).send().await.ctx(KMS, "EnableKey").map(|_| ())
}

/// Whether KMS answered CreateKey with a refusal worth retrying at once: a key policy whose
/// principals it cannot resolve yet, throttling, a 5xx. Not a transport failure (no answer:
/// the key may have been created).
fn answered_without_creating(e: &AwsError) -> bool {
    e.code == "MalformedPolicyDocumentException"
        || (e.kind == super::AwsErrorKind::Transient && e.code != "TransportError")
}

/// CreateKey, retried in the pass (0.5 s, 1 s, 2 s, 4 s) on answers KMS gave: refusals that
/// prove nothing was created (`MalformedPolicyDocumentException`: the key policy names the
/// runner role, created moments ago, and KMS refuses principals it cannot resolve yet; AWS
/// documents retrying), throttling and 5xx (which the AWS SDKs retry for every operation).
/// Waiting here rather than failing the pass spares the next pass the search for a
/// half-created key. A failure without an answer (a reset, a timeout: the key may exist) is
/// returned, and the next pass looks for the key by its tags before creating one.
pub async fn create_key_once_principals_resolve(
    c: &Client,
    description: &str,
    policy: &str,
    tags: &Tags,
    within: std::time::Duration,
) -> Result<KeyInfo, AwsError> {
    let started = tokio::time::Instant::now();
    let mut delay = std::time::Duration::from_millis(500);
    loop {
        match create_key(c, description, policy, tags).await {
            Err(e) if answered_without_creating(&e) && started.elapsed() + delay <= within => {
                tracing::debug!(error = %e, retry_in = ?delay, "CreateKey refused before creating anything; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
}
