//! Step 5, AWS writes only: carries out exactly the planned changes, in dependency
//! order within a resource. Which resources run concurrently is the caller's business.

use crate::aws::s3::{self, Logging};
use crate::aws::{AwsClients, AwsError, Tags, cloudtrail, dynamodb, iam, kms};
use crate::failpoint::Failpoints;
use crate::policy::PolicyDocument;

use super::desired::{
    DesiredBucket, DesiredKey, DesiredRole, DesiredTable, DesiredTrail, INLINE_POLICY_NAME, TAG_OWNER_UID,
};
use super::observe::{ObservedKey, ObservedRole, ObservedTable, ObservedTrail};
use super::plan::{BucketChange, KeyChange, ReplicationChange, RoleChange, TableChange, TrailChange};

/// Applies role changes (not the inline policy, which needs the key: see
/// [`apply_inline_policy`]).
pub async fn apply_role(
    aws: &AwsClients,
    desired: &DesiredRole,
    observed: Option<&ObservedRole>,
    changes: &[RoleChange],
    tags: &Tags,
) -> Result<(), AwsError> {
    let c = &aws.iam;
    let no_tags = Tags::new();
    let current_tags = observed.map(|r| &r.info.tags).unwrap_or(&no_tags);
    for change in changes {
        match change {
            RoleChange::Create => {
                iam::create_role(
                    c,
                    &desired.name,
                    &desired.path,
                    &desired.description,
                    &desired.trust.to_json(),
                    desired.max_session_duration,
                    desired.boundary.as_deref(),
                    tags,
                )
                .await?;
            }
            RoleChange::UpdateTrust => iam::update_trust(c, &desired.name, &desired.trust.to_json()).await?,
            RoleChange::UpdateMaxSession => {
                iam::update_max_session(c, &desired.name, desired.max_session_duration).await?
            }
            RoleChange::SetBoundary => iam::set_boundary(c, &desired.name, desired.boundary.as_deref()).await?,
            RoleChange::SyncTags => iam::sync_tags(c, &desired.name, current_tags, tags).await?,
            // They need the key and the other parts' ownership: see apply_inline_policy.
            RoleChange::PutInlinePolicy | RoleChange::DeleteInlinePolicy => {}
        }
    }
    Ok(())
}

/// Puts the role's inline policy, or removes it when it must grant nothing (`None`).
pub async fn apply_inline_policy(
    aws: &AwsClients,
    role: &str,
    policy: Option<&PolicyDocument>,
) -> Result<(), AwsError> {
    match policy {
        Some(policy) => iam::put_inline_policy(&aws.iam, role, INLINE_POLICY_NAME, &policy.to_json()).await,
        None => iam::delete_inline_policy(&aws.iam, role, INLINE_POLICY_NAME).await,
    }
}

/// Applies key changes; returns the ARN of the key in use (`None` with SSE-S3).
/// `failpoints` can kill the process right after CreateKey, as a crash would.
pub async fn apply_key(
    aws: &AwsClients,
    desired: &DesiredKey,
    observed: &ObservedKey,
    changes: &[KeyChange],
    tags: &Tags,
    failpoints: &Failpoints,
) -> Result<Option<String>, AwsError> {
    let c = &aws.kms;
    let (alias, policy, description) = match desired {
        DesiredKey::None => return Ok(None),
        DesiredKey::Existing { arn } => return Ok(Some(arn.clone())),
        DesiredKey::Managed { alias, policy, description, .. } => (alias, policy, description),
    };
    let (mut key_id, mut arn, current_tags) = match observed {
        ObservedKey::Found { info, settings, .. } => (info.key_id.clone(), info.arn.clone(), settings.tags.clone()),
        _ => (String::new(), String::new(), Tags::new()),
    };
    for change in changes {
        match change {
            KeyChange::Create => {
                let info = kms::create_key_once_principals_resolve(
                    c,
                    description,
                    &policy.to_json(),
                    tags,
                    ROLE_VISIBLE_TO_KMS_WITHIN,
                )
                .await?;
                failpoints.hit("after-create-key");
                key_id = info.key_id;
                arn = info.arn;
                kms::set_alias(c, alias, &key_id, false).await?;
                kms::enable_rotation(c, &key_id).await?;
            }
            KeyChange::CancelDeletion => kms::cancel_deletion(c, &key_id).await?,
            KeyChange::Enable => kms::enable_key(c, &key_id).await?,
            KeyChange::SetAlias => match kms::set_alias(c, alias, &key_id, false).await {
                // The alias may point at a key that is gone: moved then. One that names a live
                // key was made since observe (another object's, racing for the alias): never
                // moved, the next pass looks at that key's tags.
                Err(e) if e.code == "AlreadyExistsException" => match kms::describe_key(c, alias).await? {
                    Some(other) if other.key_id != key_id => return Err(alias_taken(alias, &other.arn)),
                    Some(_) => {}
                    None => kms::set_alias(c, alias, &key_id, true).await?,
                },
                other => other?,
            },
            KeyChange::EnableRotation => kms::enable_rotation(c, &key_id).await?,
            KeyChange::PutPolicy => kms::put_policy(c, &key_id, &policy.to_json()).await?,
            KeyChange::SyncTags => kms::sync_tags(c, &key_id, &current_tags, tags).await?,
        }
    }
    Ok(Some(arn))
}

/// The alias was created for another key between observe and SetAlias: transient, so that
/// the next pass observes that key through the alias and decides by its tags.
fn alias_taken(alias: &str, arn: &str) -> AwsError {
    AwsError {
        resource: None,
        service: "kms",
        operation: "CreateAlias",
        code: "AlreadyExistsException".into(),
        message: format!("alias {alias} was just pointed at another key ({arn}); it is left as it is"),
        kind: crate::aws::AwsErrorKind::Transient,
    }
}

/// How long CreateKey is retried in the pass while KMS does not resolve the role its policy
/// names: IAM propagates a new role to KMS within seconds.
const ROLE_VISIBLE_TO_KMS_WITHIN: std::time::Duration = std::time::Duration::from_secs(8);

/// What became of the bucket part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketApplied {
    /// Every planned change was made to a bucket of ours.
    Done,
    /// CreateBucket answered, but the bucket carries another owner's tags (another object
    /// created it first: S3 answers success to the second CreateBucket in us-east-1), so
    /// nothing else was written.
    LostCreationRace,
    /// The untagged bucket now carries this object's tags (`spec.adoptExisting`), and
    /// nothing else was written: a later pass confirms them before any setting or grant.
    Adopted,
    /// The bucket to adopt carries another object's owner tag since it was observed
    /// (another object adopted it first), so nothing was written.
    AdoptedByAnother,
}

/// How long a new bucket may stay invisible before the pass gives up (and the next
/// pass, backing off, finds it): S3 documents that a bucket may answer `NoSuchBucket` for a
/// while after CreateBucket, above all from another region.
const NEW_BUCKET_VISIBLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(15);

/// Applies bucket changes: the bucket is claimed first ([`claim_bucket`]), then each
/// setting is written ([`apply_bucket_settings`]).
pub async fn apply_bucket(
    aws: &AwsClients,
    desired: &DesiredBucket,
    changes: &[BucketChange],
    tags: &Tags,
    failpoints: &Failpoints,
) -> Result<BucketApplied, AwsError> {
    let claimed = claim_bucket(aws, desired, changes, tags, failpoints).await?;
    if claimed == BucketApplied::Done {
        apply_bucket_settings(aws, desired, changes, tags).await?;
    }
    Ok(claimed)
}

/// Claims a new bucket: CreateBucket, tagged in the same call, then its tags read back once
/// S3 shows it (ownership is what AWS says, not what the create call answered); or an
/// untagged one to adopt: its tags, and nothing else. Nothing to do for a bucket of ours.
/// `Done` means the bucket is ours and its settings may be written.
pub async fn claim_bucket(
    aws: &AwsClients,
    desired: &DesiredBucket,
    changes: &[BucketChange],
    tags: &Tags,
    failpoints: &Failpoints,
) -> Result<BucketApplied, AwsError> {
    let (c, b) = (&aws.s3, desired.name.as_str());
    let on = |e: AwsError| e.on(format!("S3 bucket {b}"));
    if changes.contains(&BucketChange::Adopt) {
        // Looked at once more right before the write: the shorter the time between the
        // look and the write, the less room for overwriting another object's claim.
        let now = s3::get_tags(c, b).await.map_err(on)?.unwrap_or_default();
        if now.get(TAG_OWNER_UID).is_some_and(|uid| Some(uid) != tags.get(TAG_OWNER_UID)) {
            return Ok(BucketApplied::AdoptedByAnother);
        }
        s3::put_tags(c, b, tags).await.map_err(on)?;
        return Ok(BucketApplied::Adopted);
    }
    if !changes.contains(&BucketChange::Create) {
        return Ok(BucketApplied::Done);
    }
    match s3::create_bucket(c, b, &aws.region, tags).await {
        // Another pass (ours or another object's) created it since observe: the tags say whose.
        Err(e) if e.code == "BucketAlreadyOwnedByYou" => {}
        other => other.map_err(on)?,
    }
    failpoints.hit("after-create-bucket");
    if !s3::wait_until_exists(c, b, NEW_BUCKET_VISIBLE_WITHIN).await.map_err(on)? {
        return Err(on(not_visible_yet(b)));
    }
    let Some(now) = s3::get_tags(c, b).await.map_err(on)? else {
        // Visible to HeadBucket, not yet to GetBucketTagging: the next pass looks again.
        return Err(on(not_visible_yet(b)));
    };
    // `tags` always holds our UID, so an untagged bucket is not ours either.
    if now.get(TAG_OWNER_UID) != tags.get(TAG_OWNER_UID) {
        return Ok(BucketApplied::LostCreationRace);
    }
    Ok(BucketApplied::Done)
}

/// Writes each planned setting of a bucket of ours, one at a time on purpose: S3 answers
/// concurrent configuration requests on one bucket with `409 OperationAborted`.
pub async fn apply_bucket_settings(
    aws: &AwsClients,
    desired: &DesiredBucket,
    changes: &[BucketChange],
    tags: &Tags,
) -> Result<(), AwsError> {
    let on = |e: AwsError| e.on(format!("S3 bucket {}", desired.name));
    for change in changes.iter().filter(|c| !matches!(c, BucketChange::Create | BucketChange::Adopt)) {
        apply_bucket_setting(aws, desired, change, tags).await.map_err(on)?;
    }
    Ok(())
}

fn not_visible_yet(bucket: &str) -> AwsError {
    AwsError {
        resource: None,
        service: "s3",
        operation: "HeadBucket",
        code: "NoSuchBucket".into(),
        message: format!("bucket {bucket} was created but S3 does not show it yet (eventual consistency); retrying"),
        kind: crate::aws::AwsErrorKind::Transient,
    }
}

async fn apply_bucket_setting(
    aws: &AwsClients,
    desired: &DesiredBucket,
    change: &BucketChange,
    tags: &Tags,
) -> Result<(), AwsError> {
    let (c, b) = (&aws.s3, desired.name.as_str());
    match change {
        BucketChange::Create | BucketChange::Adopt => {}
        BucketChange::PutTags => s3::put_tags(c, b, tags).await?,
        BucketChange::EnableVersioning => s3::enable_versioning(c, b).await?,
        BucketChange::PutEncryption => s3::put_encryption(c, b, desired.kms_key_arn.as_deref()).await?,
        BucketChange::PutPublicAccessBlock => s3::put_public_access_block(c, b, desired.public_access_block).await?,
        BucketChange::EnforceBucketOwner => s3::enforce_bucket_owner(c, b).await?,
        BucketChange::PutLifecycle => s3::put_lifecycle(c, b, &desired.lifecycle).await?,
        BucketChange::PutPolicy => s3::put_policy(c, b, &desired.policy.to_json()).await?,
        BucketChange::PutLogging => s3::put_logging(c, b, desired.logging.as_ref().map(|l: &Logging| l)).await?,
    }
    Ok(())
}

/// What applying the table's changes came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableApplied {
    /// Every change is written.
    Done,
    /// The table has to become ACTIVE before the rest can be applied (a new table may not
    /// accept PITR yet): left for the next pass.
    Pending,
    /// The untagged table this pass was adopting carries another object's tags now: it was
    /// adopted by that object meanwhile, and is left untouched.
    AdoptedByAnother,
}

/// Applies table changes. Adopting an untagged table (its tags, nothing else: see
/// `plan_table`) looks at its tags once more right before the write, as for the bucket.
pub async fn apply_table(
    aws: &AwsClients,
    desired: &DesiredTable,
    observed: Option<&ObservedTable>,
    changes: &[TableChange],
    tags: &Tags,
) -> Result<TableApplied, AwsError> {
    let (c, t) = (&aws.dynamodb, desired.name.as_str());
    let no_tags = Tags::new();
    let current_tags = observed.map(|o| &o.settings.tags).unwrap_or(&no_tags);
    let adopting = observed.is_some() && current_tags.get(TAG_OWNER_UID) != tags.get(TAG_OWNER_UID);
    for change in changes {
        match change {
            TableChange::Create => {
                dynamodb::create(c, t, desired.kms_key_arn.as_deref(), desired.deletion_protection, tags).await?;
                // One look: tables often become ACTIVE within the round trip.
                let active = dynamodb::describe(c, t).await?.is_some_and(|i| i.status == "ACTIVE");
                if !active {
                    return Ok(TableApplied::Pending);
                }
            }
            TableChange::Update { deletion_protection, sse_key, on_demand } => {
                dynamodb::update(c, t, *deletion_protection, sse_key.as_ref().map(|k| k.as_deref()), *on_demand).await?
            }
            TableChange::SetPitr(on) => dynamodb::set_pitr(c, t, *on).await?,
            TableChange::SyncTags if adopting => {
                // The shorter the time between the look and the write, the less room for
                // overwriting another object's claim.
                let now = dynamodb::get_tags(c, &desired.arn).await?;
                if now.get(TAG_OWNER_UID).is_some_and(|uid| Some(uid) != tags.get(TAG_OWNER_UID)) {
                    return Ok(TableApplied::AdoptedByAnother);
                }
                dynamodb::sync_tags(c, &desired.arn, &now, tags).await?
            }
            TableChange::SyncTags => dynamodb::sync_tags(c, &desired.arn, current_tags, tags).await?,
            TableChange::WaitUntilActive => return Ok(TableApplied::Pending),
        }
    }
    Ok(TableApplied::Done)
}

/// Applies trail changes, in their order: a new trail gets its selectors before it starts
/// logging, so it never records anything but the state bucket's object events.
pub async fn apply_trail(
    aws: &AwsClients,
    desired: &DesiredTrail,
    observed: Option<&ObservedTrail>,
    changes: &[TrailChange],
    tags: &Tags,
) -> Result<(), AwsError> {
    let (c, name) = (&aws.cloudtrail, desired.config.name.as_str());
    let on = |e: AwsError| e.on(format!("CloudTrail trail {name}"));
    let no_tags = Tags::new();
    let current_tags = observed.map(|o| &o.tags).unwrap_or(&no_tags);
    for change in changes {
        match change {
            TrailChange::Create => cloudtrail::create_trail(c, &desired.config, tags).await.map(|_| ()),
            TrailChange::Update => cloudtrail::update_trail(c, &desired.config).await,
            TrailChange::PutSelectors => cloudtrail::put_selectors(c, name, &desired.selectors).await,
            TrailChange::SyncTags => cloudtrail::sync_tags(c, &desired.arn, current_tags, tags).await,
            TrailChange::StartLogging => cloudtrail::start_logging(c, name).await,
            TrailChange::StopLogging => cloudtrail::stop_logging(c, name).await,
        }
        .map_err(on)?;
    }
    Ok(())
}

/// Deletes a trail of ours that the spec no longer names (found in this region by its ARN,
/// deleted by its name: the emulator deletes by name only). The log files it delivered stay
/// where they are.
pub async fn delete_stale_trail(aws: &AwsClients, trail: &ObservedTrail) -> Result<(), AwsError> {
    let name = &trail.info.config.name;
    cloudtrail::delete_trail(&aws.cloudtrail, name).await.map_err(|e| e.on(format!("CloudTrail trail {name}")))
}

/// Applies the state bucket's replication configuration changes.
pub async fn apply_replication(
    aws: &AwsClients,
    bucket: &str,
    desired: Option<&s3::ReplicationSettings>,
    changes: &[ReplicationChange],
) -> Result<(), AwsError> {
    let on = |e: AwsError| e.on(format!("replication configuration of S3 bucket {bucket}"));
    for change in changes {
        match (change, desired) {
            (ReplicationChange::PutConfiguration, Some(d)) => {
                s3::put_replication(&aws.s3, bucket, d).await.map_err(on)?
            }
            (ReplicationChange::PutConfiguration, None) => {}
            (ReplicationChange::DeleteConfiguration, _) => s3::delete_replication(&aws.s3, bucket).await.map_err(on)?,
        }
    }
    Ok(())
}
