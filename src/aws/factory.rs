//! Builds the AWS SDK clients the operator uses, from the operator's flags: credentials
//! from the SDK's default chain (IRSA, Pod Identity, environment, profile), an optional
//! endpoint override (S3-compatible stores, the local emulator) with path-style S3, and an
//! optional CA bundle to trust for that endpoint.
//!
//! Hub and spoke: [`AwsClientFactory::clients_as`] gives the clients of a region acting as an
//! IAM role the operator assumes (STS AssumeRole with the operator's own credentials, through
//! the same endpoint, HTTP client and call counters as every other call), cached per
//! (region, role, session) in a bounded cache.
//!
//! With `--aws-rate-limit`, every client of a limited service sends through one token
//! bucket of that service ([`super::ratelimit`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_config::identity::IdentityCache;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::identity::SharedIdentityCache;
use aws_types::region::Region;
use tokio::sync::OnceCell;

use super::calls::{CallCounter, CountingInterceptor};
use super::error::{AwsError, AwsErrorKind, from_sdk};
use super::ratelimit::{RateLimitedClient, RateLimits, TokenBucket};

/// The operator's AWS settings (`--aws-endpoint-url`, `--aws-ca-bundle`, `--default-region`).
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    /// Send every AWS call to this endpoint instead of AWS's own (e.g. an S3-compatible
    /// store or an emulator). S3 is then addressed path-style.
    pub endpoint_url: Option<String>,
    /// PEM file of the CA certificates to trust instead of the system's (as the standard
    /// `AWS_CA_BUNDLE` of the other AWS SDKs and the CLI).
    pub ca_bundle: Option<PathBuf>,
    /// Region of backends whose spec names none.
    pub default_region: Option<String>,
    /// Deadlines and retries of every AWS call.
    pub limits: CallLimits,
    /// Client-side request rates per service (`--aws-rate-limit`); empty: none.
    pub rate_limits: RateLimits,
}

/// Deadlines and retries of every AWS call: a call that hangs costs one attempt, never a
/// worker forever (`--aws-attempt-timeout`, `--aws-operation-timeout`, `--aws-max-attempts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallLimits {
    /// One attempt (connect, send, first byte, body).
    pub attempt_timeout: Duration,
    /// The whole operation, retries and their back-off included.
    pub operation_timeout: Duration,
    /// Attempts per operation, first included, under the SDK's *standard* retry mode:
    /// exponential back-off with full jitter on throttling, 5xx and transport errors. Not
    /// *adaptive*: its client-side rate limiter is shared per client and would let one
    /// throttled tenant slow every other backend down.
    pub max_attempts: u32,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self { attempt_timeout: Duration::from_secs(10), operation_timeout: Duration::from_secs(30), max_attempts: 3 }
    }
}

/// Why the AWS clients could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FactoryError {
    /// The CA bundle file could not be read.
    #[error("cannot read the AWS CA bundle {path}: {source}")]
    ReadCaBundle {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The CA bundle holds no certificate.
    #[error("the AWS CA bundle {path} holds no PEM certificate")]
    EmptyCaBundle {
        /// The file.
        path: PathBuf,
    },
    /// The TLS configuration was refused.
    #[error("invalid TLS configuration for AWS: {0}")]
    Tls(#[from] aws_smithy_http_client::HttpClientError),
}

/// The clients of one region, acting as one identity.
#[derive(Clone, Debug)]
pub struct AwsClients {
    /// The region these clients call.
    pub region: String,
    /// The IAM role these clients act as (its ARN, as given to [`AwsClientFactory::clients_as`]);
    /// `None`: the operator's own credentials.
    pub assumed_role: Option<String>,
    /// S3.
    pub s3: aws_sdk_s3::Client,
    /// KMS.
    pub kms: aws_sdk_kms::Client,
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// IAM (global, but signed for this region's partition).
    pub iam: aws_sdk_iam::Client,
    /// STS.
    pub sts: aws_sdk_sts::Client,
    /// CloudTrail (the audit trail of `spec.audit.cloudTrail`).
    pub cloudtrail: aws_sdk_cloudtrail::Client,
}

/// An IAM role for the operator to assume (STS AssumeRole) instead of acting with its own
/// credentials: the `operatorRoleArn` of a `TerraformStatePolicy` (hub and spoke).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AssumeAs {
    /// The role's ARN, e.g. `arn:aws:iam::210987654321:role/tfstate-operator`.
    pub role_arn: String,
    /// The STS session name: 2 to 64 characters of `[\w+=,.@-]`. It names the session in the
    /// spoke account's CloudTrail; [`session_name`] makes one from the object's name.
    pub session_name: String,
    /// The external ID the role's trust policy may require (`sts:ExternalId` condition).
    /// `TerraformStatePolicy` has no such field today, so callers pass `None`: an external
    /// ID guards a third party that assumes roles named by its customers (the confused
    /// deputy), and here the role ARN comes from the cluster-scoped policy, never from a
    /// tenant. Kept so that a spoke account whose trust policies demand one can be served.
    pub external_id: Option<String>,
}

impl AssumeAs {
    /// The role `role_arn`, assumed in a session named after the object `namespace/name`
    /// (see [`session_name`]), without an external ID.
    pub fn for_object(role_arn: impl Into<String>, namespace: &str, name: &str) -> Self {
        Self { role_arn: role_arn.into(), session_name: session_name(namespace, name), external_id: None }
    }
}

/// How many assumed-role sessions (region, role, session name) are kept at most: their
/// credentials and the SDK's credentials cache that refreshes them, about 5 KiB each
/// (measured), so at most about 20 MiB. Beyond it the least recently used is dropped, and
/// assumed again (one AssumeRole) when its object is next reconciled.
pub const ASSUMED_SESSIONS_CAPACITY: usize = 4096;

/// How many client sets (S3, KMS, DynamoDB, IAM, STS) of assumed-role sessions are kept at
/// most. A set costs about 100 KiB (measured: each SDK client holds its own runtime plugins
/// and configuration), too much to keep one per object, and is rebuilt cheaply (no AWS
/// call: the session keeps its credentials) when its object comes back. 32 covers the
/// objects reconciled concurrently (16 by default) and their quick requeues.
pub const ASSUMED_CLIENTS_CAPACITY: usize = 32;

/// An assumed-role session (or client set) unused for this long is dropped: its credentials
/// (one hour, STS's default session) have expired by then, so assuming the role again costs
/// the one AssumeRole that refreshing them would have cost anyway.
pub const ASSUMED_IDLE: Duration = Duration::from_secs(3600);

type AssumedKey = (String, AssumeAs);

/// The credentials of one assumed-role session: the provider (AssumeRole) and the SDK's
/// credentials cache in front of it, shared by every client set built for the session.
#[derive(Clone, Debug)]
struct Session {
    credentials: SharedCredentialsProvider,
    cache: SharedIdentityCache,
}

/// Builds and caches [`AwsClients`] per region (and per assumed role). The operator's own
/// credentials and the HTTP client (with its connection pool and trust store) are shared by
/// every client.
#[derive(Debug)]
pub struct AwsClientFactory {
    base: SdkConfig,
    settings: AwsSettings,
    calls: Arc<CallCounter>,
    by_region: Mutex<HashMap<String, AwsClients>>,
    sessions: Mutex<BoundedCache<AssumedKey, Arc<OnceCell<Session>>>>,
    assumed_clients: Mutex<BoundedCache<AssumedKey, AwsClients>>,
    /// One token bucket per rate-limited service, and the HTTP client they pace.
    paced: Option<(SharedHttpClient, HashMap<String, Arc<TokenBucket>>)>,
}

impl AwsClientFactory {
    /// Loads credentials from the SDK's default chain and prepares the HTTP client.
    pub async fn new(settings: AwsSettings) -> Result<Self, FactoryError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(path) = &settings.ca_bundle {
            loader = loader.http_client(https_client_trusting(path).await?);
        }
        if let Some(region) = &settings.default_region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        let loader = with_limits(loader, settings.limits);
        Ok(Self::with_base(loader.load().await, settings))
    }

    fn with_base(base: SdkConfig, settings: AwsSettings) -> Self {
        let paced = (!settings.rate_limits.is_empty()).then(|| {
            // The client every SDK client would use anyway: the configured one, or the
            // SDK's default (rustls over aws-lc), built once so that its pool is shared.
            let http = base.http_client().unwrap_or_else(|| {
                aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
                    .build_https()
            });
            (http, settings.rate_limits.buckets())
        });
        Self {
            paced,
            base,
            settings,
            calls: CallCounter::new(),
            by_region: Mutex::new(HashMap::new()),
            sessions: Mutex::new(BoundedCache::new(ASSUMED_SESSIONS_CAPACITY, ASSUMED_IDLE)),
            assumed_clients: Mutex::new(BoundedCache::new(ASSUMED_CLIENTS_CAPACITY, ASSUMED_IDLE)),
        }
    }

    /// The counters of every call made by the clients of this factory.
    pub fn calls(&self) -> &Arc<CallCounter> {
        &self.calls
    }

    /// The settings this factory was built from.
    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    /// The clients for `region` with the operator's own credentials, built once and then
    /// reused.
    pub fn clients(&self, region: &str) -> AwsClients {
        let mut cache = lock(&self.by_region);
        cache.entry(region.to_string()).or_insert_with(|| self.build(region, None)).clone()
    }

    /// The clients for `region` acting as `assume` (`None`: [`Self::clients`]).
    ///
    /// The first call for a (region, role, session) assumes the role (STS AssumeRole in
    /// `region`, with the operator's own credentials, counted like every call) and fails
    /// when STS refuses: an [`AwsError`] for `sts`/`AssumeRole` whose kind is
    /// [`AwsErrorKind::AccessDenied`] when the role does not trust the operator (or the
    /// operator may not assume it), its message naming the role. The session is then kept:
    /// the SDK's credentials cache assumes the role again shortly before the credentials
    /// expire (a failure then surfaces in the call that needed them, see
    /// [`credentials_failure`]). At most [`ASSUMED_SESSIONS_CAPACITY`] sessions and
    /// [`ASSUMED_CLIENTS_CAPACITY`] client sets are kept, none unused for [`ASSUMED_IDLE`].
    pub async fn clients_as(&self, region: &str, assume: Option<&AssumeAs>) -> Result<AwsClients, AwsError> {
        let Some(assume) = assume else { return Ok(self.clients(region)) };
        let key = (region.to_string(), assume.clone());
        let now = Instant::now();
        // The session first (also marking it used while its clients are cached).
        let cell = lock(&self.sessions).get_or_insert_with(key.clone(), now, Default::default);
        if let Some(clients) = lock(&self.assumed_clients).get(&key, now) {
            return Ok(clients);
        }
        // Concurrent first calls for one session wait for the same AssumeRole; a failed one
        // leaves the cell empty, so the next call tries again.
        let session = cell.get_or_try_init(|| self.assume_role(region, assume)).await?;
        let clients = self.build(region, Some((assume, session)));
        Ok(lock(&self.assumed_clients).get_or_insert_with(key, now, || clients))
    }

    async fn assume_role(&self, region: &str, assume: &AssumeAs) -> Result<Session, AwsError> {
        let provider = AssumeRoleCredentials {
            // The operator's own STS client of this region: same endpoint, HTTP client and
            // call counter as every other call.
            sts: self.clients(region).sts,
            assume: assume.clone(),
            primed: Mutex::new(None),
        };
        // Assume the role now, so that a refusal is reported here, classified, rather than
        // as a credentials error inside whichever call comes first. The credentials are
        // handed to the SDK's cache on first use: no second AssumeRole.
        let first = provider.assume().await?;
        *lock(&provider.primed) = Some(first);
        Ok(Session {
            credentials: SharedCredentialsProvider::new(provider),
            // A cache of its own: the base config's cache is shared by every client built
            // from it and holds at most 64 credential providers, evicting an arbitrary one
            // beyond that; thousands of sessions would evict each other (and the
            // operator's own credentials). This one lives and dies with the session.
            cache: IdentityCache::lazy().build(),
        })
    }

    fn build(&self, region: &str, assumed: Option<(&AssumeAs, &Session)>) -> AwsClients {
        let mut conf = self.base.to_builder().region(Region::new(region.to_string()));
        if let Some((_, session)) = assumed {
            conf = conf.credentials_provider(session.credentials.clone()).identity_cache(session.cache.clone());
        }
        let conf = conf.build();
        // Each service's config, with its rate-limited HTTP client when it has a limit.
        let conf_of = |service: &str| match self.paced_client(service) {
            Some(http) => conf.to_builder().http_client(http).build(),
            None => conf.clone(),
        };
        let count = CountingInterceptor(self.calls.clone());
        let s3_conf = aws_sdk_s3::config::Builder::from(&conf_of("s3"))
            // Custom endpoints rarely resolve virtual-hosted bucket names; AWS itself
            // accepts both styles.
            .force_path_style(self.settings.endpoint_url.is_some())
            .interceptor(count.clone())
            .build();
        AwsClients {
            region: region.to_string(),
            assumed_role: assumed.map(|(a, _)| a.role_arn.clone()),
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            kms: aws_sdk_kms::Client::from_conf(
                aws_sdk_kms::config::Builder::from(&conf_of("kms")).interceptor(count.clone()).build(),
            ),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&conf_of("dynamodb")).interceptor(count.clone()).build(),
            ),
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(&conf_of("iam")).interceptor(count.clone()).build(),
            ),
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(&conf_of("sts")).interceptor(count.clone()).build(),
            ),
            cloudtrail: aws_sdk_cloudtrail::Client::from_conf(
                aws_sdk_cloudtrail::config::Builder::from(&conf_of("cloudtrail")).interceptor(count).build(),
            ),
        }
    }

    /// The HTTP client of `service`'s SDK clients when it is rate-limited: the shared one,
    /// behind the service's bucket (one per service, whatever the region or role).
    fn paced_client(&self, service: &str) -> Option<SharedHttpClient> {
        let (http, buckets) = self.paced.as_ref()?;
        Some(RateLimitedClient::shared(http.clone(), buckets.get(service)?.clone()))
    }

    /// How many assumed-role sessions and client sets are cached now.
    pub fn assumed_cached(&self) -> (usize, usize) {
        (lock(&self.sessions).len(), lock(&self.assumed_clients).len())
    }
}

/// A poisoned lock only means another thread panicked while holding it; the caches stay
/// usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Credentials of an assumed role: STS AssumeRole through the operator's own (counted) STS
/// client. `aws_config::sts::AssumeRoleProvider` would build its own STS client from the
/// `SdkConfig`, which carries no interceptors: its calls would escape the call counters.
#[derive(Debug)]
struct AssumeRoleCredentials {
    sts: aws_sdk_sts::Client,
    assume: AssumeAs,
    /// Credentials obtained before the clients were built, returned by the first
    /// [`ProvideCredentials::provide_credentials`].
    primed: Mutex<Option<Credentials>>,
}

impl AssumeRoleCredentials {
    async fn assume(&self) -> Result<Credentials, AwsError> {
        let a = &self.assume;
        let out = self
            .sts
            .assume_role()
            .role_arn(&a.role_arn)
            .role_session_name(&a.session_name)
            .set_external_id(a.external_id.clone())
            .send()
            .await
            .map_err(|e| assume_role_error(a, from_sdk("sts", "AssumeRole", e)))?;
        let invalid = |what: &str| {
            assume_role_error(
                a,
                AwsError {
                    resource: None,
                    service: "sts",
                    operation: "AssumeRole",
                    code: "InvalidResponse".into(),
                    message: format!("STS answered without {what}"),
                    kind: AwsErrorKind::Other,
                },
            )
        };
        let c = out.credentials().ok_or_else(|| invalid("credentials"))?;
        let expiry = SystemTime::try_from(*c.expiration()).map_err(|_| invalid("a usable expiration"))?;
        let mut creds = Credentials::builder()
            .access_key_id(c.access_key_id())
            .secret_access_key(c.secret_access_key())
            .session_token(c.session_token())
            .expiry(expiry)
            .provider_name("tfstate-operator-assume-role");
        // As the SDK's own provider does: DynamoDB's account-based endpoints use it.
        if let Some(account) = out.assumed_role_user().and_then(|u| u.arn().split(':').nth(4)).filter(|s| !s.is_empty())
        {
            creds = creds.account_id(account);
        }
        Ok(creds.build())
    }
}

impl ProvideCredentials for AssumeRoleCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            if let Some(first) = lock(&self.primed).take() {
                return Ok(first);
            }
            tracing::debug!(role = %self.assume.role_arn, session = %self.assume.session_name, "assuming the role again");
            // The AwsError is the source of the SDK's error: see `credentials_failure`.
            self.assume().await.map_err(CredentialsError::provider_error)
        })
    }
}

/// Names the role (and what to check) in a failed AssumeRole.
fn assume_role_error(a: &AssumeAs, e: AwsError) -> AwsError {
    let hint = if e.kind == AwsErrorKind::AccessDenied {
        ": the role's trust policy must allow sts:AssumeRole by the operator's own principal, and the operator's \
         own policy must allow sts:AssumeRole on the role"
    } else {
        ""
    };
    AwsError {
        message: format!(
            "the operator cannot assume the role {} (sts:AssumeRole, session {}): {}{hint}",
            a.role_arn, a.session_name, e.message
        ),
        ..e
    }
}

/// The failed AssumeRole behind an SDK call's error, if that call failed because the
/// credentials of an assumed role could not be refreshed: the SDK reports that as a
/// construction or dispatch failure (no AWS error code), whose source chain holds the
/// [`AwsError`] of the AssumeRole. Use it before classifying such an error, so that a role
/// that stopped trusting the operator reads as `AccessDenied` on `sts:AssumeRole` rather
/// than as a transport error.
pub fn credentials_failure(err: &(dyn std::error::Error + 'static)) -> Option<AwsError> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(aws) = e.downcast_ref::<AwsError>() {
            return Some(AwsError {
                resource: None,
                service: aws.service,
                operation: aws.operation,
                code: aws.code.clone(),
                message: aws.message.clone(),
                kind: aws.kind,
            });
        }
        next = e.source();
    }
    None
}

/// The longest STS session name.
const SESSION_NAME_MAX: usize = 64;
/// The hash suffix of a shortened session name: `+` and 13 base32 characters (64 bits).
const SESSION_HASH_LEN: usize = 14;

/// The STS session name of the object `namespace/name`: `<namespace>.<name>` when that is
/// a valid session name (STS: 2 to 64 characters of `[\w+=,.@-]`; Kubernetes names are of
/// `[a-z0-9.-]` and namespaces hold no dot, so the first dot separates them). Otherwise
/// (too long, or characters a Kubernetes name cannot hold) the first 50 characters of it,
/// other characters made `-`, then `+` and a 64-bit FNV-1a hash of the whole
/// (namespace, name), in base32. Deterministic (the same in every process and release) and
/// collision-resistant: a plain name holds no `+`, a shortened one exactly one, so the two
/// forms never meet, and two shortened ones meet only if their hashes do (a chance of
/// 2^-64 per pair). Sessions are not a security boundary: two objects that shared a name
/// would share credentials of the same role, identical anyway.
pub fn session_name(namespace: &str, name: &str) -> String {
    let k8s = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    let plain = format!("{namespace}.{name}");
    if k8s(namespace) && !namespace.contains('.') && k8s(name) && plain.len() <= SESSION_NAME_MAX {
        return plain;
    }
    let mut hash = Fnv1a::default();
    hash.write(&(namespace.len() as u64).to_le_bytes());
    hash.write(namespace.as_bytes());
    hash.write(name.as_bytes());
    let prefix: String = plain
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "_=,.@-".contains(c) { c } else { '-' })
        .take(SESSION_NAME_MAX - SESSION_HASH_LEN)
        .collect();
    format!("{prefix}+{}", base32(hash.0))
}

/// 64-bit FNV-1a: tiny, stable, and good enough to tell names apart (not a MAC).
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// `n` in 13 lowercase base32 characters (RFC 4648 alphabet), most significant first.
fn base32(n: u64) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..13).rev().map(|i| ALPHABET[((u128::from(n) >> (i * 5)) & 31) as usize] as char).collect()
}

/// A map that keeps at most `capacity` entries and drops those unused for `idle`: on every
/// miss, idle entries go, then the least recently used one if still full. Lookups are
/// O(1); a miss is O(n) (n <= capacity, a few thousand: microseconds, once per new
/// session).
#[derive(Debug)]
struct BoundedCache<K, V> {
    entries: HashMap<K, (V, Instant)>,
    capacity: usize,
    idle: Duration,
}

impl<K: Eq + Hash + Clone, V: Clone> BoundedCache<K, V> {
    fn new(capacity: usize, idle: Duration) -> Self {
        Self { entries: HashMap::new(), capacity: capacity.max(1), idle }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// The value of `key`, marked used at `now`.
    fn get(&mut self, key: &K, now: Instant) -> Option<V> {
        let (value, used) = self.entries.get_mut(key)?;
        *used = now;
        Some(value.clone())
    }

    /// The value of `key` (marked used at `now`), made by `make` when absent.
    fn get_or_insert_with(&mut self, key: K, now: Instant, make: impl FnOnce() -> V) -> V {
        if let Some(value) = self.get(&key, now) {
            return value;
        }
        let idle = self.idle;
        self.entries.retain(|_, (_, used)| now.saturating_duration_since(*used) < idle);
        if self.entries.len() >= self.capacity
            && let Some(oldest) = self.entries.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
        let value = make();
        self.entries.insert(key, (value.clone(), now));
        value
    }
}

/// An HTTPS client that trusts exactly the certificates of the PEM file at `path`.
async fn https_client_trusting(path: &PathBuf) -> Result<SharedHttpClient, FactoryError> {
    let pem =
        tokio::fs::read(path).await.map_err(|source| FactoryError::ReadCaBundle { path: path.clone(), source })?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(FactoryError::EmptyCaBundle { path: path.clone() });
    }
    let trust = TrustStore::empty().with_native_roots(false).with_pem_certificate(pem);
    let tls = TlsContext::builder().with_trust_store(trust).build()?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .tls_context(tls)
        .build_https())
}

/// `loader` with the deadlines and retry policy of `limits` (every client built from it,
/// the STS client of assumed roles included, inherits them).
fn with_limits(loader: aws_config::ConfigLoader, limits: CallLimits) -> aws_config::ConfigLoader {
    loader
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(limits.attempt_timeout.min(Duration::from_secs(5)))
                .operation_attempt_timeout(limits.attempt_timeout)
                .operation_timeout(limits.operation_timeout)
                .build(),
        )
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(limits.max_attempts.max(1)))
}

#[cfg(test)]
#[path = "factory_tests.rs"]
mod tests;
