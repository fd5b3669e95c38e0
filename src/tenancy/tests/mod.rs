//! Unit tests of tenancy, as tables. Policies come from YAML, as cluster administrators
//! write them.

mod check;
mod pattern;
mod resolve;
mod samples;

use std::collections::BTreeMap;

use super::*;
use crate::api::policy::TerraformStatePolicySpec;
use crate::api::{ServiceAccountRef, TerraformStatePolicy};

/// The operator's own account in these tests.
const ACCOUNT: &str = "123456789012";
/// Another account of the same organisation (hub and spoke).
const SPOKE: &str = "210987654321";
/// An account nobody allowed.
const FOREIGN: &str = "999999999999";

fn policy(name: &str, spec: &str) -> TerraformStatePolicy {
    let spec: TerraformStatePolicySpec = serde_yaml_ng::from_str(spec).expect("test policy parses");
    TerraformStatePolicy::new(name, spec)
}

/// Namespace labels in a table row.
type Pairs = &'static [(&'static str, &'static str)];

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The resolved values of one backend, owned, with the defaults `validate` derives for the
/// object `NAMESPACE/app`.
#[derive(Clone, Debug)]
struct Backend {
    bucket: String,
    lock_table: Option<String>,
    role: String,
    alias: Option<String>,
    admins: Vec<String>,
    existing_key: Option<String>,
    adopt: bool,
    service_accounts: Vec<ServiceAccountRef>,
    oidc: Option<String>,
    principals: Vec<String>,
    boundary: Option<String>,
    trail: Option<String>,
}

impl Backend {
    fn in_namespace(namespace: &str) -> Self {
        Self {
            bucket: format!("acme-tfstate-{namespace}-app"),
            lock_table: Some(format!("acme-tfstate-{namespace}-app-lock")),
            role: format!("tfstate-{namespace}-app"),
            alias: Some(format!("alias/tfstate-{namespace}-app")),
            admins: Vec::new(),
            existing_key: None,
            adopt: false,
            service_accounts: vec![sa(namespace, "terraform")],
            oidc: Some(format!("arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC")),
            principals: vec![format!("arn:aws:iam::{ACCOUNT}:role/ci")],
            boundary: None,
            trail: None,
        }
    }

    fn target(&self) -> Target<'_> {
        Target {
            operator_account_id: ACCOUNT,
            bucket: &self.bucket,
            lock_table: self.lock_table.as_deref(),
            role_name: &self.role,
            kms_alias: self.alias.as_deref(),
            kms_key_admins: &self.admins,
            existing_key_arn: self.existing_key.as_deref(),
            adopt_existing: self.adopt,
            service_accounts: &self.service_accounts,
            oidc_provider_arn: self.oidc.as_deref(),
            aws_principals: &self.principals,
            permissions_boundary_arn: self.boundary.as_deref(),
            trail_name: self.trail.as_deref(),
        }
    }
}

fn sa(namespace: &str, name: &str) -> ServiceAccountRef {
    ServiceAccountRef { namespace: namespace.into(), name: name.into() }
}

/// The rules and paths of the violations, or nothing.
fn broken(policy: &EffectivePolicy, backend: &Backend) -> Vec<(Rule, String)> {
    match check(policy, &backend.target()) {
        Ok(()) => Vec::new(),
        Err(v) => v.into_iter().map(|v| (v.rule, v.path)).collect(),
    }
}
