//! What admission needs from Kubernetes, kept in memory: every `TerraformStatePolicy` and
//! every namespace's labels, from two watches that [`PolicyCache::run`] drives. A
//! reconcile asks [`PolicyCache::effective`] for the policy of its namespace; nothing is
//! admitted before both caches have synced, because an empty cache would silently mean the
//! built-in default (and a stricter policy, not yet seen, would be skipped).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::api::TerraformStatePolicy;
use crate::cache;
use crate::health::{Health, Watch};
use crate::tenancy::{EffectivePolicy, resolve};

/// How long a reconcile waits for the caches' first sync before it reports an error.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// Why no policy can be told yet.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The caches have not synced (the watches are failing: RBAC, a missing CRD...).
    #[error(
        "the TerraformStatePolicy and Namespace caches have not synced within {0:?}; is the \
         terraformstatepolicies CRD installed and may the operator list and watch policies and namespaces?"
    )]
    NotSynced(Duration),
    /// Reading the namespace failed.
    #[error("reading namespace {namespace}: {source}")]
    Namespace {
        /// The namespace.
        namespace: String,
        /// The API error.
        source: kube::Error,
    },
}

/// The in-memory copy of the policies and namespaces.
pub struct PolicyCache {
    policies: Store<TerraformStatePolicy>,
    namespaces: Store<Namespace>,
    writers: Mutex<Option<(Writer<TerraformStatePolicy>, Writer<Namespace>)>>,
}

impl Default for PolicyCache {
    fn default() -> Self {
        let (policies, policy_writer) = reflector::store();
        let (namespaces, namespace_writer) = reflector::store();
        Self { policies, namespaces, writers: Mutex::new(Some((policy_writer, namespace_writer))) }
    }
}

impl PolicyCache {
    /// Keeps both caches current until the stream ends (the process stops), reporting to
    /// `health` (both watches are part of readiness). Namespaces are kept as name and labels
    /// only, policies without managedFields. Called once; a second call returns at once.
    pub async fn run(&self, client: Client, health: &Health) {
        let Some((policy_writer, namespace_writer)) = self.writers.lock().unwrap_or_else(|e| e.into_inner()).take()
        else {
            return;
        };
        // Errors are logged and counted by `health`; the streams only need driving.
        let policies = watcher(Api::<TerraformStatePolicy>::all(client.clone()), watcher::Config::default())
            .modify(cache::strip)
            .default_backoff()
            .inspect(|item| health.observe(Watch::Policies, item))
            .reflect(policy_writer)
            .for_each(|_| futures::future::ready(()));
        let namespaces = watcher(Api::<Namespace>::all(client), watcher::Config::default())
            .modify(cache::namespace_labels_only)
            .default_backoff()
            .inspect(|item| health.observe(Watch::Namespaces, item))
            .reflect(namespace_writer)
            .for_each(|_| futures::future::ready(()));
        tokio::join!(policies, namespaces);
    }

    /// The policy that applies to `namespace` now, once both caches have synced.
    pub async fn effective(&self, client: &Client, namespace: &str) -> Result<EffectivePolicy, AdmissionError> {
        let synced = async {
            let (a, b) = tokio::join!(self.policies.wait_until_ready(), self.namespaces.wait_until_ready());
            a.is_ok() && b.is_ok()
        };
        if !tokio::time::timeout(SYNC_TIMEOUT, synced).await.unwrap_or(false) {
            return Err(AdmissionError::NotSynced(SYNC_TIMEOUT));
        }
        let labels = match self.namespaces.get(&ObjectRef::new(namespace)) {
            Some(ns) => ns.metadata.labels.clone().unwrap_or_default(),
            // Created a moment ago, and the watch has not delivered it yet: ask.
            None => Api::<Namespace>::all(client.clone())
                .get(namespace)
                .await
                .map_err(|source| AdmissionError::Namespace { namespace: namespace.to_string(), source })?
                .metadata
                .labels
                .unwrap_or_default(),
        };
        let policies: Vec<TerraformStatePolicy> = self.policies.state().iter().map(|p| (**p).clone()).collect();
        Ok(resolve(&policies, namespace, &labels))
    }

    /// The labels a namespace has in the cache (for tests and diagnostics).
    pub fn labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces.get(&ObjectRef::new(namespace)).map(|ns| ns.metadata.labels.clone().unwrap_or_default())
    }
}
