//! The Cleanup side of a backend's life, when the object is deleted.
//!
//! `Retain` leaves AWS as it is. `Delete` never strands state: the bucket comes first, and
//! the audit trail, the lock table, the role and the key (scheduled for deletion: the one step that makes
//! remaining state unreadable) go only once the bucket is verified gone (`NoSuchBucket`)
//! or was deleted, empty, by this pass. Any doubt about the bucket — its tags unreadable or
//! not ours while it exists, its versions uncountable, versions left — is `DeletionBlocked`
//! with what was found and what to do, nothing is deleted, and the finalizer stays. Only
//! resources carrying this object's ownership tags are touched. Works whether or not Apply
//! ever ran.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use crate::api::{DeletionPolicy, Reason, TerraformStateBackend};
use crate::aws::{AssumeAs, AwsClients, AwsError, AwsErrorKind, cloudtrail, dynamodb, iam, kms, s3};
use crate::context::Context;

use super::backend::{event, owner_of};
use super::desired::{DesiredKey, INLINE_POLICY_NAME, Owner, TAG_OWNER_UID, desired_key};
use super::error::ReconcileError;
use super::status::{self, PartState, StatusReport, next_status};
use super::validate::{ObjectRef, ValidSpec, own_bucket, validate};

/// How many versions are counted at most for the DeletionBlocked message.
const COUNT_LIMIT: u64 = 10_000;

/// What deletion found of the state bucket, read in this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BucketFinding {
    /// `NoSuchBucket`: it is gone (or never existed).
    Gone,
    /// Its tags could not be read (the error, e.g. AccessDenied).
    TagsUnreadable(String),
    /// It exists without this object's owner-UID tag (another owner's, or its tags were
    /// replaced by another tool: PutBucketTagging replaces the whole set).
    NotOurs,
    /// Ours; its versions could not be counted (the error).
    VersionsUncountable(String),
    /// Ours, with this many object versions and delete markers.
    Ours(u64),
}

/// What to do about the bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BucketVerdict {
    /// Gone: the other resources may go.
    NothingToDelete,
    /// Ours and empty: delete it, then the other resources.
    DeleteIt,
    /// Delete nothing; the message says what was found and what to do.
    Blocked(String),
}

/// Decides, purely, whether deletion may proceed past the bucket. Anything but a bucket
/// verified gone or verified ours and empty blocks: the key must outlive every state
/// version it encrypts.
pub fn judge_bucket(bucket: &str, finding: &BucketFinding) -> BucketVerdict {
    let nothing = "nothing has been deleted";
    let retain = "or set deletionPolicy: Retain to leave every AWS resource as it is";
    match finding {
        BucketFinding::Gone => BucketVerdict::NothingToDelete,
        BucketFinding::Ours(0) => BucketVerdict::DeleteIt,
        BucketFinding::Ours(n) => BucketVerdict::Blocked(format!(
            "bucket {bucket} still holds {n} object version(s); the operator never deletes Terraform state and \
             keeps the key that encrypts it: {nothing}. Delete the versions yourself to let the deletion finish, {retain}"
        )),
        BucketFinding::TagsUnreadable(e) => BucketVerdict::Blocked(format!(
            "the tags of bucket {bucket} cannot be read ({e}), so the operator cannot tell whether it holds this \
             backend's state: {nothing}. Let the operator read the bucket's tags, {retain}"
        )),
        BucketFinding::NotOurs => BucketVerdict::Blocked(format!(
            "bucket {bucket} exists but does not carry this backend's ownership tag {TAG_OWNER_UID} (another \
             owner's, or its tags were replaced by another tool); it may hold state encrypted with this backend's \
             key: {nothing}. Restore the tag, delete the bucket yourself, {retain}"
        )),
        BucketFinding::VersionsUncountable(e) => BucketVerdict::Blocked(format!(
            "the object versions of bucket {bucket} cannot be listed ({e}): {nothing}. Let the operator list \
             them, {retain}"
        )),
    }
}

/// The lock tables deletion looks at, each deleted only if its ownership tags say it is this
/// object's: the spec's (in mode Lockfile the default name, `<bucket>-lock`, where a table
/// kept from an earlier mode would be), and the one status recorded. A mode change never
/// deletes a table, so a custom-named one kept from DynamoDB or Both mode is known by its
/// recorded ARN only: without it, it would outlive the backend.
pub fn lock_tables(spec_table: Option<&str>, bucket: &str, recorded_arn: Option<&str>) -> Vec<String> {
    let spec = spec_table.map_or_else(|| super::validate::default_lock_table(bucket), str::to_owned);
    let recorded = recorded_arn.and_then(|arn| arn.rsplit_once(":table/")).map(|(_, name)| name.to_owned());
    let mut names = vec![spec];
    // A name DynamoDB would refuse (a status edited by hand) is not asked about: the
    // ValidationException would block the deletion for good.
    names.extend(recorded.filter(|r| super::validate::is_table_name(r) && !names.contains(r)));
    names
}

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
    let valid = match validate(target, &obj.spec, &ctx.config.defaults) {
        Ok(valid) => valid,
        // Validation comes first, so a spec that was never valid never reached AWS: there
        // is nothing this object could have created. One that reached AWS (status knows
        // its account) and became invalid since cannot say which resources are its own.
        Err(_) if obj.status.as_ref().and_then(|s| s.account_id.as_ref()).is_none() => {
            return Ok(Action::await_change());
        }
        Err(e) => {
            let message = format!(
                "the spec is invalid ({e}), so the operator cannot tell which AWS resources to delete: nothing has \
                 been deleted. Fix the spec, or set deletionPolicy: Retain to leave every AWS resource as it is"
            );
            return Err(block_deletion(ctx, obj, &owner, message).await);
        }
    };
    // The same credentials as Apply: the policy's operator role (hub and spoke), if any.
    let policy = ctx.admission.effective(&ctx.client, &owner.namespace).await?;
    let own = ctx.identity(&ctx.aws.clients(&valid.region)).await?.account_id;
    let account = policy.backend_account_id(&own).to_string();
    if let Some(built_in) = obj.status.as_ref().and_then(|s| s.account_id.as_deref()).filter(|a| *a != account) {
        let message = format!(
            "this backend was built in AWS account {built_in}, but {} now places it in account {account}: nothing \
             has been deleted. Restore the policy's operatorRoleArn, or set deletionPolicy: Retain",
            policy.source
        );
        return Err(block_deletion(ctx, obj, &owner, message).await);
    }
    let assume =
        policy.operator_role_arn.as_deref().map(|arn| AssumeAs::for_object(arn, &owner.namespace, &owner.name));
    let aws = ctx.aws.clients_as(&valid.region, assume.as_ref()).await?;

    let finding = inspect_bucket(&aws, &valid.bucket, &owner).await?;
    let verdict = judge_bucket(&valid.bucket, &finding);
    tracing::info!(bucket = %valid.bucket, ?finding, "deletion: the state bucket");
    // The bucket status knows as this object's, when the spec names another one now (a
    // rename is refused, but the spec says what it says): it may hold the state the key
    // encrypts, so it is judged under the same rules before anything is deleted.
    let recorded = obj.status.as_ref().and_then(own_bucket).filter(|b| *b != valid.bucket);
    let recorded = match recorded {
        Some(bucket) => {
            let finding = inspect_bucket(&aws, bucket, &owner).await?;
            tracing::info!(bucket, ?finding, "deletion: the state bucket status recorded");
            Some((bucket, judge_bucket(bucket, &finding)))
        }
        None => None,
    };
    // The replica under the same rules, judged before anything is deleted.
    let replica = match &valid.replication {
        Some(r) => {
            let replica_aws = ctx.aws.clients_as(&r.region, assume.as_ref()).await?;
            let finding = inspect_bucket(&replica_aws, &r.bucket, &owner).await?;
            tracing::info!(bucket = %r.bucket, ?finding, "deletion: the replica bucket");
            Some((replica_aws, judge_bucket(&r.bucket, &finding)))
        }
        None => None,
    };
    let others = recorded.iter().map(|(_, v)| v).chain(replica.iter().map(|(_, v)| v));
    for verdict in std::iter::once(&verdict).chain(others) {
        if let BucketVerdict::Blocked(message) = verdict {
            return Err(block_deletion(ctx, obj, &owner, message.clone()).await);
        }
    }
    if verdict == BucketVerdict::DeleteIt {
        s3::delete_bucket(&aws.s3, &valid.bucket).await?;
    }
    if let Some((bucket, BucketVerdict::DeleteIt)) = recorded {
        s3::delete_bucket(&aws.s3, bucket).await?;
    }
    if let (Some(r), Some((replica_aws, BucketVerdict::DeleteIt))) = (&valid.replication, &replica) {
        s3::delete_bucket(&replica_aws.s3, &r.bucket).await?;
    }
    // The buckets are gone: nothing left for the table, the roles or the keys to protect.
    delete_owned(ctx, &aws, &valid, &owner, obj).await?;
    if let (Some(r), Some((replica_aws, _))) = (&valid.replication, &replica) {
        // The replica key stays if a former replica of its region may hold copies it
        // encrypts (computed here too: the spec may have changed with no pass since).
        let spec_replica = Some((r.bucket.as_str(), r.region.as_str()));
        let keep_key = status::replica_keys_kept(obj.status.as_ref(), spec_replica).contains(&r.region);
        delete_owned_replica(&aws, replica_aws, r, &owner, obj, !keep_key).await?;
        if keep_key {
            let message = format!(
                "the replica key in {} and its alias are kept: the replica there was left before \
                 (spec.replication.bucketName or region changed, or replication was removed), and that former \
                 replica bucket may still hold copies of the state the key encrypts. Once no bucket holds such \
                 copies, an administrator of the account's KMS keys may schedule its deletion",
                r.region
            );
            event(ctx, obj, EventType::Warning, Reason::Deleting, message).await;
        }
    }
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

/// Writes `DeletionBlocked` (with `message`) on every part, publishes it once as a Warning
/// Event, and returns the error that keeps the finalizer (retried with back-off).
async fn block_deletion(ctx: &Context, obj: &TerraformStateBackend, owner: &Owner, message: String) -> ReconcileError {
    let mut report = StatusReport::default();
    for t in status::PARTS {
        report.parts.insert(t, PartState::not_ready(Reason::DeletionBlocked, message.clone()));
    }
    let report = status::remember(report, obj.status.as_ref());
    let api: Api<TerraformStateBackend> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let status = next_status(obj.status.as_ref(), obj.metadata.generation.unwrap_or(0), report, &now);
    match status::write(&api, &owner.name, obj.status.as_ref(), &status).await {
        Ok(true) => event(ctx, obj, EventType::Warning, Reason::DeletionBlocked, message.clone()).await,
        Ok(false) => {}
        Err(e) => return e.into(),
    }
    ReconcileError::DeletionBlocked(message)
}

/// Reads the bucket's tags and, when it is ours, counts its versions. Errors that retrying
/// can cure (throttling, 5xx) are returned; a denial is a finding, not an error.
async fn inspect_bucket(aws: &AwsClients, bucket: &str, owner: &Owner) -> Result<BucketFinding, AwsError> {
    let tags = match s3::get_tags(&aws.s3, bucket).await {
        Ok(None) => return Ok(BucketFinding::Gone),
        Ok(Some(tags)) => tags,
        Err(e) if e.kind == AwsErrorKind::AccessDenied => return Ok(BucketFinding::TagsUnreadable(e.to_string())),
        Err(e) => return Err(e),
    };
    if !owner.owns(&tags) {
        return Ok(BucketFinding::NotOurs);
    }
    match s3::count_versions(&aws.s3, bucket, COUNT_LIMIT).await {
        Ok(n) => Ok(BucketFinding::Ours(n)),
        Err(e) if e.kind == AwsErrorKind::AccessDenied => Ok(BucketFinding::VersionsUncountable(e.to_string())),
        Err(e) => Err(e),
    }
}

/// Deletes the audit trail, the table, the role and, last, the key, of those that carry our
/// tags. Only called once the bucket is gone (the trail audits the state as long as there is
/// any). The trail's log files in the log bucket are never touched.
async fn delete_owned(
    ctx: &Context,
    aws: &AwsClients,
    valid: &ValidSpec,
    owner: &Owner,
    obj: &TerraformStateBackend,
) -> Result<(), ReconcileError> {
    let named = valid.audit.as_ref().map(|a| a.trail_name.clone());
    let known = obj.status.as_ref().and_then(|s| s.trail_arn.clone());
    for trail in named.into_iter().chain(known) {
        let on = |e: AwsError| e.on(format!("CloudTrail trail {trail}"));
        if let Some(info) = cloudtrail::get_trail(&aws.cloudtrail, &trail).await.map_err(on)?
            && owner.owns(&cloudtrail::get_tags(&aws.cloudtrail, &info.arn).await.map_err(on)?)
        {
            cloudtrail::delete_trail(&aws.cloudtrail, &info.config.name).await.map_err(on)?;
        }
    }
    let recorded = obj.status.as_ref().and_then(|s| s.lock_table_arn.as_deref());
    let spec_table = valid.lock_table.as_ref().map(|t| t.name.as_str());
    for table_name in lock_tables(spec_table, &valid.bucket, recorded) {
        if let Some(info) = dynamodb::describe(&aws.dynamodb, &table_name).await? {
            let settings = dynamodb::get_settings(&aws.dynamodb, &table_name, &info.arn).await?;
            if owner.owns(&settings.tags) {
                if info.deletion_protection {
                    dynamodb::update(&aws.dynamodb, &table_name, Some(false), None, false).await?;
                }
                dynamodb::delete(&aws.dynamodb, &table_name).await?;
            }
        }
    }
    if let Some(role) = iam::get_role(&aws.iam, &valid.role.name).await?
        && owner.owns(&role.tags)
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
            && owner.owns(&kms::get_tags(&aws.kms, &key.key_id).await?)
        {
            kms::delete_alias(&aws.kms, &alias).await?;
            if key.state != "PendingDeletion" {
                kms::schedule_deletion(&aws.kms, &key.key_id, deletion_window_days).await?;
            }
        }
    }
    Ok(())
}

/// Deletes the replication role and, with `delete_key`, schedules the replica key's
/// deletion, of those that carry our tags. Only called once both buckets are gone.
async fn delete_owned_replica(
    aws: &AwsClients,
    replica_aws: &AwsClients,
    r: &crate::reconcile::validate::Replication,
    owner: &Owner,
    obj: &TerraformStateBackend,
    delete_key: bool,
) -> Result<(), ReconcileError> {
    if let Some(role) = iam::get_role(&aws.iam, &r.role_name).await?
        && owner.owns(&role.tags)
    {
        iam::delete_role(&aws.iam, &r.role_name, INLINE_POLICY_NAME).await?;
    }
    let crate::reconcile::validate::Encryption::CreateKey { alias, deletion_window_days, .. } = &r.encryption else {
        return Ok(());
    };
    if !delete_key {
        return Ok(());
    }
    // The status's key ARN only if it is of the spec's replica region: the key of a region
    // the replica was moved away from encrypts the copies left there.
    let recorded_key = obj
        .status
        .as_ref()
        .and_then(|s| s.replica_kms_key_arn.clone())
        .filter(|arn| arn.split(':').nth(3) == Some(r.region.as_str()));
    let key = match kms::describe_key(&replica_aws.kms, alias).await? {
        Some(k) => Some(k),
        None => match recorded_key {
            Some(arn) => kms::describe_key(&replica_aws.kms, &arn).await?,
            None => None,
        },
    };
    if let Some(key) = key
        && owner.owns(&kms::get_tags(&replica_aws.kms, &key.key_id).await?)
    {
        kms::delete_alias(&replica_aws.kms, alias).await?;
        if key.state != "PendingDeletion" {
            kms::schedule_deletion(&replica_aws.kms, &key.key_id, *deletion_window_days).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletion_looks_at_the_spec_table_and_the_one_status_recorded() {
        let arn = |name: &str| format!("arn:aws:dynamodb:eu-west-1:123456789012:table/{name}");
        // Lockfile mode: the default name, and a custom-named table kept from an earlier mode.
        let kept = arn("acme-custom");
        assert_eq!(lock_tables(None, "acme", Some(&kept)), ["acme-lock", "acme-custom"]);
        assert_eq!(lock_tables(None, "acme", None), ["acme-lock"]);
        // The spec's table, recorded under its own name: looked at once.
        assert_eq!(lock_tables(Some("t"), "acme", Some(&arn("t"))), ["t"]);
        // A renamed table: both, each only deleted if its tags say it is ours.
        assert_eq!(lock_tables(Some("new"), "acme", Some(&arn("old"))), ["new", "old"]);
        // Not an ARN of a table: nothing more.
        assert_eq!(lock_tables(None, "acme", Some("arn:aws:s3:::acme")), ["acme-lock"]);
        assert_eq!(lock_tables(None, "acme", Some("arn:aws:dynamodb:eu-west-1:1:table/")), ["acme-lock"]);
        // Abuse (a status edited by hand): a name DynamoDB would refuse is not asked about.
        for bad in ["a b", "x/../y", "ab", &"t".repeat(256)] {
            assert_eq!(lock_tables(None, "acme", Some(&arn(bad))), ["acme-lock"], "{bad}");
        }
    }

    fn blocked(finding: BucketFinding, needles: &[&str]) {
        match judge_bucket("acme-tfstate", &finding) {
            BucketVerdict::Blocked(m) => {
                for n in needles.iter().chain(&["acme-tfstate", "nothing has been deleted", "deletionPolicy: Retain"]) {
                    assert!(m.contains(n), "{finding:?}: {m:?} does not say {n:?}");
                }
            }
            other => panic!("{finding:?} must block deletion, got {other:?}"),
        }
    }

    /// Only a bucket verified gone, or verified ours and empty, lets deletion go on.
    #[test]
    fn only_certainty_lets_deletion_proceed() {
        assert_eq!(judge_bucket("b", &BucketFinding::Gone), BucketVerdict::NothingToDelete);
        assert_eq!(judge_bucket("b", &BucketFinding::Ours(0)), BucketVerdict::DeleteIt);
    }

    /// Every doubt blocks, and says what was found and what to do.
    #[test]
    fn every_doubt_blocks_with_what_was_found() {
        blocked(BucketFinding::Ours(3), &["3 object version(s)", "Delete the versions"]);
        blocked(BucketFinding::TagsUnreadable("AccessDenied".into()), &["cannot be read", "AccessDenied"]);
        blocked(BucketFinding::NotOurs, &["does not carry", TAG_OWNER_UID, "replaced by another tool"]);
        blocked(BucketFinding::VersionsUncountable("AccessDenied".into()), &["cannot be listed", "AccessDenied"]);
    }
}
