//! One test's world: a fresh namespace on the ground, an operator watching it, and clients
//! to read back both sides (Kubernetes as the admin, AWS with the SDK).

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tfstate_operator::api::TerraformStateBackend;
use tfstate_operator::aws::AwsClients;

use super::operator::{Operator, inspector, start_operator};
use super::{Ground, install_crd, test_namespace};

/// A namespace named after the test, an operator that checks for drift every `resync` in it,
/// and the clients the test reads back with.
pub struct Harness {
    /// The ground's addresses and credentials.
    pub ground: Ground,
    /// Kubernetes, as the ground's admin.
    pub client: Client,
    /// The test's namespace.
    pub ns: String,
    /// Backends in the test's namespace.
    pub api: Api<TerraformStateBackend>,
    /// AWS as the test reads it back (never through the operator).
    pub aws: AwsClients,
    /// The operator under test (stopped when the harness is dropped).
    pub op: Operator,
}

/// Starts a [`Harness`] in a new namespace named after `prefix`.
pub async fn harness(prefix: &str, resync: Duration) -> Harness {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, prefix).await;
    let op = start_operator(&ground, &ns, resync).await;
    let api = Api::namespaced(client.clone(), &ns);
    let aws = inspector(&ground).await;
    Harness { ground, client, ns, api, aws, op }
}

impl Harness {
    /// Creates backend `name` with `spec`.
    pub async fn create(&self, name: &str, spec: Value) -> TerraformStateBackend {
        let obj: TerraformStateBackend = serde_json::from_value(json!({
            "apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStateBackend",
            "metadata": {"name": name}, "spec": spec,
        }))
        .expect("test backend");
        self.api.create(&PostParams::default(), &obj).await.expect("create backend")
    }

    /// Every Event about backend `name`, as (reason, note), oldest first.
    pub async fn events(&self, name: &str) -> Vec<(String, String)> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let mut list = events.list(&ListParams::default()).await.expect("list events").items;
        list.retain(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name));
        list.sort_by(|a, b| a.metadata.creation_timestamp.cmp(&b.metadata.creation_timestamp));
        list.into_iter().map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default())).collect()
    }

    /// How many Events about backend `name` have `reason` and a note containing `text`.
    pub async fn count_events(&self, name: &str, reason: &str, text: &str) -> usize {
        self.events(name).await.iter().filter(|(r, note)| r == reason && note.contains(text)).count()
    }
}
