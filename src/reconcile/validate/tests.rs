//! One test per rule of the validate step. Specs come from YAML, as users write them.

use super::*;
use crate::api::{DeletionPolicy, LockMode};

const OBJ: ObjectRef<'static> = ObjectRef { namespace: "team-payments", name: "payments-prod" };

fn defaults() -> OperatorDefaults {
    OperatorDefaults { region: Some("eu-west-1".into()) }
}

fn spec(yaml: &str) -> TerraformStateBackendSpec {
    serde_yaml_ng::from_str(yaml).expect("test spec parses")
}

const MINIMAL: &str = "
bucket: {name: acme-tfstate-payments-prod}
access:
  trust:
    awsPrincipals: [arn:aws:iam::123456789012:role/ci]
";

/// A minimal spec with `extra` YAML merged over it (top-level keys replaced).
fn with(extra: &str) -> TerraformStateBackendSpec {
    let mut base: serde_json::Value = serde_yaml_ng::from_str(MINIMAL).unwrap();
    let extra: serde_json::Value = serde_yaml_ng::from_str(extra).unwrap();
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    serde_json::from_value(base).expect("test spec deserializes")
}

fn errors(s: &TerraformStateBackendSpec) -> Vec<FieldError> {
    match validate(OBJ, s, &defaults()) {
        Ok(_) => Vec::new(),
        Err(ValidationError::InvalidSpec(e)) => e,
    }
}

/// Asserts that validation reports `path` with a message containing `needle`.
#[track_caller]
fn assert_rejects(s: &TerraformStateBackendSpec, path: &str, needle: &str) {
    let errs = errors(s);
    assert!(
        errs.iter().any(|e| e.path == path && e.message.contains(needle)),
        "expected an error at {path} mentioning {needle:?}, got {errs:#?}"
    );
}

#[test]
fn minimal_spec_resolves_every_default() {
    let v = validate(OBJ, &spec(MINIMAL), &defaults()).unwrap();
    assert_eq!(v.region, "eu-west-1");
    assert_eq!(v.state_key, "team-payments/payments-prod/terraform.tfstate");
    assert_eq!(v.noncurrent_version_expiration_days, Some(90));
    assert_eq!(
        v.encryption,
        Encryption::CreateKey {
            alias: "alias/tfstate-team-payments-payments-prod".into(),
            deletion_window_days: 30,
            admins: vec![]
        }
    );
    assert_eq!(v.lock_mode, LockMode::DynamoDB);
    let table = v.lock_table.unwrap();
    assert_eq!(table.name, "acme-tfstate-payments-prod-lock");
    assert!(table.point_in_time_recovery && table.deletion_protection);
    assert_eq!(v.role.name, "tfstate-team-payments-payments-prod");
    assert_eq!(v.role.max_session_duration_seconds, 3600);
    assert_eq!(v.config_map_name, "payments-prod-backend");
    assert_eq!(v.deletion_policy, DeletionPolicy::Retain);
    assert!(v.render_assume_role);
    assert!(!v.adopt_existing);
}

#[test]
fn zero_noncurrent_days_keeps_versions_forever() {
    let v = validate(OBJ, &with("bucket: {name: acme-tf, noncurrentVersionExpirationDays: 0}"), &defaults()).unwrap();
    assert_eq!(v.noncurrent_version_expiration_days, None);
}

#[test]
fn negative_noncurrent_days_rejected() {
    assert_rejects(
        &with("bucket: {name: acme-tf, noncurrentVersionExpirationDays: -1}"),
        "spec.bucket.noncurrentVersionExpirationDays",
        "0",
    );
}

#[test]
fn region_required_when_operator_has_no_default() {
    let errs = validate(OBJ, &spec(MINIMAL), &OperatorDefaults::default()).unwrap_err();
    let ValidationError::InvalidSpec(errs) = errs;
    assert!(errs.iter().any(|e| e.path == "spec.region" && e.message.contains("--default-region")), "{errs:?}");
}

#[test]
fn region_format_checked() {
    assert_rejects(&with("region: Europe"), "spec.region", "not an AWS region");
    assert!(errors(&with("region: us-gov-west-1")).is_empty());
}

#[test]
fn bucket_name_rules() {
    for (name, needle) in [
        ("ab", "not a valid S3 bucket name"),
        ("Acme-State", "not a valid S3 bucket name"),
        ("acme..state", "adjacent dots"),
        ("192.168.1.10", "IP address"),
        ("xn--acme", "reserves"),
        ("acme-s3alias", "reserves"),
        ("acme--ol-s3", "reserves"),
        ("-acme", "not a valid"),
    ] {
        assert_rejects(&with(&format!("bucket: {{name: {name:?}}}")), "spec.bucket.name", needle);
    }
}

#[test]
fn access_log_bucket_checked_and_not_self() {
    assert_rejects(
        &with("bucket: {name: acme-tf, accessLogging: {targetBucket: acme-tf}}"),
        "spec.bucket.accessLogging.targetBucket",
        "must not be the state bucket",
    );
    assert_rejects(
        &with("bucket: {name: acme-tf, accessLogging: {targetBucket: LOGS}}"),
        "spec.bucket.accessLogging.targetBucket",
        "not a valid",
    );
}

#[test]
fn state_key_rules() {
    assert_rejects(&with("stateKey: /abs/terraform.tfstate"), "spec.stateKey", "must not start or end with '/'");
    assert_rejects(&with("stateKey: a//b"), "spec.stateKey", "//");
    assert_rejects(&with("stateKey: a/b.tflock"), "spec.stateKey", ".tflock");
    assert_rejects(&with(&format!("stateKey: {}", "k".repeat(1025))), "spec.stateKey", "1-1024");
}

#[test]
fn workspace_prefix_rules() {
    assert_rejects(&with("workspaceKeyPrefix: envs/"), "spec.workspaceKeyPrefix", "must not start or end with '/'");
    assert!(errors(&with("workspaceKeyPrefix: 'env:'")).is_empty());
}

#[test]
fn kms_key_create_and_existing_are_exclusive() {
    assert_rejects(
        &with(
            "encryption: {kmsKey: {create: {}, existingKeyArn: 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab'}}",
        ),
        "spec.encryption.kmsKey",
        "exactly one",
    );
}

#[test]
fn empty_kms_key_rejected() {
    assert_rejects(&with("encryption: {kmsKey: {}}"), "spec.encryption.kmsKey", "exactly one");
}

#[test]
fn kms_key_with_aes256_rejected() {
    assert_rejects(
        &with("encryption: {mode: AES256, kmsKey: {create: {}}}"),
        "spec.encryption.kmsKey",
        "only used with mode KMS",
    );
    assert_eq!(validate(OBJ, &with("encryption: {mode: AES256}"), &defaults()).unwrap().encryption, Encryption::Aes256);
}

#[test]
fn existing_key_arn_format() {
    assert_rejects(
        &with("encryption: {kmsKey: {existingKeyArn: 'arn:aws:kms:eu-west-1:123456789012:alias/tfstate'}}"),
        "spec.encryption.kmsKey.existingKeyArn",
        "not a KMS key ARN",
    );
}

#[test]
fn existing_key_must_be_in_backend_region() {
    assert_rejects(
        &with(
            "encryption: {kmsKey: {existingKeyArn: 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab'}}",
        ),
        "spec.encryption.kmsKey.existingKeyArn",
        "region",
    );
}

#[test]
fn alias_rules() {
    assert_rejects(
        &with("encryption: {kmsKey: {create: {alias: alias/aws/s3}}}"),
        "spec.encryption.kmsKey.create.alias",
        "reserved",
    );
    assert_rejects(
        &with("encryption: {kmsKey: {create: {alias: tfstate}}}"),
        "spec.encryption.kmsKey.create.alias",
        "alias/NAME",
    );
}

#[test]
fn derived_alias_must_be_valid() {
    // Object names may contain dots; KMS aliases may not.
    let s = spec(MINIMAL);
    let err = validate(ObjectRef { namespace: "ns", name: "payments.prod" }, &s, &defaults()).unwrap_err();
    let ValidationError::InvalidSpec(errs) = err;
    assert!(
        errs.iter().any(|e| e.path == "spec.encryption.kmsKey.create.alias"
            && e.message.contains("set spec.encryption.kmsKey.create.alias explicitly")),
        "{errs:#?}"
    );
}

#[test]
fn deletion_window_range() {
    assert_rejects(
        &with("encryption: {kmsKey: {create: {deletionWindowDays: 3}}}"),
        "spec.encryption.kmsKey.create.deletionWindowDays",
        "7 and 30",
    );
}

#[test]
fn key_admins_must_be_principal_arns() {
    assert_rejects(
        &with("encryption: {kmsKey: {create: {admins: [bob]}}}"),
        "spec.encryption.kmsKey.create.admins[0]",
        "not an IAM principal ARN",
    );
}

#[test]
fn lock_table_name_with_lockfile_mode_rejected() {
    assert_rejects(
        &with("locking: {mode: Lockfile, table: {name: my-lock}}"),
        "spec.locking.table.name",
        "only used with locking mode",
    );
    assert_eq!(validate(OBJ, &with("locking: {mode: Lockfile}"), &defaults()).unwrap().lock_table, None);
}

#[test]
fn state_key_never_names_a_digest_item() {
    assert_rejects(&with("stateKey: team/terraform.tfstate-md5"), "spec.stateKey", "-md5");
}

#[test]
fn stale_after_defaults_to_two_hours_and_is_checked() {
    assert_eq!(validate(OBJ, &spec(MINIMAL), &defaults()).unwrap().stale_after, std::time::Duration::from_secs(7200));
    assert_eq!(
        validate(OBJ, &with("locking: {staleAfter: 1h30m}"), &defaults()).unwrap().stale_after,
        std::time::Duration::from_secs(5400)
    );
    // What the schema's pattern would refuse is refused here too, and what it lets through
    // but is out of range.
    for bad in ["2d", "1.5h", "0s", "99999h", "2h*", "1h\\u0000"] {
        assert_rejects(&with(&format!("locking: {{staleAfter: \"{bad}\"}}")), "spec.locking.staleAfter", "");
    }
}

#[test]
fn lock_table_name_chars() {
    assert_rejects(&with("locking: {table: {name: 'my lock'}}"), "spec.locking.table.name", "DynamoDB table name");
}

#[test]
fn trust_needs_a_principal() {
    assert_rejects(&with("access: {trust: {}}"), "spec.access.trust", "at least one principal");
}

#[test]
fn service_accounts_need_irsa_or_pod_identity() {
    assert_rejects(
        &with("access: {trust: {serviceAccounts: [{namespace: ci, name: tf}]}}"),
        "spec.access.trust.serviceAccounts",
        "oidcProviderArn or eksPodIdentity",
    );
    assert!(
        errors(&with("access: {trust: {serviceAccounts: [{namespace: ci, name: tf}], eksPodIdentity: true}}"))
            .is_empty()
    );
}

#[test]
fn oidc_provider_without_service_accounts_rejected() {
    assert_rejects(
        &with(
            "access: {trust: {awsPrincipals: ['arn:aws:iam::123456789012:root'], oidcProviderArn: 'arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC'}}",
        ),
        "spec.access.trust.serviceAccounts",
        "list at least one",
    );
}

#[test]
fn oidc_provider_arn_format() {
    assert_rejects(
        &with(
            "access: {trust: {serviceAccounts: [{namespace: ci, name: tf}], oidcProviderArn: 'arn:aws:iam::123456789012:role/x'}}",
        ),
        "spec.access.trust.oidcProviderArn",
        "not an IAM OIDC provider ARN",
    );
}

#[test]
fn duplicate_service_accounts_rejected() {
    assert_rejects(
        &with(
            "access: {trust: {eksPodIdentity: true, serviceAccounts: [{namespace: ci, name: tf}, {namespace: ci, name: tf}]}}",
        ),
        "spec.access.trust.serviceAccounts[1]",
        "listed twice",
    );
}

#[test]
fn service_account_names_checked() {
    assert_rejects(
        &with("access: {trust: {eksPodIdentity: true, serviceAccounts: [{namespace: CI, name: tf}]}}"),
        "spec.access.trust.serviceAccounts[0].namespace",
        "namespace name",
    );
}

#[test]
fn aws_principals_format() {
    assert_rejects(
        &with("access: {trust: {awsPrincipals: ['123456789012']}}"),
        "spec.access.trust.awsPrincipals[0]",
        "not an IAM principal ARN",
    );
}

#[test]
fn derived_role_name_too_long() {
    let long = "n".repeat(60);
    let err = validate(ObjectRef { namespace: "team-payments", name: &long }, &spec(MINIMAL), &defaults()).unwrap_err();
    let ValidationError::InvalidSpec(errs) = err;
    assert!(
        errs.iter().any(|e| e.path == "spec.access.roleName" && e.message.contains("more than the 64")),
        "{errs:#?}"
    );
}

#[test]
fn permissions_boundary_format() {
    assert_rejects(
        &with(
            "access: {trust: {awsPrincipals: ['arn:aws:iam::123456789012:root']}, permissionsBoundaryArn: 'arn:aws:iam::123456789012:role/x'}",
        ),
        "spec.access.permissionsBoundaryArn",
        "not an IAM policy ARN",
    );
}

#[test]
fn session_duration_range() {
    assert_rejects(
        &with("access: {trust: {awsPrincipals: ['arn:aws:iam::123456789012:root']}, maxSessionDurationSeconds: 60}"),
        "spec.access.maxSessionDurationSeconds",
        "3600",
    );
}

#[test]
fn reserved_tag_keys_rejected() {
    assert_rejects(&with("tags: {'aws:owner': x}"), "spec.tags[aws:owner]", "reserved by AWS");
    assert_rejects(&with("tags: {'tfstate.dev/owner': x}"), "spec.tags[tfstate.dev/owner]", "ownership tags");
    assert_rejects(&with("tags: {'team': 'a|b'}"), "spec.tags[team]", "tag values");
}

#[test]
fn too_many_tags_rejected() {
    let tags: Vec<String> = (0..48).map(|i| format!("k{i}: v")).collect();
    assert_rejects(&with(&format!("tags: {{{}}}", tags.join(", "))), "spec.tags", "at most 47");
}

#[test]
fn derived_config_map_name_too_long() {
    let long = "n".repeat(250);
    let s = with(
        "access: {roleName: r, trust: {awsPrincipals: ['arn:aws:iam::123456789012:root']}}\nencryption: {mode: AES256}",
    );
    let err = validate(ObjectRef { namespace: "ns", name: &long }, &s, &defaults()).unwrap_err();
    let ValidationError::InvalidSpec(errs) = err;
    assert!(
        errs.iter()
            .any(|e| e.path == "spec.output.configMapName"
                && e.message.contains("set spec.output.configMapName explicitly")),
        "{errs:#?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let s = with("bucket: {name: AB}\nstateKey: /x\naccess: {trust: {}}\ntags: {'aws:x': y}");
    let paths: BTreeSet<String> = errors(&s).into_iter().map(|e| e.path).collect();
    for p in ["spec.bucket.name", "spec.stateKey", "spec.access.trust", "spec.tags[aws:x]"] {
        assert!(paths.contains(p), "missing {p} in {paths:?}");
    }
}

#[test]
fn error_message_lists_paths() {
    let err = validate(OBJ, &with("bucket: {name: AB}"), &defaults()).unwrap_err();
    assert!(err.to_string().starts_with("invalid spec: spec.bucket.name: "), "{err}");
}

#[test]
fn schema_patterns_compile_in_rust() {
    for p in [
        patterns::REGION,
        patterns::OBJECT_KEY,
        patterns::BUCKET_NAME,
        patterns::KMS_KEY_ARN,
        patterns::KMS_ALIAS,
        patterns::TABLE_NAME,
        patterns::ROLE_NAME,
        patterns::POLICY_ARN,
        patterns::OIDC_PROVIDER_ARN,
        patterns::PRINCIPAL_ARN,
        patterns::DNS_LABEL,
        patterns::DNS_SUBDOMAIN,
        patterns::OBJECT_KEY_CHAR,
        patterns::TRAIL_NAME,
    ] {
        Regex::new(p).unwrap();
    }
}

// --- Values written into policies are literal -------------------------------------------

/// What must never reach a policy: wildcards, a policy variable, `$` alone, control
/// characters (C0, DEL, C1) and non-ASCII characters (Latin-1, a bidi override, a fullwidth
/// asterisk). The first character of each is the one reported.
const NOT_LITERAL: [&str; 13] =
    ["*", "?", "${aws:username}", "$", "\n", "\t", "\u{0}", "\u{1b}", "\u{7f}", "\u{85}", "é", "\u{202e}", "\u{ff0a}"];

/// Every spec value that reaches a policy document: (top-level key, its value with `{}` where
/// a character is inserted, field path). Each is valid with `{}` removed.
fn policy_fields() -> Vec<(&'static str, serde_json::Value, &'static str)> {
    use serde_json::json;
    let principals = json!(["arn:aws:iam::123456789012:role/ci"]);
    vec![
        ("region", json!("eu-west{}-1"), "spec.region"),
        ("bucket", json!({"name": "acme-tf{}state"}), "spec.bucket.name"),
        ("stateKey", json!("team/app{}/terraform.tfstate"), "spec.stateKey"),
        ("stateKey", json!("{}team/terraform.tfstate"), "spec.stateKey"),
        ("workspaceKeyPrefix", json!("env:{}"), "spec.workspaceKeyPrefix"),
        (
            "encryption",
            json!({"kmsKey": {"existingKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab{}"}}),
            "spec.encryption.kmsKey.existingKeyArn",
        ),
        (
            "encryption",
            json!({"kmsKey": {"create": {"alias": "alias/tf{}state"}}}),
            "spec.encryption.kmsKey.create.alias",
        ),
        (
            "encryption",
            json!({"kmsKey": {"create": {"admins": ["arn:aws:iam::123456789012:role/admin{}"]}}}),
            "spec.encryption.kmsKey.create.admins[0]",
        ),
        ("locking", json!({"table": {"name": "acme-lock{}"}}), "spec.locking.table.name"),
        ("access", json!({"roleName": "tfstate-{}ci", "trust": {"awsPrincipals": principals}}), "spec.access.roleName"),
        (
            "access",
            json!({"trust": {"awsPrincipals": ["arn:aws:iam::123456789012:role/ci", "arn:aws:iam::123456789012:user/alice{}"]}}),
            "spec.access.trust.awsPrincipals[1]",
        ),
        (
            "access",
            json!({"trust": {"awsPrincipals": ["arn:aws:iam::123456789012:role/team{}/ci"]}}),
            "spec.access.trust.awsPrincipals[0]",
        ),
        (
            "access",
            json!({"trust": {"eksPodIdentity": true, "serviceAccounts": [{"namespace": "c{}i", "name": "tf"}]}}),
            "spec.access.trust.serviceAccounts[0].namespace",
        ),
        (
            "access",
            json!({"trust": {"eksPodIdentity": true, "serviceAccounts": [{"namespace": "ci", "name": "tf{}"}]}}),
            "spec.access.trust.serviceAccounts[0].name",
        ),
        (
            "access",
            json!({"trust": {"serviceAccounts": [{"namespace": "ci", "name": "tf"}],
                   "oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/{}ABC"}}),
            "spec.access.trust.oidcProviderArn",
        ),
        (
            "access",
            json!({"trust": {"awsPrincipals": principals},
                   "permissionsBoundaryArn": "arn:aws:iam::123456789012:policy/boundary{}"}),
            "spec.access.permissionsBoundaryArn",
        ),
        (
            "audit",
            json!({"cloudTrail": {"logBucket": "acme-logs", "trailName": "tfstate-{}trail"}}),
            "spec.audit.cloudTrail.trailName",
        ),
        ("audit", json!({"cloudTrail": {"logBucket": "acme-l{}ogs"}}), "spec.audit.cloudTrail.logBucket"),
        (
            "audit",
            json!({"cloudTrail": {"logBucket": "acme-logs", "logPrefix": "audit{}/x"}}),
            "spec.audit.cloudTrail.logPrefix",
        ),
    ]
}

/// `value` with every `{}` in its strings replaced by `insert`.
fn subst(value: &serde_json::Value, insert: &str) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(s.replace("{}", insert)),
        Value::Array(items) => Value::Array(items.iter().map(|v| subst(v, insert)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), subst(v, insert))).collect()),
        other => other.clone(),
    }
}

/// The minimal spec with `value` at its top-level key `key`.
fn with_value(key: &str, value: serde_json::Value) -> TerraformStateBackendSpec {
    let mut base: serde_json::Value = serde_yaml_ng::from_str(MINIMAL).unwrap();
    base[key] = value;
    serde_json::from_value(base).expect("test spec deserializes")
}

#[test]
fn every_value_written_into_a_policy_must_be_literal() {
    for (key, template, path) in policy_fields() {
        let ok = with_value(key, subst(&template, ""));
        assert!(errors(&ok).is_empty(), "{path}: the test's own value must be valid: {:#?}", errors(&ok));
        for bad in NOT_LITERAL {
            let c = bad.chars().next().unwrap();
            let s = with_value(key, subst(&template, bad));
            assert_rejects(&s, path, &format!("contains {c:?}"));
            assert_rejects(&s, path, "must be literal");
            // One message for the one problem, not also a generic format error.
            assert_eq!(
                errors(&s).iter().filter(|e| e.path == path).count(),
                1,
                "{path} with {bad:?}: {:#?}",
                errors(&s)
            );
        }
    }
}

#[test]
fn non_literal_messages_say_why() {
    let key = |k: &str| with_value("stateKey", serde_json::json!(k));
    assert_rejects(&key("*"), "spec.stateKey", "'*', which IAM reads as a wildcard matching any characters");
    assert_rejects(&key("a?b"), "spec.stateKey", "'?', which IAM reads as a wildcard matching any one character");
    assert_rejects(
        &key("${aws:username}/x"),
        "spec.stateKey",
        "'$', which IAM reads as the start of a policy variable",
    );
    assert_rejects(&key("a\u{1}b"), "spec.stateKey", "'\\u{1}', a control character");
    assert_rejects(&key("état"), "spec.stateKey", "'é', a non-ASCII character");
}

#[test]
fn keys_hold_only_the_characters_s3_recommends() {
    for c in ['#', '%', '{', '}', '~', '\\', '"', '^', '|', '<', '>', '[', ']', '`'] {
        for (key, path) in [("stateKey", "spec.stateKey"), ("workspaceKeyPrefix", "spec.workspaceKeyPrefix")] {
            let s = with_value(key, serde_json::json!(format!("team{c}app")));
            assert_rejects(&s, path, &format!("contains {c:?}, which S3 advises against in keys"));
        }
    }
}

#[test]
fn legitimate_keys_are_accepted() {
    let object_key = Regex::new(patterns::OBJECT_KEY).unwrap();
    for k in [
        "team/app/terraform.tfstate",
        "env:",
        "terraform.tfstate",
        "x",
        "a.b-c_d/e=f@g+h/terraform.tfstate",
        "Team App/(prod)/it's;a,b&c!.tfstate",
        "workspaces/env:/team-payments_2024/state.json",
    ] {
        assert!(object_key.is_match(k), "the schema refuses {k:?}");
        for key in ["stateKey", "workspaceKeyPrefix"] {
            let errs = errors(&with_value(key, serde_json::json!(k)));
            assert!(errs.is_empty(), "{key} {k:?}: {errs:#?}");
        }
    }
}

/// The schema's key pattern and the validate step refuse exactly the same keys (apart from the
/// rules only validate has: the length in bytes and the `.tflock` suffix).
#[test]
fn key_pattern_and_validate_agree() {
    let object_key = Regex::new(patterns::OBJECT_KEY).unwrap();
    for k in [
        "a", "a/b", "/a", "a/", "a//b", "/", "a b", " ", "a*b", "a/*", "?", "$x", "a\nb", "é", "a#b", "a:b/c=d", "./..",
    ] {
        let validate_ok = errors(&with_value("stateKey", serde_json::json!(k))).is_empty();
        assert_eq!(object_key.is_match(k), validate_ok, "{k:?}: schema and validate disagree");
    }
}

#[test]
fn principals_with_paths_and_other_literal_arns_are_accepted() {
    use serde_json::json;
    let trust = |principals: serde_json::Value| json!({"trust": {"awsPrincipals": principals}});
    for arn in [
        "arn:aws:iam::123456789012:root",
        "arn:aws:iam::123456789012:role/team/payments/ci",
        "arn:aws-us-gov:iam::123456789012:user/alice+ci=x,y.z@acme_1-2",
    ] {
        let errs = errors(&with_value("access", trust(json!([arn]))));
        assert!(errs.is_empty(), "{arn}: {errs:#?}");
    }
    for arn in [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::123456789012:policy/boundaries/tfstate-runner",
    ] {
        let mut access = trust(json!(["arn:aws:iam::123456789012:root"]));
        access["permissionsBoundaryArn"] = json!(arn);
        let errs = errors(&with_value("access", access));
        assert!(errs.is_empty(), "{arn}: {errs:#?}");
    }
    for issuer in [
        "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
        "token.actions.githubusercontent.com",
        "container.googleapis.com/v1/projects/p-1/locations/europe-west1/clusters/c_1",
        "eastus.oic.prod-aks.azure.com/00000000-0000-0000-0000-000000000000/11111111-1111-1111-1111-111111111111/",
    ] {
        let arn = format!("arn:aws:iam::123456789012:oidc-provider/{issuer}");
        let access = json!({"trust": {"serviceAccounts": [{"namespace": "ci", "name": "tf"}], "oidcProviderArn": arn}});
        let errs = errors(&with_value("access", access));
        assert!(errs.is_empty(), "{arn}: {errs:#?}");
    }
}

#[test]
fn arns_without_a_name_or_with_odd_characters_are_refused() {
    for arn in [
        "arn:aws:iam::123456789012:role/",
        "arn:aws:iam::123456789012:role/team/",
        "arn:aws:iam::123456789012:role//ci",
        "arn:aws:iam::123456789012:role/a b",
        "arn:aws:iam::123456789012:role/a#b",
        "arn:aws:iam::123456789012:group/admins",
    ] {
        assert_rejects(
            &with_value("access", serde_json::json!({"trust": {"awsPrincipals": [arn]}})),
            "spec.access.trust.awsPrincipals[0]",
            "not an IAM principal ARN",
        );
    }
    for issuer in ["", "host:443/x", "host/a b", "host/a%2Fb", "host//x"] {
        let arn = format!("arn:aws:iam::123456789012:oidc-provider/{issuer}");
        let access = serde_json::json!({"trust": {"serviceAccounts": [{"namespace": "ci", "name": "tf"}], "oidcProviderArn": arn}});
        assert_rejects(
            &with_value("access", access),
            "spec.access.trust.oidcProviderArn",
            "not an IAM OIDC provider ARN",
        );
    }
}

/// Every schema pattern of a value that reaches a policy refuses each non-literal character,
/// wherever it is inserted into a value the pattern accepts.
#[test]
fn schema_patterns_refuse_non_literal_characters_anywhere() {
    for (pattern, example) in [
        (patterns::REGION, "us-gov-west-1"),
        (patterns::OBJECT_KEY, "team/app/env:/terraform.tfstate"),
        (patterns::BUCKET_NAME, "acme-tf.state"),
        (patterns::KMS_KEY_ARN, "arn:aws-cn:kms:cn-north-1:123456789012:key/1234abcd-12ab"),
        (patterns::KMS_ALIAS, "alias/tf/state_x-y"),
        (patterns::TABLE_NAME, "acme_tf.lock-1"),
        (patterns::ROLE_NAME, "tf+=,.@_-role"),
        (patterns::POLICY_ARN, "arn:aws:iam::aws:policy/service-role/Boundary+=,.@_-"),
        (patterns::OIDC_PROVIDER_ARN, "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/A_b.c~d-e/"),
        (patterns::PRINCIPAL_ARN, "arn:aws:iam::123456789012:role/team/ci+=,.@_-"),
        (patterns::PRINCIPAL_ARN, "arn:aws:iam::123456789012:root"),
        (patterns::DNS_LABEL, "team-payments"),
        (patterns::DNS_SUBDOMAIN, "terraform.runner-1"),
    ] {
        let re = Regex::new(pattern).unwrap();
        assert!(re.is_match(example), "{pattern} refuses its own example {example:?}");
        for bad in NOT_LITERAL {
            for at in (0..=example.len()).filter(|i| example.is_char_boundary(*i)) {
                let value = format!("{}{bad}{}", &example[..at], &example[at..]);
                assert!(!re.is_match(&value), "{pattern} accepts {value:?}");
                assert!(patterns::non_literal(&value).is_some(), "non_literal misses {value:?}");
            }
        }
    }
}

/// OpenTofu's aws_kms key provider needs the backend's KMS key: refused with AES256, saying
/// why and what to do; accepted with a created or an existing key; off by default.
#[test]
fn open_tofu_encryption_needs_a_kms_key() {
    let aes = with("encryption: {mode: AES256}\noutput: {openTofuEncryption: true}");
    assert_rejects(&aes, "spec.output.openTofuEncryption", "AES256 has none");
    assert_rejects(&aes, "spec.output.openTofuEncryption", "set spec.encryption.mode to KMS");
    let created = validate(OBJ, &with("output: {openTofuEncryption: true}"), &defaults()).expect("created key");
    assert!(created.open_tofu_encryption);
    let existing = with(
        "encryption: {kmsKey: {existingKeyArn: 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab'}}\noutput: {openTofuEncryption: true}",
    );
    assert!(validate(OBJ, &existing, &defaults()).expect("existing key").open_tofu_encryption);
    assert!(!validate(OBJ, &with("adoptExisting: false"), &defaults()).unwrap().open_tofu_encryption, "off by default");
}

/// `spec.audit.cloudTrail`: the derived trail name, CloudTrail's naming rules, never the state
/// bucket as log bucket, the prefix's characters.
#[test]
fn audit_trail_rules() {
    let ok = validate(OBJ, &with("audit: {cloudTrail: {logBucket: acme-audit-logs}}"), &defaults()).unwrap();
    let audit = ok.audit.expect("audit resolved");
    assert_eq!(audit.trail_name, "tfstate-team-payments.payments-prod");
    assert_eq!((audit.log_bucket.as_str(), audit.log_prefix), ("acme-audit-logs", None));
    assert!(validate(OBJ, &with("{}"), &defaults()).unwrap().audit.is_none());
    let named =
        |name: &str| with(&format!("audit: {{cloudTrail: {{logBucket: acme-audit-logs, trailName: '{name}'}}}}"));
    for good in ["abc", "Payments.Audit_1", "a-b.c_d", &"a".repeat(128)] {
        assert!(errors(&named(good)).is_empty(), "{good}: {:?}", errors(&named(good)));
    }
    let path = "spec.audit.cloudTrail.trailName";
    assert_rejects(&named("my--name"), path, "in a row");
    assert_rejects(&named("my-_name"), path, "in a row");
    assert_rejects(&named("a..b"), path, "in a row");
    assert_rejects(&named("192.168.5.4"), path, "IP address");
    assert_rejects(&named("ab"), path, "not a valid CloudTrail trail name");
    assert_rejects(&named(&"a".repeat(129)), path, "not a valid CloudTrail trail name");
    assert_rejects(&named("-abc"), path, "not a valid CloudTrail trail name");
    assert_rejects(&named("abc."), path, "not a valid CloudTrail trail name");
    assert_rejects(&named("trail*"), path, "wildcard");
    assert_rejects(&named("trail?"), path, "wildcard");
    assert_rejects(&named("trail$x"), path, "policy variable");
    assert_rejects(&named("tr\u{e4}il"), path, "non-ASCII");
    // A derived name that breaks the rules says to set it explicitly.
    let long = ObjectRef { namespace: "team-payments", name: &"x".repeat(120) };
    let errs = match validate(long, &with("audit: {cloudTrail: {logBucket: acme-audit-logs}}"), &defaults()) {
        Err(ValidationError::InvalidSpec(e)) => e,
        Ok(_) => vec![],
    };
    assert!(
        errs.iter().any(|e| e.path == path && e.message.contains("set spec.audit.cloudTrail.trailName")),
        "{errs:?}"
    );

    let bucket = "spec.audit.cloudTrail.logBucket";
    assert_rejects(&with("audit: {cloudTrail: {logBucket: acme-tfstate-payments-prod}}"), bucket, "state bucket");
    assert_rejects(&with("audit: {cloudTrail: {logBucket: 'logs-*'}}"), bucket, "wildcard");
    assert_rejects(&with("audit: {cloudTrail: {logBucket: 'a..b'}}"), bucket, "adjacent dots");
    let prefix = "spec.audit.cloudTrail.logPrefix";
    assert_rejects(&with("audit: {cloudTrail: {logBucket: acme-logs, logPrefix: 'a/*'}}"), prefix, "wildcard");
    assert_rejects(&with("audit: {cloudTrail: {logBucket: acme-logs, logPrefix: 'a/'}}"), prefix, "start or end");
    assert_rejects(
        &with(&format!("audit: {{cloudTrail: {{logBucket: acme-logs, logPrefix: {}}}}}", "a".repeat(201))),
        prefix,
        "1-200",
    );
}

/// `spec.replication`: defaults derived from the primary, in another region.
#[test]
fn replication_resolves_its_defaults() {
    let v = validate(OBJ, &with("replication: {region: eu-central-1}"), &defaults()).unwrap();
    let r = v.replication.expect("replication");
    assert_eq!(r.region, "eu-central-1");
    assert_eq!(r.bucket, "acme-tfstate-payments-prod-replica");
    assert_eq!(r.role_name, "tfstate-team-payments-payments-prod-replication");
    assert!(!r.replication_time_control);
    assert_eq!(
        r.encryption,
        Encryption::CreateKey {
            alias: "alias/tfstate-team-payments-payments-prod-replica".into(),
            deletion_window_days: 30,
            admins: vec![]
        }
    );
    assert!(validate(OBJ, &spec(MINIMAL), &defaults()).unwrap().replication.is_none());
}

/// The replica must be in another region, with KMS, named like a bucket, and its existing
/// key in the replica's region.
#[test]
fn replication_refuses_what_cannot_be_a_replica() {
    assert_rejects(&with("replication: {region: eu-west-1}"), "spec.replication.region", "own region");
    assert_rejects(&with("replication: {region: moon-1}"), "spec.replication.region", "not an AWS region");
    assert_rejects(
        &with("{encryption: {mode: AES256}, replication: {region: eu-central-1}}"),
        "spec.replication",
        "mode KMS",
    );
    assert_rejects(
        &with("replication: {region: eu-central-1, bucketName: acme-tfstate-payments-prod}"),
        "spec.replication.bucketName",
        "state bucket itself",
    );
    let key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    assert_rejects(
        &with(&format!("replication: {{region: eu-central-1, kmsKey: {{existingKeyArn: '{key}'}}}}")),
        "spec.replication.kmsKey.existingKeyArn",
        "replica is in",
    );
    assert_rejects(&with("replication: {region: eu-central-1, kmsKey: {}}"), "spec.replication.kmsKey", "exactly one");
    let long = "a".repeat(60);
    assert_rejects(
        &with(&format!("{{bucket: {{name: {long}}}, replication: {{region: eu-central-1}}}}")),
        "spec.replication.bucketName",
        "longer than 63",
    );
}

/// The replica's key follows the state key's rules, under its own field paths: a reserved
/// alias, a deletion window out of range, a duplicated administrator, the state bucket's own
/// key; its default alias follows the state key's alias.
#[test]
fn replica_key_rules_are_the_state_key_rules() {
    let r = |key: &str| with(&format!("replication: {{region: eu-central-1, kmsKey: {key}}}"));
    let field = "spec.replication.kmsKey.create";
    assert_rejects(&r("{create: {alias: alias/aws/s3}}"), &format!("{field}.alias"), "reserved for AWS");
    assert_rejects(&r("{create: {deletionWindowDays: 5}}"), &format!("{field}.deletionWindowDays"), "7 and 30");
    let admin = "arn:aws:iam::123456789012:role/admin";
    assert_rejects(
        &r(&format!("{{create: {{admins: ['{admin}', '{admin}']}}}}")),
        &format!("{field}.admins[1]"),
        "twice",
    );
    let key = "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let same = with(&format!(
        "{{encryption: {{mode: KMS, kmsKey: {{existingKeyArn: '{key}'}}}}, \
          replication: {{region: eu-central-1, kmsKey: {{existingKeyArn: '{key}'}}}}}}"
    ));
    assert_rejects(&same, "spec.replication.kmsKey.existingKeyArn", "state bucket's key");
    let named = with(
        "{encryption: {mode: KMS, kmsKey: {create: {alias: alias/team/state}}}, replication: {region: eu-central-1}}",
    );
    let v = validate(OBJ, &named, &defaults()).unwrap();
    assert!(
        matches!(v.replication.unwrap().encryption, Encryption::CreateKey { alias, .. } if alias == "alias/team/state-replica"),
        "the replica's default alias follows the state key's"
    );
}

/// OpenTofu's encryption uses the state key, in the backend's region: a replica for an outage
/// of that region would hold copies nobody could decrypt then.
#[test]
fn open_tofu_encryption_and_a_replica_are_refused_together() {
    let both = with("{output: {openTofuEncryption: true}, replication: {region: eu-central-1}}");
    assert_rejects(&both, "spec.output.openTofuEncryption", "spec.replication");
    assert!(validate(OBJ, &with("output: {openTofuEncryption: true}"), &defaults()).is_ok());
    assert!(validate(OBJ, &with("replication: {region: eu-central-1}"), &defaults()).is_ok());
}

/// Abuse: wildcards, policy variables, control and non-ASCII characters never reach a policy
/// through the replica's fields.
#[test]
fn replication_refuses_non_literal_values() {
    for bad in ["acme-*", "acme-?", "acme-${aws:username}", "acme-\u{7}", "acme-é"] {
        let r = |v: serde_json::Value| with_value("replication", v);
        let s = r(serde_json::json!({"region": "eu-central-1", "bucketName": bad}));
        assert_rejects(&s, "spec.replication.bucketName", "");
        assert_rejects(&r(serde_json::json!({"region": bad})), "spec.replication.region", "");
        let arn = format!("arn:aws:kms:eu-central-1:123456789012:key/{bad}");
        let s = r(serde_json::json!({"region": "eu-central-1", "kmsKey": {"existingKeyArn": arn}}));
        assert_rejects(&s, "spec.replication.kmsKey.existingKeyArn", "");
        let alias = format!("alias/{bad}");
        let s = r(serde_json::json!({"region": "eu-central-1", "kmsKey": {"create": {"alias": alias}}}));
        assert_rejects(&s, "spec.replication.kmsKey.create.alias", "");
    }
}

/// A long runner role name still gives an IAM-sized replication role name.
#[test]
fn replication_role_name_fits_iam() {
    let name = "r".repeat(64);
    let s = with(&format!(
        "{{access: {{roleName: {name}, trust: {{awsPrincipals: [arn:aws:iam::123456789012:role/ci]}}}}, replication: {{region: eu-central-1}}}}"
    ));
    let r = validate(OBJ, &s, &defaults()).unwrap().replication.unwrap();
    assert_eq!(r.role_name.len(), 64);
    assert!(r.role_name.ends_with("-replication"));
}
