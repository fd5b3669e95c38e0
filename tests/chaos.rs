//! Chaos tests against the real test ground: the operator's AWS calls go through the fault
//! proxy (`scripts/faults/`), which throttles, fails, resets, delays and hangs them, or plays
//! AWS's eventual consistency; the Kubernetes API server and etcd are stopped and restarted
//! under the operator's feet. Whatever happens, every backend ends Ready with exactly one of
//! each AWS resource, and never reports a Conflict it does not have.
//!
//! AWS is read back through the emulator's direct endpoint (`inspector`), never through the
//! proxy. The proxy's rules are global to the ground, so these tests run one at a time
//! ([`serial`]). Waits are polled conditions with deadlines; the only fixed sleeps are the
//! storms and outages themselves.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::faults::Faults;
use common::operator::{Operator, condition, inspector, is_ready, start_operator_with, wait_for};
use common::{Ground, install_crd, random_suffix, test_namespace};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tfstate_operator::api::TerraformStateBackend;
use tfstate_operator::aws::calls::{difference, totals};
use tfstate_operator::aws::{AwsClients, AwsSettings, CallLimits, dynamodb, iam, kms, s3};
use tokio::time::Instant;

/// The ownership tag every AWS resource of a backend carries.
const OWNER_UID: &str = "tfstate.dev/owner-uid";

/// The parts whose conditions make up Ready.
const PARTS: [&str; 5] = ["BucketReady", "EncryptionKeyReady", "LockTableReady", "RoleReady", "BackendConfigPublished"];

/// One chaos test at a time: they share the proxy's rules and the API server.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Short deadlines, so that a call that hangs costs seconds, not the SDK's default 10 s.
fn limits(attempt_s: u64, operation_s: u64, max_attempts: u32) -> CallLimits {
    CallLimits {
        attempt_timeout: Duration::from_secs(attempt_s),
        operation_timeout: Duration::from_secs(operation_s),
        max_attempts,
    }
}

/// One test: ground, namespace, fault proxy (reset), inspector clients, and a unique run id
/// that prefixes every AWS name.
struct Chaos {
    ground: Ground,
    client: Client,
    ns: String,
    api: Api<TerraformStateBackend>,
    faults: Faults,
    aws: AwsClients,
    run: String,
}

impl Chaos {
    async fn new(prefix: &str) -> Chaos {
        let ground = Ground::load();
        let client = ground.kube().await;
        install_crd(&client).await;
        let ns = test_namespace(&client, prefix).await;
        let faults = Faults::from_ground(&ground);
        faults.reset();
        let api = Api::namespaced(client.clone(), &ns);
        let aws = inspector(&ground).await;
        Chaos { run: format!("{prefix}-{}", random_suffix()), ground, client, ns, api, faults, aws }
    }

    /// The operator for this namespace through the fault endpoint, with `limits`.
    async fn operator(&self, resync: Duration, limits: CallLimits) -> Operator {
        let settings = AwsSettings { limits, ..self.ground.faulty_aws_settings() };
        start_operator_with(&self.ground, &self.ns, resync, settings).await
    }

    /// Backend `i`'s object name and AWS names (bucket; table `<bucket>-lock`; role).
    fn names(&self, i: usize) -> (String, String, String) {
        (format!("b{i}"), format!("{}-{i}", self.run), format!("tfstate-{}-{i}", self.run))
    }

    /// Creates backends `0..n` (default key, DynamoDB locking, a role): their UIDs by name.
    async fn create(&self, n: usize) -> BTreeMap<String, String> {
        let mut uids = BTreeMap::new();
        for i in 0..n {
            let (name, bucket, role) = self.names(i);
            let obj: TerraformStateBackend = serde_json::from_value(json!({
                "apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStateBackend",
                "metadata": {"name": name},
                "spec": {
                    "bucket": {"name": bucket},
                    "access": {"roleName": role, "trust": {"awsPrincipals": ["arn:aws:iam::123456789012:root"]}},
                },
            }))
            .expect("test backend");
            let created = self.api.create(&PostParams::default(), &obj).await.expect("create backend");
            uids.insert(name, created.uid().expect("uid"));
        }
        uids
    }

    /// Waits until every backend of `uids` is Ready, all within `timeout`; returns when each
    /// was first seen Ready (from the start of the wait).
    async fn wait_all_ready(&self, uids: &BTreeMap<String, String>, timeout: Duration) -> BTreeMap<String, Duration> {
        let start = Instant::now();
        let mut ready_at = BTreeMap::new();
        while ready_at.len() < uids.len() {
            let list = self.api.list(&ListParams::default()).await;
            if let Ok(list) = list {
                for obj in list.items.iter().filter(|o| is_ready(o)) {
                    ready_at.entry(obj.name_any()).or_insert_with(|| start.elapsed());
                }
            }
            if start.elapsed() > timeout {
                let mut report = String::new();
                for name in uids.keys().filter(|n| !ready_at.contains_key(*n)) {
                    let obj = self.api.get_opt(name).await.ok().flatten();
                    let conds: Vec<_> = obj
                        .and_then(|o| o.status)
                        .map(|s| s.conditions)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
                        .collect();
                    report.push_str(&format!("\n  {name}: {conds:#?}"));
                }
                panic!("not Ready within {timeout:?} ({} of {} are):{report}", ready_at.len(), uids.len());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        ready_at
    }

    /// Waits until every backend is settled: Ready, every part `Converged`/`NotRequired`,
    /// nothing in progress (the state in which a resync must write nothing).
    async fn wait_all_settled(&self, uids: &BTreeMap<String, String>, timeout: Duration) {
        for name in uids.keys() {
            wait_for(&self.api, name, timeout, "settled", settled).await;
        }
    }

    /// Asserts exactly one KMS key, bucket, lock table and role per backend, each tagged with
    /// its UID, and none owned by a UID of this test beyond those.
    async fn assert_one_of_everything(&self, uids: &BTreeMap<String, String>) {
        let wrong = self.not_one_of_everything(uids).await;
        assert!(wrong.is_empty(), "not exactly one of everything:\n{}", wrong.join("\n"));
        eprintln!("{}: {} backends, exactly one key, bucket, table and role each", self.ns, uids.len());
    }

    /// What is not exactly one key, bucket, lock table and role per backend (empty: all is).
    async fn not_one_of_everything(&self, uids: &BTreeMap<String, String>) -> Vec<String> {
        let keys = keys_by_owner(&self.aws).await;
        let buckets = buckets_by_owner(&self.aws, &self.run).await;
        let tables = tables_by_owner(&self.aws, &self.run).await;
        let roles = roles_by_owner(&self.aws, &format!("tfstate-{}", self.run)).await;
        let mut wrong = Vec::new();
        for (name, uid) in uids {
            for (what, found) in
                [("KMS keys", &keys), ("buckets", &buckets), ("lock tables", &tables), ("roles", &roles)]
            {
                let n = found.get(uid).map_or(0, Vec::len);
                if n != 1 {
                    wrong.push(format!("{name} owns {n} {what}: {:?}", found.get(uid)));
                }
            }
        }
        wrong
    }

    /// Waits (30 s at most) until the proxy holds a call by a `hang` rule; `never` says what
    /// did not happen otherwise.
    async fn wait_until_a_call_hangs(&self, never: &str) {
        let started = Instant::now();
        while self.faults.stats()["hanging"].as_u64().unwrap_or(0) == 0 {
            assert!(started.elapsed() < Duration::from_secs(30), "{never}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// resourceVersion of every backend, ConfigMap and Event of the namespace.
    async fn kube_versions(&self) -> BTreeMap<String, String> {
        let mut versions = BTreeMap::new();
        for o in self.api.list(&ListParams::default()).await.expect("list backends").items {
            versions.insert(format!("backend/{}", o.name_any()), o.resource_version().unwrap_or_default());
        }
        let cms = Api::<ConfigMap>::namespaced(self.client.clone(), &self.ns);
        for o in cms.list(&ListParams::default()).await.expect("list ConfigMaps").items {
            versions.insert(format!("configmap/{}", o.name_any()), o.resource_version().unwrap_or_default());
        }
        let events = Api::<Event>::namespaced(self.client.clone(), &self.ns);
        for o in events.list(&ListParams::default()).await.expect("list Events").items {
            versions.insert(format!("event/{}", o.name_any()), o.resource_version().unwrap_or_default());
        }
        versions
    }

    /// What changed in Kubernetes between two [`Chaos::kube_versions`] (empty: nothing), with
    /// the conditions of each changed backend and the reason and note of each changed Event,
    /// so that a failed quiet check says which write it saw.
    async fn kube_changes(&self, before: &BTreeMap<String, String>) -> Vec<String> {
        let after = self.kube_versions().await;
        let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        let mut changes = Vec::new();
        for key in keys.into_iter().filter(|k| before.get(*k) != after.get(*k)) {
            let mut line = format!("{key}: {:?} -> {:?}", before.get(key), after.get(key));
            if let Some(name) = key.strip_prefix("backend/")
                && let Ok(o) = self.api.get(name).await
            {
                for c in o.status.iter().flat_map(|s| &s.conditions) {
                    line.push_str(&format!("\n    {} {} {}: {}", c.type_, c.status, c.reason, c.message));
                }
            }
            if let Some(name) = key.strip_prefix("event/")
                && let Ok(e) = Api::<Event>::namespaced(self.client.clone(), &self.ns).get(name).await
            {
                line.push_str(&format!(
                    "\n    {:?} {:?}: {:?} (series {:?})",
                    e.type_,
                    e.reason,
                    e.note,
                    e.series.map(|s| s.count)
                ));
            }
            changes.push(line);
        }
        changes
    }
}

/// Ready, every part settled by a check that changed nothing, nothing in progress, and the
/// lock read without a note (a first read that failed is said until a read succeeds).
fn settled(o: &TerraformStateBackend) -> bool {
    let lock_read = o.status.as_ref().and_then(|s| s.lock.as_ref()).is_none_or(|l| l.message.is_none());
    lock_read
        && is_ready(o)
        && PARTS
            .iter()
            .all(|t| condition(o, t).is_some_and(|(s, r, _)| s == "True" && (r == "Converged" || r == "NotRequired")))
        && condition(o, "Reconciling").is_none()
}

/// (backend, condition type, reason, message) of every condition seen.
type Seen = BTreeSet<(String, String, String, String)>;

/// Every (backend, condition type, reason, message) seen in the namespace, polled every
/// 200 ms in the background from creation on, so that a Conflict written and repaired
/// between two of the test's own reads is still seen.
struct ReasonLog {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl ReasonLog {
    fn start(api: &Api<TerraformStateBackend>) -> ReasonLog {
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let (api, log) = (api.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                // The API server may be down (restart test): keep polling.
                if let Ok(list) = api.list(&ListParams::default()).await {
                    let mut log = log.lock().unwrap();
                    for o in &list.items {
                        for c in o.status.iter().flat_map(|s| &s.conditions) {
                            log.insert((o.name_any(), c.type_.clone(), c.reason.clone(), c.message.clone()));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        ReasonLog { seen, task }
    }

    /// Entries whose reason is `reason` (for `name`, or any backend).
    fn with_reason(&self, reason: &str, name: Option<&str>) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(n, _, r, _)| r == reason && name.is_none_or(|want| n == want))
            .map(|(n, t, r, m)| format!("{n}: {t} {r}: {m}"))
            .collect()
    }

    /// Every distinct reason seen.
    fn reasons(&self) -> BTreeSet<String> {
        self.seen.lock().unwrap().iter().map(|(_, _, r, _)| r.clone()).collect()
    }
}

impl Drop for ReasonLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Owned = HashMap<String, Vec<String>>;

/// KMS keys not pending deletion, by owner UID (one pass over the account's keys).
async fn keys_by_owner(aws: &AwsClients) -> Owned {
    let mut owned = Owned::new();
    let mut pages = aws.kms.list_keys().into_paginator().send();
    while let Some(page) = pages.next().await {
        for entry in page.expect("ListKeys").keys() {
            let Some(id) = entry.key_id() else { continue };
            let tags = aws.kms.list_resource_tags().key_id(id).send().await.expect("ListResourceTags");
            let Some(uid) = tags.tags().iter().find(|t| t.tag_key() == OWNER_UID).map(|t| t.tag_value().to_string())
            else {
                continue;
            };
            let meta = aws.kms.describe_key().key_id(id).send().await.expect("DescribeKey");
            let pending =
                meta.key_metadata().and_then(|m| m.key_state()).is_some_and(|s| s.as_str() == "PendingDeletion");
            if !pending {
                owned.entry(uid).or_default().push(id.to_string());
            }
        }
    }
    owned
}

/// Buckets named `<prefix>...`, by owner UID.
async fn buckets_by_owner(aws: &AwsClients, prefix: &str) -> Owned {
    let mut owned = Owned::new();
    let out = aws.s3.list_buckets().send().await.expect("ListBuckets");
    for b in out.buckets() {
        let Some(name) = b.name().filter(|n| n.starts_with(prefix)) else { continue };
        let tags = s3::get_tags(&aws.s3, name).await.expect("GetBucketTagging").unwrap_or_default();
        if let Some(uid) = tags.get(OWNER_UID) {
            owned.entry(uid.clone()).or_default().push(name.to_string());
        }
    }
    owned
}

/// DynamoDB tables named `<prefix>...`, by owner UID.
async fn tables_by_owner(aws: &AwsClients, prefix: &str) -> Owned {
    let mut owned = Owned::new();
    let mut pages = aws.dynamodb.list_tables().into_paginator().items().send();
    while let Some(name) = pages.next().await {
        let name = name.expect("ListTables");
        if !name.starts_with(prefix) {
            continue;
        }
        let info = dynamodb::describe(&aws.dynamodb, &name).await.expect("DescribeTable").expect("listed table");
        let tags = aws.dynamodb.list_tags_of_resource().resource_arn(&info.arn).send().await.expect("tags");
        if let Some(uid) = tags.tags().iter().find(|t| t.key() == OWNER_UID) {
            owned.entry(uid.value().to_string()).or_default().push(name);
        }
    }
    owned
}

/// IAM roles named `<prefix>...`, by owner UID.
async fn roles_by_owner(aws: &AwsClients, prefix: &str) -> Owned {
    let mut owned = Owned::new();
    let mut pages = aws.iam.list_roles().into_paginator().items().send();
    while let Some(role) = pages.next().await {
        let role = role.expect("ListRoles");
        if !role.role_name().starts_with(prefix) {
            continue;
        }
        let info = iam::get_role(&aws.iam, role.role_name()).await.expect("GetRole").expect("listed role");
        if let Some(uid) = info.tags.get(OWNER_UID) {
            owned.entry(uid.clone()).or_default().push(role.role_name().to_string());
        }
    }
    owned
}

/// Injections of the proxy so far, for the log.
fn print_stats(label: &str, faults: &Faults) -> Value {
    let stats = faults.stats();
    eprintln!(
        "{label}: proxy saw {} requests, injected {} faults: {}",
        stats["total_requests"], stats["total_injected"], stats["injected"]
    );
    stats
}

/// (a) 20 backends created while 20% of every service's calls fail (throttle, 500, 503,
/// connection reset, 2 s latency) and 1% hang: all Ready, one of everything each, never a
/// Conflict; once the faults are gone, three resyncs write nothing to AWS or Kubernetes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_of_transient_faults_converges_to_one_of_everything() {
    let _serial = serial().await;
    let t = Chaos::new("chaos-a").await;
    t.faults.set_rules(json!({"seed": 20260901, "rules": [
        {"service": "*", "fault": "hang", "probability": 0.01},
        {"service": "*", "fault": ["throttle", "error500", "unavailable", "reset", "latency"], "probability": 0.2,
         "latency_ms": 2000},
    ]}));
    let resync = Duration::from_secs(3);
    // Attempts of 4 s: the 2 s latency passes, a hang costs 4 s.
    let op = t.operator(resync, limits(4, 20, 3)).await;
    let log = ReasonLog::start(&t.api);
    let uids = t.create(20).await;
    let ready = t.wait_all_ready(&uids, Duration::from_secs(150)).await;
    eprintln!("chaos-a: all Ready; slowest after {:?}", ready.values().max());
    let stats = print_stats("chaos-a", &t.faults);
    t.faults.clear_rules();
    assert!(stats["total_injected"].as_u64().unwrap_or(0) >= 20, "the storm injected too little to mean anything");
    let conflicts = log.with_reason("Conflict", None);
    assert!(conflicts.is_empty(), "transient faults were reported as Conflict:\n{}", conflicts.join("\n"));
    t.assert_one_of_everything(&uids).await;

    // Quiet once converged: three resyncs of every backend, no AWS write, no Kubernetes write.
    // Counted from a moment no pass runs: a pass still retrying a call from the storm may
    // end in a failure it reports, which is not a write of a converged backend.
    op.wait_until_no_pass_in_flight(Duration::from_secs(60)).await;
    t.wait_all_settled(&uids, Duration::from_secs(60)).await;
    let kube_before = t.kube_versions().await;
    let before = op.ctx.aws.calls().snapshot();
    let started = Instant::now();
    let wanted = 3 * uids.len() as u64;
    loop {
        let diff = difference(&before, &op.ctx.aws.calls().snapshot());
        let reconciles: u64 =
            diff.iter().filter(|(k, _)| k.service == "s3" && k.operation == "GetBucketTagging").map(|(_, n)| n).sum();
        if reconciles >= wanted && started.elapsed() >= resync * 3 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "fewer than {wanted} resyncs in 90 s: {diff:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let diff = difference(&before, &op.ctx.aws.calls().snapshot());
    let writes: Vec<_> = diff.iter().filter(|(k, _)| !k.is_read()).collect();
    eprintln!("chaos-a: quiet period {:?}: {:?}", started.elapsed(), totals(&diff));
    assert!(writes.is_empty(), "converged backends made AWS writes after the storm: {writes:#?}");
    let changes = t.kube_changes(&kube_before).await;
    assert!(changes.is_empty(), "converged backends wrote to Kubernetes after the storm:\n{}", changes.join("\n"));
    let conflicts = log.with_reason("Conflict", None);
    assert!(conflicts.is_empty(), "Conflict reported:\n{}", conflicts.join("\n"));
}

/// (b) AWS's eventual consistency on creation: a new bucket answers NoSuchBucket for 2 s,
/// bucket configuration writes are held 300 ms and a concurrent one is refused with
/// OperationAborted, and KMS refuses a key policy naming a role younger than 3 s. Every
/// backend becomes Ready, without a Conflict, with one key each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventual_consistency_on_creation_converges_without_conflict() {
    let _serial = serial().await;
    let t = Chaos::new("chaos-b").await;
    t.faults.set_consistency(json!({
        "bucket_missing_after_create_s": 2.0, "operation_aborted_hold_ms": 300, "kms_role_propagation_s": 3.0,
    }));
    let _op = t.operator(Duration::from_secs(600), limits(5, 20, 3)).await;
    let log = ReasonLog::start(&t.api);
    let uids = t.create(5).await;
    let ready = t.wait_all_ready(&uids, Duration::from_secs(120)).await;
    eprintln!("chaos-b: all Ready; slowest after {:?}", ready.values().max());
    let stats = print_stats("chaos-b", &t.faults);
    t.faults.clear_consistency();
    let conflicts = log.with_reason("Conflict", None);
    assert!(conflicts.is_empty(), "eventual consistency was reported as Conflict:\n{}", conflicts.join("\n"));
    // Stale reads right after the operator's own writes are not drift either.
    let drift = log.with_reason("DriftRepaired", None);
    assert!(drift.is_empty(), "eventual consistency was reported as drift:\n{}", drift.join("\n"));
    let injected = &stats["injected"];
    let missing: u64 = injected
        .as_object()
        .map(|m| m.iter().filter(|(k, _)| k.ends_with(":bucket_missing")).filter_map(|(_, v)| v.as_u64()).sum())
        .unwrap_or(0);
    assert!(missing > 0, "no call ever met a bucket still missing after CreateBucket: the test proved nothing");
    t.assert_one_of_everything(&uids).await;
}

/// (c) S3 refuses every call for 30 s over converged backends: they say `AccessDenied`
/// (not Conflict) while it lasts, and are Ready again on their own once it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_storm_is_reported_as_such_and_heals() {
    let _serial = serial().await;
    let t = Chaos::new("chaos-c").await;
    let _op = t.operator(Duration::from_secs(3), limits(5, 20, 3)).await;
    let uids = t.create(3).await;
    t.wait_all_ready(&uids, Duration::from_secs(90)).await;
    let log = ReasonLog::start(&t.api);

    t.faults.set_rules(json!([{"service": "s3", "fault": "access_denied"}]));
    let storm = Instant::now();
    let mut denied = BTreeSet::new();
    while denied.len() < uids.len() && storm.elapsed() < Duration::from_secs(30) {
        for name in uids.keys() {
            if !log.with_reason("AccessDenied", Some(name)).is_empty() {
                denied.insert(name.clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reported_after = storm.elapsed();
    // The storm lasts its 30 s whatever the operator does: the sleep is the scenario.
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(storm.elapsed())).await;
    let during = log.reasons();
    let conflicts = log.with_reason("Conflict", None);
    print_stats("chaos-c", &t.faults);
    t.faults.clear_rules();
    eprintln!(
        "chaos-c: reasons seen during the storm: {during:?}; {} of {} reported AccessDenied (looked for {reported_after:?})",
        denied.len(),
        uids.len()
    );
    assert!(conflicts.is_empty(), "AccessDenied was reported as Conflict:\n{}", conflicts.join("\n"));
    let missing: Vec<_> = uids.keys().filter(|n| !denied.contains(*n)).collect();
    assert!(missing.is_empty(), "never reported AccessDenied during a 30 s S3 AccessDenied storm: {missing:?}");

    let healed = t.wait_all_ready(&uids, Duration::from_secs(60)).await;
    eprintln!("chaos-c: Ready again {:?} after the storm", healed.values().max());
    t.assert_one_of_everything(&uids).await;
}

/// (d) etcd stopped for a few seconds, then kube-apiserver restarted, while backends are
/// being created: the same in-process operator reconnects and converges, one of
/// everything each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_and_etcd_outage_during_creation_converges() {
    let _serial = serial().await;
    let t = Chaos::new("chaos-d").await;
    let _op = t.operator(Duration::from_secs(600), limits(5, 20, 3)).await;
    let log = ReasonLog::start(&t.api);
    let uids = t.create(6).await;
    // In the middle of the creations: the first AWS calls are out, nothing is Ready yet.
    wait_for(&t.api, "b0", Duration::from_secs(30), "reconciling", |o| o.status.is_some()).await;
    let before = t.api.list(&ListParams::default()).await.expect("list backends").items;
    let ready_before = before.iter().filter(|o| is_ready(o)).count();
    assert!(ready_before < uids.len(), "all {ready_before} backends were Ready before the outage: it tested nothing");
    let outage = Instant::now();
    tokio::task::block_in_place(|| t.ground.ctl("stop", "etcd"));
    tokio::time::sleep(Duration::from_secs(4)).await; // the outage itself
    tokio::task::block_in_place(|| t.ground.ctl("start", "etcd"));
    tokio::task::block_in_place(|| t.ground.ctl("restart", "kube-apiserver"));
    eprintln!(
        "chaos-d: {ready_before} of {} Ready when etcd stopped for 4 s, then kube-apiserver restarted; back after {:?}",
        uids.len(),
        outage.elapsed()
    );
    // The test's own client reconnects too (hyper opens a new connection).
    let ready = t.wait_all_ready(&uids, Duration::from_secs(120)).await;
    eprintln!("chaos-d: all Ready {:?} after the API server came back", ready.values().max());
    let conflicts = log.with_reason("Conflict", None);
    assert!(conflicts.is_empty(), "Conflict reported:\n{}", conflicts.join("\n"));
    t.assert_one_of_everything(&uids).await;
}

/// (d2) The AWS emulator restarted while backends are being created: it comes back EMPTY
/// (moto keeps its state in memory), as if every bucket, key, table and role had been deleted
/// behind the operator's back, and every connection is reset. The operator, without a restart
/// of its own, recreates what each backend lost at its next pass (in-flight passes fail and
/// back off; converged ones notice at their resync): in the end exactly one of everything
/// again, every backend Ready, no Conflict, and then quiet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emulator_restart_that_loses_everything_is_recreated_once() {
    let _serial = serial().await;
    let t = Chaos::new("chaos-d2").await;
    let resync = Duration::from_secs(5);
    let op = t.operator(resync, limits(5, 20, 3)).await;
    let log = ReasonLog::start(&t.api);
    let uids = t.create(6).await;
    // Some are Ready (their resources will vanish), some still being created.
    wait_for(&t.api, "b0", Duration::from_secs(60), "Ready", is_ready).await;
    let ready_before =
        t.api.list(&ListParams::default()).await.expect("list").items.iter().filter(|o| is_ready(o)).count();
    let mut known_keys = Vec::new();
    for o in t.api.list(&ListParams::default()).await.expect("list").items {
        known_keys.extend(o.status.and_then(|s| s.kms_key_arn));
    }
    assert!(!known_keys.is_empty(), "no key was created before the restart: it tested nothing");
    let restart = Instant::now();
    tokio::task::block_in_place(|| t.ground.ctl("restart", "moto"));
    // The keys of before are gone (new ones get new IDs, so this holds whatever the operator
    // recreates meanwhile).
    for key in &known_keys {
        let found = tfstate_operator::aws::kms::describe_key(&t.aws.kms, key).await.expect("DescribeKey");
        assert!(found.is_none(), "moto came back with key {key}: the restart tested nothing");
    }
    eprintln!(
        "chaos-d2: {ready_before} of {} Ready when moto restarted (back empty after {:?})",
        uids.len(),
        restart.elapsed()
    );

    // Recreated, once each: polled until AWS shows it (a converged backend notices at its resync).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let wrong = t.not_one_of_everything(&uids).await;
        if wrong.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "120 s after the restart, not one of everything:\n{}", wrong.join("\n"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    t.wait_all_ready(&uids, Duration::from_secs(60)).await;
    eprintln!("chaos-d2: everything recreated, all Ready {:?} after the restart", restart.elapsed());
    // Each backend's status names what exists now, not what was lost.
    for name in uids.keys() {
        let status = t.api.get(name).await.expect("get").status.expect("status");
        let key = status.kms_key_arn.clone().expect("kmsKeyArn");
        let described = tfstate_operator::aws::kms::describe_key(&t.aws.kms, &key).await.expect("DescribeKey");
        assert!(described.is_some(), "{name}: status.kmsKeyArn {key} is the lost key");
    }
    let conflicts = log.with_reason("Conflict", None);
    assert!(conflicts.is_empty(), "Conflict reported:\n{}", conflicts.join("\n"));

    // And quiet again: a resync of every backend makes no AWS write.
    t.wait_all_settled(&uids, Duration::from_secs(60)).await;
    let before = op.ctx.aws.calls().snapshot();
    let quiet = Instant::now();
    loop {
        let diff = difference(&before, &op.ctx.aws.calls().snapshot());
        let passes: u64 =
            diff.iter().filter(|(k, _)| k.service == "s3" && k.operation == "GetBucketTagging").map(|(_, n)| n).sum();
        if passes >= 2 * uids.len() as u64 {
            let writes: Vec<_> = diff.iter().filter(|(k, _)| !k.is_read()).collect();
            assert!(writes.is_empty(), "AWS writes after everything was recreated: {writes:#?}");
            break;
        }
        assert!(quiet.elapsed() < Duration::from_secs(60), "fewer than two resyncs each in 60 s: {diff:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// (e) One call never answers (PutBucketVersioning of one bucket): that backend reports the
/// timeout as an AwsError and is Ready after its retry; the backends created with it are
/// Ready long before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_never_answers_delays_only_its_backend() {
    let _serial = serial().await;
    let t = Chaos::new("chaos-e").await;
    let (hung, hung_bucket, _) = t.names(0);
    t.faults.set_rules(json!([
        {"service": "s3", "operation": "PutBucketVersioning", "bucket": hung_bucket, "fault": "hang", "count": 1},
    ]));
    // One attempt of 3 s: the hang fails the operation (no SDK retry hides it).
    let _op = t.operator(Duration::from_secs(600), limits(3, 3, 1)).await;
    let log = ReasonLog::start(&t.api);
    let uids = t.create(5).await;
    let ready = t.wait_all_ready(&uids, Duration::from_secs(90)).await;
    let stats = print_stats("chaos-e", &t.faults);
    t.faults.clear_rules();
    eprintln!("chaos-e: Ready after {ready:?}");
    assert_eq!(stats["injected"]["s3:PutBucketVersioning:hang"], json!(1), "the hang happened once");
    assert_eq!(stats["hanging"], json!(0), "the operator gave the hanging call up");
    let errors = log.with_reason("AwsError", Some(&hung));
    assert!(
        !errors.is_empty(),
        "{hung} never reported the call that did not answer; reasons seen: {:?}",
        log.reasons()
    );
    eprintln!("chaos-e: {hung} reported: {errors:#?}");
    let others = ready.iter().filter(|(n, _)| **n != hung).map(|(_, at)| *at).max().expect("other backends");
    let hung_at = ready[&hung];
    assert!(
        hung_at > others + Duration::from_secs(2),
        "{hung} (hung call) Ready after {hung_at:?}, not well after the others ({others:?})"
    );
    t.assert_one_of_everything(&uids).await;
}

/// (f) The abuse side of (c): a bucket name that S3 refuses to describe and that is not
/// among the account's own buckets *is* someone else's: it stays a `Conflict` (never
/// AccessDenied, never created, nothing granted on it) — and once the name is released, the
/// next resync creates it without an edit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_bucket_stays_a_conflict_until_the_name_is_released() {
    let _serial = serial().await;
    let t = Chaos::new("chaos-f").await;
    let (name, bucket, _) = t.names(0);
    // Another account's bucket, as S3 shows it to us: its tags are refused, and it is not ours.
    t.faults.set_rules(
        json!([{"service": "s3", "operation": "GetBucketTagging", "bucket": bucket, "fault": "access_denied"}]),
    );
    let _op = t.operator(Duration::from_secs(3), limits(5, 20, 3)).await;
    let log = ReasonLog::start(&t.api);
    let uids = t.create(1).await;
    let obj = wait_for(&t.api, &name, Duration::from_secs(60), "BucketReady Conflict", |o| {
        condition(o, "BucketReady").is_some_and(|(_, r, _)| r == "Conflict")
    })
    .await;
    let (_, _, message) = condition(&obj, "BucketReady").expect("BucketReady");
    assert!(message.contains("another AWS account"), "{message}");
    // Re-checked at each resync (3 s), and still a Conflict: wait for two more looks.
    let before = t.faults.stats()["requests"]["s3:ListBuckets"].as_u64().unwrap_or(0);
    let started = Instant::now();
    while t.faults.stats()["requests"]["s3:ListBuckets"].as_u64().unwrap_or(0) < before + 2 {
        assert!(started.elapsed() < Duration::from_secs(30), "the Conflict was not re-checked at the resync interval");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = t.faults.stats();
    assert_eq!(stats["requests"]["s3:CreateBucket"], Value::Null, "the operator tried to create a taken name");
    assert!(!s3::exists(&t.aws.s3, &bucket).await.expect("HeadBucket"), "a bucket was created");
    assert!(log.with_reason("AccessDenied", Some(&name)).is_empty(), "a foreign bucket was reported as AccessDenied");
    let role = t.api.get(&name).await.expect("get").status.and_then(|s| s.role_arn);
    let (_, _, role_name) = t.names(0);
    let inline = iam::get_inline_policy(&t.aws.iam, &role_name, "tfstate-backend").await.expect("GetRolePolicy");
    let inline = inline.map(|p| percent_encoding::percent_decode_str(&p).decode_utf8_lossy().into_owned());
    assert!(
        inline.as_deref().is_none_or(|p| !p.contains(&format!("s3:::{bucket}"))),
        "role {role:?} was granted the foreign bucket: {inline:?}"
    );

    // The name is released (here: S3 stops refusing): healed at the next resync, no edit.
    t.faults.clear_rules();
    let healed = t.wait_all_ready(&uids, Duration::from_secs(60)).await;
    eprintln!("chaos-f: Ready {:?} after the name was released", healed.values().max());
    t.assert_one_of_everything(&uids).await;
}

/// (g) Status is memory: a spec change whose first pass fails (PutBucketLifecycleConfiguration
/// answers 500 to every attempt) keeps `observedGeneration` and every ARN, and when a later
/// pass completes it, it is reported as `Updated` — never as `DriftRepaired`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_change_finished_after_a_failure_is_an_update_not_drift() {
    let _serial = serial().await;
    let t = Chaos::new("chaos-g").await;
    let _op = t.operator(Duration::from_secs(600), limits(5, 20, 3)).await;
    let uids = t.create(1).await;
    let (name, _, _) = t.names(0);
    t.wait_all_settled(&uids, Duration::from_secs(90)).await;
    let before = t.api.get(&name).await.expect("get").status.expect("status");
    let log = ReasonLog::start(&t.api);

    // Every attempt of the first pass fails (3 attempts), the next pass's succeed.
    t.faults.set_rules(
        json!([{"service": "s3", "operation": "PutBucketLifecycleConfiguration", "fault": "error500", "count": 3}]),
    );
    let patched =
        common::operator::patch_spec(&t.api, &name, json!({"bucket": {"noncurrentVersionExpirationDays": 30}})).await;
    let generation = patched.metadata.generation;
    let failed = wait_for(&t.api, &name, Duration::from_secs(60), "BucketReady AwsError", |o| {
        condition(o, "BucketReady").is_some_and(|(_, r, _)| r == "AwsError")
    })
    .await;
    let s = failed.status.expect("status");
    assert_eq!(s.observed_generation, before.observed_generation, "a failed pass settled the new generation");
    assert_ne!(s.observed_generation, generation);
    assert_eq!(
        (&s.kms_key_arn, &s.role_arn, &s.lock_table_arn, &s.bucket_arn),
        (&before.kms_key_arn, &before.role_arn, &before.lock_table_arn, &before.bucket_arn),
        "a failing pass dropped what status knew"
    );
    let done = wait_for(&t.api, &name, Duration::from_secs(60), "BucketReady Updated", |o| {
        condition(o, "BucketReady").is_some_and(|(_, r, _)| r == "Updated")
    })
    .await;
    assert_eq!(done.status.and_then(|s| s.observed_generation), generation);
    t.wait_all_settled(&uids, Duration::from_secs(60)).await;
    assert_eq!(t.faults.stats()["injected"]["s3:PutBucketLifecycleConfiguration:error500"], json!(3));
    let drift = log.with_reason("DriftRepaired", None);
    assert!(drift.is_empty(), "a spec change was reported as drift:\n{}", drift.join("\n"));
    let events = Api::<Event>::namespaced(t.client.clone(), &t.ns);
    let repaired: Vec<_> = events
        .list(&ListParams::default())
        .await
        .expect("list Events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("DriftRepaired"))
        .collect();
    assert!(repaired.is_empty(), "DriftRepaired Events: {repaired:#?}");
}

/// (h) The work done, the answer lost: CreateKey, CreateBucket, CreateRole and CreateTable
/// each reach AWS and then lose their answer (the connection is reset). Retrying a
/// non-idempotent create would make a duplicate; every backend still ends with exactly one
/// key, bucket, table and role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_lost_after_creates_leave_no_duplicates() {
    let _serial = serial().await;
    let t = Chaos::new("chaos-h").await;
    let lost = |service: &str, operation: &str| json!({"service": service, "operation": operation, "fault": "lost_answer", "count": 2});
    t.faults.set_rules(json!([
        lost("kms", "CreateKey"),
        lost("s3", "CreateBucket"),
        lost("iam", "CreateRole"),
        lost("dynamodb", "CreateTable"),
    ]));
    let _op = t.operator(Duration::from_secs(600), limits(5, 20, 3)).await;
    let log = ReasonLog::start(&t.api);
    let uids = t.create(3).await;
    let ready = t.wait_all_ready(&uids, Duration::from_secs(120)).await;
    eprintln!("chaos-h: all Ready; slowest after {:?}", ready.values().max());
    let stats = print_stats("chaos-h", &t.faults);
    t.faults.clear_rules();
    for op in ["kms:CreateKey", "s3:CreateBucket", "iam:CreateRole", "dynamodb:CreateTable"] {
        assert_eq!(stats["injected"][format!("{op}:lost_answer")], json!(2), "{op}: the answer was never lost");
    }
    let conflicts = log.with_reason("Conflict", None);
    assert!(conflicts.is_empty(), "a lost answer was reported as Conflict:\n{}", conflicts.join("\n"));
    t.assert_one_of_everything(&uids).await;
}

/// (i) Two objects race for one bucket name, and S3 holds the first one's CreateBucket (it
/// hangs) until the second has claimed the name: the second must then own the bucket *and*
/// the lock table named after it, and be Ready; once the held call is let go (reset, and
/// retried), the first owns neither and is a Conflict. Before the table waited for the
/// bucket's claim, the first created the table while its CreateBucket was on the way, and
/// each object held one name, both stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_racer_that_loses_the_bucket_creates_no_lock_table() {
    let _serial = serial().await;
    let t = Chaos::new("chaos-i").await;
    let bucket = format!("{}-raced", t.run);
    t.faults.set_rules(json!([{"service": "s3", "operation": "CreateBucket", "bucket": bucket, "fault": "hang",
                                "count": 1}]));
    // Attempts of 60 s: the held CreateBucket waits for the test, not for a timeout.
    let _op = t.operator(Duration::from_secs(3), limits(60, 90, 3)).await;
    let api = &t.api;
    let create = |name: &str| {
        let obj: TerraformStateBackend = serde_json::from_value(json!({
            "apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStateBackend",
            "metadata": {"name": name},
            "spec": {
                "bucket": {"name": bucket},
                "access": {"roleName": format!("tfstate-{}-{name}", t.run),
                           "trust": {"awsPrincipals": ["arn:aws:iam::123456789012:root"]}},
            },
        }))
        .expect("test backend");
        async move { api.create(&PostParams::default(), &obj).await.expect("create backend").uid().expect("uid") }
    };
    let first = create("first").await;
    t.wait_until_a_call_hangs("the first object's CreateBucket was never held").await;
    let second = create("second").await;
    let won = wait_for(&t.api, "second", Duration::from_secs(60), "Ready", is_ready).await;
    let stats = print_stats("chaos-i", &t.faults);
    t.faults.clear_rules();
    let lost = wait_for(&t.api, "first", Duration::from_secs(60), "BucketReady Conflict", |o| {
        condition(o, "BucketReady").is_some_and(|(_, r, _)| r == "Conflict")
    })
    .await;
    assert_eq!(stats["injected"]["s3:CreateBucket:hang"], json!(1), "the first CreateBucket was not held");
    let (buckets, tables) = (buckets_by_owner(&t.aws, &t.run).await, tables_by_owner(&t.aws, &t.run).await);
    assert_eq!(buckets.get(&second), Some(&vec![bucket.clone()]), "the bucket's owner: {buckets:?}");
    assert_eq!(tables.get(&second), Some(&vec![format!("{bucket}-lock")]), "the table's owner: {tables:?}");
    assert!(!buckets.contains_key(&first) && !tables.contains_key(&first), "the loser holds a name: {tables:?}");
    assert!(!is_ready(&lost), "the loser is Ready: {:?}", lost.status);
    let table = condition(&lost, "LockTableReady").expect("LockTableReady");
    assert_ne!(table.0, "True", "the loser's lock table part: {table:?}");
    assert_eq!(won.status.and_then(|s| s.lock_table_arn).map(|a| a.ends_with(&format!("/{bucket}-lock"))), Some(true));
    t.assert_one_of_everything(&BTreeMap::from([("second".to_string(), second)])).await;
}

/// (j) The abuse side of restoring a deleted alias: while the operator points its key's
/// alias back (CreateAlias held by the proxy), another key takes the alias name. The
/// operator's CreateAlias then fails with AlreadyExists, and it must not move the alias
/// off that live key (UpdateAlias would take it from its owner); the backend reports the
/// alias's key as a Conflict instead, keeps its own key's ARN, and heals with that key once
/// the name is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_taken_meanwhile_is_never_moved_off_its_key() {
    let _serial = serial().await;
    let t = Chaos::new("chaos-j").await;
    let _op = t.operator(Duration::from_secs(3), limits(60, 90, 3)).await;
    let uids = t.create(1).await;
    let (name, _, _) = t.names(0);
    t.wait_all_settled(&uids, Duration::from_secs(60)).await;
    let alias = format!("alias/tfstate-{}-{name}", t.ns);
    let ours = t.api.get(&name).await.expect("get").status.and_then(|s| s.kms_key_arn).expect("kmsKeyArn");

    t.faults.set_rules(json!([{"service": "kms", "operation": "CreateAlias", "fault": "hang", "count": 1}]));
    t.aws.kms.delete_alias().alias_name(&alias).send().await.expect("DeleteAlias");
    t.wait_until_a_call_hangs("the operator never restored the alias").await;
    let other = t.aws.kms.create_key().description("another key").send().await.expect("CreateKey");
    let other = other.key_metadata().map(|m| m.arn().unwrap_or_default().to_string()).expect("key metadata");
    t.aws.kms.create_alias().alias_name(&alias).target_key_id(&other).send().await.expect("CreateAlias");
    print_stats("chaos-j", &t.faults);
    t.faults.clear_rules();

    let obj = wait_for(&t.api, &name, Duration::from_secs(60), "EncryptionKeyReady Conflict", |o| {
        condition(o, "EncryptionKeyReady").is_some_and(|(_, r, _)| r == "Conflict")
    })
    .await;
    let target = kms::describe_key(&t.aws.kms, &alias).await.expect("DescribeKey").map(|k| k.arn);
    assert_eq!(target.as_deref(), Some(other.as_str()), "the alias was moved off the key that took it");
    assert_eq!(obj.status.and_then(|s| s.kms_key_arn).as_deref(), Some(ours.as_str()), "status forgot its key");

    // The name is released: the backend heals with its own key (found by the ARN status
    // kept), never a second one while state may be encrypted with the first.
    t.aws.kms.delete_alias().alias_name(&alias).send().await.expect("DeleteAlias");
    let healed = t.wait_all_ready(&uids, Duration::from_secs(60)).await;
    eprintln!("chaos-j: Ready {:?} after the alias was released", healed.values().max());
    let target = kms::describe_key(&t.aws.kms, &alias).await.expect("DescribeKey").map(|k| k.arn);
    assert_eq!(target.as_deref(), Some(ours.as_str()), "the alias does not name the backend's own key");
    t.assert_one_of_everything(&uids).await;
}

/// (k) A lock read that fails only for now (every GetItem of the lock item throttled, each
/// pass's three attempts) leaves `status.lock` as last read and writes nothing to the
/// object; a failure that lasts (AccessDenied) is said in `status.lock.message`, and goes
/// once the read succeeds again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_read_throttled_for_now_writes_no_status() {
    let _serial = serial().await;
    let t = Chaos::new("chaos-k").await;
    let op = t.operator(Duration::from_secs(2), limits(5, 20, 3)).await;
    let uids = t.create(1).await;
    let (name, _, _) = t.names(0);
    t.wait_all_settled(&uids, Duration::from_secs(60)).await;
    let before = t.api.get(&name).await.expect("get");
    let lock = before.status.as_ref().and_then(|s| s.lock.clone());
    assert!(lock.as_ref().is_some_and(|l| !l.held && l.message.is_none()), "{lock:?}");

    t.faults.set_rules(json!([{"service": "dynamodb", "operation": "GetItem", "fault": "throttle"}]));
    let throttled = || t.faults.stats()["injected"]["dynamodb:GetItem:throttle"].as_u64().unwrap_or(0);
    let started = Instant::now();
    // Two passes' worth of attempts, and the pass of the last one finished.
    while throttled() < 6 {
        assert!(started.elapsed() < Duration::from_secs(30), "the lock was not read twice in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    op.wait_until_no_pass_in_flight(Duration::from_secs(30)).await;
    let after = t.api.get(&name).await.expect("get");
    assert_eq!(after.status.as_ref().and_then(|s| s.lock.clone()), lock, "status.lock changed on a throttled read");
    assert_eq!(after.resource_version(), before.resource_version(), "a throttled lock read wrote the object");

    t.faults.set_rules(json!([{"service": "dynamodb", "operation": "GetItem", "fault": "access_denied"}]));
    let denied = wait_for(&t.api, &name, Duration::from_secs(30), "status.lock says AccessDenied", |o| {
        o.status
            .as_ref()
            .and_then(|s| s.lock.as_ref())
            .and_then(|l| l.message.as_deref())
            .is_some_and(|m| m.contains("could not be read") && m.contains("AccessDenied") && m.contains("GetItem"))
    })
    .await;
    eprintln!("chaos-k: {:?}", denied.status.and_then(|s| s.lock));
    t.faults.clear_rules();
    t.wait_all_settled(&uids, Duration::from_secs(30)).await;
}

/// (l) An untagged lock table that another object adopts between this pass's look at it and
/// its write of the tags: the adopting pass looks at the tags once more right before
/// writing them, leaves the table to the object that tagged it first, and is a Conflict whose
/// runners were never granted the table. (The bucket's creation is held for 4 s: the pass
/// looked at the table before, and writes its tags after.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_adopted_by_another_meanwhile_is_left_to_it() {
    let _serial = serial().await;
    let t = Chaos::new("chaos-l").await;
    let (name, bucket, role) = t.names(0);
    let table = format!("{bucket}-lock");
    dynamodb::create(&t.aws.dynamodb, &table, None, false, &Default::default()).await.expect("CreateTable");
    let arn = dynamodb::describe(&t.aws.dynamodb, &table).await.expect("DescribeTable").expect("the table").arn;
    t.faults.set_rules(json!([{"service": "s3", "operation": "CreateBucket", "bucket": bucket,
        "fault": "latency", "latency_ms": 4000, "count": 1}]));
    let _op = t.operator(Duration::from_secs(3), limits(60, 90, 3)).await;
    let obj: TerraformStateBackend = serde_json::from_value(json!({
        "apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStateBackend",
        "metadata": {"name": name},
        "spec": {
            "bucket": {"name": bucket}, "adoptExisting": true,
            "access": {"roleName": role, "trust": {"awsPrincipals": ["arn:aws:iam::123456789012:root"]}},
        },
    }))
    .expect("test backend");
    t.api.create(&PostParams::default(), &obj).await.expect("create backend");

    let held = || t.faults.stats()["injected"]["s3:CreateBucket:latency"].as_u64().unwrap_or(0);
    let started = Instant::now();
    while held() == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the bucket was not created within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The rival's claim lands while the bucket's creation is held.
    let rival =
        tfstate_operator::aws::Tags::from([(OWNER_UID.to_string(), "00000000-0000-4000-8000-00000000beef".into())]);
    dynamodb::sync_tags(&t.aws.dynamodb, &arn, &Default::default(), &rival).await.expect("TagResource");
    print_stats("chaos-l", &t.faults);

    let obj = wait_for(&t.api, &name, Duration::from_secs(60), "LockTableReady Conflict", |o| {
        condition(o, "LockTableReady").is_some_and(|(_, r, _)| r == "Conflict")
    })
    .await;
    let (_, _, message) = condition(&obj, "LockTableReady").expect("LockTableReady");
    assert!(message.contains("another TerraformStateBackend"), "{message}");
    let tags = dynamodb::get_tags(&t.aws.dynamodb, &arn).await.expect("ListTagsOfResource");
    assert_eq!(tags, rival, "the rival's claim was overwritten");
    let inline = iam::get_inline_policy(&t.aws.iam, &role, "tfstate-backend").await.expect("GetRolePolicy");
    assert!(!inline.unwrap_or_default().contains(&format!("table/{table}")), "the runners were granted the table");
    t.faults.clear_rules();
}
