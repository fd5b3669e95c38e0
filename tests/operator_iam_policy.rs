//! The operator's own minimum AWS IAM policy, `docs/operator-iam-policy.json`, checked against the
//! operations the operator makes.
//!
//! - `every_aws_call_in_the_source_is_mapped_and_allowed` (no test ground needed) reads every
//!   `.ctx("service", "Operation")` of `src/aws/*.rs` and `src/context.rs` (every AWS call goes
//!   through one) and requires each operation to be in [`OPERATIONS`], the table of the IAM
//!   actions each operation needs, and each of those actions to be allowed by the policy. The
//!   policy in turn may grant no action that no operation needs, and `docs/operator-iam-policy.md`
//!   must document every statement and every row. A new AWS call therefore cannot be added
//!   without updating the table, the policy and its documentation.
//! - `full_lifecycle_needs_only_the_documented_policy` runs an operator of its own on the real
//!   ground through a full lifecycle (every encryption, locking and trust mode, access logging, a
//!   spec update, out-of-band drift repaired, deletion with `deletionPolicy: Delete`), then maps
//!   every (service, operation) its call counter saw to IAM actions and requires each to be
//!   allowed. The emulator does not evaluate identity policies, so this is the check that the
//!   policy covers what the operator really calls; actions of the policy that the run never needed
//!   are printed (the documentation says when the rare ones are used).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, ObjectOwnership, OwnershipControls, OwnershipControlsRule,
};
use common::operator::{create_backend, inspector, patch_spec, start_operator, unique_bucket, wait_ready};
use common::{Ground, delete_namespace, install_crd, repo_root, test_namespace};
use kube::Api;
use kube::api::DeleteParams;
use serde_json::{Value, json};
use tfstate_operator::api::TerraformStateBackend;
use tfstate_operator::aws::calls::Outcome;
use tfstate_operator::aws::{iam, kms, s3};

/// Every AWS operation the operator can call: (service as the SDK names it, operation, the IAM
/// actions it needs). S3's action names differ from its API names (GetBucketEncryption needs
/// `s3:GetEncryptionConfiguration`). Some operations need actions of their own beyond their
/// name: S3 CreateBucket with an ObjectOwnership header, KMS CreateKey and DynamoDB CreateTable
/// with tags, IAM CreateRole with tags, and DynamoDB CreateTable/UpdateTable with a customer
/// managed key, for which DynamoDB describes the key and creates a grant with the caller's
/// permissions.
const OPERATIONS: &[(&str, &str, &[&str])] = &[
    ("sts", "GetCallerIdentity", &["sts:GetCallerIdentity"]),
    // S3: the state bucket (bucket-level actions only; the operator never reads or writes objects).
    ("s3", "GetBucketTagging", &["s3:GetBucketTagging"]),
    ("s3", "GetBucketVersioning", &["s3:GetBucketVersioning"]),
    ("s3", "GetBucketEncryption", &["s3:GetEncryptionConfiguration"]),
    ("s3", "GetPublicAccessBlock", &["s3:GetBucketPublicAccessBlock"]),
    ("s3", "GetBucketOwnershipControls", &["s3:GetBucketOwnershipControls"]),
    ("s3", "GetBucketLifecycleConfiguration", &["s3:GetLifecycleConfiguration"]),
    ("s3", "GetBucketPolicy", &["s3:GetBucketPolicy"]),
    ("s3", "GetBucketLogging", &["s3:GetBucketLogging"]),
    ("s3", "ListObjectVersions", &["s3:ListBucketVersions"]),
    ("s3", "CreateBucket", &["s3:CreateBucket", "s3:PutBucketOwnershipControls"]),
    ("s3", "PutBucketTagging", &["s3:PutBucketTagging"]),
    ("s3", "PutBucketVersioning", &["s3:PutBucketVersioning"]),
    ("s3", "PutBucketEncryption", &["s3:PutEncryptionConfiguration"]),
    ("s3", "PutPublicAccessBlock", &["s3:PutBucketPublicAccessBlock"]),
    ("s3", "PutBucketOwnershipControls", &["s3:PutBucketOwnershipControls"]),
    ("s3", "PutBucketLifecycleConfiguration", &["s3:PutLifecycleConfiguration"]),
    ("s3", "PutBucketPolicy", &["s3:PutBucketPolicy"]),
    ("s3", "PutBucketLogging", &["s3:PutBucketLogging"]),
    ("s3", "DeleteBucket", &["s3:DeleteBucket"]),
    // KMS: the backend's key.
    ("kms", "DescribeKey", &["kms:DescribeKey"]),
    ("kms", "GetKeyPolicy", &["kms:GetKeyPolicy"]),
    ("kms", "GetKeyRotationStatus", &["kms:GetKeyRotationStatus"]),
    ("kms", "ListResourceTags", &["kms:ListResourceTags"]),
    ("kms", "ListKeys", &["kms:ListKeys"]),
    ("kms", "CreateKey", &["kms:CreateKey", "kms:TagResource"]),
    ("kms", "CreateAlias", &["kms:CreateAlias"]),
    ("kms", "UpdateAlias", &["kms:UpdateAlias"]),
    ("kms", "DeleteAlias", &["kms:DeleteAlias"]),
    ("kms", "EnableKeyRotation", &["kms:EnableKeyRotation"]),
    ("kms", "PutKeyPolicy", &["kms:PutKeyPolicy"]),
    ("kms", "TagResource", &["kms:TagResource"]),
    ("kms", "UntagResource", &["kms:UntagResource"]),
    ("kms", "ScheduleKeyDeletion", &["kms:ScheduleKeyDeletion"]),
    ("kms", "CancelKeyDeletion", &["kms:CancelKeyDeletion"]),
    ("kms", "EnableKey", &["kms:EnableKey"]),
    // DynamoDB: the lock table.
    ("dynamodb", "DescribeTable", &["dynamodb:DescribeTable"]),
    ("dynamodb", "DescribeContinuousBackups", &["dynamodb:DescribeContinuousBackups"]),
    ("dynamodb", "ListTagsOfResource", &["dynamodb:ListTagsOfResource"]),
    (
        "dynamodb",
        "CreateTable",
        &["dynamodb:CreateTable", "dynamodb:TagResource", "kms:DescribeKey", "kms:CreateGrant"],
    ),
    ("dynamodb", "UpdateTable", &["dynamodb:UpdateTable", "kms:DescribeKey", "kms:CreateGrant"]),
    ("dynamodb", "UpdateContinuousBackups", &["dynamodb:UpdateContinuousBackups"]),
    ("dynamodb", "TagResource", &["dynamodb:TagResource"]),
    ("dynamodb", "UntagResource", &["dynamodb:UntagResource"]),
    ("dynamodb", "DeleteTable", &["dynamodb:DeleteTable"]),
    // IAM: the runners' role and its inline policy.
    ("iam", "GetRole", &["iam:GetRole"]),
    ("iam", "GetRolePolicy", &["iam:GetRolePolicy"]),
    ("iam", "CreateRole", &["iam:CreateRole", "iam:TagRole"]),
    ("iam", "UpdateAssumeRolePolicy", &["iam:UpdateAssumeRolePolicy"]),
    ("iam", "UpdateRole", &["iam:UpdateRole"]),
    ("iam", "PutRolePermissionsBoundary", &["iam:PutRolePermissionsBoundary"]),
    ("iam", "DeleteRolePermissionsBoundary", &["iam:DeleteRolePermissionsBoundary"]),
    ("iam", "PutRolePolicy", &["iam:PutRolePolicy"]),
    ("iam", "TagRole", &["iam:TagRole"]),
    ("iam", "UntagRole", &["iam:UntagRole"]),
    ("iam", "DeleteRolePolicy", &["iam:DeleteRolePolicy"]),
    ("iam", "DeleteRole", &["iam:DeleteRole"]),
];

const POLICY_JSON: &str = "docs/operator-iam-policy.json";
const POLICY_DOC: &str = "docs/operator-iam-policy.md";
/// The files through which every AWS call goes (`.ctx(service, operation)`).
const CALL_SITES: &str = "src/aws";
const IDENTITY_CALL_SITE: &str = "src/context.rs";

const RESYNC: Duration = Duration::from_secs(2);
const REPAIR_TIMEOUT: Duration = Duration::from_secs(30);
const ROOT: &str = "arn:aws:iam::123456789012:root";
const OIDC: &str = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/IAMPOLICY0123";
const BOUNDARY: &str = "arn:aws:iam::aws:policy/PowerUserAccess";
const KEY_ADMIN: &str = "arn:aws:iam::123456789012:role/platform-admin";

/// The IAM actions `operation` of `service` needs, from [`OPERATIONS`].
fn actions_of(service: &str, operation: &str) -> Option<&'static [&'static str]> {
    OPERATIONS.iter().find(|(s, o, _)| *s == service && *o == operation).map(|(_, _, a)| *a)
}

/// A statement of the policy, reduced to what decides whether an action is allowed.
#[derive(Debug)]
struct Statement {
    sid: String,
    allow: bool,
    actions: Vec<String>,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The statements of `docs/operator-iam-policy.json`. Only `Action` is supported (a `NotAction`
/// would grant every other action of every service: never least privilege).
fn policy_statements() -> Vec<Statement> {
    let doc: Value =
        serde_json::from_str(&read(POLICY_JSON)).unwrap_or_else(|e| panic!("{POLICY_JSON} is not valid JSON: {e}"));
    assert_eq!(doc["Version"], "2012-10-17", "{POLICY_JSON}: Version must be 2012-10-17 (policy variables)");
    let statements = match &doc["Statement"] {
        Value::Array(list) => list.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        other => panic!("{POLICY_JSON}: Statement must be a list or an object, not {other}"),
    };
    statements
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let sid =
                s["Sid"].as_str().unwrap_or_else(|| panic!("{POLICY_JSON}: statement {i} has no Sid")).to_string();
            assert!(s.get("NotAction").is_none() && s.get("NotResource").is_none(), "{sid}: use Action and Resource");
            let actions = match &s["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Array(list) => {
                    list.iter().map(|a| a.as_str().expect("actions are strings").to_string()).collect()
                }
                other => panic!("{sid}: Action must be a string or a list, not {other}"),
            };
            let allow = match s["Effect"].as_str() {
                Some("Allow") => true,
                Some("Deny") => false,
                other => panic!("{sid}: Effect must be Allow or Deny, not {other:?}"),
            };
            assert!(s.get("Resource").is_some(), "{sid}: an identity policy statement needs a Resource");
            Statement { sid, allow, actions }
        })
        .collect()
}

/// IAM's action matching: case-insensitive, `*` any run of characters, `?` any one character.
fn action_matches(pattern: &str, action: &str) -> bool {
    fn glob(p: &[u8], a: &[u8]) -> bool {
        match (p.first(), a.first()) {
            (None, None) => true,
            (Some(b'*'), _) => glob(&p[1..], a) || (!a.is_empty() && glob(p, &a[1..])),
            (Some(b'?'), Some(_)) => glob(&p[1..], &a[1..]),
            (Some(x), Some(y)) if x == y => glob(&p[1..], &a[1..]),
            _ => false,
        }
    }
    glob(pattern.to_ascii_lowercase().as_bytes(), action.to_ascii_lowercase().as_bytes())
}

/// The Sids of the Allow statements granting `action`, joined with `|` (conditions and resources
/// are the documentation's business); `None` when none does or a Deny statement names it.
fn allowed_by(statements: &[Statement], action: &str) -> Option<String> {
    let matching = |s: &&Statement| s.actions.iter().any(|p| action_matches(p, action));
    if statements.iter().filter(|s| !s.allow).any(|s| matching(&s)) {
        return None;
    }
    let sids: Vec<&str> = statements.iter().filter(|s| s.allow).filter(matching).map(|s| s.sid.as_str()).collect();
    (!sids.is_empty()).then(|| sids.join("|"))
}

/// Every (service, operation) of a `.ctx(SERVICE, OPERATION)` in the call sites, where SERVICE is
/// a string literal or a `const` of the file and OPERATION a literal or a `let` binding to one.
fn source_operations() -> BTreeSet<(String, String)> {
    let ctx = regex::Regex::new(
        r"\.ctx\(\s*([A-Za-z_][A-Za-z0-9_]*|\x22[^\x22]*\x22)\s*,\s*([A-Za-z_][A-Za-z0-9_]*|\x22[^\x22]*\x22)\s*\)",
    )
    .expect("regex");
    let konst = regex::Regex::new(r#"const\s+([A-Z][A-Z0-9_]*)\s*:\s*&str\s*=\s*"([^"]*)"\s*;"#).expect("regex");
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join(CALL_SITES))
        .expect("read src/aws")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.push(repo_root().join(IDENTITY_CALL_SITE));
    let mut found = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        let name = file.strip_prefix(repo_root()).unwrap_or(&file).display().to_string();
        let consts: BTreeMap<&str, &str> =
            konst.captures_iter(&text).map(|c| (c.get(1).unwrap().as_str(), c.get(2).unwrap().as_str())).collect();
        let calls: Vec<_> = ctx.captures_iter(&text).collect();
        assert_eq!(
            calls.len(),
            text.matches(".ctx(").count(),
            "{name}: a .ctx( call of an unrecognised form; use .ctx(SERVICE_CONST or \"service\", \"Operation\" or a \
             `let op = \"Operation\"` binding) so that this test can see the operation"
        );
        for c in calls {
            let at = c.get(0).unwrap().start();
            let line = text[..at].lines().count();
            let service = match c.get(1).unwrap().as_str() {
                lit if lit.starts_with('"') => lit.trim_matches('"').to_string(),
                id => consts.get(id).unwrap_or_else(|| panic!("{name}:{line}: {id} is not a &str const")).to_string(),
            };
            let operation = match c.get(2).unwrap().as_str() {
                lit if lit.starts_with('"') => lit.trim_matches('"').to_string(),
                id => {
                    // The nearest `let id = "..."` before the call.
                    let binding =
                        regex::Regex::new(&format!(r#"let\s+{id}\s*=\s*"([^"]*)"\s*;"#)).expect("binding regex");
                    binding
                        .captures_iter(&text[..at])
                        .last()
                        .map(|b| b.get(1).unwrap().as_str().to_string())
                        .unwrap_or_else(|| panic!("{name}:{line}: cannot resolve the operation {id} to a literal"))
                }
            };
            found.insert((service, operation));
        }
    }
    found
}

/// Rust files under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Statically: the source, the table, the policy and its documentation agree.
#[test]
fn every_aws_call_in_the_source_is_mapped_and_allowed() {
    let mut problems = Vec::new();

    // No AWS request is sent outside the call sites (where .ctx names every operation).
    let mut files = Vec::new();
    rust_files(&repo_root().join("src"), &mut files);
    for file in files {
        let rel = file.strip_prefix(repo_root()).unwrap_or(&file).to_path_buf();
        if rel.starts_with(CALL_SITES) || rel == Path::new(IDENTITY_CALL_SITE) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        if text.contains("aws_sdk_") || text.contains(".send().await") {
            problems.push(format!(
                "{}: uses an AWS SDK client directly; AWS calls belong in {CALL_SITES}/*.rs with .ctx(service, operation)",
                rel.display()
            ));
        }
    }

    // Source <-> table, both ways.
    let in_source = source_operations();
    assert!(in_source.len() > 40, "only {} operations found in the source: is the regex still right?", in_source.len());
    for (service, operation) in &in_source {
        if actions_of(service, operation).is_none() {
            problems.push(format!(
                "{service} {operation} is called in the source but missing from OPERATIONS in this test: add its IAM \
                 action(s) there, to {POLICY_JSON} and to the table of {POLICY_DOC}"
            ));
        }
    }
    for (service, operation, _) in OPERATIONS {
        if !in_source.contains(&(service.to_string(), operation.to_string())) {
            problems.push(format!(
                "{service} {operation} is in OPERATIONS but no longer called: remove it (and actions only it needs)"
            ));
        }
    }

    // Table -> policy: every needed action is allowed.
    let statements = policy_statements();
    let needed: BTreeSet<&str> = OPERATIONS.iter().flat_map(|(_, _, actions)| actions.iter().copied()).collect();
    for (service, operation, actions) in OPERATIONS {
        for action in *actions {
            if allowed_by(&statements, action).is_none() {
                problems.push(format!("{POLICY_JSON} does not allow {action}, which {service} {operation} needs"));
            }
        }
    }

    // Policy -> table: nothing granted that no operation needs, and no wildcards to hide it.
    let mut sids = BTreeSet::new();
    for s in &statements {
        if !sids.insert(s.sid.as_str()) {
            problems.push(format!("{POLICY_JSON}: Sid {} is used twice", s.sid));
        }
        for action in &s.actions {
            if action.contains('*') || action.contains('?') {
                problems.push(format!("{}: {action} is a wildcard; list the actions explicitly", s.sid));
            } else if !needed.iter().any(|n| n.eq_ignore_ascii_case(action)) {
                problems.push(format!("{}: {action} is granted but no operation needs it", s.sid));
            }
        }
    }
    if allowed_by(&statements, "iam:PassRole").is_some() {
        problems.push("iam:PassRole must not be granted: the operator never passes a role to a service".into());
    }

    // The documentation explains every statement and every row of the table.
    let doc = read(POLICY_DOC);
    for sid in &sids {
        if !doc.contains(&format!("`{sid}`")) {
            problems.push(format!("{POLICY_DOC} does not explain statement `{sid}`"));
        }
    }
    for (service, operation, actions) in OPERATIONS {
        if !doc.contains(&format!("`{operation}`")) {
            problems.push(format!("{POLICY_DOC}: the table has no row for {service} `{operation}`"));
        }
        for action in *actions {
            if !doc.contains(&format!("`{action}`")) {
                problems.push(format!("{POLICY_DOC} never names `{action}` (needed by {service} {operation})"));
            }
        }
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn action_matching_follows_iam() {
    assert!(action_matches("s3:GetBucketPolicy", "s3:getbucketpolicy"));
    assert!(action_matches("s3:Get*", "s3:GetBucketPolicy"));
    assert!(action_matches("kms:*Key", "kms:DescribeKey"));
    assert!(action_matches("kms:?escribeKey", "kms:DescribeKey"));
    assert!(!action_matches("s3:Get*", "s3:PutBucketPolicy"));
    assert!(!action_matches("kms:DescribeKey", "kms:DescribeKeys"));
    let statements = vec![
        Statement { sid: "A".into(), allow: true, actions: vec!["s3:*".into()] },
        Statement { sid: "D".into(), allow: false, actions: vec!["s3:DeleteBucket".into()] },
        Statement { sid: "B".into(), allow: true, actions: vec!["s3:GetBucketPolicy".into()] },
    ];
    assert_eq!(allowed_by(&statements, "s3:GetBucketPolicy").as_deref(), Some("A|B"));
    assert_eq!(allowed_by(&statements, "s3:DeleteBucket"), None, "an explicit Deny wins");
    assert_eq!(allowed_by(&statements, "kms:DescribeKey"), None);
}

/// Polls `check` until it holds, at most [`REPAIR_TIMEOUT`].
async fn eventually(what: &str, check: impl AsyncFn() -> bool) {
    let deadline = tokio::time::Instant::now() + REPAIR_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            eprintln!("repaired: {what}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("not repaired within {REPAIR_TIMEOUT:?}: {what}");
}

async fn wait_gone(api: &Api<TerraformStateBackend>, name: &str) {
    for _ in 0..300 {
        if api.get_opt(name).await.expect("get backend").is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{name} was not deleted within 60 s: {:#?}", api.get(name).await.ok().and_then(|o| o.status));
}

async fn create(api: &Api<TerraformStateBackend>, name: &str, spec: Value) -> TerraformStateBackend {
    let obj = json!({"apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStateBackend",
        "metadata": {"name": name}, "spec": spec});
    create_backend(api, &obj.to_string()).await;
    wait_ready(api, name).await
}

/// One operator of its own, every mode, an update, drift, deletion: then every operation it called
/// must be in the table and every action the table gives for it allowed by the policy.
#[tokio::test]
async fn full_lifecycle_needs_only_the_documented_policy() {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, "iam-policy").await;
    let operator = start_operator(&ground, &ns, RESYNC).await;
    let api: Api<TerraformStateBackend> = Api::namespaced(client.clone(), &ns);
    let aws = inspector(&ground).await;

    // What two of the backends depend on, made first as their owners would: a log bucket that
    // lets the logging service write, and an existing KMS key.
    let logs = unique_bucket("iam-logs");
    let location = CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::EuWest1).build();
    aws.s3.create_bucket().bucket(&logs).create_bucket_configuration(location).send().await.expect("log bucket");
    let allow_logging = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject",
        "Principal": {"Service": "logging.s3.amazonaws.com"}, "Resource": format!("arn:aws:s3:::{logs}/*")}]});
    aws.s3.put_bucket_policy().bucket(&logs).policy(allow_logging.to_string()).send().await.expect("log policy");
    let create_key = aws.kms.create_key().key_spec(KeySpec::SymmetricDefault).key_usage(KeyUsageType::EncryptDecrypt);
    let existing = create_key.description("iam policy test key").send().await.expect("CreateKey");
    let existing_arn = existing.key_metadata().and_then(|m| m.arn()).expect("key ARN").to_string();

    // 1. Every mode: created key + DynamoDB + access logging + IRSA (deleted at the end);
    //    existing key + lock files + Pod Identity; AES256 + both locks + principals + boundary.
    let (bucket_a, bucket_b, bucket_c) =
        (unique_bucket("iam-alpha"), unique_bucket("iam-beta"), unique_bucket("iam-gamma"));
    create(
        &api,
        "alpha",
        json!({"bucket": {"name": bucket_a, "accessLogging": {"targetBucket": logs, "targetPrefix": "tfstate/"}},
            "encryption": {"mode": "KMS", "kmsKey": {"create": {"deletionWindowDays": 7}}},
            "locking": {"mode": "DynamoDB"}, "deletionPolicy": "Delete", "tags": {"team": "a", "env": "dev"},
            "access": {"trust": {"oidcProviderArn": OIDC, "serviceAccounts": [{"namespace": "ci", "name": "runner"}]}}}),
    )
    .await;
    create(
        &api,
        "beta",
        json!({"bucket": {"name": bucket_b}, "encryption": {"mode": "KMS", "kmsKey": {"existingKeyArn": existing_arn}},
            "locking": {"mode": "Lockfile"},
            "access": {"trust": {"serviceAccounts": [{"namespace": "team", "name": "tf"}], "eksPodIdentity": true}}}),
    )
    .await;
    create(
        &api,
        "gamma",
        json!({"bucket": {"name": bucket_c}, "encryption": {"mode": "AES256"},
            "locking": {"mode": "Both", "table": {"pointInTimeRecovery": false, "deletionProtection": false}},
            "access": {"trust": {"awsPrincipals": [ROOT]}, "permissionsBoundaryArn": BOUNDARY}}),
    )
    .await;

    // 2. Spec updates: tags changed, added and removed on every resource, a key administrator
    //    (key policy), another trusted principal, a longer session, a boundary, shorter lifecycle;
    //    and a boundary removed.
    patch_spec(
        &api,
        "alpha",
        json!({"tags": {"team": "b", "env": null, "extra": "x"}, "bucket": {"noncurrentVersionExpirationDays": 30},
            "encryption": {"kmsKey": {"create": {"admins": [KEY_ADMIN]}}},
            "access": {"trust": {"awsPrincipals": [ROOT]}, "maxSessionDurationSeconds": 7200,
                "permissionsBoundaryArn": BOUNDARY}}),
    )
    .await;
    let alpha_status = wait_ready(&api, "alpha").await.status.expect("status");
    patch_spec(&api, "gamma", json!({"access": {"permissionsBoundaryArn": null}})).await;
    wait_ready(&api, "gamma").await;

    // 3. Out-of-band drift on alpha, each repaired before the next.
    let key_arn = alpha_status.kms_key_arn.clone().expect("status.kmsKeyArn");
    let key_id = kms::describe_key(&aws.kms, &key_arn).await.expect("DescribeKey").expect("the key").key_id;
    let alias = format!("alias/tfstate-{ns}-alpha");
    let (k, b) = (&aws.kms, bucket_a.as_str());
    let key_state = async || kms::describe_key(k, &key_id).await.ok().flatten().map(|i| i.state).unwrap_or_default();

    k.disable_key_rotation().key_id(&key_id).send().await.expect("DisableKeyRotation");
    eventually("key rotation", async || {
        k.get_key_rotation_status().key_id(&key_id).send().await.is_ok_and(|o| o.key_rotation_enabled())
    })
    .await;
    aws.s3.delete_bucket_policy().bucket(b).send().await.expect("DeleteBucketPolicy");
    eventually("bucket policy", async || aws.s3.get_bucket_policy().bucket(b).send().await.is_ok()).await;
    let writer = OwnershipControlsRule::builder().object_ownership(ObjectOwnership::ObjectWriter).build().unwrap();
    let controls = OwnershipControls::builder().rules(writer).build().unwrap();
    aws.s3.put_bucket_ownership_controls().bucket(b).ownership_controls(controls).send().await.expect("ownership");
    eventually("object ownership", async || {
        s3::get_settings(&aws.s3, b, false)
            .await
            .is_ok_and(|s| s.object_ownership.as_deref() == Some("BucketOwnerEnforced"))
    })
    .await;
    k.disable_key().key_id(&key_id).send().await.expect("DisableKey");
    eventually("disabled key", async || key_state().await == "Enabled").await;
    k.schedule_key_deletion().key_id(&key_id).pending_window_in_days(7).send().await.expect("ScheduleKeyDeletion");
    eventually("key scheduled for deletion", async || key_state().await == "Enabled").await;
    k.delete_alias().alias_name(&alias).send().await.expect("DeleteAlias");
    eventually("key alias", async || kms::describe_key(k, &alias).await.is_ok_and(|i| i.is_some())).await;

    // 4. Deletion: alpha (deletionPolicy Delete, empty bucket) takes everything with it; beta and
    //    gamma (Retain) leave AWS as it is.
    let role_a = alpha_status.role_arn.clone().expect("status.roleArn");
    for name in ["alpha", "beta", "gamma"] {
        api.delete(name, &DeleteParams::default()).await.expect("delete backend");
    }
    for name in ["alpha", "beta", "gamma"] {
        wait_gone(&api, name).await;
    }
    assert_eq!(s3::get_tags(&aws.s3, &bucket_a).await.expect("GetBucketTagging"), None, "alpha's bucket deleted");
    let role_name = role_a.rsplit('/').next().unwrap_or_default();
    assert!(iam::get_role(&aws.iam, role_name).await.expect("GetRole").is_none(), "alpha's role deleted");
    assert_eq!(key_state().await, "PendingDeletion", "alpha's key scheduled for deletion");
    assert!(s3::get_tags(&aws.s3, &bucket_b).await.expect("GetBucketTagging").is_some(), "beta's bucket kept");

    // 5. Every operation called -> its actions -> allowed by the policy.
    let calls = operator.ctx.aws.calls().snapshot();
    drop(operator);
    delete_namespace(&client, &ns).await;
    let mut by_operation: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for (key, n) in &calls {
        let counts = by_operation.entry((key.service.clone(), key.operation.clone())).or_default();
        if key.outcome == Outcome::Ok { counts.0 += n } else { counts.1 += n }
    }
    let statements = policy_statements();
    let (mut problems, mut exercised) = (Vec::new(), BTreeSet::new());
    eprintln!("{} operations called (ok / failed calls, IAM actions -> statements):", by_operation.len());
    for ((service, operation), (ok, failed)) in &by_operation {
        let Some(actions) = actions_of(service, operation) else {
            eprintln!("  {service:<8} {operation:<32} {ok:>4} / {failed:<3} NOT IN THE TABLE");
            problems.push(format!(
                "{service} {operation} was called but is missing from OPERATIONS in this test: add its IAM action(s) \
                 there, to {POLICY_JSON} and to {POLICY_DOC}"
            ));
            continue;
        };
        let granted: Vec<String> = actions
            .iter()
            .map(|a| {
                exercised.insert(a.to_string());
                match allowed_by(&statements, a) {
                    Some(sid) => format!("{a} -> {sid}"),
                    None => {
                        problems.push(format!("{service} {operation} needs {a}, which {POLICY_JSON} does not allow"));
                        format!("{a} -> NOT ALLOWED")
                    }
                }
            })
            .collect();
        eprintln!("  {service:<8} {operation:<32} {ok:>4} / {failed:<3} {}", granted.join(", "));
    }
    let never: Vec<String> = statements
        .iter()
        .filter(|s| s.allow)
        .flat_map(|s| s.actions.iter().map(move |a| format!("{a} ({})", s.sid)))
        .filter(|a| !exercised.iter().any(|e| a.starts_with(&format!("{e} "))))
        .collect();
    eprintln!(
        "policy actions this run never needed ({}; see \"Rarely used actions\" in {POLICY_DOC}): {}",
        never.len(),
        if never.is_empty() { "none".to_string() } else { never.join(", ") }
    );
    assert!(!by_operation.is_empty(), "the operator's call counter saw nothing");
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}
