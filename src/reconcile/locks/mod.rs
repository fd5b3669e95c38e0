//! Locks you can see and safely break: each pass reads the default workspace's Terraform
//! lock where the lock mode keeps it (the DynamoDB item `<bucket>/<stateKey>`, the S3 object
//! `<stateKey>.tflock`), reports it in `status.lock`, publishes `StaleLock` once per lock
//! ID past `spec.locking.staleAfter`, and removes a lock named by the
//! `tfstate.dev/force-unlock` annotation, conditionally. Workspace locks
//! (`<workspaceKeyPrefix>/<workspace>/<stateKey>`) are not read: listing them is unbounded.
//!
//! `info` and `rules` are pure; `pass` makes the AWS calls.

pub mod info;
pub mod pass;
pub mod rules;

pub use info::{LockInfo, LockInfoError, parse_lock_info};
pub use pass::{LockPass, LockTargets, check_locks, clear_stale_digests};
pub use rules::{
    ReadLock, UnlockPlan, check_migration, is_stale, lock_status, parse_stale_after, plan_unlock, previous_mode,
    stale_event_due,
};

/// The annotation that asks for a lock to be removed; its value is the lock ID.
pub const FORCE_UNLOCK_ANNOTATION: &str = "tfstate.dev/force-unlock";

#[cfg(test)]
mod tests;
