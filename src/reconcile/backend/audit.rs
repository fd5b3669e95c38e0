//! The driver's audit part (`spec.audit.cloudTrail`): orders the trail's plan and apply and
//! records `AuditReady`. The decisions are in `plan/trail.rs`; this only carries them out.

use crate::api::{ConditionType as C, Reason};
use crate::aws::{AwsClients, AwsError, Tags};
use crate::reconcile::apply::{apply_trail, delete_stale_trail};
use crate::reconcile::desired::{DesiredTrail, Identity, desired_trail, log_bucket_statements};
use crate::reconcile::observe::ObservedBackend;
use crate::reconcile::plan::{TrailChange, plan_stale_trail, plan_trail};

use super::Run;

/// What CloudTrail answers when the log bucket cannot receive the trail's log files.
const LOG_BUCKET_REFUSALS: [&str; 3] =
    ["InsufficientS3BucketPolicyException", "S3BucketDoesNotExistException", "InvalidS3BucketNameException"];

impl Run<'_> {
    /// Converges the audit trail (and deletes a trail of ours the spec no longer names).
    /// `bucket_owned`: the state bucket is this backend's in this pass. Returns the error
    /// that fails the pass (retried with back-off); a log bucket that refuses CloudTrail is
    /// not one: it is reported as `DependencyNotReady` and re-checked at the resync interval.
    pub(super) async fn converge_audit(
        &mut self,
        aws: &AwsClients,
        id: &Identity,
        observed: &ObservedBackend,
        tags: &Tags,
        bucket_owned: bool,
    ) -> Option<AwsError> {
        let (converged, mut error) = match desired_trail(self.valid, id) {
            Some(desired) => self.converge_trail(aws, id, &desired, observed, tags, bucket_owned).await,
            None => {
                self.report.trail_arn = None;
                (true, None)
            }
        };
        // A trail the spec no longer names goes once its successor is converged (or the
        // spec asks for none): the state is never left unaudited by a rename.
        let stale =
            observed.stale_trail.as_ref().filter(|_| plan_stale_trail(observed.stale_trail.as_ref(), self.owner));
        if let Some(stale) = stale {
            let deleted = if converged { delete_stale_trail(aws, stale).await.map(|_| true) } else { Ok(false) };
            match deleted {
                Ok(true) => {}
                // Remembered, so that a later pass deletes it.
                Ok(false) => self.report.trail_arn = Some(stale.info.arn.clone()),
                Err(e) => {
                    self.report.trail_arn = Some(stale.info.arn.clone());
                    if self.valid.audit.is_some() {
                        self.fail(C::AuditReady, &e);
                    }
                    error.get_or_insert(e);
                }
            }
        }
        error
    }

    /// The trail the spec names; returns whether it converged, and the error that fails the
    /// pass, if any.
    async fn converge_trail(
        &mut self,
        aws: &AwsClients,
        id: &Identity,
        desired: &DesiredTrail,
        observed: &ObservedBackend,
        tags: &Tags,
        bucket_owned: bool,
    ) -> (bool, Option<AwsError>) {
        let owner = self.owner;
        let observed_trail = observed.trail.as_ref();
        let ours = observed_trail.filter(|t| owner.owns(&t.tags)).map(|t| t.info.arn.clone());
        let changes = match plan_trail(desired, observed_trail, tags, owner, self.valid.adopt_existing, bucket_owned) {
            Ok(changes) => changes,
            Err(b) => {
                self.report.trail_arn = ours;
                self.block(C::AuditReady, b.reason, b.message);
                return (false, None);
            }
        };
        match apply_trail(aws, desired, observed_trail, &changes, tags).await {
            Err(e) if LOG_BUCKET_REFUSALS.contains(&e.code.as_str()) => {
                // Created trails and updated ones alike: CloudTrail checked the bucket first.
                self.report.trail_arn = ours;
                let message = log_bucket_message(id, desired, &e);
                self.block(C::AuditReady, Reason::DependencyNotReady, message);
                (false, None)
            }
            Err(e) => {
                let created = changes.contains(&TrailChange::Create).then(|| desired.arn.clone());
                self.report.trail_arn = ours.or(created);
                self.fail(C::AuditReady, &e);
                (false, Some(e))
            }
            Ok(()) if changes == [TrailChange::StopLogging] => {
                self.report.trail_arn = ours;
                let message = format!(
                    "CloudTrail trail {} stopped logging: the state bucket {} is not this backend's (see BucketReady), \
                     and a trail records only a bucket its backend owns",
                    desired.config.name, self.valid.bucket
                );
                self.block(C::AuditReady, Reason::DependencyNotReady, message);
                (false, None)
            }
            Ok(()) => {
                self.report.trail_arn = Some(desired.arn.clone());
                let what = describe(desired, &self.valid.bucket);
                self.settle(C::AuditReady, &what, &changes, observed_trail.is_none());
                (true, None)
            }
        }
    }
}

/// The trail in a condition message: what it records and where it delivers.
fn describe(trail: &DesiredTrail, bucket: &str) -> String {
    let prefix = trail.config.log_prefix.as_deref().map(|p| format!("{p}/")).unwrap_or_default();
    format!(
        "CloudTrail trail {} (S3 object data events of bucket {bucket} only, logging, log file validation on, \
         delivered to s3://{}/{prefix}AWSLogs/)",
        trail.config.name, trail.config.log_bucket
    )
}

/// What to fix when the log bucket refuses the trail: the bucket, and the exact statements
/// its policy needs.
fn log_bucket_message(id: &Identity, trail: &DesiredTrail, e: &AwsError) -> String {
    let bucket = &trail.config.log_bucket;
    let statements = log_bucket_statements(&id.partition, &id.account_id, trail);
    let problem = match e.code.as_str() {
        "S3BucketDoesNotExistException" => format!("the log bucket {bucket} does not exist"),
        "InvalidS3BucketNameException" => format!("{bucket} is not a usable log bucket name"),
        _ => format!("the bucket policy of the log bucket {bucket} does not let CloudTrail write"),
    };
    format!(
        "{problem} (CloudTrail answered {}: {}): create the bucket if needed and add these statements to its bucket \
         policy: {statements}; or fix spec.audit.cloudTrail.logBucket. The trail {} is created once CloudTrail \
         accepts the bucket (re-checked at every resync)",
        e.code, e.message, trail.config.name
    )
}
