//! The input of rendering: the values a Terraform `backend "s3"` needs, already resolved.
//!
//! These types hold names and ARNs only. There are deliberately no credential fields: the
//! rendered files are published in a ConfigMap that anyone with read access to the namespace
//! can see, and Terraform gets its credentials from the environment (IRSA, Pod Identity) or
//! from the role named in `assume_role`.

use super::encryption::OpenTofuEncryption;

/// Everything rendered into the backend configuration, in Terraform's own terms.
///
/// The reconcile pipeline fills this from the spec and the observed AWS state (the KMS key ARN
/// is only known once the key exists); rendering itself makes no decisions beyond layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSettings {
    /// The state bucket (`bucket`).
    pub bucket: String,
    /// The state object key (`key`).
    pub key: String,
    /// The bucket's region (`region`).
    pub region: String,
    /// Server-side encryption of the state object (`encrypt`); always true in practice.
    pub encrypt: bool,
    /// The KMS key ARN (`kms_key_id`), in KMS encryption mode.
    pub kms_key_id: Option<String>,
    /// The DynamoDB lock table (`dynamodb_table`), in the DynamoDB and Both lock modes.
    pub dynamodb_table: Option<String>,
    /// S3-native locking (`use_lockfile`), in the Lockfile and Both lock modes.
    pub use_lockfile: bool,
    /// The role Terraform assumes, rendered as `assume_role = { role_arn = "..." }`.
    pub assume_role_arn: Option<String>,
    /// The key prefix of non-default workspaces (`workspace_key_prefix`).
    pub workspace_key_prefix: Option<String>,
    /// Custom service endpoints (S3-compatible stores, emulators), rendered as the `endpoints`
    /// object together with `use_path_style = true`.
    pub endpoints: Option<Endpoints>,
    /// OpenTofu's client-side state encryption with the backend's key (`encryption.tf` and
    /// `TF_ENCRYPTION`); not a backend argument.
    pub open_tofu_encryption: Option<OpenTofuEncryption>,
}

impl BackendSettings {
    /// Settings with only the required arguments and encryption on; everything optional unset.
    ///
    /// Callers (and tests) then set the optional fields they need, so adding a field here never
    /// silently changes what existing callers render.
    pub fn new(bucket: impl Into<String>, key: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            key: key.into(),
            region: region.into(),
            encrypt: true,
            kms_key_id: None,
            dynamodb_table: None,
            use_lockfile: false,
            assume_role_arn: None,
            workspace_key_prefix: None,
            endpoints: None,
            open_tofu_encryption: None,
        }
    }
}

/// Custom endpoint URLs of the services the S3 backend talks to, as in Terraform's
/// `endpoints = { ... }` object (Terraform >= 1.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The S3 endpoint (`endpoints.s3`).
    pub s3: String,
    /// The DynamoDB endpoint (`endpoints.dynamodb`), used for DynamoDB locking.
    pub dynamodb: String,
    /// The STS endpoint (`endpoints.sts`), used for `assume_role` and identity checks.
    pub sts: String,
    /// The IAM endpoint (`endpoints.iam`).
    pub iam: String,
}

impl Endpoints {
    /// Every service at one URL: the operator's `--aws-endpoint-url` points at a single
    /// S3-compatible store or emulator that serves all of them.
    pub fn all(url: impl Into<String>) -> Self {
        let url = url.into();
        Self { s3: url.clone(), dynamodb: url.clone(), sts: url.clone(), iam: url }
    }
}
