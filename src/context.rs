//! What every reconcile shares: clients, configuration, identity, back-off state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::OnceCell;

use crate::aws::{AwsClientFactory, AwsClients, AwsError};
use crate::failpoint::Failpoints;
use crate::metrics::Metrics;
use crate::policy::principal_arn_for_policy;
use crate::reconcile::desired::Identity;
use crate::reconcile::outcome::{Backoff, Requeue, backoff_delay, resync_delay};
use crate::reconcile::validate::OperatorDefaults;
use crate::slots::ResyncSlots;

/// The operator's settings that reconciles need (from flags, read once at start-up).
#[derive(Clone, Debug)]
pub struct ReconcileConfig {
    /// Region of backends that name none.
    pub defaults: OperatorDefaults,
    /// Custom AWS endpoint, rendered into the published `endpoints`.
    pub endpoint_url: Option<String>,
    /// Drift check interval: each object is looked at once per interval, at its own slot
    /// within it (see [`resync_delay`]), so that resyncs are spread evenly.
    pub resync_interval: Duration,
    /// How soon to look again after a pass wrote something (to verify it and settle the
    /// status), or while AWS finishes something (a table becoming ACTIVE).
    pub verify_delay: Duration,
    /// The longest one pass may take (`--reconcile-timeout`).
    pub reconcile_timeout: Duration,
    /// This replica's name (its Pod), reported as the Events' reporting instance.
    pub instance: Option<String>,
}

/// Shared by every reconcile.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// AWS clients and call counters.
    pub aws: AwsClientFactory,
    /// Settings.
    pub config: ReconcileConfig,
    /// Who publishes the Events (see [`Context::recorder`]).
    pub reporter: Reporter,
    /// Crash-test fail points.
    pub failpoints: Failpoints,
    /// Prometheus metrics.
    pub metrics: std::sync::Arc<Metrics>,
    /// The cluster policies and namespace labels that admission judges specs by.
    pub admission: crate::admission::PolicyCache,
    /// What `/readyz` answers: fed by the watches.
    pub health: Arc<crate::health::Health>,
    /// Who the operator is, per assumed role (`None`: its own credentials).
    identities: Mutex<HashMap<Option<String>, Arc<OnceCell<Identity>>>>,
    failures: Mutex<HashMap<String, u32>>,
    /// The existing backends, ranked: their slots in the resync interval.
    resync_slots: Mutex<ResyncSlots>,
    /// The state bucket and lock table each backend's status records as its own (adoption
    /// asks it).
    recorded: Mutex<crate::claims::RecordedClaims>,
    /// Per published ConfigMap (`namespace/name`), the digest of what the last pass wanted
    /// in it ([`config_map_digest`]).
    own_config_map_writes: Mutex<HashMap<String, u64>>,
    /// What the ConfigMap watch last showed of each published ConfigMap (publishing asks
    /// it before reading one from the API server).
    watched_config_maps: Mutex<crate::config_maps::WatchedConfigMaps>,
}

/// The digest of what publishing decides on: the data and the owners' UIDs. A ConfigMap
/// event with the digest of the last publication needs no pass (it would find nothing to
/// change); any other one, a foreign edit, does. Keyed at random once per process: a
/// tenant who writes both a spec and a ConfigMap cannot search offline for other data of
/// the same digest, which would then pass for what the operator published.
pub fn config_map_digest<'a>(
    data: &std::collections::BTreeMap<String, String>,
    owner_uids: impl IntoIterator<Item = &'a str>,
) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    static KEY: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    let mut h = KEY.get_or_init(std::hash::RandomState::new).build_hasher();
    data.hash(&mut h);
    for uid in owner_uids {
        uid.hash(&mut h);
    }
    h.finish()
}

impl Context {
    /// A new context.
    pub fn new(client: Client, aws: AwsClientFactory, config: ReconcileConfig, failpoints: Failpoints) -> Self {
        let reporter = Reporter { controller: "tfstate-operator".into(), instance: config.instance.clone() };
        let metrics = Arc::new(Metrics::new(aws.calls().family().clone()));
        Self {
            health: Arc::new(crate::health::Health::new(metrics.clone())),
            metrics,
            reporter,
            client,
            aws,
            config,
            failpoints,
            admission: Default::default(),
            identities: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            resync_slots: Mutex::default(),
            recorded: Mutex::default(),
            own_config_map_writes: Mutex::new(HashMap::new()),
            watched_config_maps: Mutex::default(),
        }
    }

    /// A fresh Event recorder. kube-runtime's recorder folds every later Event of the
    /// same type, reason and object into the first one (count + 1, first note kept), which
    /// would hide each repair after the first; Events are only published when something
    /// changed, so each gets its own.
    pub fn recorder(&self) -> Recorder {
        Recorder::new(self.client.clone(), self.reporter.clone())
    }

    /// Who the operator is in AWS when it uses `aws`: its own identity, or that of the role
    /// `aws` acts as ([`AwsClients::assumed_role`]). STS GetCallerIdentity, asked once per
    /// process and identity (the answer does not depend on the region or the session).
    /// One small entry per role ever used, never dropped: a few hundred bytes each.
    pub async fn identity(&self, aws: &AwsClients) -> Result<Identity, AwsError> {
        let cell = {
            let mut identities = self.identities.lock().unwrap_or_else(|e| e.into_inner());
            identities.entry(aws.assumed_role.clone()).or_default().clone()
        };
        cell.get_or_try_init(|| caller_identity(aws)).await.cloned()
    }

    /// Remembers, before publishing, what ConfigMap `namespace/name` is to hold (`data`, owned
    /// by `owner_uid`). Before, not after: the watch event of the write can arrive before the
    /// write's answer (it did for 45% of the creates of a 400-backend benchmark, each then
    /// triggering a pass early, before AWS showed the pass's own writes).
    pub fn expect_own_config_map(
        &self,
        namespace: &str,
        name: &str,
        data: &std::collections::BTreeMap<String, String>,
        owner_uid: &str,
    ) {
        let mut writes = self.own_config_map_writes.lock().unwrap_or_else(|e| e.into_inner());
        writes.insert(format!("{namespace}/{name}"), config_map_digest(data, [owner_uid]));
    }

    /// Forgets our last write of ConfigMap `namespace/name` (it was deleted, or its owner
    /// was): without this the map would keep one entry per ConfigMap ever published.
    pub fn forget_own_config_map_write(&self, namespace: &str, name: &str) {
        self.own_config_map_writes.lock().unwrap_or_else(|e| e.into_inner()).remove(&format!("{namespace}/{name}"));
    }

    /// How many ConfigMap writes are remembered (for tests).
    pub fn own_config_map_writes(&self) -> usize {
        self.own_config_map_writes.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether `cm` holds what the last publication wanted: its watch event then needs no
    /// pass (one would find nothing to publish).
    pub fn is_own_config_map_write(&self, cm: &k8s_openapi::api::core::v1::ConfigMap) -> bool {
        let key = format!(
            "{}/{}",
            cm.metadata.namespace.as_deref().unwrap_or_default(),
            cm.metadata.name.as_deref().unwrap_or_default()
        );
        let digest = crate::config_maps::digest_of(cm);
        let writes = self.own_config_map_writes.lock().unwrap_or_else(|e| e.into_inner());
        writes.get(&key) == Some(&digest)
    }

    /// Follows one item of the ConfigMap watch (see [`crate::config_maps`]).
    pub fn observe_config_map(
        &self,
        item: &Result<
            kube::runtime::watcher::Event<k8s_openapi::api::core::v1::ConfigMap>,
            kube::runtime::watcher::Error,
        >,
    ) {
        self.watched_config_maps.lock().unwrap_or_else(|e| e.into_inner()).observe(item);
    }

    /// Whether the ConfigMap watch, complete and unbroken, shows `namespace/name` holding
    /// exactly `data`, owned by `owner_uid` alone: then publishing has nothing to read or write.
    pub fn watch_shows_config_map(
        &self,
        namespace: &str,
        name: &str,
        data: &std::collections::BTreeMap<String, String>,
        owner_uid: &str,
    ) -> bool {
        self.watched_config_maps.lock().unwrap_or_else(|e| e.into_inner()).holds(namespace, name, data, owner_uid)
    }

    /// Records a failed reconcile of `key`; returns the back-off before the next try: the
    /// policy's exponential delay for this many consecutive failures, jittered.
    pub fn failed(&self, key: &str, policy: Backoff) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(policy, *n, fastrand::f64())
    }

    /// The controller action for a pass that did not fail: when to look again.
    pub fn requeue(&self, uid: &str, requeue: Requeue) -> Action {
        self.requeue_within(uid, requeue, None)
    }

    /// Like [`Context::requeue`], but no later than `bound` when one is given (something
    /// becomes due then, such as the end of a lock-mode roll-out window).
    pub fn requeue_within(&self, uid: &str, requeue: Requeue, bound: Option<Duration>) -> Action {
        let delay = match requeue {
            Requeue::Verify => Some(self.config.verify_delay),
            Requeue::Resync => {
                let slot = self.resync_slots.lock().unwrap_or_else(|e| e.into_inner()).slot(uid);
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                Some(resync_delay(slot, self.config.resync_interval, now))
            }
            Requeue::AwaitChange => None,
            Requeue::Backoff(policy) => Some(backoff_delay(policy, 1, fastrand::f64())),
        };
        match (delay, bound) {
            (Some(d), Some(b)) => Action::requeue(d.min(b)),
            (Some(d), None) | (None, Some(d)) => Action::requeue(d),
            (None, None) => Action::await_change(),
        }
    }

    /// Takes in one event of the backends' watch: which backends exist ranks their resync
    /// slots (a deleted one leaves the ranking, the others close ranks).
    pub fn observe_backend(&self, event: &kube::runtime::watcher::Event<crate::api::TerraformStateBackend>) {
        self.resync_slots.lock().unwrap_or_else(|e| e.into_inner()).observe(event);
        self.recorded.lock().unwrap_or_else(|e| e.into_inner()).observe(event);
    }

    /// Whether a backend other than the one of `uid` records `bucket` as its own state
    /// bucket (as the watch last saw the backends).
    pub fn bucket_recorded_by_another(&self, bucket: &str, uid: &str) -> bool {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner()).bucket_recorded_by_another(bucket, uid)
    }

    /// Whether a backend other than the one of `uid` records the table of `arn` as its lock
    /// table (as the watch last saw the backends).
    pub fn table_recorded_by_another(&self, arn: &str, uid: &str) -> bool {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner()).table_recorded_by_another(arn, uid)
    }

    /// How many backends have a resync slot (for tests).
    pub fn resync_slots(&self) -> usize {
        self.resync_slots.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// Who `aws` acts as (STS GetCallerIdentity). `operator_arn`, the principal that key
/// policies name, is the assumed role's ARN itself (path included) for an assumed role, and
/// [`principal_arn_for_policy`] of the caller otherwise.
pub async fn caller_identity(aws: &AwsClients) -> Result<Identity, AwsError> {
    let out = aws.sts.get_caller_identity().send().await.map_err(|e| {
        // The credentials of an assumed role could not be refreshed: report the AssumeRole.
        crate::aws::credentials_failure(&e)
            .unwrap_or_else(|| crate::aws::error::from_sdk("sts", "GetCallerIdentity", e))
    })?;
    let arn = out.arn().unwrap_or_default().to_string();
    Ok(Identity {
        account_id: out.account().unwrap_or_default().to_string(),
        partition: arn.split(':').nth(1).filter(|p| !p.is_empty()).unwrap_or("aws").to_string(),
        operator_arn: match &aws.assumed_role {
            Some(role_arn) => role_arn.clone(),
            None => principal_arn_for_policy(&arn),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::config_map_digest;

    /// An event of exactly the last publication is the operator's own; a foreign edit of the
    /// data, of a value, or of the owners is not.
    #[test]
    fn the_digest_tells_the_last_publication_from_a_foreign_edit() {
        let data: BTreeMap<String, String> =
            [("bucket".into(), "b".into()), ("region".into(), "eu-west-1".into())].into();
        let ours = config_map_digest(&data, ["uid-1"]);
        assert_eq!(config_map_digest(&data.clone(), ["uid-1"]), ours);
        let mut edited = data.clone();
        edited.insert("region".into(), "us-east-1".into());
        assert_ne!(config_map_digest(&edited, ["uid-1"]), ours, "a changed value");
        let mut added = data.clone();
        added.insert("extra".into(), String::new());
        assert_ne!(config_map_digest(&added, ["uid-1"]), ours, "an added key");
        assert_ne!(config_map_digest(&data, ["uid-2"]), ours, "another owner");
        assert_ne!(config_map_digest(&data, ["uid-1", "uid-2"]), ours, "a second owner");
        assert_ne!(config_map_digest(&data, []), ours, "no owner");
        // Keys and values are not confused across their boundary.
        let a: BTreeMap<String, String> = [("ab".into(), "c".into())].into();
        let b: BTreeMap<String, String> = [("a".into(), "bc".into())].into();
        assert_ne!(config_map_digest(&a, ["u"]), config_map_digest(&b, ["u"]));
    }
}
