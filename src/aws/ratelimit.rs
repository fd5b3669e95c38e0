//! Optional client-side rate limits per AWS service (`--aws-rate-limit s3=50,kms=20`): a
//! token bucket per service, shared by every client of that service the factory builds
//! (every region and assumed role), in front of the HTTP client, so that each attempt (a
//! retry included) waits for a token before it is sent. Off by default.
//!
//! Why: AWS throttles per account and API (KMS: shared request quotas; IAM: a few
//! requests per second for writes), and thousands of backends resyncing, or a mass
//! re-create after a restore, can exceed them; a client that paces itself costs latency
//! instead of throttling errors, retries and back-off. The wait counts against the attempt
//! deadline (`--aws-attempt-timeout`), so a limit must let the queue of concurrent
//! reconciles (`--concurrency`) drain well within it.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::{RuntimeComponents, RuntimeComponentsBuilder};
use aws_smithy_runtime_api::shared::IntoShared;
use aws_smithy_types::config_bag::ConfigBag;
use tokio::time::Instant;

/// The services a limit may name.
pub const SERVICES: [&str; 6] = ["s3", "kms", "dynamodb", "iam", "sts", "cloudtrail"];

/// Requests per second by service (`s3=50,kms=20`); empty: no limit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RateLimits(BTreeMap<String, f64>);

/// Why a `--aws-rate-limit` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RateLimitError {
    /// An entry is not `SERVICE=RATE`.
    #[error("{0:?} is not SERVICE=REQUESTS_PER_SECOND (e.g. s3=50,kms=20)")]
    Syntax(String),
    /// The service is not one the operator calls.
    #[error("unknown service {0:?}: one of s3, kms, dynamodb, iam, sts, cloudtrail")]
    Service(String),
    /// The rate is not a positive number.
    #[error("rate of {service} must be a positive number of requests per second, got {rate:?}")]
    Rate {
        /// The service.
        service: String,
        /// What was given.
        rate: String,
    },
}

impl FromStr for RateLimits {
    type Err = RateLimitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut limits = BTreeMap::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (service, rate) = entry.split_once('=').ok_or_else(|| RateLimitError::Syntax(entry.into()))?;
            let service = service.trim().to_ascii_lowercase();
            if !SERVICES.contains(&service.as_str()) {
                return Err(RateLimitError::Service(service));
            }
            let bad = || RateLimitError::Rate { service: service.clone(), rate: rate.trim().into() };
            let value: f64 = rate.trim().parse().map_err(|_| bad())?;
            if !(value.is_finite() && value > 0.0) {
                return Err(bad());
            }
            limits.insert(service, value);
        }
        Ok(Self(limits))
    }
}

impl RateLimits {
    /// Whether no service is limited.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The limit of `service`, in requests per second.
    pub fn get(&self, service: &str) -> Option<f64> {
        self.0.get(service).copied()
    }

    /// One bucket per limited service.
    pub fn buckets(&self) -> HashMap<String, Arc<TokenBucket>> {
        self.0.iter().map(|(s, rate)| (s.clone(), Arc::new(TokenBucket::new(*rate, burst_for(*rate))))).collect()
    }
}

/// The burst of a limit: a tenth of a second's worth, at least one request. Small, so that
/// the rate holds over any window longer than a fraction of a second.
pub fn burst_for(rate: f64) -> f64 {
    (rate / 10.0).ceil().max(1.0)
}

/// A token bucket that hands out reservations: a request takes a token at once, going into
/// debt when there is none, and waits until its token would have been refilled. Waiters are
/// therefore served in arrival order, exactly `1/rate` apart, with no polling loop; a
/// request abandoned while waiting (its attempt timed out) forfeits its slot.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Option<Instant>)>,
}

impl TokenBucket {
    /// `rate` tokens per second, at most `burst` saved up (full at first).
    pub fn new(rate: f64, burst: f64) -> Self {
        Self { rate, burst: burst.max(1.0), state: Mutex::new((burst.max(1.0), None)) }
    }

    /// Takes a token at `now`; returns how long to wait before using it.
    pub fn reserve(&self, now: Instant) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = &mut *state;
        if let Some(last) = *last {
            *tokens = (*tokens + now.saturating_duration_since(last).as_secs_f64() * self.rate).min(self.burst);
        }
        *last = Some(now);
        *tokens -= 1.0;
        if *tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-*tokens / self.rate) }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// An HTTP client whose every request first waits for a token of `bucket`.
#[derive(Debug)]
pub struct RateLimitedClient {
    inner: SharedHttpClient,
    bucket: Arc<TokenBucket>,
}

impl RateLimitedClient {
    /// `inner`, paced by `bucket`, as the SDK takes it.
    pub fn shared(inner: SharedHttpClient, bucket: Arc<TokenBucket>) -> SharedHttpClient {
        Self { inner, bucket }.into_shared()
    }
}

impl HttpClient for RateLimitedClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        // The inner client caches its connectors (and their connection pools); this only
        // puts the bucket in front.
        let inner = self.inner.http_connector(settings, components);
        RateLimitedConnector { inner, bucket: self.bucket.clone() }.into_shared()
    }

    fn validate_base_client_config(
        &self,
        components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.inner.validate_base_client_config(components, cfg)
    }

    fn validate_final_config(&self, components: &RuntimeComponents, cfg: &ConfigBag) -> Result<(), BoxError> {
        self.inner.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

#[derive(Debug)]
struct RateLimitedConnector {
    inner: SharedHttpConnector,
    bucket: Arc<TokenBucket>,
}

impl HttpConnector for RateLimitedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (inner, bucket) = (self.inner.clone(), self.bucket.clone());
        HttpConnectorFuture::new(async move {
            bucket.acquire().await;
            inner.call(request).await
        })
    }
}

#[cfg(test)]
#[path = "ratelimit_tests.rs"]
mod tests;
