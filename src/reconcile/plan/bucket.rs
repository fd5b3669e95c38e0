//! The state bucket's plan.

use crate::api::Reason;
use crate::aws::Tags;
use crate::aws::s3::{BucketSettings, DefaultEncryption};
use crate::reconcile::desired::{DesiredBucket, Owner};
use crate::reconcile::observe::ObservedBucket;

use super::{Blocked, PartPlan, check_ownership, comparable_tags, policy_matches};

/// A write to the bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BucketChange {
    /// CreateBucket (BucketOwnerEnforced, tagged in the same call), then every setting
    /// below but the tags.
    Create,
    /// Adopt an untagged bucket (`spec.adoptExisting`): write this object's tags, if it is
    /// still untagged then, and nothing else. Its settings and the runners' grant wait for a
    /// later pass to read the tags back as this object's.
    Adopt,
    /// Replace the tags.
    PutTags,
    /// Turn versioning on.
    EnableVersioning,
    /// Set default encryption.
    PutEncryption,
    /// Block all public access.
    PutPublicAccessBlock,
    /// Object ownership BucketOwnerEnforced.
    EnforceBucketOwner,
    /// Replace the lifecycle rules.
    PutLifecycle,
    /// Replace the bucket policy.
    PutPolicy,
    /// Set access logging.
    PutLogging,
}

/// Every setting change a freshly created bucket needs (its tags came with CreateBucket).
pub const AFTER_CREATE: [BucketChange; 6] = [
    BucketChange::EnableVersioning,
    BucketChange::PutEncryption,
    BucketChange::PutPublicAccessBlock,
    BucketChange::PutLifecycle,
    BucketChange::PutPolicy,
    BucketChange::PutLogging,
];

/// `plan` unless it adopts a bucket that another backend's status records as its state or
/// replica bucket (`recorded_by_another`): an outside tool removed its tags, and it still
/// holds that backend's state, or copies of it. Then a `Conflict`, and nothing is written.
pub fn refuse_recorded_adoption(
    plan: PartPlan<BucketChange>,
    what: &str,
    recorded_by_another: bool,
) -> PartPlan<BucketChange> {
    match plan {
        Ok(c) if recorded_by_another && c == [BucketChange::Adopt] => Err(Blocked {
            reason: Reason::Conflict,
            message: format!(
                "{what} carries no ownership tags, but another TerraformStateBackend records it as its state or \
                 replica bucket (its tags were removed): it is left untouched. Choose another name, or have its tags \
                 restored"
            ),
        }),
        plan => plan,
    }
}

/// Plans the bucket.
pub fn plan_bucket(
    desired: &DesiredBucket,
    observed: &ObservedBucket,
    tags: &Tags,
    owner: &Owner,
    adopt: bool,
) -> PartPlan<BucketChange> {
    let what = format!("S3 bucket {}", desired.name);
    let (observed_tags, settings) = match observed {
        ObservedBucket::Missing => {
            let mut changes = vec![BucketChange::Create];
            changes.extend(
                AFTER_CREATE.iter().filter(|c| **c != BucketChange::PutLogging || desired.logging.is_some()).cloned(),
            );
            return Ok(changes);
        }
        ObservedBucket::OtherAccount => {
            return Err(Blocked {
                reason: Reason::Conflict,
                message: format!(
                    "{what} belongs to another AWS account (bucket names are global): choose another name"
                ),
            });
        }
        ObservedBucket::Exists { tags, settings } => (tags, settings),
    };
    check_ownership(&what, observed_tags, owner, adopt)?;
    // Adoption is a claim first. Tags are the only ownership S3 knows and have no
    // conditional write: two objects adopting the same untagged bucket at once would both
    // write settings and grant their runners access to whatever the bucket holds. So only
    // the tags now; whichever object's tags the next pass reads back is the owner.
    if !owner.owns(observed_tags) {
        return Ok(vec![BucketChange::Adopt]);
    }
    let Some(s) = settings else {
        return Err(Blocked {
            reason: Reason::AwsError,
            message: format!("internal error: settings of {what} were not read"),
        });
    };
    let mut changes = Vec::new();
    if comparable_tags(observed_tags) != *tags {
        changes.push(BucketChange::PutTags);
    }
    changes.extend(settings_changes(desired, s));
    Ok(changes)
}

fn settings_changes(desired: &DesiredBucket, s: &BucketSettings) -> Vec<BucketChange> {
    let mut changes = Vec::new();
    if !s.versioning_enabled {
        changes.push(BucketChange::EnableVersioning);
    }
    let encryption_ok = match (&desired.kms_key_arn, &s.encryption) {
        (Some(arn), Some(DefaultEncryption::Kms { key_id: Some(id), bucket_key: true })) => id == arn,
        (None, Some(DefaultEncryption::Aes256 { .. })) => true,
        _ => false,
    };
    if !encryption_ok {
        changes.push(BucketChange::PutEncryption);
    }
    if s.public_access_block != Some(desired.public_access_block) {
        changes.push(BucketChange::PutPublicAccessBlock);
    }
    if s.object_ownership.as_deref() != Some("BucketOwnerEnforced") {
        changes.push(BucketChange::EnforceBucketOwner);
    }
    let mut observed_rules = s.lifecycle.clone();
    observed_rules.sort_by(|a, b| a.id.cmp(&b.id));
    if observed_rules != desired.lifecycle {
        changes.push(BucketChange::PutLifecycle);
    }
    if !policy_matches(s.policy.as_deref(), &desired.policy) {
        changes.push(BucketChange::PutPolicy);
    }
    // Logging is managed only when the spec asks for it: otherwise it is read as None.
    if desired.logging.is_some() && s.logging != desired.logging {
        changes.push(BucketChange::PutLogging);
    }
    changes
}
