//! Locks you can see and safely break: each pass reads the default workspace's Terraform
//! lock where the lock mode keeps it (the DynamoDB item `<bucket>/<stateKey>`, the S3 object
//! `<stateKey>.tflock`), reports it in `status.lock`, publishes `StaleLock` once per lock
//! ID past `spec.locking.staleAfter`, and removes a lock named by the
//! `tfstate.dev/force-unlock` annotation, conditionally; with
//! `tfstate.dev/force-unlock-workspace` naming a workspace, that workspace's lock
//! (`<workspaceKeyPrefix>/<workspace>/<stateKey>`) instead. Workspace locks are read only for
//! such a request, never in every pass: listing every workspace is unbounded.
//!
//! A lock-mode change opens a roll-out window (`rollout`) of `staleAfter`.
//!
//! `info`, `rules` and `rollout` are pure; `pass` makes the AWS calls.

pub mod info;
pub mod pass;
pub mod rollout;
pub mod rules;

pub use info::{LockInfo, LockInfoError, parse_lock_info};
pub use pass::{LockPass, LockTargets, check_locks, clear_stale_digests};
pub use rollout::{Rollout, check_rollout, granted_mode, open_rollout, record_change, until_closed, window_mode};
pub use rules::{
    ReadLock, UnlockPlan, check_migration, is_stale, lock_status, parse_stale_after, plan_unlock, previous_mode,
    stale_event_due,
};

/// The annotation that asks for a lock to be removed; its value is the lock ID.
pub const FORCE_UNLOCK_ANNOTATION: &str = "tfstate.dev/force-unlock";

/// With [`FORCE_UNLOCK_ANNOTATION`]: the workspace whose lock it is (its lock lives at
/// `<workspaceKeyPrefix>/<workspace>/<stateKey>`); without it, the default workspace's.
pub const FORCE_UNLOCK_WORKSPACE_ANNOTATION: &str = "tfstate.dev/force-unlock-workspace";

#[cfg(test)]
mod tests;
