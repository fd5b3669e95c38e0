//! Pure: what the locks read in a pass mean. `status.lock`, whether a lock is stale and its
//! `StaleLock` Event due, what a force-unlock request may delete, and which lock-mode
//! changes are safe. No client, no clock (the time comes in as a value).

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::api::{LockMode, LockSource, LockStatus, Reason};

use super::info::{LockInfo, shown};

/// One lock source as read in this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadLock {
    /// No lock item / lock file.
    Free,
    /// A lock, with its info.
    Held(LockInfo),
    /// Something is there, but not a readable lock info (why).
    Unreadable(String),
    /// The read failed: whether a lock is held is unknown. `transient`: throttled, a 5xx, a
    /// reset or a timeout, which says nothing about the lock and is simply read again.
    Failed {
        /// The error, for messages.
        error: String,
        /// Whether the failure was transient.
        transient: bool,
    },
}

/// The name of a source in messages.
pub fn source_name(source: LockSource) -> &'static str {
    match source {
        LockSource::DynamoDB => "DynamoDB lock item",
        LockSource::Lockfile => "lock file",
        LockSource::Both => "DynamoDB lock item and lock file",
    }
}

/// `status.lock` from the sources read (DynamoDB first), remembering from `previous`
/// whether the `StaleLock` Event was published for the same lock ID.
///
/// A read that failed only for now keeps `previous` as it is: the next pass reads again, and
/// writing "could not be read" only to take it back one pass later would cost two status
/// writes per hiccup and say nothing about the lock. A lasting failure (AccessDenied) is said.
pub fn lock_status(reads: &[(LockSource, &ReadLock)], previous: Option<&LockStatus>) -> LockStatus {
    if let Some(previous) = previous
        && reads.iter().any(|(_, r)| matches!(r, ReadLock::Failed { transient: true, .. }))
    {
        return previous.clone();
    }
    let held = |r: &ReadLock| matches!(r, ReadLock::Held(_) | ReadLock::Unreadable(_));
    let mut notes = Vec::new();
    let mut status = LockStatus::default();
    let first = reads.iter().find(|(_, r)| held(r));
    match first {
        Some((source, ReadLock::Held(info))) => {
            let same_elsewhere =
                reads.iter().any(|(s, r)| s != source && matches!(r, ReadLock::Held(other) if other.id == info.id));
            status = LockStatus {
                held: true,
                id: info.id.as_deref().map(shown),
                who: info.who.as_deref().map(shown),
                operation: info.operation.as_deref().map(shown),
                created: info.created.as_deref().map(shown),
                source: Some(if same_elsewhere { LockSource::Both } else { *source }),
                ..Default::default()
            };
            if info.id.is_none() {
                notes.push(format!("the {} has no lock ID", source_name(*source)));
            }
        }
        Some((source, ReadLock::Unreadable(why))) => {
            status = LockStatus { held: true, source: Some(*source), ..Default::default() };
            notes.push(format!("the {} is unreadable: {why}", source_name(*source)));
        }
        _ => {}
    }
    for (source, read) in reads {
        if Some(*source) == first.map(|(s, _)| *s) {
            continue;
        }
        match read {
            ReadLock::Held(other) if status.source != Some(LockSource::Both) => notes.push(format!(
                "the {} holds another lock, ID {:?}",
                source_name(*source),
                other.id.as_deref().map(shown).unwrap_or_default()
            )),
            ReadLock::Unreadable(why) => notes.push(format!("the {} is unreadable: {why}", source_name(*source))),
            ReadLock::Failed { error, .. } => {
                notes.push(format!("the {} could not be read: {error}", source_name(*source)))
            }
            _ => {}
        }
    }
    status.message = (!notes.is_empty()).then(|| shown_long(&notes.join("; ")));
    status.stale_reported = previous.is_some_and(|p| p.held && p.stale_reported && p.id == status.id && status.held);
    status
}

/// Whether a lock created at `created` is older than `stale_after` at `now`. A lock whose
/// creation time is unknown is never judged stale.
pub fn is_stale(created: Option<Timestamp>, now: Timestamp, stale_after: Duration) -> bool {
    let Some(created) = created else { return false };
    let age = now.as_second().saturating_sub(created.as_second());
    age >= 0 && age as u64 >= stale_after.as_secs()
}

/// Whether the `StaleLock` Event is due now: the lock is held, has an ID, is stale, and the
/// Event was not published for this ID yet.
pub fn stale_event_due(status: &LockStatus, stale: bool) -> bool {
    status.held && status.id.is_some() && stale && !status.stale_reported
}

/// What a force-unlock request leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnlockPlan {
    /// Delete the lock in these sources (each conditionally, exactly as read).
    Delete(Vec<LockSource>),
    /// Change nothing in AWS and drop the request (the annotation goes): reason and why.
    Refuse(Reason, String),
    /// Change nothing and keep the request: a lock could not be read (retried next pass).
    Wait(String),
}

/// What the request to remove the lock with ID `requested` may do, given the sources read.
/// Only a source whose lock carries exactly that ID is touched.
pub fn plan_unlock(requested: &str, reads: &[(LockSource, &ReadLock)]) -> UnlockPlan {
    let asked = shown(requested);
    if requested.trim().is_empty() {
        return UnlockPlan::Refuse(
            Reason::ForceUnlockRefused,
            "the tfstate.dev/force-unlock annotation is empty: set it to the lock ID shown in status.lock.id".into(),
        );
    }
    if let Some((source, ReadLock::Failed { error, .. })) =
        reads.iter().find(|(_, r)| matches!(r, ReadLock::Failed { .. }))
    {
        return UnlockPlan::Wait(shown_long(&format!(
            "force-unlock of {asked:?} waits: the {} could not be read ({error}); nothing changed, retried at the \
             next pass",
            source_name(*source)
        )));
    }
    let matching: Vec<LockSource> = reads
        .iter()
        .filter(|(_, r)| matches!(r, ReadLock::Held(info) if info.id.as_deref() == Some(requested)))
        .map(|(s, _)| *s)
        .collect();
    if !matching.is_empty() {
        return UnlockPlan::Delete(matching);
    }
    let held: Vec<String> = reads
        .iter()
        .filter_map(|(s, r)| match r {
            ReadLock::Held(info) => Some(format!(
                "the {} holds lock ID {:?}",
                source_name(*s),
                info.id.as_deref().map(shown).unwrap_or_default()
            )),
            ReadLock::Unreadable(why) => {
                Some(format!("the {} is unreadable ({why}) and can only be removed by hand", source_name(*s)))
            }
            _ => None,
        })
        .collect();
    if held.is_empty() {
        return UnlockPlan::Refuse(
            Reason::NoLockHeld,
            format!(
                "force-unlock of {asked:?} refused: no lock is held; nothing changed and the annotation was removed"
            ),
        );
    }
    UnlockPlan::Refuse(
        Reason::LockIdMismatch,
        shown_long(&format!(
            "force-unlock of {asked:?} refused: {}; nothing changed and the annotation was removed (annotate again with the ID in status.lock.id)",
            held.join(", ")
        )),
    )
}

/// Terraform's default `workspace_key_prefix`.
pub const DEFAULT_WORKSPACE_KEY_PREFIX: &str = "env:";

/// The state key of workspace `workspace` (`<workspaceKeyPrefix>/<workspace>/<stateKey>`, as
/// Terraform's S3 backend keeps it), for a force-unlock of that workspace's lock. The name must
/// be one Terraform accepts and that stays inside the prefix: what URL path escaping leaves
/// unchanged (no `/`, so no path of another workspace or backend), not `.` or `..`, and not
/// `default` (whose lock
/// is at the state key itself and is unlocked without naming a workspace).
///
/// # Errors
///
/// What is wrong with the name, for the refusal's message.
pub fn workspace_state_key(prefix: Option<&str>, workspace: &str, state_key: &str) -> Result<String, String> {
    // What Go's url.PathEscape leaves as it is (Terraform's test of a workspace name): the
    // unreserved characters and `$&+:=@`; never `/`.
    let url_safe = workspace.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~$&+:=@".contains(&b));
    if workspace.is_empty() || workspace.len() > 90 || !url_safe || workspace == "." || workspace == ".." {
        return Err(format!(
            "the tfstate.dev/force-unlock-workspace annotation {:?} is not a Terraform workspace name (1 to 90 \
             letters, digits and - . _ ~ $ & + : = @; no '/')",
            shown(workspace)
        ));
    }
    if workspace == "default" {
        return Err("the default workspace's lock is unlocked without tfstate.dev/force-unlock-workspace: remove it \
                    and annotate with tfstate.dev/force-unlock only"
            .into());
    }
    Ok(format!("{}/{workspace}/{state_key}", prefix.unwrap_or(DEFAULT_WORKSPACE_KEY_PREFIX)))
}

/// Whether changing the lock mode from `previous` (the mode runners use now) to `next` is
/// safe. `DynamoDB` and `Lockfile` never follow each other directly: during the roll-out,
/// runners still on the old configuration and runners on the new one would lock different
/// things and not exclude each other, and (from `DynamoDB`) Terraform's digest item
/// `<bucket>/<key>-md5` in the table would go stale under runners that no longer update it.
pub fn check_migration(previous: Option<LockMode>, next: LockMode) -> Result<(), String> {
    match (previous, next) {
        (Some(LockMode::DynamoDB), LockMode::Lockfile) => Err(
            "spec.locking.mode: changing straight from DynamoDB to Lockfile is refused: runners still on the DynamoDB \
             configuration and runners on lock files would not exclude each other, and Terraform's digest item \
             (<bucket>/<key>-md5) in the table would go stale. Set mode Both first, let every runner pick up the \
             published configuration (both locks), then set Lockfile. Nothing was changed in AWS."
                .into(),
        ),
        (Some(LockMode::Lockfile), LockMode::DynamoDB) => Err(
            "spec.locking.mode: changing straight from Lockfile to DynamoDB is refused: runners still on lock files \
             and runners on the DynamoDB table would not exclude each other. Set mode Both first, let every runner \
             pick up the published configuration (both locks), then set DynamoDB. Nothing was changed in AWS."
                .into(),
        ),
        _ => Ok(()),
    }
}

/// The lock mode runners are known to use, from the status: `status.lockMode`, or for a
/// backend converged before it was recorded, `DynamoDB` when it has a lock table (the safe
/// guess: a straight change to `Lockfile` is then refused, and `Both` always works).
pub fn previous_mode(lock_mode: Option<LockMode>, lock_table_arn: Option<&str>) -> Option<LockMode> {
    lock_mode.or(lock_table_arn.map(|_| LockMode::DynamoDB))
}

/// Parses `spec.locking.staleAfter`: hours, minutes and seconds (`2h`, `1h30m`, `45s`),
/// from 1 second to 8760 hours.
pub fn parse_stale_after(text: &str) -> Result<Duration, String> {
    let valid = !text.is_empty()
        && text.split_inclusive(['h', 'm', 's']).all(|part| {
            let (digits, unit) = part.split_at(part.len() - 1);
            !digits.is_empty()
                && digits.len() <= 6
                && digits.bytes().all(|b| b.is_ascii_digit())
                && "hms".contains(unit)
        });
    let bad =
        || format!("{text:?} is not a duration of hours, minutes and seconds such as \"2h\", \"90m\" or \"1h30m\"");
    if !valid {
        return Err(bad());
    }
    let secs = text.split_inclusive(['h', 'm', 's']).try_fold(0u64, |total, part| {
        let (digits, unit) = part.split_at(part.len() - 1);
        let n: u64 = digits.parse().ok()?;
        let unit = match unit {
            "h" => 3600,
            "m" => 60,
            _ => 1,
        };
        total.checked_add(n.checked_mul(unit)?)
    });
    match secs {
        Some(s) if (1..=8760 * 3600).contains(&s) => Ok(Duration::from_secs(s)),
        Some(_) => Err(format!("{text:?} is out of range: between 1s and 8760h")),
        None => Err(bad()),
    }
}

/// A longer message (several parts) for conditions and status, bounded.
fn shown_long(text: &str) -> String {
    let clean: String = text.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    clean.chars().take(1024).collect()
}
