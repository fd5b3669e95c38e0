//! Selector matching, precedence, and the defaults.

use super::*;
use crate::api::policy::NamespaceSelector;
use crate::tenancy::resolve::selects;

fn selector(yaml: &str) -> NamespaceSelector {
    serde_yaml_ng::from_str(yaml).expect("test selector parses")
}

#[test]
fn selectors_follow_kubernetes_label_selector_semantics() {
    let table: &[(&str, Pairs, bool)] = &[
        // selector, namespace labels, selected
        ("{}", &[], true),
        ("{}", &[("any", "thing")], true),
        ("matchLabels: {tier: tenant}", &[("tier", "tenant")], true),
        ("matchLabels: {tier: tenant}", &[("tier", "tenant"), ("other", "x")], true),
        ("matchLabels: {tier: tenant}", &[("tier", "platform")], false),
        ("matchLabels: {tier: tenant}", &[], false),
        ("matchLabels: {tier: tenant, env: prod}", &[("tier", "tenant")], false),
        ("matchLabels: {tier: tenant, env: prod}", &[("tier", "tenant"), ("env", "prod")], true),
        ("matchExpressions: [{key: env, operator: In, values: [prod, stage]}]", &[("env", "stage")], true),
        ("matchExpressions: [{key: env, operator: In, values: [prod, stage]}]", &[("env", "dev")], false),
        ("matchExpressions: [{key: env, operator: In, values: [prod]}]", &[], false),
        ("matchExpressions: [{key: env, operator: NotIn, values: [prod]}]", &[("env", "dev")], true),
        ("matchExpressions: [{key: env, operator: NotIn, values: [prod]}]", &[("env", "prod")], false),
        ("matchExpressions: [{key: env, operator: NotIn, values: [prod]}]", &[], true), // absent is not in
        ("matchExpressions: [{key: team, operator: Exists}]", &[("team", "")], true),
        ("matchExpressions: [{key: team, operator: Exists}]", &[("other", "x")], false),
        ("matchExpressions: [{key: team, operator: DoesNotExist}]", &[], true),
        ("matchExpressions: [{key: team, operator: DoesNotExist}]", &[("team", "a")], false),
        (
            "{matchLabels: {tier: tenant}, matchExpressions: [{key: team, operator: Exists}, {key: env, operator: NotIn, values: [prod]}]}",
            &[("tier", "tenant"), ("team", "a"), ("env", "dev")],
            true,
        ),
        (
            "{matchLabels: {tier: tenant}, matchExpressions: [{key: team, operator: Exists}, {key: env, operator: NotIn, values: [prod]}]}",
            &[("tier", "tenant"), ("team", "a"), ("env", "prod")],
            false,
        ),
    ];
    for (yaml, pairs, expected) in table {
        assert_eq!(selects(&selector(yaml), &labels(pairs)), Ok(*expected), "{yaml} on {pairs:?}");
    }
}

#[test]
fn invalid_requirements_are_errors_unless_another_requirement_fails() {
    let in_without_values = "matchExpressions: [{key: env, operator: In}]";
    let exists_with_values = "matchExpressions: [{key: env, operator: Exists, values: [x]}]";
    for yaml in [in_without_values, exists_with_values, "matchExpressions: [{key: env, operator: NotIn, values: []}]"] {
        assert!(selects(&selector(yaml), &labels(&[("env", "x")])).is_err(), "{yaml}");
    }
    // The valid requirement rules the namespace out whatever the invalid one means.
    let mixed = "{matchLabels: {tier: tenant}, matchExpressions: [{key: env, operator: In}]}";
    assert_eq!(selects(&selector(mixed), &labels(&[("tier", "platform")])), Ok(false));
    assert!(selects(&selector(mixed), &labels(&[("tier", "tenant")])).is_err());
}

#[test]
fn specificity_counts_every_requirement() {
    assert_eq!(specificity(&selector("{}")), 0);
    assert_eq!(specificity(&selector("matchLabels: {a: x, b: y}")), 2);
    assert_eq!(
        specificity(&selector("{matchLabels: {a: x}, matchExpressions: [{key: a, operator: In, values: [x]}]}")),
        2
    );
}

#[test]
fn no_policy_is_the_built_in_default() {
    let p = resolve(&[], "team-a", &labels(&[("tier", "tenant")]));
    assert_eq!(p.source, PolicySource::BuiltInDefault);
    assert_eq!(p.policy_name(), "built-in default");
    assert_eq!(p.source.to_string(), "the built-in default policy");
    assert_eq!(p.namespace, "team-a");
    assert_eq!(p.service_account_namespaces, Allowed::Only(vec![Pattern::exact("team-a")]));
    assert_eq!(p.aws_accounts, Allowed::OwnAccount);
    assert_eq!(p.oidc_providers, Allowed::OwnAccount);
    assert_eq!(p.existing_keys, Allowed::OwnAccount);
    for names in [&p.bucket_names, &p.lock_table_names, &p.role_names, &p.kms_aliases] {
        assert_eq!(names, &Allowed::Any);
    }
    assert!(!p.allow_adoption);
    assert_eq!((&p.principal_org_id, &p.permissions_boundary_arn, &p.iam_path), (&None, &None, &None));
    assert_eq!(p.operator_role_arn, None);
    assert_eq!(p.role_path(), "/");
    assert_eq!(p.backend_account_id(ACCOUNT), ACCOUNT);
    // A policy that selects other namespaces changes nothing here.
    let other = policy("others", "namespaceSelector: {matchLabels: {tier: platform}}");
    assert_eq!(resolve(&[other], "team-a", &labels(&[("tier", "tenant")])), p);
}

#[test]
fn an_empty_policy_is_stricter_than_the_built_in_default_only_on_existing_keys_and_trails() {
    let p = resolve(&[policy("all", "namespaceSelector: {}")], "team-a", &labels(&[]));
    let mut expected = resolve(&[], "team-a", &labels(&[]));
    expected.source = PolicySource::Policy("all".into());
    expected.existing_keys = Allowed::Only(vec![]);
    expected.trail_names = Allowed::Only(vec![Pattern::new("tfstate-{namespace}.*", "team-a")]);
    assert_eq!(p, expected);
    assert_eq!(p.policy_name(), "all");
    assert_eq!(p.source.to_string(), "TerraformStatePolicy \"all\"");
}

#[test]
fn every_field_is_resolved_with_the_namespace_put_in() {
    let p = policy(
        "tenants",
        r#"
namespaceSelector: {matchLabels: {tier: tenant}}
allowedNames:
  buckets: ["acme-tfstate-{namespace}-*"]
  lockTables: ["acme-tfstate-{namespace}-*"]
  roles: ["tfstate-{namespace}-*"]
  kmsAliases: ["alias/tfstate/{namespace}/*"]
allowAdoption: true
trust:
  allowedServiceAccountNamespaces: ["{namespace}", "ci"]
  allowedOidcProviderArns: ["arn:aws:iam::123456789012:oidc-provider/*"]
  allowedAwsAccountIds: ["123456789012", "210987654321"]
  principalOrgId: o-abcdefghij
encryption:
  allowedExistingKeyArns: ["arn:aws:kms:*:123456789012:key/*"]
role:
  permissionsBoundaryArn: "arn:aws:iam::123456789012:policy/tenant-{namespace}"
  iamPath: "/tenants/{namespace}/"
operatorRoleArn: "arn:aws:iam::210987654321:role/tfstate-{namespace}"
"#,
    );
    let p = resolve(&[p], "team-a", &labels(&[("tier", "tenant")]));
    let only = |list: &[&str]| Allowed::Only(list.iter().map(|s| Pattern::new(s, "team-a")).collect());
    assert_eq!(p.bucket_names, only(&["acme-tfstate-team-a-*"]));
    assert_eq!(p.kms_aliases, only(&["alias/tfstate/team-a/*"]));
    assert!(p.allow_adoption);
    assert_eq!(p.service_account_namespaces, only(&["team-a", "ci"]));
    assert_eq!(p.aws_accounts, only(&[ACCOUNT, SPOKE]));
    assert_eq!(p.principal_org_id.as_deref(), Some("o-abcdefghij"));
    assert_eq!(p.permissions_boundary_arn.as_deref(), Some("arn:aws:iam::123456789012:policy/tenant-team-a"));
    assert_eq!(p.role_path(), "/tenants/team-a/");
    assert_eq!(p.operator_role_arn.as_deref(), Some("arn:aws:iam::210987654321:role/tfstate-team-a"));
    assert_eq!(p.backend_account_id(ACCOUNT), SPOKE);
    assert_eq!(p.effective_permissions_boundary(None), p.permissions_boundary_arn.as_deref());
    assert_eq!(p.effective_permissions_boundary(Some("x")), p.permissions_boundary_arn.as_deref());
}

#[test]
fn an_organisation_without_an_account_list_allows_every_account() {
    let only_org = policy("org", "{namespaceSelector: {}, trust: {principalOrgId: o-abcdefghij}}");
    assert_eq!(resolve(&[only_org], "a", &labels(&[])).aws_accounts, Allowed::Any);
    let both = policy(
        "both",
        "{namespaceSelector: {}, trust: {principalOrgId: o-abcdefghij, allowedAwsAccountIds: [\"210987654321\"]}}",
    );
    assert_eq!(resolve(&[both], "a", &labels(&[])).aws_accounts, Allowed::Only(vec![Pattern::exact(SPOKE)]));
    let neither = policy("neither", "namespaceSelector: {}");
    assert_eq!(resolve(&[neither], "a", &labels(&[])).aws_accounts, Allowed::OwnAccount);
}

#[test]
fn the_most_specific_policy_applies_and_ties_go_to_the_first_name() {
    let policies = [
        policy("catch-all", "namespaceSelector: {}"),
        policy("tenants", "namespaceSelector: {matchLabels: {tier: tenant}}"),
        policy(
            "prod-tenants",
            "namespaceSelector: {matchLabels: {tier: tenant}, matchExpressions: [{key: env, operator: In, values: [prod]}]}",
        ),
        // Same specificity as prod-tenants: names decide ("b-..." < "prod-...").
        policy("b-team-prod", "namespaceSelector: {matchLabels: {tier: tenant, env: prod}}"),
        policy("z-has-team", "namespaceSelector: {matchExpressions: [{key: team, operator: Exists}]}"),
    ];
    let table: &[(Pairs, &str, &[&str])] = &[
        // namespace labels, applied policy, also selected by (precedence order)
        (&[], "catch-all", &[]),
        (&[("tier", "platform")], "catch-all", &[]),
        (&[("tier", "tenant")], "tenants", &["catch-all"]),
        (&[("tier", "tenant"), ("env", "dev")], "tenants", &["catch-all"]),
        (&[("tier", "tenant"), ("env", "prod")], "b-team-prod", &["prod-tenants", "tenants", "catch-all"]),
        // Equal specificity 1: "tenants" < "z-has-team".
        (&[("tier", "tenant"), ("team", "x")], "tenants", &["z-has-team", "catch-all"]),
        (&[("team", "x")], "z-has-team", &["catch-all"]),
    ];
    for (pairs, applied, also) in table {
        let p = resolve(&policies, "ns", &labels(pairs));
        assert_eq!(p.policy_name(), *applied, "labels {pairs:?}");
        assert_eq!(p.also_selected_by, *also, "labels {pairs:?}");
        // The order of the policy list does not matter.
        let mut reversed = policies.to_vec();
        reversed.reverse();
        assert_eq!(resolve(&reversed, "ns", &labels(pairs)), p, "reversed, labels {pairs:?}");
    }
}

#[test]
fn a_policy_that_cannot_be_evaluated_is_reported_where_it_may_apply() {
    let policies = [
        policy("tenants", "namespaceSelector: {matchLabels: {tier: tenant}}"),
        policy(
            "broken",
            "namespaceSelector: {matchLabels: {tier: tenant}, matchExpressions: [{key: env, operator: In}]}",
        ),
    ];
    let p = resolve(&policies, "team-a", &labels(&[("tier", "tenant")]));
    assert_eq!(p.policy_name(), "tenants");
    assert_eq!(p.invalid.len(), 1);
    assert_eq!(p.invalid[0].name, "broken");
    assert!(p.invalid[0].problem.contains("\"env\""), "{:?}", p.invalid);
    // Where its valid requirement fails it cannot apply, and nothing is reported.
    assert!(resolve(&policies, "platform", &labels(&[("tier", "platform")])).invalid.is_empty());
}
