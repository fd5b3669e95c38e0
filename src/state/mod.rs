//! `tfstate-operator state versions|restore`: the state's versions, and rolling back to one,
//! for people on a bad day, with their OWN AWS credentials (the SDK's default chain), never the
//! operator's. The operator itself never reads, decrypts or writes state.
//!
//! - [`target`]: which object in which bucket, and how the backend encrypts and locks it, from
//!   a cluster object or a YAML file (as `render`);
//! - [`decide`] (pure): Terraform's serial and lineage of a state, the version table, and
//!   whether a restore may go ahead;
//! - [`lock`] (pure): the lock info a restore holds the state's lock with, in Terraform's format;
//! - [`calls`]: the AWS calls a person's credentials make (listing versions, reading one,
//!   taking and releasing the lock, the server-side copy, Terraform's DynamoDB digest);
//! - [`run`]: the two commands, in order.

pub mod calls;
pub mod decide;
pub mod lock;
pub mod run;
pub mod target;

pub use decide::{Refusal, RestoreCheck, StateHead, Version, check_restore, format_versions, state_head};
pub use run::{RestoreOptions, restore, versions};
pub use target::{Sse, StateTarget, target_from_object};

/// Why a `state` command failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The backend could not be read or resolved.
    #[error("{0}")]
    Target(String),
    /// An AWS call failed.
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsError),
    /// The restore was refused; nothing was written.
    #[error("refused, nothing changed: {0}")]
    Refused(#[from] Refusal),
    /// The restore failed, and so did releasing the state lock it held: the lock to break.
    #[error(
        "{after}; and the restore's state lock {id} could not be released ({why}): break it with `terraform force-unlock {id}` or the tfstate.dev/force-unlock annotation"
    )]
    LockLeft {
        /// Why the restore failed.
        after: Box<StateError>,
        /// The lock's ID.
        id: String,
        /// Why it was not released.
        why: String,
    },
    /// Interrupted (Ctrl-C) before the restore finished.
    #[error(
        "interrupted before the restore finished (a copy already sent may have been made: check with `tfstate-operator state versions`)"
    )]
    Interrupted,
    /// The copy was made, but Terraform's digest could not be written.
    #[error(
        "{done}error: Terraform's digest {id} in {table} could not be updated ({why}): set its Digest to {digest}, or Terraform will refuse the restored state"
    )]
    DigestNotWritten {
        /// What was done (the restore's report so far).
        done: String,
        /// The lock table.
        table: String,
        /// The digest item's LockID.
        id: String,
        /// The MD5 to set.
        digest: String,
        /// Why it failed.
        why: String,
    },
    /// The version asked for is not a version of the state object.
    #[error("version {version} is not a version of s3://{bucket}/{key} (see `tfstate-operator state versions`)")]
    NoSuchVersion {
        /// The version id asked for.
        version: String,
        /// The bucket.
        bucket: String,
        /// The state key.
        key: String,
    },
}
