//! The Kubernetes side of the benchmark: CRD and namespace, the N backends, waiting until
//! they are Ready, and resourceVersion snapshots to count the operator's writes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tfstate_operator::api::TerraformStateBackend;

use crate::{Ctx, Result};

/// Both CRDs as `crds/` holds them: without the policy CRD admission never syncs (and the
/// operator never becomes ready), so every reconcile would wait for it and fail.
const CRD_FILES: [&str; 2] = [
    concat!(env!("CARGO_MANIFEST_DIR"), "/crds/terraformstatebackends.tfstate.dev.yaml"),
    concat!(env!("CARGO_MANIFEST_DIR"), "/crds/terraformstatepolicies.tfstate.dev.yaml"),
];

/// How a backend is configured; the mix is mostly the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// KMS key created by the operator + DynamoDB lock table (the defaults).
    KmsDynamoDb,
    /// KMS key + S3 lock files: no table.
    KmsLockfile,
    /// SSE-S3 (no key) + DynamoDB lock table.
    Aes256DynamoDb,
}

impl Mode {
    /// Backend `i` of the mix: 80 % defaults, 10 % lock files, 10 % AES256.
    pub fn of(i: usize) -> Mode {
        match i % 10 {
            7 => Mode::KmsLockfile,
            9 => Mode::Aes256DynamoDb,
            _ => Mode::KmsDynamoDb,
        }
    }

    /// Label for the report.
    pub fn label(self) -> &'static str {
        match self {
            Mode::KmsDynamoDb => "KMS+DynamoDB",
            Mode::KmsLockfile => "KMS+Lockfile",
            Mode::Aes256DynamoDb => "AES256+DynamoDB",
        }
    }
}

/// Applies both CRDs from `crds/` and waits until they are served.
pub async fn install_crd(client: &Client) -> Result<()> {
    for file in CRD_FILES {
        let yaml = std::fs::read_to_string(file).ctx(&format!("reading {file}"))?;
        let crd: CustomResourceDefinition = serde_yaml_ng::from_str(&yaml).ctx("parsing the CRD")?;
        let name = crd.metadata.name.clone().ok_or("the CRD has no name")?;
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        api.patch(&name, &PatchParams::apply("tfstate-bench").force(), &Patch::Apply(&crd))
            .await
            .ctx("applying the CRD")?;
        let mut established = false;
        for _ in 0..100 {
            let got = api.get(&name).await.ctx("reading the CRD")?;
            let conditions = got.status.and_then(|s| s.conditions).unwrap_or_default();
            established = conditions.iter().any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !established {
            return Err(format!("CRD {name} not Established after 10 s"));
        }
    }
    Ok(())
}

/// Creates namespace `name`.
pub async fn create_namespace(client: &Client, name: &str) -> Result<()> {
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).ctx("namespace")?;
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.ctx("creating the namespace")?;
    Ok(())
}

/// Backend number `i` of this run (unique bucket name; other names derive from it).
pub fn backend(i: usize, run: &str, account: &str) -> Result<TerraformStateBackend> {
    let mut spec = serde_json::json!({
        "bucket": {"name": format!("tfsb-bench-{run}-{i:04}")},
        "access": {"trust": {"awsPrincipals": [format!("arn:aws:iam::{account}:root")]}},
    });
    match Mode::of(i) {
        Mode::KmsDynamoDb => {}
        Mode::KmsLockfile => spec["locking"] = serde_json::json!({"mode": "Lockfile"}),
        Mode::Aes256DynamoDb => spec["encryption"] = serde_json::json!({"mode": "AES256"}),
    }
    let obj = serde_json::json!({
        "apiVersion": "tfstate.dev/v1alpha1",
        "kind": "TerraformStateBackend",
        "metadata": {"name": format!("b{i:04}")},
        "spec": spec,
    });
    serde_json::from_value(obj).ctx("building a backend object")
}

/// Creates every backend (a few at a time, as a GitOps sync would).
pub async fn create_all(api: &Api<TerraformStateBackend>, objects: Vec<TerraformStateBackend>) -> Result<()> {
    futures::stream::iter(objects)
        .map(|obj| async move {
            api.create(&PostParams::default(), &obj).await.ctx(&format!("creating backend {}", obj.name_any()))
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// Whether the object is Ready for its current generation.
pub fn is_ready(obj: &TerraformStateBackend) -> bool {
    let generation = obj.metadata.generation;
    obj.status.as_ref().is_some_and(|s| {
        s.observed_generation == generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True" && c.observed_generation == generation)
    })
}

/// Watches the namespace's backends until `n` are Ready; prints progress every 10 s. Returns
/// when all are Ready, or fails after `timeout`.
///
/// A watch, not a listing every half second: at N=1,000 each listing is several MB that the
/// API server serializes and this process parses, CPU taken from the emulator on a small
/// machine, which the floor (the emulator alone) does not pay.
pub async fn wait_all_ready(
    api: &Api<TerraformStateBackend>,
    n: usize,
    started: Instant,
    timeout: Duration,
) -> Result<()> {
    let deadline = tokio::time::Instant::from_std(started + timeout);
    let mut ready: BTreeMap<String, bool> = BTreeMap::new();
    let events = watcher(api.clone(), watcher::Config::default()).default_backoff();
    let mut events = std::pin::pin!(events);
    let mut next_print = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let count = ready.values().filter(|r| **r).count();
        if count >= n {
            return Ok(());
        }
        match tokio::time::timeout_at(next_print.min(deadline), events.try_next()).await {
            Ok(Ok(Some(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)))) => {
                ready.insert(obj.name_any(), is_ready(&obj));
            }
            Ok(Ok(Some(watcher::Event::Delete(obj)))) => {
                ready.remove(&obj.name_any());
            }
            // A re-list starts: what it does not list again is gone.
            Ok(Ok(Some(watcher::Event::Init))) => ready.clear(),
            Ok(Ok(Some(watcher::Event::InitDone))) => {}
            Ok(Ok(None)) => return Err("the watch of the backends ended".into()),
            // The watcher retries with back-off; say so, and go on.
            Ok(Err(e)) => eprintln!("  ... watching backends: {e}"),
            Err(_) if tokio::time::Instant::now() >= deadline => {
                let list = api.list(&ListParams::default().match_any()).await.ctx("listing backends")?;
                let ready = list.items.iter().filter(|o| is_ready(o)).count();
                let stuck: Vec<String> = list.items.iter().filter(|o| !is_ready(o)).take(3).map(describe).collect();
                return Err(format!("only {ready}/{n} backends Ready after {timeout:?}; e.g.:\n{}", stuck.join("\n")));
            }
            Err(_) => {
                eprintln!("  ... {count}/{n} Ready after {:.0} s", started.elapsed().as_secs_f64());
                next_print += Duration::from_secs(10);
            }
        }
    }
}

/// One line per not-Ready condition of a backend, for error messages.
fn describe(obj: &TerraformStateBackend) -> String {
    let conditions = obj.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let bad: Vec<String> = conditions
        .iter()
        .filter(|c| c.status != "True")
        .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
        .collect();
    format!("  {}: {}", obj.name_any(), if bad.is_empty() { "no status yet".into() } else { bad.join("; ") })
}

/// resourceVersion of every object the operator writes in the namespace, by kind/name.
pub type Versions = BTreeMap<String, String>;

/// Backends, ConfigMaps and Events of `namespace` with their resourceVersions.
pub async fn versions(client: &Client, namespace: &str) -> Result<Versions> {
    let mut out = Versions::new();
    collect::<TerraformStateBackend>(client, namespace, &mut out).await?;
    collect::<ConfigMap>(client, namespace, &mut out).await?;
    collect::<Event>(client, namespace, &mut out).await?;
    Ok(out)
}

async fn collect<K>(client: &Client, namespace: &str, out: &mut Versions) -> Result<()>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).to_string();
    // A fresh (quorum) list: the snapshot must not lag behind the writes it counts.
    let list = Api::<K>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .ctx(&format!("listing {kind}s"))?;
    for obj in list.items {
        out.insert(format!("{kind}/{}", obj.name_any()), obj.resource_version().unwrap_or_default());
    }
    Ok(())
}

/// Objects created or changed between two snapshots, counted by kind.
pub fn writes_between(before: &Versions, after: &Versions) -> BTreeMap<String, u64> {
    let mut by_kind = BTreeMap::new();
    for (key, rv) in after {
        if before.get(key) != Some(rv) {
            let kind = key.split('/').next().unwrap_or_default().to_string();
            *by_kind.entry(kind).or_default() += 1;
        }
    }
    by_kind
}

/// The API server's request counters (`apiserver_request_total`: every client's requests,
/// the benchmark's own included), summed over response codes by verb and resource, e.g.
/// `PATCH terraformstatebackends/status`.
pub async fn api_requests(client: &Client) -> Result<BTreeMap<String, u64>> {
    let request = http::Request::get("/metrics").body(Vec::new()).map_err(|e| format!("metrics request: {e}"))?;
    let text = client.request_text(request).await.ctx("reading the API server's /metrics")?;
    Ok(api_requests_of(&text))
}

/// The API group of the operator's custom resources.
const GROUP: &str = "tfstate.dev";

/// [`api_requests`] from the text exposition.
fn api_requests_of(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let Some((_, labels, value)) = crate::operator::split_sample(line) else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        let label = |k: &str| labels.get(k).map(String::as_str).unwrap_or_default();
        let resource = match label("subresource") {
            "" => label("resource").to_string(),
            sub => format!("{}/{sub}", label("resource")),
        };
        // kube-apiserver v1.20 counts a GET of one custom resource as a LIST (checked on the
        // ground: one GET of a backend moved the LIST counter by one); the garbage collector
        // GETs the owner of each new ConfigMap, so the label must not claim a list.
        let verb = match label("verb") {
            "LIST" if label("group") == GROUP => "GET|LIST",
            verb => verb,
        };
        *out.entry(format!("{verb} {resource}")).or_default() += value as u64;
    }
    out
}

/// Requests counted between two [`api_requests`] readings (keys that did not grow left out).
pub fn requests_between(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(before.get(k).copied().unwrap_or(0))))
        .filter(|(_, v)| *v > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_api_requests_over_codes() {
        let text = "# TYPE apiserver_request_total counter\n\
            apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"tfstate.dev\",resource=\"terraformstatebackends\",scope=\"resource\",subresource=\"status\",verb=\"PATCH\",version=\"v1alpha1\"} 7\n\
            apiserver_request_total{code=\"409\",component=\"apiserver\",dry_run=\"\",group=\"tfstate.dev\",resource=\"terraformstatebackends\",scope=\"resource\",subresource=\"status\",verb=\"PATCH\",version=\"v1alpha1\"} 2\n\
            apiserver_request_total{code=\"201\",component=\"apiserver\",dry_run=\"\",group=\"events.k8s.io\",resource=\"events\",scope=\"resource\",subresource=\"\",verb=\"POST\",version=\"v1\"} 4\n\
            apiserver_request_duration_seconds_count{verb=\"POST\",resource=\"events\"} 4\n";
        let before = api_requests_of(text);
        assert_eq!(before["PATCH terraformstatebackends/status"], 9);
        assert_eq!(before["POST events"], 4);
        assert_eq!(before.len(), 2);
        let after = api_requests_of(&text.replace("} 4\n", "} 10\n"));
        assert_eq!(requests_between(&before, &after), BTreeMap::from([("POST events".to_string(), 6)]));
    }

    #[test]
    fn a_list_of_backends_may_be_a_get() {
        let text = "apiserver_request_total{code=\"200\",group=\"tfstate.dev\",resource=\"terraformstatebackends\",subresource=\"\",verb=\"LIST\"} 3\n\
            apiserver_request_total{code=\"200\",group=\"\",resource=\"configmaps\",subresource=\"\",verb=\"LIST\"} 2\n";
        let counts = api_requests_of(text);
        assert_eq!(counts["GET|LIST terraformstatebackends"], 3);
        assert_eq!(counts["LIST configmaps"], 2);
    }
}
