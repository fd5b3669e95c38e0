//! kube-runtime wiring: the Controller over TerraformStateBackend objects (and the
//! ConfigMaps they own), the finalizer as the top-level action, and the error policy.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::finalizer::{self, Event, finalizer};
use kube::runtime::{PredicateConfig, WatchStreamExt, reflector, watcher};
use kube::{Api, ResourceExt};
use tracing::Instrument;

use crate::api::{FINALIZER, Reason, TerraformStateBackend};
use crate::cache;
use crate::context::Context;
use crate::health::Watch;
use crate::metrics::ResultLabels;
use crate::reconcile::backend::apply_backend;
use crate::reconcile::cleanup::cleanup_backend;
use crate::reconcile::error::ReconcileError;
use crate::reconcile::outcome::{Backoff, FailureClass, Outcome, Requeue, decide};
use crate::reconcile::publish::MANAGED_LABEL;

/// The controller's own settings.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Watch one namespace only (`None`: all).
    pub namespace: Option<String>,
    /// Backends reconciled at once.
    pub concurrency: u16,
}

/// Runs the controller until SIGTERM/SIGINT. Every watch feeds `ctx.health` (what
/// `/readyz` answers) and stores its objects without managedFields.
pub async fn run(ctx: Arc<Context>, config: ControllerConfig) {
    let client = ctx.client.clone();
    // Admission reads the cluster policies and namespace labels from memory.
    let cache = ctx.clone();
    tokio::spawn(async move { cache.admission.run(cache.client.clone(), &cache.health).await });
    let (backends, config_maps): (Api<TerraformStateBackend>, Api<ConfigMap>) = match &config.namespace {
        Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client, ns)),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let managed = format!("{}={}", MANAGED_LABEL.0, MANAGED_LABEL.1);
    let (reader, writer) = reflector::store();
    // Only changes that need work trigger a reconcile: the operator's own status writes
    // would otherwise cost a second pass (and an extra status write) after every change.
    let seen = ctx.clone();
    let triggers = watcher(backends, watcher::Config::default())
        .modify(cache::strip)
        .default_backoff()
        .inspect(move |item| {
            seen.health.observe(Watch::Backends, item);
            if let Ok(event) = item {
                seen.observe_backend(event);
            }
            if let Ok(watcher::Event::Delete(obj)) = item {
                forget_backend(&seen, obj);
            }
        })
        .reflect(writer)
        .applied_objects()
        .predicate_filter(needs_reconcile, PredicateConfig::default());
    // A change to a published ConfigMap triggers its owner, except the events of the
    // operator's own writes (the reconcile that wrote has just converged everything).
    // Deletions always do: a deleted ConfigMap is republished at once.
    let own = ctx.clone();
    let config_map_triggers = watcher(config_maps, watcher::Config::default().labels(&managed))
        .modify(cache::strip)
        .default_backoff()
        .inspect({
            let seen = ctx.clone();
            move |item| {
                seen.health.observe(Watch::ConfigMaps, item);
                // Before the event triggers its owner: that pass must see the change.
                seen.observe_config_map(item);
            }
        })
        .try_filter_map(move |event| {
            let changed = match event {
                watcher::Event::Apply(cm) | watcher::Event::InitApply(cm) => {
                    (!own.is_own_config_map_write(&cm)).then_some(cm)
                }
                watcher::Event::Delete(cm) => {
                    own.forget_own_config_map_write(&cm.namespace().unwrap_or_default(), &cm.name_any());
                    Some(cm)
                }
                watcher::Event::Init | watcher::Event::InitDone => None,
            };
            futures::future::ready(Ok(changed))
        });
    Controller::for_stream(triggers, reader)
        .owns_stream(config_map_triggers)
        .with_config(controller::Config::default().concurrency(config.concurrency))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
                // Watch errors are logged (at warn) and counted where they happen.
                Err(e) => tracing::debug!(error = %e, "reconcile failed"),
            }
        })
        .await;
}

/// Forgets what the process remembers of a deleted backend: its ConfigMap writes (under
/// every name it may have published) and its failure count, which a deletion that never
/// reached a successful pass (finalizer removed by hand) would otherwise leave behind.
fn forget_backend(ctx: &Context, obj: &TerraformStateBackend) {
    let ns = obj.namespace().unwrap_or_default();
    let names = [
        obj.spec.output.config_map_name.clone(),
        obj.status.as_ref().and_then(|s| s.config_map_name.clone()),
        Some(format!("{}-backend", obj.name_any())),
    ];
    for name in names.into_iter().flatten() {
        ctx.forget_own_config_map_write(&ns, &name);
    }
    ctx.succeeded(&key_of(obj));
    ctx.metrics.set_lock(&ns, &obj.name_any(), None);
}

/// What, in an object, calls for a reconcile: its identity, spec (generation),
/// finalizers, deletion and the force-unlock annotation. Status and the other metadata do not.
fn needs_reconcile(obj: &TerraformStateBackend) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    obj.metadata.uid.hash(&mut h);
    obj.metadata.generation.hash(&mut h);
    obj.metadata.finalizers.hash(&mut h);
    obj.metadata.deletion_timestamp.as_ref().map(|t| t.0.to_string()).hash(&mut h);
    // A force-unlock request is acted on at once.
    obj.annotations().get(crate::reconcile::locks::FORCE_UNLOCK_ANNOTATION).hash(&mut h);
    obj.annotations().get(crate::reconcile::locks::FORCE_UNLOCK_WORKSPACE_ANNOTATION).hash(&mut h);
    Some(h.finish())
}

fn key_of(obj: &TerraformStateBackend) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// The top-level action: the finalizer helper decides between Apply and Cleanup.
///
/// kube-runtime creates this future inside its `reconciling object` span (`object.ref`,
/// `object.reason`: why the pass runs) but polls it outside that span; the span is carried
/// along, so every line a pass logs names its object and what triggered it.
fn reconcile(
    obj: Arc<TerraformStateBackend>,
    ctx: Arc<Context>,
) -> impl std::future::Future<Output = Result<Action, finalizer::Error<ReconcileError>>> + Send + 'static {
    reconcile_pass(obj, ctx).instrument(tracing::Span::current())
}

async fn reconcile_pass(
    obj: Arc<TerraformStateBackend>,
    ctx: Arc<Context>,
) -> Result<Action, finalizer::Error<ReconcileError>> {
    tracing::debug!("pass started");
    let key = key_of(&obj);
    let started = std::time::Instant::now();
    let _in_flight = ctx.metrics.pass_started();
    let api: Api<TerraformStateBackend> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let pass = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            // Boxed: a whole pass is a large future, and a debug build would overflow a
            // worker thread's stack with it.
            Event::Apply(obj) => Box::pin(apply_backend(&obj, &ctx)).await,
            Event::Cleanup(obj) => Box::pin(cleanup_backend(&obj, &ctx)).await,
        }
    });
    // kube-runtime never times a reconcile out: a pass past its bound is abandoned,
    // reported and retried with back-off, so that it cannot pin a concurrency slot.
    let bound = ctx.config.reconcile_timeout;
    let result = match tokio::time::timeout(bound, pass).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(object = %key, timeout = ?bound, "reconcile abandoned: it did not finish in time");
            ctx.metrics.reconcile_timeouts.inc();
            Err(finalizer::Error::ApplyFailed(ReconcileError::Timeout(bound)))
        }
    };
    let m = &ctx.metrics;
    m.reconcile_seconds.observe(started.elapsed().as_secs_f64());
    let label = match &result {
        Ok(_) => "ok",
        Err(finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e)) => e.metric_label(),
        Err(_) => "kubernetes_error",
    };
    m.reconciles.get_or_create(&ResultLabels { result: label.into() }).inc();
    if result.is_ok() {
        ctx.succeeded(&key);
    }
    result
}

/// A failed pass backs off exponentially per object, with jitter, at the pace its class
/// calls for (see [`decide`]): transient errors soon, AccessDenied more slowly, deterministic
/// errors rarely. Blocked and invalid objects never get here (they are written into status
/// and wait for the resync or a change).
fn error_policy(obj: Arc<TerraformStateBackend>, err: &finalizer::Error<ReconcileError>, ctx: Arc<Context>) -> Action {
    let (reason, outcome) = match err {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
            (e.metric_label(), Outcome::Failed(e.reason(), e.class()))
        }
        // Adding or removing the finalizer failed: a Kubernetes API error.
        _ => ("kubernetes_error", Outcome::Failed(Reason::KubernetesError, FailureClass::Transient)),
    };
    let policy = match decide(outcome).requeue {
        Requeue::Backoff(policy) => policy,
        _ => Backoff::TRANSIENT,
    };
    let delay = ctx.failed(&key_of(&obj), policy);
    tracing::warn!(object = %key_of(&obj), error = %err, reason, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}
