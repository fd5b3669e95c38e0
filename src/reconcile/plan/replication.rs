//! The state bucket's replication configuration's plan.

use crate::aws::s3::ReplicationSettings;

/// A write to the state bucket's replication configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicationChange {
    /// PutBucketReplication with exactly the desired configuration.
    PutConfiguration,
    /// DeleteBucketReplication: `spec.replication` was removed.
    DeleteConfiguration,
}

/// Plans the configuration: `desired` `None` means no replication may remain. Compared as
/// typed values (rules sorted by ID), so a converged bucket plans nothing; an extra rule
/// added outside the operator is drift, like any other difference.
pub fn plan_replication(
    desired: Option<&ReplicationSettings>,
    observed: Option<&ReplicationSettings>,
) -> Vec<ReplicationChange> {
    match (desired, observed) {
        (None, None) => vec![],
        (None, Some(_)) => vec![ReplicationChange::DeleteConfiguration],
        (Some(d), Some(o)) if d == o => vec![],
        (Some(_), _) => vec![ReplicationChange::PutConfiguration],
    }
}
