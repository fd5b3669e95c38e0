//! Whether one backend keeps to the policy of its namespace.

use std::fmt;

use super::{Allowed, EffectivePolicy, arn_account};
use crate::api::ServiceAccountRef;

/// What [`check`] judges: the resolved values of one backend (after defaults), borrowed.
/// Every field maps to one field of `reconcile::valid::ValidSpec` (docs/tenancy.md).
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The operator's own account (`sts:GetCallerIdentity` of its credentials). With an
    /// `operatorRoleArn` the backend lives in that role's account instead, which [`check`]
    /// takes from the ARN.
    pub operator_account_id: &'a str,
    /// The state bucket's name.
    pub bucket: &'a str,
    /// The lock table's name, when the lock mode uses one.
    pub lock_table: Option<&'a str>,
    /// The runners' role name.
    pub role_name: &'a str,
    /// The alias of the key the operator creates, when it creates one.
    pub kms_alias: Option<&'a str>,
    /// Extra administrators of the key the operator creates.
    pub kms_key_admins: &'a [String],
    /// The existing key, when the backend uses one.
    pub existing_key_arn: Option<&'a str>,
    /// `spec.adoptExisting`.
    pub adopt_existing: bool,
    /// Trusted service accounts.
    pub service_accounts: &'a [ServiceAccountRef],
    /// Trusted IRSA OIDC provider.
    pub oidc_provider_arn: Option<&'a str>,
    /// Trusted IAM principals.
    pub aws_principals: &'a [String],
    /// `spec.access.permissionsBoundaryArn`.
    pub permissions_boundary_arn: Option<&'a str>,
    /// The audit trail's name, when the spec asks for one.
    pub trail_name: Option<&'a str>,
}

/// Which rule a [`Violation`] breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// `allowedNames.buckets`.
    BucketName,
    /// `allowedNames.lockTables`.
    LockTableName,
    /// `allowedNames.roles`.
    RoleName,
    /// `allowedNames.kmsAliases`.
    KmsAlias,
    /// `allowAdoption`.
    Adoption,
    /// `trust.allowedServiceAccountNamespaces`.
    ServiceAccountNamespace,
    /// `trust.allowedOidcProviderArns`.
    OidcProvider,
    /// `trust.allowedAwsAccountIds`, for `awsPrincipals`.
    PrincipalAccount,
    /// `trust.allowedAwsAccountIds`, for KMS key admins.
    KeyAdminAccount,
    /// `encryption.allowedExistingKeyArns`.
    ExistingKey,
    /// `role.permissionsBoundaryArn`.
    PermissionsBoundary,
    /// A policy that cannot be evaluated may select the namespace.
    InvalidPolicy,
    /// `allowedNames.trails` (or its default, `tfstate-{namespace}.*`).
    TrailName,
}

/// One way a backend breaks its namespace's policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The rule broken.
    pub rule: Rule,
    /// JSON path of the backend's field, e.g. `spec.bucket.name`. List entries are named by
    /// their value, not their index (the resolved lists are sorted).
    pub path: String,
    /// The offending value.
    pub value: String,
    /// What the policy allows there.
    pub allowed: String,
    /// The policy: `TerraformStatePolicy "NAME"` or `the built-in default policy`.
    pub policy: String,
    /// The backend's namespace.
    pub namespace: String,
}

impl Violation {
    /// What is wrong and what to do, without the path (as `FieldError::message`).
    pub fn message(&self) -> String {
        if self.rule == Rule::InvalidPolicy {
            return format!(
                "{} cannot be applied to namespace {:?}: {}; a cluster administrator must fix that policy, and nothing is done for this backend until then",
                self.value, self.namespace, self.allowed
            );
        }
        let fix = match self.rule {
            Rule::Adoption => {
                "remove adoptExisting (resources adopted before keep their ownership tags and need it no more)"
            }
            Rule::PermissionsBoundary => "omit the field or set it to that boundary",
            Rule::ExistingKey => "use an allowed key, or omit spec.encryption.kmsKey to have the operator create one",
            Rule::ServiceAccountNamespace => "trust a service account of an allowed namespace",
            Rule::PrincipalAccount | Rule::KeyAdminAccount => "name a principal of an allowed account",
            Rule::OidcProvider => "use an allowed OIDC provider",
            _ => "choose a name that matches",
        };
        format!(
            "{:?} is not allowed in namespace {:?} by {}: {}; {fix}, or ask a cluster administrator to change the policy",
            self.value, self.namespace, self.policy, self.allowed
        )
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message())
    }
}

/// Every way `target` breaks `policy` (in field order), or `Ok` when it keeps to it.
pub fn check(policy: &EffectivePolicy, target: &Target<'_>) -> Result<(), Vec<Violation>> {
    let account = policy.backend_account_id(target.operator_account_id);
    let mut out = Vec::new();
    let mut add = |rule, path: &str, value: &str, allowed: String| {
        out.push(Violation {
            rule,
            path: path.to_string(),
            value: value.to_string(),
            allowed,
            policy: policy.source.to_string(),
            namespace: policy.namespace.clone(),
        });
    };

    for invalid in &policy.invalid {
        let value = format!("TerraformStatePolicy {:?}", invalid.name);
        add(Rule::InvalidPolicy, "spec", &value, format!("it may select this namespace, but {}", invalid.problem));
    }
    if let Some(path) = &policy.iam_path
        && path.len() > 512
    {
        let problem = format!("its IAM path here is {} characters long, more than IAM's 512", path.len());
        add(Rule::InvalidPolicy, "spec", &policy.source.to_string(), problem);
    }

    let name_rules = [
        (Rule::BucketName, "spec.bucket.name", Some(target.bucket), &policy.bucket_names, "bucket names"),
        (
            Rule::LockTableName,
            "spec.locking.table.name",
            target.lock_table,
            &policy.lock_table_names,
            "lock table names",
        ),
        (Rule::RoleName, "spec.access.roleName", Some(target.role_name), &policy.role_names, "role names"),
        (
            Rule::KmsAlias,
            "spec.encryption.kmsKey.create.alias",
            target.kms_alias,
            &policy.kms_aliases,
            "aliases of created KMS keys",
        ),
        (
            Rule::TrailName,
            "spec.audit.cloudTrail.trailName",
            target.trail_name,
            &policy.trail_names,
            "audit trail names",
        ),
    ];
    for (rule, path, value, allowed, what) in name_rules {
        if let Some(value) = value
            && !permits(allowed, value, account)
        {
            add(
                rule,
                path,
                value,
                match allowed {
                    Allowed::Only(list) if !list.is_empty() => format!("{what} must match one of {}", one_of(list)),
                    _ => format!("no {what} are allowed"),
                },
            );
        }
    }

    if let Some(arn) = target.existing_key_arn
        && !permits(&policy.existing_keys, arn, account)
    {
        let allowed = match &policy.existing_keys {
            Allowed::Only(list) if !list.is_empty() => format!("existing keys must match one of {}", one_of(list)),
            Allowed::Only(_) => "no existing KMS key may be used".to_string(),
            _ => format!("only existing keys of account {account} (where the backend lives) may be used"),
        };
        add(Rule::ExistingKey, "spec.encryption.kmsKey.existingKeyArn", arn, allowed);
    }
    let admins = "spec.encryption.kmsKey.create.admins";
    check_accounts(&policy.aws_accounts, Rule::KeyAdminAccount, admins, target.kms_key_admins, account, &mut add);

    if target.adopt_existing && !policy.allow_adoption {
        add(Rule::Adoption, "spec.adoptExisting", "true", "adopting existing AWS resources is not allowed".to_string());
    }

    for sa in target.service_accounts {
        if !permits(&policy.service_account_namespaces, &sa.namespace, account) {
            let allowed = match &policy.service_account_namespaces {
                Allowed::Only(list) if !list.is_empty() => {
                    format!("service accounts may be trusted in the namespaces matching {} only", one_of(list))
                }
                _ => "no service account may be trusted".to_string(),
            };
            let value = format!("{}/{}", sa.namespace, sa.name);
            add(Rule::ServiceAccountNamespace, "spec.access.trust.serviceAccounts", &value, allowed);
        }
    }
    if let Some(arn) = target.oidc_provider_arn
        && !permits(&policy.oidc_providers, arn, account)
    {
        let allowed = match &policy.oidc_providers {
            Allowed::Only(list) if !list.is_empty() => format!("OIDC providers must match one of {}", one_of(list)),
            Allowed::Only(_) => "no OIDC provider may be trusted".to_string(),
            _ => format!("only OIDC providers of account {account} (where the backend lives) may be trusted"),
        };
        add(Rule::OidcProvider, "spec.access.trust.oidcProviderArn", arn, allowed);
    }
    let principals = "spec.access.trust.awsPrincipals";
    check_accounts(&policy.aws_accounts, Rule::PrincipalAccount, principals, target.aws_principals, account, &mut add);

    if let (Some(required), Some(spec)) = (&policy.permissions_boundary_arn, target.permissions_boundary_arn)
        && required != spec
    {
        let allowed = format!("every role of this namespace gets the permissions boundary {required:?}");
        add(Rule::PermissionsBoundary, "spec.access.permissionsBoundaryArn", spec, allowed);
    }

    if out.is_empty() { Ok(()) } else { Err(out) }
}

/// Principals (trust or key admins) must be IAM ARNs of allowed accounts.
fn check_accounts(
    accounts: &Allowed,
    rule: Rule,
    path: &str,
    arns: &[String],
    account: &str,
    add: &mut impl FnMut(Rule, &str, &str, String),
) {
    for arn in arns {
        let Some(of) = arn_account(arn) else {
            add(rule, path, arn, "principals must be IAM ARNs with a 12-digit account".to_string());
            continue;
        };
        if !permits(accounts, of, account) {
            let allowed = match accounts {
                Allowed::Only(list) if !list.is_empty() => {
                    format!("principals of account {of} may not be named, only of {}", one_of(list))
                }
                Allowed::Only(_) => "no principal of any account may be named".to_string(),
                _ => format!(
                    "principals of account {of} may not be named, only of account {account} (where the backend lives)"
                ),
            };
            add(rule, path, arn, allowed);
        }
    }
}

/// Whether `value` is allowed. `OwnAccount` compares the value itself (an account id) or,
/// for an ARN, its account field.
fn permits(allowed: &Allowed, value: &str, account: &str) -> bool {
    match allowed {
        Allowed::Any => true,
        Allowed::OwnAccount => value == account || arn_account(value) == Some(account),
        Allowed::Only(patterns) => patterns.iter().any(|p| p.matches(value)),
    }
}

/// `"a", "b"` for a message.
fn one_of(list: &[super::Pattern]) -> String {
    list.iter().map(|p| format!("{:?}", p.to_string())).collect::<Vec<_>>().join(", ")
}
