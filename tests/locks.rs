//! Locks you can see and safely break, on the real test ground: locks taken the way
//! Terraform takes them (PutItem of the lock info with `attribute_not_exists(LockID)`, and a
//! `<key>.tflock` object written with `If-None-Match: *`), seen in `status.lock` and the lock
//! age metric, `StaleLock` published once per lock ID (restarts included), broken by the
//! `tfstate.dev/force-unlock` annotation (a wrong ID first: nothing changes, the condition and
//! an Event say why), conditional deletes that fail safe when the lock changed in between, and
//! lock-mode migrations (straight DynamoDB -> Lockfile refused without an AWS call; through
//! Both they work, one roll-out window of `staleAfter` apart, and the runner role keeps the
//! grants of the old mode until the window closes).

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use common::operator::{
    Operator, condition, create_backend, inspector, patch_spec, start_operator, unique_bucket, wait_gone,
};
use common::operator::{wait_for, wait_ready};
use common::{Ground, install_crd, test_namespace};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tfstate_operator::api::{LockMode, LockSource, TerraformStateBackend};
use tfstate_operator::aws::calls::{difference, totals};
use tfstate_operator::aws::{AwsClients, ConditionalDelete, dynamodb, iam, s3};
use tfstate_operator::reconcile::desired::INLINE_POLICY_NAME;

const RESYNC: Duration = Duration::from_secs(2);
const ANNOTATION: &str = "tfstate.dev/force-unlock";
const WORKSPACE_ANNOTATION: &str = "tfstate.dev/force-unlock-workspace";

struct Fixture {
    client: Client,
    ns: String,
    api: Api<TerraformStateBackend>,
    aws: AwsClients,
    op: Operator,
    bucket: String,
    ground: Ground,
}

impl Fixture {
    fn state_key(&self) -> String {
        format!("{}/tf/terraform.tfstate", self.ns)
    }

    fn lock_id(&self) -> String {
        format!("{}/{}", self.bucket, self.state_key())
    }

    fn table(&self) -> String {
        format!("{}-lock", self.bucket)
    }
}

/// Backend `tf` with `locking` (JSON) in a namespace of its own, Ready, under an operator
/// that resyncs every [`RESYNC`].
async fn fixture(prefix: &str, locking: Value) -> Fixture {
    fixture_with(prefix, locking, RESYNC).await
}

/// As [`fixture`], under an operator that resyncs every `resync`.
async fn fixture_with(prefix: &str, locking: Value, resync: Duration) -> Fixture {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, prefix).await;
    let op = start_operator(&ground, &ns, resync).await;
    let api: Api<TerraformStateBackend> = Api::namespaced(client.clone(), &ns);
    let bucket = unique_bucket(prefix);
    let obj = json!({"apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStateBackend",
        "metadata": {"name": "tf"},
        "spec": {"bucket": {"name": bucket}, "locking": locking,
            "access": {"trust": {"awsPrincipals": ["arn:aws:iam::123456789012:root"]}}}});
    create_backend(&api, &serde_yaml_ng::to_string(&obj).expect("yaml")).await;
    wait_ready(&api, "tf").await;
    Fixture { aws: inspector(&ground).await, client, ns, api, op, bucket, ground }
}

/// Terraform's lock info (statemgr.LockInfo as the S3 backend marshals it).
fn lock_info(id: &str, who: &str, created: &str, path: &str) -> String {
    json!({"ID": id, "Operation": "OperationTypeApply", "Info": "", "Who": who, "Version": "1.9.8",
        "Created": created, "Path": path})
    .to_string()
}

fn ago(secs: i64) -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second() - secs).expect("time").to_string()
}

/// Takes the DynamoDB lock as Terraform does; panics if it is held.
async fn take_dynamodb_lock(aws: &AwsClients, table: &str, lock_id: &str, info: &str) {
    aws.dynamodb
        .put_item()
        .table_name(table)
        .item("LockID", AttributeValue::S(lock_id.into()))
        .item("Info", AttributeValue::S(info.into()))
        .condition_expression("attribute_not_exists(LockID)")
        .send()
        .await
        .expect("PutItem of the lock (attribute_not_exists)");
}

/// Takes the lock file as Terraform does (no encryption headers: default encryption); its ETag.
async fn take_lock_file(aws: &AwsClients, bucket: &str, key: &str, info: &str) -> String {
    let out = aws
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .if_none_match("*")
        .body(aws_sdk_s3::primitives::ByteStream::from(info.as_bytes().to_vec()))
        .send()
        .await
        .expect("PutObject of the lock file (If-None-Match: *)");
    out.e_tag().expect("ETag").to_string()
}

async fn lock_item(aws: &AwsClients, table: &str, lock_id: &str) -> Option<String> {
    dynamodb::get_lock(&aws.dynamodb, table, lock_id).await.expect("GetItem").map(|i| i.info.unwrap_or_default())
}

async fn lock_file(aws: &AwsClients, bucket: &str, key: &str) -> Option<(String, String)> {
    s3::get_lock_object(&aws.s3, bucket, key)
        .await
        .expect("GetObject")
        .map(|o| (String::from_utf8_lossy(&o.body).into_owned(), o.etag))
}

/// Events of `tf` with `reason`: their notes.
async fn events(client: &Client, ns: &str, reason: &str) -> Vec<String> {
    let list = Api::<Event>::namespaced(client.clone(), ns).list(&ListParams::default()).await.expect("Events").items;
    list.into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("tf"))
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| {
            assert!(e.series.is_none(), "{reason} Events are never folded into a series: {e:?}");
            e.note.unwrap_or_default()
        })
        .collect()
}

/// Waits (polled, with a deadline) for an Event of `tf` with `reason` whose note contains
/// `needle`. Events of one reason may repeat here, so series are allowed.
async fn wait_note(client: &Client, ns: &str, reason: &str, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let list = Api::<Event>::namespaced(client.clone(), ns).list(&ListParams::default()).await.expect("Events");
        let mut notes = list
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("tf"))
            .filter(|e| e.reason.as_deref() == Some(reason))
            .filter_map(|e| e.note);
        if notes.any(|n| n.contains(needle)) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {reason} Event saying {needle:?} within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_event(client: &Client, ns: &str, reason: &str) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let found = events(client, ns, reason).await;
        if !found.is_empty() {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {reason} Event within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `op` made `n` more passes over the backend (one GetBucketTagging each).
async fn passes(op: &Operator, n: u64) {
    let count = || {
        op.ctx
            .aws
            .calls()
            .snapshot()
            .iter()
            .filter(|(k, _)| k.operation == "GetBucketTagging")
            .map(|(_, v)| *v)
            .sum::<u64>()
    };
    let start = count();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while count() < start + n {
        assert!(tokio::time::Instant::now() < deadline, "fewer than {n} passes within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn annotate(api: &Api<TerraformStateBackend>, value: &str) {
    let patch = json!({"metadata": {"annotations": {ANNOTATION: value}}});
    api.patch("tf", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate");
}

fn lock_age_series(op: &Operator, ns: &str) -> Option<i64> {
    op.ctx
        .metrics
        .encode()
        .lines()
        .find(|l| {
            l.starts_with("tfstate_lock_age_seconds{")
                && l.contains(&format!("namespace=\"{ns}\""))
                && l.contains("name=\"tf\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Both lock sources: the lock is seen in status and the metric, StaleLock is published once
/// (and not again by a restarted operator), a wrong ID changes nothing and says why, the right
/// ID removes the lock in both places and the annotation, and Terraform's digest item is left.
#[tokio::test]
async fn a_stale_lock_is_seen_reported_once_and_broken_by_its_id_only() {
    let mut fx = fixture("locks-both", json!({"mode": "Both", "staleAfter": "5s"})).await;
    let ready = fx.api.get("tf").await.expect("get");
    let lock = ready.status.as_ref().and_then(|s| s.lock.clone()).expect("status.lock once Ready");
    assert!(!lock.held, "{lock:?}");
    assert_eq!(ready.status.as_ref().and_then(|s| s.lock_mode), Some(LockMode::Both));

    // Terraform's digest item (not a lock) and a lock in both places, 60 s old, same ID.
    let (table, lock_id, key) = (fx.table(), fx.lock_id(), format!("{}.tflock", fx.state_key()));
    let digest = format!("{lock_id}-md5");
    fx.aws
        .dynamodb
        .put_item()
        .table_name(&table)
        .item("LockID", AttributeValue::S(digest.clone()))
        .item("Digest", AttributeValue::S("0123456789abcdef0123456789abcdef".into()))
        .send()
        .await
        .expect("PutItem digest");
    let id = format!("a1b2c3d4-{}", common::random_suffix());
    let info = lock_info(&id, "runner@tf-job-1", &ago(60), &lock_id);
    take_dynamodb_lock(&fx.aws, &table, &lock_id, &info).await;
    let etag = take_lock_file(&fx.aws, &fx.bucket, &key, &info).await;

    let obj = wait_for(&fx.api, "tf", Duration::from_secs(60), "showing the lock", |o| {
        o.status.as_ref().and_then(|s| s.lock.as_ref()).is_some_and(|l| l.held && l.id.as_deref() == Some(&id))
    })
    .await;
    let lock = obj.status.and_then(|s| s.lock).expect("lock");
    assert_eq!(lock.who.as_deref(), Some("runner@tf-job-1"));
    assert_eq!(lock.operation.as_deref(), Some("OperationTypeApply"));
    assert_eq!(lock.source, Some(LockSource::Both));
    assert!(lock.created.is_some() && lock.message.is_none(), "{lock:?}");
    let age = lock_age_series(&fx.op, &fx.ns).expect("a lock age series while the lock is held");
    assert!((55..3600).contains(&age), "lock age {age}");

    // Stale (older than 5 s): one Event, remembered in status; not again, nor after a restart.
    let notes = wait_event(&fx.client, &fx.ns, "StaleLock").await;
    assert!(notes[0].contains(&id) && notes[0].contains("force-unlock"), "{notes:?}");
    wait_for(&fx.api, "tf", Duration::from_secs(30), "remembering StaleLock", |o| {
        o.status.as_ref().and_then(|s| s.lock.as_ref()).is_some_and(|l| l.stale_reported)
    })
    .await;
    passes(&fx.op, 3).await;
    assert_eq!(events(&fx.client, &fx.ns, "StaleLock").await.len(), 1, "StaleLock twice for one lock");
    fx.op = start_operator(&fx.ground, &fx.ns, RESYNC).await;
    passes(&fx.op, 3).await;
    assert_eq!(
        events(&fx.client, &fx.ns, "StaleLock").await.len(),
        1,
        "a restarted operator published StaleLock again"
    );

    // A wrong ID: nothing changes in AWS; the annotation goes; condition and Event say why.
    let before = kube_resource_version(&fx.api).await;
    annotate(&fx.api, "not-the-lock-id").await;
    let obj = wait_for(&fx.api, "tf", Duration::from_secs(60), "answering the wrong ID", |o| {
        !o.annotations().contains_key(ANNOTATION)
            && condition(o, "ForceUnlock").is_some_and(|(_, r, _)| r == "LockIdMismatch")
    })
    .await;
    let (status, _, message) = condition(&obj, "ForceUnlock").expect("ForceUnlock");
    assert_eq!(status, "False");
    assert!(
        message.contains(&id) && message.contains("not-the-lock-id") && message.contains("nothing changed"),
        "{message}"
    );
    assert!(condition(&obj, "Ready").is_some_and(|(s, _, _)| s == "True"), "a refused force-unlock is not a failure");
    assert_eq!(lock_item(&fx.aws, &table, &lock_id).await.as_deref(), Some(info.as_str()), "the lock item changed");
    assert_eq!(lock_file(&fx.aws, &fx.bucket, &key).await.map(|f| f.1), Some(etag.clone()), "the lock file changed");
    assert!(events(&fx.client, &fx.ns, "LockIdMismatch").await[0].contains(&id));
    assert_ne!(before, kube_resource_version(&fx.api).await);

    // Odd characters: still only a mismatch, safely quoted.
    annotate(&fx.api, "x\"}]; DROP TABLE; ../../other-bucket/key *").await;
    wait_for(&fx.api, "tf", Duration::from_secs(60), "answering the odd ID", |o| {
        !o.annotations().contains_key(ANNOTATION)
            && condition(o, "ForceUnlock").is_some_and(|(_, _, m)| m.contains("DROP TABLE"))
    })
    .await;
    assert_eq!(lock_item(&fx.aws, &table, &lock_id).await.as_deref(), Some(info.as_str()));

    // The right ID: gone in both places, annotation removed, Event, metric series gone.
    annotate(&fx.api, &id).await;
    let obj = wait_for(&fx.api, "tf", Duration::from_secs(60), "force-unlocked", |o| {
        !o.annotations().contains_key(ANNOTATION)
            && condition(o, "ForceUnlock").is_some_and(|(_, r, _)| r == "ForceUnlocked")
            && o.status.as_ref().and_then(|s| s.lock.as_ref()).is_some_and(|l| !l.held)
    })
    .await;
    let (status, _, message) = condition(&obj, "ForceUnlock").expect("ForceUnlock");
    assert_eq!(status, "True");
    assert!(message.contains(&id) && message.contains("runner@tf-job-1"), "{message}");
    assert_eq!(lock_item(&fx.aws, &table, &lock_id).await, None, "the lock item is still there");
    assert_eq!(lock_file(&fx.aws, &fx.bucket, &key).await, None, "the lock file is still there");
    assert!(lock_item(&fx.aws, &table, &digest).await.is_some(), "Terraform's digest item was touched");
    let notes = wait_event(&fx.client, &fx.ns, "ForceUnlocked").await;
    assert!(notes[0].contains(&id), "{notes:?}");
    assert_eq!(lock_age_series(&fx.op, &fx.ns), None, "the lock age series outlived the lock");
    // A new lock can be taken the way Terraform does (the lock file's delete marker is no object).
    take_dynamodb_lock(&fx.aws, &table, &lock_id, &info).await;
    take_lock_file(&fx.aws, &fx.bucket, &key, &info).await;
}

/// A workspace's lock (`env:/<workspace>/<key>`, where Terraform keeps it) is broken by naming
/// the workspace: the default workspace's lock with the same ID is left alone, a name that
/// would leave the prefix is refused without an AWS change, and both annotations go.
#[tokio::test]
async fn a_workspace_lock_is_broken_by_naming_its_workspace() {
    let fx = fixture("locks-ws", json!({"mode": "Both"})).await;
    let table = fx.table();
    let ws_key = format!("env:/staging/{}", fx.state_key());
    let (ws_lock_id, ws_file) = (format!("{}/{ws_key}", fx.bucket), format!("{ws_key}.tflock"));
    let id = format!("c0ffee00-{}", common::random_suffix());
    let ws_info = lock_info(&id, "runner@tf-staging", &ago(30), &ws_lock_id);
    take_dynamodb_lock(&fx.aws, &table, &ws_lock_id, &ws_info).await;
    take_lock_file(&fx.aws, &fx.bucket, &ws_file, &ws_info).await;
    // The default workspace holds a lock with the same ID: a request for the workspace must
    // not touch it.
    let (lock_id, file) = (fx.lock_id(), format!("{}.tflock", fx.state_key()));
    let info = lock_info(&id, "runner@tf-default", &ago(30), &lock_id);
    take_dynamodb_lock(&fx.aws, &table, &lock_id, &info).await;

    // Abuse: a workspace name that climbs out of the prefix is refused; nothing changes.
    let annotate_ws = |ws: &'static str| {
        let patch = json!({"metadata": {"annotations": {ANNOTATION: id.clone(), WORKSPACE_ANNOTATION: ws}}});
        let api = fx.api.clone();
        async move { api.patch("tf", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate") }
    };
    let gone = |o: &TerraformStateBackend| {
        !o.annotations().contains_key(ANNOTATION) && !o.annotations().contains_key(WORKSPACE_ANNOTATION)
    };
    annotate_ws("../../other").await;
    let obj = wait_for(&fx.api, "tf", Duration::from_secs(60), "refusing the workspace name", |o| {
        gone(o) && condition(o, "ForceUnlock").is_some_and(|(_, r, _)| r == "ForceUnlockRefused")
    })
    .await;
    let (_, _, message) = condition(&obj, "ForceUnlock").expect("ForceUnlock");
    assert!(message.contains("force-unlock-workspace") && message.contains("nothing changed"), "{message}");
    assert_eq!(lock_item(&fx.aws, &table, &ws_lock_id).await.as_deref(), Some(ws_info.as_str()));
    assert_eq!(lock_item(&fx.aws, &table, &lock_id).await.as_deref(), Some(info.as_str()));

    // A workspace without that lock: NoLockHeld, naming the workspace.
    annotate_ws("prod").await;
    let obj = wait_for(&fx.api, "tf", Duration::from_secs(60), "answering for workspace prod", |o| {
        gone(o) && condition(o, "ForceUnlock").is_some_and(|(_, r, _)| r == "NoLockHeld")
    })
    .await;
    assert!(condition(&obj, "ForceUnlock").is_some_and(|(_, _, m)| m.contains("\"prod\"")), "{obj:?}");

    // The right workspace: its lock goes in both places; the default workspace's stays.
    annotate_ws("staging").await;
    let obj = wait_for(&fx.api, "tf", Duration::from_secs(60), "force-unlocking workspace staging", |o| {
        gone(o) && condition(o, "ForceUnlock").is_some_and(|(_, r, _)| r == "ForceUnlocked")
    })
    .await;
    let (_, _, message) = condition(&obj, "ForceUnlock").expect("ForceUnlock");
    assert!(message.contains("workspace \"staging\"") && message.contains("runner@tf-staging"), "{message}");
    assert_eq!(lock_item(&fx.aws, &table, &ws_lock_id).await, None, "the workspace's lock item is still there");
    assert_eq!(lock_file(&fx.aws, &fx.bucket, &ws_file).await, None, "the workspace's lock file is still there");
    assert_eq!(lock_item(&fx.aws, &table, &lock_id).await.as_deref(), Some(info.as_str()), "default lock touched");
    assert_eq!(lock_file(&fx.aws, &fx.bucket, &file).await, None);
    // status.lock still shows the default workspace's lock.
    wait_for(&fx.api, "tf", Duration::from_secs(60), "showing the default workspace's lock", |o| {
        o.status
            .as_ref()
            .and_then(|s| s.lock.as_ref())
            .is_some_and(|l| l.held && l.who.as_deref() == Some("runner@tf-default"))
    })
    .await;

    // A workspace annotation alone names no lock: answered and removed (left there, it would
    // send the next default-workspace request to that workspace); nothing changes.
    let patch = json!({"metadata": {"annotations": {WORKSPACE_ANNOTATION: "staging"}}});
    fx.api.patch("tf", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate");
    wait_for(&fx.api, "tf", Duration::from_secs(60), "answering a lone workspace annotation", |o| {
        gone(o)
            && condition(o, "ForceUnlock")
                .is_some_and(|(_, r, m)| r == "ForceUnlockRefused" && m.contains("without tfstate.dev/force-unlock"))
    })
    .await;
    assert_eq!(lock_item(&fx.aws, &table, &lock_id).await.as_deref(), Some(info.as_str()), "default lock touched");
}

async fn kube_resource_version(api: &Api<TerraformStateBackend>) -> String {
    api.get("tf").await.expect("get").resource_version().unwrap_or_default()
}

/// The conditional deletes of the force-unlock, against the emulator: a lock replaced by
/// another holder between the read and the delete is not deleted (DynamoDB's condition on the
/// exact Info, S3's If-Match on the ETag read); the lock as read is.
#[tokio::test]
async fn a_lock_replaced_between_read_and_delete_is_not_deleted() {
    let fx = fixture("locks-race", json!({"mode": "Both"})).await;
    let (table, lock_id, key) = (fx.table(), fx.lock_id(), format!("{}.tflock", fx.state_key()));
    let first = lock_info("first-holder-id", "runner@one", &ago(10), &lock_id);
    take_dynamodb_lock(&fx.aws, &table, &lock_id, &first).await;
    take_lock_file(&fx.aws, &fx.bucket, &key, &first).await;
    let read_item = dynamodb::get_lock(&fx.aws.dynamodb, &table, &lock_id).await.expect("GetItem").expect("held");
    let read_file = s3::get_lock_object(&fx.aws.s3, &fx.bucket, &key).await.expect("GetObject").expect("held");
    assert_eq!(read_item.info.as_deref(), Some(first.as_str()));

    // The holder releases; another takes the lock.
    let second = lock_info("second-holder-id", "runner@two", &ago(0), &lock_id);
    fx.aws
        .dynamodb
        .delete_item()
        .table_name(&table)
        .key("LockID", AttributeValue::S(lock_id.clone()))
        .send()
        .await
        .expect("unlock");
    take_dynamodb_lock(&fx.aws, &table, &lock_id, &second).await;
    fx.aws.s3.delete_object().bucket(&fx.bucket).key(&key).send().await.expect("unlock file");
    let second_etag = take_lock_file(&fx.aws, &fx.bucket, &key, &second).await;
    assert_ne!(second_etag, read_file.etag);

    let guard = read_item.info.as_deref().expect("info");
    assert_eq!(
        dynamodb::delete_lock_if(&fx.aws.dynamodb, &table, &lock_id, guard).await.expect("DeleteItem"),
        ConditionalDelete::Changed
    );
    assert_eq!(
        s3::delete_lock_object_if_match(&fx.aws.s3, &fx.bucket, &key, &read_file.etag).await.expect("DeleteObject"),
        ConditionalDelete::Changed
    );
    assert_eq!(
        lock_item(&fx.aws, &table, &lock_id).await.as_deref(),
        Some(second.as_str()),
        "another's lock was deleted"
    );
    assert_eq!(lock_file(&fx.aws, &fx.bucket, &key).await.map(|f| f.1), Some(second_etag.clone()));

    // Through the operator: the first holder's ID matches nothing now.
    annotate(&fx.api, "first-holder-id").await;
    wait_for(&fx.api, "tf", Duration::from_secs(60), "refusing the released lock's ID", |o| {
        !o.annotations().contains_key(ANNOTATION)
            && condition(o, "ForceUnlock")
                .is_some_and(|(_, r, m)| r == "LockIdMismatch" && m.contains("second-holder-id"))
    })
    .await;
    assert_eq!(lock_item(&fx.aws, &table, &lock_id).await.as_deref(), Some(second.as_str()));

    // The lock as it is now is deleted.
    assert_eq!(
        dynamodb::delete_lock_if(&fx.aws.dynamodb, &table, &lock_id, &second).await.expect("DeleteItem"),
        ConditionalDelete::Deleted
    );
    assert_eq!(
        s3::delete_lock_object_if_match(&fx.aws.s3, &fx.bucket, &key, &second_etag).await.expect("DeleteObject"),
        ConditionalDelete::Deleted
    );
    assert_eq!(lock_item(&fx.aws, &table, &lock_id).await, None);
    assert_eq!(lock_file(&fx.aws, &fx.bucket, &key).await, None);
}

/// The runner role's inline policy, decoded: its statement Sids.
async fn grant_sids(aws: &AwsClients, ns: &str) -> Vec<String> {
    let role = format!("tfstate-{ns}-tf");
    let doc =
        iam::get_inline_policy(&aws.iam, &role, INLINE_POLICY_NAME).await.expect("GetRolePolicy").expect("policy");
    let doc = percent_encoding::percent_decode_str(&doc).decode_utf8_lossy().into_owned();
    let doc: Value = serde_json::from_str(&doc).expect("policy JSON");
    let mut sids: Vec<String> = doc["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .filter_map(|s| s["Sid"].as_str().map(String::from))
        .collect();
    sids.sort();
    sids
}

async fn published(fx: &Fixture) -> std::collections::BTreeMap<String, String> {
    Api::<ConfigMap>::namespaced(fx.client.clone(), &fx.ns)
        .get("tf-backend")
        .await
        .expect("ConfigMap")
        .data
        .expect("data")
}

/// Polls the runner role's grants until `UseLockTable` and `ManageLockFiles` are as given.
async fn wait_grants(fx: &Fixture, table: bool, lockfile: bool, what: &str) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let sids = grant_sids(&fx.aws, &fx.ns).await;
        let has = |sid: &str| sids.iter().any(|s| s == sid);
        if has("UseLockTable") == table && has("ManageLockFiles") == lockfile {
            return sids;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: grants still {sids:?} after 60 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// When `status.lockModeChange` says the published mode last changed.
fn changed_at(o: &TerraformStateBackend) -> k8s_openapi::jiff::Timestamp {
    let change = o.status.as_ref().and_then(|s| s.lock_mode_change.as_ref()).expect("status.lockModeChange");
    change.at.parse().expect("lockModeChange.at")
}

/// The roll-out window of these tests (`spec.locking.staleAfter`).
const WINDOW: Duration = Duration::from_secs(10);

/// DynamoDB -> Lockfile is refused with no AWS call and a message naming the Both step;
/// DynamoDB -> Both -> Lockfile works, but the second step waits for the first one's roll-out
/// window (`staleAfter`) and then happens by itself; the role keeps the old mode's grants
/// until its window closes, and their narrowing is an update, not drift. Lockfile -> DynamoDB
/// is refused likewise; Lockfile -> Both -> DynamoDB works, the stale digests cleared at
/// both steps.
#[tokio::test]
async fn lock_mode_migrates_only_through_both() {
    let fx = fixture("locks-migrate", json!({"mode": "DynamoDB", "staleAfter": "10s"})).await;
    let has = |sids: &[String], sid: &str| sids.iter().any(|s| s == sid);
    let sids = grant_sids(&fx.aws, &fx.ns).await;
    assert!(has(&sids, "UseLockTable") && !has(&sids, "ManageLockFiles"), "{sids:?}");
    wait_for(&fx.api, "tf", Duration::from_secs(30), "recording the lock mode", |o| {
        o.status.as_ref().and_then(|s| s.lock_mode) == Some(LockMode::DynamoDB)
    })
    .await;

    // Straight to Lockfile: refused before any AWS call, and no pass follows until the spec
    // changes (a pass still in flight when the spec changed may finish its reads).
    patch_spec(&fx.api, "tf", json!({"locking": {"mode": "Lockfile"}})).await;
    let obj = wait_for(&fx.api, "tf", Duration::from_secs(60), "refusing DynamoDB -> Lockfile", |o| {
        condition(o, "Ready").is_some_and(|(_, r, _)| r == "UnsafeLockMigration")
    })
    .await;
    let (_, _, message) = condition(&obj, "Ready").expect("Ready");
    assert!(
        message.contains("Both") && message.contains("-md5") && message.contains("Nothing was changed"),
        "{message}"
    );
    assert!(condition(&obj, "Stalled").is_some(), "a refused migration is stalled until the spec changes");
    assert_eq!(obj.status.as_ref().and_then(|s| s.lock_mode), Some(LockMode::DynamoDB));
    let quiet = fx.op.quiescent_calls(Duration::from_secs(1)).await;
    tokio::time::sleep(RESYNC * 3).await;
    let calls = difference(&quiet, &fx.op.ctx.aws.calls().snapshot());
    assert_eq!(totals(&calls).reads + totals(&calls).writes, 0, "a refused migration called AWS: {calls:#?}");
    let data = published(&fx).await;
    assert!(data.contains_key("dynamodb_table"), "the published configuration changed: {data:?}");
    assert_ne!(data.get("use_lockfile").map(String::as_str), Some("true"), "the published configuration changed");
    let sids = grant_sids(&fx.aws, &fx.ns).await;
    assert!(has(&sids, "UseLockTable") && !has(&sids, "ManageLockFiles"), "grants changed: {sids:?}");

    // To Both: converged, published, recorded as a change, both granted.
    patch_spec(&fx.api, "tf", json!({"locking": {"mode": "Both"}})).await;
    let obj = wait_ready(&fx.api, "tf").await;
    assert_eq!(obj.status.as_ref().and_then(|s| s.lock_mode), Some(LockMode::Both));
    let change = obj.status.as_ref().and_then(|s| s.lock_mode_change.clone()).expect("lockModeChange");
    assert_eq!(change.from, LockMode::DynamoDB);
    let to_both = changed_at(&obj);
    let sids = grant_sids(&fx.aws, &fx.ns).await;
    assert!(has(&sids, "UseLockTable") && has(&sids, "ManageLockFiles"), "Both: {sids:?}");
    let data = published(&fx).await;
    assert!(data.contains_key("dynamodb_table") && data["use_lockfile"] == "true", "Both: {data:?}");

    // On to Lockfile at once: DynamoDB-only runs may still be going, so it waits for the
    // window (Reconciling, not Stalled: it ends by itself), says until when, and then happens
    // without another edit. Seen in its Event, which outlives the short window.
    patch_spec(&fx.api, "tf", json!({"locking": {"mode": "Lockfile"}})).await;
    let notes = wait_event(&fx.client, &fx.ns, "LockModeRollout").await;
    let until = to_both + WINDOW;
    assert!(notes.iter().any(|n| n.contains(&format!("until {until}")) && n.contains("by itself")), "{notes:#?}");
    let obj = wait_ready(&fx.api, "tf").await;
    assert_eq!(obj.status.as_ref().and_then(|s| s.lock_mode), Some(LockMode::Lockfile));
    let to_lockfile = changed_at(&obj);
    assert!(to_lockfile >= until, "Lockfile was published at {to_lockfile}, before the window closed at {until}");
    let data = published(&fx).await;
    assert!(!data.contains_key("dynamodb_table") && data["use_lockfile"] == "true", "Lockfile: {data:?}");
    // Runs still on Both lose the table grant when the window closes (that it is kept while
    // open: a_kept_table_stays_granted_only_while_it_is_ours, with a window of an hour).
    wait_grants(&fx, false, true, "after the Lockfile window").await;
    assert!(
        k8s_openapi::jiff::Timestamp::now() >= to_lockfile + WINDOW,
        "the table grant went before the window closed"
    );
    // The lock file is read in Lockfile mode: a lock taken there shows.
    let key = format!("{}.tflock", fx.state_key());
    take_lock_file(&fx.aws, &fx.bucket, &key, &lock_info("lf-id", "runner@lf", &ago(1), &fx.lock_id())).await;
    wait_for(&fx.api, "tf", Duration::from_secs(60), "showing the lock file", |o| {
        o.status
            .as_ref()
            .and_then(|s| s.lock.as_ref())
            .is_some_and(|l| l.held && l.id.as_deref() == Some("lf-id") && l.source == Some(LockSource::Lockfile))
    })
    .await;

    // And straight back to DynamoDB: refused the same way.
    patch_spec(&fx.api, "tf", json!({"locking": {"mode": "DynamoDB"}})).await;
    let obj = wait_for(&fx.api, "tf", Duration::from_secs(60), "refusing Lockfile -> DynamoDB", |o| {
        condition(o, "Ready").is_some_and(|(_, r, _)| r == "UnsafeLockMigration")
    })
    .await;
    assert!(condition(&obj, "Ready").is_some_and(|(_, _, m)| m.contains("Both")));
    assert_eq!(obj.status.as_ref().and_then(|s| s.lock_mode), Some(LockMode::Lockfile));

    // Back the other way, Lockfile -> Both -> DynamoDB. Terraform's digests in the kept table
    // predate what lock-file runners wrote since, and Terraform would refuse the state: the
    // operator deletes this bucket's digest items (every workspace's) before publishing Both,
    // and nothing of another bucket's.
    let table = fx.table();
    let digest = |id: String| {
        let ddb = fx.aws.dynamodb.clone();
        let table = table.clone();
        async move {
            ddb.put_item()
                .table_name(&table)
                .item("LockID", AttributeValue::S(id))
                .item("Digest", AttributeValue::S("0123456789abcdef0123456789abcdef".into()))
                .send()
                .await
                .expect("PutItem of a digest");
        }
    };
    let ours = [format!("{}-md5", fx.lock_id()), format!("{}/env:/dev/{}-md5", fx.bucket, fx.state_key())];
    let theirs = format!("{}-other/team/terraform.tfstate-md5", fx.bucket);
    for id in ours.iter().chain([&theirs]) {
        digest(id.clone()).await;
    }
    let item = async |id: &str| {
        let out = fx.aws.dynamodb.get_item().table_name(&table).key("LockID", AttributeValue::S(id.into()));
        out.consistent_read(true).send().await.expect("GetItem").item().is_some_and(|i| !i.is_empty())
    };
    patch_spec(&fx.api, "tf", json!({"locking": {"mode": "Both"}})).await;
    let obj = wait_ready(&fx.api, "tf").await;
    assert_eq!(obj.status.as_ref().and_then(|s| s.lock_mode), Some(LockMode::Both));
    for id in &ours {
        assert!(!item(id).await, "the stale digest {id} is still in the table");
    }
    assert!(item(&theirs).await, "another bucket's digest item was deleted");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let list = Api::<Event>::namespaced(fx.client.clone(), &fx.ns).list(&ListParams::default()).await;
        let notes: Vec<String> = list.expect("Events").items.into_iter().filter_map(|e| e.note).collect();
        if notes.iter().any(|n| n.contains("deleted 2 Terraform state digest item(s)")) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no Event about the deleted digests: {notes:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sids = grant_sids(&fx.aws, &fx.ns).await;
    assert!(has(&sids, "UseLockTable") && has(&sids, "ManageLockFiles"), "Both: {sids:?}");
    let to_both = changed_at(&obj);
    // A digest written under Both is current: the next passes leave it.
    digest(ours[0].clone()).await;
    passes(&fx.op, 2).await;
    assert!(item(&ours[0]).await, "a digest written after the return to the table was deleted");

    // To DynamoDB: after the Both window, by itself; lock files stay granted one more window.
    patch_spec(&fx.api, "tf", json!({"locking": {"mode": "DynamoDB"}})).await;
    let obj = wait_ready(&fx.api, "tf").await;
    assert_eq!(obj.status.as_ref().and_then(|s| s.lock_mode), Some(LockMode::DynamoDB));
    let change = obj.status.as_ref().and_then(|s| s.lock_mode_change.clone()).expect("lockModeChange");
    assert_eq!(change.from, LockMode::Both);
    let to_dynamodb = changed_at(&obj);
    assert!(to_dynamodb >= to_both + WINDOW, "DynamoDB was published at {to_dynamodb}, inside the Both window");
    wait_grants(&fx, true, false, "after the DynamoDB window").await;
    assert!(k8s_openapi::jiff::Timestamp::now() >= to_dynamodb + WINDOW, "lock files lost their grant in the window");
    // Each narrowing was an update of the operator's own making, never reported as drift.
    wait_note(&fx.client, &fx.ns, "Updated", "roll-out window closed").await;
    let drift = events(&fx.client, &fx.ns, "DriftRepaired").await;
    assert!(drift.is_empty(), "a window's close was reported as drift: {drift:#?}");
    let data = published(&fx).await;
    assert!(data.contains_key("dynamodb_table"), "DynamoDB: {data:?}");
    assert_ne!(data.get("use_lockfile").map(String::as_str), Some("true"), "DynamoDB: {data:?}");
    // Lock-file runs still going in the Both window may have made it stale: cleared once more.
    assert!(!item(&ours[0]).await, "the digest was not cleared at the step from Both (after Lockfile) to DynamoDB");
}

/// Waits (polled, with a deadline) until the backend object is gone: its finalizer ran.
/// Sets `deletionPolicy: Delete`, deletes the backend and waits until its finalizer ran.
async fn delete_with_its_resources(fx: &Fixture) {
    patch_spec(&fx.api, "tf", json!({"deletionPolicy": "Delete"})).await;
    wait_ready(&fx.api, "tf").await;
    fx.api.delete("tf", &Default::default()).await.expect("delete");
    wait_gone(&fx.api, "tf", Duration::from_secs(120)).await;
}

/// `deletionPolicy: Delete` after DynamoDB -> Both -> Lockfile: the lock table, which the mode
/// change kept (runners may still hold locks there during the roll-out), is still this
/// backend's and goes with it. Before, Lockfile mode looked at no table and it leaked.
#[tokio::test]
async fn a_lock_table_kept_from_an_earlier_mode_is_deleted_with_the_backend() {
    let fx = fixture("locks-keep", json!({"mode": "DynamoDB", "staleAfter": "1s"})).await;
    let table = fx.table();
    for mode in ["Both", "Lockfile"] {
        patch_spec(&fx.api, "tf", json!({"locking": {"mode": mode}})).await;
        wait_for(&fx.api, "tf", Duration::from_secs(60), "converged in the new mode", |o| {
            o.status.as_ref().and_then(|s| s.lock_mode).map(|m| format!("{m:?}")) == Some(mode.to_string())
                && condition(o, "Ready").is_some_and(|(s, _, _)| s == "True")
        })
        .await;
    }
    assert!(dynamodb::describe(&fx.aws.dynamodb, &table).await.expect("DescribeTable").is_some(), "kept table gone");
    delete_with_its_resources(&fx).await;
    assert!(
        dynamodb::describe(&fx.aws.dynamodb, &table).await.expect("DescribeTable").is_none(),
        "the lock table kept from DynamoDB mode outlived its backend"
    );
    assert!(!s3::exists(&fx.aws.s3, &fx.bucket).await.expect("HeadBucket"), "the empty bucket was not deleted");
}

/// The same with a custom-named table, and deleted after the roll-out window has closed: the
/// spec no longer names it and passes no longer look at it, but status keeps its ARN, so
/// deletion finds it. Before, deletion looked at the default name only and it leaked.
#[tokio::test]
async fn a_custom_named_table_kept_past_its_window_is_deleted_with_the_backend() {
    let custom = format!("{}-custom", unique_bucket("locks-keepc"));
    let locking = json!({"mode": "Both", "staleAfter": "1s", "table": {"name": custom}});
    let fx = fixture("locks-keepc", locking).await;
    patch_spec(&fx.api, "tf", json!({"locking": {"mode": "Lockfile", "table": null}})).await;
    let obj = wait_ready(&fx.api, "tf").await;
    assert_eq!(obj.status.as_ref().and_then(|s| s.lock_mode), Some(LockMode::Lockfile));
    // The window closed and a pass narrowed the grants: the table is no longer looked at.
    wait_grants(&fx, false, true, "after the Lockfile window").await;
    passes(&fx.op, 1).await;
    let obj = fx.api.get("tf").await.expect("get");
    let arn = obj.status.as_ref().and_then(|s| s.lock_table_arn.clone()).unwrap_or_default();
    assert!(arn.ends_with(&format!(":table/{custom}")), "the kept table was forgotten after its window: {arn:?}");
    assert!(dynamodb::describe(&fx.aws.dynamodb, &custom).await.expect("DescribeTable").is_some(), "kept table gone");
    delete_with_its_resources(&fx).await;
    assert!(
        dynamodb::describe(&fx.aws.dynamodb, &custom).await.expect("DescribeTable").is_none(),
        "the custom-named lock table kept from Both mode outlived its backend"
    );
}

/// Abuse: in Lockfile mode the default table name `<bucket>-lock` is only looked at. A table of
/// that name that is not this backend's (no ownership tags: somebody else's) is never deleted
/// with the backend.
#[tokio::test]
async fn a_table_of_the_default_name_that_is_not_ours_survives_the_deletion() {
    let fx = fixture("locks-foreign", json!({"mode": "Lockfile"})).await;
    let table = fx.table();
    assert!(dynamodb::describe(&fx.aws.dynamodb, &table).await.expect("DescribeTable").is_none());
    dynamodb::create(&fx.aws.dynamodb, &table, None, false, &Default::default()).await.expect("foreign table");
    delete_with_its_resources(&fx).await;
    assert!(
        dynamodb::describe(&fx.aws.dynamodb, &table).await.expect("DescribeTable").is_some(),
        "a table that was not the backend's was deleted with it"
    );
    dynamodb::delete(&fx.aws.dynamodb, &table).await.expect("clean up the foreign table");
}

/// During a roll-out window away from the table (an hour here), the kept table stays granted
/// and remembered by its ARN, a custom name included (the spec no longer names it), and
/// `LockTableReady` says so. Abuse: only while its tags say it is this backend's. Replaced by
/// a table of the same name that is not ours (dropped and created by someone else), it loses
/// the grant at the next pass, window or not, and is not touched.
#[tokio::test]
async fn a_kept_table_stays_granted_only_while_it_is_ours() {
    let bucket_hint = unique_bucket("locks-window");
    let custom = format!("{bucket_hint}-custom");
    let locking = json!({"mode": "Both", "staleAfter": "1h", "table": {"name": custom, "deletionProtection": false}});
    let fx = fixture("locks-window", locking).await;
    patch_spec(&fx.api, "tf", json!({"locking": {"mode": "Lockfile", "table": null}})).await;
    let obj = wait_ready(&fx.api, "tf").await;
    assert_eq!(obj.status.as_ref().and_then(|s| s.lock_mode), Some(LockMode::Lockfile));
    // Passes after the one that published: the window, not the pass's own memory, keeps it.
    passes(&fx.op, 2).await;
    let sids = grant_sids(&fx.aws, &fx.ns).await;
    assert!(sids.iter().any(|s| s == "UseLockTable"), "runs on Both lost the table in the window: {sids:?}");
    let obj = fx.api.get("tf").await.expect("get");
    let arn = obj.status.as_ref().and_then(|s| s.lock_table_arn.clone()).unwrap_or_default();
    assert!(arn.ends_with(&format!(":table/{custom}")), "the kept table was forgotten: {arn:?}");
    let (_, _, message) = condition(&obj, "LockTableReady").expect("LockTableReady");
    assert!(message.contains("may still lock in") && message.contains(&custom), "{message}");

    dynamodb::delete(&fx.aws.dynamodb, &custom).await.expect("drop our table");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while dynamodb::describe(&fx.aws.dynamodb, &custom).await.expect("DescribeTable").is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the table was not deleted within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    dynamodb::create(&fx.aws.dynamodb, &custom, None, false, &Default::default()).await.expect("foreign table");
    let sids = wait_grants(&fx, false, true, "a foreign table of the kept name").await;
    // Still in the window: the lock files stay granted, and the foreign table is not touched.
    assert!(sids.iter().any(|s| s == "ManageLockFiles"), "{sids:?}");
    passes(&fx.op, 2).await;
    let sids = grant_sids(&fx.aws, &fx.ns).await;
    assert!(!sids.iter().any(|s| s == "UseLockTable"), "the foreign table was granted again: {sids:?}");
    assert!(dynamodb::describe(&fx.aws.dynamodb, &custom).await.expect("DescribeTable").is_some());
    dynamodb::delete(&fx.aws.dynamodb, &custom).await.expect("clean up the foreign table");
}

/// The window's close is a due date of its own: with a resync of ten minutes, the grants of
/// the old mode go within seconds of the close, reported as an update.
#[tokio::test]
async fn the_grants_narrow_when_the_window_closes_without_waiting_for_a_resync() {
    let locking = json!({"mode": "Both", "staleAfter": "5s"});
    let fx = fixture_with("locks-close", locking, Duration::from_secs(600)).await;
    patch_spec(&fx.api, "tf", json!({"locking": {"mode": "DynamoDB"}})).await;
    let obj = wait_ready(&fx.api, "tf").await;
    assert_eq!(obj.status.as_ref().and_then(|s| s.lock_mode), Some(LockMode::DynamoDB));
    let closes = changed_at(&obj) + Duration::from_secs(5);
    wait_grants(&fx, true, false, "after the window").await;
    let now = k8s_openapi::jiff::Timestamp::now();
    assert!(now >= closes, "lock files lost their grant at {now}, inside the window (closes {closes})");
    wait_note(&fx.client, &fx.ns, "Updated", "roll-out window closed").await;
    assert!(events(&fx.client, &fx.ns, "DriftRepaired").await.is_empty(), "the close was reported as drift");
}
