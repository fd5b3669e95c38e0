//! Drift repair against the real test ground: after a backend is Ready, each managed setting
//! is damaged out of band (with independent SDK clients, as a person with console access
//! would), and the operator must put it back at its next check, say so in the part's
//! condition (`DriftRepaired`, naming the change) and in an Event.
//!
//! Conditions are recorded by a watch, not polled: the operator's own status write makes it
//! look again at once, so `DriftRepaired` may be replaced by `Converged` within milliseconds.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::types::{
    BucketVersioningStatus, PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging, VersioningConfiguration,
};
use common::operator::{Operator, condition, inspector, start_operator, unique_bucket, wait_for, wait_ready};
use common::{Ground, install_crd, test_namespace};
use futures::StreamExt;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::{Value, json};
use tfstate_operator::api::TerraformStateBackend;
use tfstate_operator::aws::AwsClients;
use tfstate_operator::reconcile::desired::{INLINE_POLICY_NAME, TAG_OWNER};

/// The drift check interval of these tests' operators.
const RESYNC: Duration = Duration::from_secs(2);
/// The next check comes within one resync plus the reconcile's own time; with slack for a
/// loaded machine, a repair that takes longer than this was not made at the next check.
const NEXT_CHECK: Duration = Duration::from_secs(RESYNC.as_secs() * 2 + 1);
/// How long to keep looking for a repair or a report before declaring it missing.
const REPAIR_TIMEOUT: Duration = Duration::from_secs(10);
/// The backend's name in each test's namespace.
const NAME: &str = "drift";
/// The parts whose conditions make up Ready.
const PARTS: [&str; 5] = ["BucketReady", "EncryptionKeyReady", "LockTableReady", "RoleReady", "BackendConfigPublished"];

/// One test's namespace, operator, inspector clients and condition recorder.
struct Harness {
    client: Client,
    ns: String,
    api: Api<TerraformStateBackend>,
    aws: AwsClients,
    /// Every condition of the backend seen by the watch.
    seen: Arc<Mutex<Vec<Seen>>>,
    /// What went wrong so far (reported at the end of the test).
    problems: Mutex<Vec<String>>,
    watch: tokio::task::JoinHandle<()>,
    _op: Operator,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

/// A condition as the watch delivered it.
#[derive(Clone, Debug)]
struct Seen {
    at: tokio::time::Instant,
    type_: String,
    reason: String,
    message: String,
}

/// Starts an operator in a fresh namespace, creates backend `drift` with `spec`, and waits
/// until it is Ready and every part has settled (`Converged`/`NotRequired`).
async fn ready_backend(prefix: &str, spec: Value) -> (Harness, TerraformStateBackend) {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, prefix).await;
    let op = start_operator(&ground, &ns, RESYNC).await;
    let api: Api<TerraformStateBackend> = Api::namespaced(client.clone(), &ns);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let watch = tokio::spawn(record_conditions(api.clone(), seen.clone()));
    let h =
        Harness { client, ns, api, aws: inspector(&ground).await, seen, problems: Mutex::default(), watch, _op: op };
    let obj: TerraformStateBackend = serde_json::from_value(json!({
        "apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStateBackend",
        "metadata": {"name": NAME}, "spec": spec,
    }))
    .expect("test backend");
    h.api.create(&PostParams::default(), &obj).await.expect("create backend");
    wait_ready(&h.api, NAME).await;
    let obj = wait_for(&h.api, NAME, Duration::from_secs(30), "settled", settled).await;
    (h, obj)
}

/// Records the backend's conditions as the watch delivers them.
async fn record_conditions(api: Api<TerraformStateBackend>, seen: Arc<Mutex<Vec<Seen>>>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
    let mut stream = watcher(api, config).applied_objects().boxed();
    while let Some(next) = stream.next().await {
        let Ok(obj) = next else { continue };
        let conditions = obj.status.map(|s| s.conditions).unwrap_or_default();
        let at = tokio::time::Instant::now();
        let mut seen = seen.lock().unwrap();
        seen.extend(conditions.into_iter().map(|c| Seen { at, type_: c.type_, reason: c.reason, message: c.message }));
    }
}

/// Every part is True and settled: nothing was changed by the last check.
fn settled(obj: &TerraformStateBackend) -> bool {
    PARTS
        .iter()
        .all(|t| condition(obj, t).is_some_and(|(s, r, _)| s == "True" && (r == "Converged" || r == "NotRequired")))
}

/// The number of `DriftRepaired` Events about the backend whose note names `change`
/// (an Event repeated as a series counts each occurrence).
async fn drift_events(h: &Harness, change: &str) -> i32 {
    let events: Api<Event> = Api::namespaced(h.client.clone(), &h.ns);
    let list = events.list(&ListParams::default()).await.expect("list events");
    list.items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("DriftRepaired"))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(NAME))
        .filter(|e| e.note.as_deref().is_some_and(|n| n.contains(change)))
        .map(|e| e.series.as_ref().map_or(1, |s| s.count))
        .sum()
}

/// (reason, note, occurrences) of every Event about the backend, for failure messages.
async fn event_notes(h: &Harness) -> Vec<(String, String, i32)> {
    let events: Api<Event> = Api::namespaced(h.client.clone(), &h.ns);
    let list = events.list(&ListParams::default()).await.expect("list events");
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(NAME))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default(), e.series.map_or(1, |s| s.count)))
        .collect()
}

/// Damages the backend with `damage`, then waits until `repaired` reads AWS back as
/// repaired, condition `part` went through `DriftRepaired` with a message naming `change`,
/// a new `DriftRepaired` Event names `change`, and finally the backend is settled again.
/// What does not happen is recorded in `h.problems` (so that one run reports every damage).
async fn damage_and_expect_repair(
    h: &Harness,
    part: &str,
    change: &str,
    damage: impl AsyncFnOnce(),
    repaired: impl AsyncFn() -> bool,
) {
    let events_before = drift_events(h, change).await;
    h.seen.lock().unwrap().clear();
    damage().await;
    let started = tokio::time::Instant::now();
    let (mut repaired_after, mut condition_ok, mut event_ok) = (None, false, false);
    while started.elapsed() < REPAIR_TIMEOUT {
        if repaired_after.is_none() && repaired().await {
            repaired_after = Some(started.elapsed());
        }
        condition_ok = condition_ok || drift_reported(&h.seen.lock().unwrap(), part, change).is_some();
        event_ok = event_ok || drift_events(h, change).await > events_before;
        if repaired_after.is_some() && condition_ok && event_ok {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen: Vec<_> = h.seen.lock().unwrap().iter().filter(|c| c.type_ == part).cloned().collect();
    let mut problems = Vec::new();
    match repaired_after {
        None => problems.push(format!("{change}: AWS not repaired within {REPAIR_TIMEOUT:?}; {part}: {seen:#?}")),
        Some(d) if d > NEXT_CHECK => problems.push(format!("{change}: repaired after {d:?}, not at the next check")),
        Some(_) => {}
    }
    if !condition_ok {
        problems.push(format!("{change}: {part} never became DriftRepaired naming it; seen: {seen:#?}"));
    }
    if !event_ok {
        problems.push(format!("{change}: no new DriftRepaired Event naming it; Events: {:#?}", event_notes(h).await));
    }
    let visible = drift_reported(&seen, part, change).map(|v| format!("{v:?}")).unwrap_or_else(|| "-".into());
    eprintln!(
        "{change}: {} (AWS repaired after {repaired_after:?}; {part}=DriftRepaired visible for {visible})",
        if problems.is_empty() { "repaired and reported" } else { "FAILED" },
    );
    h.problems.lock().unwrap().extend(problems);
    // The next damage must start from a settled backend.
    let deadline = tokio::time::Instant::now() + REPAIR_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if h.api.get(NAME).await.is_ok_and(|o| settled(&o)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    h.problems.lock().unwrap().push(format!("{change}: the backend did not settle again within {REPAIR_TIMEOUT:?}"));
}

/// Whether `part` was seen as `DriftRepaired` naming `change`; if so, for how long it stayed
/// so (until the watch delivered another reason; to now if it did not).
fn drift_reported(seen: &[Seen], part: &str, change: &str) -> Option<Duration> {
    let mut of_part = seen.iter().filter(|c| c.type_ == part);
    let first = of_part.by_ref().find(|c| c.reason == "DriftRepaired" && c.message.contains(change))?;
    let until = of_part.find(|c| c.reason != "DriftRepaired").map_or_else(tokio::time::Instant::now, |c| c.at);
    Some(until - first.at)
}

/// Fails the test with every problem recorded.
fn assert_no_problems(h: &Harness) {
    let problems = h.problems.lock().unwrap();
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

/// The JSON of an IAM or S3 policy document (IAM returns it URL-encoded).
fn policy_json(text: &str) -> Value {
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8().expect("UTF-8 policy");
    serde_json::from_str(&decoded).unwrap_or_else(|e| panic!("policy is not JSON ({e}): {decoded}"))
}

async fn bucket_policy(aws: &AwsClients, bucket: &str) -> Option<Value> {
    let out = aws.s3.get_bucket_policy().bucket(bucket).send().await.ok()?;
    out.policy().map(policy_json)
}

fn spec(bucket: &str) -> Value {
    json!({
        "bucket": {"name": bucket},
        "access": {"trust": {"awsPrincipals": ["arn:aws:iam::123456789012:root"]}},
        "tags": {"team": "payments"},
    })
}

/// Default encryption switched to AES256, one public access block flag turned off,
/// versioning suspended and a user tag removed are each put back and reported.
#[tokio::test]
async fn bucket_settings_drift_is_repaired_and_reported() {
    let bucket = unique_bucket("drift-settings");
    let (h, obj) = ready_backend("drift-settings", spec(&bucket)).await;
    let key_arn = obj.status.and_then(|s| s.kms_key_arn).expect("status.kmsKeyArn");
    let (s3, b) = (&h.aws.s3, bucket.as_str());

    let aes256 = ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256).build().unwrap();
    let rule = ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(aes256).build();
    let conf = ServerSideEncryptionConfiguration::builder().rules(rule).build().unwrap();
    let damage = async || {
        s3.put_bucket_encryption().bucket(b).server_side_encryption_configuration(conf).send().await.unwrap();
    };
    let repaired = async || {
        let out = s3.get_bucket_encryption().bucket(b).send().await.unwrap();
        let rule = out.server_side_encryption_configuration().unwrap().rules()[0].clone();
        let by_default = rule.apply_server_side_encryption_by_default().unwrap();
        by_default.sse_algorithm() == &ServerSideEncryption::AwsKms
            && by_default.kms_master_key_id() == Some(key_arn.as_str())
            && rule.bucket_key_enabled() == Some(true)
    };
    damage_and_expect_repair(&h, "BucketReady", "PutEncryption", damage, repaired).await;

    let open = PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(false)
        .restrict_public_buckets(true)
        .build();
    let damage = async || {
        s3.put_public_access_block().bucket(b).public_access_block_configuration(open).send().await.unwrap();
    };
    let repaired = async || {
        let out = s3.get_public_access_block().bucket(b).send().await.unwrap();
        let p = out.public_access_block_configuration().unwrap();
        [p.block_public_acls(), p.ignore_public_acls(), p.block_public_policy(), p.restrict_public_buckets()]
            .iter()
            .all(|f| *f == Some(true))
    };
    damage_and_expect_repair(&h, "BucketReady", "PutPublicAccessBlock", damage, repaired).await;

    let suspended = VersioningConfiguration::builder().status(BucketVersioningStatus::Suspended).build();
    let damage = async || {
        s3.put_bucket_versioning().bucket(b).versioning_configuration(suspended).send().await.unwrap();
    };
    let repaired = async || {
        let out = s3.get_bucket_versioning().bucket(b).send().await.unwrap();
        out.status() == Some(&BucketVersioningStatus::Enabled)
    };
    damage_and_expect_repair(&h, "BucketReady", "EnableVersioning", damage, repaired).await;

    let damage = async || {
        let tags = s3.get_bucket_tagging().bucket(b).send().await.unwrap();
        let kept: Vec<Tag> = tags.tag_set().iter().filter(|t| t.key() != "team").cloned().collect();
        let tagging = Tagging::builder().set_tag_set(Some(kept)).build().unwrap();
        s3.put_bucket_tagging().bucket(b).tagging(tagging).send().await.unwrap();
    };
    let repaired = async || {
        let out = s3.get_bucket_tagging().bucket(b).send().await.unwrap();
        out.tag_set().iter().any(|t| t.key() == "team" && t.value() == "payments")
    };
    damage_and_expect_repair(&h, "BucketReady", "PutTags", damage, repaired).await;
    assert_no_problems(&h);
}

/// A deleted bucket policy, and separately one replaced by a weaker policy (TLS only, no
/// encryption denials), are both put back exactly as they were.
#[tokio::test]
async fn bucket_policy_drift_is_repaired_and_reported() {
    let bucket = unique_bucket("drift-policy");
    let (h, _) = ready_backend("drift-policy", spec(&bucket)).await;
    let (s3, b) = (&h.aws.s3, bucket.as_str());
    let original = bucket_policy(&h.aws, b).await.expect("the operator's bucket policy");
    let sids: Vec<&str> = original["Statement"].as_array().unwrap().iter().filter_map(|s| s["Sid"].as_str()).collect();
    assert!(sids.contains(&"DenyWrongKmsKey"), "unexpected policy: {original}");

    let damage = async || {
        s3.delete_bucket_policy().bucket(b).send().await.unwrap();
    };
    let repaired = async || bucket_policy(&h.aws, b).await.as_ref() == Some(&original);
    damage_and_expect_repair(&h, "BucketReady", "PutPolicy", damage, repaired).await;

    let mut weaker = original.clone();
    weaker["Statement"].as_array_mut().unwrap().retain(|s| s["Sid"] == "DenyInsecureTransport");
    let damage = async || {
        s3.put_bucket_policy().bucket(b).policy(weaker.to_string()).send().await.unwrap();
    };
    damage_and_expect_repair(&h, "BucketReady", "PutPolicy", damage, repaired).await;
    assert_no_problems(&h);
}

/// Key rotation disabled, lock table PITR disabled, an ownership tag removed from the lock
/// table, and the role's inline policy replaced by a broader one are each put back.
#[tokio::test]
async fn key_table_and_role_drift_is_repaired_and_reported() {
    let bucket = unique_bucket("drift-others");
    let (h, obj) = ready_backend("drift-others", spec(&bucket)).await;
    let status = obj.status.expect("status");
    let key_arn = status.kms_key_arn.expect("status.kmsKeyArn");
    let table_arn = status.lock_table_arn.expect("status.lockTableArn");
    let table = table_arn.rsplit('/').next().unwrap().to_string();
    let role = status.role_arn.expect("status.roleArn").rsplit('/').next().unwrap().to_string();
    let (kms, ddb, iam) = (&h.aws.kms, &h.aws.dynamodb, &h.aws.iam);

    let damage = async || {
        kms.disable_key_rotation().key_id(&key_arn).send().await.unwrap();
    };
    let repaired = async || kms.get_key_rotation_status().key_id(&key_arn).send().await.unwrap().key_rotation_enabled();
    damage_and_expect_repair(&h, "EncryptionKeyReady", "EnableRotation", damage, repaired).await;

    let pitr = |on| {
        aws_sdk_dynamodb::types::PointInTimeRecoverySpecification::builder()
            .point_in_time_recovery_enabled(on)
            .build()
            .unwrap()
    };
    let damage = async || {
        ddb.update_continuous_backups()
            .table_name(&table)
            .point_in_time_recovery_specification(pitr(false))
            .send()
            .await
            .unwrap();
    };
    let repaired = async || {
        let out = ddb.describe_continuous_backups().table_name(&table).send().await.unwrap();
        let status = out.continuous_backups_description().and_then(|d| d.point_in_time_recovery_description());
        status.and_then(|p| p.point_in_time_recovery_status()).is_some_and(|s| s.as_str() == "ENABLED")
    };
    damage_and_expect_repair(&h, "LockTableReady", "SetPitr(true)", damage, repaired).await;

    let damage = async || {
        ddb.untag_resource().resource_arn(&table_arn).tag_keys(TAG_OWNER).send().await.unwrap();
    };
    let repaired = async || {
        let out = ddb.list_tags_of_resource().resource_arn(&table_arn).send().await.unwrap();
        out.tags().iter().any(|t| t.key() == TAG_OWNER && t.value() == format!("{}/{NAME}", h.ns))
    };
    damage_and_expect_repair(&h, "LockTableReady", "SyncTags", damage, repaired).await;

    let inline = async || {
        let out = iam.get_role_policy().role_name(&role).policy_name(INLINE_POLICY_NAME).send().await.unwrap();
        policy_json(out.policy_document())
    };
    let original = inline().await;
    let broader = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:*", "dynamodb:*", "kms:*"], "Resource": "*"}]});
    let damage = async || {
        let put = iam.put_role_policy().role_name(&role).policy_name(INLINE_POLICY_NAME);
        put.policy_document(broader.to_string()).send().await.unwrap();
    };
    let repaired = async || inline().await == original;
    damage_and_expect_repair(&h, "RoleReady", "PutInlinePolicy", damage, repaired).await;
    assert_no_problems(&h);
}
