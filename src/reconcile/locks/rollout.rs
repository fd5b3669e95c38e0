//! Pure: the roll-out window of a lock-mode change. Runners read the published configuration
//! when they start, so a run that started before a change still locks the old way until it
//! ends. `spec.locking.staleAfter` is how long a run may hold a lock before it counts as
//! abandoned: for that long after a change was published, runners of both configurations
//! may be running. Until then the runner role keeps the grants of both modes (a run must
//! not lose the right to release its lock mid-run) and a next change is judged against both
//! (`DynamoDB -> Both -> Lockfile` in one minute would let a DynamoDB-only run and a
//! lock-file-only run overlap). No client, no clock (the time comes in as a value).

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::api::{LockMode, LockModeChange};

/// A lock-mode change whose window is still open: runners may still use `from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollout {
    /// The mode of the configuration published before the change.
    pub from: LockMode,
    /// When the change was published (as recorded).
    pub at: String,
    /// When the window closes: `at` plus `staleAfter`.
    pub until: Timestamp,
}

/// The window of `change` if it is still open at `now`: until the later of the close
/// recorded with the change and `at` plus today's `stale_after`. A change whose time cannot
/// be read (status is written by the operator only, so this means tampering or a bug) opens
/// none: the behaviour before windows existed, rather than a window that never closes.
pub fn open_rollout(change: Option<&LockModeChange>, stale_after: Duration, now: Timestamp) -> Option<Rollout> {
    let change = change?;
    let at: Timestamp = change.at.parse().ok()?;
    let now_rule = at.checked_add(SignedDuration::try_from(stale_after).ok()?).ok()?;
    let until = change.until.parse::<Timestamp>().map_or(now_rule, |recorded| recorded.max(now_rule));
    (now < until).then(|| Rollout { from: change.from, at: change.at.clone(), until })
}

/// The mode the runner role was granted while the window of `change` was open: what a
/// policy narrowed at its close looked like (so that the narrowing is an update, not drift).
pub fn window_mode(next: LockMode, runners_use: Option<LockMode>, change: Option<&LockModeChange>) -> LockMode {
    [runners_use, change.map(|c| c.from)].into_iter().flatten().fold(next, LockMode::union)
}

/// Whether runners on `a` and runners on `b` would take no lock in common.
fn exclusive(a: LockMode, b: LockMode) -> bool {
    !(a.uses_table() && b.uses_table() || a.uses_lockfile() && b.uses_lockfile())
}

/// Whether `next` may be published while `rollout` is open: not when runners still on
/// `rollout.from` would not exclude runners on `next`. The refusal says when it becomes
/// possible; the operator then publishes `next` by itself.
pub fn check_rollout(rollout: Option<&Rollout>, next: LockMode) -> Result<(), String> {
    let Some(r) = rollout.filter(|r| exclusive(r.from, next)) else { return Ok(()) };
    Err(format!(
        "spec.locking.mode: {next:?} is refused until {until}: the {from:?} configuration was replaced only at {at}, \
         and runs that started before may still lock the {from:?} way until spec.locking.staleAfter has passed; \
         they and runs on {next:?} would not exclude each other. Nothing was changed in AWS; {next:?} is applied \
         by itself at {until} (or set {from:?} or Both again).",
        from = r.from,
        at = r.at,
        until = r.until,
    ))
}

/// The lock mode the runner role is granted: `next` (the mode this pass publishes), what
/// runners use now (`status.lockMode`, still the old mode in the pass that changes it) and,
/// while a window is open, the mode before the last change.
pub fn granted_mode(next: LockMode, runners_use: Option<LockMode>, rollout: Option<&Rollout>) -> LockMode {
    [runners_use, rollout.map(|r| r.from)].into_iter().flatten().fold(next, LockMode::union)
}

/// `status.lockModeChange` after `published` was published at `now`: a new change when the
/// configuration runners had (`before`) was of another mode, its window `stale_after` long,
/// else the last one, kept.
pub fn record_change(
    before: Option<LockMode>,
    published: LockMode,
    last: Option<&LockModeChange>,
    stale_after: Duration,
    now: Timestamp,
) -> Option<LockModeChange> {
    match before {
        Some(from) if from != published => {
            let until = SignedDuration::try_from(stale_after).ok().and_then(|d| now.checked_add(d).ok());
            let until = until.unwrap_or(Timestamp::MAX);
            Some(LockModeChange { from, at: now.to_string(), until: until.to_string() })
        }
        _ => last.cloned(),
    }
}

/// How long until `rollout` closes, from `now` (zero when it has).
pub fn until_closed(rollout: &Rollout, now: Timestamp) -> Duration {
    let secs = rollout.until.as_second().saturating_sub(now.as_second());
    // A second more: the pass then finds the window closed, not just closing.
    Duration::from_secs(u64::try_from(secs).unwrap_or(0) + 1)
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
