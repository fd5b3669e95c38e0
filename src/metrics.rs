//! Prometheus metrics (prometheus-client): reconciles by result, reconcile duration and
//! timeouts, AWS calls by service/operation/outcome, backends by Ready status, drift
//! repairs, watch errors by watch, and leadership.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of `tfstate_aws_calls_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsCallLabels {
    /// SDK service, e.g. `s3`.
    pub service: String,
    /// Operation, e.g. `GetBucketPolicy`.
    pub operation: String,
    /// `ok`, `client_error`, `server_error`, `transport_error`.
    pub outcome: String,
}

/// Labels of `tfstate_reconciles_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok` or the error's metric label (`aws_error`, `conflict`...).
    pub result: String,
}

/// Labels of `tfstate_drift_repairs_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartLabels {
    /// The condition type of the part, e.g. `BucketReady`.
    pub part: String,
}

/// Labels of `tfstate_backends`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyLabels {
    /// `True`, `False` or `Unknown`.
    pub ready: String,
}

/// Labels of `tfstate_watch_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    /// `backends`, `configmaps`, `policies` or `namespaces`.
    pub watch: String,
}

/// Labels of `tfstate_lock_age_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct BackendLabels {
    /// The backend's namespace.
    pub namespace: String,
    /// The backend's name.
    pub name: String,
}

/// `tfstate_lock_age_seconds`: the age of every held state lock, one series per backend
/// with a lock held (none otherwise), computed at scrape time from the lock's creation time.
#[derive(Debug, Default)]
pub struct LockAges {
    held_since: Mutex<std::collections::BTreeMap<BackendLabels, i64>>,
}

impl LockAges {
    /// Records that backend `namespace/name` holds a lock created at `created` (Unix
    /// seconds), or none (`None`: its series goes).
    pub fn set(&self, namespace: &str, name: &str, created: Option<i64>) {
        let key = BackendLabels { namespace: namespace.into(), name: name.into() };
        let mut map = self.held_since.lock().unwrap_or_else(|e| e.into_inner());
        match created {
            Some(t) => map.insert(key, t),
            None => map.remove(&key),
        };
    }

    /// The ages at `now` (Unix seconds), for tests and the encoder.
    pub fn ages(&self, now: i64) -> Vec<(BackendLabels, i64)> {
        let map = self.held_since.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, t)| (k.clone(), now.saturating_sub(*t).max(0))).collect()
    }
}

impl prometheus_client::collector::Collector for LockAges {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let ages = self.ages(now);
        let gauge = prometheus_client::metrics::gauge::ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "lock_age_seconds",
            "Age of the held Terraform state lock of each backend, in seconds (no series without a lock)",
            None,
            gauge.metric_type(),
        )?;
        for (labels, age) in &ages {
            prometheus_client::metrics::gauge::ConstGauge::new(*age).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}

/// Every metric of the operator, and the registry that exposes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// AWS calls (fed by the SDK interceptor).
    pub aws_calls: Family<AwsCallLabels, Counter>,
    /// Reconciles by result.
    pub reconciles: Family<ResultLabels, Counter>,
    /// Reconcile duration in seconds.
    pub reconcile_seconds: Histogram,
    /// Drift repairs by part.
    pub drift_repairs: Family<PartLabels, Counter>,
    /// Backends by Ready status.
    pub backends: Family<ReadyLabels, Gauge>,
    /// Reconciles abandoned because they ran past `--reconcile-timeout`.
    pub reconcile_timeouts: Counter,
    /// Passes running now: a value that never drops to zero while the AWS call rate is low
    /// points at passes waiting on something (a hung call held to its timeout).
    pub reconciles_in_flight: Gauge,
    /// Errors of the Kubernetes watches (RBAC denied, CRD missing, connection lost), by watch.
    pub watch_errors: Family<WatchLabels, Counter>,
    /// 1 while this replica leads (or runs without leader election), 0 on a standby.
    pub leader: Gauge,
    /// Ages of held state locks (`tfstate_lock_age_seconds`).
    pub lock_ages: std::sync::Arc<LockAges>,
    readiness: Mutex<HashMap<String, String>>,
}

impl Metrics {
    /// A registry with every metric registered under the `tfstate_` prefix; `aws_calls`
    /// is the family the SDK interceptor feeds.
    pub fn new(aws_calls: Family<AwsCallLabels, Counter>) -> Self {
        let mut registry = Registry::with_prefix("tfstate");
        let reconciles = Family::<ResultLabels, Counter>::default();
        // 5 ms to ~40 s.
        let reconcile_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let drift_repairs = Family::<PartLabels, Counter>::default();
        let backends = Family::<ReadyLabels, Gauge>::default();
        registry.register("aws_calls", "AWS API calls by service, operation and outcome", aws_calls.clone());
        registry.register("reconciles", "Reconciles by result", reconciles.clone());
        registry.register("reconcile_duration_seconds", "Duration of reconciles", reconcile_seconds.clone());
        registry.register(
            "drift_repairs",
            "Settings changed outside the operator and put back, by part",
            drift_repairs.clone(),
        );
        registry.register("backends", "TerraformStateBackend objects by Ready status", backends.clone());
        let reconcile_timeouts = Counter::default();
        registry.register(
            "reconcile_timeouts",
            "Reconciles abandoned because they ran past --reconcile-timeout",
            reconcile_timeouts.clone(),
        );
        let reconciles_in_flight = Gauge::default();
        registry.register("reconciles_in_flight", "Reconciles running now", reconciles_in_flight.clone());
        let watch_errors = Family::<WatchLabels, Counter>::default();
        registry.register("watch_errors", "Errors of the Kubernetes watches, by watch", watch_errors.clone());
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica leads (or runs without leader election), 0 on a standby",
            leader.clone(),
        );
        let lock_ages = std::sync::Arc::new(LockAges::default());
        registry.register_collector(Box::new(lock_ages.clone()));
        Self {
            lock_ages,
            registry,
            aws_calls,
            reconciles,
            reconcile_seconds,
            drift_repairs,
            backends,
            reconcile_timeouts,
            reconciles_in_flight,
            watch_errors,
            leader,
            readiness: Mutex::new(HashMap::new()),
        }
    }

    /// Records the Ready status of backend `key` (`None`: the backend is gone).
    pub fn set_ready(&self, key: &str, ready: Option<&str>) {
        let mut map = self.readiness.lock().unwrap_or_else(|e| e.into_inner());
        match ready {
            Some(r) => map.insert(key.to_string(), r.to_string()),
            None => map.remove(key),
        };
        for state in ["True", "False", "Unknown"] {
            let n = map.values().filter(|v| v.as_str() == state).count();
            self.backends.get_or_create(&ReadyLabels { ready: state.into() }).set(n as i64);
        }
    }

    /// Records the lock of backend `namespace/name` from its `status.lock` (`None`: the
    /// backend is gone): a series while a lock with a known creation time is held.
    pub fn set_lock(&self, namespace: &str, name: &str, lock: Option<&crate::api::LockStatus>) {
        let created = lock
            .filter(|l| l.held)
            .and_then(|l| l.created.as_deref())
            .and_then(|c| c.parse::<k8s_openapi::jiff::Timestamp>().ok())
            .map(|t| t.as_second());
        self.lock_ages.set(namespace, name, created);
    }

    /// Counts a pass in `tfstate_reconciles_in_flight` for as long as the guard lives: a
    /// guard, so that a pass dropped half-way (its controller stopping) is uncounted too.
    pub fn pass_started(&self) -> InFlight {
        self.reconciles_in_flight.inc();
        InFlight(self.reconciles_in_flight.clone())
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One pass counted in `tfstate_reconciles_in_flight` (see [`Metrics::pass_started`]).
#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_is_in_flight_while_its_guard_lives() {
        let m = Metrics::new(Family::default());
        let value = |m: &Metrics| {
            m.encode().lines().find(|l| l.starts_with("tfstate_reconciles_in_flight ")).map(str::to_owned)
        };
        let (a, b) = (m.pass_started(), m.pass_started());
        assert_eq!(value(&m).as_deref(), Some("tfstate_reconciles_in_flight 2"));
        drop(a);
        assert_eq!(m.reconciles_in_flight.get(), 1);
        drop(b);
        assert_eq!(value(&m).as_deref(), Some("tfstate_reconciles_in_flight 0"));
    }

    #[test]
    fn lock_age_series_come_and_go_with_the_lock() {
        let m = Metrics::new(Family::default());
        let held = crate::api::LockStatus {
            held: true,
            id: Some("x".into()),
            created: Some("2020-01-01T00:00:00Z".into()),
            ..Default::default()
        };
        m.set_lock("ns", "a", Some(&held));
        m.set_lock("ns", "b", Some(&crate::api::LockStatus::default()));
        let text = m.encode();
        let line = text.lines().find(|l| l.starts_with("tfstate_lock_age_seconds{")).expect("a series");
        assert!(line.contains(r#"namespace="ns""#) && line.contains(r#"name="a""#), "{line}");
        let age: i64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("a value");
        assert!(age > 180_000_000, "{age}");
        assert_eq!(text.lines().filter(|l| l.starts_with("tfstate_lock_age_seconds{")).count(), 1, "{text}");
        m.set_lock("ns", "a", None);
        assert!(!m.encode().lines().any(|l| l.starts_with("tfstate_lock_age_seconds{")));
        assert_eq!(m.lock_ages.ages(0).len(), 0);
    }
}
