//! The desired state of a backend: `TerraformStateBackend.spec`.
//!
//! Every field carries a doc comment (it becomes the OpenAPI description that
//! `kubectl explain` shows) and every constraint a structural schema can express is
//! expressed here, because the target API servers (v1.20) know no CEL rules. What a
//! schema cannot say is re-checked by [`crate::reconcile::validate`].

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::patterns;
use super::status::TerraformStateBackendStatus;

/// The desired state of a Terraform state backend. Only `bucket.name` and `access.trust`
/// are required; everything else has a safe default.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "tfstate.dev",
    version = "v1alpha1",
    kind = "TerraformStateBackend",
    plural = "terraformstatebackends",
    shortname = "tfsb",
    category = "terraform",
    namespaced,
    doc = "A complete, hardened Terraform/OpenTofu S3 state backend: an encrypted, versioned S3 bucket, a KMS key, a DynamoDB lock table and a least-privilege IAM role for the Terraform runners, continuously converged by tfstate-operator, and a ConfigMap holding the rendered `backend \"s3\"` configuration.",
    status = "TerraformStateBackendStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Bucket","type":"string","jsonPath":".spec.bucket.name"}"#,
    printcolumn = r#"{"name":"Lock","type":"string","jsonPath":".spec.locking.mode"}"#,
    printcolumn = r#"{"name":"Policy","type":"string","jsonPath":".status.policy"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TerraformStateBackendSpec {
    /// AWS region of every resource of this backend, e.g. `eu-west-1`. Defaults to the
    /// operator's `--default-region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = patterns::REGION))]
    pub region: Option<String>,

    /// The S3 bucket that holds the state objects. It is always versioned, encrypted,
    /// TLS-only and closed to the public.
    pub bucket: BucketSpec,

    /// Path of the state object inside the bucket, as Terraform's `key`. Must not start
    /// or end with `/` nor contain `//`. It is written literally into the runner role's
    /// policy, so it may hold only letters, digits, spaces and `! _ . ' ( ) & @ = ; : + , - /`
    /// (no wildcards `*` `?`, no `$`). Defaults to `<namespace>/<name>/terraform.tfstate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = patterns::OBJECT_KEY))]
    pub state_key: Option<String>,

    /// Prefix of the state objects of non-default workspaces, as Terraform's
    /// `workspace_key_prefix` (Terraform's own default is `env:`). Must not start or end
    /// with `/` nor contain `//`; the same characters as `stateKey` (it is written into the
    /// runner role's policy too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), regex(pattern = patterns::OBJECT_KEY))]
    pub workspace_key_prefix: Option<String>,

    /// How state objects (and the lock table) are encrypted at rest.
    #[serde(default)]
    pub encryption: EncryptionSpec,

    /// How Terraform locks the state: a DynamoDB table, an S3 lock file, or both.
    #[serde(default)]
    pub locking: LockingSpec,

    /// The IAM role that Terraform runners assume to use this backend, and who may assume it.
    pub access: AccessSpec,

    /// What happens to the AWS resources when this object is deleted. `Retain` (default)
    /// leaves them; `Delete` removes the role, the lock table and the key (after its
    /// deletion window), and the bucket only when it holds no object versions at all:
    /// the operator never deletes Terraform state.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Take over existing AWS resources of the requested names that carry no ownership
    /// tags (they are tagged then). Without it such resources are a Conflict and are
    /// left untouched. Resources owned by another object are never taken.
    #[serde(default)]
    pub adopt_existing: bool,

    /// Tags added to every AWS resource of this backend (besides the ownership tags).
    /// Keys must not start with `aws:` nor `tfstate.dev/`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 47))]
    pub tags: BTreeMap<String, String>,

    /// Where and how the backend configuration is published for Terraform runners.
    #[serde(default)]
    pub output: OutputSpec,

    /// An audit trail of who read and wrote the state. Removing it deletes the trail the
    /// operator created for it (never the log files already delivered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditSpec>,

    /// Optional read-only replica of the state bucket in another region, for disaster
    /// recovery: S3 replication copies every new state version into a replica bucket
    /// (encrypted with a KMS key of the replica's region) that refuses every write but the
    /// replication role's. The lock table is never replicated. Removing this field removes
    /// the replication configuration and the replication role; the replica bucket and its
    /// key (which hold and encrypt copies of the state) are left as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationSpec>,
}

/// Cross-region replication of the state bucket (`spec.replication`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationSpec {
    /// AWS region of the replica bucket and its key, e.g. `eu-central-1`. Must differ from
    /// the backend's region.
    #[schemars(regex(pattern = patterns::REGION))]
    pub region: String,

    /// Name of the replica bucket (the S3 naming rules and the namespace's policy apply,
    /// as for `bucket.name`). Defaults to `<bucket.name>-replica`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 63), regex(pattern = patterns::BUCKET_NAME))]
    pub bucket_name: Option<String>,

    /// The KMS key of the replica, in the replica's region: exactly one of `create` or
    /// `existingKeyArn`. When omitted, a key is created with alias
    /// `<primary alias>-replica` (or `alias/tfstate-<namespace>-<name>-replica`) and rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<KmsKeySpec>,

    /// S3 Replication Time Control: replicate 99.99% of objects within 15 minutes, with
    /// replication metrics (charged by AWS per GB). Off by default.
    #[serde(default)]
    pub replication_time_control: bool,
}

/// The state bucket.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketSpec {
    /// Globally unique S3 bucket name: 3-63 characters, lowercase letters, digits, dots
    /// and hyphens, starting and ending with a letter or digit. Fixed once the bucket is the
    /// backend's (it holds the state): a change is refused as InvalidSpec.
    #[schemars(length(min = 3, max = 63), regex(pattern = patterns::BUCKET_NAME))]
    pub name: String,

    /// Days after which non-current versions of state objects expire. 0 keeps old
    /// versions forever. The current version of a state object never expires.
    #[serde(default = "default_noncurrent_days")]
    #[schemars(range(min = 0))]
    pub noncurrent_version_expiration_days: i32,

    /// Optional S3 server access logging into an existing bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_logging: Option<AccessLoggingSpec>,
}

fn default_noncurrent_days() -> i32 {
    90
}

/// S3 server access logging of the state bucket.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessLoggingSpec {
    /// Existing bucket (same account and region) that receives the access logs. It must
    /// not be the state bucket itself.
    #[schemars(length(min = 3, max = 63), regex(pattern = patterns::BUCKET_NAME))]
    pub target_bucket: String,

    /// Prefix of the log objects in the target bucket, e.g. `tfstate/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub target_prefix: Option<String>,
}

/// Encryption at rest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionSpec {
    /// `KMS` (default): SSE-KMS with a customer managed key; `AES256`: SSE-S3.
    #[serde(default)]
    pub mode: EncryptionMode,

    /// The KMS key, with mode `KMS`: exactly one of `create` or `existingKeyArn`. When
    /// omitted, a key is created with the defaults of `create`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<KmsKeySpec>,
}

/// Server-side encryption mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum EncryptionMode {
    /// SSE-KMS with a customer managed key (created by the operator or existing).
    #[default]
    #[serde(rename = "KMS")]
    Kms,
    /// SSE-S3 with S3-managed keys.
    #[serde(rename = "AES256")]
    Aes256,
}

/// Which KMS key encrypts the backend: exactly one of `create` or `existingKeyArn`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct KmsKeySpec {
    /// Create (and manage) a dedicated symmetric key with rotation enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<KmsKeyCreateSpec>,

    /// Use an existing key in the backend's region, by key ARN
    /// (`arn:aws:kms:REGION:ACCOUNT:key/ID`). The operator does not change it; its key
    /// policy must let the runners' role use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = patterns::KMS_KEY_ARN))]
    pub existing_key_arn: Option<String>,
}

/// A KMS key created and managed by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KmsKeyCreateSpec {
    /// Alias of the key, `alias/...` (not `alias/aws/...`). Defaults to
    /// `alias/tfstate-<namespace>-<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 7, max = 256), regex(pattern = patterns::KMS_ALIAS))]
    pub alias: Option<String>,

    /// Waiting period, in days (7-30), before the key is deleted once scheduled for
    /// deletion (deletionPolicy `Delete`).
    #[serde(default = "default_deletion_window")]
    #[schemars(range(min = 7, max = 30))]
    pub deletion_window_days: i32,

    /// Extra IAM principal ARNs (`arn:aws:iam::ACCOUNT:root`, `...:role/NAME`,
    /// `...:user/NAME`, no wildcards) allowed to administer the key: read it, enable or
    /// disable it and its rotation, revoke grants, schedule or cancel its deletion. Never to
    /// use it, nor to change its policy, grants, tags or aliases (each of which could give
    /// use).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = patterns::PRINCIPAL_ARN)))]
    pub admins: Vec<String>,
}

fn default_deletion_window() -> i32 {
    30
}

impl Default for KmsKeyCreateSpec {
    fn default() -> Self {
        Self { alias: None, deletion_window_days: default_deletion_window(), admins: Vec::new() }
    }
}

/// State locking. Changing `mode` between `DynamoDB` and `Lockfile` goes through `Both`
/// (refused otherwise: runners on the old and the new configuration would not exclude each
/// other, and Terraform's digest in the table would go stale).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockingSpec {
    /// `DynamoDB` (default): a lock table; `Lockfile`: S3 conditional writes of
    /// `<key>.tflock` (Terraform >= 1.10 `use_lockfile`); `Both`: both at once, to migrate.
    #[serde(default)]
    pub mode: LockMode,

    /// The DynamoDB lock table, with mode `DynamoDB` or `Both`.
    #[serde(default)]
    pub table: LockTableSpec,

    /// Age after which a held state lock is reported stale: a Warning Event `StaleLock`,
    /// once per lock ID. Also the roll-out window of a `mode` change: for this long after it
    /// is published, runners keep the old mode's grants and a next change waits
    /// (`status.lockModeChange`). A duration of hours, minutes and seconds, e.g. `2h`
    /// (default), `90m`, `1h30m`, `45s`; at least 1s, at most 8760h.
    #[serde(default = "default_stale_after")]
    #[schemars(length(min = 2, max = 32), regex(pattern = patterns::DURATION))]
    pub stale_after: String,
}

fn default_stale_after() -> String {
    "2h".into()
}

impl Default for LockingSpec {
    fn default() -> Self {
        Self { mode: LockMode::default(), table: LockTableSpec::default(), stale_after: default_stale_after() }
    }
}

/// How Terraform locks the state.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum LockMode {
    /// A DynamoDB table (`dynamodb_table`).
    #[default]
    DynamoDB,
    /// An S3 lock file next to the state (`use_lockfile = true`).
    Lockfile,
    /// Both, as Terraform supports during a migration from DynamoDB to lock files.
    Both,
}

impl LockMode {
    /// Whether this mode uses the DynamoDB lock table.
    pub fn uses_table(self) -> bool {
        matches!(self, LockMode::DynamoDB | LockMode::Both)
    }

    /// Whether this mode uses the S3 lock file.
    pub fn uses_lockfile(self) -> bool {
        matches!(self, LockMode::Lockfile | LockMode::Both)
    }

    /// The mode that uses every lock either mode uses: runners on either configuration are
    /// served by its grants.
    pub fn union(self, other: LockMode) -> LockMode {
        match (self.uses_table() || other.uses_table(), self.uses_lockfile() || other.uses_lockfile()) {
            (true, true) => LockMode::Both,
            (true, false) => LockMode::DynamoDB,
            _ => LockMode::Lockfile,
        }
    }
}

/// The DynamoDB lock table.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockTableSpec {
    /// Table name (3-255 characters: letters, digits, `_`, `-`, `.`). Defaults to
    /// `<bucket>-lock`. Fixed while runners lock in the table: a change is refused as
    /// InvalidSpec (move tables by way of mode Lockfile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 255), regex(pattern = patterns::TABLE_NAME))]
    pub name: Option<String>,

    /// Point-in-time recovery of the table.
    #[serde(default = "default_true")]
    pub point_in_time_recovery: bool,

    /// Deletion protection of the table (lifted by the operator only when it deletes the
    /// table itself, with deletionPolicy `Delete`).
    #[serde(default = "default_true")]
    pub deletion_protection: bool,
}

impl Default for LockTableSpec {
    fn default() -> Self {
        Self { name: None, point_in_time_recovery: true, deletion_protection: true }
    }
}

fn default_true() -> bool {
    true
}

/// The runners' IAM role.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessSpec {
    /// IAM role name (1-64 characters of letters, digits and `+=,.@_-`). Defaults to
    /// `tfstate-<namespace>-<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = patterns::ROLE_NAME))]
    pub role_name: Option<String>,

    /// Who may assume the role: at least one service account or AWS principal.
    pub trust: TrustSpec,

    /// ARN of a managed policy used as the role's permissions boundary
    /// (`arn:aws:iam::ACCOUNT:policy/NAME`, no wildcards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = patterns::POLICY_ARN))]
    pub permissions_boundary_arn: Option<String>,

    /// Maximum session duration of the role, in seconds (3600-43200).
    #[serde(default = "default_session_duration")]
    #[schemars(range(min = 3600, max = 43200))]
    pub max_session_duration_seconds: i32,
}

fn default_session_duration() -> i32 {
    3600
}

/// The principals trusted to assume the runners' role.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustSpec {
    /// Kubernetes service accounts of the Terraform runners. They need `oidcProviderArn`
    /// (IRSA) or `eksPodIdentity: true`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<ServiceAccountRef>,

    /// ARN of the cluster's IAM OIDC provider, for IRSA
    /// (`arn:aws:iam::ACCOUNT:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID`: a host
    /// name and path, no wildcards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = patterns::OIDC_PROVIDER_ARN))]
    pub oidc_provider_arn: Option<String>,

    /// Trust EKS Pod Identity (`pods.eks.amazonaws.com`) for the service accounts.
    #[serde(default)]
    pub eks_pod_identity: bool,

    /// IAM principal ARNs (roles, users, account roots; no wildcards) allowed to assume the
    /// role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = patterns::PRINCIPAL_ARN)))]
    pub aws_principals: Vec<String>,
}

/// A Kubernetes service account.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
pub struct ServiceAccountRef {
    /// Namespace of the service account.
    #[schemars(length(min = 1, max = 63), regex(pattern = patterns::DNS_LABEL))]
    pub namespace: String,
    /// Name of the service account.
    #[schemars(length(min = 1, max = 253), regex(pattern = patterns::DNS_SUBDOMAIN))]
    pub name: String,
}

/// What happens to the AWS resources when the object is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum DeletionPolicy {
    /// Leave every AWS resource as it is.
    #[default]
    Retain,
    /// Delete the role, lock table and key; the bucket only when it holds no versions.
    Delete,
}

/// The published backend configuration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputSpec {
    /// Name of the ConfigMap (in this object's namespace) that receives `backend.tf`,
    /// `backend.tfbackend` and one key per setting. Defaults to `<name>-backend`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = patterns::DNS_SUBDOMAIN))]
    pub config_map_name: Option<String>,

    /// Render `assume_role = { role_arn = ... }` so that runners assume the backend's
    /// role themselves. Turn it off when the runners already run as the role (IRSA, Pod
    /// Identity).
    #[serde(default = "default_true")]
    pub assume_role: bool,

    /// Also publish OpenTofu's client-side state and plan encryption for the backend's KMS
    /// key: `encryption.tf` (a `terraform { encryption { ... } }` block with an `aws_kms` key
    /// provider, an `aes_gcm` method, state and plan encrypted and enforced) and the same
    /// configuration as the `TF_ENCRYPTION` key, for runners that read it from the
    /// environment. The runner role then also gets direct `kms:GenerateDataKey` and
    /// `kms:Decrypt` on the key (OpenTofu calls KMS itself, not through S3), and, with a key
    /// the operator creates, the key policy too. An existing key (`existingKeyArn`) is never
    /// changed: its key policy must allow that direct use itself (a policy that delegates to
    /// IAM through the account root already does). Requires encryption mode `KMS`, and no
    /// `spec.replication` (the replica's copies would need the backend region's key, which
    /// an outage of that region takes away). Once state
    /// is written encrypted, turning this off makes it unreadable for runners without the
    /// configuration: keep it on, or migrate with OpenTofu's `fallback` block first.
    #[serde(default)]
    pub open_tofu_encryption: bool,
}

impl Default for OutputSpec {
    fn default() -> Self {
        Self { config_map_name: None, assume_role: true, open_tofu_encryption: false }
    }
}

/// The audit trail of the state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditSpec {
    /// A CloudTrail trail owned by this backend that records only S3 data events on the
    /// state bucket's objects (every read and write of state and lock files, with who made
    /// it), in the backend's region, with log file validation on and no management events
    /// (it costs only what it logs). `AuditReady` reports it; `status.trailArn` names it.
    pub cloud_trail: CloudTrailSpec,
}

/// The backend's CloudTrail trail.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudTrailSpec {
    /// Trail name: 3-128 letters, digits, `.`, `_` and `-`, starting and ending with a letter
    /// or digit, no two of `._-` in a row, not an IP address. Defaults to
    /// `tfstate-<namespace>.<name>`. The cluster policy's `allowedNames.trails` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 128), regex(pattern = patterns::TRAIL_NAME))]
    pub trail_name: Option<String>,

    /// Existing S3 bucket that receives the log files; not the state bucket. Its bucket
    /// policy must let CloudTrail write (`cloudtrail.amazonaws.com`: `s3:GetBucketAcl` on the
    /// bucket and `s3:PutObject` on `<prefix>/AWSLogs/<account>/*`, with `aws:SourceArn`
    /// the trail's ARN); until it does, `AuditReady` is False (`DependencyNotReady`) and says
    /// what to add.
    #[schemars(length(min = 3, max = 63), regex(pattern = patterns::BUCKET_NAME))]
    pub log_bucket: String,

    /// Prefix of the log files in the log bucket (CloudTrail adds `/AWSLogs/<account>/...`).
    /// The characters of `stateKey`, no leading or trailing `/`, at most 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200), regex(pattern = patterns::OBJECT_KEY))]
    pub log_prefix: Option<String>,
}
