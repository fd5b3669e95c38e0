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
    ] {
        Regex::new(p).unwrap();
    }
}
