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
    // The locks of the spec's mode and of the mode runners were last given (status.lockMode):
    // they differ while a mode change is refused or not yet published, and a run may hold
    // either.
    let status = obj.status.as_ref();
    let runners = status.and_then(|s| s.lock_mode);
    let known_table = status.and_then(|s| s.lock_table_arn.as_deref()).and_then(|arn| arn.rsplit_once("table/"));
    let lock_table = valid
        .lock_table
        .map(|t| t.name)
        .or_else(|| runners.filter(|m| m.uses_table()).and(known_table.map(|(_, name)| name.to_string())));
    Ok(StateTarget {
        region: valid.region,
        bucket: valid.bucket,
        key: valid.state_key,
        sse,
        lock_table,
        lockfile: valid.lock_mode.uses_lockfile() || runners.is_some_and(|m| m.uses_lockfile()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(yaml: &str) -> TerraformStateBackend {
        serde_yaml_ng::from_str(yaml).expect("test object")
    }

    const BASE: &str =
        "apiVersion: tfstate.dev/v1alpha1\nkind: TerraformStateBackend\nmetadata: {name: app, namespace: team}\n";

    #[test]
    fn target_of_a_created_key_needs_the_status() {
        let spec = "spec: {region: eu-west-1, bucket: {name: acme-b}, access: {trust: {awsPrincipals: ['arn:aws:iam::123456789012:root']}}}\n";
        let err = target_from_object(&obj(&format!("{BASE}{spec}")), &OperatorDefaults::default()).unwrap_err();
        assert!(err.to_string().contains("no status.kmsKeyArn") && err.to_string().contains("-n team app"), "{err}");
        let key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let with_status = format!("{BASE}{spec}status: {{kmsKeyArn: '{key}'}}\n");
        let t = target_from_object(&obj(&with_status), &OperatorDefaults::default()).expect("target");
        assert_eq!(t.sse, Sse::Kms(key.into()));
        assert_eq!((t.bucket.as_str(), t.key.as_str()), ("acme-b", "team/app/terraform.tfstate"));
        assert_eq!(t.lock_table.as_deref(), Some("acme-b-lock"));
        assert!(!t.lockfile);
        assert_eq!(t.lock_id(), "acme-b/team/app/terraform.tfstate");
        assert_eq!(t.digest_id(), "acme-b/team/app/terraform.tfstate-md5");
    }

    /// A mode change not yet published (or refused): the locks of both modes are checked.
    #[test]
    fn target_checks_the_locks_runners_were_given_too() {
        let spec = "spec: {bucket: {name: acme-b}, encryption: {mode: AES256}, locking: {mode: Lockfile}, access: {trust: {awsPrincipals: ['arn:aws:iam::123456789012:root']}}}\n";
        let status =
            "status: {lockMode: DynamoDB, lockTableArn: 'arn:aws:dynamodb:eu-west-1:123456789012:table/acme-b-lock'}\n";
        let defaults = OperatorDefaults { region: Some("eu-west-1".into()) };
        let t = target_from_object(&obj(&format!("{BASE}{spec}{status}")), &defaults).expect("target");
        assert_eq!((t.lock_table.as_deref(), t.lockfile), (Some("acme-b-lock"), true));
        let spec = spec.replace("mode: Lockfile", "mode: DynamoDB");
        let status = "status: {lockMode: Lockfile}\n";
        let t = target_from_object(&obj(&format!("{BASE}{spec}{status}")), &defaults).expect("target");
        assert_eq!((t.lock_table.as_deref(), t.lockfile), (Some("acme-b-lock"), true));
    }

    #[test]
    fn target_of_sse_s3_with_lock_files() {
        let spec = "spec: {bucket: {name: acme-b}, stateKey: s/terraform.tfstate, encryption: {mode: AES256}, locking: {mode: Lockfile}, access: {trust: {awsPrincipals: ['arn:aws:iam::123456789012:root']}}}\n";
        let defaults = OperatorDefaults { region: Some("eu-central-1".into()) };
        let t = target_from_object(&obj(&format!("{BASE}{spec}")), &defaults).expect("target");
        assert_eq!((&t.sse, t.region.as_str(), &t.lock_table, t.lockfile), (&Sse::Aes256, "eu-central-1", &None, true));
        assert_eq!(t.lockfile_key(), "s/terraform.tfstate.tflock");
    }
}
