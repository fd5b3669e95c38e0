//! Which policy applies to a namespace, and its rules with `{namespace}` replaced.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use super::{Allowed, EffectivePolicy, InvalidPolicy, Pattern, PolicySource};
use crate::api::TerraformStatePolicy;
use crate::api::policy::{LabelOperator, LabelRequirement, NAMESPACE_PLACEHOLDER, NamespaceSelector};

/// How specific a selector is: the number of its requirements, every `matchLabels` entry and
/// every `matchExpressions` entry counting one. `{}` (every namespace) is 0.
pub fn specificity(selector: &NamespaceSelector) -> usize {
    selector.match_labels.len() + selector.match_expressions.len()
}

/// The rules for the backends of `namespace`, whose labels are `namespace_labels`.
///
/// Of the policies whose selector selects the labels, the one with the highest
/// [`specificity`] applies; on a tie, the one whose name sorts first (byte-wise). No policy
/// selects the namespace: the built-in default. A policy whose selector cannot be evaluated
/// (a requirement `In`/`NotIn` without values, `Exists`/`DoesNotExist` with values) and whose
/// other requirements hold is listed in [`EffectivePolicy::invalid`], and [`super::check`]
/// then refuses every backend: it may be meant for this namespace.
///
/// `policies` must be the complete set: resolving against a cache that has not synced yet
/// would apply the built-in default where a policy exists.
pub fn resolve(
    policies: &[TerraformStatePolicy],
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
) -> EffectivePolicy {
    let mut selecting = Vec::new();
    let mut invalid = Vec::new();
    for policy in policies {
        let name = policy.metadata.name.clone().unwrap_or_default();
        match selects(&policy.spec.namespace_selector, namespace_labels) {
            Ok(true) => selecting.push((Reverse(specificity(&policy.spec.namespace_selector)), name, policy)),
            Ok(false) => {}
            Err(problem) => invalid.push(InvalidPolicy { name, problem }),
        }
    }
    selecting.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    invalid.sort_by(|a, b| a.name.cmp(&b.name));
    let mut effective = match selecting.first() {
        Some((_, name, policy)) => from_policy(name, policy, namespace),
        None => built_in_default(namespace),
    };
    effective.also_selected_by = selecting.iter().skip(1).map(|(_, name, _)| name.clone()).collect();
    effective.invalid = invalid;
    effective
}

/// The rules without any policy object: own-namespace service accounts, principals, OIDC
/// providers and existing keys of the backend's account only, no adoption, no name
/// restrictions (audit trail names included), no boundary, no path, the operator's own
/// credentials.
///
/// Existing keys of the backend's account are allowed here, unlike under a policy that names
/// none, so that a single-tenant install without any policy keeps working
/// (`samples/kms-existing-key.yaml`); docs/tenancy.md explains the risk and the catch-all
/// policy that removes it.
fn built_in_default(namespace: &str) -> EffectivePolicy {
    EffectivePolicy {
        source: PolicySource::BuiltInDefault,
        namespace: namespace.to_string(),
        also_selected_by: Vec::new(),
        invalid: Vec::new(),
        bucket_names: Allowed::Any,
        lock_table_names: Allowed::Any,
        role_names: Allowed::Any,
        kms_aliases: Allowed::Any,
        allow_adoption: false,
        service_account_namespaces: Allowed::Only(vec![Pattern::exact(namespace)]),
        oidc_providers: Allowed::OwnAccount,
        aws_accounts: Allowed::OwnAccount,
        principal_org_id: None,
        existing_keys: Allowed::OwnAccount,
        permissions_boundary_arn: None,
        iam_path: None,
        operator_role_arn: None,
        trail_names: Allowed::Any,
    }
}

fn from_policy(name: &str, policy: &TerraformStatePolicy, namespace: &str) -> EffectivePolicy {
    let spec = &policy.spec;
    let names = |list: &Option<Vec<String>>| match list {
        Some(list) => Allowed::Only(Pattern::all(list, namespace)),
        None => Allowed::Any,
    };
    let substitute = |value: &Option<String>| value.as_ref().map(|v| v.replace(NAMESPACE_PLACEHOLDER, namespace));
    let trust = &spec.trust;
    EffectivePolicy {
        source: PolicySource::Policy(name.to_string()),
        namespace: namespace.to_string(),
        also_selected_by: Vec::new(),
        invalid: Vec::new(),
        bucket_names: names(&spec.allowed_names.buckets),
        lock_table_names: names(&spec.allowed_names.lock_tables),
        role_names: names(&spec.allowed_names.roles),
        kms_aliases: names(&spec.allowed_names.kms_aliases),
        allow_adoption: spec.allow_adoption,
        service_account_namespaces: Allowed::Only(match &trust.allowed_service_account_namespaces {
            Some(list) => Pattern::all(list, namespace),
            None => vec![Pattern::exact(namespace)],
        }),
        oidc_providers: match &trust.allowed_oidc_provider_arns {
            Some(list) => Allowed::Only(Pattern::all(list, namespace)),
            None => Allowed::OwnAccount,
        },
        aws_accounts: match (&trust.allowed_aws_account_ids, &trust.principal_org_id) {
            (Some(ids), _) => Allowed::Only(ids.iter().map(|id| Pattern::exact(id)).collect()),
            (None, Some(_)) => Allowed::Any,
            (None, None) => Allowed::OwnAccount,
        },
        principal_org_id: trust.principal_org_id.clone(),
        existing_keys: Allowed::Only(Pattern::all(&spec.encryption.allowed_existing_key_arns, namespace)),
        permissions_boundary_arn: substitute(&spec.role.permissions_boundary_arn),
        iam_path: substitute(&spec.role.iam_path),
        operator_role_arn: substitute(&spec.operator_role_arn),
        // Deny by default: an account-wide, billed resource, new to existing policies.
        trail_names: Allowed::Only(match &spec.allowed_names.trails {
            Some(list) => Pattern::all(list, namespace),
            None => vec![Pattern::new(super::DEFAULT_TRAIL_PATTERN, namespace)],
        }),
    }
}

/// Whether `selector` selects `labels`, with the semantics of Kubernetes' `LabelSelector`.
/// An invalid requirement is an error, unless another requirement already fails: then the
/// selector selects nothing here whatever the invalid one meant.
pub(super) fn selects(selector: &NamespaceSelector, labels: &BTreeMap<String, String>) -> Result<bool, String> {
    let label_results = selector.match_labels.iter().map(|(k, v)| Ok(labels.get(k) == Some(v)));
    let expression_results = selector.match_expressions.iter().map(|r| requirement_holds(r, labels));
    let mut problems = Vec::new();
    for result in label_results.chain(expression_results) {
        match result {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() { Ok(true) } else { Err(problems.join("; ")) }
}

fn requirement_holds(r: &LabelRequirement, labels: &BTreeMap<String, String>) -> Result<bool, String> {
    let value = labels.get(&r.key);
    match r.operator {
        LabelOperator::In | LabelOperator::NotIn if r.values.is_empty() => {
            Err(format!("namespaceSelector requirement on {:?} with {:?} has no values", r.key, r.operator))
        }
        LabelOperator::Exists | LabelOperator::DoesNotExist if !r.values.is_empty() => {
            Err(format!("namespaceSelector requirement on {:?} with {:?} must have no values", r.key, r.operator))
        }
        LabelOperator::In => Ok(value.is_some_and(|v| r.values.contains(v))),
        LabelOperator::NotIn => Ok(value.is_none_or(|v| !r.values.contains(v))),
        LabelOperator::Exists => Ok(value.is_some()),
        LabelOperator::DoesNotExist => Ok(value.is_none()),
    }
}
