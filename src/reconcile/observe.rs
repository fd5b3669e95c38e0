//! Step 3, AWS reads only: what exists now. The resources are read concurrently; a
//! converged backend costs 16 reads (17 with access logging, 4 more with an audit trail)
//! and nothing else.

use crate::aws::cloudtrail::{self, TrailInfo, TrailSettings};
use crate::aws::dynamodb::{self, TableInfo, TableSettings};
use crate::aws::iam::{self, RoleInfo};
use crate::aws::kms::{self, KeyInfo, KeySettings};
use crate::aws::s3::{self, BucketSettings};
use crate::aws::{AwsClients, AwsError, AwsErrorKind, Tags};

use super::desired::{DesiredKey, INLINE_POLICY_NAME, Owner, TAG_OWNER_UID};
use super::validate::ValidSpec;

/// What the previous reconciles left in status that helps finding the key.
#[derive(Clone, Debug, Default)]
pub struct KeyHints {
    /// `status.kmsKeyArn`: the key created earlier (found even if its alias was deleted).
    pub known_arn: Option<String>,
    /// `status.creationStartedAt` is set: a crash may have left a key without its alias
    /// (it carries our tags: CreateKey tags it in the same call).
    pub creation_started: bool,
    /// The operator's AWS account: the tags of an existing key are read only in it (KMS
    /// does not list the tags of another account's key).
    pub account_id: String,
}

/// The KMS key as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObservedKey {
    /// SSE-S3: no key is involved.
    NotNeeded,
    /// The existing key named by the spec.
    Existing {
        /// DescribeKey (`None`: it does not exist or is not visible).
        info: Option<KeyInfo>,
        /// Its tags, when it is in the operator's account (`None` otherwise): a key that
        /// carries another backend's ownership tags is not this object's to use.
        tags: Option<Tags>,
    },
    /// No managed key was found.
    Missing,
    /// The managed key.
    Found {
        /// DescribeKey.
        info: KeyInfo,
        /// Whether it was found through its alias (otherwise the alias is missing).
        has_alias: bool,
        /// Policy, rotation, tags.
        settings: KeySettings,
    },
}

/// The bucket as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObservedBucket {
    /// No bucket of that name (in any account we can see).
    Missing,
    /// The name belongs to another AWS account.
    OtherAccount,
    /// The bucket exists; its settings are read only when it is (or may become) ours.
    Exists {
        /// Tags.
        tags: Tags,
        /// Managed settings, when read.
        settings: Option<BucketSettings>,
    },
}

/// The role as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedRole {
    /// GetRole.
    pub info: RoleInfo,
    /// The inline policy document (URL-encoded JSON).
    pub inline_policy: Option<String>,
}

/// The lock table as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedTable {
    /// DescribeTable.
    pub info: TableInfo,
    /// PITR and tags.
    pub settings: TableSettings,
}

/// Everything observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedBackend {
    /// Key.
    pub key: ObservedKey,
    /// Bucket.
    pub bucket: ObservedBucket,
    /// Role (`None`: missing).
    pub role: Option<ObservedRole>,
    /// Lock table (`None`: missing or not used).
    pub table: Option<ObservedTable>,
    /// The audit trail of the spec (`None`: missing or no audit).
    pub trail: Option<ObservedTrail>,
    /// The trail `status.trailArn` names, when the spec no longer asks for it (audit removed,
    /// or another trail name): deleted when it is ours.
    pub stale_trail: Option<ObservedTrail>,
}

/// A trail as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedTrail {
    /// GetTrail.
    pub info: TrailInfo,
    /// ListTags.
    pub tags: Tags,
    /// Logging and selectors, read only when the trail is (or may become) ours.
    pub settings: Option<TrailSettings>,
}

/// Reads the AWS side of a backend.
pub async fn observe(
    aws: &AwsClients,
    valid: &ValidSpec,
    key: &DesiredKey,
    owner: &Owner,
    hints: &KeyHints,
    previous_trail_arn: Option<&str>,
    table: Option<&str>,
) -> Result<ObservedBackend, AwsError> {
    let trail_name = valid.audit.as_ref().map(|a| a.trail_name.as_str());
    // The trail status remembers, unless it is the one the spec names (same name: same ARN).
    let stale = previous_trail_arn.filter(|arn| trail_name.is_none_or(|n| !arn.ends_with(&format!(":trail/{n}"))));
    let adopt = valid.adopt_existing;
    let (key, bucket, role, table, trail, stale_trail) = tokio::try_join!(
        observe_key(aws, key, owner, hints),
        observe_bucket(aws, &valid.bucket, valid.access_logging.is_some(), owner, valid.adopt_existing),
        observe_role(aws, &valid.role.name),
        observe_table(aws, table),
        observe_trail(aws, trail_name, owner, adopt),
        observe_trail(aws, stale, owner, false),
    )?;
    Ok(ObservedBackend { key, bucket, role, table, trail, stale_trail })
}

/// GetTrail and ListTags (2 reads); GetTrailStatus and GetEventSelectors too (2 more) when the
/// trail is ours or may be adopted.
async fn observe_trail(
    aws: &AwsClients,
    name_or_arn: Option<&str>,
    owner: &Owner,
    adopt: bool,
) -> Result<Option<ObservedTrail>, AwsError> {
    let Some(name_or_arn) = name_or_arn else { return Ok(None) };
    let on = |e: AwsError| e.on(format!("CloudTrail trail {name_or_arn}"));
    let c = &aws.cloudtrail;
    let Some(info) = cloudtrail::get_trail(c, name_or_arn).await.map_err(on)? else { return Ok(None) };
    let tags = cloudtrail::get_tags(c, &info.arn).await.map_err(on)?;
    let settings = if owner.owns(&tags) || (adopt && !tags.contains_key(TAG_OWNER_UID)) {
        Some(cloudtrail::get_settings(c, &info.config.name).await.map_err(on)?)
    } else {
        None
    };
    Ok(Some(ObservedTrail { info, tags, settings }))
}

pub(crate) async fn observe_key(
    aws: &AwsClients,
    key: &DesiredKey,
    owner: &Owner,
    hints: &KeyHints,
) -> Result<ObservedKey, AwsError> {
    let what = match key {
        DesiredKey::Existing { arn } => arn.clone(),
        DesiredKey::Managed { alias, .. } => alias.clone(),
        DesiredKey::None => String::new(),
    };
    observe_key_inner(aws, key, owner, hints).await.map_err(|e| e.on(format!("KMS key {what}")))
}

async fn observe_key_inner(
    aws: &AwsClients,
    key: &DesiredKey,
    owner: &Owner,
    hints: &KeyHints,
) -> Result<ObservedKey, AwsError> {
    let alias = match key {
        DesiredKey::None => return Ok(ObservedKey::NotNeeded),
        DesiredKey::Existing { arn } => {
            let info = kms::describe_key(&aws.kms, arn).await?;
            let same_account = arn.split(':').nth(4) == Some(hints.account_id.as_str());
            let tags = match &info {
                Some(i) if same_account => Some(kms::get_tags(&aws.kms, &i.key_id).await?),
                _ => None,
            };
            return Ok(ObservedKey::Existing { info, tags });
        }
        DesiredKey::Managed { alias, .. } => alias,
    };
    // The alias points at a key: plan decides from its tags whether it is ours.
    if let Some(info) = kms::describe_key(&aws.kms, alias).await? {
        let settings = kms::get_settings(&aws.kms, &info.key_id).await?;
        return Ok(ObservedKey::Found { info, has_alias: true, settings });
    }
    // No alias: find our key by what we remember of it.
    let candidate = match &hints.known_arn {
        Some(arn) => kms::describe_key(&aws.kms, arn).await?,
        None if hints.creation_started => {
            kms::find_tagged(&aws.kms, TAG_OWNER_UID, &owner.uid, true).await?.into_iter().next()
        }
        None => None,
    };
    match candidate {
        Some(info) => {
            let settings = kms::get_settings(&aws.kms, &info.key_id).await?;
            Ok(ObservedKey::Found { info, has_alias: false, settings })
        }
        None => Ok(ObservedKey::Missing),
    }
}

pub(crate) async fn observe_bucket(
    aws: &AwsClients,
    name: &str,
    with_logging: bool,
    owner: &Owner,
    adopt: bool,
) -> Result<ObservedBucket, AwsError> {
    let arn = format!("S3 bucket {name}");
    let tags = match s3::get_tags(&aws.s3, name).await {
        Ok(Some(tags)) => tags,
        Ok(None) => return Ok(ObservedBucket::Missing),
        // S3 bucket names are global, and a bucket of another account refuses its tags; but
        // so does any bucket while a permission is missing (IAM propagation, an SCP being
        // rolled out). Only a bucket not among the account's own is someone else's; a
        // refusal that is ours is reported as AccessDenied and re-checked.
        Err(e) if e.kind == AwsErrorKind::AccessDenied => {
            return match s3::owned_by_caller(&aws.s3, name).await {
                Ok(false) => Ok(ObservedBucket::OtherAccount),
                Ok(true) => Err(e.on(arn)),
                Err(listing) if listing.kind == AwsErrorKind::AccessDenied => Err(e.on(arn)),
                Err(listing) => Err(listing),
            };
        }
        Err(e) => return Err(e.on(arn)),
    };
    let ours = owner.owns(&tags);
    let adoptable = adopt && !tags.contains_key(TAG_OWNER_UID);
    // Settings of a bucket we may not touch are none of our business (and cost reads).
    let settings = if ours || adoptable {
        Some(s3::get_settings(&aws.s3, name, with_logging).await.map_err(|e| e.on(arn))?)
    } else {
        None
    };
    Ok(ObservedBucket::Exists { tags, settings })
}

pub(crate) async fn observe_role(aws: &AwsClients, name: &str) -> Result<Option<ObservedRole>, AwsError> {
    let (info, inline_policy) =
        tokio::try_join!(iam::get_role(&aws.iam, name), iam::get_inline_policy(&aws.iam, name, INLINE_POLICY_NAME))
            .map_err(|e| e.on(format!("IAM role {name}")))?;
    Ok(info.map(|info| ObservedRole { info, inline_policy }))
}

async fn observe_table(aws: &AwsClients, name: Option<&str>) -> Result<Option<ObservedTable>, AwsError> {
    let Some(name) = name else { return Ok(None) };
    let on = |e: AwsError| e.on(format!("DynamoDB table {name}"));
    let Some(info) = dynamodb::describe(&aws.dynamodb, name).await.map_err(on)? else { return Ok(None) };
    let settings = dynamodb::get_settings(&aws.dynamodb, name, &info.arn).await.map_err(on)?;
    Ok(Some(ObservedTable { info, settings }))
}
