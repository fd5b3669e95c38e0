//! Names a backend keeps once they are its own (pure): its state bucket, the key of its
//! current state, and the lock table its runners lock in. A spec naming another one is
//! refused before any AWS call, as an invalid spec: a new bucket or key would give the
//! runners an empty state (Terraform would then plan to create everything again) and leave
//! the state behind; a new lock table would let runs still on the old configuration and
//! runs on the new one hold the lock at the same time.

use crate::api::{LockMode, TerraformStateBackendStatus};
use crate::reconcile::locks::previous_mode;

use super::{FieldError, ValidSpec, ValidationError};

/// Checks `valid` against what `previous` (the object's status) says is already its own.
pub fn check_kept_names(
    valid: &ValidSpec,
    previous: Option<&TerraformStateBackendStatus>,
) -> Result<(), ValidationError> {
    let Some(status) = previous else { return Ok(()) };
    let mut problems = Vec::new();
    if let Some(old) = own_bucket(status).filter(|old| *old != valid.bucket) {
        let held = match &status.state {
            Some(s) if s.exists || s.versions > 0 => format!("holds {} version(s) of its state", s.versions.max(1)),
            // Empty so far: renaming would still leave it behind, tagged as this backend's.
            _ => "holds no state yet (to start over under another name, delete this object with deletionPolicy                   Delete, which removes the empty bucket, and create it again)"
                .to_string(),
        };
        problems.push(FieldError {
            path: "spec.bucket.name".into(),
            message: format!(
                "S3 bucket {old} is this backend's and {held}: a backend's bucket cannot be changed, or its runners \
                 would start from an empty state in {new} and {old} would be left behind. Set it back to {old}; to \
                 move the state, create another TerraformStateBackend for {new} and run `terraform init \
                 -migrate-state` against it. Nothing was changed in AWS",
                new = valid.bucket,
            ),
        });
    }
    let moved_from = status.state.as_ref().filter(|s| s.exists).and_then(|s| s.key.as_deref());
    if let Some(old) = moved_from.filter(|old| *old != valid.state_key && problems.is_empty()) {
        problems.push(FieldError {
            path: "spec.stateKey".into(),
            message: format!(
                "the current state of this backend is at {old}: its runners would start from an empty state at \
                 {new}. Set it back to {old}; to move the state, stop the runners, copy it to {new}, delete {old} \
                 (its versions are kept) and change stateKey once status.state.deleted says so. Nothing was \
                 changed in AWS",
                new = valid.state_key,
            ),
        });
    }
    let runners_lock_in_table =
        previous_mode(status.lock_mode, status.lock_table_arn.as_deref()).is_some_and(LockMode::uses_table);
    let old_table = status.lock_table_arn.as_deref().and_then(|arn| arn.rsplit_once(":table/")).map(|(_, n)| n);
    let new_table = valid.lock_table.as_ref().map(|t| t.name.as_str());
    if let (true, Some(old), Some(new)) = (runners_lock_in_table, old_table, new_table)
        && old != new
    {
        problems.push(FieldError {
            path: "spec.locking.table.name".into(),
            message: format!(
                "DynamoDB table {old} is the lock table this backend's runners lock in: runs still on it and runs on \
                 {new} would not exclude each other, and {old} would be left behind. Set spec.locking.table.name to \
                 {old}; a backend moves to another table only by way of lock files (mode Both, then Lockfile). \
                 Nothing was changed in AWS"
            ),
        });
    }
    if problems.is_empty() { Ok(()) } else { Err(ValidationError::InvalidSpec(problems)) }
}

/// The bucket status says is this object's: the one of `status.bucketArn`, once a pass
/// listed the state in it (`status.state` is written only for a bucket of the object's).
/// Deletion looks at it too, whatever the spec names now: the key must outlive its state.
pub fn own_bucket(status: &TerraformStateBackendStatus) -> Option<&str> {
    status.state.as_ref()?;
    status.bucket_arn.as_deref()?.rsplit_once(":::").map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::StateObjectStatus;
    use crate::reconcile::valid::LockTable;

    fn spec(bucket: &str, table: Option<&str>) -> ValidSpec {
        let yaml = format!(
            "bucket: {{name: {bucket}}}\naccess: {{trust: {{awsPrincipals: [arn:aws:iam::123456789012:root]}}}}"
        );
        let spec = serde_yaml_ng::from_str(&yaml).expect("test spec parses");
        let obj = super::super::ObjectRef { namespace: "team-payments", name: "payments-prod" };
        let region = super::super::OperatorDefaults { region: Some("eu-west-1".into()) };
        let mut v = super::super::validate(obj, &spec, &region).expect("test spec is valid");
        v.lock_table =
            table.map(|name| LockTable { name: name.into(), point_in_time_recovery: true, deletion_protection: true });
        v
    }

    fn status(bucket: &str, state: Option<StateObjectStatus>, table: Option<&str>) -> TerraformStateBackendStatus {
        TerraformStateBackendStatus {
            bucket_arn: Some(format!("arn:aws:s3:::{bucket}")),
            state,
            lock_table_arn: table.map(|t| format!("arn:aws:dynamodb:eu-west-1:123456789012:table/{t}")),
            ..Default::default()
        }
    }

    fn refused(r: Result<(), ValidationError>) -> Vec<FieldError> {
        match r {
            Err(ValidationError::InvalidSpec(problems)) => problems,
            Ok(()) => panic!("expected a refusal"),
        }
    }

    #[test]
    fn a_new_object_and_an_unchanged_one_pass() {
        assert_eq!(check_kept_names(&spec("acme", Some("acme-lock")), None), Ok(()));
        let s = status("acme", Some(StateObjectStatus::default()), Some("acme-lock"));
        assert_eq!(check_kept_names(&spec("acme", Some("acme-lock")), Some(&s)), Ok(()));
    }

    #[test]
    fn the_bucket_holding_the_state_is_kept() {
        let listed = StateObjectStatus { exists: true, versions: 3, ..Default::default() };
        let s = status("acme", Some(listed), Some("acme-lock"));
        let problems = refused(check_kept_names(&spec("acme-typo", Some("acme-lock")), Some(&s)));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "spec.bucket.name");
        for needle in ["acme is this backend's", "3 version(s)", "acme-typo", "Set it back to acme", "Nothing"] {
            assert!(problems[0].message.contains(needle), "{needle:?} missing: {}", problems[0].message);
        }
        // An empty bucket of ours is kept too: it would be left behind, tagged as ours.
        let s = status("acme", Some(StateObjectStatus::default()), None);
        assert_eq!(refused(check_kept_names(&spec("acme-typo", None), Some(&s)))[0].path, "spec.bucket.name");
    }

    /// A bucket that never was the object's (a Conflict: another object's, or another
    /// account's) has no `status.state`: choosing another name is the fix, not refused.
    #[test]
    fn a_bucket_that_never_was_ours_may_be_renamed() {
        let s = status("taken", None, None);
        assert_eq!(check_kept_names(&spec("mine", Some("mine-lock")), Some(&s)), Ok(()));
    }

    /// The key of a current state is kept; a key without a current state (none yet, or
    /// deleted after being copied elsewhere: its versions stay) may change.
    #[test]
    fn the_key_of_a_current_state_is_kept() {
        let key = "team-payments/payments-prod/terraform.tfstate";
        let mut state = StateObjectStatus { key: Some(key.into()), exists: true, versions: 2, ..Default::default() };
        let mut moved = spec("acme", Some("acme-lock"));
        moved.state_key = "team-payments/prod.tfstate".into();
        let s = status("acme", Some(state.clone()), Some("acme-lock"));
        let problems = refused(check_kept_names(&moved, Some(&s)));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "spec.stateKey");
        assert!(problems[0].message.contains(key) && problems[0].message.contains("status.state.deleted"));
        assert_eq!(check_kept_names(&spec("acme", Some("acme-lock")), Some(&s)), Ok(()), "the same key");
        state.exists = false;
        state.deleted = true;
        let s = status("acme", Some(state.clone()), Some("acme-lock"));
        assert_eq!(check_kept_names(&moved, Some(&s)), Ok(()));
        // Figures listed before the key was recorded say nothing about it.
        state.exists = true;
        state.key = None;
        let s = status("acme", Some(state), Some("acme-lock"));
        assert_eq!(check_kept_names(&moved, Some(&s)), Ok(()));
    }

    #[test]
    fn the_table_runners_lock_in_is_kept() {
        let s = status("acme", Some(StateObjectStatus::default()), Some("acme-lock"));
        let problems = refused(check_kept_names(&spec("acme", Some("acme-locks-v2")), Some(&s)));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "spec.locking.table.name");
        assert!(problems[0].message.contains("would not exclude each other"), "{}", problems[0].message);
        // Both at once: every problem is reported.
        assert_eq!(refused(check_kept_names(&spec("other", Some("acme-locks-v2")), Some(&s))).len(), 2);
    }

    /// Runners on lock files no longer lock in the table status remembers: a new table
    /// (mode Both or DynamoDB again) is the way to move tables.
    #[test]
    fn a_table_runners_left_may_be_replaced() {
        let mut s = status("acme", Some(StateObjectStatus::default()), Some("acme-lock"));
        s.lock_mode = Some(LockMode::Lockfile);
        assert_eq!(check_kept_names(&spec("acme", Some("acme-locks-v2")), Some(&s)), Ok(()));
        // Lock files only (no table in the spec): nothing to compare.
        s.lock_mode = Some(LockMode::DynamoDB);
        assert_eq!(check_kept_names(&spec("acme", None), Some(&s)), Ok(()));
    }
}
