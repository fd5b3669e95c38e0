//! Ownership, dependencies and deletion on the real ground: two namespaces never share
//! or steal a bucket, untagged resources are adopted only when asked, a missing
//! existing key is reported clearly, and both deletion policies do what they promise,
//! including DeletionBlocked while the bucket holds state.

mod common;

use std::time::Duration;

use common::operator::{
    condition, create_backend, inspector, patch_spec, put_state, start_operator, start_operator_verifying_after,
    unique_bucket, wait_for, wait_gone, wait_ready, wait_reason,
};
use common::{Ground, install_crd, test_namespace};
use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;
use tfstate_operator::aws::{dynamodb, iam, kms, s3};

const RESYNC: Duration = Duration::from_secs(2);

fn backend_yaml(name: &str, bucket: &str, extra: &str) -> String {
    format!(
        "apiVersion: tfstate.dev/v1alpha1\nkind: TerraformStateBackend\nmetadata: {{name: {name}}}\nspec:\n  bucket: {{name: {bucket}}}\n  access: {{trust: {{awsPrincipals: ['arn:aws:iam::123456789012:root']}}}}\n{extra}"
    )
}

async fn setup(prefix: &str) -> (Ground, kube::Client, String) {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, prefix).await;
    (ground, client, ns)
}

/// Two objects in different namespaces naming the same bucket: the second is a
/// Conflict (Stalled), the first keeps its bucket, and nothing of it is touched.
#[tokio::test]
async fn same_bucket_from_two_namespaces_is_a_conflict() {
    let (ground, client, ns_a) = setup("owner-a").await;
    let ns_b = test_namespace(&client, "owner-b").await;
    let _op_a = start_operator(&ground, &ns_a, RESYNC).await;
    let _op_b = start_operator(&ground, &ns_b, RESYNC).await;
    let (api_a, api_b) = (Api::namespaced(client.clone(), &ns_a), Api::namespaced(client.clone(), &ns_b));
    let bucket = unique_bucket("contested");
    create_backend(&api_a, &backend_yaml("first", &bucket, "")).await;
    let first = wait_ready(&api_a, "first").await;
    let aws = inspector(&ground).await;
    let tags_before = s3::get_tags(&aws.s3, &bucket).await.unwrap().unwrap();
    let policy_before = s3::get_settings(&aws.s3, &bucket, false).await.unwrap().policy;

    create_backend(&api_b, &backend_yaml("second", &bucket, "")).await;
    let second = wait_reason(&api_b, "second", "BucketReady", "Conflict").await;
    let (_, _, message) = condition(&second, "BucketReady").unwrap();
    assert!(message.contains("another TerraformStateBackend"), "{message}");
    assert!(!message.contains(&ns_a) && !message.contains("first"), "the message must not name the owner: {message}");
    assert_eq!(condition(&second, "Ready").unwrap().0, "False");
    assert_eq!(condition(&second, "Stalled").map(|c| c.0).as_deref(), Some("True"));

    // The first backend and its bucket are untouched, over several resyncs of both.
    let first_before = wait_reason(&api_a, "first", "BucketReady", "Converged").await;
    tokio::time::sleep(RESYNC * 3).await;
    assert_eq!(s3::get_tags(&aws.s3, &bucket).await.unwrap().unwrap(), tags_before);
    assert_eq!(s3::get_settings(&aws.s3, &bucket, false).await.unwrap().policy, policy_before);
    let first_now = api_a.get("first").await.unwrap();
    assert_eq!(condition(&first_now, "Ready").unwrap().0, "True");
    assert_eq!(first_now.metadata.resource_version, first_before.metadata.resource_version, "first was not rewritten");
    assert_eq!(first.status.unwrap().bucket_arn, first_now.status.unwrap().bucket_arn);
}

/// An untagged bucket of the requested name is a Conflict until `adoptExisting: true`,
/// then it is tagged and converged.
#[tokio::test]
async fn untagged_bucket_is_adopted_only_when_asked() {
    let (ground, client, ns) = setup("adopt").await;
    let _op = start_operator(&ground, &ns, RESYNC).await;
    let api = Api::namespaced(client.clone(), &ns);
    let aws = inspector(&ground).await;
    let bucket = unique_bucket("legacy");
    s3::create_bucket(&aws.s3, &bucket, "eu-west-1", &Default::default()).await.unwrap();

    create_backend(&api, &backend_yaml("legacy", &bucket, "")).await;
    let obj = wait_reason(&api, "legacy", "BucketReady", "Conflict").await;
    assert!(condition(&obj, "BucketReady").unwrap().2.contains("adoptExisting"));
    assert!(s3::get_tags(&aws.s3, &bucket).await.unwrap().unwrap().is_empty(), "nothing was written");

    patch_spec(&api, "legacy", json!({"adoptExisting": true})).await;
    let obj = wait_ready(&api, "legacy").await;
    let tags = s3::get_tags(&aws.s3, &bucket).await.unwrap().unwrap();
    assert_eq!(tags.get("tfstate.dev/owner-uid"), obj.metadata.uid.as_ref());
    assert!(s3::get_settings(&aws.s3, &bucket, false).await.unwrap().versioning_enabled);
}

/// The abuse case of adoption: another object adopting the same untagged bucket at the same
/// moment, whose tags land last. Tags are all the ownership S3 has and cannot be written
/// conditionally, so the pass that adopts writes the tags and nothing else: no setting, no
/// grant to the runners, no lock table, no ConfigMap. Whoever's tags the next pass reads
/// back owns the bucket; here that is the rival, so this object ends in Conflict without
/// ever having granted its runners what the bucket holds.
#[tokio::test]
async fn an_adopted_bucket_is_granted_only_once_its_tags_read_back() {
    let (ground, client, ns) = setup("adopt-race").await;
    // 20 s between the adopting pass and the one that confirms it: the rival's moment.
    let _op = start_operator_verifying_after(&ground, &ns, Duration::from_secs(300), Duration::from_secs(20)).await;
    let api = Api::namespaced(client.clone(), &ns);
    let aws = inspector(&ground).await;
    let bucket = unique_bucket("contested-legacy");
    s3::create_bucket(&aws.s3, &bucket, "eu-west-1", &Default::default()).await.unwrap();

    create_backend(&api, &backend_yaml("legacy", &bucket, "  adoptExisting: true\n")).await;
    // The status of the adopting pass (written at its end): adopted, or (before the fix)
    // already converged.
    let obj = wait_for(&api, "legacy", Duration::from_secs(60), "adopted", |o| {
        condition(o, "BucketReady").is_some_and(|(status, reason, _)| status == "True" || reason == "Updating")
    })
    .await;
    let uid = obj.metadata.uid.clone().unwrap();
    let tags = s3::get_tags(&aws.s3, &bucket).await.unwrap().unwrap();
    assert_eq!(tags.get("tfstate.dev/owner-uid"), Some(&uid), "the adopting pass writes the tags");
    let role = obj.status.as_ref().and_then(|s| s.role_arn.clone()).expect("the role comes first");
    let role = role.rsplit('/').next().unwrap().to_string();
    let not_granted = |when: &str| {
        let (aws, role, bucket, when) = (&aws, role.clone(), bucket.clone(), when.to_string());
        async move {
            let inline = iam::get_inline_policy(&aws.iam, &role, "tfstate-backend").await.expect("GetRolePolicy");
            assert!(
                !inline.as_deref().unwrap_or_default().contains(&bucket),
                "{when}: the runner role was granted the bucket: {inline:?}"
            );
            let settings = s3::get_settings(&aws.s3, &bucket, false).await.unwrap();
            assert!(!settings.versioning_enabled && settings.policy.is_none(), "{when}: settings were written");
            let table = dynamodb::describe(&aws.dynamodb, &format!("{bucket}-lock")).await.unwrap();
            assert!(table.is_none(), "{when}: a lock table was created");
        }
    };
    not_granted("the adopting pass").await;
    let (status, reason, message) = condition(&obj, "BucketReady").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Updating"), "{message}");
    assert!(message.contains("adopted"), "{message}");
    assert_eq!(condition(&obj, "Reconciling").map(|c| c.0).as_deref(), Some("True"));
    assert_eq!(condition(&obj, "BackendConfigPublished").unwrap().0, "False", "no configuration for runners yet");

    // The rival's adoption lands last (as another object's pass would write it).
    let mut rival = tags.clone();
    rival.insert("tfstate.dev/owner-uid".into(), "00000000-0000-4000-8000-00000000beef".into());
    s3::put_tags(&aws.s3, &bucket, &rival).await.unwrap();

    let obj = wait_reason(&api, "legacy", "BucketReady", "Conflict").await;
    let (_, _, message) = condition(&obj, "BucketReady").unwrap();
    assert!(message.contains("another TerraformStateBackend"), "{message}");
    not_granted("after the rival's claim").await;
    assert_eq!(s3::get_tags(&aws.s3, &bucket).await.unwrap().unwrap(), rival, "the rival's tags are left alone");
}

/// The same for the lock table (its items say who runs what, and hold the state's digests):
/// an untagged table adopted after the bucket gets its tags alone, and is granted to the
/// runners only once a later pass reads them back; the rival's tags, landed last, leave it
/// a Conflict that was never granted.
#[tokio::test]
async fn an_adopted_lock_table_is_granted_only_once_its_tags_read_back() {
    let (ground, client, ns) = setup("adopt-table").await;
    let _op = start_operator_verifying_after(&ground, &ns, Duration::from_secs(300), Duration::from_secs(8)).await;
    let api = Api::namespaced(client.clone(), &ns);
    let aws = inspector(&ground).await;
    let bucket = unique_bucket("legacy-table");
    let table = format!("{bucket}-lock");
    s3::create_bucket(&aws.s3, &bucket, "eu-west-1", &Default::default()).await.unwrap();
    dynamodb::create(&aws.dynamodb, &table, None, false, &Default::default()).await.unwrap();

    create_backend(&api, &backend_yaml("legacy", &bucket, "  adoptExisting: true\n")).await;
    let obj = wait_for(&api, "legacy", Duration::from_secs(90), "table adopted", |o| {
        condition(o, "LockTableReady").is_some_and(|(status, reason, _)| status == "True" || reason == "Updating")
    })
    .await;
    let role = obj.status.as_ref().and_then(|s| s.role_arn.clone()).expect("the role comes first");
    let role = role.rsplit('/').next().unwrap().to_string();
    let table_arn = dynamodb::describe(&aws.dynamodb, &table).await.unwrap().expect("the table").arn;
    let granted = || async {
        let inline = iam::get_inline_policy(&aws.iam, &role, "tfstate-backend").await.expect("GetRolePolicy");
        let inline = inline.unwrap_or_default();
        (inline.contains(&bucket), inline.contains(&format!("table/{table}")))
    };
    assert_eq!(granted().await, (true, false), "the bucket is ours by now; the table is not granted yet");
    let (status, reason, message) = condition(&obj, "LockTableReady").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Updating"), "{message}");
    let tags = dynamodb::get_settings(&aws.dynamodb, &table, &table_arn).await.unwrap().tags;
    assert_eq!(tags.get("tfstate.dev/owner-uid"), obj.metadata.uid.as_ref(), "the adopting pass writes the tags");

    let mut rival = tags.clone();
    rival.insert("tfstate.dev/owner-uid".into(), "00000000-0000-4000-8000-00000000beef".into());
    dynamodb::sync_tags(&aws.dynamodb, &table_arn, &tags, &rival).await.unwrap();
    let obj = wait_reason(&api, "legacy", "LockTableReady", "Conflict").await;
    let (_, _, message) = condition(&obj, "LockTableReady").unwrap();
    assert!(message.contains("another TerraformStateBackend"), "{message}");
    assert_eq!(granted().await, (true, false), "the table was never granted");
    assert_eq!(condition(&obj, "BackendConfigPublished").unwrap().0, "False", "no configuration for runners");
}

/// The abuse case of adoption after an outside tool removed a bucket's tags (PutBucketTagging
/// replaces the whole set): the bucket looks untagged, but another backend's status records
/// it as its state bucket. An object allowed to adopt gets a Conflict, writes nothing and is
/// granted nothing: it never reaches that backend's state.
#[tokio::test]
async fn an_untagged_bucket_another_backend_records_is_not_adoptable() {
    let (ground, client, ns) = setup("adopt-wiped").await;
    let _op = start_operator(&ground, &ns, RESYNC).await;
    let api = Api::namespaced(client.clone(), &ns);
    let aws = inspector(&ground).await;
    let bucket = unique_bucket("wiped");
    create_backend(&api, &backend_yaml("first-team", &bucket, "")).await;
    wait_ready(&api, "first-team").await;
    wait_for(&api, "first-team", Duration::from_secs(30), "state listed", |o| {
        o.status.as_ref().is_some_and(|s| s.state.is_some())
    })
    .await;
    aws.s3.delete_bucket_tagging().bucket(&bucket).send().await.expect("DeleteBucketTagging");

    create_backend(&api, &backend_yaml("taker", &bucket, "  adoptExisting: true\n")).await;
    let taker = wait_reason(&api, "taker", "BucketReady", "Conflict").await;
    let message = condition(&taker, "BucketReady").unwrap().2;
    assert!(message.contains("records it as its state or replica bucket"), "{message}");
    assert!(!message.contains("first-team"), "the other backend is not named: {message}");
    let tags = s3::get_tags(&aws.s3, &bucket).await.unwrap().unwrap_or_default();
    assert!(tags.get("tfstate.dev/owner-uid") != taker.metadata.uid.as_ref(), "the taker tagged it: {tags:?}");
    let role = taker.status.as_ref().and_then(|s| s.role_arn.clone()).expect("the taker's role");
    let role = role.rsplit('/').next().unwrap().to_string();
    let inline = iam::get_inline_policy(&aws.iam, &role, "tfstate-backend").await.expect("GetRolePolicy");
    assert!(!inline.unwrap_or_default().contains(&bucket), "the taker's runners were granted the bucket");

    // The first backend, now seeing its bucket untagged, is a Conflict itself, but its status
    // still records the state: a later taker is refused just the same.
    let first = wait_reason(&api, "first-team", "BucketReady", "Conflict").await;
    assert!(first.status.as_ref().and_then(|s| s.state.as_ref()).is_some(), "status.state was dropped");
    create_backend(&api, &backend_yaml("second-taker", &bucket, "  adoptExisting: true\n")).await;
    let second = wait_reason(&api, "second-taker", "BucketReady", "Conflict").await;
    let message = condition(&second, "BucketReady").unwrap().2;
    assert!(message.contains("records it as its state or replica bucket"), "{message}");
}

/// The same for a lock table: another backend's table, its tags removed, is not adoptable by
/// an object that names it. Its runners would hold (or break) that backend's locks.
#[tokio::test]
async fn an_untagged_lock_table_another_backend_records_is_not_adoptable() {
    let (ground, client, ns) = setup("adopt-wiped-table").await;
    let _op = start_operator(&ground, &ns, RESYNC).await;
    let api = Api::namespaced(client.clone(), &ns);
    let aws = inspector(&ground).await;
    let bucket = unique_bucket("wiped-table");
    let table = format!("{bucket}-lock");
    create_backend(&api, &backend_yaml("first-team", &bucket, "")).await;
    let first = wait_ready(&api, "first-team").await;
    let table_arn = first.status.as_ref().and_then(|s| s.lock_table_arn.clone()).expect("status.lockTableArn");
    let tags = dynamodb::get_settings(&aws.dynamodb, &table, &table_arn).await.unwrap().tags;
    dynamodb::sync_tags(&aws.dynamodb, &table_arn, &tags, &Default::default()).await.unwrap();

    let extra = format!("  adoptExisting: true\n  locking: {{table: {{name: {table}}}}}\n");
    create_backend(&api, &backend_yaml("taker", &unique_bucket("taker"), &extra)).await;
    let taker = wait_reason(&api, "taker", "LockTableReady", "Conflict").await;
    let message = condition(&taker, "LockTableReady").unwrap().2;
    assert!(message.contains("records it as its lock table"), "{message}");
    assert!(!message.contains("first-team"), "the other backend is not named: {message}");
    let now = dynamodb::get_settings(&aws.dynamodb, &table, &table_arn).await.unwrap().tags;
    assert!(now.is_empty(), "the taker tagged the table: {now:?}");
    let role = taker.status.as_ref().and_then(|s| s.role_arn.clone()).expect("the taker's role");
    let role = role.rsplit('/').next().unwrap().to_string();
    let inline = iam::get_inline_policy(&aws.iam, &role, "tfstate-backend").await.expect("GetRolePolicy");
    assert!(!inline.unwrap_or_default().contains(&format!("table/{table}")), "the taker's runners were granted it");
}

/// An existing key ARN that does not exist is a clear DependencyNotReady condition, and
/// nothing that would need the key is created.
#[tokio::test]
async fn missing_existing_key_is_reported() {
    let (ground, client, ns) = setup("nokey").await;
    let _op = start_operator(&ground, &ns, RESYNC).await;
    let api = Api::namespaced(client.clone(), &ns);
    let bucket = unique_bucket("nokey");
    let arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-4000-8000-000000000000";
    let extra = format!("  encryption: {{kmsKey: {{existingKeyArn: '{arn}'}}}}\n");
    create_backend(&api, &backend_yaml("nokey", &bucket, &extra)).await;
    let obj = wait_reason(&api, "nokey", "EncryptionKeyReady", "DependencyNotReady").await;
    let (status, _, message) = condition(&obj, "EncryptionKeyReady").unwrap();
    assert_eq!(status, "False");
    assert!(message.contains(arn) && message.contains("existingKeyArn"), "{message}");
    assert_eq!(condition(&obj, "BucketReady").unwrap().1, "DependencyNotReady");
    let aws = inspector(&ground).await;
    assert_eq!(s3::get_tags(&aws.s3, &bucket).await.unwrap(), None, "no bucket without its key");
}

/// deletionPolicy Retain (the default): the object goes, every AWS resource stays.
#[tokio::test]
async fn retain_leaves_every_resource() {
    let (ground, client, ns) = setup("retain").await;
    let _op = start_operator(&ground, &ns, RESYNC).await;
    let api = Api::namespaced(client.clone(), &ns);
    let bucket = unique_bucket("retain");
    create_backend(&api, &backend_yaml("kept", &bucket, "")).await;
    let status = wait_ready(&api, "kept").await.status.unwrap();
    api.delete("kept", &DeleteParams::default()).await.unwrap();
    wait_gone(&api, "kept", Duration::from_secs(60)).await;

    let aws = inspector(&ground).await;
    assert!(s3::get_tags(&aws.s3, &bucket).await.unwrap().is_some(), "bucket kept");
    assert!(dynamodb::describe(&aws.dynamodb, &format!("{bucket}-lock")).await.unwrap().is_some(), "table kept");
    assert!(iam::get_role(&aws.iam, &format!("tfstate-{ns}-kept")).await.unwrap().is_some(), "role kept");
    let key = kms::describe_key(&aws.kms, status.kms_key_arn.as_deref().unwrap()).await.unwrap().unwrap();
    assert_eq!(key.state, "Enabled", "key kept");
}

/// deletionPolicy Delete: while the bucket holds a state version nothing is deleted and
/// DeletionBlocked says how many remain; once it is empty, everything goes (the key is
/// scheduled for deletion with its window, the alias removed).
#[tokio::test]
async fn delete_waits_for_an_empty_bucket_then_removes_everything() {
    let (ground, client, ns) = setup("delete").await;
    let _op = start_operator(&ground, &ns, RESYNC).await;
    let api = Api::namespaced(client.clone(), &ns);
    let bucket = unique_bucket("delete");
    let extra = "  deletionPolicy: Delete\n  encryption: {kmsKey: {create: {deletionWindowDays: 7}}}\n";
    create_backend(&api, &backend_yaml("gone", &bucket, extra)).await;
    let status = wait_ready(&api, "gone").await.status.unwrap();
    let key_arn = status.kms_key_arn.clone().unwrap();
    let aws = inspector(&ground).await;
    let version = put_state(&aws.s3, &bucket, &format!("{ns}/gone/terraform.tfstate"), &key_arn).await;

    api.delete("gone", &DeleteParams::default()).await.unwrap();
    let obj = wait_reason(&api, "gone", "BucketReady", "DeletionBlocked").await;
    let message = condition(&obj, "BucketReady").unwrap().2;
    assert!(message.contains("1 object version"), "{message}");
    tokio::time::sleep(RESYNC).await;
    assert!(iam::get_role(&aws.iam, &format!("tfstate-{ns}-gone")).await.unwrap().is_some(), "role kept while blocked");
    assert_eq!(
        kms::describe_key(&aws.kms, &key_arn).await.unwrap().unwrap().state,
        "Enabled",
        "key kept while blocked"
    );

    // The state's owner empties the bucket; the deletion then finishes by itself.
    let key = format!("{ns}/gone/terraform.tfstate");
    aws.s3.delete_object().bucket(&bucket).key(&key).version_id(&version).send().await.unwrap();
    wait_gone(&api, "gone", Duration::from_secs(60)).await;
    assert_eq!(s3::get_tags(&aws.s3, &bucket).await.unwrap(), None, "bucket deleted");
    assert!(dynamodb::describe(&aws.dynamodb, &format!("{bucket}-lock")).await.unwrap().is_none(), "table deleted");
    assert!(iam::get_role(&aws.iam, &format!("tfstate-{ns}-gone")).await.unwrap().is_none(), "role deleted");
    assert_eq!(kms::describe_key(&aws.kms, &key_arn).await.unwrap().unwrap().state, "PendingDeletion");
    assert!(kms::describe_key(&aws.kms, &format!("alias/tfstate-{ns}-gone")).await.unwrap().is_none(), "alias deleted");
}

/// A backend keeps its bucket, the key of its current state and its runners' lock table: a
/// spec changing any is an InvalidSpec (no AWS call: no empty bucket or key for the runners
/// to start from, no second table), the runners' configuration stays as it was, and status
/// keeps the bucket. The
/// abuse case is deletion of such a spec with deletionPolicy Delete: the renamed bucket does
/// not exist, but the one status recorded holds state, so nothing is deleted and the key
/// stays enabled. Named back, the backend converges again.
#[tokio::test]
async fn a_renamed_bucket_key_or_table_is_refused_and_deletion_still_guards_the_state() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let (ground, client, ns) = setup("rename").await;
    let _op = start_operator(&ground, &ns, RESYNC).await;
    let api = Api::namespaced(client.clone(), &ns);
    let aws = inspector(&ground).await;
    let (bucket, renamed) = (unique_bucket("kept"), unique_bucket("renamed"));
    create_backend(&api, &backend_yaml("tf", &bucket, "  deletionPolicy: Delete\n")).await;
    let before = wait_ready(&api, "tf").await;
    let status = before.status.clone().unwrap();
    let key_arn = status.kms_key_arn.clone().unwrap();
    put_state(&aws.s3, &bucket, &format!("{ns}/tf/terraform.tfstate"), &key_arn).await;
    let published = || async {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let cm = cms.get(status.config_map_name.as_deref().unwrap()).await.unwrap();
        cm.data.unwrap_or_default().into_values().collect::<Vec<_>>().join("\n")
    };
    // One resync so that status has listed the state.
    wait_for(&api, "tf", Duration::from_secs(30), "state listed", |o| {
        o.status.as_ref().and_then(|s| s.state.as_ref()).is_some_and(|s| s.exists)
    })
    .await;

    patch_spec(&api, "tf", json!({"bucket": {"name": renamed}})).await;
    let obj = wait_reason(&api, "tf", "BucketReady", "InvalidSpec").await;
    let message = condition(&obj, "BucketReady").unwrap().2;
    for needle in ["spec.bucket.name", &bucket, "cannot be changed", "Set it back to", "Nothing was changed in AWS"] {
        assert!(message.contains(needle), "{needle:?} missing: {message}");
    }
    assert_eq!(condition(&obj, "Ready").unwrap().0, "False");
    assert_eq!(s3::get_tags(&aws.s3, &renamed).await.unwrap(), None, "no bucket of the new name");
    assert_eq!(obj.status.as_ref().unwrap().bucket_arn, status.bucket_arn, "status keeps the bucket");
    let config = published().await;
    assert!(config.contains(&bucket) && !config.contains(&renamed), "the runners' configuration is kept: {config}");

    // Named back, and then the lock table renamed: refused the same way.
    patch_spec(&api, "tf", json!({"bucket": {"name": bucket}})).await;
    wait_for(&api, "tf", Duration::from_secs(60), "Ready again", |o| {
        common::operator::is_ready(o) && o.metadata.generation == o.status.as_ref().and_then(|s| s.observed_generation)
    })
    .await;
    patch_spec(&api, "tf", json!({"locking": {"table": {"name": format!("{bucket}-v2")}}})).await;
    let obj = wait_reason(&api, "tf", "LockTableReady", "InvalidSpec").await;
    let message = condition(&obj, "LockTableReady").unwrap().2;
    assert!(message.contains("spec.locking.table.name") && message.contains(&format!("{bucket}-lock")), "{message}");
    assert!(dynamodb::describe(&aws.dynamodb, &format!("{bucket}-v2")).await.unwrap().is_none(), "no second table");

    // The state key moved away from the current state: refused the same way.
    patch_spec(&api, "tf", json!({"locking": {"table": {"name": null}}, "stateKey": "moved/terraform.tfstate"})).await;
    let obj = wait_for(&api, "tf", Duration::from_secs(30), "stateKey refused", |o| {
        condition(o, "BucketReady").is_some_and(|(_, r, m)| r == "InvalidSpec" && m.contains("spec.stateKey"))
    })
    .await;
    let message = condition(&obj, "BucketReady").unwrap().2;
    assert!(message.contains(&format!("{ns}/tf/terraform.tfstate")), "{message}");
    let config = published().await;
    assert!(!config.contains("moved/terraform.tfstate"), "the runners' configuration is kept: {config}");

    // The bucket renamed again, then the object deleted with deletionPolicy Delete.
    patch_spec(&api, "tf", json!({"bucket": {"name": renamed}, "stateKey": null})).await;
    wait_for(&api, "tf", Duration::from_secs(30), "refused", |o| {
        condition(o, "BucketReady").is_some_and(|(_, _, m)| m.contains(&renamed))
    })
    .await;
    api.delete("tf", &DeleteParams::default()).await.unwrap();
    let obj = wait_reason(&api, "tf", "BucketReady", "DeletionBlocked").await;
    let message = condition(&obj, "BucketReady").unwrap().2;
    assert!(message.contains(&bucket) && message.contains("1 object version"), "{message}");
    tokio::time::sleep(RESYNC).await;
    assert_eq!(kms::describe_key(&aws.kms, &key_arn).await.unwrap().unwrap().state, "Enabled", "the key stays");
    assert!(s3::get_tags(&aws.s3, &bucket).await.unwrap().is_some(), "the bucket with the state stays");
    // Let the object go without deleting anything.
    patch_spec(&api, "tf", json!({"deletionPolicy": "Retain"})).await;
    wait_gone(&api, "tf", Duration::from_secs(60)).await;
    assert_eq!(kms::describe_key(&aws.kms, &key_arn).await.unwrap().unwrap().state, "Enabled");
}

/// A pass that stops before the lock table (here: the key it is told to use does not
/// exist) keeps `status.lockTableArn`: the table runners lock in is never forgotten, so a
/// rename right after is still refused (and deletion would still find the table).
#[tokio::test]
async fn a_pass_that_stops_before_the_table_keeps_the_table_it_knows() {
    let (ground, client, ns) = setup("keep-table").await;
    let _op = start_operator(&ground, &ns, RESYNC).await;
    let api = Api::namespaced(client.clone(), &ns);
    let bucket = unique_bucket("keeptable");
    create_backend(&api, &backend_yaml("tf", &bucket, "")).await;
    let table_arn = wait_ready(&api, "tf").await.status.unwrap().lock_table_arn.expect("lockTableArn");

    let missing = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-4000-8000-000000000000";
    patch_spec(&api, "tf", json!({"encryption": {"kmsKey": {"existingKeyArn": missing}}})).await;
    let obj = wait_reason(&api, "tf", "EncryptionKeyReady", "DependencyNotReady").await;
    assert_eq!(obj.status.unwrap().lock_table_arn.as_deref(), Some(table_arn.as_str()), "the table is remembered");

    let spec = json!({"encryption": {"kmsKey": null}, "locking": {"table": {"name": format!("{bucket}-v2")}}});
    patch_spec(&api, "tf", spec).await;
    let obj = wait_reason(&api, "tf", "LockTableReady", "InvalidSpec").await;
    let message = condition(&obj, "LockTableReady").unwrap().2;
    assert!(message.contains(&format!("{bucket}-lock")) && message.contains("spec.locking.table.name"), "{message}");
    let aws = inspector(&ground).await;
    assert!(dynamodb::describe(&aws.dynamodb, &format!("{bucket}-v2")).await.unwrap().is_none(), "no second table");
}

/// Deleting an object whose spec never validated (so Apply never reached AWS) just
/// completes: Cleanup tolerates Apply never having run.
#[tokio::test]
async fn invalid_backend_deletes_cleanly() {
    let (ground, client, ns) = setup("invalid-delete").await;
    let _op = start_operator(&ground, &ns, RESYNC).await;
    let api = Api::namespaced(client.clone(), &ns);
    let extra = "  deletionPolicy: Delete\n  locking: {mode: Lockfile, table: {name: not-allowed}}\n";
    create_backend(&api, &backend_yaml("broken", &unique_bucket("broken"), extra)).await;
    wait_reason(&api, "broken", "Ready", "InvalidSpec").await;
    api.delete("broken", &DeleteParams::default()).await.unwrap();
    wait_gone(&api, "broken", Duration::from_secs(60)).await;
}

/// Full passes made so far: the operator reads the role exactly once per pass (the
/// bucket's tags are read twice in a pass that creates it: they are read back).
fn full_passes(op: &common::operator::Operator) -> u64 {
    op.ctx.aws.calls().snapshot().iter().filter(|(k, _)| k.operation == "GetRole").map(|(_, n)| n).sum()
}

/// The published ConfigMap is watched: deleted or edited by hand it is restored at once
/// (no resync needed), while the operator's own writes to it trigger nothing: a create
/// costs the creating pass and one verification pass, no more.
#[tokio::test]
async fn config_map_is_restored_and_own_writes_trigger_nothing() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Patch, PatchParams};

    let (ground, client, ns) = setup("published").await;
    let op = start_operator(&ground, &ns, Duration::from_secs(600)).await;
    let api = Api::namespaced(client.clone(), &ns);
    create_backend(&api, &backend_yaml("pub", &unique_bucket("published"), "")).await;
    wait_ready(&api, "pub").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The creating pass and one verification pass; the ConfigMap write adds none.
    wait_reason(&api, "pub", "BackendConfigPublished", "Converged").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(full_passes(&op), 2, "publishing the ConfigMap must not trigger a pass of its own");

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let original = cms.get("pub-backend").await.unwrap().data;
    let restored = |what: &'static str| {
        let (cms, original) = (cms.clone(), original.clone());
        async move {
            for _ in 0..100 {
                if cms.get_opt("pub-backend").await.unwrap().is_some_and(|cm| cm.data == original) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("the ConfigMap was not restored within 10 s after it was {what}");
        }
    };

    cms.delete("pub-backend", &DeleteParams::default()).await.unwrap();
    restored("deleted").await;
    let edit = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"bucket": "somebody-elses-bucket"}});
    cms.patch("pub-backend", &PatchParams::apply("someone").force(), &Patch::Apply(&edit)).await.unwrap();
    restored("edited").await;
    assert!(full_passes(&op) >= 3, "each repair was a reconcile");
}

/// The Kubernetes requests an operator made for ConfigMaps by name (reads and writes of
/// one ConfigMap; its watch is not one of them).
fn config_map_requests(op: &common::operator::Operator) -> usize {
    op.kube_requests(|r| r.contains("/configmaps/"))
}

/// Waits (60 s at most) until the operator has made `n` more full passes than `since`.
async fn wait_full_passes(op: &common::operator::Operator, since: u64, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while full_passes(op) < since + n {
        assert!(tokio::time::Instant::now() < deadline, "{n} more passes did not come within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    op.wait_until_no_pass_in_flight(Duration::from_secs(30)).await;
}

/// Once published, a ConfigMap is neither read nor written again while the ConfigMap watch
/// shows it as published: a resync costs no Kubernetes request at all (it was one GET of
/// the ConfigMap).
#[tokio::test]
async fn converged_passes_make_no_config_map_request() {
    let (ground, client, ns) = setup("cm-quiet").await;
    let op = start_operator(&ground, &ns, RESYNC).await;
    let api = Api::namespaced(client.clone(), &ns);
    create_backend(&api, &backend_yaml("quiet", &unique_bucket("cm-quiet"), "")).await;
    wait_ready(&api, "quiet").await;
    wait_reason(&api, "quiet", "BackendConfigPublished", "Converged").await;
    op.wait_until_no_pass_in_flight(Duration::from_secs(30)).await;
    // The creating pass reads (is the name free?) and applies it; the verify pass reads it
    // only if the watch had not yet delivered that apply.
    let published = config_map_requests(&op);
    assert!((2..=3).contains(&published), "{published} ConfigMap requests to create and verify it");
    // One more pass, by when the watch has long shown it; then three resyncs.
    wait_full_passes(&op, full_passes(&op), 1).await;
    let (before, passes) = (op.kube_request_log().len(), full_passes(&op));
    wait_full_passes(&op, passes, 3).await;
    // Nothing else either: a converged backend costs AWS reads only.
    let during = op.kube_request_log().split_off(before);
    assert!(during.is_empty(), "three converged passes made Kubernetes requests: {during:?}");
}

/// Its abuse case: a ConfigMap of the name a backend publishes under that is not its own is
/// a Conflict, read from the API server, and not a byte of it changes. Whether it is an
/// application's (unlabelled: the watch never shows it), or labelled as the operator's and
/// holding exactly what the backend would publish, but owned by another object (the watch
/// shows it, and must not take it for the backend's).
#[tokio::test]
async fn a_config_map_that_is_not_the_backends_own_is_never_written() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::ResourceExt;
    use kube::api::PostParams;
    use tfstate_operator::reconcile::publish::MANAGED_LABEL;

    let (ground, client, ns) = setup("cm-taken").await;
    let _op = start_operator(&ground, &ns, RESYNC).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let api = Api::namespaced(client.clone(), &ns);
    let app: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "app-config"}, "data": {"DATABASE_URL": "postgres://app"}
    }))
    .unwrap();
    let app = cms.create(&PostParams::default(), &app).await.unwrap();
    // A backend that publishes as usual, then is pointed at a copy of its own ConfigMap that
    // the application's owns (an owner that exists: the garbage collector keeps it).
    create_backend(&api, &backend_yaml("mirror", &unique_bucket("cm-mirror"), "")).await;
    wait_ready(&api, "mirror").await;
    let own = cms.get("mirror-backend").await.unwrap();
    let disguised: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "disguised", "labels": {MANAGED_LABEL.0: MANAGED_LABEL.1},
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "app-config",
                "uid": app.metadata.uid.clone().unwrap()}]},
        "data": own.data,
    }))
    .unwrap();
    let disguised = cms.create(&PostParams::default(), &disguised).await.unwrap();
    patch_spec(&api, "mirror", json!({"output": {"configMapName": "disguised"}})).await;
    create_backend(
        &api,
        &backend_yaml("takes-app", &unique_bucket("cm-takes-app"), "  output: {configMapName: app-config}\n"),
    )
    .await;

    for (name, cm, original) in [("takes-app", "app-config", &app), ("mirror", "disguised", &disguised)] {
        let obj = wait_reason(&api, name, "BackendConfigPublished", "Conflict").await;
        let (_, _, message) = condition(&obj, "BackendConfigPublished").unwrap();
        assert!(message.contains(cm), "the Conflict names the ConfigMap: {message}");
        let now = cms.get(cm).await.unwrap();
        assert_eq!(now.data, original.data, "{name} changed the data of ConfigMap {cm}");
        let owners = |cm: &ConfigMap| cm.owner_references().iter().map(|r| r.uid.clone()).collect::<Vec<_>>();
        assert_eq!(owners(&now), owners(original), "{name} changed the owners of ConfigMap {cm}");
        assert!(
            now.metadata.managed_fields.iter().flatten().all(|m| m.manager.as_deref() != Some("tfstate-operator")),
            "{name} wrote to ConfigMap {cm}"
        );
    }
}
