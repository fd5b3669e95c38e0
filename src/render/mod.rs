//! Rendering of the Terraform backend configuration published in the ConfigMap.
//!
//! Three forms of the same settings, all derived from one argument list (and, with OpenTofu's
//! client-side encryption, `encryption.tf` and `TF_ENCRYPTION`, see [`encryption`]):
//! - `backend.tf`: a complete `terraform { backend "s3" { ... } }` block;
//! - `backend.tfbackend`: top-level attributes for `terraform init -backend-config=FILE`;
//! - flat keys, one per argument, each usable as `-backend-config=KEY=VALUE` (Flux
//!   tofu-controller's `backendConfigsFrom` with `keys:`).
//!
//! HCL is built as hcl-rs structures and printed by its formatter, never concatenated as text,
//! so quoting and escaping (quotes, newlines, `${` template markers) are always right. Argument
//! names are Terraform >= 1.6's: `assume_role` and `endpoints` are arguments with object values
//! (`assume_role = { role_arn = "..." }`), because Terraform rejects them as nested blocks.
//!
//! Pure code: no I/O, clock or environment.

mod arguments;
mod dr;
pub mod encryption;
mod settings;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use hcl::format::{Format, Formatter};
use hcl::{Attribute, Block, Body, Expression};

use self::arguments::{Argument, arguments};
pub use self::dr::{
    BACKEND_DR_TFBACKEND_KEY, REPLICA_BUCKET_KEY, REPLICA_KMS_KEY_ID_KEY, REPLICA_REGION_KEY, ReplicaSettings,
    render_replica,
};
pub use self::encryption::{
    ENCRYPTION_TF_KEY, OpenTofuEncryption, RenderedEncryption, TF_ENCRYPTION_KEY, render_encryption,
};
pub use self::settings::{BackendSettings, Endpoints};

/// ConfigMap key of the complete backend block.
pub const BACKEND_TF_KEY: &str = "backend.tf";
/// ConfigMap key of the partial configuration file.
pub const BACKEND_TFBACKEND_KEY: &str = "backend.tfbackend";

/// Rendering failed: hcl-rs could not format a structure.
///
/// Not expected with the structures built here (string values are escaped, names are fixed),
/// but formatting is fallible in hcl-rs's API and a panic in the reconcile loop is worse than a
/// reported error.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Formatting one output as HCL failed.
    #[error("cannot format {output} as HCL: {source}")]
    Format {
        /// Which output: `backend.tf`, `backend.tfbackend` or the flat key's name.
        output: String,
        /// The formatter's error.
        source: hcl::Error,
    },
}

/// The rendered backend configuration, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedBackend {
    /// A complete `terraform { backend "s3" { ... } }` block.
    pub backend_tf: String,
    /// The same settings as top-level attributes, for `-backend-config=backend.tfbackend`.
    pub backend_tfbackend: String,
    /// One entry per argument present, value raw (strings unquoted, booleans `true`/`false`,
    /// objects as a one-line HCL object expression), for `-backend-config=KEY=VALUE`.
    pub flat: BTreeMap<String, String>,
    /// OpenTofu's `encryption.tf` and `TF_ENCRYPTION`, when the settings ask for them.
    pub encryption: Option<RenderedEncryption>,
}

impl RenderedBackend {
    /// The ConfigMap `data`: `backend.tf`, `backend.tfbackend` and every flat key.
    ///
    /// The file keys contain a dot and no argument name does, so the two kinds never collide;
    /// `TF_ENCRYPTION` is upper case, which no argument name is.
    pub fn into_configmap_data(self) -> BTreeMap<String, String> {
        let mut data = self.flat;
        data.insert(BACKEND_TF_KEY.to_owned(), self.backend_tf);
        data.insert(BACKEND_TFBACKEND_KEY.to_owned(), self.backend_tfbackend);
        if let Some(enc) = self.encryption {
            data.insert(ENCRYPTION_TF_KEY.to_owned(), enc.encryption_tf);
            data.insert(TF_ENCRYPTION_KEY.to_owned(), enc.tf_encryption);
        }
        data
    }
}

/// Renders the backend configuration for `settings`.
///
/// The output depends on `settings` only, with arguments in a fixed order, so an unchanged
/// backend renders byte-identical files and the ConfigMap is not rewritten needlessly.
///
/// # Errors
///
/// [`RenderError::Format`] if hcl-rs fails to format one of the outputs.
pub fn render(settings: &BackendSettings) -> Result<RenderedBackend, RenderError> {
    let args = arguments(settings);
    Ok(RenderedBackend {
        backend_tf: render_backend_tf(&args)?,
        backend_tfbackend: render_tfbackend(&args)?,
        flat: render_flat(&args)?,
        encryption: settings.open_tofu_encryption.as_ref().map(render_encryption).transpose()?,
    })
}

fn attributes(args: &[Argument]) -> impl Iterator<Item = Attribute> + '_ {
    args.iter().map(|arg| Attribute::new(arg.name, arg.value.clone()))
}

fn render_backend_tf(args: &[Argument]) -> Result<String, RenderError> {
    let backend = Block::builder("backend").add_label("s3").add_attributes(attributes(args)).build();
    let body = Body::builder().add_block(Block::builder("terraform").add_block(backend).build()).build();
    format(&body, Formatter::builder(), BACKEND_TF_KEY)
}

fn render_tfbackend(args: &[Argument]) -> Result<String, RenderError> {
    let body = Body::builder().add_attributes(attributes(args)).build();
    format(&body, Formatter::builder(), BACKEND_TFBACKEND_KEY)
}

fn render_flat(args: &[Argument]) -> Result<BTreeMap<String, String>, RenderError> {
    args.iter().map(|arg| Ok((arg.name.to_owned(), flat_value(arg)?))).collect()
}

/// The value as Terraform reads it after `KEY=` on the command line: primitive arguments are
/// converted from the raw text (so no quotes), object arguments are parsed as an HCL expression.
fn flat_value(arg: &Argument) -> Result<String, RenderError> {
    match &arg.value {
        Expression::String(value) => Ok(value.clone()),
        Expression::Bool(value) => Ok(value.to_string()),
        // One line, because the value travels as a single command-line argument.
        other => format(other, Formatter::builder().compact(true), arg.name),
    }
}

/// Formats `value` with hcl-rs's formatter, naming `output` in the error.
fn format<T: Format>(
    value: &T,
    builder: hcl::format::FormatterBuilder<'_>,
    output: &str,
) -> Result<String, RenderError> {
    value
        .format_string(&mut builder.build_vec())
        .map_err(|source| RenderError::Format { output: output.to_owned(), source })
}
