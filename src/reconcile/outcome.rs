//! Step 8, pure: what a pass's outcome means for the object — the condition reason it
//! reports, the Event it deserves, when it is looked at again, and whether it settles
//! `observedGeneration`. One table (see the tests), so that every path of the driver
//! (`backend.rs`, `cleanup.rs`, the controller's error policy) answers the same way.

use std::time::Duration;

use kube::runtime::events::EventType;

use crate::api::Reason;

/// How a failed pass is retried: decided by what failed, not by where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// Throttling, 5xx, resets, timeouts, a conflicting concurrent request, a resource AWS
    /// does not show yet: retry soon, backing off.
    Transient,
    /// AWS refused a permission. It may be IAM propagation or an SCP being rolled out, so it
    /// is re-checked, but more slowly than a transient error.
    AccessDenied,
    /// The same request would fail the same way (a validation error, a rendering error, a
    /// malformed input): reported, then retried rarely (a fix outside the object, such as a
    /// quota raised, may still heal it without an edit).
    Deterministic,
    /// Deletion waits for something only a person can do (state left in the bucket).
    Waiting,
}

/// What a pass ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything is as desired and nothing was written.
    Converged,
    /// This pass changed something in AWS or Kubernetes: look again shortly to verify it
    /// (and settle the status to `Converged`).
    Changed,
    /// AWS is still finishing something (a table becoming ACTIVE).
    InProgress,
    /// A part cannot converge until something outside the operator changes (a name taken,
    /// a dependency missing); ownership is re-read every pass, so it may heal by itself.
    Blocked(Reason),
    /// The spec is invalid: nothing was done in AWS, and only an edit can help.
    Invalid,
    /// A lock-mode change waits for the roll-out window of the last one: nothing was done in
    /// AWS, and it is applied by itself when the window closes (the caller bounds the wait).
    AwaitingRollout,
    /// The cluster policy refuses the spec: nothing was done in AWS; a changed policy (which
    /// is not watched per object) or an edit can help.
    Refused,
    /// The pass failed with this reason and class.
    Failed(Reason, FailureClass),
}

/// When to look at the object again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// After the verify delay (`--verify-delay`).
    Verify,
    /// At the object's next resync slot (see [`resync_delay`]).
    Resync,
    /// Only when the object changes.
    AwaitChange,
    /// After an exponential back-off with jitter, per object.
    Backoff(Backoff),
}

/// Exponential back-off: `first`, doubling per consecutive failure, at most `cap`; the
/// actual delay is drawn from its upper half (see [`backoff_delay`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub first: Duration,
    /// The longest delay.
    pub cap: Duration,
}

impl Backoff {
    /// Throttling and friends: retry soon.
    pub const TRANSIENT: Backoff = Backoff { first: Duration::from_secs(5), cap: Duration::from_secs(300) };
    /// Permissions: IAM propagation takes seconds, an SCP roll-out minutes.
    pub const ACCESS_DENIED: Backoff = Backoff { first: Duration::from_secs(10), cap: Duration::from_secs(300) };
    /// Deterministic errors: not hot-retried.
    pub const DETERMINISTIC: Backoff = Backoff { first: Duration::from_secs(60), cap: Duration::from_secs(1800) };
    /// Deletion waiting for the bucket to be emptied.
    pub const WAITING: Backoff = Backoff { first: Duration::from_secs(10), cap: Duration::from_secs(300) };
}

/// What the operator says and does about an outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The reason of the object's `Ready` condition when it is not the part's own (the
    /// parts' reasons are decided where they are observed).
    pub reason: Reason,
    /// The Event the pass itself deserves, if any (parts add their own for their changes).
    pub event: Option<EventType>,
    /// When to look again.
    pub requeue: Requeue,
    /// Whether `status.observedGeneration` becomes the object's generation: it means
    /// "converged, or reported, for this generation". A pass that failed on the way
    /// reported nothing final, so a spec change completed later is still an update.
    pub settles_generation: bool,
}

/// The one mapping from an outcome to a decision.
pub fn decide(outcome: Outcome) -> Decision {
    let d = |reason, event, requeue, settles_generation| Decision { reason, event, requeue, settles_generation };
    match outcome {
        Outcome::Converged => d(Reason::Converged, None, Requeue::Resync, true),
        Outcome::Changed => d(Reason::Converged, None, Requeue::Verify, true),
        Outcome::InProgress => d(Reason::Creating, None, Requeue::Verify, true),
        // Re-checked at the resync interval: a released name or a repaired tag heals
        // without an edit (and a lost one withdraws its grants).
        // The blocked part has published its own Warning, saying what to do.
        Outcome::Blocked(reason) => d(reason, None, Requeue::Resync, true),
        Outcome::Invalid => d(Reason::InvalidSpec, Some(EventType::Warning), Requeue::AwaitChange, true),
        // Nothing is wrong: the backend serves the previous configuration meanwhile.
        Outcome::AwaitingRollout => d(Reason::LockModeRollout, Some(EventType::Normal), Requeue::AwaitChange, true),
        Outcome::Refused => d(Reason::PolicyViolation, Some(EventType::Warning), Requeue::Resync, true),
        Outcome::Failed(reason, class) => {
            let backoff = match class {
                FailureClass::Transient => Backoff::TRANSIENT,
                FailureClass::AccessDenied => Backoff::ACCESS_DENIED,
                FailureClass::Deterministic => Backoff::DETERMINISTIC,
                FailureClass::Waiting => Backoff::WAITING,
            };
            // Deletion that waits has reported what it waits for: that is final for now.
            let settles = class == FailureClass::Waiting;
            d(reason, Some(EventType::Warning), Requeue::Backoff(backoff), settles)
        }
    }
}

/// What a part's previous status says, as far as naming its changes goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartHistory {
    /// `status.observedGeneration` the pass started from (`None`: nothing ever settled).
    pub settled_generation: Option<i64>,
    /// The object's generation now.
    pub generation: Option<i64>,
    /// The part's previous condition: whether it was True, and its reason.
    pub before: Option<(bool, Reason)>,
}

/// How a part that this pass converged is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartReport {
    /// Nothing needed changing.
    Converged,
    /// The resource was created (or its first creation finished).
    Created,
    /// The spec changed, or an earlier attempt at this generation did not finish.
    Updated,
    /// It matched this generation and then changed outside the operator.
    DriftRepaired,
    /// The pass right after the operator's own write read AWS before AWS showed it
    /// (eventual consistency): written again, harmlessly, and still reported as that earlier
    /// change — not drift, no new Event.
    StillVerifying(Reason),
}

/// Names the changes a pass made to a part: `changed` (anything written), `created` (the
/// resource did not exist), and the part's history.
pub fn part_report(changed: bool, created: bool, h: PartHistory) -> PartReport {
    const CHANGES: [Reason; 3] = [Reason::Created, Reason::Updated, Reason::DriftRepaired];
    let same_generation = h.settled_generation.is_some() && h.settled_generation == h.generation;
    match h.before {
        _ if !changed => PartReport::Converged,
        _ if created => PartReport::Created,
        Some((_, reason)) if same_generation && CHANGES.contains(&reason) => PartReport::StillVerifying(reason),
        _ if h.settled_generation.is_none() => PartReport::Created,
        _ if !same_generation => PartReport::Updated,
        Some((true, _)) => PartReport::DriftRepaired,
        _ => PartReport::Updated,
    }
}

/// The back-off after `failures` consecutive failures, given `unit` in `[0, 1)` (a random
/// draw): the exponential delay `first * 2^(failures-1)`, capped, then "equal jitter" — its
/// upper half plus a random part of it — so that objects that failed together (an AWS
/// outage) do not all come back in the same second.
pub fn backoff_delay(policy: Backoff, failures: u32, unit: f64) -> Duration {
    let exp = policy.first.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let full = exp.min(policy.cap);
    let unit = unit.clamp(0.0, 1.0);
    full / 2 + full.mul_f64(unit / 2.0)
}

/// An object's place in the resync interval, in `[0, 1)`: the objects, ranked by UID, are
/// spaced evenly over the interval. Evenly, not by a hash: hashed slots bunch like random
/// arrivals (a busiest second about twice the mean), ranked ones do not; an object added or
/// removed shifts the others' slots by a fraction of a slot.
pub fn resync_slot(rank: usize, count: usize) -> f64 {
    if count == 0 { 0.0 } else { rank.min(count - 1) as f64 / count as f64 }
}

/// The delay until an object's next resync, at its `slot` (see [`resync_slot`]): its next
/// slot that is at least half an interval away. So resyncs are spread over the interval
/// however many objects were created at the same moment, and in steady state each object is
/// looked at exactly once per interval (at most 1.5 intervals after a change).
pub fn resync_delay(slot: f64, interval: Duration, now_since_epoch: Duration) -> Duration {
    let period = interval.as_millis().max(1);
    let slot = (slot.clamp(0.0, 1.0) * period as f64).round() as u128 % period;
    let phase = now_since_epoch.as_millis() % period;
    let mut wait = (slot + period - phase) % period;
    if wait < period / 2 {
        wait += period;
    }
    Duration::from_millis(u64::try_from(wait).unwrap_or(u64::MAX))
}

#[cfg(test)]
#[path = "outcome_tests.rs"]
mod tests;
