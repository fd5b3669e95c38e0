//! The desired step, one test per decision it makes. Specs come from YAML through `validate`,
//! as users write them.

use super::*;
use crate::api::TerraformStateBackendSpec;
use crate::policy::{ConditionValue, Principal, Statement};
use crate::reconcile::validate::{ObjectRef, OperatorDefaults, validate};

const OBJ: ObjectRef<'static> = ObjectRef { namespace: "team-payments", name: "payments-prod" };
const ACCOUNT: &str = "123456789012";
const OPERATOR: &str = "arn:aws:iam::123456789012:role/tfstate-operator";
const ROLE: &str = "arn:aws:iam::123456789012:role/tfstate-team-payments-payments-prod";
const KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const PROVIDER: &str = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC";
const TABLE_ARN: &str = "arn:aws:dynamodb:eu-west-1:123456789012:table/acme-tfstate-payments-prod-lock";

const MINIMAL: &str = "
region: eu-west-1
bucket: {name: acme-tfstate-payments-prod}
tags: {team: payments}
access:
  trust:
    awsPrincipals: [arn:aws:iam::123456789012:role/ci]
";

fn owner() -> Owner {
    Owner { namespace: "team-payments".into(), name: "payments-prod".into(), uid: "0b6c1c7e-uid".into() }
}

fn id() -> Identity {
    Identity { account_id: ACCOUNT.into(), partition: "aws".into(), operator_arn: OPERATOR.into() }
}

/// The minimal spec with `extra` YAML merged over it (top-level keys replaced), validated.
fn valid(extra: &str) -> ValidSpec {
    let mut base: serde_json::Value = serde_yaml_ng::from_str(MINIMAL).unwrap();
    let extra: serde_json::Value = serde_yaml_ng::from_str(extra).unwrap();
    for (k, v) in extra.as_object().into_iter().flatten() {
        base[k] = v.clone();
    }
    let spec: TerraformStateBackendSpec = serde_json::from_value(base).expect("test spec deserializes");
    validate(OBJ, &spec, &OperatorDefaults::default()).expect("test spec is valid")
}

fn sids(doc: &PolicyDocument) -> Vec<&str> {
    doc.statements.iter().map(|s| s.sid.as_deref().unwrap_or("")).collect()
}

#[track_caller]
fn statement<'a>(doc: &'a PolicyDocument, sid: &str) -> &'a Statement {
    doc.statements.iter().find(|s| s.sid.as_deref() == Some(sid)).unwrap_or_else(|| panic!("no {sid} in {doc:#?}"))
}

/// The values of `operator: {key: [...]}` in a statement's condition, as strings.
#[track_caller]
fn condition(s: &Statement, operator: &str, key: &str) -> Vec<String> {
    let values = &s.condition.as_ref().expect("statement has a condition")[operator][key];
    values.iter().map(ConditionValue::as_aws_string).collect()
}

fn strings(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| s.to_string()).collect())
}

/// Every resource carries the user's tags and the three ownership tags.
#[test]
fn tags_are_user_tags_plus_ownership() {
    let tags = resource_tags(&valid(""), &owner());
    let expected = Tags::from([
        ("team".into(), "payments".into()),
        (TAG_MANAGED_BY.into(), "tfstate-operator".into()),
        (TAG_OWNER.into(), "team-payments/payments-prod".into()),
        (TAG_OWNER_UID.into(), "0b6c1c7e-uid".into()),
    ]);
    assert_eq!(tags, expected);
    assert_eq!(ownership_tags(&owner()).len(), 3);
}

/// Every ARN the operator builds uses the partition of its identity (aws-cn here).
#[test]
fn arns_follow_the_partition() {
    let v = valid("region: cn-north-1");
    let cn = Identity { partition: "aws-cn".into(), ..id() };
    let role = "arn:aws-cn:iam::123456789012:role/tfstate-team-payments-payments-prod";
    assert_eq!(role_arn(&v, &cn), role);
    assert_eq!(desired_role(&v, &cn, &owner()).arn, role);
    let DesiredKey::Managed { policy, .. } = desired_key(&v, &cn, &owner()) else { panic!("a managed key") };
    assert_eq!(
        statement(&policy, "EnableRootAccountAdministration").principal,
        Some(Principal::aws(["arn:aws-cn:iam::123456789012:root"]))
    );
    assert_eq!(statement(&policy, "AllowBackendRoleUse").principal, Some(Principal::aws([role])));
    assert_eq!(
        condition(statement(&policy, "AllowBackendRoleUse"), "StringEquals", "kms:ViaService"),
        ["s3.cn-north-1.amazonaws.com.cn", "dynamodb.cn-north-1.amazonaws.com.cn"]
    );
    let cn_key = "arn:aws-cn:kms:cn-north-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let r = desired_resources(&v, &cn, Some(cn_key), None);
    assert_eq!(
        statement(&r.bucket.policy, "DenyInsecureTransport").resource,
        strings(&["arn:aws-cn:s3:::acme-tfstate-payments-prod", "arn:aws-cn:s3:::acme-tfstate-payments-prod/*"])
    );
    assert_eq!(
        r.table.unwrap().arn,
        "arn:aws-cn:dynamodb:cn-north-1:123456789012:table/acme-tfstate-payments-prod-lock"
    );
    assert!(
        full_policy(&v, &cn, Some(cn_key))
            .statements
            .iter()
            .flat_map(|s| s.resource.iter().flatten())
            .all(|a| a.starts_with("arn:aws-cn:"))
    );
    assert_eq!(r.backend.assume_role_arn.as_deref(), Some(role));
}

/// The role takes its name, session duration and boundary from the spec and says who owns it.
#[test]
fn role_settings_come_from_the_spec() {
    let r = desired_role(&valid(""), &id(), &owner());
    assert_eq!((r.name.as_str(), r.arn.as_str()), ("tfstate-team-payments-payments-prod", ROLE));
    assert_eq!((r.max_session_duration, r.boundary), (3600, None));
    assert!(r.description.contains("team-payments/payments-prod"), "{}", r.description);
    let boundary = "arn:aws:iam::123456789012:policy/boundary";
    let v = valid(&format!(
        "access: {{roleName: ci-state, maxSessionDurationSeconds: 7200, permissionsBoundaryArn: '{boundary}', \
         trust: {{awsPrincipals: ['arn:aws:iam::123456789012:role/ci']}}}}"
    ));
    let r = desired_role(&v, &id(), &owner());
    assert_eq!(r.arn, "arn:aws:iam::123456789012:role/ci-state");
    assert_eq!((r.max_session_duration, r.boundary.as_deref()), (7200, Some(boundary)));
}

/// IRSA trusts the OIDC provider for web identity, with one `sub` per service account.
#[test]
fn irsa_trust() {
    let v = valid(&format!(
        "access: {{trust: {{oidcProviderArn: '{PROVIDER}', \
         serviceAccounts: [{{namespace: ci, name: tf}}, {{namespace: a, name: b}}]}}}}"
    ));
    let trust = desired_role(&v, &id(), &owner()).trust;
    assert_eq!(sids(&trust), ["AllowServiceAccountsWebIdentity"]);
    let s = &trust.statements[0];
    assert_eq!(s.principal, Some(Principal::federated([PROVIDER])));
    assert_eq!(s.action, strings(&["sts:AssumeRoleWithWebIdentity"]));
    let issuer = "oidc.eks.eu-west-1.amazonaws.com/id/ABC";
    assert_eq!(condition(s, "StringEquals", &format!("{issuer}:aud")), ["sts.amazonaws.com"]);
    assert_eq!(
        condition(s, "StringEquals", &format!("{issuer}:sub")),
        ["system:serviceaccount:a:b", "system:serviceaccount:ci:tf"]
    );
}

/// EKS Pod Identity trusts pods.eks.amazonaws.com with AssumeRole + TagSession, per account.
#[test]
fn pod_identity_trust() {
    let v = valid("access: {trust: {eksPodIdentity: true, serviceAccounts: [{namespace: ci, name: tf}]}}");
    let trust = desired_role(&v, &id(), &owner()).trust;
    assert_eq!(sids(&trust), ["AllowPodIdentity0"]);
    let s = &trust.statements[0];
    assert_eq!(s.principal, Some(Principal::service(["pods.eks.amazonaws.com"])));
    assert_eq!(s.action, strings(&["sts:AssumeRole", "sts:TagSession"]));
    assert_eq!(condition(s, "StringEquals", "aws:SourceAccount"), [ACCOUNT]);
    assert_eq!(condition(s, "StringEquals", "aws:RequestTag/kubernetes-namespace"), ["ci"]);
    assert_eq!(condition(s, "StringEquals", "aws:RequestTag/kubernetes-service-account"), ["tf"]);
}

/// IAM principals get plain `sts:AssumeRole`, sorted as validate resolved them.
#[test]
fn principals_trust() {
    let v = valid(
        "access: {trust: {awsPrincipals: ['arn:aws:iam::123456789012:role/z', 'arn:aws:iam::123456789012:role/a']}}",
    );
    let trust = desired_role(&v, &id(), &owner()).trust;
    assert_eq!(sids(&trust), ["AllowAwsPrincipals"]);
    let s = &trust.statements[0];
    assert_eq!(
        s.principal,
        Some(Principal::aws(["arn:aws:iam::123456789012:role/a", "arn:aws:iam::123456789012:role/z"]))
    );
    assert_eq!(s.action, strings(&["sts:AssumeRole"]));
}

/// AES256 needs no key; an existing key is referenced, never managed.
#[test]
fn aes256_and_existing_keys() {
    assert_eq!(desired_key(&valid("encryption: {mode: AES256}"), &id(), &owner()), DesiredKey::None);
    let v = valid(&format!("encryption: {{kmsKey: {{existingKeyArn: '{KEY}'}}}}"));
    assert_eq!(desired_key(&v, &id(), &owner()), DesiredKey::Existing { arn: KEY.into() });
}

/// A created key has the alias and window of the spec, and a policy naming the account root,
/// the operator, the extra admins and the backend role.
#[test]
fn managed_key() {
    let DesiredKey::Managed { alias, deletion_window_days, description, policy } =
        desired_key(&valid(""), &id(), &owner())
    else {
        panic!("a managed key by default")
    };
    assert_eq!((alias.as_str(), deletion_window_days), ("alias/tfstate-team-payments-payments-prod", 30));
    assert!(description.contains("team-payments/payments-prod"), "{description}");
    assert_eq!(
        sids(&policy),
        [
            "EnableRootAccountAdministration",
            "AllowOperatorAdministration",
            "AllowOperatorGrantsForAwsResources",
            "AllowOperatorReadLockFiles",
            "AllowBackendRoleUse"
        ]
    );
    assert_eq!(statement(&policy, "AllowOperatorAdministration").principal, Some(Principal::aws([OPERATOR])));
    assert_eq!(statement(&policy, "AllowBackendRoleUse").principal, Some(Principal::aws([ROLE])));
    // The role uses the key only through S3 and DynamoDB of the backend's region.
    assert_eq!(
        condition(statement(&policy, "AllowBackendRoleUse"), "StringEquals", "kms:ViaService"),
        ["s3.eu-west-1.amazonaws.com", "dynamodb.eu-west-1.amazonaws.com"]
    );

    let admin = "arn:aws:iam::123456789012:role/admin";
    let v = valid(&format!(
        "encryption: {{kmsKey: {{create: {{alias: alias/x, deletionWindowDays: 7, admins: ['{admin}']}}}}}}"
    ));
    let DesiredKey::Managed { alias, deletion_window_days, policy, .. } = desired_key(&v, &id(), &owner()) else {
        panic!("a managed key")
    };
    assert_eq!((alias.as_str(), deletion_window_days), ("alias/x", 7));
    assert_eq!(statement(&policy, "AllowKeyAdministrators").principal, Some(Principal::aws([admin])));
}

/// The KMS bucket: the key with default encryption, all four public access blocks, exactly one
/// lifecycle rule, the TLS and encryption denials, and no logging unless asked for.
#[test]
fn kms_bucket() {
    let b = desired_resources(&valid(""), &id(), Some(KEY), None).bucket;
    assert_eq!(b.name, "acme-tfstate-payments-prod");
    assert_eq!(b.kms_key_arn.as_deref(), Some(KEY));
    assert_eq!(b.public_access_block, PublicAccessBlock::ALL);
    let rule = Lifecycle {
        id: LIFECYCLE_RULE_ID.into(),
        enabled: true,
        prefix: String::new(),
        noncurrent_days: Some(90),
        abort_multipart_days: Some(7),
        expires_current: false,
    };
    assert_eq!(b.lifecycle, [rule]);
    assert_eq!(
        sids(&b.policy),
        [
            "DenyInsecureTransport",
            "DenyIncorrectEncryptionHeader",
            "DenyKmsWithoutKeyId",
            "DenyWrongKmsKey",
            "DenySseC"
        ]
    );
    let tls = statement(&b.policy, "DenyInsecureTransport");
    assert_eq!(condition(tls, "Bool", "aws:SecureTransport"), ["false"]);
    let header = statement(&b.policy, "DenyIncorrectEncryptionHeader");
    assert_eq!(condition(header, "StringNotEquals", "s3:x-amz-server-side-encryption"), ["aws:kms"]);
    assert_eq!(condition(header, "Null", "s3:x-amz-server-side-encryption"), ["false"]);
    let key = statement(&b.policy, "DenyWrongKmsKey");
    assert_eq!(condition(key, "StringNotEquals", "s3:x-amz-server-side-encryption-aws-kms-key-id"), [KEY]);
    assert_eq!(b.logging, None);
}

/// The AES256 bucket has no key and no key denial; 0 noncurrent days keeps versions forever.
#[test]
fn aes256_bucket_keeping_versions_forever() {
    let v = valid("encryption: {mode: AES256}\nbucket: {name: acme-tf, noncurrentVersionExpirationDays: 0}");
    let b = desired_resources(&v, &id(), None, None).bucket;
    assert_eq!(b.kms_key_arn, None);
    assert_eq!(sids(&b.policy), ["DenyInsecureTransport", "DenyIncorrectEncryptionHeader", "DenySseC"]);
    let header = statement(&b.policy, "DenyIncorrectEncryptionHeader");
    assert_eq!(condition(header, "StringNotEquals", "s3:x-amz-server-side-encryption"), ["AES256"]);
    assert_eq!(b.lifecycle.len(), 1);
    assert_eq!(
        (b.lifecycle[0].noncurrent_days, b.lifecycle[0].abort_multipart_days),
        (None, Some(ABORT_MULTIPART_DAYS))
    );
}

/// Access logging is desired exactly as the spec names it (an omitted prefix is empty).
#[test]
fn logging_when_specified() {
    let v = valid("bucket: {name: acme-tf, accessLogging: {targetBucket: acme-logs, targetPrefix: tfstate/}}");
    let logging = desired_resources(&v, &id(), Some(KEY), None).bucket.logging;
    assert_eq!(logging, Some(Logging { target_bucket: "acme-logs".into(), target_prefix: "tfstate/".into() }));
    let v = valid("bucket: {name: acme-tf, accessLogging: {targetBucket: acme-logs}}");
    let logging = desired_resources(&v, &id(), Some(KEY), None).bucket.logging;
    assert_eq!(logging, Some(Logging { target_bucket: "acme-logs".into(), target_prefix: String::new() }));
}

/// The table exists only in DynamoDB and Both modes, with its ARN and the backend's key.
#[test]
fn table_only_with_dynamodb_locking() {
    for (mode, wanted) in [("DynamoDB", true), ("Both", true), ("Lockfile", false)] {
        let table = desired_resources(&valid(&format!("locking: {{mode: {mode}}}")), &id(), Some(KEY), None).table;
        assert_eq!(table.is_some(), wanted, "{mode}");
    }
    let t = desired_resources(&valid(""), &id(), Some(KEY), None).table.unwrap();
    let expected = DesiredTable {
        name: "acme-tfstate-payments-prod-lock".into(),
        arn: TABLE_ARN.into(),
        kms_key_arn: Some(KEY.into()),
        pitr: true,
        deletion_protection: true,
    };
    assert_eq!(t, expected);
    let v = valid(
        "encryption: {mode: AES256}\n\
         locking: {table: {name: l0ck, pointInTimeRecovery: false, deletionProtection: false}}",
    );
    let t = desired_resources(&v, &id(), None, None).table.unwrap();
    assert_eq!((t.kms_key_arn, t.pitr, t.deletion_protection), (None, false, false));
    assert_eq!(t.arn, "arn:aws:dynamodb:eu-west-1:123456789012:table/l0ck");
}

/// The runner policy grants the lock file only with use_lockfile, the table only when there is
/// one, and the key only with KMS.
#[test]
fn runner_policy_by_mode() {
    let base = ["ListStatePrefixes", "ReadWriteState"];
    for (yaml, key, extra) in [
        ("locking: {mode: DynamoDB}", Some(KEY), &["UseLockTable", "UseStateKey"][..]),
        ("locking: {mode: Lockfile}", Some(KEY), &["ManageLockFiles", "UseStateKey"][..]),
        ("locking: {mode: Both}", Some(KEY), &["ManageLockFiles", "UseLockTable", "UseStateKey"][..]),
        ("locking: {mode: Lockfile}\nencryption: {mode: AES256}", None, &["ManageLockFiles"][..]),
        ("encryption: {mode: AES256}", None, &["UseLockTable"][..]),
    ] {
        let p = full_policy(&valid(yaml), &id(), key);
        let expected: Vec<&str> = base.iter().chain(extra).copied().collect();
        assert_eq!(sids(&p), expected, "{yaml}");
    }
    let p = full_policy(&valid("locking: {mode: Both}"), &id(), Some(KEY));
    assert_eq!(statement(&p, "UseLockTable").resource, strings(&[TABLE_ARN]));
    assert_eq!(statement(&p, "UseStateKey").resource, strings(&[KEY]));
    let state = "arn:aws:s3:::acme-tfstate-payments-prod/team-payments/payments-prod/terraform.tfstate";
    let lock = format!("{state}.tflock");
    assert!(statement(&p, "ManageLockFiles").resource.iter().flatten().any(|r| *r == lock));
    assert!(!statement(&p, "ReadWriteState").action.iter().flatten().any(|a| a == "s3:DeleteObject"));
}

/// Without workspaceKeyPrefix the runner policy uses Terraform's default `env:`, and the
/// backend settings leave it unset; with one, both use it.
#[test]
fn workspace_prefix() {
    let r = desired_resources(&valid(""), &id(), Some(KEY), None);
    let p = full_policy(&valid(""), &id(), Some(KEY));
    let list = statement(&p, "ListStatePrefixes");
    assert_eq!(
        condition(list, "StringLike", "s3:prefix"),
        ["team-payments/payments-prod/terraform.tfstate", "env:/", "env:/*"]
    );
    assert_eq!(r.backend.workspace_key_prefix, None);
    let r = desired_resources(&valid("workspaceKeyPrefix: ws"), &id(), Some(KEY), None);
    let p = full_policy(&valid("workspaceKeyPrefix: ws"), &id(), Some(KEY));
    let list = statement(&p, "ListStatePrefixes");
    assert_eq!(condition(list, "StringLike", "s3:prefix")[1..], ["ws/", "ws/*"]);
    let rw = statement(&p, "ReadWriteState");
    assert!(rw.resource.iter().flatten().any(|a| a.ends_with("/ws/*/team-payments/payments-prod/terraform.tfstate")));
    assert_eq!(r.backend.workspace_key_prefix.as_deref(), Some("ws"));
}

/// The default backend: KMS key, DynamoDB table, assume_role, no lock file, no endpoints.
#[test]
fn backend_settings_default() {
    let b = desired_resources(&valid(""), &id(), Some(KEY), None).backend;
    let mut expected = BackendSettings::new(
        "acme-tfstate-payments-prod",
        "team-payments/payments-prod/terraform.tfstate",
        "eu-west-1",
    );
    expected.kms_key_id = Some(KEY.into());
    expected.dynamodb_table = Some("acme-tfstate-payments-prod-lock".into());
    expected.assume_role_arn = Some(ROLE.into());
    assert_eq!(b, expected);
}

/// Lock file, SSE-S3, assume_role switched off: only use_lockfile is set, with encrypt on.
#[test]
fn backend_settings_lockfile_aes256_without_assume_role() {
    let v = valid(
        "locking: {mode: Lockfile}\nencryption: {mode: AES256}\noutput: {assumeRole: false}\nstateKey: s.tfstate",
    );
    let b = desired_resources(&v, &id(), None, None).backend;
    let mut expected = BackendSettings::new("acme-tfstate-payments-prod", "s.tfstate", "eu-west-1");
    expected.use_lockfile = true;
    assert_eq!(b, expected);
    let both = desired_resources(&valid("locking: {mode: Both}"), &id(), Some(KEY), None).backend;
    assert!(both.use_lockfile && both.dynamodb_table.is_some());
}

/// Endpoints are rendered only when the operator runs against a custom endpoint.
#[test]
fn endpoints_only_with_an_endpoint_url() {
    let url = "http://127.0.0.1:4566";
    let b = desired_resources(&valid(""), &id(), Some(KEY), Some(url)).backend;
    assert_eq!(b.endpoints, Some(Endpoints::all(url)));
    assert_eq!(desired_resources(&valid(""), &id(), Some(KEY), None).backend.endpoints, None);
}

/// The runner policy when the object owns every part it asks for.
fn full_policy(v: &ValidSpec, id: &Identity, key: Option<&str>) -> PolicyDocument {
    let table = desired_resources(v, id, key, None).table.map(|t| t.arn);
    let owned = Owned { bucket: true, table_arn: table.as_deref(), kms_key_arn: key };
    desired_runner_policy(v, id, &owned, v.lock_mode).expect("statements")
}

/// Grants follow ownership: a part in Conflict contributes no statement, and nothing owned
/// means no inline policy at all.
#[test]
fn runner_policy_follows_ownership() {
    let v = valid("locking: {mode: Both}");
    let all = Owned { bucket: true, table_arn: Some(TABLE_ARN), kms_key_arn: Some(KEY) };
    let sids_of = |o: Owned<'_>| {
        desired_runner_policy(&v, &id(), &o, v.lock_mode)
            .map(|p| sids(&p).into_iter().map(str::to_owned).collect::<Vec<_>>())
    };
    assert_eq!(
        sids_of(Owned { bucket: false, ..all }),
        Some(vec!["UseLockTable".to_owned(), "UseStateKey".to_owned()])
    );
    assert_eq!(
        sids_of(Owned { table_arn: None, ..all }),
        Some(["ListStatePrefixes", "ReadWriteState", "ManageLockFiles", "UseStateKey"].map(str::to_owned).to_vec())
    );
    assert_eq!(sids_of(Owned { kms_key_arn: None, ..all }).map(|s| s.contains(&"UseStateKey".to_owned())), Some(false));
    assert_eq!(sids_of(Owned::default()), None);
}

/// OpenTofu's encryption: rendered for the backend's key, region and role only with the flag
/// and a key; the runner and key policies gain direct use only with the flag.
#[test]
fn open_tofu_encryption_follows_the_flag() {
    let on = valid("output: {openTofuEncryption: true}");
    let enc = desired_resources(&on, &id(), Some(KEY), None).backend.open_tofu_encryption.expect("rendered");
    assert_eq!(
        enc,
        OpenTofuEncryption { kms_key_id: KEY.into(), region: "eu-west-1".into(), assume_role_arn: Some(ROLE.into()) }
    );
    let no_role = valid("output: {openTofuEncryption: true, assumeRole: false}");
    let enc = desired_resources(&no_role, &id(), Some(KEY), None).backend.open_tofu_encryption.expect("rendered");
    assert_eq!(enc.assume_role_arn, None);
    // No key known yet: nothing to name, nothing rendered.
    assert_eq!(desired_resources(&on, &id(), None, None).backend.open_tofu_encryption, None);
    assert_eq!(desired_resources(&valid(""), &id(), Some(KEY), None).backend.open_tofu_encryption, None);

    let direct = |v: &ValidSpec| sids(&full_policy(v, &id(), Some(KEY))).contains(&"OpenTofuStateEncryption");
    assert!(direct(&on));
    assert!(!direct(&valid("")));
    let key_sids = |v: &ValidSpec| match desired_key(v, &id(), &owner()) {
        DesiredKey::Managed { policy, .. } => sids(&policy).into_iter().map(str::to_owned).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert!(key_sids(&on).contains(&"AllowBackendRoleOpenTofuEncryption".to_owned()));
    assert!(!key_sids(&valid("")).contains(&"AllowBackendRoleOpenTofuEncryption".to_owned()));
}

/// The trail: single-region, no global service events, log file validation on, and exactly
/// one advanced selector: S3 object data events of the state bucket (prefix ends with `/`, so
/// `acme-tfstate-payments-prod-other` does not match), reads and writes, nothing else.
#[test]
fn the_trail_records_exactly_the_state_objects() {
    use crate::aws::cloudtrail::{FieldSelector, TrailConfig};
    let v = valid("audit: {cloudTrail: {logBucket: acme-audit-logs}}");
    let t = desired_trail(&v, &id()).expect("a trail");
    assert_eq!(
        t.config,
        TrailConfig {
            name: "tfstate-team-payments.payments-prod".into(),
            log_bucket: "acme-audit-logs".into(),
            log_prefix: None,
            multi_region: false,
            global_service_events: false,
            log_file_validation: true,
        }
    );
    assert_eq!(t.arn, "arn:aws:cloudtrail:eu-west-1:123456789012:trail/tfstate-team-payments.payments-prod");
    let field = |f: &str, equals: &[&str], starts_with: &[&str]| FieldSelector {
        field: f.into(),
        equals: equals.iter().map(|s| s.to_string()).collect(),
        starts_with: starts_with.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    assert_eq!(t.selectors.len(), 1);
    assert_eq!(t.selectors[0].name.as_deref(), Some(TRAIL_SELECTOR_NAME));
    assert_eq!(
        t.selectors[0].fields,
        vec![
            field("eventCategory", &["Data"], &[]),
            field("resources.ARN", &[], &["arn:aws:s3:::acme-tfstate-payments-prod/"]),
            field("resources.type", &["AWS::S3::Object"], &[]),
        ]
    );
    assert!(desired_trail(&valid(""), &id()).is_none(), "no audit, no trail");
    let named = valid("audit: {cloudTrail: {logBucket: acme-audit-logs, trailName: payments.audit, logPrefix: a/b}}");
    let t = desired_trail(&named, &id()).unwrap();
    assert_eq!((t.config.name.as_str(), t.config.log_prefix.as_deref()), ("payments.audit", Some("a/b")));
    let cn = Identity { partition: "aws-cn".into(), ..id() };
    assert!(desired_trail(&named, &cn).unwrap().selectors[0].fields[1].starts_with[0].starts_with("arn:aws-cn:s3:::"));
}

/// What a log bucket needs, as the user is told: CloudTrail's service principal, bound to this
/// one trail, `s3:GetBucketAcl` on the bucket and `s3:PutObject` under the prefix's `AWSLogs/`.
#[test]
fn the_log_bucket_statements_name_the_principal_the_trail_and_the_arns() {
    let v = valid("audit: {cloudTrail: {logBucket: acme-audit-logs, logPrefix: tfstate}}");
    let t = desired_trail(&v, &id()).unwrap();
    let s = log_bucket_statements("aws", ACCOUNT, &t);
    let trail = "arn:aws:cloudtrail:eu-west-1:123456789012:trail/tfstate-team-payments.payments-prod";
    assert_eq!(
        s,
        serde_json::json!([
            {"Sid": "AWSCloudTrailAclCheck", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "s3:GetBucketAcl", "Resource": "arn:aws:s3:::acme-audit-logs",
             "Condition": {"StringEquals": {"aws:SourceArn": trail}}},
            {"Sid": "AWSCloudTrailWrite", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "s3:PutObject", "Resource": "arn:aws:s3:::acme-audit-logs/tfstate/AWSLogs/123456789012/*",
             "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceArn": trail}}}
        ])
    );
    let no_prefix = desired_trail(&valid("audit: {cloudTrail: {logBucket: acme-audit-logs}}"), &id()).unwrap();
    let s = log_bucket_statements("aws", ACCOUNT, &no_prefix);
    assert_eq!(s[1]["Resource"], "arn:aws:s3:::acme-audit-logs/AWSLogs/123456789012/*");
}

const REPLICA_KEY: &str = "arn:aws:kms:eu-central-1:123456789012:key/2222abcd-12ab-34cd-56ef-1234567890ab";

/// The replica: role trusted by S3 for this bucket, key in the replica's region, a read-only
/// bucket hardened like the state bucket, and the V2 replication rule.
#[test]
fn replica_is_derived_from_the_spec() {
    let v = valid("replication: {region: eu-central-1, replicationTimeControl: true}");
    let d = desired_replica(&v, &id(), &owner()).expect("replica");
    assert_eq!(d.region, "eu-central-1");
    assert_eq!(d.role.arn, "arn:aws:iam::123456789012:role/tfstate-team-payments-payments-prod-replication");
    assert_eq!(d.role.trust, replication_trust_policy("aws", ACCOUNT, "acme-tfstate-payments-prod"));
    let DesiredKey::Managed { alias, policy, .. } = &d.key else { panic!("a managed key: {:?}", d.key) };
    assert_eq!(alias, "alias/tfstate-team-payments-payments-prod-replica");
    assert!(sids(policy).contains(&"AllowReplicationRoleUse"));
    let res = desired_replica_resources(&v, &id(), &d, KEY, REPLICA_KEY).expect("resources");
    let primary = desired_resources(&v, &id(), Some(KEY), None).bucket;
    assert_eq!(res.bucket.name, "acme-tfstate-payments-prod-replica");
    assert_eq!(res.bucket.kms_key_arn.as_deref(), Some(REPLICA_KEY));
    assert_eq!(res.bucket.public_access_block, primary.public_access_block);
    assert_eq!(res.bucket.lifecycle, primary.lifecycle);
    assert_eq!(sids(&res.bucket.policy)[1], "DenyWritesButReplication");
    let rule = &res.config.rules[0];
    assert_eq!(res.config.role_arn, d.role.arn);
    assert_eq!((rule.priority, rule.filter_prefix.as_deref()), (Some(1), Some("")));
    assert!(rule.enabled && rule.sse_kms_objects && !rule.delete_markers);
    assert!(rule.replication_time && rule.metrics);
    assert_eq!(rule.destination_bucket_arn, "arn:aws:s3:::acme-tfstate-payments-prod-replica");
    assert_eq!(rule.replica_kms_key_id.as_deref(), Some(REPLICA_KEY));
    assert!(desired_replica(&valid(""), &id(), &owner()).is_none());
}

/// Without Replication Time Control, neither it nor its metrics are asked for.
#[test]
fn replica_without_rtc() {
    let v = valid("replication: {region: eu-central-1}");
    let d = desired_replica(&v, &id(), &owner()).unwrap();
    let rule = &desired_replica_resources(&v, &id(), &d, KEY, REPLICA_KEY).unwrap().config.rules[0];
    assert!(!rule.replication_time && !rule.metrics);
}
