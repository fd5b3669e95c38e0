use std::time::Duration;

use kube::runtime::events::EventType;

use super::*;
use crate::api::Reason;

const W: Option<EventType> = Some(EventType::Warning);

#[test]
fn every_outcome_maps_to_one_decision() {
    use FailureClass as F;
    use Outcome as O;
    use Requeue as R;
    let table: Vec<(Outcome, Reason, Option<EventType>, Requeue, bool)> = vec![
        (O::Converged, Reason::Converged, None, R::Resync, true),
        (O::Changed, Reason::Converged, None, R::Verify, true),
        (O::InProgress, Reason::Creating, None, R::Verify, true),
        // A Conflict is re-checked at the resync interval, never left waiting for an edit.
        (O::Blocked(Reason::Conflict), Reason::Conflict, None, R::Resync, true),
        (O::Blocked(Reason::DependencyNotReady), Reason::DependencyNotReady, None, R::Resync, true),
        (O::Invalid, Reason::InvalidSpec, W, R::AwaitChange, true),
        // Bounded by the window's close in the driver.
        (O::AwaitingRollout, Reason::LockModeRollout, Some(EventType::Normal), R::AwaitChange, true),
        (O::Refused, Reason::PolicyViolation, W, R::Resync, true),
        (O::Failed(Reason::AwsError, F::Transient), Reason::AwsError, W, R::Backoff(Backoff::TRANSIENT), false),
        (
            O::Failed(Reason::AccessDenied, F::AccessDenied),
            Reason::AccessDenied,
            W,
            R::Backoff(Backoff::ACCESS_DENIED),
            false,
        ),
        (
            O::Failed(Reason::InvalidSpec, F::Deterministic),
            Reason::InvalidSpec,
            W,
            R::Backoff(Backoff::DETERMINISTIC),
            false,
        ),
        (
            O::Failed(Reason::DeletionBlocked, F::Waiting),
            Reason::DeletionBlocked,
            W,
            R::Backoff(Backoff::WAITING),
            true,
        ),
    ];
    for (outcome, reason, event, requeue, settles) in table {
        let d = decide(outcome);
        assert_eq!(
            (d.reason, d.event, d.requeue, d.settles_generation),
            (reason, event, requeue, settles),
            "{outcome:?}"
        );
    }
}

#[test]
fn deterministic_errors_back_off_far_slower_than_transient_ones() {
    for n in 1..10 {
        let slow = backoff_delay(Backoff::DETERMINISTIC, n, 0.0);
        let fast = backoff_delay(Backoff::TRANSIENT, n, 0.999);
        assert!(slow >= fast, "failure {n}: deterministic {slow:?} < transient {fast:?}");
    }
    assert!(backoff_delay(Backoff::DETERMINISTIC, 1, 0.0) >= Duration::from_secs(30), "no hot retry");
}

#[test]
fn backoff_doubles_is_capped_and_jittered_within_its_upper_half() {
    let p = Backoff::TRANSIENT;
    assert_eq!(backoff_delay(p, 1, 0.0), Duration::from_millis(2500));
    assert_eq!(backoff_delay(p, 1, 0.999_999), Duration::from_millis(5000) - Duration::from_nanos(2500));
    assert_eq!(backoff_delay(p, 2, 0.0), Duration::from_secs(5));
    assert_eq!(backoff_delay(p, 3, 0.5), Duration::from_secs(15));
    // Capped, however many failures (no overflow either).
    for n in [7, 10, 40, u32::MAX] {
        let d = backoff_delay(p, n, 0.999);
        assert!(d <= p.cap && d >= p.cap / 2, "failure {n}: {d:?}");
    }
    // Out-of-range draws cannot escape the window.
    assert_eq!(backoff_delay(p, 1, -3.0), Duration::from_millis(2500));
    assert_eq!(backoff_delay(p, 1, 7.0), Duration::from_secs(5));
}

#[test]
fn jitter_spreads_objects_that_failed_together() {
    let delays: std::collections::BTreeSet<Duration> =
        (0..20).map(|i| backoff_delay(Backoff::TRANSIENT, 3, f64::from(i) / 20.0)).collect();
    assert_eq!(delays.len(), 20);
}

#[test]
fn resync_waits_between_half_and_one_and_a_half_intervals() {
    let interval = Duration::from_secs(600);
    for slot in [0.0, 0.001, 0.5, 0.999, -1.0, 2.0] {
        for now in [0u64, 1, 299_999, 300_000, 599_999, 1_764_590_400_123] {
            let d = resync_delay(slot, interval, Duration::from_millis(now));
            assert!(d >= interval / 2 && d < interval * 3 / 2, "{slot} at {now}: {d:?}");
        }
    }
}

#[test]
fn an_object_resyncs_once_per_interval_at_its_own_slot() {
    let interval = Duration::from_secs(60);
    let mut now = Duration::from_millis(1_764_590_400_000);
    now += resync_delay(0.3, interval, now);
    let slot = now.as_millis() % interval.as_millis();
    assert_eq!(slot, 18_000);
    for _ in 0..5 {
        // The pass itself takes a little time.
        now += Duration::from_millis(250);
        let d = resync_delay(0.3, interval, now);
        now += d;
        assert_eq!(now.as_millis() % interval.as_millis(), slot, "slot is stable");
        assert_eq!(d, interval - Duration::from_millis(250));
    }
}

#[test]
fn ranked_slots_spread_objects_evenly() {
    assert_eq!(resync_slot(0, 0), 0.0);
    assert_eq!(resync_slot(5, 3), 2.0 / 3.0, "a stale rank stays in range");
    // 1,000 objects created in the same instant: their resyncs land evenly, every second of
    // a 100 s interval holding exactly ten.
    let interval = Duration::from_secs(100);
    let now = Duration::from_secs(1_764_590_400);
    let mut seconds = [0u32; 100];
    for rank in 0..1000 {
        let at = (now + resync_delay(resync_slot(rank, 1000), interval, now)).as_millis() % interval.as_millis();
        seconds[usize::try_from(at / 1000).unwrap()] += 1;
    }
    assert!(seconds.iter().all(|&n| n == 10), "uneven: {seconds:?}");
}

#[test]
fn a_part_change_is_named_by_its_history() {
    use PartReport as P;
    let h = |settled: Option<i64>, generation: i64, before: Option<(bool, Reason)>| PartHistory {
        settled_generation: settled,
        generation: Some(generation),
        before,
    };
    let converged = Some((true, Reason::Converged));
    let failing = Some((false, Reason::AwsError));
    let table: Vec<(&str, bool, bool, PartHistory, PartReport)> = vec![
        ("nothing to do", false, false, h(Some(2), 2, converged), P::Converged),
        ("nothing to do, after a failure", false, false, h(Some(1), 2, failing), P::Converged),
        ("resource was missing", true, true, h(Some(2), 2, converged), P::Created),
        ("first creation finished after a failure", true, false, h(None, 1, failing), P::Created),
        ("spec changed", true, false, h(Some(1), 2, converged), P::Updated),
        // The case the issue names: a spec change whose first pass failed on the way.
        ("spec change finished after a failure", true, false, h(Some(1), 2, failing), P::Updated),
        ("matched, then changed", true, false, h(Some(2), 2, converged), P::DriftRepaired),
        ("repair finished after a failure", true, false, h(Some(2), 2, failing), P::Updated),
        (
            "stale read after our creation",
            true,
            false,
            h(Some(2), 2, Some((true, Reason::Created))),
            P::StillVerifying(Reason::Created),
        ),
        (
            "stale read after our update",
            true,
            false,
            h(Some(2), 2, Some((true, Reason::Updated))),
            P::StillVerifying(Reason::Updated),
        ),
        (
            "stale read after our repair",
            true,
            false,
            h(Some(2), 2, Some((true, Reason::DriftRepaired))),
            P::StillVerifying(Reason::DriftRepaired),
        ),
        // A new generation is an update even right after a write of the previous one.
        ("spec changed right after a write", true, false, h(Some(1), 2, Some((true, Reason::Created))), P::Updated),
        ("part never seen before", true, false, h(Some(2), 2, None), P::Updated),
    ];
    for (what, changed, created, history, expected) in table {
        assert_eq!(part_report(changed, created, history), expected, "{what}");
    }
}
