//! Step 4, pure: the semantic difference between desired and observed, as the list of
//! writes that make AWS match. Policies are compared parsed and normalised, never as
//! strings, so a converged backend plans nothing.

mod bucket;
mod key;
mod order;
mod replication;
mod role;
mod table;
mod trail;

pub use bucket::{BucketChange, plan_bucket, refuse_recorded_adoption};
pub use key::{KeyChange, plan_key};
pub use order::{Before, Claim, in_claim_order};
pub use replication::{ReplicationChange, plan_replication};
pub use role::{RoleChange, plan_inline_policy, plan_role};
pub use table::{TableChange, plan_table, refuse_recorded_table_adoption};
pub use trail::{TrailChange, plan_stale_trail, plan_trail, selectors_match};

use crate::api::Reason;
use crate::aws::Tags;
use crate::policy::PolicyDocument;

use super::desired::{Owner, TAG_OWNER_UID};

/// Why a part cannot be converged now; nothing is written for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// Conflict or DependencyNotReady; Creating while the part before is not confirmed yet
    /// ([`in_claim_order`]).
    pub reason: Reason,
    /// What is wrong and what to do.
    pub message: String,
}

/// The plan of one part: the writes to make, or why none may be made.
pub type PartPlan<C> = Result<Vec<C>, Blocked>;

/// Whether a resource that exists may be managed by this object.
pub(crate) fn check_ownership(what: &str, tags: &Tags, owner: &Owner, adopt: bool) -> Result<(), Blocked> {
    match tags.get(TAG_OWNER_UID) {
        Some(uid) if *uid == owner.uid => Ok(()),
        // Never which one: the owner's namespace and name are another tenant's business.
        Some(_) => Err(Blocked {
            reason: Reason::Conflict,
            message: format!(
                "{what} is managed by another TerraformStateBackend; it is left untouched: choose another name"
            ),
        }),
        None if adopt => Ok(()),
        None => Err(Blocked {
            reason: Reason::Conflict,
            message: format!(
                "{what} already exists and is not managed by tfstate-operator; it is left untouched: \
                 set spec.adoptExisting: true to take it over, or choose another name"
            ),
        }),
    }
}

/// Tags as compared: AWS's own `aws:` tags are not ours to manage.
pub(crate) fn comparable_tags(tags: &Tags) -> Tags {
    tags.iter().filter(|(k, _)| !k.starts_with("aws:")).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Whether an observed policy document (JSON or URL-encoded JSON) means `desired`. An
/// unparsable or missing document differs.
pub(crate) fn policy_matches(observed: Option<&str>, desired: &PolicyDocument) -> bool {
    observed.and_then(|text| PolicyDocument::parse(text).ok()).is_some_and(|doc| doc.semantically_eq(desired))
}

#[cfg(test)]
mod tests;
