//! The operator is a deputy with account-wide power acting for every namespace: what a
//! tenant can make it do, the tenant can do. Tried here as a hostile or careless tenant
//! with nothing but RBAC on `TerraformStateBackend` objects in its own namespace would:
//! naming another namespace's bucket, table and key, racing for a bucket name, leaning on
//! the creation intent to take an untagged bucket, and deleting while the bucket's tags
//! are replaced or the spec is broken. The runner role must be granted only what the
//! object owns, and no deletion may leave state that can no longer be decrypted.

mod common;

use std::time::Duration;

use aws_sdk_s3::types::{Tag, Tagging};
use common::operator::{
    Operator, condition, create_backend, inspector, patch_spec, put_state, start_operator, unique_bucket, wait_for,
    wait_gone, wait_ready, wait_reason,
};
use common::{Ground, install_crd, strict_namespace};
use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;
use tfstate_operator::api::TerraformStateBackend;
use tfstate_operator::aws::{AwsClients, Tags, dynamodb, iam, kms, s3};
use tfstate_operator::policy::PolicyDocument;

const RESYNC: Duration = Duration::from_secs(2);

fn backend_yaml(name: &str, bucket: &str, extra: &str) -> String {
    format!(
        "apiVersion: tfstate.dev/v1alpha1\nkind: TerraformStateBackend\nmetadata: {{name: {name}}}\nspec:\n  bucket: {{name: {bucket}}}\n  access: {{trust: {{awsPrincipals: ['arn:aws:iam::123456789012:root']}}}}\n{extra}"
    )
}

/// One tenant: its namespace, an operator watching it, and its backends' API.
struct Tenant {
    ns: String,
    api: Api<TerraformStateBackend>,
    op: Operator,
}

async fn tenant(ground: &Ground, client: &kube::Client, prefix: &str) -> Tenant {
    // The built-in default policy: what a tenant gets when the platform team wrote none.
    let ns = strict_namespace(client, prefix).await;
    let op = start_operator(ground, &ns, RESYNC).await;
    Tenant { api: Api::namespaced(client.clone(), &ns), ns, op }
}

async fn ground() -> (Ground, kube::Client, AwsClients) {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let aws = inspector(&ground).await;
    (ground, client, aws)
}

/// The role's inline policy (`None`: the role or its policy does not exist).
async fn inline_policy(aws: &AwsClients, role: &str) -> Option<PolicyDocument> {
    iam::get_role(&aws.iam, role).await.unwrap()?;
    let text = iam::get_inline_policy(&aws.iam, role, "tfstate-backend").await.unwrap()?;
    Some(PolicyDocument::parse(&text).expect("inline policy parses"))
}

/// Every Resource the document names.
fn resources(doc: Option<&PolicyDocument>) -> Vec<String> {
    doc.iter().flat_map(|d| d.statements.iter()).flat_map(|s| s.resource.iter().flatten().cloned()).collect()
}

/// Calls of `operation` an operator has made: GetRole is made once per Apply pass, and
/// GetBucketTagging once per Cleanup pass.
fn calls_of(op: &Operator, operation: &str) -> u64 {
    op.ctx.aws.calls().snapshot().iter().filter(|(k, _)| k.operation == operation).map(|(_, n)| n).sum()
}

/// Waits until `op` has made `n` more Apply passes than now: a bounded window in which a
/// wrong write would have happened.
async fn wait_passes(op: &Operator, n: u64) {
    wait_calls(op, "GetRole", n).await;
}

/// Waits until `op` has made `n` more calls of `operation` than now.
async fn wait_calls(op: &Operator, operation: &str, n: u64) {
    let target = calls_of(op, operation) + n;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while calls_of(op, operation) < target {
        assert!(tokio::time::Instant::now() < deadline, "the operator made no {n} passes within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What another tenant must never change: tags and policies of a backend's resources.
async fn fingerprint(aws: &AwsClients, bucket: &str, table: &str, key_arn: &str) -> String {
    let tags = s3::get_tags(&aws.s3, bucket).await.unwrap();
    let settings = s3::get_settings(&aws.s3, bucket, false).await.unwrap();
    let info = dynamodb::describe(&aws.dynamodb, table).await.unwrap().expect("table");
    let table_settings = dynamodb::get_settings(&aws.dynamodb, table, &info.arn).await.unwrap();
    let key = kms::get_settings(&aws.kms, key_arn).await.unwrap();
    format!("{tags:?}\n{settings:?}\n{info:?}\n{table_settings:?}\n{key:?}")
}

/// A tenant that names another namespace's bucket, state key and lock table (with a key of
/// its own, so that the rest of the pipeline runs) gets Conflicts, and a role granted
/// nothing of them; naming the other backend's key as `existingKeyArn` is a Conflict too.
/// The victim's resources are unchanged, and its backend stays Ready.
#[tokio::test]
async fn foreign_names_grant_nothing() {
    let (ground, client, aws) = ground().await;
    let victim = tenant(&ground, &client, "victim").await;
    let thief = tenant(&ground, &client, "thief").await;
    let bucket = unique_bucket("victim");
    let table = format!("{bucket}-lock");
    create_backend(&victim.api, &backend_yaml("prod", &bucket, "  locking: {mode: Both}\n")).await;
    let status = wait_ready(&victim.api, "prod").await.status.unwrap();
    let (key_arn, table_arn) = (status.kms_key_arn.unwrap(), status.lock_table_arn.unwrap());
    wait_reason(&victim.api, "prod", "BucketReady", "Converged").await;
    let before = fingerprint(&aws, &bucket, &table, &key_arn).await;

    let state_key = format!("{}/prod/terraform.tfstate", victim.ns);
    let extra = format!("  stateKey: {state_key}\n  locking: {{mode: Both, table: {{name: {table}}}}}\n");
    create_backend(&thief.api, &backend_yaml("steal", &bucket, &extra)).await;
    let obj = wait_reason(&thief.api, "steal", "LockTableReady", "Conflict").await;
    assert_eq!(condition(&obj, "BucketReady").unwrap().1, "Conflict");
    let role = format!("tfstate-{}-steal", thief.ns);
    wait_for(&thief.api, "steal", Duration::from_secs(60), "RoleReady", |o| {
        condition(o, "RoleReady").is_some_and(|c| c.0 == "True")
    })
    .await;
    wait_passes(&thief.op, 2).await;
    let granted = resources(inline_policy(&aws, &role).await.as_ref());
    assert!(
        granted.iter().all(|r| !r.contains(&bucket) && *r != table_arn && *r != key_arn),
        "the thief's role is granted the victim's resources: {granted:?}"
    );
    assert!(!granted.is_empty(), "its own key is still granted: {granted:?}");

    let extra = format!("  stateKey: {state_key}\n  encryption: {{kmsKey: {{existingKeyArn: '{key_arn}'}}}}\n");
    create_backend(&thief.api, &backend_yaml("steal-key", &unique_bucket("thief"), &extra)).await;
    let obj = wait_reason(&thief.api, "steal-key", "EncryptionKeyReady", "Conflict").await;
    let message = condition(&obj, "EncryptionKeyReady").unwrap().2;
    assert!(message.contains("another TerraformStateBackend"), "{message}");
    assert!(!message.contains(&victim.ns), "the message must not name the owner: {message}");
    wait_passes(&thief.op, 2).await;
    let granted = resources(inline_policy(&aws, &format!("tfstate-{}-steal-key", thief.ns)).await.as_ref());
    assert!(granted.iter().all(|r| *r != key_arn), "the victim's key is granted: {granted:?}");

    assert_eq!(fingerprint(&aws, &bucket, &table, &key_arn).await, before, "the victim's resources changed");
    let victim_now = victim.api.get("prod").await.unwrap();
    assert_eq!(condition(&victim_now, "Ready").unwrap().0, "True");
}

/// A grant given while a part was ours is withdrawn once it is not: here the bucket's
/// owner tag is changed to another backend's, as if it had been handed over.
#[tokio::test]
async fn grant_is_withdrawn_when_a_part_becomes_a_conflict() {
    let (ground, client, aws) = ground().await;
    let t = tenant(&ground, &client, "withdraw").await;
    let bucket = unique_bucket("withdraw");
    create_backend(&t.api, &backend_yaml("app", &bucket, "")).await;
    let obj = wait_ready(&t.api, "app").await;
    let role = format!("tfstate-{}-app", t.ns);
    let s3_arn = format!("arn:aws:s3:::{bucket}");
    assert!(resources(inline_policy(&aws, &role).await.as_ref()).iter().any(|r| r.starts_with(&s3_arn)));

    let mut tags = s3::get_tags(&aws.s3, &bucket).await.unwrap().unwrap();
    tags.insert("tfstate.dev/owner-uid".into(), "someone-else".into());
    s3::put_tags(&aws.s3, &bucket, &tags).await.unwrap();
    wait_reason(&t.api, "app", "BucketReady", "Conflict").await;
    wait_passes(&t.op, 1).await;
    let granted = resources(inline_policy(&aws, &role).await.as_ref());
    assert!(granted.iter().all(|r| !r.starts_with(&s3_arn)), "the bucket is still granted: {granted:?}");
    let key = obj.status.unwrap().kms_key_arn.unwrap();
    assert!(granted.contains(&key), "the key (still ours) stays granted: {granted:?}");
}

/// Creating the key records a creation intent; it must never make an untagged bucket of
/// the requested name "ours" (adoption needs `adoptExisting`). The bucket stays untouched.
#[tokio::test]
async fn creation_intent_never_adopts_an_untagged_bucket() {
    let (ground, client, aws) = ground().await;
    let t = tenant(&ground, &client, "intent").await;
    let bucket = unique_bucket("untagged");
    s3::create_bucket(&aws.s3, &bucket, ground.var("AWS_REGION"), &Tags::new()).await.unwrap();
    create_backend(&t.api, &backend_yaml("grab", &bucket, "")).await;
    let obj = wait_reason(&t.api, "grab", "BucketReady", "Conflict").await;
    assert!(condition(&obj, "BucketReady").unwrap().2.contains("adoptExisting"));
    assert_eq!(condition(&obj, "EncryptionKeyReady").unwrap().0, "True", "the key was created");
    wait_passes(&t.op, 3).await;
    assert_eq!(s3::get_tags(&aws.s3, &bucket).await.unwrap(), Some(Tags::new()), "the bucket was tagged");
    let settings = s3::get_settings(&aws.s3, &bucket, false).await.unwrap();
    assert!(settings.policy.is_none() && !settings.versioning_enabled, "the bucket was rewritten: {settings:?}");
    let obj = t.api.get("grab").await.unwrap();
    assert_eq!(condition(&obj, "BucketReady").unwrap().1, "Conflict");
    assert_eq!(obj.status.unwrap().creation_started_at, None, "the intent ends with the key's creation");
}

/// Two objects in two namespaces create the same bucket name at the same moment: exactly
/// one owns it (its UID in the bucket's tags) and is Ready; the other is a Conflict.
#[tokio::test]
async fn racing_creates_of_one_bucket_have_one_owner() {
    let (ground, client, aws) = ground().await;
    let a = tenant(&ground, &client, "race-a").await;
    let b = tenant(&ground, &client, "race-b").await;
    let bucket = unique_bucket("raced");
    let yaml = backend_yaml("racer", &bucket, "  encryption: {mode: AES256}\n");
    let (oa, ob) = tokio::join!(create_backend(&a.api, &yaml), create_backend(&b.api, &yaml));
    let settled = |o: &TerraformStateBackend| {
        condition(o, "BucketReady").is_some_and(|c| c.0 == "True" || c.1 == "Conflict")
            && condition(o, "Ready").is_some_and(|c| c.0 == "True" || c.1 == "Conflict")
    };
    let (fa, fb) = tokio::join!(
        wait_for(&a.api, "racer", Duration::from_secs(60), "settled", settled),
        wait_for(&b.api, "racer", Duration::from_secs(60), "settled", settled)
    );
    let ready = |o: &TerraformStateBackend| condition(o, "Ready").unwrap().0 == "True";
    assert!(ready(&fa) != ready(&fb), "exactly one owner: a {:?}, b {:?}", fa.status, fb.status);
    let (winner, loser) = if ready(&fa) { (&oa, &fb) } else { (&ob, &fa) };
    let tags = s3::get_tags(&aws.s3, &bucket).await.unwrap().unwrap();
    assert_eq!(tags.get("tfstate.dev/owner-uid"), winner.metadata.uid.as_ref());
    assert_eq!(condition(loser, "BucketReady").unwrap().1, "Conflict");
}

/// deletionPolicy Delete while another tool has replaced the bucket's tags (PutBucketTagging
/// replaces the whole set): the bucket may hold state encrypted with the key, so nothing is
/// deleted and DeletionBlocked says so; once the tags are back and the bucket is empty,
/// deletion finishes.
#[tokio::test]
async fn deletion_with_replaced_tags_deletes_nothing() {
    let (ground, client, aws) = ground().await;
    let t = tenant(&ground, &client, "retagged").await;
    let bucket = unique_bucket("retagged");
    create_backend(&t.api, &backend_yaml("app", &bucket, "  deletionPolicy: Delete\n")).await;
    let status = wait_ready(&t.api, "app").await.status.unwrap();
    let key_arn = status.kms_key_arn.clone().unwrap();
    let ours = s3::get_tags(&aws.s3, &bucket).await.unwrap().unwrap();
    let state = format!("{}/app/terraform.tfstate", t.ns);
    let version = put_state(&aws.s3, &bucket, &state, &key_arn).await;
    let compliance =
        Tagging::builder().tag_set(Tag::builder().key("cost-center").value("1234").build().unwrap()).build().unwrap();
    aws.s3.put_bucket_tagging().bucket(&bucket).tagging(compliance).send().await.unwrap();

    t.api.delete("app", &DeleteParams::default()).await.unwrap();
    let obj = wait_reason(&t.api, "app", "BucketReady", "DeletionBlocked").await;
    let message = condition(&obj, "BucketReady").unwrap().2;
    assert!(message.contains("does not carry") && message.contains("nothing has been deleted"), "{message}");
    wait_calls(&t.op, "GetBucketTagging", 2).await;
    let role = format!("tfstate-{}-app", t.ns);
    assert!(iam::get_role(&aws.iam, &role).await.unwrap().is_some(), "role kept while blocked");
    assert!(dynamodb::describe(&aws.dynamodb, &format!("{bucket}-lock")).await.unwrap().is_some(), "table kept");
    assert_eq!(kms::describe_key(&aws.kms, &key_arn).await.unwrap().unwrap().state, "Enabled", "key kept");
    assert_eq!(obj.status.as_ref().unwrap().kms_key_arn.as_deref(), Some(key_arn.as_str()), "status keeps the key");

    // The tags come back and the state's owner empties the bucket: deletion finishes.
    s3::put_tags(&aws.s3, &bucket, &ours).await.unwrap();
    aws.s3.delete_object().bucket(&bucket).key(&state).version_id(&version).send().await.unwrap();
    wait_gone(&t.api, "app", Duration::from_secs(180)).await;
    assert_eq!(s3::get_tags(&aws.s3, &bucket).await.unwrap(), None, "bucket deleted");
    assert_eq!(kms::describe_key(&aws.kms, &key_arn).await.unwrap().unwrap().state, "PendingDeletion");
}

/// A backend whose spec became invalid before it was deleted (with Delete) cannot tell which
/// resources are its own: deletion reports that, deletes nothing, and finishes once the
/// policy is set to Retain.
#[tokio::test]
async fn spec_invalid_before_deletion_is_reported() {
    let (ground, client, aws) = ground().await;
    let t = tenant(&ground, &client, "broken").await;
    let bucket = unique_bucket("broken");
    create_backend(&t.api, &backend_yaml("app", &bucket, "  deletionPolicy: Delete\n")).await;
    let key_arn = wait_ready(&t.api, "app").await.status.unwrap().kms_key_arn.unwrap();
    patch_spec(&t.api, "app", json!({"locking": {"mode": "Lockfile", "table": {"name": "not-allowed"}}})).await;
    let obj = wait_reason(&t.api, "app", "Ready", "InvalidSpec").await;
    assert_eq!(obj.status.as_ref().unwrap().kms_key_arn.as_deref(), Some(key_arn.as_str()), "status keeps the key");
    t.api.delete("app", &DeleteParams::default()).await.unwrap();
    let obj = wait_reason(&t.api, "app", "BucketReady", "DeletionBlocked").await;
    let message = condition(&obj, "BucketReady").unwrap().2;
    assert!(message.contains("spec is invalid") && message.contains("deletionPolicy: Retain"), "{message}");
    assert!(s3::get_tags(&aws.s3, &bucket).await.unwrap().is_some(), "bucket kept");
    assert_eq!(kms::describe_key(&aws.kms, &key_arn).await.unwrap().unwrap().state, "Enabled", "key kept");

    patch_spec(&t.api, "app", json!({"deletionPolicy": "Retain"})).await;
    wait_gone(&t.api, "app", Duration::from_secs(180)).await;
    assert!(iam::get_role(&aws.iam, &format!("tfstate-{}-app", t.ns)).await.unwrap().is_some(), "role retained");
}

/// Waits until `name` is gone. A blocked deletion is retried with back-off (5-10 s, doubling,
/// README), so after a few blocked passes the next look may be more than a minute away.
/// Under the built-in default (no policy selects the namespace) a tenant may trust only
/// service accounts of its own namespace and may not adopt: such a spec is a
/// `PolicyViolation` naming the field and the policy, and costs no AWS call for it.
#[tokio::test]
async fn built_in_default_refuses_foreign_trust_and_adoption_without_aws_calls() {
    let (ground, client, aws) = ground().await;
    let t = tenant(&ground, &client, "abuser").await;
    let extra = "  adoptExisting: true\n  access: {trust: {eksPodIdentity: true, serviceAccounts: [{namespace: kube-system, name: default}]}}\n";
    let yaml = backend_yaml("grab", &unique_bucket("abuse"), "")
        .replace("  access: {trust: {awsPrincipals: ['arn:aws:iam::123456789012:root']}}\n", extra);
    create_backend(&t.api, &yaml).await;
    let obj = wait_reason(&t.api, "grab", "Ready", "PolicyViolation").await;
    let message = condition(&obj, "Ready").unwrap().2;
    for needle in ["spec.access.trust.serviceAccounts", "kube-system", "spec.adoptExisting", "built-in default"] {
        assert!(message.contains(needle), "{needle:?} missing from {message}");
    }
    assert_eq!(obj.status.as_ref().unwrap().policy.as_deref(), Some("built-in default"));
    let calls: u64 = t.op.ctx.aws.calls().snapshot().iter().filter(|(k, _)| k.service != "sts").map(|(_, n)| n).sum();
    assert_eq!(calls, 0, "a refused spec must cost no AWS call");
    assert!(iam::get_role(&aws.iam, &format!("tfstate-{}-grab", t.ns)).await.unwrap().is_none());
}

/// A TerraformStatePolicy selecting the namespace by label allows what the default refuses,
/// gives the role its IAM path, and shows in status; deleted, its allowance goes with it
/// at the next resync (no edit of the backend needed).
#[tokio::test]
async fn a_cluster_policy_allows_shapes_and_withdraws() {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Patch, PatchParams};
    use tfstate_operator::api::TerraformStatePolicy;

    let (ground, client, aws) = ground().await;
    let t = tenant(&ground, &client, "governed").await;
    let name = format!("governed-{}", t.ns);
    let policy: TerraformStatePolicy = serde_json::from_value(json!({
        "apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStatePolicy", "metadata": {"name": name},
        "spec": {"namespaceSelector": {"matchLabels": {"tfstate.dev/tenant": t.ns}},
                 "trust": {"allowedServiceAccountNamespaces": ["{namespace}", "shared-ci"]},
                 "role": {"iamPath": "/tenants/"}}
    }))
    .unwrap();
    let policies: Api<TerraformStatePolicy> = Api::all(client.clone());
    policies.patch(&name, &PatchParams::apply("tfstate-tests").force(), &Patch::Apply(&policy)).await.unwrap();
    let label = json!({"metadata": {"labels": {"tfstate.dev/tenant": t.ns}}});
    Api::<Namespace>::all(client.clone()).patch(&t.ns, &PatchParams::default(), &Patch::Merge(&label)).await.unwrap();

    let trust = "  access: {trust: {eksPodIdentity: true, serviceAccounts: [{namespace: shared-ci, name: runner}]}}\n";
    let yaml = backend_yaml("app", &unique_bucket("governed"), "")
        .replace("  access: {trust: {awsPrincipals: ['arn:aws:iam::123456789012:root']}}\n", trust);
    create_backend(&t.api, &yaml).await;
    let obj = wait_ready(&t.api, "app").await;
    let status = obj.status.unwrap();
    assert_eq!(status.policy.as_deref(), Some(name.as_str()));
    let role_arn = status.role_arn.unwrap();
    assert!(role_arn.contains(":role/tenants/"), "the policy's IAM path: {role_arn}");
    let role = iam::get_role(&aws.iam, &format!("tfstate-{}-app", t.ns)).await.unwrap().expect("role");
    assert_eq!(role.arn, role_arn);

    policies.delete(&name, &DeleteParams::default()).await.unwrap();
    let obj = wait_reason(&t.api, "app", "Ready", "PolicyViolation").await;
    assert!(condition(&obj, "Ready").unwrap().2.contains("shared-ci"));
}

/// Hub and spoke: a policy naming an operator role puts its namespaces' backends in that
/// role's account (the operator assumes it, session named after the object), so that AWS
/// itself keeps them apart from the hub's; the backend is Ready there and nothing of it
/// exists in the operator's own account.
#[tokio::test]
async fn a_policy_operator_role_builds_the_backend_in_its_account() {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Patch, PatchParams};
    use tfstate_operator::api::TerraformStatePolicy;
    use tfstate_operator::aws::{AssumeAs, AwsClientFactory};

    let (ground, client, hub) = ground().await;
    let t = tenant(&ground, &client, "spoke").await;
    let spoke_role = "arn:aws:iam::111111111111:role/tfstate-operator-spoke";
    let name = format!("spoke-{}", t.ns);
    let policy: TerraformStatePolicy = serde_json::from_value(json!({
        "apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStatePolicy", "metadata": {"name": name},
        "spec": {"namespaceSelector": {"matchLabels": {"tfstate.dev/tenant": t.ns}}, "operatorRoleArn": spoke_role}
    }))
    .unwrap();
    let policies: Api<TerraformStatePolicy> = Api::all(client.clone());
    policies.patch(&name, &PatchParams::apply("tfstate-tests").force(), &Patch::Apply(&policy)).await.unwrap();
    let label = json!({"metadata": {"labels": {"tfstate.dev/tenant": t.ns}}});
    Api::<Namespace>::all(client.clone()).patch(&t.ns, &PatchParams::default(), &Patch::Merge(&label)).await.unwrap();

    let bucket = unique_bucket("spoke");
    let trust = "  access: {trust: {awsPrincipals: ['arn:aws:iam::111111111111:root']}}\n";
    let yaml = backend_yaml("app", &bucket, "")
        .replace("  access: {trust: {awsPrincipals: ['arn:aws:iam::123456789012:root']}}\n", trust);
    create_backend(&t.api, &yaml).await;
    let status = wait_ready(&t.api, "app").await.status.unwrap();
    assert_eq!(status.account_id.as_deref(), Some("111111111111"));
    let role_name = format!("tfstate-{}-app", t.ns);
    assert_eq!(status.role_arn.as_deref(), Some(format!("arn:aws:iam::111111111111:role/{role_name}").as_str()));

    let factory = AwsClientFactory::new(ground.aws_settings()).await.unwrap();
    let assume = AssumeAs { role_arn: spoke_role.into(), session_name: "inspector".into(), external_id: None };
    let spoke = factory.clients_as(ground.var("AWS_REGION"), Some(&assume)).await.unwrap();
    let key_arn = status.kms_key_arn.clone().unwrap();
    assert!(key_arn.contains(":111111111111:"), "{key_arn}");
    let key = kms::get_settings(&spoke.kms, &key_arn).await.unwrap();
    let policy = PolicyDocument::parse(key.policy.as_deref().unwrap()).unwrap();
    assert!(policy.to_json().contains(spoke_role), "the key policy names the spoke role as its operator");
    assert!(iam::get_role(&spoke.iam, &role_name).await.unwrap().is_some(), "the role is in the spoke account");
    assert!(iam::get_role(&hub.iam, &role_name).await.unwrap().is_none(), "nothing in the hub account");
    let tables = dynamodb::describe(&hub.dynamodb, &format!("{bucket}-lock")).await.unwrap();
    assert!(tables.is_none(), "no table in the hub account");
    let sts = t.op.ctx.aws.calls().snapshot();
    assert!(sts.iter().any(|(k, n)| k.operation == "AssumeRole" && *n >= 1), "the operator assumed the spoke role");
}
