//! The runners' role's plan.

use crate::aws::Tags;
use crate::policy::PolicyDocument;
use crate::reconcile::desired::{DesiredRole, Owner};
use crate::reconcile::observe::ObservedRole;

use super::{Blocked, PartPlan, check_ownership, comparable_tags, policy_matches};
use crate::api::Reason;

/// A write to the role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleChange {
    /// CreateRole with trust, session duration, boundary and tags.
    Create,
    /// Replace the trust policy.
    UpdateTrust,
    /// Change the maximum session duration.
    UpdateMaxSession,
    /// Set or remove the permissions boundary.
    SetBoundary,
    /// Make the tags exactly the desired ones.
    SyncTags,
    /// Put the inline policy.
    PutInlinePolicy,
    /// Remove the inline policy: the object owns no part to grant (IAM refuses an empty one).
    DeleteInlinePolicy,
}

/// Plans the role itself (its inline policy is planned once the key is known).
pub fn plan_role(
    desired: &DesiredRole,
    observed: Option<&ObservedRole>,
    tags: &Tags,
    owner: &Owner,
    adopt: bool,
) -> PartPlan<RoleChange> {
    let Some(observed) = observed else { return Ok(vec![RoleChange::Create]) };
    let info = &observed.info;
    check_ownership(&format!("IAM role {}", desired.name), &info.tags, owner, adopt)?;
    if info.arn != desired.arn {
        // IAM cannot move a role to another path (the cluster policy's iamPath changed).
        return Err(Blocked {
            reason: Reason::DependencyNotReady,
            message: format!(
                "IAM role {} is {}, but the cluster policy puts runner roles at {}: IAM cannot change a role's path; \
                 delete the role to have it created again, or restore the policy's iamPath",
                desired.name, info.arn, desired.arn
            ),
        });
    }
    let mut changes = Vec::new();
    if !policy_matches(Some(&info.trust_policy), &desired.trust) {
        changes.push(RoleChange::UpdateTrust);
    }
    if info.max_session_duration != desired.max_session_duration {
        changes.push(RoleChange::UpdateMaxSession);
    }
    if info.permissions_boundary_arn != desired.boundary {
        changes.push(RoleChange::SetBoundary);
    }
    if comparable_tags(&info.tags) != *tags {
        changes.push(RoleChange::SyncTags);
    }
    Ok(changes)
}

/// Plans the inline policy of an existing (or just created) role: `desired` grants what the
/// object owns now (`None`: nothing, so no inline policy may remain).
pub fn plan_inline_policy(desired: Option<&PolicyDocument>, observed: Option<&ObservedRole>) -> Vec<RoleChange> {
    let current = observed.and_then(|r| r.inline_policy.as_deref());
    match (desired, current) {
        (None, None) => vec![],
        (None, Some(_)) => vec![RoleChange::DeleteInlinePolicy],
        (Some(desired), current) if policy_matches(current, desired) => vec![],
        (Some(_), _) => vec![RoleChange::PutInlinePolicy],
    }
}
