//! `tfstate-operator render`: the backend configuration of an object, offline. Values
//! only AWS knows (ARNs, account) come from the object's status when present.

use crate::api::{EncryptionMode, TerraformStateBackend};
use crate::reconcile::validate::{ObjectRef, OperatorDefaults, ValidationError, validate};
use crate::render::{BackendSettings, Endpoints, OpenTofuEncryption, RenderError, RenderedBackend, render};

/// Why an object could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// Not a TerraformStateBackend in YAML.
    #[error("not a TerraformStateBackend object: {0}")]
    Parse(#[from] serde_yaml_ng::Error),
    /// The spec is invalid.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// Renders the backend configuration of the object in `yaml`.
pub fn render_object(
    yaml: &str,
    defaults: &OperatorDefaults,
    endpoint_url: Option<&str>,
) -> Result<RenderedBackend, OfflineError> {
    let obj: TerraformStateBackend = serde_yaml_ng::from_str(yaml)?;
    let namespace = obj.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = obj.metadata.name.clone().unwrap_or_default();
    let valid = validate(ObjectRef { namespace: &namespace, name: &name }, &obj.spec, defaults)?;
    let status = obj.status.clone().unwrap_or_default();
    let mut s = BackendSettings::new(&valid.bucket, &valid.state_key, &valid.region);
    s.kms_key_id = match &obj.spec.encryption.kms_key {
        Some(k) if k.existing_key_arn.is_some() => k.existing_key_arn.clone(),
        _ if obj.spec.encryption.mode == EncryptionMode::Kms => status.kms_key_arn.clone(),
        _ => None,
    };
    s.dynamodb_table = valid.lock_table.as_ref().map(|t| t.name.clone());
    s.use_lockfile = valid.lock_mode.uses_lockfile();
    s.workspace_key_prefix = valid.workspace_key_prefix.clone();
    // The role's ARN is deterministic once the account is known.
    s.assume_role_arn = valid
        .render_assume_role
        .then(|| {
            status
                .role_arn
                .clone()
                .or_else(|| status.account_id.as_ref().map(|a| format!("arn:aws:iam::{a}:role/{}", valid.role.name)))
        })
        .flatten();
    s.endpoints = endpoint_url.map(Endpoints::all);
    // Only once the key is known (an existing key, or a created one in status).
    s.open_tofu_encryption = s.kms_key_id.clone().filter(|_| valid.open_tofu_encryption).map(|kms_key_id| {
        OpenTofuEncryption { kms_key_id, region: valid.region.clone(), assume_role_arn: s.assume_role_arn.clone() }
    });
    Ok(render(&s)?)
}
