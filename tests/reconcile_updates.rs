//! Spec updates converge, on the real test ground: each test patches the spec, follows the
//! object through a watch until it is Ready for the new generation (so the reasons of that very
//! status are seen, however briefly they last), and reads AWS back through independent clients.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::harness::Harness;
use common::operator::{condition, create_backend, patch_spec, unique_bucket, wait_ready, wait_reason};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tfstate_operator::api::TerraformStateBackend;
use tfstate_operator::policy::{PolicyDocument, RunnerPolicyInput, TrustPolicyInput, runner_policy, trust_policy};

const ROOT: &str = "arn:aws:iam::123456789012:root";
const OIDC: &str = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/UPDATES0123";
const ISSUER: &str = "oidc.eks.eu-west-1.amazonaws.com/id/UPDATES0123";

/// One test's namespace, operator and clients.
async fn harness(prefix: &str, resync: Duration) -> Harness {
    common::harness::harness(prefix, resync).await
}

/// Lifecycle days 90 -> 30 -> 0: the rule follows, and 0 leaves a rule that only aborts
/// incomplete multipart uploads (no noncurrent expiration). BucketReady says `Updated`.
#[tokio::test]
async fn lifecycle_days_converge() {
    let h = harness("upd-lifecycle", Duration::from_secs(600)).await;
    let bucket = unique_bucket("upd-lifecycle");
    let obj = create_ready(&h, "life", light_spec(&bucket)).await;
    assert_eq!(lifecycle(&h, &bucket).await, (Some(90), Some(7)), "default 90 days");
    assert_eq!(obj.spec.bucket.noncurrent_version_expiration_days, 90);

    let obj = update(&h, "life", json!({"bucket": {"noncurrentVersionExpirationDays": 30}})).await;
    assert_eq!(lifecycle(&h, &bucket).await, (Some(30), Some(7)), "30 days");
    assert_reasons(
        &obj,
        &[("BucketReady", "Updated"), ("RoleReady", "Converged"), ("BackendConfigPublished", "Converged")],
    );

    let obj = update(&h, "life", json!({"bucket": {"noncurrentVersionExpirationDays": 0}})).await;
    assert_eq!(lifecycle(&h, &bucket).await, (None, Some(7)), "0 keeps old versions forever");
    assert_reasons(&obj, &[("BucketReady", "Updated")]);
}

/// A user tag added, one changed and one removed reach the bucket, the key, the table and the
/// role, with the ownership tags untouched; every part says `Updated`.
#[tokio::test]
async fn tags_converge_on_every_resource() {
    let h = harness("upd-tags", Duration::from_secs(600)).await;
    let bucket = unique_bucket("upd-tags");
    let mut spec = full_spec(&bucket);
    spec["tags"] = json!({"team": "a", "env": "dev", "keep": "x"});
    let obj = create_ready(&h, "tags", spec).await;
    assert_tags_everywhere(&h, &obj, &[("team", "a"), ("env", "dev"), ("keep", "x")]).await;

    let obj = update(&h, "tags", json!({"tags": {"team": "b", "env": null, "cost": "c"}})).await;
    assert_tags_everywhere(&h, &obj, &[("team", "b"), ("keep", "x"), ("cost", "c")]).await;
    let updated = ["BucketReady", "EncryptionKeyReady", "LockTableReady", "RoleReady"].map(|t| (t, "Updated"));
    assert_reasons(&obj, &updated);
    assert_reasons(&obj, &[("BackendConfigPublished", "Converged")]);
    // Every updated resource is named in an `Updated` Event, not just the first one.
    let status = obj.status.clone().expect("status");
    let key_arn = status.kms_key_arn.expect("status.kmsKeyArn");
    events_naming(&h, "tags", "Updated", &[bucket, key_arn, format!("{}-lock", obj.spec.bucket.name), role_name(&obj)])
        .await;
}

/// Trust converges: an AWS principal is added, then the role is switched to IRSA only (the
/// principals statement disappears, the web identity statement has the sub/aud conditions).
#[tokio::test]
async fn trust_changes_converge() {
    let h = harness("upd-trust", Duration::from_secs(600)).await;
    let bucket = unique_bucket("upd-trust");
    let obj = create_ready(&h, "trust", light_spec(&bucket)).await;
    let role = role_name(&obj);
    assert_trust(&h, &role, &[], None, &[ROOT]).await;

    let other = "arn:aws:iam::210987654321:root";
    let obj = update(&h, "trust", json!({"access": {"trust": {"awsPrincipals": [ROOT, other]}}})).await;
    assert_trust(&h, &role, &[], None, &[ROOT, other]).await;
    assert_reasons(&obj, &[("RoleReady", "Updated"), ("BucketReady", "Converged")]);

    let irsa = json!({"awsPrincipals": null, "oidcProviderArn": OIDC,
        "serviceAccounts": [{"namespace": "ci", "name": "runner"}]});
    let obj = update(&h, "trust", json!({"access": {"trust": irsa}})).await;
    let trust = assert_trust(&h, &role, &[("ci", "runner")], Some(OIDC), &[]).await;
    assert_eq!(trust.statements.len(), 1, "IRSA only: {}", trust.to_json());
    let s = &trust.statements[0];
    assert_eq!(s.action.as_deref(), Some(&["sts:AssumeRoleWithWebIdentity".to_string()][..]));
    let cond = s.condition.as_ref().and_then(|c| c.get("StringEquals")).expect("StringEquals");
    let value =
        |k: &str| cond.get(&format!("{ISSUER}:{k}")).map(|v| v.iter().map(|v| v.as_aws_string()).collect::<Vec<_>>());
    assert_eq!(value("sub"), Some(vec!["system:serviceaccount:ci:runner".to_string()]));
    assert_eq!(value("aud"), Some(vec!["sts.amazonaws.com".to_string()]));
    assert_reasons(&obj, &[("RoleReady", "Updated")]);
}

/// Lock mode DynamoDB -> Both: the table is kept (same ARN, same creation time), the inline
/// policy gains the lock file statement and keeps the table's, the ConfigMap gains
/// `use_lockfile = true` and keeps `dynamodb_table`.
#[tokio::test]
async fn lock_mode_dynamodb_to_both_keeps_table() {
    let h = harness("upd-lock", Duration::from_secs(600)).await;
    let bucket = unique_bucket("upd-lock");
    let obj = create_ready(&h, "lock", full_spec(&bucket)).await;
    let table = format!("{bucket}-lock");
    let before = table_identity(&h, &table).await;
    let (tfbackend, _) = published(&h, "lock-backend").await;
    assert_eq!((tfbackend.get("use_lockfile"), tfbackend["dynamodb_table"].as_str()), (None, Some(table.as_str())));
    assert_inline(&h, &obj, false).await;

    let obj = update(&h, "lock", json!({"locking": {"mode": "Both"}})).await;
    assert_eq!(table_identity(&h, &table).await, before, "the table is kept, not recreated");
    assert_eq!(obj.status.as_ref().and_then(|s| s.lock_table_arn.as_deref()), Some(before.0.as_str()));
    let inline = assert_inline(&h, &obj, true).await;
    let lockfile = |s: &&tfstate_operator::policy::Statement| {
        s.action.as_ref().is_some_and(|a| a.iter().any(|a| a == "s3:DeleteObject"))
            && s.resource.as_ref().is_some_and(|r| r.iter().all(|r| r.ends_with(".tflock")))
    };
    assert_eq!(inline.statements.iter().filter(lockfile).count(), 1, "lock file statement");
    let (tfbackend, flat) = published(&h, "lock-backend").await;
    assert_eq!((&tfbackend["use_lockfile"], tfbackend["dynamodb_table"].as_str()), (&json!(true), Some(&*table)));
    assert_eq!((flat["use_lockfile"].as_str(), flat["dynamodb_table"].as_str()), (Some("true"), Some(&*table)));
    assert_reasons(&obj, &[("RoleReady", "Updated"), ("BackendConfigPublished", "Updated")]);
    assert_reasons(&obj, &[("LockTableReady", "Converged"), ("BucketReady", "Converged")]);
}

/// After an update the changed part says `Updated` (with an `Updated` Event), and a later
/// reconcile (the 2 s resync at the latest) says `Converged` for the same generation, still Ready.
#[tokio::test]
async fn reasons_are_updated_then_converged() {
    let h = harness("upd-reasons", Duration::from_secs(2)).await;
    let bucket = unique_bucket("upd-reasons");
    create_ready(&h, "reasons", light_spec(&bucket)).await;
    let obj = update(&h, "reasons", json!({"bucket": {"noncurrentVersionExpirationDays": 14}})).await;
    assert_reasons(&obj, &[("BucketReady", "Updated"), ("Ready", "Converged")]);
    let message = condition(&obj, "BucketReady").expect("BucketReady").2;
    assert!(message.contains("updated"), "says what was updated: {message}");

    let later = wait_reason(&h.api, "reasons", "BucketReady", "Converged").await;
    assert!(ready_for(&later, obj.metadata.generation), "still Ready for the same generation");
    assert_eq!(lifecycle(&h, &bucket).await, (Some(14), Some(7)));
    events_naming(&h, "reasons", "Updated", &[bucket]).await;
}

/// AES256, lock files, one AWS principal: a backend without a key or a table, quick to build.
fn light_spec(bucket: &str) -> Value {
    json!({"bucket": {"name": bucket}, "encryption": {"mode": "AES256"}, "locking": {"mode": "Lockfile"},
        "access": {"trust": {"awsPrincipals": [ROOT]}}})
}

/// A created key and a DynamoDB table: all four resources.
fn full_spec(bucket: &str) -> Value {
    json!({"bucket": {"name": bucket}, "access": {"trust": {"awsPrincipals": [ROOT]}}})
}

async fn create_ready(h: &Harness, name: &str, spec: Value) -> TerraformStateBackend {
    let obj = json!({"apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStateBackend",
        "metadata": {"name": name}, "spec": spec});
    create_backend(&h.api, &obj.to_string()).await;
    wait_ready(&h.api, name).await
}

fn ready_for(obj: &TerraformStateBackend, generation: Option<i64>) -> bool {
    obj.status.as_ref().is_some_and(|s| {
        s.observed_generation == generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True" && c.observed_generation == generation)
    })
}

/// Patches the spec and returns the FIRST status that is Ready for the new generation, seen
/// through a watch started at the patch's resourceVersion (no status write can be missed).
async fn update(h: &Harness, name: &str, patch: Value) -> TerraformStateBackend {
    let patched = patch_spec(&h.api, name, patch).await;
    let generation = patched.metadata.generation;
    let rv = patched.resource_version().expect("resourceVersion");
    let params = WatchParams::default().fields(&format!("metadata.name={name}")).timeout(120);
    let stream = h.api.watch(&params, &rv).await.expect("watch");
    let mut stream = std::pin::pin!(stream);
    let mut seen = Vec::new();
    let follow = async {
        while let Some(event) = stream.try_next().await.expect("watch event") {
            let WatchEvent::Modified(obj) = event else { continue };
            if ready_for(&obj, generation) {
                return obj;
            }
            seen.push(obj.status);
        }
        panic!("watch ended before {name} was Ready for generation {generation:?}")
    };
    match tokio::time::timeout(Duration::from_secs(60), follow).await {
        Ok(obj) => obj,
        Err(_) => panic!("{name}: not Ready for generation {generation:?} within 60 s; statuses seen: {seen:#?}"),
    }
}

fn assert_reasons(obj: &TerraformStateBackend, want: &[(&str, &str)]) {
    for (type_, reason) in want {
        let got = condition(obj, type_).unwrap_or_else(|| panic!("no {type_} condition"));
        assert_eq!((got.0.as_str(), got.1.as_str()), ("True", *reason), "{type_}: {}", got.2);
    }
}

fn role_name(obj: &TerraformStateBackend) -> String {
    let arn = obj.status.as_ref().and_then(|s| s.role_arn.clone()).expect("status.roleArn");
    arn.rsplit('/').next().expect("role name").to_string()
}

/// The operator's lifecycle rule: (noncurrent days, abort multipart days). Exactly one rule,
/// enabled, never expiring current versions.
async fn lifecycle(h: &Harness, bucket: &str) -> (Option<i32>, Option<i32>) {
    let lc = h.aws.s3.get_bucket_lifecycle_configuration().bucket(bucket).send().await.expect("lifecycle");
    assert_eq!(lc.rules().len(), 1, "exactly one rule: {:?}", lc.rules());
    let rule = &lc.rules()[0];
    assert_eq!(rule.status().as_str(), "Enabled");
    assert!(rule.expiration().is_none(), "current versions never expire");
    let noncurrent = rule.noncurrent_version_expiration().and_then(|n| n.noncurrent_days());
    (noncurrent, rule.abort_incomplete_multipart_upload().and_then(|a| a.days_after_initiation()))
}

/// Every resource (bucket, key, table, role) carries exactly `user` plus the ownership tags.
async fn assert_tags_everywhere(h: &Harness, obj: &TerraformStateBackend, user: &[(&str, &str)]) {
    let mut want: BTreeMap<String, String> = user.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    want.insert("tfstate.dev/managed-by".into(), "tfstate-operator".into());
    want.insert("tfstate.dev/owner".into(), format!("{}/{}", h.ns, obj.name_any()));
    want.insert("tfstate.dev/owner-uid".into(), obj.uid().expect("uid"));
    let status = obj.status.clone().expect("status");
    let bucket = &obj.spec.bucket.name;
    let s3 = h.aws.s3.get_bucket_tagging().bucket(bucket).send().await.expect("GetBucketTagging");
    let s3: BTreeMap<_, _> = s3.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
    let key_arn = status.kms_key_arn.expect("status.kmsKeyArn");
    let kms = h.aws.kms.list_resource_tags().key_id(&key_arn).send().await.expect("ListResourceTags");
    let kms: BTreeMap<_, _> = kms.tags().iter().map(|t| (t.tag_key().to_string(), t.tag_value().to_string())).collect();
    let table_arn = status.lock_table_arn.expect("status.lockTableArn");
    let ddb = h.aws.dynamodb.list_tags_of_resource().resource_arn(&table_arn).send().await.expect("table tags");
    let ddb: BTreeMap<_, _> = ddb.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
    let iam = h.aws.iam.list_role_tags().role_name(role_name(obj)).send().await.expect("ListRoleTags");
    let iam: BTreeMap<_, _> = iam.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
    for (what, got) in [("bucket", s3), ("key", kms), ("table", ddb), ("role", iam)] {
        assert_eq!(got, want, "{what} tags");
    }
}

/// The role's trust policy, checked against the documented one for this trust.
async fn assert_trust(
    h: &Harness,
    role: &str,
    service_accounts: &[(&str, &str)],
    oidc: Option<&str>,
    principals: &[&str],
) -> PolicyDocument {
    let got = h.aws.iam.get_role().role_name(role).send().await.expect("GetRole");
    let text = got.role().and_then(|r| r.assume_role_policy_document()).expect("trust policy");
    let trust = PolicyDocument::parse(text).expect("trust policy parses");
    let sas: Vec<(String, String)> = service_accounts.iter().map(|(n, s)| (n.to_string(), s.to_string())).collect();
    let principals: Vec<String> = principals.iter().map(|p| p.to_string()).collect();
    let want = trust_policy(&TrustPolicyInput {
        partition: "aws",
        account_id: "123456789012",
        service_accounts: &sas,
        oidc_provider_arn: oidc,
        eks_pod_identity: false,
        aws_principals: &principals,
        principal_org_id: None,
    });
    assert!(trust.semantically_eq(&want), "trust policy {}\nwanted {}", trust.to_json(), want.to_json());
    trust
}

/// The inline policy, checked against the documented one (key and table from status).
async fn assert_inline(h: &Harness, obj: &TerraformStateBackend, lockfile: bool) -> PolicyDocument {
    let role = role_name(obj);
    let got = h.aws.iam.get_role_policy().role_name(&role).policy_name("tfstate-backend").send().await;
    let inline = PolicyDocument::parse(got.expect("GetRolePolicy").policy_document()).expect("inline policy parses");
    let status = obj.status.as_ref().expect("status");
    let state_key = format!("{}/{}/terraform.tfstate", h.ns, obj.name_any());
    let want = runner_policy(&RunnerPolicyInput {
        partition: "aws",
        region: "eu-west-1",
        bucket: Some(&obj.spec.bucket.name),
        state_key: &state_key,
        workspace_key_prefix: "env:",
        lockfile,
        table_arn: status.lock_table_arn.as_deref(),
        kms_key_arn: status.kms_key_arn.as_deref(),
        open_tofu_encryption: false,
    });
    assert!(inline.semantically_eq(&want), "inline policy {}\nwanted {}", inline.to_json(), want.to_json());
    let tables = inline.statements.iter().filter(|s| s.action.iter().flatten().any(|a| a.starts_with("dynamodb:")));
    assert_eq!(tables.count(), 1, "the table statement stays");
    inline
}

/// (ARN, creation time) of a table: equal before and after means the same table.
async fn table_identity(h: &Harness, table: &str) -> (String, String) {
    let got = h.aws.dynamodb.describe_table().table_name(table).send().await.expect("DescribeTable");
    let t = got.table().expect("table");
    (t.table_arn().expect("ARN").to_string(), format!("{:?}", t.creation_date_time()))
}

/// The published ConfigMap: `backend.tfbackend` parsed as HCL, and the flat keys.
async fn published(h: &Harness, name: &str) -> (Value, Value) {
    let cm = Api::<ConfigMap>::namespaced(h.client.clone(), &h.ns).get(name).await.expect("ConfigMap");
    let data = cm.data.expect("data");
    let tfbackend: Value = hcl::from_str(&data["backend.tfbackend"]).expect("backend.tfbackend is HCL");
    (tfbackend, json!(data))
}

/// Polls the Events of object `name` (at most 30 s) until those with `reason` name each of
/// `names` (names or ARNs), as an operator's user reads them with `kubectl describe`.
async fn events_naming(h: &Harness, name: &str, reason: &str, names: &[String]) {
    let events: Api<Event> = Api::namespaced(h.client.clone(), &h.ns);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let list = events.list(&ListParams::default()).await.expect("list Events").items;
        let list = list.into_iter().filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name));
        let summary: Vec<_> = list.map(|e| (e.reason, e.note, e.series.map(|s| s.count))).collect();
        let notes: Vec<&str> =
            summary.iter().filter(|e| e.0.as_deref() == Some(reason)).filter_map(|e| e.1.as_deref()).collect();
        let missing: Vec<_> = names.iter().filter(|n| !notes.iter().any(|m| m.contains(n.as_str()))).collect();
        if !notes.is_empty() && missing.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {reason} Event names {missing:?} within 30 s: {summary:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
