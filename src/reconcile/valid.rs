//! The validate step's result: a spec with every default resolved, which the later
//! steps take instead of the raw spec.

use std::collections::BTreeMap;

use crate::api::{DeletionPolicy, LockMode, ServiceAccountRef};

/// A spec that passed validation, with every default resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidSpec {
    /// AWS region of every resource.
    pub region: String,
    /// State bucket name.
    pub bucket: String,
    /// Days until non-current versions expire; `None` keeps them forever.
    pub noncurrent_version_expiration_days: Option<i32>,
    /// Server access logging target.
    pub access_logging: Option<AccessLogging>,
    /// Key of the state object.
    pub state_key: String,
    /// Terraform's `workspace_key_prefix`, when set.
    pub workspace_key_prefix: Option<String>,
    /// How state is encrypted.
    pub encryption: Encryption,
    /// How state is locked.
    pub lock_mode: LockMode,
    /// The lock table, in DynamoDB and Both modes.
    pub lock_table: Option<LockTable>,
    /// The runners' role.
    pub role: Role,
    /// What deletion does.
    pub deletion_policy: DeletionPolicy,
    /// Whether untagged resources of the requested names may be adopted.
    pub adopt_existing: bool,
    /// User tags for every resource.
    pub tags: BTreeMap<String, String>,
    /// Name of the published ConfigMap.
    pub config_map_name: String,
    /// Whether to render `assume_role` into the backend configuration.
    pub render_assume_role: bool,
    /// Age after which a held lock is reported stale (`spec.locking.staleAfter`).
    pub stale_after: std::time::Duration,
    /// Whether to publish OpenTofu's client-side encryption (`encryption.tf`,
    /// `TF_ENCRYPTION`) for the backend's key, and grant the direct key use it needs.
    pub open_tofu_encryption: bool,
    /// The audit trail, when the spec asks for one.
    pub audit: Option<Audit>,
    /// The cross-region replica, when `spec.replication` is set.
    pub replication: Option<Replication>,
}

/// Resolved audit trail settings (`spec.audit.cloudTrail`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audit {
    /// Trail name.
    pub trail_name: String,
    /// Bucket receiving the log files.
    pub log_bucket: String,
    /// Prefix of the log files (`None`: none).
    pub log_prefix: Option<String>,
}

/// Resolved replication settings (`spec.replication`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replication {
    /// Region of the replica bucket and key (never the backend's).
    pub region: String,
    /// Replica bucket name.
    pub bucket: String,
    /// The replica's key: `CreateKey` (in the replica region) or `ExistingKey`; never `Aes256`.
    pub encryption: Encryption,
    /// Name of the replication role (`<runner role>-replication`, shortened to IAM's 64).
    pub role_name: String,
    /// S3 Replication Time Control (and its metrics).
    pub replication_time_control: bool,
}

/// Resolved access logging settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLogging {
    /// Bucket receiving the logs.
    pub target_bucket: String,
    /// Prefix of the log objects (may be empty).
    pub target_prefix: String,
}

/// Resolved encryption settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encryption {
    /// SSE-S3.
    Aes256,
    /// SSE-KMS with a key the operator creates and manages.
    CreateKey {
        /// Alias of the key.
        alias: String,
        /// Deletion window in days.
        deletion_window_days: i32,
        /// Extra key administrators.
        admins: Vec<String>,
    },
    /// SSE-KMS with an existing key.
    ExistingKey {
        /// ARN of the key.
        arn: String,
    },
}

/// Resolved lock table settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockTable {
    /// Table name.
    pub name: String,
    /// Point-in-time recovery.
    pub point_in_time_recovery: bool,
    /// Deletion protection.
    pub deletion_protection: bool,
}

/// Resolved role settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    /// Role name.
    pub name: String,
    /// Service accounts (sorted, unique).
    pub service_accounts: Vec<ServiceAccountRef>,
    /// IRSA OIDC provider.
    pub oidc_provider_arn: Option<String>,
    /// Trust EKS Pod Identity.
    pub eks_pod_identity: bool,
    /// AWS principals (sorted, unique).
    pub aws_principals: Vec<String>,
    /// Permissions boundary (the cluster policy's, when it sets one).
    pub permissions_boundary_arn: Option<String>,
    /// IAM path of the role, `/` or `/.../` (the cluster policy's).
    pub path: String,
    /// The AWS Organization that trusted principals and key admins must belong to (the
    /// cluster policy's `trust.principalOrgId`).
    pub principal_org_id: Option<String>,
    /// Maximum session duration, in seconds.
    pub max_session_duration_seconds: i32,
}
