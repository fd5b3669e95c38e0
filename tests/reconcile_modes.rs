//! Create -> Ready in every encryption and lock mode, on the real test ground. Each test reads
//! every AWS setting back through independent clients (not the operator's; raw SDK calls or the
//! crate's thin read wrappers), compares every
//! policy semantically with the documented one and checks its key statements one by one, and
//! parses the published ConfigMap as HCL; the Events must name every resource created.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::{BillingMode, KeyType, ScalarAttributeType};
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType};
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration, ObjectOwnership, ServerSideEncryption};
use common::harness::Harness;
use common::operator::{create_backend, unique_bucket, wait_ready};
use common::random_suffix;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tfstate_operator::api::TerraformStateBackend;
use tfstate_operator::aws::{Tags, dynamodb, iam, kms};
use tfstate_operator::policy::{
    BucketPolicyEncryption, BucketPolicyInput, Effect, KeyPolicyInput, PolicyDocument, Principal, RunnerPolicyInput,
    Statement, TrustPolicyInput, bucket_policy, key_policy, principal_arn_for_policy, runner_policy, trust_policy,
};

const ROOT: &str = "arn:aws:iam::123456789012:root";
const OIDC: &str = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/MODES0123";
const ISSUER: &str = "oidc.eks.eu-west-1.amazonaws.com/id/MODES0123";

/// How the state is expected to be encrypted.
enum Key {
    /// A key the operator creates: alias and extra administrators.
    Create(String, Vec<String>),
    /// A key the test created; the operator must use it and leave it alone.
    Existing(String),
    /// SSE-S3.
    Aes256,
}

/// Everything one backend must look like, resolved from its spec by [`expect`].
struct Expect {
    name: &'static str,
    bucket: String,
    state_key: String,
    workspace_prefix: Option<String>,
    noncurrent_days: i64,
    key: Key,
    table: Option<String>,
    pitr: bool,
    deletion_protection: bool,
    lockfile: bool,
    logging: Option<(String, String)>,
    tags: Tags,
    role: String,
    max_session: i64,
    boundary: Option<String>,
    service_accounts: Vec<(String, String)>,
    oidc: Option<String>,
    pod_identity: bool,
    principals: Vec<String>,
    config_map: String,
}

/// What `spec` asks for, every default resolved as DESIGN.md documents it (independently of
/// the operator's own validate step).
fn expect(ns: &str, name: &'static str, spec: &Value) -> Expect {
    let text = |path: &str| spec.pointer(path).and_then(Value::as_str).map(str::to_string);
    let int = |path: &str, default| spec.pointer(path).and_then(Value::as_i64).unwrap_or(default);
    let flag = |path: &str, default| spec.pointer(path).and_then(Value::as_bool).unwrap_or(default);
    let strings = |path: &str| -> Vec<String> {
        serde_json::from_value(spec.pointer(path).cloned().unwrap_or(json!([]))).expect(path)
    };
    let bucket = text("/bucket/name").expect("bucket name");
    let lock = text("/locking/mode").unwrap_or("DynamoDB".into());
    let key = match (text("/encryption/mode").as_deref(), text("/encryption/kmsKey/existingKeyArn")) {
        (Some("AES256"), _) => Key::Aes256,
        (_, Some(arn)) => Key::Existing(arn),
        _ => Key::Create(
            text("/encryption/kmsKey/create/alias").unwrap_or(format!("alias/tfstate-{ns}-{name}")),
            strings("/encryption/kmsKey/create/admins"),
        ),
    };
    let sa = |v: &Value| (v["namespace"].as_str().expect("namespace").into(), v["name"].as_str().expect("name").into());
    let mut service_accounts: Vec<_> =
        spec.pointer("/access/trust/serviceAccounts").and_then(Value::as_array).into_iter().flatten().map(sa).collect();
    service_accounts.sort();
    Expect {
        name,
        state_key: text("/stateKey").unwrap_or(format!("{ns}/{name}/terraform.tfstate")),
        workspace_prefix: text("/workspaceKeyPrefix"),
        noncurrent_days: int("/bucket/noncurrentVersionExpirationDays", 90),
        key,
        table: (lock != "Lockfile").then(|| text("/locking/table/name").unwrap_or(format!("{bucket}-lock"))),
        pitr: flag("/locking/table/pointInTimeRecovery", true),
        deletion_protection: flag("/locking/table/deletionProtection", true),
        lockfile: lock != "DynamoDB",
        logging: text("/bucket/accessLogging/targetBucket")
            .map(|b| (b, text("/bucket/accessLogging/targetPrefix").unwrap_or_default())),
        tags: serde_json::from_value(spec.get("tags").cloned().unwrap_or(json!({}))).expect("tags"),
        role: text("/access/roleName").unwrap_or(format!("tfstate-{ns}-{name}")),
        max_session: int("/access/maxSessionDurationSeconds", 3600),
        boundary: text("/access/permissionsBoundaryArn"),
        service_accounts,
        oidc: text("/access/trust/oidcProviderArn"),
        pod_identity: flag("/access/trust/eksPodIdentity", false),
        principals: strings("/access/trust/awsPrincipals"),
        config_map: text("/output/configMapName").unwrap_or(format!("{name}-backend")),
        bucket,
    }
}

/// One test's namespace, operator and clients.
async fn harness(prefix: &str) -> Harness {
    common::harness::harness(prefix, Duration::from_secs(600)).await
}

/// KMS created + DynamoDB lock table + IRSA trust, with every derived default (alias, table,
/// role, state key, ConfigMap name) and a non-default lifecycle and session duration.
#[tokio::test]
async fn kms_created_key_dynamodb_lock_irsa_trust() {
    let h = harness("modes-kms").await;
    let bucket = unique_bucket("modes-kms");
    let trust = json!({"serviceAccounts": [{"namespace": "ci", "name": "runner"}], "oidcProviderArn": OIDC});
    let spec = json!({"bucket": {"name": bucket, "noncurrentVersionExpirationDays": 45},
        "access": {"maxSessionDurationSeconds": 7200, "trust": trust}, "tags": {"team": "pay", "env": "prod"}});
    create_and_check(&h, "alpha", spec).await;
}

/// An existing KMS key (created here, never modified by the operator) + S3 lock files (no table)
/// + EKS Pod Identity trust for two service accounts, explicit state key and workspace prefix.
#[tokio::test]
async fn existing_key_lockfile_pod_identity_trust() {
    let h = harness("modes-existing").await;
    // KeySpec and KeyUsage are AWS's defaults, named because moto leaves KeyUsage unset otherwise.
    let create = h.aws.kms.create_key().key_spec(KeySpec::SymmetricDefault).key_usage(KeyUsageType::EncryptDecrypt);
    let created = create.description("modes test key").send().await.expect("CreateKey");
    let key_arn = created.key_metadata().and_then(|m| m.arn()).expect("key ARN").to_string();
    let (bucket, role) = (unique_bucket("modes-existing"), format!("modes-pod-{}", random_suffix()));
    let sas = json!([{"namespace": "team", "name": "tf"}, {"namespace": "ci", "name": "runner"}]);
    let spec = json!({"bucket": {"name": bucket}, "stateKey": "team/app/terraform.tfstate",
        "workspaceKeyPrefix": "workspaces", "encryption": {"mode": "KMS", "kmsKey": {"existingKeyArn": key_arn}},
        "locking": {"mode": "Lockfile"}, "tags": {"team": "core"},
        "access": {"roleName": role, "trust": {"serviceAccounts": sas, "eksPodIdentity": true}}});
    create_and_check(&h, "beta", spec).await;
}

/// SSE-S3 (AES256) + both lock kinds + AWS principal trust, with an explicit table (PITR and
/// deletion protection off), a permissions boundary and an explicit ConfigMap name: no key anywhere.
#[tokio::test]
async fn aes256_both_locks_aws_principal_trust() {
    let h = harness("modes-aes").await;
    let bucket = unique_bucket("modes-aes");
    let table = format!("{bucket}-locks");
    let boundary = "arn:aws:iam::aws:policy/PowerUserAccess";
    let spec = json!({"bucket": {"name": bucket, "noncurrentVersionExpirationDays": 10},
        "encryption": {"mode": "AES256"}, "output": {"configMapName": "gamma-tf"},
        "locking": {"mode": "Both", "table": {"name": table, "pointInTimeRecovery": false, "deletionProtection": false}},
        "access": {"trust": {"awsPrincipals": [ROOT]}, "permissionsBoundaryArn": boundary}});
    create_and_check(&h, "gamma", spec).await;
}

/// Server access logging into a log bucket created first (the logging service allowed by its
/// bucket policy), with a created key under an explicit alias and an extra key administrator.
#[tokio::test]
async fn access_logging_to_existing_log_bucket() {
    let h = harness("modes-logs").await;
    let logs = unique_bucket("modes-logs-target");
    let location = CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::EuWest1).build();
    h.aws.s3.create_bucket().bucket(&logs).create_bucket_configuration(location).send().await.expect("log bucket");
    let allow_logging = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject",
        "Principal": {"Service": "logging.s3.amazonaws.com"}, "Resource": format!("arn:aws:s3:::{logs}/*")}]});
    h.aws.s3.put_bucket_policy().bucket(&logs).policy(allow_logging.to_string()).send().await.expect("log policy");
    let (bucket, alias) = (unique_bucket("modes-logged"), format!("alias/modes-logs-{}", random_suffix()));
    let admin = "arn:aws:iam::123456789012:role/platform-admin";
    let spec = json!({"bucket": {"name": bucket, "accessLogging": {"targetBucket": logs, "targetPrefix": "tfstate/"}},
        "encryption": {"kmsKey": {"create": {"alias": alias, "deletionWindowDays": 7, "admins": [admin]}}},
        "access": {"trust": {"awsPrincipals": [ROOT]}}, "tags": {"owner": "platform"}});
    create_and_check(&h, "delta", spec).await;
}

/// Creates the backend, waits until it is Ready and checks everything against its spec.
async fn create_and_check(h: &Harness, name: &'static str, spec: Value) {
    let obj = json!({"apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStateBackend",
        "metadata": {"name": name}, "spec": spec});
    create_backend(&h.api, &obj.to_string()).await;
    let obj = wait_ready(&h.api, name).await;
    check(h, &obj, &expect(&h.ns, name, &spec)).await;
}

/// Checks status, bucket, key, table, role, ConfigMap and Events of `obj` against `e`.
async fn check(h: &Harness, obj: &TerraformStateBackend, e: &Expect) {
    let mut tags = e.tags.clone();
    tags.insert("tfstate.dev/managed-by".into(), "tfstate-operator".into());
    tags.insert("tfstate.dev/owner".into(), format!("{}/{}", h.ns, e.name));
    tags.insert("tfstate.dev/owner-uid".into(), obj.uid().expect("uid"));
    let role = iam::get_role(&h.aws.iam, &e.role).await.expect("GetRole").expect("the role exists");
    let key_arn = check_key(h, e, &tags, &role.arn).await;
    let table_arn = check_table(h, e, &tags, key_arn.as_deref()).await;
    check_bucket(h, e, &tags, key_arn.as_deref()).await;
    check_role(h, e, &tags, &role, key_arn.as_deref(), table_arn.as_deref()).await;
    let s = obj.status.clone().expect("status");
    let got = (s.bucket_arn, s.kms_key_arn, s.lock_table_arn, s.role_arn, s.account_id, s.config_map_name);
    let bucket_arn = format!("arn:aws:s3:::{}", e.bucket);
    let account = h.ground.var("TESTGROUND_ACCOUNT_ID").to_string();
    let want = (
        Some(bucket_arn),
        key_arn.clone(),
        table_arn,
        Some(role.arn.clone()),
        Some(account),
        Some(e.config_map.clone()),
    );
    assert_eq!(got, want, "status: bucket, key, table and role ARNs, account, ConfigMap");
    check_config_map(h, obj, e, key_arn.as_deref(), &role.arn).await;
    let created_key = matches!(e.key, Key::Create(..)).then(|| key_arn.clone()).flatten();
    let created = [Some(e.bucket.clone()), created_key, e.table.clone(), Some(e.role.clone())];
    check_events(h, e.name, &created.into_iter().flatten().collect::<Vec<_>>()).await;
}

async fn check_bucket(h: &Harness, e: &Expect, tags: &Tags, key_arn: Option<&str>) {
    let (s3, b) = (&h.aws.s3, e.bucket.as_str());
    let versioning = s3.get_bucket_versioning().bucket(b).send().await.expect("GetBucketVersioning");
    assert_eq!(versioning.status().map(|s| s.as_str()), Some("Enabled"), "versioning");
    let enc = s3.get_bucket_encryption().bucket(b).send().await.expect("GetBucketEncryption");
    let rules = enc.server_side_encryption_configuration().expect("SSE configuration").rules();
    assert_eq!(rules.len(), 1, "one default encryption rule");
    let by_default = rules[0].apply_server_side_encryption_by_default().expect("SSE by default");
    let algorithm = if key_arn.is_some() { ServerSideEncryption::AwsKms } else { ServerSideEncryption::Aes256 };
    assert_eq!((by_default.sse_algorithm(), by_default.kms_master_key_id()), (&algorithm, key_arn), "default SSE");
    assert!(key_arn.is_none() || rules[0].bucket_key_enabled() == Some(true), "bucket keys on with SSE-KMS");
    let pab = s3.get_public_access_block().bucket(b).send().await.expect("GetPublicAccessBlock");
    let p = pab.public_access_block_configuration().expect("public access block");
    let flags = [p.block_public_acls(), p.ignore_public_acls(), p.block_public_policy(), p.restrict_public_buckets()];
    assert_eq!(flags, [Some(true); 4], "all four public access block flags");
    let own = s3.get_bucket_ownership_controls().bucket(b).send().await.expect("GetBucketOwnershipControls");
    let own = own.ownership_controls().map(|o| o.rules().iter().map(|r| r.object_ownership().clone()).collect());
    assert_eq!(own, Some(vec![ObjectOwnership::BucketOwnerEnforced]), "object ownership");
    let lc = s3.get_bucket_lifecycle_configuration().bucket(b).send().await.expect("GetBucketLifecycleConfiguration");
    let rule = lc.rules().first().filter(|_| lc.rules().len() == 1).expect("exactly the operator's lifecycle rule");
    let noncurrent = rule.noncurrent_version_expiration().and_then(|n| n.noncurrent_days()).map(i64::from);
    let abort = rule.abort_incomplete_multipart_upload().and_then(|a| a.days_after_initiation());
    let got = (rule.status().as_str(), noncurrent, abort, rule.expiration());
    assert_eq!(got, ("Enabled", Some(e.noncurrent_days), Some(7), None), "lifecycle (current versions never expire)");
    let logging = s3.get_bucket_logging().bucket(b).send().await.expect("GetBucketLogging");
    let got = logging.logging_enabled().map(|l| (l.target_bucket().to_string(), l.target_prefix().to_string()));
    assert_eq!(got, e.logging, "access logging");
    let tagging = s3.get_bucket_tagging().bucket(b).send().await.expect("GetBucketTagging");
    let got: Tags = tagging.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
    assert_eq!(&got, tags, "bucket tags");

    let policy = s3.get_bucket_policy().bucket(b).send().await.expect("GetBucketPolicy");
    let policy = PolicyDocument::parse(policy.policy().expect("bucket policy")).expect("bucket policy parses");
    let encryption = key_arn.map_or(BucketPolicyEncryption::Aes256, |key_arn| BucketPolicyEncryption::Kms { key_arn });
    let want = bucket_policy(&BucketPolicyInput { partition: "aws", bucket: b, encryption });
    assert!(policy.semantically_eq(&want), "bucket policy {}\nwanted {}", policy.to_json(), want.to_json());
    // Independently of the builder: the denials DESIGN.md lists, on every object, and no others.
    // Each encryption denial is guarded by the presence (`Null: false`) of what it judges, so
    // header-less requests (multipart parts) are left to default encryption.
    let sse = "s3:x-amz-server-side-encryption";
    let (key_id, sse_c) = (format!("{sse}-aws-kms-key-id"), format!("{sse}-customer-algorithm"));
    let mut denials = vec![
        vec![("Bool", "aws:SecureTransport", "false")],
        vec![("Null", sse, "false"), ("StringNotEquals", sse, algorithm.as_str())],
        vec![("Null", sse_c.as_str(), "false")],
    ];
    if let Some(k) = key_arn {
        denials.push(vec![("StringEquals", sse, "aws:kms"), ("Null", &key_id, "true")]);
        denials.push(vec![("Null", &key_id, "false"), ("StringNotEquals", &key_id, k)]);
    }
    assert_eq!(policy.statements.len(), denials.len(), "one statement per denial");
    let objects = format!("arn:aws:s3:::{b}/*");
    for conditions in denials {
        let denies = |s: &Statement| s.effect == Effect::Deny && list(&s.resource).contains(&objects);
        let exactly = |s: &Statement| {
            let count: usize = s.condition.iter().flatten().map(|(_, keys)| keys.len()).sum();
            count == conditions.len() && conditions.iter().all(|(op, key, value)| cond(s, op, key) == [*value])
        };
        find(&policy, |s| denies(s) && s.principal == Some(Principal::Any) && exactly(s));
    }
}

/// Returns the key ARN the backend must use (`None` with AES256).
async fn check_key(h: &Harness, e: &Expect, tags: &Tags, role_arn: &str) -> Option<String> {
    let (lookup, alias, admins) = match &e.key {
        Key::Aes256 => return None,
        Key::Existing(arn) => (arn, None, &[][..]),
        Key::Create(alias, admins) => (alias, Some(alias), admins.as_slice()),
    };
    let described = h.aws.kms.describe_key().key_id(lookup).send().await.expect("DescribeKey");
    let meta = described.key_metadata().expect("key metadata");
    let kind = (meta.key_spec(), meta.key_usage(), meta.key_state());
    assert_eq!(kind, (Some(&KeySpec::SymmetricDefault), Some(&KeyUsageType::EncryptDecrypt), Some(&KeyState::Enabled)));
    let settings = kms::get_settings(&h.aws.kms, meta.key_id()).await.expect("key settings");
    let Some(alias) = alias else {
        assert!(settings.tags.is_empty(), "an existing key is never changed, not even tagged: {:?}", settings.tags);
        return meta.arn().map(str::to_string);
    };
    assert_eq!((&settings.tags, settings.rotation_enabled), (tags, true), "key tags and rotation");
    let aliases = h.aws.kms.list_aliases().key_id(meta.key_id()).send().await.expect("ListAliases");
    assert!(aliases.aliases().iter().any(|a| a.alias_name() == Some(alias.as_str())), "alias {alias}");
    let policy = PolicyDocument::parse(&settings.policy.expect("key policy")).expect("key policy parses");
    let caller = h.aws.sts.get_caller_identity().send().await.expect("GetCallerIdentity");
    let operator = principal_arn_for_policy(caller.arn().expect("caller ARN"));
    let (partition, account_id, operator_arn) = ("aws", "123456789012", operator.as_str());
    let region = "eu-west-1";
    let want = key_policy(&KeyPolicyInput {
        partition,
        region,
        account_id,
        operator_arn,
        role_arn,
        admins,
        principal_org_id: None,
        open_tofu_encryption: false,
    });
    assert!(policy.semantically_eq(&want), "key policy {}\nwanted {}", policy.to_json(), want.to_json());
    // Independently of the builder: root administers, the role only uses the key.
    let allowed = |who: &str| -> Vec<String> {
        let names = |s: &&Statement| s.effect == Effect::Allow && principals(s, "AWS").iter().any(|p| p == who);
        policy.statements.iter().filter(names).flat_map(|s| list(&s.action)).collect()
    };
    assert_eq!(allowed(ROOT), ["kms:*"], "the account root administers the key");
    assert!(allowed(&operator).contains(&"kms:ScheduleKeyDeletion".into()), "the operator administers the key");
    assert_eq!(allowed(role_arn), ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"]);
    meta.arn().map(str::to_string)
}

/// Returns the table ARN (`None`, after checking there is no table, when none is expected).
async fn check_table(h: &Harness, e: &Expect, tags: &Tags, key_arn: Option<&str>) -> Option<String> {
    let ddb = &h.aws.dynamodb;
    let Some(name) = &e.table else {
        let default_name = format!("{}-lock", e.bucket);
        assert_eq!(dynamodb::describe(ddb, &default_name).await.expect("DescribeTable"), None, "no lock table");
        return None;
    };
    let described = ddb.describe_table().table_name(name).send().await.expect("DescribeTable");
    let t = described.table().expect("table");
    let keys: Vec<_> = t.key_schema().iter().map(|k| (k.attribute_name(), k.key_type())).collect();
    assert_eq!(keys, [("LockID", &KeyType::Hash)], "hash key LockID only");
    let attrs: Vec<_> = t.attribute_definitions().iter().map(|a| (a.attribute_name(), a.attribute_type())).collect();
    assert_eq!(attrs, [("LockID", &ScalarAttributeType::S)]);
    assert_eq!(t.billing_mode_summary().and_then(|b| b.billing_mode()), Some(&BillingMode::PayPerRequest));
    let sse = t.sse_description().filter(|s| s.status().is_some_and(|s| s.as_str() == "ENABLED"));
    assert_eq!(sse.and_then(|s| s.kms_master_key_arn()), key_arn, "table SSE key (AWS owned without KMS)");
    assert_eq!(t.deletion_protection_enabled().unwrap_or(false), e.deletion_protection, "deletion protection");
    let arn = t.table_arn().expect("table ARN").to_string();
    let settings = dynamodb::get_settings(ddb, name, &arn).await.expect("PITR and tags");
    assert_eq!((settings.pitr, &settings.tags), (e.pitr, tags), "table PITR and tags");
    Some(arn)
}

async fn check_role(
    h: &Harness,
    e: &Expect,
    tags: &Tags,
    role: &iam::RoleInfo,
    key: Option<&str>,
    table: Option<&str>,
) {
    let got = (i64::from(role.max_session_duration), &role.permissions_boundary_arn, &role.tags);
    assert_eq!(got, (e.max_session, &e.boundary, tags), "max session duration, permissions boundary, tags");
    let trust = PolicyDocument::parse(&role.trust_policy).expect("trust policy parses");
    let (partition, account_id, service_accounts) = ("aws", "123456789012", e.service_accounts.as_slice());
    let (oidc_provider_arn, eks_pod_identity, aws_principals) = (e.oidc.as_deref(), e.pod_identity, &e.principals);
    let input = TrustPolicyInput {
        partition,
        account_id,
        service_accounts,
        oidc_provider_arn,
        eks_pod_identity,
        aws_principals,
        principal_org_id: None,
    };
    let want = trust_policy(&input);
    assert!(trust.semantically_eq(&want), "trust policy {}\nwanted {}", trust.to_json(), want.to_json());
    // Independently of the builder: which principal types may assume the role, and how.
    let grants = |kind: &str| -> Vec<String> {
        let typed = |s: &&Statement| !principals(s, kind).is_empty();
        trust.statements.iter().filter(typed).flat_map(|s| list(&s.action)).collect()
    };
    let strings = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let web = strings(if e.oidc.is_some() { &["sts:AssumeRoleWithWebIdentity"] } else { &[] });
    let pods = strings(&["sts:AssumeRole", "sts:TagSession"].repeat(if e.pod_identity {
        e.service_accounts.len()
    } else {
        0
    }));
    let aws = strings(if e.principals.is_empty() { &[] } else { &["sts:AssumeRole"] });
    assert_eq!((grants("Federated"), grants("Service"), grants("AWS")), (web, pods, aws), "who may assume, how");
    let subjects: Vec<_> = e.service_accounts.iter().map(|(n, a)| format!("system:serviceaccount:{n}:{a}")).collect();
    for s in trust.statements.iter().filter(|s| !principals(s, "Federated").is_empty()) {
        let (aud, sub) = (format!("{ISSUER}:aud"), format!("{ISSUER}:sub"));
        let got = (cond(s, "StringEquals", &aud), cond(s, "StringEquals", &sub));
        assert_eq!(got, (vec!["sts.amazonaws.com".to_string()], subjects.clone()), "IRSA audience and subjects");
    }

    let names = h.aws.iam.list_role_policies().role_name(&e.role).send().await.expect("ListRolePolicies");
    assert_eq!(names.policy_names(), ["tfstate-backend"], "exactly one inline policy");
    let doc = iam::get_inline_policy(&h.aws.iam, &e.role, "tfstate-backend").await.expect("GetRolePolicy");
    let inline = PolicyDocument::parse(&doc.expect("inline policy")).expect("inline policy parses");
    let (bucket, state_key, lockfile) = (e.bucket.as_str(), e.state_key.as_str(), e.lockfile);
    let workspace_key_prefix = e.workspace_prefix.as_deref().unwrap_or("env:");
    let (table_arn, kms_key_arn) = (table, key);
    let input = RunnerPolicyInput {
        partition,
        region: "eu-west-1",
        bucket: Some(bucket),
        state_key,
        workspace_key_prefix,
        lockfile,
        table_arn,
        kms_key_arn,
        open_tofu_encryption: false,
    };
    let want = runner_policy(&input);
    assert!(inline.semantically_eq(&want), "inline policy {}\nwanted {}", inline.to_json(), want.to_json());
    // Independently of the builder: resources of the statements granting actions with a prefix.
    let granted = |prefix: &str| -> Vec<Vec<String>> {
        let grants = |s: &&Statement| list(&s.action).iter().any(|a| a.starts_with(prefix) || a == "s3:*");
        inline.statements.iter().filter(grants).map(|s| list(&s.resource)).collect()
    };
    let lock_file = |object: &str| format!("arn:aws:s3:::{bucket}/{object}.tflock");
    let lock_files = vec![lock_file(state_key), lock_file(&format!("{workspace_key_prefix}/*/{state_key}"))];
    let one = |arn: Option<&str>| arn.map(|a| vec![a.to_string()]).into_iter().collect::<Vec<_>>();
    assert_eq!(granted("s3:Delete"), one(None).into_iter().chain(lockfile.then_some(lock_files)).collect::<Vec<_>>());
    assert_eq!(granted("dynamodb:"), one(table), "dynamodb grants only with a table, on it");
    assert_eq!(granted("kms:"), one(key), "kms grants only with a key, on it");
}

async fn check_config_map(h: &Harness, obj: &TerraformStateBackend, e: &Expect, key: Option<&str>, role_arn: &str) {
    let cm = Api::<ConfigMap>::namespaced(h.client.clone(), &h.ns).get(&e.config_map).await.expect("ConfigMap");
    let owner = cm.owner_references().iter().find(|r| r.uid == obj.uid().expect("uid")).expect("owned by the object");
    assert_eq!((owner.kind.as_str(), owner.controller), ("TerraformStateBackend", Some(true)));
    let data = cm.data.expect("ConfigMap data");
    let endpoint = h.ground.var("AWS_ENDPOINT_URL");
    let mut want = json!({"bucket": e.bucket, "key": e.state_key, "region": "eu-west-1", "encrypt": true,
        "assume_role": {"role_arn": role_arn}, "use_path_style": true,
        "endpoints": {"s3": endpoint, "dynamodb": endpoint, "sts": endpoint, "iam": endpoint}});
    let optional = [
        ("kms_key_id", key.map(Value::from)),
        ("dynamodb_table", e.table.as_deref().map(Value::from)),
        ("use_lockfile", e.lockfile.then_some(Value::Bool(true))),
        ("workspace_key_prefix", e.workspace_prefix.as_deref().map(Value::from)),
    ];
    for (k, v) in optional.into_iter().filter_map(|(k, v)| Some((k, v?))) {
        want[k] = v;
    }
    let tfbackend: Value = hcl::from_str(&data["backend.tfbackend"]).expect("backend.tfbackend is HCL");
    assert_eq!(tfbackend, want, "backend.tfbackend");
    let tf: Value = hcl::from_str(&data["backend.tf"]).expect("backend.tf is HCL");
    assert_eq!(tf, json!({"terraform": {"backend": {"s3": want}}}), "backend.tf");
    // assume_role and endpoints must be attributes with object values, never nested blocks.
    let body = hcl::parse(&data["backend.tf"]).expect("backend.tf parses");
    let terraform = body.blocks().find(|b| b.identifier() == "terraform").expect("terraform block");
    let backend = terraform.body().blocks().next().expect("backend block");
    assert_eq!((backend.identifier(), backend.labels()[0].as_str()), ("backend", "s3"));
    assert_eq!(backend.body().blocks().count(), 0, "no nested blocks in backend \"s3\"");
    for name in ["assume_role", "endpoints"] {
        let attr = backend.body().attributes().find(|a| a.key() == name).expect(name);
        assert!(matches!(attr.expr(), hcl::Expression::Object(_)), "{name} = {{ ... }}");
    }
    let want = want.as_object().expect("object");
    let flat: Vec<_> = data.keys().filter(|k| !k.starts_with("backend.")).collect();
    let mut names: Vec<_> = want.keys().collect();
    names.sort();
    assert_eq!(flat, names, "one flat key per argument, and only those");
    for (k, v) in want {
        let flat: Value = match v {
            Value::Object(_) => hcl::from_str::<Value>(&format!("v = {}", data[k])).expect("flat object")["v"].clone(),
            Value::Bool(_) => Value::Bool(data[k] == "true"),
            _ => Value::from(data[k].as_str()),
        };
        assert_eq!(&flat, v, "flat key {k}");
    }
}

/// One `Created` Event naming every resource the operator created (names or ARNs in
/// `created`: the emulator creates them all in one pass, and a pass folds its Events by
/// reason), and neither warnings nor drift repairs on a fresh backend.
async fn check_events(h: &Harness, name: &str, created: &[String]) {
    let list = events_naming(h, name, "Created", created).await;
    assert!(list.iter().all(|e| e.0.as_deref() == Some("Normal")), "no Warning Events: {list:#?}");
    assert!(list.iter().all(|e| e.1.as_deref() != Some("DriftRepaired")), "no drift repaired: {list:#?}");
    let creates: Vec<_> = list.iter().filter(|e| e.1.as_deref() == Some("Created")).collect();
    assert_eq!(creates.len(), 1, "one Created Event for the pass that created every part: {list:#?}");
    assert_eq!(creates[0].3, None, "published once, not as a series: {list:#?}");
}

/// (type, reason, note, series count) of an Event.
type EventSummary = (Option<String>, Option<String>, Option<String>, Option<i32>);

/// Polls the Events of object `name` (at most 30 s) until those with `reason` name each of
/// `names`; returns all its Events.
async fn events_naming(h: &Harness, name: &str, reason: &str, names: &[String]) -> Vec<EventSummary> {
    let events: Api<Event> = Api::namespaced(h.client.clone(), &h.ns);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let list = events.list(&ListParams::default()).await.expect("list Events").items;
        let list = list.into_iter().filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name));
        let summary: Vec<EventSummary> = list.map(|e| (e.type_, e.reason, e.note, e.series.map(|s| s.count))).collect();
        let notes: Vec<&str> =
            summary.iter().filter(|e| e.1.as_deref() == Some(reason)).filter_map(|e| e.2.as_deref()).collect();
        let missing: Vec<_> = names.iter().filter(|n| !notes.iter().any(|m| m.contains(n.as_str()))).collect();
        if !notes.is_empty() && missing.is_empty() {
            return summary;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {reason} Event names {missing:?} within 30 s: {summary:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn find(doc: &PolicyDocument, pred: impl Fn(&Statement) -> bool) -> &Statement {
    doc.statements.iter().find(|s| pred(s)).unwrap_or_else(|| panic!("no such statement in {}", doc.to_json()))
}

/// `Action` or `Resource` of a statement (empty when absent).
fn list(field: &Option<Vec<String>>) -> Vec<String> {
    field.clone().unwrap_or_default()
}

fn principals(s: &Statement, kind: &str) -> Vec<String> {
    match &s.principal {
        Some(Principal::Typed(map)) => map.get(kind).cloned().unwrap_or_default(),
        _ => vec![],
    }
}

fn cond(s: &Statement, op: &str, key: &str) -> Vec<String> {
    let values = s.condition.as_ref().and_then(|c| c.get(op)?.get(key).cloned()).unwrap_or_default();
    values.iter().map(|v| v.as_aws_string()).collect()
}
