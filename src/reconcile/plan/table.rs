//! The lock table's plan.

use crate::api::Reason;
use crate::aws::Tags;
use crate::reconcile::desired::{DesiredTable, Owner};
use crate::reconcile::observe::ObservedTable;

use super::{Blocked, PartPlan, check_ownership, comparable_tags};

/// A write to the lock table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableChange {
    /// CreateTable (LockID, on-demand, SSE, deletion protection, tags), then PITR.
    Create,
    /// One UpdateTable for what differs.
    Update {
        /// New deletion protection.
        deletion_protection: Option<bool>,
        /// New SSE key (inner `None`: AWS owned key).
        sse_key: Option<Option<String>>,
        /// Switch to on-demand billing.
        on_demand: bool,
    },
    /// Turn PITR on or off.
    SetPitr(bool),
    /// Make the tags exactly the desired ones.
    SyncTags,
    /// The table is still being created or updated: look again shortly.
    WaitUntilActive,
}

/// `plan` unless it adopts a table (its tags only: see [`plan_table`]) that is not ours and
/// that another backend's status records as its lock table (`recorded_by_another`): an
/// outside tool removed its tags, and that backend's runners lock there; an adopter's would
/// hold (or break) their locks. Then a `Conflict`, and nothing is written.
pub fn refuse_recorded_table_adoption(
    plan: PartPlan<TableChange>,
    name: &str,
    ours: bool,
    recorded_by_another: bool,
) -> PartPlan<TableChange> {
    match plan {
        Ok(c) if recorded_by_another && !ours && c == [TableChange::SyncTags] => Err(Blocked {
            reason: Reason::Conflict,
            message: format!(
                "DynamoDB table {name} carries no ownership tags, but another TerraformStateBackend records it as its \
                 lock table (its tags were removed): it is left untouched. Choose another name, or have its tags \
                 restored"
            ),
        }),
        plan => plan,
    }
}

/// Plans the lock table (`None` desired: no table is used; an existing one is left alone).
pub fn plan_table(
    desired: Option<&DesiredTable>,
    observed: Option<&ObservedTable>,
    tags: &Tags,
    owner: &Owner,
    adopt: bool,
) -> PartPlan<TableChange> {
    let Some(desired) = desired else { return Ok(vec![]) };
    let Some(observed) = observed else {
        // A new table has PITR off: turn it on only when wanted.
        let mut changes = vec![TableChange::Create];
        if desired.pitr {
            changes.push(TableChange::SetPitr(true));
        }
        return Ok(changes);
    };
    let what = format!("DynamoDB table {}", desired.name);
    check_ownership(&what, &observed.settings.tags, owner, adopt)?;
    let info = &observed.info;
    if info.hash_key.as_ref().is_none_or(|(name, ty)| name != "LockID" || ty != "S") || info.has_range_key {
        return Err(Blocked {
            reason: Reason::Conflict,
            message: format!(
                "{what} has the key schema {:?}{}, but Terraform locks need exactly a hash key LockID of type S: \
                 choose another table name",
                info.hash_key,
                if info.has_range_key { " with a range key" } else { "" }
            ),
        });
    }
    if info.status != "ACTIVE" {
        return Ok(vec![TableChange::WaitUntilActive]);
    }
    // Adoption is a claim first, as for the bucket (see `plan_bucket`): only the tags now;
    // its settings and the runners' grant once a later pass reads them back as ours.
    if !owner.owns(&observed.settings.tags) {
        return Ok(vec![TableChange::SyncTags]);
    }
    let mut changes = Vec::new();
    let deletion_protection =
        (info.deletion_protection != desired.deletion_protection).then_some(desired.deletion_protection);
    let sse_key = (info.sse_kms_key_arn != desired.kms_key_arn).then(|| desired.kms_key_arn.clone());
    let on_demand = info.billing_mode != "PAY_PER_REQUEST";
    if deletion_protection.is_some() || sse_key.is_some() || on_demand {
        changes.push(TableChange::Update { deletion_protection, sse_key, on_demand });
    }
    if observed.settings.pitr != desired.pitr {
        changes.push(TableChange::SetPitr(desired.pitr));
    }
    if comparable_tags(&observed.settings.tags) != *tags {
        changes.push(TableChange::SyncTags);
    }
    Ok(changes)
}
