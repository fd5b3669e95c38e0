//! The quiet-operator guarantees of DESIGN.md ("Idempotent and quiet"), against the real
//! test ground: a converged backend costs AWS reads only (at most 19 per resync) and writes
//! nothing to Kubernetes (no status patch, no ConfigMap apply, no Event); an invalid spec
//! costs no AWS call at all until it is fixed.
//!
//! Reconciles are counted through `s3:GetBucketTagging`, which observe makes exactly once per
//! reconcile of a backend (it is how a bucket's existence and owner are read); the count is
//! cross-checked against the resync interval, so extra reconciles cannot hide.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use common::harness::Harness;
use common::operator::{condition, patch_spec, unique_bucket, wait_for, wait_reason};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tfstate_operator::api::TerraformStateBackend;
use tfstate_operator::aws::calls::{CallKey, difference, totals};

/// The drift check interval of these tests' operators.
const RESYNC: Duration = Duration::from_secs(1);
/// How many resyncs are watched.
const RESYNCS: u64 = 3;
/// DESIGN.md's budget: 16 reads per converged backend, 17 with access logging, plus one read of
/// the lock per lock source (DynamoDB item, lock file), plus one listing of the state's versions
/// (`status.state`): at most 20 (Both with access logging).
const MAX_READS_PER_RESYNC: f64 = 20.0;
/// The parts whose conditions make up Ready.
const PARTS: [&str; 5] = ["BucketReady", "EncryptionKeyReady", "LockTableReady", "RoleReady", "BackendConfigPublished"];

type Calls = BTreeMap<CallKey, u64>;

/// One test's namespace, operator and inspector clients.
async fn harness(prefix: &str) -> Harness {
    common::harness::harness(prefix, RESYNC).await
}

/// Ready, and every part settled by a check that changed nothing (`Converged`, or
/// `NotRequired` for a part the mode does not use), and nothing in progress.
fn settled(obj: &TerraformStateBackend) -> bool {
    let generation = obj.metadata.generation;
    let current = obj.status.as_ref().is_some_and(|s| s.observed_generation == generation);
    let ready = condition(obj, "Ready").is_some_and(|(s, _, _)| s == "True");
    let parts = PARTS
        .iter()
        .all(|t| condition(obj, t).is_some_and(|(s, r, _)| s == "True" && (r == "Converged" || r == "NotRequired")));
    current && ready && parts && condition(obj, "Reconciling").is_none()
}

async fn wait_settled(h: &Harness, name: &str) {
    wait_for(&h.api, name, Duration::from_secs(60), "Ready and settled", settled).await;
}

/// Creates backend `name`, waits until it is settled, and then checks that it stays quiet.
async fn create_and_check_quiet(h: &Harness, name: &str, spec: Value, label: &str) {
    h.create(name, spec).await;
    wait_settled(h, name).await;
    assert_quiet(h, name, label).await;
}

/// Reconciles made between two snapshots: one `GetBucketTagging` each.
fn reconciles(calls: &Calls) -> u64 {
    calls.iter().filter(|(k, _)| k.service == "s3" && k.operation == "GetBucketTagging").map(|(_, n)| n).sum()
}

/// Every resourceVersion the operator could change: the backend, its ConfigMap, and every
/// Event of the namespace (a repeated Event is patched, so new names are not enough).
async fn kube_versions(h: &Harness, name: &str) -> BTreeMap<String, String> {
    let mut versions = BTreeMap::new();
    let obj = h.api.get(name).await.expect("get backend");
    versions.insert(format!("backend/{name}"), obj.resource_version().unwrap_or_default());
    let cm_name = format!("{name}-backend");
    let cm = Api::<ConfigMap>::namespaced(h.client.clone(), &h.ns).get(&cm_name).await.expect("published ConfigMap");
    versions.insert(format!("configmap/{cm_name}"), cm.resource_version().unwrap_or_default());
    let events = Api::<Event>::namespaced(h.client.clone(), &h.ns).list(&ListParams::default()).await.expect("events");
    for e in events.items {
        versions.insert(format!("event/{}", e.name_any()), e.resource_version().unwrap_or_default());
    }
    versions
}

/// Watches `name` through at least [`RESYNCS`] resyncs and asserts: no AWS write, at most
/// [`MAX_READS_PER_RESYNC`] reads per resync, no more reconciles than resyncs, and no
/// Kubernetes write (backend, ConfigMap and Events untouched).
async fn assert_quiet(h: &Harness, name: &str, label: &str) {
    let kube_before = kube_versions(h, name).await;
    let before = h.op.quiescent_calls(Duration::from_millis(300)).await;
    let started = tokio::time::Instant::now();
    let timeout = RESYNC * (RESYNCS as u32) * 10;
    loop {
        let diff = difference(&before, &h.op.ctx.aws.calls().snapshot());
        if reconciles(&diff) >= RESYNCS && started.elapsed() >= RESYNC * RESYNCS as u32 {
            break;
        }
        assert!(started.elapsed() < timeout, "{label}: fewer than {RESYNCS} resyncs in {timeout:?}: {diff:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = h.op.quiescent_calls(Duration::from_millis(300)).await;
    let elapsed = started.elapsed();
    let diff = difference(&before, &after);
    let n = reconciles(&diff);
    let t = totals(&diff);
    let per_resync = t.reads as f64 / n as f64;
    eprintln!(
        "{label}: {n} resyncs in {elapsed:.1?}: {} AWS reads ({per_resync:.1} per backend per resync), {} writes",
        t.reads, t.writes
    );
    for (k, count) in &diff {
        eprintln!(
            "  {label}: {}:{} {:?} x{count} ({:.1}/resync)",
            k.service,
            k.operation,
            k.outcome,
            *count as f64 / n as f64
        );
    }
    let writes: Vec<_> = diff.iter().filter(|(k, _)| !k.is_read()).collect();
    assert!(writes.is_empty(), "{label}: a converged backend made AWS writes: {writes:#?}");
    assert!(
        per_resync <= MAX_READS_PER_RESYNC,
        "{label}: {per_resync:.1} AWS reads per resync, more than {MAX_READS_PER_RESYNC}: {diff:#?}"
    );
    let scheduled = elapsed.as_secs_f64() / RESYNC.as_secs_f64() + 1.0;
    assert!(n as f64 <= scheduled, "{label}: {n} reconciles in {elapsed:?}, more than the resync interval explains");
    let kube_after = kube_versions(h, name).await;
    assert_eq!(kube_before, kube_after, "{label}: a converged backend wrote to Kubernetes");
}

fn trust() -> Value {
    json!({"trust": {"awsPrincipals": ["arn:aws:iam::123456789012:root"]}})
}

/// KMS (created key) + DynamoDB locking, the defaults: reads only, within budget, and no
/// Kubernetes write over three resyncs.
#[tokio::test]
async fn kms_dynamodb_backend_is_quiet() {
    let h = harness("quiet-kms").await;
    let spec = json!({"bucket": {"name": unique_bucket("quiet-kms")}, "access": trust(), "tags": {"team": "quiet"}});
    create_and_check_quiet(&h, "kms-ddb", spec, "KMS+DynamoDB").await;
}

/// SSE-S3 (AES256) + S3 lock files: no key and no table, so fewer reads; still no write.
#[tokio::test]
async fn aes256_lockfile_backend_is_quiet() {
    let h = harness("quiet-aes").await;
    let spec = json!({
        "bucket": {"name": unique_bucket("quiet-aes")},
        "encryption": {"mode": "AES256"},
        "locking": {"mode": "Lockfile"},
        "access": trust(),
    });
    create_and_check_quiet(&h, "aes-lockfile", spec, "AES256+Lockfile").await;
}

/// KMS + Both lock modes + server access logging into a log bucket created here: the most
/// expensive mode (19 reads: 17 and the two lock reads) stays within budget and writes nothing.
#[tokio::test]
async fn kms_both_with_access_logging_backend_is_quiet() {
    let h = harness("quiet-logs").await;
    let logs = unique_bucket("quiet-logs-target");
    let location = CreateBucketConfiguration::builder()
        .location_constraint(BucketLocationConstraint::from(h.aws.region.as_str()))
        .build();
    h.aws.s3.create_bucket().bucket(&logs).create_bucket_configuration(location).send().await.expect("log bucket");
    let allow_logging = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject",
        "Resource": format!("arn:aws:s3:::{logs}/*")}]});
    h.aws.s3.put_bucket_policy().bucket(&logs).policy(allow_logging.to_string()).send().await.expect("log policy");
    let spec = json!({
        "bucket": {"name": unique_bucket("quiet-both"), "accessLogging": {"targetBucket": logs, "targetPrefix": "tfstate/"}},
        "locking": {"mode": "Both"},
        "access": trust(),
    });
    create_and_check_quiet(&h, "kms-both-logs", spec, "KMS+Both+logging").await;
}

/// An invalid spec (a bucket name with two adjacent dots, which the schema's pattern lets
/// through) makes no AWS call at all, not even STS, and is reported as `InvalidSpec` naming
/// the field, with a Warning Event; the object is not rewritten while it waits; once the spec
/// is fixed the backend converges.
#[tokio::test]
async fn invalid_spec_makes_no_aws_calls_until_fixed() {
    let h = harness("quiet-invalid").await;
    let name = "invalid";
    let bad = format!("bad..{}", unique_bucket("name"));
    h.create(name, json!({"bucket": {"name": bad}, "access": trust()})).await;

    let obj = wait_reason(&h.api, name, "Ready", "InvalidSpec").await;
    for t in std::iter::once("Ready").chain(PARTS) {
        let (status, reason, message) = condition(&obj, t).unwrap_or_else(|| panic!("no {t} condition"));
        assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidSpec"), "{t}: {message}");
        assert!(
            message.contains("spec.bucket.name") && message.contains(&bad),
            "{t} does not name the field: {message}"
        );
    }
    let events = Api::<Event>::namespaced(h.client.clone(), &h.ns).list(&ListParams::default()).await.expect("events");
    let warned = events.items.iter().any(|e| {
        e.reason.as_deref() == Some("InvalidSpec")
            && e.type_.as_deref() == Some("Warning")
            && e.note.as_deref().is_some_and(|n| n.contains("spec.bucket.name"))
    });
    assert!(warned, "no Warning Event InvalidSpec naming spec.bucket.name: {:#?}", events.items);

    // The point here is that nothing happens during these resyncs.
    let version = obj.resource_version();
    tokio::time::sleep(RESYNC * RESYNCS as u32 + Duration::from_millis(500)).await;
    let calls = h.op.ctx.aws.calls().snapshot();
    assert!(calls.is_empty(), "an invalid spec made AWS calls: {calls:#?}");
    let later = h.api.get(name).await.expect("get backend");
    assert_eq!(later.resource_version(), version, "the invalid backend was rewritten while waiting for a fix");

    patch_spec(&h.api, name, json!({"bucket": {"name": unique_bucket("quiet-fixed")}})).await;
    wait_settled(&h, name).await;
    let t = h.op.ctx.aws.calls().totals();
    eprintln!("invalid spec fixed: converged with {} AWS reads and {} writes", t.reads, t.writes);
    assert!(t.writes > 0, "the fixed backend was created without AWS writes?");
}
