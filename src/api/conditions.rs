//! Condition types and reasons: closed enums, never loose strings.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The condition types a backend reports.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConditionType {
    /// True only when every part is True for the current generation.
    Ready,
    /// The S3 bucket exists with every required setting.
    BucketReady,
    /// The KMS key exists, rotates and has its alias and policy (or the existing key is usable).
    EncryptionKeyReady,
    /// The DynamoDB lock table exists with every required setting (or is not needed).
    LockTableReady,
    /// The runners' IAM role exists with its trust and inline policy.
    RoleReady,
    /// The backend ConfigMap is published.
    BackendConfigPublished,
    /// kstatus: the operator is working towards the desired state.
    Reconciling,
    /// Only with `spec.replication`: the replica bucket, its key, the replication role and
    /// the state bucket's replication configuration are converged.
    ReplicationReady,
    /// kstatus: the operator cannot make progress without a change (spec, AWS side).
    Stalled,
    /// The audit trail (`spec.audit.cloudTrail`) exists, records exactly the state bucket's
    /// object events and is logging. Present only when the spec asks for an audit trail.
    AuditReady,
    /// The answer to the last `tfstate.dev/force-unlock` annotation (not part of `Ready`).
    ForceUnlock,
}

impl ConditionType {
    /// Every condition type, in the order they appear in status.
    pub const ALL: [ConditionType; 11] = [
        ConditionType::Ready,
        ConditionType::BucketReady,
        ConditionType::EncryptionKeyReady,
        ConditionType::LockTableReady,
        ConditionType::RoleReady,
        ConditionType::BackendConfigPublished,
        ConditionType::AuditReady,
        ConditionType::Reconciling,
        ConditionType::Stalled,
        ConditionType::ForceUnlock,
        ConditionType::ReplicationReady,
    ];

    /// The name written into `status.conditions[].type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::BucketReady => "BucketReady",
            ConditionType::EncryptionKeyReady => "EncryptionKeyReady",
            ConditionType::LockTableReady => "LockTableReady",
            ConditionType::RoleReady => "RoleReady",
            ConditionType::BackendConfigPublished => "BackendConfigPublished",
            ConditionType::Reconciling => "Reconciling",
            ConditionType::Stalled => "Stalled",
            ConditionType::AuditReady => "AuditReady",
            ConditionType::ForceUnlock => "ForceUnlock",
            ConditionType::ReplicationReady => "ReplicationReady",
        }
    }
}

impl fmt::Display for ConditionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a condition has its status: CamelCase, also used as Event reason and metric label.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Everything matches the spec.
    Converged,
    /// The resource is being created.
    Creating,
    /// The resource was created by this reconcile.
    Created,
    /// The resource was changed to match a changed spec.
    Updated,
    /// The resource is being changed to match a new spec.
    Updating,
    /// A setting changed outside the operator was put back.
    DriftRepaired,
    /// The spec is invalid; the message says what to fix. No AWS call was made.
    InvalidSpec,
    /// The spec breaks the `TerraformStatePolicy` of its namespace (or the built-in default);
    /// the message names the field, what is allowed and the policy. No AWS call was made.
    PolicyViolation,
    /// A resource of the requested name belongs to another object, or is not tagged and
    /// `adoptExisting` is false. Nothing was touched.
    Conflict,
    /// AWS refused the operator's call for lack of permissions.
    AccessDenied,
    /// An existing resource named by the spec (existing KMS key, logging bucket) is
    /// missing or unusable.
    DependencyNotReady,
    /// The part is not used by this spec (lock table in Lockfile mode, key with AES256).
    NotRequired,
    /// Deletion waits: the bucket still holds object versions.
    DeletionBlocked,
    /// The resources are being deleted.
    Deleting,
    /// An AWS call failed for another reason; it is retried with back-off.
    AwsError,
    /// A Kubernetes call failed; it is retried with back-off.
    KubernetesError,
    /// `spec.locking.mode` changed straight between `DynamoDB` and `Lockfile`: refused, the
    /// message explains the `Both` step. No AWS call was made.
    UnsafeLockMigration,
    /// `spec.locking.mode` changed within the roll-out window of the last change, to a mode
    /// that runs still on the mode before it would not exclude: it waits, and is applied by
    /// itself when the window closes (the message says when). No AWS call was made.
    LockModeRollout,
    /// A state lock is older than `spec.locking.staleAfter` (Event).
    StaleLock,
    /// A lock was removed on request of the force-unlock annotation.
    ForceUnlocked,
    /// The force-unlock annotation named another lock ID than the one held: nothing changed.
    LockIdMismatch,
    /// The force-unlock annotation came while no lock was held: nothing changed.
    NoLockHeld,
    /// The lock changed between the read and the conditional delete: nothing was deleted.
    LockChanged,
    /// The force-unlock annotation was not acted on (an unreadable lock, a lock that could
    /// not be read): the message says why.
    ForceUnlockRefused,
}

impl Reason {
    /// The CamelCase name written into conditions, Events and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Converged => "Converged",
            Reason::Creating => "Creating",
            Reason::Created => "Created",
            Reason::Updated => "Updated",
            Reason::Updating => "Updating",
            Reason::DriftRepaired => "DriftRepaired",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::PolicyViolation => "PolicyViolation",
            Reason::Conflict => "Conflict",
            Reason::AccessDenied => "AccessDenied",
            Reason::DependencyNotReady => "DependencyNotReady",
            Reason::NotRequired => "NotRequired",
            Reason::DeletionBlocked => "DeletionBlocked",
            Reason::Deleting => "Deleting",
            Reason::AwsError => "AwsError",
            Reason::KubernetesError => "KubernetesError",
            Reason::UnsafeLockMigration => "UnsafeLockMigration",
            Reason::LockModeRollout => "LockModeRollout",
            Reason::StaleLock => "StaleLock",
            Reason::ForceUnlocked => "ForceUnlocked",
            Reason::LockIdMismatch => "LockIdMismatch",
            Reason::NoLockHeld => "NoLockHeld",
            Reason::LockChanged => "LockChanged",
            Reason::ForceUnlockRefused => "ForceUnlockRefused",
        }
    }

    /// Whether retrying cannot help until something changes (kstatus `Stalled`).
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            Reason::InvalidSpec
                | Reason::PolicyViolation
                | Reason::Conflict
                | Reason::DependencyNotReady
                | Reason::AccessDenied
                | Reason::UnsafeLockMigration
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde_names() {
        for t in ConditionType::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        for r in [
            Reason::Converged,
            Reason::DriftRepaired,
            Reason::InvalidSpec,
            Reason::KubernetesError,
            Reason::UnsafeLockMigration,
            Reason::LockModeRollout,
            Reason::StaleLock,
            Reason::ForceUnlocked,
            Reason::LockIdMismatch,
            Reason::NoLockHeld,
            Reason::LockChanged,
            Reason::ForceUnlockRefused,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }

    #[test]
    fn only_unfixable_reasons_are_permanent() {
        assert!(Reason::InvalidSpec.is_permanent());
        assert!(Reason::Conflict.is_permanent());
        assert!(!Reason::AwsError.is_permanent());
        assert!(!Reason::Creating.is_permanent());
        // It ends by itself: kstatus Reconciling, not Stalled.
        assert!(!Reason::LockModeRollout.is_permanent());
    }
}
