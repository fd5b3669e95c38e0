//! Tenancy, pure: which `TerraformStatePolicy` applies to a namespace ([`resolve`]) and
//! whether a backend keeps to it ([`check`]). No client, no clock, no environment: policy
//! objects and namespace labels in, allowed values and violations out, so that a violation is
//! found before any AWS call.
//!
//! ```text
//! let policy = resolve(&policies, namespace, &namespace_labels);   // once per reconcile
//! let account = policy.backend_account_id(operator_account_id);    // hub and spoke aware
//! check(&policy, &Target { .. })?;                                  // Vec<Violation>
//! // then: policy.operator_role_arn (credentials), policy.effective_permissions_boundary(..),
//! //       policy.role_path(), policy.principal_org_id (trust and key policy conditions)
//! ```
//!
//! The rules, the defaults and the precedence are documented for cluster administrators in
//! `docs/tenancy.md`.

mod check;
mod pattern;
mod resolve;

use std::fmt;

pub use check::{Rule, Target, Violation, check};
pub use pattern::Pattern;
pub use resolve::{resolve, specificity};

/// What [`EffectivePolicy::policy_name`] says when no policy object applies.
pub const BUILT_IN_DEFAULT: &str = "built-in default";

/// Where the rules of an [`EffectivePolicy`] come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicySource {
    /// The `TerraformStatePolicy` of this name.
    Policy(String),
    /// No policy selects the namespace: the operator's built-in default.
    BuiltInDefault,
}

impl fmt::Display for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicySource::Policy(name) => write!(f, "TerraformStatePolicy {name:?}"),
            PolicySource::BuiltInDefault => f.write_str("the built-in default policy"),
        }
    }
}

/// Which values a rule allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// Any value.
    Any,
    /// Values in the account the backend lives in ([`EffectivePolicy::backend_account_id`]).
    OwnAccount,
    /// Values matching one of these patterns; none when empty.
    Only(Vec<Pattern>),
}

/// A policy object that cannot be evaluated and may select the namespace: while there is
/// one, [`check`] refuses every backend of the namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidPolicy {
    /// The policy's name.
    pub name: String,
    /// What is wrong with it.
    pub problem: String,
}

/// The rules for the backends of one namespace, `{namespace}` replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectivePolicy {
    /// The policy that applies, or the built-in default.
    pub source: PolicySource,
    /// The namespace these rules are for.
    pub namespace: String,
    /// Names of the other policies that select the namespace too, in precedence order. They
    /// do not apply; worth a log line when not empty.
    pub also_selected_by: Vec<String>,
    /// Policies that may select the namespace but cannot be evaluated.
    pub invalid: Vec<InvalidPolicy>,
    /// Allowed bucket names (`Any` or `Only`).
    pub bucket_names: Allowed,
    /// Allowed lock table names (`Any` or `Only`).
    pub lock_table_names: Allowed,
    /// Allowed runners' role names (`Any` or `Only`).
    pub role_names: Allowed,
    /// Allowed aliases of created KMS keys (`Any` or `Only`).
    pub kms_aliases: Allowed,
    /// Whether `adoptExisting: true` is honoured.
    pub allow_adoption: bool,
    /// Namespaces whose service accounts may be trusted (`Only`).
    pub service_account_namespaces: Allowed,
    /// OIDC providers that may be trusted (`OwnAccount` or `Only`).
    pub oidc_providers: Allowed,
    /// Accounts of `awsPrincipals` and key admins (`OwnAccount`, `Any` or `Only`).
    pub aws_accounts: Allowed,
    /// When set, the trust policy's statement for `awsPrincipals` and the key policy's
    /// statement for key admins must carry `"StringEquals": {"aws:PrincipalOrgID": <this>}`.
    pub principal_org_id: Option<String>,
    /// Existing KMS keys that may be used (`OwnAccount` or `Only`).
    pub existing_keys: Allowed,
    /// Permissions boundary every runners' role gets.
    pub permissions_boundary_arn: Option<String>,
    /// IAM path every runners' role gets (`None`: `/`).
    pub iam_path: Option<String>,
    /// IAM role the operator assumes for this namespace (hub and spoke).
    pub operator_role_arn: Option<String>,
    /// Allowed audit trail names (`Any` only without a policy; a policy that omits
    /// `allowedNames.trails` allows [`DEFAULT_TRAIL_PATTERN`]).
    pub trail_names: Allowed,
}

/// The trail names a policy allows when it omits `allowedNames.trails`: those derived from
/// the namespace (`spec.audit.cloudTrail.trailName`'s default is `tfstate-<namespace>.<name>`).
/// A `.` after the namespace, which namespace names cannot hold: with a `-`, namespace `team`
/// could take `tfstate-team-x-app`, the default name of backend `app` of namespace `team-x`.
pub const DEFAULT_TRAIL_PATTERN: &str = "tfstate-{namespace}.*";

impl EffectivePolicy {
    /// The applied policy's name, or [`BUILT_IN_DEFAULT`].
    pub fn policy_name(&self) -> &str {
        match &self.source {
            PolicySource::Policy(name) => name,
            PolicySource::BuiltInDefault => BUILT_IN_DEFAULT,
        }
    }

    /// The account the backend lives in: the account of [`Self::operator_role_arn`] when the
    /// policy names one, else the operator's own (`operator_account_id`, from
    /// `sts:GetCallerIdentity`). "Own account" in the rules means this account.
    pub fn backend_account_id<'a>(&'a self, operator_account_id: &'a str) -> &'a str {
        self.operator_role_arn.as_deref().and_then(arn_account).unwrap_or(operator_account_id)
    }

    /// The boundary the runners' role gets: the policy's, else the spec's own. [`check`]
    /// refuses a spec boundary that differs from the policy's.
    pub fn effective_permissions_boundary<'a>(&'a self, spec: Option<&'a str>) -> Option<&'a str> {
        self.permissions_boundary_arn.as_deref().or(spec)
    }

    /// The IAM path of the runners' role: the policy's, else `/`.
    pub fn role_path(&self) -> &str {
        self.iam_path.as_deref().unwrap_or("/")
    }
}

/// The account field of an ARN (`arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`), when it is
/// twelve digits.
pub(crate) fn arn_account(arn: &str) -> Option<&str> {
    let mut fields = arn.splitn(6, ':');
    if fields.next() != Some("arn") {
        return None;
    }
    let account = fields.nth(3)?;
    fields.next()?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

#[cfg(test)]
mod tests;
