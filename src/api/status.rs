//! The observed state of a backend: `TerraformStateBackend.status`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    /// `LockTableReady`, `RoleReady`, `BackendConfigPublished`), plus `Reconciling` and
    /// `Stalled` while they apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// ARN of the state bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_arn: Option<String>,

    /// ARN of the KMS key that encrypts the state (created or existing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,

    /// ARN of the DynamoDB lock table.
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
}
