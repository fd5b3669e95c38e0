//! Each rule allowed and refused, the abuse cases, and the messages.

use super::*;

const TENANTS: &str = r#"
namespaceSelector: {matchLabels: {tier: tenant}}
allowedNames:
  buckets: ["acme-tfstate-{namespace}-*"]
  lockTables: ["acme-tfstate-{namespace}-*"]
  roles: ["tfstate-{namespace}-*"]
  kmsAliases: ["alias/tfstate-{namespace}-*"]
trust:
  allowedServiceAccountNamespaces: ["{namespace}", "ci"]
encryption:
  allowedExistingKeyArns: ["arn:aws:kms:eu-west-1:123456789012:key/shared-*"]
role:
  permissionsBoundaryArn: arn:aws:iam::123456789012:policy/tenant-boundary
"#;

fn tenants(namespace: &str) -> EffectivePolicy {
    resolve(&[policy("tenants", TENANTS)], namespace, &labels(&[("tier", "tenant")]))
}

fn default_for(namespace: &str) -> EffectivePolicy {
    resolve(&[], namespace, &labels(&[]))
}

type Change = fn(&mut Backend);
type PolicyFor = fn(&str) -> EffectivePolicy;
type Expected = &'static [(Rule, &'static str)];

#[test]
fn each_rule_allows_and_refuses() {
    let none: Expected = &[];
    let table: &[(&str, PolicyFor, Change, Expected)] = &[
        // what, policy, change to a conforming backend of namespace team-a, violations
        ("conforming", tenants, |_| {}, none),
        ("conforming, default", default_for, |_| {}, none),
        (
            "bucket of another namespace",
            tenants,
            |b| b.bucket = "acme-tfstate-team-b-app".into(),
            &[(Rule::BucketName, "spec.bucket.name")],
        ),
        (
            "bucket of a longer namespace",
            tenants,
            |b| b.bucket = "acme-tfstate-team-ab-app".into(),
            &[(Rule::BucketName, "spec.bucket.name")],
        ),
        (
            "bucket without prefix",
            tenants,
            |b| b.bucket = "team-a-state".into(),
            &[(Rule::BucketName, "spec.bucket.name")],
        ),
        ("any bucket by default", default_for, |b| b.bucket = "whatever".into(), none),
        (
            "table",
            tenants,
            |b| b.lock_table = Some("locks".into()),
            &[(Rule::LockTableName, "spec.locking.table.name")],
        ),
        ("no table (lock files)", tenants, |b| b.lock_table = None, none),
        ("role", tenants, |b| b.role = "admin".into(), &[(Rule::RoleName, "spec.access.roleName")]),
        (
            "alias",
            tenants,
            |b| b.alias = Some("alias/tfstate-team-b-app".into()),
            &[(Rule::KmsAlias, "spec.encryption.kmsKey.create.alias")],
        ),
        ("no created key", tenants, |b| b.alias = None, none),
        (
            "allowed existing key",
            tenants,
            |b| {
                b.alias = None;
                b.existing_key = Some("arn:aws:kms:eu-west-1:123456789012:key/shared-1".into());
            },
            none,
        ),
        (
            "existing key not in the list",
            tenants,
            |b| {
                b.alias = None;
                b.existing_key = Some("arn:aws:kms:eu-west-1:123456789012:key/team-b-key".into());
            },
            &[(Rule::ExistingKey, "spec.encryption.kmsKey.existingKeyArn")],
        ),
        (
            "existing key of the own account, default",
            default_for,
            |b| {
                b.alias = None;
                b.existing_key = Some("arn:aws:kms:eu-west-1:123456789012:key/k".into());
            },
            none,
        ),
        (
            "existing key of a foreign account, default",
            default_for,
            |b| {
                b.alias = None;
                b.existing_key = Some("arn:aws:kms:eu-west-1:999999999999:key/k".into());
            },
            &[(Rule::ExistingKey, "spec.encryption.kmsKey.existingKeyArn")],
        ),
        ("adoption, default", default_for, |b| b.adopt = true, &[(Rule::Adoption, "spec.adoptExisting")]),
        (
            "adoption, policy without allowAdoption",
            tenants,
            |b| b.adopt = true,
            &[(Rule::Adoption, "spec.adoptExisting")],
        ),
        ("service account of an allowed namespace", tenants, |b| b.service_accounts.push(sa("ci", "runner")), none),
        (
            "service account of another namespace",
            tenants,
            |b| b.service_accounts.push(sa("team-b", "terraform")),
            &[(Rule::ServiceAccountNamespace, "spec.access.trust.serviceAccounts")],
        ),
        (
            "service account of another namespace, default",
            default_for,
            |b| b.service_accounts.push(sa("ci", "runner")),
            &[(Rule::ServiceAccountNamespace, "spec.access.trust.serviceAccounts")],
        ),
        (
            "OIDC provider of a foreign account",
            default_for,
            |b| {
                b.oidc = Some(format!("arn:aws:iam::{FOREIGN}:oidc-provider/oidc.example.com"));
            },
            &[(Rule::OidcProvider, "spec.access.trust.oidcProviderArn")],
        ),
        (
            "principal of a foreign account",
            tenants,
            |b| b.principals.push(format!("arn:aws:iam::{FOREIGN}:role/x")),
            &[(Rule::PrincipalAccount, "spec.access.trust.awsPrincipals")],
        ),
        (
            "foreign account root",
            default_for,
            |b| b.principals = vec![format!("arn:aws:iam::{FOREIGN}:root")],
            &[(Rule::PrincipalAccount, "spec.access.trust.awsPrincipals")],
        ),
        (
            "not an ARN",
            default_for,
            |b| b.principals = vec!["ci".into()],
            &[(Rule::PrincipalAccount, "spec.access.trust.awsPrincipals")],
        ),
        (
            "key admin of a foreign account",
            default_for,
            |b| b.admins = vec![format!("arn:aws:iam::{FOREIGN}:role/admin")],
            &[(Rule::KeyAdminAccount, "spec.encryption.kmsKey.create.admins")],
        ),
        (
            "key admin of the own account",
            default_for,
            |b| b.admins = vec![format!("arn:aws:iam::{ACCOUNT}:role/admin")],
            none,
        ),
        (
            "the policy's boundary",
            tenants,
            |b| b.boundary = Some("arn:aws:iam::123456789012:policy/tenant-boundary".into()),
            none,
        ),
        (
            "another boundary",
            tenants,
            |b| b.boundary = Some("arn:aws:iam::123456789012:policy/lenient".into()),
            &[(Rule::PermissionsBoundary, "spec.access.permissionsBoundaryArn")],
        ),
        (
            "own boundary, default",
            default_for,
            |b| b.boundary = Some("arn:aws:iam::123456789012:policy/mine".into()),
            none,
        ),
        (
            "everything at once",
            tenants,
            |b| {
                b.bucket = "x-bucket".into();
                b.adopt = true;
                b.principals.push(format!("arn:aws:iam::{FOREIGN}:role/x"));
            },
            &[
                (Rule::BucketName, "spec.bucket.name"),
                (Rule::Adoption, "spec.adoptExisting"),
                (Rule::PrincipalAccount, "spec.access.trust.awsPrincipals"),
            ],
        ),
    ];
    for (what, policy, change, expected) in table {
        let mut backend = Backend::in_namespace("team-a");
        change(&mut backend);
        let expected: Vec<_> = expected.iter().map(|(r, p)| (*r, p.to_string())).collect();
        assert_eq!(broken(&policy("team-a"), &backend), expected, "{what}");
    }
}

#[test]
fn empty_lists_allow_nothing_and_omitted_lists_anything() {
    let strict = policy(
        "strict",
        "{namespaceSelector: {}, allowedNames: {lockTables: [], kmsAliases: []}, trust: {allowedServiceAccountNamespaces: [], allowedOidcProviderArns: [], allowedAwsAccountIds: []}}",
    );
    let p = resolve(&[strict], "team-a", &labels(&[]));
    let backend = Backend::in_namespace("team-a");
    assert_eq!(
        broken(&p, &backend).into_iter().map(|(r, _)| r).collect::<Vec<_>>(),
        [
            Rule::LockTableName,
            Rule::KmsAlias,
            Rule::ServiceAccountNamespace,
            Rule::OidcProvider,
            Rule::PrincipalAccount
        ]
    );
    // Bucket and role names were not listed: unrestricted.
    let mut lockfile_aes = backend.clone();
    (
        lockfile_aes.lock_table,
        lockfile_aes.alias,
        lockfile_aes.service_accounts,
        lockfile_aes.oidc,
        lockfile_aes.principals,
    ) = (None, None, vec![], None, vec![]);
    lockfile_aes.bucket = "anything".into();
    assert_eq!(broken(&p, &lockfile_aes), []);
}

#[test]
fn adoption_is_honoured_where_a_policy_allows_it() {
    let p = resolve(&[policy("adopt", "{namespaceSelector: {}, allowAdoption: true}")], "team-a", &labels(&[]));
    let mut backend = Backend::in_namespace("team-a");
    backend.adopt = true;
    assert_eq!(broken(&p, &backend), []);
}

#[test]
fn organisation_and_account_lists() {
    let org = "{namespaceSelector: {}, trust: {principalOrgId: o-abcdefghij}}";
    let org_and_list =
        r#"{namespaceSelector: {}, trust: {principalOrgId: o-abcdefghij, allowedAwsAccountIds: ["210987654321"]}}"#;
    let list = r#"{namespaceSelector: {}, trust: {allowedAwsAccountIds: ["123456789012", "210987654321"]}}"#;
    let table: &[(&str, &str, bool)] = &[
        // policy, principal's account, allowed
        (org, FOREIGN, true), // AWS enforces the organisation through the condition
        (org, ACCOUNT, true),
        (org_and_list, SPOKE, true),
        (org_and_list, FOREIGN, false),
        (org_and_list, ACCOUNT, false), // a list is exact: the own account is not implied
        (list, ACCOUNT, true),
        (list, SPOKE, true),
        (list, FOREIGN, false),
    ];
    for (spec, account, allowed) in table {
        let p = resolve(&[policy("p", spec)], "team-a", &labels(&[]));
        let mut backend = Backend::in_namespace("team-a");
        backend.principals = vec![format!("arn:aws:iam::{account}:role/ci")];
        backend.admins = vec![format!("arn:aws:iam::{account}:role/key-admin")];
        let rules: Vec<_> = broken(&p, &backend).into_iter().map(|(r, _)| r).collect();
        let expected = if *allowed { vec![] } else { vec![Rule::KeyAdminAccount, Rule::PrincipalAccount] };
        assert_eq!(rules, expected, "{spec} with a principal of {account}");
        // Whatever the accounts, the condition that AWS enforces is exposed for rendering.
        assert_eq!(p.principal_org_id.is_some(), spec.contains("principalOrgId"));
    }
    // An organisation mismatch is not visible in a spec: AWS refuses principals outside the
    // organisation through the condition, which the most specific policy decides alone.
    let policies = [
        policy("org-a", org),
        policy("org-b", "{namespaceSelector: {matchLabels: {org: b}}, trust: {principalOrgId: o-bbbbbbbbbb}}"),
    ];
    assert_eq!(resolve(&policies, "x", &labels(&[("org", "b")])).principal_org_id.as_deref(), Some("o-bbbbbbbbbb"));
    assert_eq!(resolve(&policies, "x", &labels(&[])).principal_org_id.as_deref(), Some("o-abcdefghij"));
}

#[test]
fn hub_and_spoke_judges_accounts_by_the_operator_role() {
    let spoke = policy(
        "spoke",
        "{namespaceSelector: {matchLabels: {account: spoke}}, operatorRoleArn: \"arn:aws:iam::210987654321:role/tfstate-operator\"}",
    );
    let p = resolve(&[spoke], "team-a", &labels(&[("account", "spoke")]));
    assert_eq!(p.backend_account_id(ACCOUNT), SPOKE);
    let mut backend = Backend::in_namespace("team-a");
    // The operator's own account is not where this backend lives.
    assert_eq!(
        broken(&p, &backend).into_iter().map(|(r, _)| r).collect::<Vec<_>>(),
        [Rule::OidcProvider, Rule::PrincipalAccount]
    );
    backend.oidc = Some(format!("arn:aws:iam::{SPOKE}:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC"));
    backend.principals = vec![format!("arn:aws:iam::{SPOKE}:role/ci")];
    assert_eq!(broken(&p, &backend), []);
}

#[test]
fn a_policy_that_cannot_be_evaluated_refuses_everything() {
    let broken_policy = policy("broken", "namespaceSelector: {matchExpressions: [{key: env, operator: In}]}");
    let p = resolve(&[policy("all", "namespaceSelector: {}"), broken_policy], "team-a", &labels(&[]));
    let violations = check(&p, &Backend::in_namespace("team-a").target()).unwrap_err();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].rule, Rule::InvalidPolicy);
    let text = violations[0].to_string();
    assert!(
        text.starts_with("spec: TerraformStatePolicy \"broken\" cannot be applied to namespace \"team-a\""),
        "{text}"
    );
    assert!(text.contains("has no values") && text.contains("cluster administrator"), "{text}");
}

#[test]
fn messages_say_what_is_allowed_by_whom_and_what_to_do() {
    let mut backend = Backend::in_namespace("team-a");
    backend.bucket = "acme-tfstate-team-b-app".into();
    backend.service_accounts = vec![sa("team-b", "terraform")];
    let v = check(&tenants("team-a"), &backend.target()).unwrap_err();
    assert_eq!(
        v[0].to_string(),
        "spec.bucket.name: \"acme-tfstate-team-b-app\" is not allowed in namespace \"team-a\" by TerraformStatePolicy \"tenants\": bucket names must match one of \"acme-tfstate-team-a-*\"; choose a name that matches, or ask a cluster administrator to change the policy"
    );
    assert_eq!(
        (v[0].value.as_str(), v[0].policy.as_str(), v[0].namespace.as_str()),
        ("acme-tfstate-team-b-app", "TerraformStatePolicy \"tenants\"", "team-a")
    );
    assert_eq!(
        v[1].message(),
        "\"team-b/terraform\" is not allowed in namespace \"team-a\" by TerraformStatePolicy \"tenants\": service accounts may be trusted in the namespaces matching \"team-a\", \"ci\" only; trust a service account of an allowed namespace, or ask a cluster administrator to change the policy"
    );

    let mut backend = Backend::in_namespace("team-a");
    backend.adopt = true;
    backend.principals = vec![format!("arn:aws:iam::{FOREIGN}:role/x")];
    backend.alias = None;
    backend.existing_key = Some("arn:aws:kms:eu-west-1:123456789012:key/k".into());
    let v = check(&resolve(&[policy("all", "namespaceSelector: {}")], "team-a", &labels(&[])), &backend.target())
        .unwrap_err();
    let text: Vec<_> = v.iter().map(ToString::to_string).collect();
    assert!(
        text[0].contains("no existing KMS key may be used") && text[0].contains("omit spec.encryption.kmsKey"),
        "{text:?}"
    );
    assert!(
        text[1].contains("adopting existing AWS resources is not allowed") && text[1].contains("remove adoptExisting"),
        "{text:?}"
    );
    assert!(text[2].contains("principals of account 999999999999 may not be named, only of account 123456789012 (where the backend lives)"), "{text:?}");

    let v = check(&default_for("team-a"), &backend.target()).unwrap_err();
    assert!(v[0].to_string().contains("by the built-in default policy"), "{v:?}");
}

/// Audit trail names: any without a policy; under a policy that omits `allowedNames.trails`
/// only the namespace's derived names (`tfstate-{namespace}.*`), not another namespace's nor
/// an account-wide one; an explicit list replaces that default; `[]` allows no trail at all.
#[test]
fn trail_names_are_denied_by_default_under_a_policy() {
    let named = |name: &str| {
        let mut b = Backend::in_namespace("team-a");
        b.trail = Some(name.into());
        b
    };
    let trail = (Rule::TrailName, "spec.audit.cloudTrail.trailName".to_string());
    assert_eq!(broken(&default_for("team-a"), &named("org-security-trail")), []);
    assert_eq!(broken(&tenants("team-a"), &named("tfstate-team-a.app")), []);
    assert_eq!(broken(&tenants("team-a"), &named("tfstate-team-b.app")), std::slice::from_ref(&trail));
    assert_eq!(broken(&tenants("team-a"), &named("org-security-trail")), std::slice::from_ref(&trail));
    // Abuse: namespace team-a squatting the default trail name of backend `app` of namespace
    // `team-a-x` (tfstate-team-a-x.app), which would hold that backend in Conflict.
    assert_eq!(broken(&tenants("team-a"), &named("tfstate-team-a-x.app")), std::slice::from_ref(&trail));
    assert_eq!(broken(&tenants("team-a"), &named("tfstate-team-a-x-app")), std::slice::from_ref(&trail));
    assert_eq!(broken(&tenants("team-a"), &Backend::in_namespace("team-a")), [], "no audit, nothing to judge");
    let listed = policy("listed", "{namespaceSelector: {}, allowedNames: {trails: ['audit.{namespace}.*']}}");
    let p = resolve(&[listed], "team-a", &labels(&[]));
    assert_eq!(broken(&p, &named("audit.team-a.state")), []);
    assert_eq!(broken(&p, &named("tfstate-team-a.app")), std::slice::from_ref(&trail), "the list replaces the default");
    let none = policy("none", "{namespaceSelector: {}, allowedNames: {trails: []}}");
    let p = resolve(&[none], "team-a", &labels(&[]));
    assert_eq!(broken(&p, &named("tfstate-team-a.app")), [trail]);
    let v = check(&p, &named("tfstate-team-a.app").target()).unwrap_err();
    assert!(v[0].message().contains("no audit trail names are allowed"), "{}", v[0].message());
}
