//! The `tfstate-operator` command: a thin CLI over the library.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tfstate_operator::aws::{AwsClientFactory, AwsSettings, CallLimits, RateLimits};
use tfstate_operator::context::{Context, ReconcileConfig};
use tfstate_operator::controller::{self, ControllerConfig};
use tfstate_operator::failpoint::Failpoints;
use tfstate_operator::health::Role;
use tfstate_operator::reconcile::validate::OperatorDefaults;
use tfstate_operator::telemetry::{self, LogFormat};

/// jemalloc, not glibc's malloc: the operator's memory then follows what it keeps (the
/// caches, bounded per backend) instead of growing with the garbage of past reconciles
/// held in per-thread arenas.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Kubernetes operator for hardened Terraform S3 state backends.
#[derive(Parser, Debug)]
#[command(name = "tfstate-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controller.
    Run(Box<RunArgs>),
    /// Print the backend configuration of a TerraformStateBackend object, offline.
    Render(RenderArgs),
    /// Print the CustomResourceDefinitions as YAML: both, as two documents, or one with
    /// `--kind` (exactly what its file in `crds/` holds).
    Crd(CrdArgs),
    /// The state's versions, and restoring one, with YOUR AWS credentials (the SDK's default
    /// chain), not the operator's.
    #[command(subcommand)]
    State(StateCommand),
}

#[derive(Subcommand, Debug)]
enum StateCommand {
    /// List the state object's versions: id, time, size, the current one, and Terraform's
    /// serial and lineage when your credentials may read and decrypt them.
    Versions(StateArgs),
    /// Make an earlier version current again by a server-side copy with the backend's
    /// encryption. Refuses while the state is locked (unless --force) or for a version of
    /// another lineage (unless --skip-lineage-check or --force); never deletes a version.
    Restore(RestoreArgs),
}

#[derive(Args, Debug)]
struct StateArgs {
    /// YAML file of the TerraformStateBackend (`-` for standard input).
    #[arg(short = 'f', long = "filename", conflicts_with_all = ["namespace", "name"])]
    file: Option<PathBuf>,
    /// Namespace of the TerraformStateBackend in the cluster (default kubeconfig).
    #[arg(short = 'n', long, requires = "name")]
    namespace: Option<String>,
    /// Name of the TerraformStateBackend in the cluster.
    #[arg(requires = "namespace")]
    name: Option<String>,
    #[command(flatten)]
    aws: AwsArgs,
    /// PEM bundle of the CAs to trust for AWS (as the standard AWS_CA_BUNDLE).
    #[arg(long, env = "AWS_CA_BUNDLE")]
    aws_ca_bundle: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct RestoreArgs {
    #[command(flatten)]
    state: StateArgs,
    /// The version id to make current (from `state versions`).
    #[arg(long)]
    version: String,
    /// Restore even while a lock is held (left alone) or for another lineage (never a
    /// delete marker).
    #[arg(long)]
    force: bool,
    /// Restore without checking the version's lineage (another state's, or one that cannot
    /// be read, such as an OpenTofu-encrypted state), still under the state's lock and
    /// refused while someone else holds it.
    #[arg(long)]
    skip_lineage_check: bool,
}

#[derive(Args, Debug)]
struct CrdArgs {
    /// Only this CRD.
    #[arg(long, value_enum)]
    kind: Option<CrdKind>,
}

/// The CustomResourceDefinitions of the operator.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CrdKind {
    /// TerraformStateBackend (namespaced): crds/terraformstatebackends.tfstate.dev.yaml.
    Backend,
    /// TerraformStatePolicy (cluster-scoped): crds/terraformstatepolicies.tfstate.dev.yaml.
    Policy,
}

/// Settings shared by `run` and `render`.
#[derive(Args, Debug)]
struct AwsArgs {
    /// Region of backends whose spec names none.
    #[arg(long, env = "TFSTATE_DEFAULT_REGION")]
    default_region: Option<String>,
    /// Custom AWS endpoint (S3-compatible stores, local testing); also rendered into the
    /// published `endpoints`.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    aws_endpoint_url: Option<String>,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    aws: AwsArgs,
    /// PEM bundle of the CAs to trust for AWS (as the standard AWS_CA_BUNDLE).
    #[arg(long, env = "AWS_CA_BUNDLE")]
    aws_ca_bundle: Option<PathBuf>,
    /// Watch one namespace only (default: all).
    #[arg(long, env = "TFSTATE_NAMESPACE")]
    namespace: Option<String>,
    /// How often every backend is checked for drift (each at its own slot in the interval,
    /// so that checks are spread evenly rather than arriving together).
    #[arg(long, env = "TFSTATE_RESYNC_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    resync_interval: Duration,
    /// How soon a backend is looked at again after a pass wrote something (to verify it and
    /// settle its status), or while AWS finishes something (a table becoming ACTIVE).
    #[arg(long, env = "TFSTATE_VERIFY_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    verify_delay: Duration,
    /// The longest one reconcile pass may take; past it the pass is abandoned, reported and
    /// retried with back-off.
    #[arg(long, env = "TFSTATE_RECONCILE_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    reconcile_timeout: Duration,
    /// Deadline of one attempt of an AWS call (connect, send, answer).
    #[arg(long, env = "TFSTATE_AWS_ATTEMPT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    aws_attempt_timeout: Duration,
    /// Deadline of a whole AWS call, its retries included.
    #[arg(long, env = "TFSTATE_AWS_OPERATION_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    aws_operation_timeout: Duration,
    /// Attempts per AWS call, the first included (the SDK's standard retry mode: exponential
    /// back-off with jitter on throttling, 5xx and network errors).
    #[arg(long, env = "TFSTATE_AWS_MAX_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    aws_max_attempts: u32,
    /// Client-side rate limits per AWS service, in requests per second, e.g.
    /// `s3=50,kms=20,iam=5` (services: s3, kms, dynamodb, iam, sts, cloudtrail). Every attempt waits for
    /// a token of its service's bucket (burst: a tenth of a second's worth); the wait counts
    /// against --aws-attempt-timeout. Default: no limit.
    #[arg(long, env = "TFSTATE_AWS_RATE_LIMIT", default_value = "")]
    aws_rate_limit: RateLimits,
    /// How many backends are reconciled at once.
    #[arg(long, env = "TFSTATE_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Address of the Prometheus `/metrics` endpoint.
    #[arg(long, env = "TFSTATE_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Address of the `/healthz` and `/readyz` endpoints (may equal --metrics-addr).
    #[arg(long, env = "TFSTATE_HEALTH_ADDR", default_value = "0.0.0.0:8081")]
    health_addr: SocketAddr,
    /// Run only while holding the Lease `tfstate-operator-leader` (for several replicas).
    #[arg(long, env = "TFSTATE_LEADER_ELECT")]
    leader_elect: bool,
    /// Namespace of the leader Lease (the operator's own; the Helm chart passes it).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Identity in the leader Lease (the Helm chart passes the Pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds without renewal after which another replica may take the lease over.
    #[arg(long, env = "TFSTATE_LEASE_DURATION", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Log format.
    #[arg(long, env = "TFSTATE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Crash-test fail point (test builds only), e.g. `after-create-key`.
    #[cfg(feature = "failpoints")]
    #[arg(long, hide = true, env = "TFSTATE_FAILPOINT")]
    failpoint: Option<String>,
}

#[derive(Args, Debug)]
struct RenderArgs {
    /// YAML file of the object (`-` for standard input).
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
    #[command(flatten)]
    aws: AwsArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd(args) => crd(args.kind).map(print),
        Command::Render(args) => render(args).map(print),
        Command::State(cmd) => state(cmd).map(print),
        Command::Run(args) => run(*args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print(text: String) {
    // A closed pipe (`| head`) is not worth a panic.
    let _ = std::io::stdout().write_all(text.as_bytes());
}

fn crd(kind: Option<CrdKind>) -> Result<String, String> {
    use tfstate_operator::api::{crd_yaml, policy_crd_yaml};
    let yaml = match kind {
        Some(CrdKind::Backend) => crd_yaml(),
        Some(CrdKind::Policy) => policy_crd_yaml(),
        None => crd_yaml().and_then(|backend| Ok(format!("{backend}---\n{}", policy_crd_yaml()?))),
    };
    yaml.map_err(|e| format!("cannot serialize the CRD: {e}"))
}

fn render(args: RenderArgs) -> Result<String, String> {
    let mut yaml = String::new();
    if args.file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut yaml).map_err(|e| format!("reading standard input: {e}"))?;
    } else {
        yaml = std::fs::read_to_string(&args.file).map_err(|e| format!("reading {}: {e}", args.file.display()))?;
    }
    let defaults = OperatorDefaults { region: args.aws.default_region };
    let rendered = tfstate_operator::offline::render_object(&yaml, &defaults, args.aws.aws_endpoint_url.as_deref())
        .map_err(|e| e.to_string())?;
    let mut out = format!(
        "# backend.tf\n{}\n# backend.tfbackend\n{}\n# flat keys\n",
        rendered.backend_tf, rendered.backend_tfbackend
    );
    for (k, v) in &rendered.flat {
        out.push_str(&format!("{k}={v}\n"));
    }
    if let Some(enc) = &rendered.encryption {
        out.push_str(&format!("# encryption.tf\n{}\n# TF_ENCRYPTION\n{}", enc.encryption_tf, enc.tf_encryption));
    }
    Ok(out)
}

fn read_input(file: &PathBuf) -> Result<String, String> {
    let mut yaml = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut yaml).map_err(|e| format!("reading standard input: {e}"))?;
        Ok(yaml)
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))
    }
}

fn state(cmd: StateCommand) -> Result<String, String> {
    let (args, restore) = match cmd {
        StateCommand::Versions(args) => (args, None),
        StateCommand::Restore(r) => {
            let opts = tfstate_operator::state::RestoreOptions { force: r.force, skip_lineage: r.skip_lineage_check };
            (r.state, Some((r.version, opts)))
        }
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("starting the async runtime: {e}"))?;
    runtime.block_on(async move {
        let obj: tfstate_operator::api::TerraformStateBackend = match (&args.file, &args.namespace, &args.name) {
            (Some(file), _, _) => {
                serde_yaml_ng::from_str(&read_input(file)?).map_err(|e| format!("not a TerraformStateBackend: {e}"))?
            }
            (None, Some(ns), Some(name)) => {
                let client = kube::Client::try_default().await.map_err(|e| format!("connecting to Kubernetes: {e}"))?;
                kube::Api::namespaced(client, ns).get(name).await.map_err(|e| format!("reading {ns}/{name}: {e}"))?
            }
            _ => return Err("name the backend: -f FILE, or -n NAMESPACE NAME".into()),
        };
        let defaults = OperatorDefaults { region: args.aws.default_region.clone() };
        let target = tfstate_operator::state::target_from_object(&obj, &defaults).map_err(|e| e.to_string())?;
        let settings = AwsSettings {
            endpoint_url: args.aws.aws_endpoint_url,
            ca_bundle: args.aws_ca_bundle,
            default_region: args.aws.default_region,
            ..Default::default()
        };
        let aws = AwsClientFactory::new(settings).await.map_err(|e| e.to_string())?.clients(&target.region);
        let out = match restore {
            None => tfstate_operator::state::versions(&aws, &target).await,
            Some((version, opts)) => tfstate_operator::state::restore(&aws, &target, &version, opts).await,
        };
        out.map_err(|e| e.to_string())
    })
}

fn run(args: RunArgs) -> Result<(), String> {
    telemetry::init(args.log_format);
    #[cfg(feature = "failpoints")]
    let failpoints = Failpoints::armed(args.failpoint.clone());
    #[cfg(not(feature = "failpoints"))]
    let failpoints = Failpoints::default();
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("starting the async runtime: {e}"))?;
    runtime.block_on(async move {
        let client = kube::Client::try_default().await.map_err(|e| format!("connecting to Kubernetes: {e}"))?;
        let settings = AwsSettings {
            endpoint_url: args.aws.aws_endpoint_url.clone(),
            ca_bundle: args.aws_ca_bundle,
            default_region: args.aws.default_region.clone(),
            limits: CallLimits {
                attempt_timeout: args.aws_attempt_timeout,
                operation_timeout: args.aws_operation_timeout,
                max_attempts: args.aws_max_attempts,
            },
            rate_limits: args.aws_rate_limit,
        };
        let aws = AwsClientFactory::new(settings).await.map_err(|e| e.to_string())?;
        let config = ReconcileConfig {
            defaults: OperatorDefaults { region: args.aws.default_region },
            endpoint_url: args.aws.aws_endpoint_url,
            resync_interval: args.resync_interval,
            verify_delay: args.verify_delay,
            reconcile_timeout: args.reconcile_timeout,
            instance: args.identity.clone(),
        };
        let ctx = Arc::new(Context::new(client, aws, config, failpoints));
        let http_state =
            tfstate_operator::http::HttpState { metrics: ctx.metrics.clone(), health: ctx.health.clone() };
        let (metrics_addr, health_addr) = (args.metrics_addr, args.health_addr);
        tokio::spawn(async move {
            if let Err(e) = tfstate_operator::http::serve(metrics_addr, health_addr, http_state).await {
                tracing::error!(error = %e, %metrics_addr, %health_addr, "HTTP endpoints failed");
            }
        });
        // Standbys are ready (see tfstate_operator::health): readiness says the process and
        // its watches work, `tfstate_leader` who works.
        let mut leadership = None;
        if args.leader_elect {
            ctx.health.set_role(Role::Standby);
            let config = tfstate_operator::leader::LeaderConfig {
                namespace: args.lease_namespace,
                lease_name: "tfstate-operator-leader".into(),
                identity: args.identity.unwrap_or_else(|| format!("tfstate-operator-{}", std::process::id())),
                duration_seconds: args.lease_duration_seconds,
            };
            let client = ctx.client.clone();
            leadership = Some(tfstate_operator::leader::acquire(client, &config).await.map_err(|e| format!("leader election: {e}"))?);
            ctx.health.set_role(Role::Leader);
        }
        tracing::info!(namespace = ?args.namespace, resync = ?args.resync_interval, %metrics_addr, "tfstate-operator starting");
        let controller = controller::run(ctx, ControllerConfig { namespace: args.namespace, concurrency: args.concurrency });
        match leadership.as_mut() {
            Some(l) => tokio::select! {
                () = controller => {}
                // Another replica leads now: stop at once rather than reconcile beside it.
                () = l.lost() => return Err("lost the leader lease; exiting so that only the leader reconciles".into()),
            },
            None => controller.await,
        }
        tracing::info!("tfstate-operator stopped");
        Ok(())
    })
}
