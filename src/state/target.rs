//! Which state object a command works on, and how the backend encrypts and locks it.

use crate::api::{EncryptionMode, TerraformStateBackend};
use crate::reconcile::validate::{ObjectRef, OperatorDefaults, validate};

use super::StateError;

/// How the backend encrypts objects at rest (what a restored copy must be written with).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sse {
    /// SSE-KMS with the backend's key.
    Kms(String),
    /// SSE-S3.
    Aes256,
}

/// The default workspace's state object of one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateTarget {
    /// Region of the bucket.
    pub region: String,
    /// The state bucket.
    pub bucket: String,
    /// Terraform's `key`.
    pub key: String,
    /// The backend's encryption.
    pub sse: Sse,
    /// The DynamoDB lock table (lock modes DynamoDB and Both).
    pub lock_table: Option<String>,
    /// S3 lock files `<key>.tflock` (lock modes Lockfile and Both).
    pub lockfile: bool,
}

impl StateTarget {
    /// Terraform's lock ID in the DynamoDB table, `<bucket>/<key>`.
    pub fn lock_id(&self) -> String {
        format!("{}/{}", self.bucket, self.key)
    }

    /// Terraform's digest item in the DynamoDB table, `<bucket>/<key>-md5`.
    pub fn digest_id(&self) -> String {
        format!("{}/{}-md5", self.bucket, self.key)
    }

    /// The S3 lock file's key.
    pub fn lockfile_key(&self) -> String {
        format!("{}.tflock", self.key)
    }
}

/// The target of `obj` (from a YAML file or the cluster: its spec, and its status for the ARN
/// of a key the operator created).
///
/// # Errors
///
/// [`StateError::Target`] when the spec is invalid, or the key of a KMS backend is not known
/// (not in the spec, and no `status.kmsKeyArn` yet).
pub fn target_from_object(obj: &TerraformStateBackend, defaults: &OperatorDefaults) -> Result<StateTarget, StateError> {
    let namespace = obj.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = obj.metadata.name.clone().unwrap_or_default();
    let valid = validate(ObjectRef { namespace: &namespace, name: &name }, &obj.spec, defaults)
        .map_err(|e| StateError::Target(e.to_string()))?;
    let sse = match obj.spec.encryption.mode {
        EncryptionMode::Aes256 => Sse::Aes256,
        EncryptionMode::Kms => {
            let existing = obj.spec.encryption.kms_key.as_ref().and_then(|k| k.existing_key_arn.clone());
            let created = obj.status.as_ref().and_then(|s| s.kms_key_arn.clone());
            Sse::Kms(existing.or(created).ok_or_else(|| {
                StateError::Target(format!(
                    "{namespace}/{name} encrypts with a KMS key whose ARN is not known yet (no status.kmsKeyArn): \
                     read the object from the cluster (-n {namespace} {name}) once it is Ready"
                ))
            })?)
        }
    };
    Ok(StateTarget {
        region: valid.region,
        bucket: valid.bucket,
        key: valid.state_key,
        sse,
        lock_table: valid.lock_table.map(|t| t.name),
        lockfile: valid.lock_mode.uses_lockfile(),
    })
}
