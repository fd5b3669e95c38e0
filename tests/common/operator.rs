//! An operator running in-process against the test ground, watching one namespace, with
//! its own AWS call counters; and helpers to wait for conditions and inspect AWS.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use tfstate_operator::api::TerraformStateBackend;
use tfstate_operator::aws::calls::CallKey;
use tfstate_operator::aws::{AwsClientFactory, AwsSettings};
use tfstate_operator::context::{Context, ReconcileConfig};
use tfstate_operator::controller::{self, ControllerConfig};
use tfstate_operator::failpoint::Failpoints;
use tfstate_operator::reconcile::validate::OperatorDefaults;

use super::Ground;

/// A running operator; stopped when dropped.
pub struct Operator {
    /// Its context: clients and AWS call counters (`ctx.aws.calls()`).
    pub ctx: Arc<Context>,
    /// Every Kubernetes request its client made, as "METHOD path" (see [`Operator::kube_requests`]).
    requests: Requests,
    task: tokio::task::JoinHandle<()>,
}

/// The Kubernetes requests of an operator's client, in order.
type Requests = Arc<std::sync::Mutex<Vec<String>>>;

/// A layer on the operator's Kubernetes client that records each request's method and path.
struct Recording(Requests);

impl<S> tower::Layer<S> for Recording {
    type Service = RecordingService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RecordingService { inner, requests: self.0.clone() }
    }
}

/// The service of [`Recording`].
#[derive(Clone)]
struct RecordingService<S> {
    inner: S,
    requests: Requests,
}

impl<S, B> tower::Service<http::Request<B>> for RecordingService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let line = format!("{} {}", req.method(), req.uri().path());
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        self.inner.call(req)
    }
}

impl Operator {
    /// How many Kubernetes requests its client has made so far whose "METHOD path" matches
    /// `pred` (watches included, as one request each).
    pub fn kube_requests(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|r| pred(r)).count()
    }

    /// Every Kubernetes request its client has made so far, in order, as "METHOD path".
    pub fn kube_request_log(&self) -> Vec<String> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The AWS call counters once they have not moved for `still` (no reconcile in flight).
    pub async fn quiescent_calls(&self, still: Duration) -> BTreeMap<CallKey, u64> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut last = self.ctx.aws.calls().snapshot();
        loop {
            tokio::time::sleep(still).await;
            let now = self.ctx.aws.calls().snapshot();
            if now == last {
                return now;
            }
            assert!(tokio::time::Instant::now() < deadline, "the AWS call counters never stood still for {still:?}");
            last = now;
        }
    }

    /// Waits (`timeout` at most) for a moment when no pass runs: every pass that had started
    /// before the call has ended by then, whatever it was waiting on.
    pub async fn wait_until_no_pass_in_flight(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.ctx.metrics.reconciles_in_flight.get() != 0 {
            assert!(tokio::time::Instant::now() < deadline, "a pass was always running for {timeout:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts an operator that watches `namespace` and checks for drift every `resync`.
pub async fn start_operator(ground: &Ground, namespace: &str, resync: Duration) -> Operator {
    start_operator_with(ground, namespace, resync, ground.aws_settings()).await
}

/// As [`start_operator`], with AWS `settings` of the caller's (e.g. the fault endpoint of
/// [`Ground::faulty_aws_settings`], or short call limits).
pub async fn start_operator_with(
    ground: &Ground,
    namespace: &str,
    resync: Duration,
    settings: AwsSettings,
) -> Operator {
    start(ground, namespace, resync, settings, Duration::from_secs(1)).await
}

/// As [`start_operator`], looking again `verify_delay` after a pass that wrote something
/// (instead of 1 s): room for a test to act between two passes.
pub async fn start_operator_verifying_after(
    ground: &Ground,
    namespace: &str,
    resync: Duration,
    verify_delay: Duration,
) -> Operator {
    start(ground, namespace, resync, ground.aws_settings(), verify_delay).await
}

async fn start(
    ground: &Ground,
    namespace: &str,
    resync: Duration,
    settings: AwsSettings,
    verify_delay: Duration,
) -> Operator {
    // The operator's logs, for debugging a test: `TEST_LOG=tfstate_operator=debug`.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("TEST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    }
    let requests = Requests::default();
    let client = kube::client::ClientBuilder::try_from(ground.kube_config().await)
        .expect("kube client")
        .with_layer(&Recording(requests.clone()))
        .build();
    let endpoint = settings.endpoint_url.clone();
    let aws = AwsClientFactory::new(settings).await.expect("AWS client factory");
    let config = ReconcileConfig {
        defaults: OperatorDefaults { region: Some(ground.var("AWS_REGION").to_string()) },
        endpoint_url: endpoint,
        resync_interval: resync,
        verify_delay,
        reconcile_timeout: Duration::from_secs(300),
        instance: None,
    };
    let ctx = Arc::new(Context::new(client, aws, config, Failpoints::default()));
    let run_ctx = ctx.clone();
    let controller_config = ControllerConfig { namespace: Some(namespace.to_string()), concurrency: 8 };
    let task = tokio::spawn(async move { controller::run(run_ctx, controller_config).await });
    Operator { ctx, requests, task }
}

/// The status of condition `type_` of an object: (status, reason, message).
pub fn condition(obj: &TerraformStateBackend, type_: &str) -> Option<(String, String, String)> {
    obj.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Polls `name` until `pred` holds (at most `timeout`), returning the object; panics with
/// the last status otherwise.
pub async fn wait_for(
    api: &Api<TerraformStateBackend>,
    name: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&TerraformStateBackend) -> bool,
) -> TerraformStateBackend {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        if let Some(obj) = api.get_opt(name).await.expect("get backend") {
            if pred(&obj) {
                return obj;
            }
            last = Some(obj);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{name}: not {what} within {timeout:?}; last status: {:#?}", last.and_then(|o| o.status));
}

/// Whether the object is Ready for its current generation.
pub fn is_ready(o: &TerraformStateBackend) -> bool {
    let generation = o.metadata.generation;
    o.status.as_ref().is_some_and(|s| {
        s.observed_generation == generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True" && c.observed_generation == generation)
    })
}

/// Waits until the object is Ready for its current generation.
pub async fn wait_ready(api: &Api<TerraformStateBackend>, name: &str) -> TerraformStateBackend {
    wait_for(api, name, Duration::from_secs(60), "Ready", is_ready).await
}

/// Waits until condition `type_` has `reason`.
pub async fn wait_reason(
    api: &Api<TerraformStateBackend>,
    name: &str,
    type_: &str,
    reason: &str,
) -> TerraformStateBackend {
    wait_for(api, name, Duration::from_secs(60), &format!("{type_}={reason}"), |o| {
        condition(o, type_).is_some_and(|(_, r, _)| r == reason)
    })
    .await
}

/// Creates a backend from YAML (a whole object; its namespace is replaced by `namespace`).
pub async fn create_backend(api: &Api<TerraformStateBackend>, yaml: &str) -> TerraformStateBackend {
    let obj: TerraformStateBackend = serde_yaml_ng::from_str(yaml).expect("test backend YAML");
    api.create(&PostParams::default(), &obj).await.expect("create backend")
}

/// Merge-patches the spec of `name` with `spec_patch` (JSON).
pub async fn patch_spec(
    api: &Api<TerraformStateBackend>,
    name: &str,
    spec_patch: serde_json::Value,
) -> TerraformStateBackend {
    api.patch(name, &PatchParams::default(), &Patch::Merge(serde_json::json!({ "spec": spec_patch })))
        .await
        .expect("patch spec")
}

/// A Ready backend `tf` in a namespace of its own, with the operator that serves it.
pub struct ReadyBackend {
    /// The ground.
    pub ground: Ground,
    /// The operator (stopped when dropped).
    pub operator: Operator,
    /// The state bucket's name.
    pub bucket: String,
    /// The backend's status once Ready.
    pub status: tfstate_operator::api::TerraformStateBackendStatus,
    /// The published ConfigMap's data.
    pub data: std::collections::BTreeMap<String, String>,
    /// The backend's namespace.
    pub namespace: String,
}

/// Creates backend `tf` (trusting the account root; `extra` spec lines, 2-space indented
/// YAML, appended) in a fresh namespace under an operator of its own, waits until it is
/// Ready and reads its published ConfigMap.
pub async fn ready_backend(prefix: &str, extra: &str) -> ReadyBackend {
    let ground = Ground::load();
    let client = ground.kube().await;
    super::install_crd(&client).await;
    let ns = super::test_namespace(&client, prefix).await;
    let operator = start_operator(&ground, &ns, Duration::from_secs(600)).await;
    let api: Api<TerraformStateBackend> = Api::namespaced(client.clone(), &ns);
    let bucket = unique_bucket(prefix);
    create_backend(&api, &format!(
        "apiVersion: tfstate.dev/v1alpha1\nkind: TerraformStateBackend\nmetadata: {{name: tf}}\nspec:\n  bucket: {{name: {bucket}}}\n  access: {{trust: {{awsPrincipals: ['arn:aws:iam::123456789012:root']}}}}\n{extra}"
    )).await;
    let status = wait_ready(&api, "tf").await.status.expect("Ready backend has a status");
    let cm = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client, &ns)
        .get("tf-backend")
        .await
        .expect("published ConfigMap");
    let data = cm.data.expect("ConfigMap data");
    ReadyBackend { ground, operator, bucket, status, data, namespace: ns }
}

/// Puts a state object `key` into `bucket` encrypted with `key_arn`, as Terraform does;
/// returns its version id.
pub async fn put_state(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, key_arn: &str) -> String {
    let put = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .ssekms_key_id(key_arn)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"{\"version\": 4}"))
        .send()
        .await
        .expect("PutObject of a state");
    put.version_id().expect("a versioned bucket answers with a version id").to_string()
}

/// Independent AWS clients (not the operator's, so its counters stay clean).
pub async fn inspector(ground: &Ground) -> tfstate_operator::aws::AwsClients {
    AwsClientFactory::new(ground.aws_settings()).await.expect("AWS client factory").clients(ground.var("AWS_REGION"))
}

/// A globally unique bucket name for a test (moto is shared by every test of a run).
pub fn unique_bucket(prefix: &str) -> String {
    format!("{prefix}-{}", super::random_suffix())
}

/// `tfstate-operator run --namespace NS` as a real process (so that it can really die),
/// configured for the ground, logging warnings to stderr. Callers add their own flags.
pub fn operator_process(ground: &Ground, namespace: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tfstate-operator"));
    cmd.args(["run", "--namespace", namespace])
        .env("KUBECONFIG", ground.var("KUBECONFIG"))
        .env("AWS_ENDPOINT_URL", ground.var("AWS_ENDPOINT_URL"))
        .env("AWS_CA_BUNDLE", ground.var("AWS_CA_BUNDLE"))
        .env("TFSTATE_DEFAULT_REGION", ground.var("AWS_REGION"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    cmd
}

/// Waits until backend `name` is gone (its finalizer ran) within `within`, polling; panics
/// with its last status otherwise.
pub async fn wait_gone(api: &Api<TerraformStateBackend>, name: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while api.get_opt(name).await.expect("get backend").is_some() {
        if tokio::time::Instant::now() >= deadline {
            let status = api.get_opt(name).await.ok().flatten().and_then(|o| o.status);
            panic!("{name} was not deleted within {within:?}: {status:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
