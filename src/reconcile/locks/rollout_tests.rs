use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::api::LockMode::{Both, DynamoDB, Lockfile};

fn t(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

/// A change at `at` whose window was recorded an hour long.
fn change(from: LockMode, at: &str) -> LockModeChange {
    let until = (t(at) + HOUR).to_string();
    LockModeChange { from, at: at.into(), until }
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn union_takes_every_lock_of_both_modes() {
    for (a, b, union) in [
        (DynamoDB, DynamoDB, DynamoDB),
        (Lockfile, Lockfile, Lockfile),
        (DynamoDB, Lockfile, Both),
        (Lockfile, DynamoDB, Both),
        (Both, DynamoDB, Both),
        (Lockfile, Both, Both),
    ] {
        assert_eq!(a.union(b), union, "{a:?} + {b:?}");
    }
}

#[test]
fn a_window_is_open_for_stale_after_from_its_publication() {
    let c = change(DynamoDB, "2026-12-01T10:00:00Z");
    let open = open_rollout(Some(&c), HOUR, t("2026-12-01T10:59:59Z")).expect("open");
    assert_eq!((open.from, open.until), (DynamoDB, t("2026-12-01T11:00:00Z")));
    assert_eq!(open_rollout(Some(&c), HOUR, t("2026-12-01T11:00:00Z")), None, "closed at at + staleAfter");
    assert_eq!(open_rollout(None, HOUR, t("2026-12-01T10:00:00Z")), None);
    // An unreadable time opens no window (rather than one that never closes).
    let garbage = LockModeChange { from: DynamoDB, at: "yesterday".into(), until: "tomorrow".into() };
    assert_eq!(open_rollout(Some(&garbage), HOUR, t("2026-12-01T10:00:00Z")), None);
}

/// Abuse of the window: a staleAfter shortened after the change does not close it early
/// (runs that started before were promised the old length); a longer one extends it.
#[test]
fn a_shorter_stale_after_set_later_does_not_close_the_window_early() {
    let c = change(DynamoDB, "2026-12-01T10:00:00Z");
    let second = Duration::from_secs(1);
    let open = open_rollout(Some(&c), second, t("2026-12-01T10:30:00Z")).expect("still open");
    assert_eq!(open.until, t("2026-12-01T11:00:00Z"));
    let longer = open_rollout(Some(&c), 2 * HOUR, t("2026-12-01T11:30:00Z")).expect("extended");
    assert_eq!(longer.until, t("2026-12-01T12:00:00Z"));
    // A recorded close that cannot be read falls back to today's staleAfter.
    let unreadable = LockModeChange { until: "garbage".into(), ..c };
    assert_eq!(open_rollout(Some(&unreadable), second, t("2026-12-01T10:00:02Z")), None);
}

#[test]
fn during_a_window_a_change_exclusive_with_the_old_mode_is_refused_and_says_until_when() {
    let c = change(DynamoDB, "2026-12-01T10:00:00Z");
    let open = open_rollout(Some(&c), HOUR, t("2026-12-01T10:30:00Z"));
    let message = check_rollout(open.as_ref(), Lockfile).expect_err("DynamoDB runs may still be going");
    assert!(message.contains("until 2026-12-01T11:00:00Z") && message.contains("Nothing was changed"), "{message}");
    assert!(message.contains("by itself"), "{message}");
    // What shares a lock with the old mode is fine.
    assert_eq!(check_rollout(open.as_ref(), Both), Ok(()));
    assert_eq!(check_rollout(open.as_ref(), DynamoDB), Ok(()));
    // From Lockfile the other way round.
    let c = change(Lockfile, "2026-12-01T10:00:00Z");
    let open = open_rollout(Some(&c), HOUR, t("2026-12-01T10:30:00Z"));
    assert!(check_rollout(open.as_ref(), DynamoDB).is_err());
    assert_eq!(check_rollout(open.as_ref(), Both), Ok(()));
    // Once closed, anything check_migration allows.
    let closed = open_rollout(Some(&c), HOUR, t("2026-12-01T11:00:01Z"));
    assert_eq!(check_rollout(closed.as_ref(), DynamoDB), Ok(()));
}

#[test]
fn the_role_is_granted_every_mode_a_runner_may_still_use() {
    let open = |from| Rollout { from, at: "2026-12-01T10:00:00Z".into(), until: t("2026-12-01T11:00:00Z") };
    // The pass that changes the mode: runners still have the old configuration.
    assert_eq!(granted_mode(Lockfile, Some(Both), None), Both);
    assert_eq!(granted_mode(DynamoDB, Some(Both), None), Both);
    // Published, window open: the old mode is still granted.
    assert_eq!(granted_mode(Lockfile, Some(Lockfile), Some(&open(Both))), Both);
    assert_eq!(granted_mode(DynamoDB, Some(DynamoDB), Some(&open(Both))), Both);
    // Widening needs no window, and after it only the mode itself is granted.
    assert_eq!(granted_mode(Both, Some(DynamoDB), None), Both);
    assert_eq!(granted_mode(Lockfile, Some(Lockfile), None), Lockfile);
    assert_eq!(granted_mode(DynamoDB, None, None), DynamoDB);
}

/// Every change the checks allow inside a window keeps the runners of the window's old mode
/// served by the new window's grants: two windows never need to be remembered.
#[test]
fn a_change_allowed_inside_a_window_still_grants_the_mode_before_it() {
    let modes = [DynamoDB, Lockfile, Both];
    for a in modes {
        for b in modes.into_iter().filter(|&b| b != a && crate::reconcile::locks::check_migration(Some(a), b).is_ok()) {
            let first = Rollout { from: a, at: "2026-12-01T10:00:00Z".into(), until: t("2026-12-01T11:00:00Z") };
            for c in modes.into_iter().filter(|&c| c != b) {
                if crate::reconcile::locks::check_migration(Some(b), c).is_err()
                    || check_rollout(Some(&first), c).is_err()
                {
                    continue;
                }
                let second = Rollout { from: b, at: "2026-12-01T10:30:00Z".into(), until: t("2026-12-01T11:30:00Z") };
                let granted = granted_mode(c, Some(c), Some(&second));
                assert_eq!(granted.union(a), granted, "{a:?} -> {b:?} -> {c:?}: {a:?} runs lose grants");
            }
        }
    }
}

#[test]
fn a_change_is_recorded_when_the_published_mode_differs_and_kept_otherwise() {
    let now = t("2026-12-01T12:00:00Z");
    let last = change(DynamoDB, "2026-12-01T10:00:00Z");
    assert_eq!(
        record_change(Some(Both), Lockfile, Some(&last), HOUR, now),
        Some(change(Both, "2026-12-01T12:00:00Z")),
        "recorded with its window's close"
    );
    assert_eq!(record_change(Some(Lockfile), Lockfile, Some(&last), HOUR, now), Some(last.clone()));
    // The first publication is no change.
    assert_eq!(record_change(None, Lockfile, None, HOUR, now), None);
}

#[test]
fn the_window_mode_is_what_the_open_window_granted() {
    let c = change(Both, "2026-12-01T10:00:00Z");
    assert_eq!(window_mode(Lockfile, Some(Lockfile), Some(&c)), Both);
    assert_eq!(window_mode(DynamoDB, Some(DynamoDB), Some(&change(Both, "2026-12-01T10:00:00Z"))), Both);
    assert_eq!(window_mode(Lockfile, Some(Lockfile), None), Lockfile);
}

#[test]
fn the_next_pass_comes_just_after_the_window_closes() {
    let r = Rollout { from: Both, at: "2026-12-01T10:00:00Z".into(), until: t("2026-12-01T11:00:00Z") };
    assert_eq!(until_closed(&r, t("2026-12-01T10:59:00Z")), Duration::from_secs(61));
    assert_eq!(until_closed(&r, t("2026-12-01T11:05:00Z")), Duration::from_secs(1));
}
