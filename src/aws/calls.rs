//! Counts every AWS call by service, operation and outcome, through an SDK interceptor
//! registered on every client. Feeds the metrics endpoint, the benchmark and the tests
//! that prove a converged backend costs reads only.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::metrics::AwsCallLabels;

/// How an AWS call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// 2xx.
    Ok,
    /// 4xx: refused, not found (often expected on reads), conflict, throttled.
    ClientError,
    /// 5xx.
    ServerError,
    /// No HTTP response at all (connection, TLS, timeout).
    TransportError,
}

impl Outcome {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ClientError => "client_error",
            Outcome::ServerError => "server_error",
            Outcome::TransportError => "transport_error",
        }
    }
}

/// One counted kind of call.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallKey {
    /// SDK service name, e.g. `s3`, `kms`.
    pub service: String,
    /// Operation name, e.g. `GetBucketPolicy`.
    pub operation: String,
    /// How it ended.
    pub outcome: Outcome,
}

impl CallKey {
    /// Whether the operation only reads (Get/List/Describe/Head): everything else writes.
    pub fn is_read(&self) -> bool {
        is_read_operation(&self.operation)
    }
}

/// Whether an AWS operation name is a read.
pub fn is_read_operation(operation: &str) -> bool {
    ["Get", "List", "Describe", "Head"].iter().any(|p| operation.starts_with(p))
}

/// The shared counters: a snapshot-able map (tests, benchmark) and the Prometheus
/// family behind `tfstate_aws_calls_total`.
#[derive(Debug, Default)]
pub struct CallCounter {
    counts: Mutex<BTreeMap<CallKey, u64>>,
    family: Family<AwsCallLabels, Counter>,
}

/// Totals of a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallTotals {
    /// Read calls.
    pub reads: u64,
    /// Write calls.
    pub writes: u64,
}

impl CallCounter {
    /// A new, shared counter.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn record(&self, key: CallKey) {
        let labels = AwsCallLabels {
            service: key.service.clone(),
            operation: key.operation.clone(),
            outcome: key.outcome.as_str().to_string(),
        };
        self.family.get_or_create(&labels).inc();
        *self.counts.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_default() += 1;
    }

    /// The Prometheus family these counts feed.
    pub fn family(&self) -> &Family<AwsCallLabels, Counter> {
        &self.family
    }

    /// Every count so far.
    pub fn snapshot(&self) -> BTreeMap<CallKey, u64> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Read and write totals so far.
    pub fn totals(&self) -> CallTotals {
        totals(&self.snapshot())
    }
}

/// Read and write totals of a snapshot (or of the difference of two).
pub fn totals(counts: &BTreeMap<CallKey, u64>) -> CallTotals {
    counts.iter().fold(CallTotals::default(), |mut t, (k, n)| {
        if k.is_read() {
            t.reads += n;
        } else {
            t.writes += n;
        }
        t
    })
}

/// The calls made between two snapshots.
pub fn difference(before: &BTreeMap<CallKey, u64>, after: &BTreeMap<CallKey, u64>) -> BTreeMap<CallKey, u64> {
    after
        .iter()
        .filter_map(|(k, n)| {
            let d = n - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// The SDK interceptor that feeds a [`CallCounter`].
#[derive(Debug, Clone)]
pub struct CountingInterceptor(pub Arc<CallCounter>);

impl Intercept for CountingInterceptor {
    fn name(&self) -> &'static str {
        "tfstate-operator::CountingInterceptor"
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_ascii_lowercase(), m.name().to_string()))
            .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
        let outcome = match context.response().map(|r| r.status().as_u16()) {
            None => Outcome::TransportError,
            Some(200..=299) => Outcome::Ok,
            Some(400..=499) => Outcome::ClientError,
            Some(_) => Outcome::ServerError,
        };
        self.0.record(CallKey { service, operation, outcome });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(op: &str) -> CallKey {
        CallKey { service: "s3".into(), operation: op.into(), outcome: Outcome::Ok }
    }

    #[test]
    fn reads_are_get_list_describe_head() {
        for op in ["GetBucketPolicy", "ListResourceTags", "DescribeTable", "HeadBucket"] {
            assert!(is_read_operation(op), "{op}");
        }
        for op in ["PutBucketPolicy", "CreateKey", "TagResource", "UpdateTable", "DeleteRole"] {
            assert!(!is_read_operation(op), "{op}");
        }
    }

    #[test]
    fn totals_and_difference() {
        let c = CallCounter::new();
        c.record(key("GetBucketPolicy"));
        let before = c.snapshot();
        c.record(key("GetBucketPolicy"));
        c.record(key("PutBucketPolicy"));
        let diff = difference(&before, &c.snapshot());
        assert_eq!(totals(&diff), CallTotals { reads: 1, writes: 1 });
        assert_eq!(c.totals(), CallTotals { reads: 2, writes: 1 });
    }
}
