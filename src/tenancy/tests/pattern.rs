//! The pattern language: `*`, `{namespace}`, whole-value matches.

use super::*;

#[test]
fn patterns_match_whole_values_with_the_namespace_put_in_literally() {
    let table: &[(&str, &str, &str, bool)] = &[
        // pattern, namespace, value, matches
        ("tfstate-{namespace}-*", "a", "tfstate-a-x", true),
        ("tfstate-{namespace}-*", "a", "tfstate-a-", true), // `*` matches nothing too
        ("tfstate-{namespace}-*", "a", "tfstate-a-x-y-z", true),
        ("tfstate-{namespace}-*", "a", "tfstate-a", false),
        ("tfstate-{namespace}-*", "a", "tfstate-ab-x", false), // the separator after the namespace
        ("tfstate-{namespace}-*", "team-a", "tfstate-team-ab-x", false),
        ("tfstate-{namespace}-*", "a", "xtfstate-a-x", false), // whole value: no prefix
        ("tfstate-{namespace}-*", "a", "TFSTATE-A-X", false),  // case-sensitive
        ("tfstate-{namespace}-*", "b", "tfstate-a-x", false),  // another namespace's names
        // The documented limit of `-` after the namespace: namespace `a` may take `a-b`'s names.
        ("tfstate-{namespace}-*", "a", "tfstate-a-b-x", true),
        // ... which a separator that namespace names cannot hold rules out.
        ("tfstate-{namespace}.*", "a", "tfstate-a.x", true),
        ("tfstate-{namespace}.*", "a", "tfstate-a-b.x", false),
        ("alias/tfstate/{namespace}/*", "a", "alias/tfstate/a/x", true),
        ("alias/tfstate/{namespace}/*", "a", "alias/tfstate/a-b/x", false),
        ("tfstate-{namespace}", "a", "tfstate-a", true), // exact, one per namespace
        ("tfstate-{namespace}", "a", "tfstate-ab", false),
        ("{namespace}-{namespace}", "a", "a-a", true),
        ("*", "a", "anything-at-all", true),
        ("*-lock", "a", "x-lock", true),
        ("a*b*c", "a", "aXbYc", true),
        ("a*b*c", "a", "aXcYb", false),
        // Regex metacharacters are literal.
        ("tfstate.{namespace}", "a", "tfstateXa", false),
        ("a+b", "a", "aab", false),
        ("(a)", "a", "(a)", true),
        // An unknown placeholder is literal, and so never matches a real name.
        ("tfstate-{namspace}-*", "a", "tfstate-a-x", false),
        // `*` stays inside one ARN component.
        ("arn:aws:kms:*:123456789012:key/*", "a", "arn:aws:kms:eu-west-1:123456789012:key/k1", true),
        ("arn:aws:kms:*:123456789012:key/*", "a", "arn:aws:kms:eu-west-1:999999999999:key/k:123456789012:key/k", false),
        ("arn:aws:kms:*:123456789012:key/*", "a", "arn:aws:kms:eu-west-1:999999999999:key/k", false),
        ("arn:*:iam::123456789012:oidc-provider/*", "a", "arn:aws-cn:iam::123456789012:oidc-provider/x/y", true),
    ];
    for (pattern, namespace, value, expected) in table {
        let p = Pattern::new(pattern, namespace);
        assert_eq!(p.matches(value), *expected, "{pattern:?} for namespace {namespace:?} against {value:?}");
    }
}

#[test]
fn a_namespace_is_never_a_wildcard() {
    // Kubernetes namespace names cannot hold `*`, but the matcher does not rely on it.
    let p = Pattern::new("tfstate-{namespace}-x", "*");
    assert!(!p.matches("tfstate-anything-x"));
    assert!(p.matches("tfstate-*-x"));
    let p = Pattern::new("{namespace}", ".*");
    assert!(!p.matches("abc"));
    assert!(p.matches(".*"));
}

#[test]
fn patterns_display_with_the_namespace_put_in() {
    assert_eq!(Pattern::new("acme-{namespace}-*", "team-a").to_string(), "acme-team-a-*");
    assert_eq!(Pattern::exact("ci").to_string(), "ci");
}
