//! OpenTofu's client-side state and plan encryption for the backend's KMS key.
//!
//! The shape is OpenTofu's documented one (`terraform { encryption { ... } }`, OpenTofu >= 1.7):
//! an `aws_kms` key provider on the backend's key (`kms_key_id`, `region`, `key_spec = "AES_256"`
//! for the 32-byte keys `aes_gcm` takes), an `aes_gcm` method whose `keys` names that provider,
//! and `state` and `plan` blocks using the method with `enforced = true`, so that OpenTofu never
//! writes either in plain text. References (`keys = key_provider.aws_kms.NAME`,
//! `method = method.aes_gcm.NAME`) are HCL traversals, not strings: OpenTofu refuses strings there.
//!
//! `TF_ENCRYPTION` holds the same configuration for runners that take it from the environment:
//! OpenTofu parses that variable as the BODY of the `encryption` block (no `terraform` nor
//! `encryption` wrapper; HCL, or JSON when it starts with `{`), so it is rendered from the same
//! blocks without the two outer ones.

use hcl::expr::{Traversal, Variable};
use hcl::{Block, Body, Expression};

use super::RenderError;
use super::arguments::object;

/// ConfigMap key of the `terraform { encryption { ... } }` file.
pub const ENCRYPTION_TF_KEY: &str = "encryption.tf";
/// ConfigMap key (and environment variable name) of the same configuration for the environment.
pub const TF_ENCRYPTION_KEY: &str = "TF_ENCRYPTION";
/// Name of the key provider and of the method. Fixed forever: OpenTofu records these names in
/// the encrypted state, and a renamed provider or method can no longer decrypt it (only a
/// `fallback` block naming the old one could).
pub const ENCRYPTION_NAME: &str = "tfstate";
/// Key spec of the data keys: AES-GCM takes 16, 24 or 32-byte keys; this is 32.
pub const KEY_SPEC: &str = "AES_256";

/// What OpenTofu's `aws_kms` key provider needs, already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTofuEncryption {
    /// The backend's KMS key ARN (`kms_key_id`).
    pub kms_key_id: String,
    /// The key's region (`region`).
    pub region: String,
    /// The role the key provider assumes, like the backend's `assume_role`
    /// (`assume_role = { role_arn = "..." }`, an argument with an object value).
    pub assume_role_arn: Option<String>,
}

/// `encryption.tf` and `TF_ENCRYPTION`, as rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEncryption {
    /// `terraform { encryption { ... } }`.
    pub encryption_tf: String,
    /// The body of the `encryption` block, for the `TF_ENCRYPTION` environment variable.
    pub tf_encryption: String,
}

/// `a.b.c` as an HCL traversal expression.
fn traversal(root: &str, attrs: &[&str]) -> Expression {
    let builder = attrs.iter().fold(Traversal::builder(Variable::unchecked(root)), |b, a| b.attr(*a));
    Expression::from(builder.build())
}

/// The blocks inside `encryption { }`: key provider, method, state, plan.
fn encryption_blocks(enc: &OpenTofuEncryption) -> Vec<Block> {
    let mut provider = Block::builder("key_provider")
        .add_label("aws_kms")
        .add_label(ENCRYPTION_NAME)
        .add_attribute(("kms_key_id", enc.kms_key_id.as_str()))
        .add_attribute(("region", enc.region.as_str()))
        .add_attribute(("key_spec", KEY_SPEC));
    if let Some(role_arn) = &enc.assume_role_arn {
        provider = provider.add_attribute(("assume_role", object(&[("role_arn", role_arn)])));
    }
    let method = Block::builder("method")
        .add_label("aes_gcm")
        .add_label(ENCRYPTION_NAME)
        .add_attribute(("keys", traversal("key_provider", &["aws_kms", ENCRYPTION_NAME])))
        .build();
    let target = |name: &str| {
        Block::builder(name)
            .add_attribute(("method", traversal("method", &["aes_gcm", ENCRYPTION_NAME])))
            .add_attribute(("enforced", true))
            .build()
    };
    vec![provider.build(), method, target("state"), target("plan")]
}

/// Renders `encryption.tf` and `TF_ENCRYPTION` for `enc`.
///
/// # Errors
///
/// [`RenderError::Format`] if hcl-rs fails to format one of them.
pub fn render_encryption(enc: &OpenTofuEncryption) -> Result<RenderedEncryption, RenderError> {
    let blocks = encryption_blocks(enc);
    let encryption = Block::builder("encryption").add_blocks(blocks.clone()).build();
    let file = Body::builder().add_block(Block::builder("terraform").add_block(encryption).build()).build();
    let env = Body::builder().add_blocks(blocks).build();
    Ok(RenderedEncryption {
        encryption_tf: super::format(&file, hcl::format::Formatter::builder(), ENCRYPTION_TF_KEY)?,
        tf_encryption: super::format(&env, hcl::format::Formatter::builder(), TF_ENCRYPTION_KEY)?,
    })
}
