//! The observed state of a backend: `TerraformStateBackend.status`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::LockMode;

/// What the operator last observed and did. Conditions follow the kstatus conventions
/// (`Ready`, `Reconciling`, `Stalled`, each with `observedGeneration`) so that Flux and
/// Argo CD health checks work without custom scripts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TerraformStateBackendStatus {
    /// The `metadata.generation` of the spec that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready` and one condition per part (`BucketReady`, `EncryptionKeyReady`,
    /// `LockTableReady`, `RoleReady`, `BackendConfigPublished`, and `AuditReady` with
    /// `spec.audit`), plus `Reconciling` and `Stalled` while they apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// ARN of the state bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_arn: Option<String>,

    /// ARN of the KMS key that encrypts the state (created or existing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,

    /// ARN of the DynamoDB lock table; in lock mode `Lockfile`, of the table kept from an
    /// earlier mode (a mode change never deletes it; with `deletionPolicy: Delete` it goes
    /// with the backend if its ownership tags still say it is this backend's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_table_arn: Option<String>,

    /// ARN of the runners' IAM role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,

    /// AWS account that holds the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,

    /// The `TerraformStatePolicy` whose rules this backend was admitted under, or
    /// `built-in default` when no policy selects its namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,

    /// Name of the published ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_name: Option<String>,

    /// Set just before the operator creates the KMS key (which, unlike the other
    /// resources, AWS cannot find again by a name until its alias exists), cleared once the
    /// key exists under its alias. After a crash in between, the operator finds the key by
    /// the ownership tags CreateKey gave it instead of creating a second one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_started_at: Option<String>,

    /// ARN of the replica bucket (`spec.replication`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_bucket_arn: Option<String>,

    /// Region of the replica bucket and its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_region: Option<String>,

    /// ARN of the KMS key that encrypts the replica (created or existing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_kms_key_arn: Option<String>,

    /// ARN of the IAM role S3 assumes to replicate the state bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_role_arn: Option<String>,

    /// Regions whose replica key (the one of alias `<primary alias>-replica` there) may have
    /// encrypted copies of the state in a bucket that is no longer the replica:
    /// `spec.replication.bucketName` or `region` changed, or `spec.replication` was
    /// removed. Deletion never schedules those keys for deletion (the copies left there
    /// would become unreadable) and says so in an Event. Kept for the object's life.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replica_keys_kept: Vec<String>,

    /// ARN of the audit trail (`spec.audit.cloudTrail`) while the backend owns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trail_arn: Option<String>,
    /// The state lock of the default workspace, as read by the last pass that got through:
    /// the DynamoDB item `<bucket>/<stateKey>` and/or the lock file `<stateKey>.tflock`,
    /// whichever the lock mode uses. Break a lock with the annotation
    /// `tfstate.dev/force-unlock: <id>` (see the `ForceUnlock` condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockStatus>,

    /// The lock mode of the last published backend configuration: what runners use now.
    /// A change of `spec.locking.mode` is judged against it (`DynamoDB` and `Lockfile` only
    /// through `Both`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_mode: Option<LockMode>,

    /// The last change of the published lock mode: from which mode, and when the new
    /// configuration was published. Runners that started before may still use the old one
    /// for `spec.locking.staleAfter` after `at` (the roll-out window): until then the runner
    /// role keeps the grants of both modes, and a next change is judged against both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_mode_change: Option<LockModeChange>,

    /// The state object of the default workspace (`stateKey`), as the last pass that got
    /// through listed its versions (one ListObjectVersions page; the operator never reads
    /// or decrypts state content). `tfstate-operator state versions|restore` acts on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateObjectStatus>,
}

/// A change of the published lock mode (`status.lockMode` is the mode it changed to).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockModeChange {
    /// The lock mode runners used before.
    pub from: LockMode,
    /// When the configuration of the new mode was published (RFC 3339).
    pub at: String,
    /// When its roll-out window closes (RFC 3339): `at` plus `spec.locking.staleAfter` as it
    /// was then. A shorter `staleAfter` set later does not close it earlier (runs that
    /// started before were promised that long); a longer one keeps it open longer.
    pub until: String,
}

/// The state object: its current version and how many are kept.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateObjectStatus {
    /// The state key these figures are of (`spec.stateKey` when they were listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Whether a state is current: false before the first `terraform apply`, or when the
    /// current version is a delete marker (`deleted`).
    pub exists: bool,
    /// S3 version id of the current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Size of the current state, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// When the current state was written (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// How many versions of the state S3 keeps (delete markers not counted), as far as one
    /// listing page of 1,000 entries reaches.
    pub versions: u32,
    /// S3 holds more entries than one page: `versions` is a lower bound.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more_versions: bool,
    /// The current version is a delete marker: the state was deleted. Its earlier versions
    /// are kept; `tfstate-operator state restore` makes one current again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// Where a lock was found.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum LockSource {
    /// The DynamoDB lock item `<bucket>/<stateKey>`.
    #[serde(rename = "dynamodb")]
    DynamoDB,
    /// The S3 lock file `<stateKey>.tflock`.
    #[serde(rename = "lockfile")]
    Lockfile,
    /// Both, with the same lock ID (lock mode `Both`).
    #[serde(rename = "both")]
    Both,
}

/// A Terraform state lock, as Terraform's lock info describes it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockStatus {
    /// Whether a lock is held.
    pub held: bool,
    /// The lock ID (what `terraform force-unlock` and the annotation take).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Who holds it (`user@host`), as the holder wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<String>,
    /// The Terraform operation that took it, e.g. `OperationTypeApply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Since when it is held (RFC 3339), as the holder wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Where it was found: `dynamodb`, `lockfile` or `both`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<LockSource>,
    /// The `StaleLock` Event was published for this lock ID (never twice, restarts included).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale_reported: bool,
    /// What could not be read or made sense of (an unreadable lock info, a lock file that
    /// could not be read, a second lock with another ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
