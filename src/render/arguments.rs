//! The `backend "s3"` arguments for a [`BackendSettings`], as HCL expressions.
//!
//! This list is the single source of truth for all three outputs (`backend.tf`,
//! `backend.tfbackend` and the flat keys), so they can never disagree about which arguments
//! exist or what they hold.

use hcl::{Expression, Identifier, Object, ObjectKey};

use super::settings::{BackendSettings, Endpoints};

/// One backend argument: its Terraform (>= 1.6) name and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Argument {
    /// The argument name, also the flat ConfigMap key.
    pub(super) name: &'static str,
    /// The value; objects stay objects so they render as `name = { ... }`.
    pub(super) value: Expression,
}

impl Argument {
    fn new(name: &'static str, value: impl Into<Expression>) -> Self {
        Self { name, value: value.into() }
    }
}

/// The arguments to render, in a fixed order: required ones first, then encryption, locking,
/// workspaces, access and endpoints. Optional arguments appear only when set, so Terraform's
/// own defaults apply otherwise and the output stays short.
pub(super) fn arguments(settings: &BackendSettings) -> Vec<Argument> {
    let mut args = vec![
        Argument::new("bucket", settings.bucket.as_str()),
        Argument::new("key", settings.key.as_str()),
        Argument::new("region", settings.region.as_str()),
        // Rendered even when false: an explicit value documents the choice.
        Argument::new("encrypt", settings.encrypt),
    ];
    if let Some(kms_key_id) = &settings.kms_key_id {
        args.push(Argument::new("kms_key_id", kms_key_id.as_str()));
    }
    if let Some(table) = &settings.dynamodb_table {
        args.push(Argument::new("dynamodb_table", table.as_str()));
    }
    if settings.use_lockfile {
        args.push(Argument::new("use_lockfile", true));
    }
    if let Some(prefix) = &settings.workspace_key_prefix {
        args.push(Argument::new("workspace_key_prefix", prefix.as_str()));
    }
    if let Some(role_arn) = &settings.assume_role_arn {
        // An argument with an object value, never a nested `assume_role { }` block (Terraform
        // refuses blocks here) and never the removed top-level `role_arn`.
        args.push(Argument::new("assume_role", object(&[("role_arn", role_arn)])));
    }
    if let Some(endpoints) = &settings.endpoints {
        args.push(Argument::new("endpoints", endpoints_object(endpoints)));
        // Custom endpoints (S3-compatible stores, emulators) rarely serve virtual-hosted
        // bucket names, so path-style addressing goes with them.
        args.push(Argument::new("use_path_style", true));
    }
    args
}

/// The `endpoints` object, keys in Terraform's documented order of the services we use.
fn endpoints_object(endpoints: &Endpoints) -> Expression {
    object(&[
        ("s3", &endpoints.s3),
        ("dynamodb", &endpoints.dynamodb),
        ("sts", &endpoints.sts),
        ("iam", &endpoints.iam),
    ])
}

/// An HCL object of string values with bare identifier keys (`{ role_arn = "..." }`), the way
/// Terraform's documentation writes them.
pub(super) fn object(pairs: &[(&'static str, &String)]) -> Expression {
    let object: Object<ObjectKey, Expression> = pairs
        .iter()
        .map(|(key, value)| (ObjectKey::Identifier(Identifier::from(*key)), Expression::String((*value).clone())))
        .collect();
    Expression::Object(object)
}
