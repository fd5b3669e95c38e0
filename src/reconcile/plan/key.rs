//! The KMS key's plan.

use crate::api::Reason;
use crate::aws::Tags;
use crate::reconcile::desired::{DesiredKey, Owner, TAG_OWNER_UID};
use crate::reconcile::observe::ObservedKey;

use super::{Blocked, PartPlan, check_ownership, comparable_tags, policy_matches};

/// A write to the managed key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyChange {
    /// CreateKey (with policy and tags), then the alias and rotation.
    Create,
    /// Cancel a scheduled deletion.
    CancelDeletion,
    /// Enable the disabled key.
    Enable,
    /// Point the alias at the key (created, or moved when it points at a key that is gone).
    SetAlias,
    /// Turn rotation on.
    EnableRotation,
    /// Put the key policy.
    PutPolicy,
    /// Make the tags exactly the desired ones.
    SyncTags,
}

/// Plans the key. For an existing key, checks that it is usable and plans nothing.
pub fn plan_key(
    desired: &DesiredKey,
    observed: &ObservedKey,
    tags: &Tags,
    owner: &Owner,
    adopt: bool,
) -> PartPlan<KeyChange> {
    match (desired, observed) {
        (DesiredKey::None, _) => Ok(vec![]),
        (DesiredKey::Existing { arn }, ObservedKey::Existing { info, tags }) => match info {
            None => Err(Blocked {
                reason: Reason::DependencyNotReady,
                message: format!(
                    "KMS key {arn} does not exist or is not visible to the operator: check spec.encryption.kmsKey.existingKeyArn"
                ),
            }),
            Some(i) if !i.symmetric_encrypt_decrypt => Err(Blocked {
                reason: Reason::DependencyNotReady,
                message: format!("KMS key {arn} is not a symmetric encryption key, which S3 and DynamoDB need"),
            }),
            Some(i) if !i.is_enabled() => Err(Blocked {
                reason: Reason::DependencyNotReady,
                message: format!("KMS key {arn} is {}: enable it (or cancel its deletion) to use it", i.state),
            }),
            // Another backend's managed key: using it would grant this object's runners
            // the decryption of that backend's state.
            Some(_) if tags.as_ref().is_some_and(|t| t.get(TAG_OWNER_UID).is_some_and(|uid| *uid != owner.uid)) => {
                Err(Blocked {
                    reason: Reason::Conflict,
                    message: format!(
                        "KMS key {arn} is managed by another TerraformStateBackend; it is not used: \
                         choose a key of your own in spec.encryption.kmsKey.existingKeyArn"
                    ),
                })
            }
            Some(_) => Ok(vec![]),
        },
        (DesiredKey::Managed { .. }, ObservedKey::Missing) => Ok(vec![KeyChange::Create]),
        (DesiredKey::Managed { policy, alias, .. }, ObservedKey::Found { info, has_alias, settings }) => {
            check_ownership(&format!("KMS key {} (alias {alias})", info.arn), &settings.tags, owner, adopt)?;
            let mut changes = Vec::new();
            match info.state.as_str() {
                "PendingDeletion" => changes.extend([KeyChange::CancelDeletion, KeyChange::Enable]),
                "Disabled" => changes.push(KeyChange::Enable),
                _ => {}
            }
            if !has_alias {
                changes.push(KeyChange::SetAlias);
            }
            if !settings.rotation_enabled {
                changes.push(KeyChange::EnableRotation);
            }
            if !policy_matches(settings.policy.as_deref(), policy) {
                changes.push(KeyChange::PutPolicy);
            }
            if comparable_tags(&settings.tags) != *tags {
                changes.push(KeyChange::SyncTags);
            }
            Ok(changes)
        }
        // Observe always answers in the shape of the desired key.
        (_, other) => Err(Blocked {
            reason: Reason::AwsError,
            message: format!("internal error: key observed as {other:?} for a different desired key"),
        }),
    }
}
