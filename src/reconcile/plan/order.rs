//! The order in which a backend's names are claimed: role, KMS key, state bucket, lock
//! table (the key policy names the role; the default table name is the bucket's).
//!
//! A part that is not yet this object's (to be created, or an untagged one to be adopted)
//! is taken only once the part before it is ours. So two objects racing for the same names
//! cannot split them, each holding one and both stuck in `Conflict` for good: whichever
//! loses a name takes nothing after it. A part that is ours already is not held back: its
//! changes repair what is ours.

use crate::api::{ConditionType, Reason};

use super::{Blocked, PartPlan};

/// What the part before is to this object, as far as this pass knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Ours: observed with our owner tag, or created by this pass and its tags read back.
    Ours,
    /// Not known yet in this pass: its creation failed on the way (the pass is retried), or
    /// it was adopted by this pass and its new tags have not been read back.
    Pending,
    /// Not ours, or not usable: a Conflict, a creation another object won, a blocked part.
    NotOurs,
}

/// The part a part waits for.
#[derive(Clone, Copy, Debug)]
pub struct Before<'a> {
    /// What it is, e.g. `S3 bucket acme-tfstate`.
    pub what: &'a str,
    /// Whether it is ours.
    pub claim: Claim,
    /// Its condition, named in the message.
    pub condition: ConditionType,
}

/// `plan` of the part `what`, held back while it is not ours (`part_is_ours`) and the part
/// before it is not either: `DependencyNotReady` when the part before is not ours, a
/// transient `Creating` while that is not known yet. A plan already blocked keeps its own
/// reason (a Conflict stays a Conflict).
pub fn in_claim_order<C>(plan: PartPlan<C>, what: &str, part_is_ours: bool, before: Before<'_>) -> PartPlan<C> {
    let Before { what: before_what, claim, condition } = before;
    let see = condition.as_str();
    match (plan, claim) {
        (Ok(changes), _) if part_is_ours => Ok(changes),
        (Ok(changes), Claim::Ours) => Ok(changes),
        (Ok(_), Claim::Pending) => Err(Blocked {
            reason: Reason::Creating,
            message: format!("{what} waits until {before_what} is confirmed to be this backend's (see {see})"),
        }),
        (Ok(_), Claim::NotOurs) => Err(Blocked {
            reason: Reason::DependencyNotReady,
            message: format!(
                "{what} waits for {before_what} (see {see}): a name is taken only once the one before it is \
                 this backend's"
            ),
        }),
        (Err(blocked), _) => Err(blocked),
    }
}
