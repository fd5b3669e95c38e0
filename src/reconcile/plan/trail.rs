//! The audit trail's plan.

use crate::api::Reason;
use crate::aws::Tags;
use crate::aws::cloudtrail::EventSelector;
use crate::reconcile::desired::{DesiredTrail, Owner};
use crate::reconcile::observe::ObservedTrail;

use super::{Blocked, PartPlan, check_ownership, comparable_tags};

/// A write to the audit trail, in the order they are applied.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TrailChange {
    /// CreateTrail (log bucket and prefix, single-region, no global service events, log
    /// file validation on, tags in the request).
    Create,
    /// UpdateTrail: the log bucket or prefix, the region scope, global service events or
    /// log file validation differ.
    Update,
    /// PutEventSelectors: exactly the state bucket's object data events (replacing basic
    /// selectors, management events included).
    PutSelectors,
    /// Make the tags exactly the desired ones.
    SyncTags,
    /// StartLogging (a new trail does not log until started).
    StartLogging,
    /// StopLogging: the state bucket is not this backend's (any more), so its trail must not
    /// record another owner's objects.
    StopLogging,
}

/// Plans the trail, given whether the state bucket is this backend's in this pass: a trail
/// records only a bucket of its own backend (it would otherwise show who reads and writes
/// another owner's objects), so with `bucket_owned` false nothing is created, and a trail
/// of ours that is logging is stopped.
pub fn plan_trail(
    desired: &DesiredTrail,
    observed: Option<&ObservedTrail>,
    tags: &Tags,
    owner: &Owner,
    adopt: bool,
    bucket_owned: bool,
) -> PartPlan<TrailChange> {
    let what = format!("CloudTrail trail {}", desired.config.name);
    let Some(observed) = observed else {
        if !bucket_owned {
            return Err(waiting_for_bucket(&what));
        }
        return Ok(vec![TrailChange::Create, TrailChange::PutSelectors, TrailChange::StartLogging]);
    };
    check_ownership(&what, &observed.tags, owner, adopt)?;
    if observed.info.arn != desired.arn || observed.info.organization {
        return Err(Blocked {
            reason: Reason::Conflict,
            message: format!(
                "{what} is {}{}, not a trail of this backend's region ({}): it is left untouched: choose another \
                 trail name",
                observed.info.arn,
                if observed.info.organization { ", an organization trail" } else { "" },
                desired.arn
            ),
        });
    }
    let Some(settings) = &observed.settings else {
        // Not read: only for trails that are neither ours nor adoptable, refused above.
        return Err(waiting_for_bucket(&what));
    };
    if !bucket_owned {
        return match settings.is_logging {
            true => Ok(vec![TrailChange::StopLogging]),
            false => Err(waiting_for_bucket(&what)),
        };
    }
    let mut changes = Vec::new();
    if observed.info.config != desired.config {
        changes.push(TrailChange::Update);
    }
    if !selectors_match(&settings.advanced_selectors, settings.basic_selectors, &desired.selectors) {
        changes.push(TrailChange::PutSelectors);
    }
    if comparable_tags(&observed.tags) != *tags {
        changes.push(TrailChange::SyncTags);
    }
    if !settings.is_logging {
        changes.push(TrailChange::StartLogging);
    }
    Ok(changes)
}

/// Whether a trail's selectors are exactly the desired advanced ones (compared normalized:
/// the order of fields and values does not matter) and it has no basic selectors.
pub fn selectors_match(observed: &[EventSelector], basic: usize, desired: &[EventSelector]) -> bool {
    let sorted = |s: &[EventSelector]| {
        let mut v: Vec<EventSelector> = s.iter().cloned().map(EventSelector::normalized).collect();
        v.sort();
        v
    };
    basic == 0 && sorted(observed) == sorted(desired)
}

/// Plans a trail the spec no longer names (`spec.audit` removed, or another trail name):
/// deleted when it is ours, left alone otherwise (the message says so).
pub fn plan_stale_trail(observed: Option<&ObservedTrail>, owner: &Owner) -> bool {
    observed.is_some_and(|t| owner.owns(&t.tags))
}

fn waiting_for_bucket(what: &str) -> Blocked {
    Blocked {
        reason: Reason::DependencyNotReady,
        message: format!(
            "{what} waits for the state bucket (see BucketReady): a trail records only the objects of a bucket this \
             backend owns"
        ),
    }
}

#[cfg(test)]
#[path = "trail_tests.rs"]
mod tests;
