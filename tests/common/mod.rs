//! Shared helpers of the integration tests: they run against the real test ground that
//! `scripts/testground-up.sh` starts (the README's test command does it for you).

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use tfstate_operator::aws::AwsSettings;

pub mod faults;
pub mod harness;
pub mod operator;

/// The test ground described by the env file that `testground-up.sh` wrote.
pub struct Ground {
    env: HashMap<String, String>,
}

impl Ground {
    /// Reads `$TFSTATE_TESTGROUND_ENV`. Fails loudly when it is missing: these tests
    /// must never pass by not running.
    pub fn load() -> Ground {
        let path = std::env::var("TFSTATE_TESTGROUND_ENV").unwrap_or_else(|_| {
            panic!(
                "TFSTATE_TESTGROUND_ENV is not set: integration tests need the test ground. \
                 Run the README's test command (scripts/test.sh), or start it with \
                 `dir=$(scripts/testground-up.sh)` and export TFSTATE_TESTGROUND_ENV=$dir/env"
            )
        });
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read test ground env {path}: {e}"));
        let env = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        // The operator takes AWS credentials from the SDK's default chain, as in
        // production; here that chain must find the emulator's from the environment.
        assert!(
            std::env::var_os("AWS_ACCESS_KEY_ID").is_some(),
            "AWS_ACCESS_KEY_ID is not set: export the test ground env first (set -a; . {path}; set +a)"
        );
        Ground { env }
    }

    /// A value of the env file.
    pub fn var(&self, key: &str) -> &str {
        self.env.get(key).unwrap_or_else(|| panic!("test ground env has no {key}"))
    }

    /// A Kubernetes client with the admin token.
    pub async fn kube(&self) -> Client {
        Client::try_from(self.kube_config().await).expect("kube client")
    }

    /// The admin's client configuration.
    pub async fn kube_config(&self) -> Config {
        let kubeconfig = Kubeconfig::read_from(self.var("KUBECONFIG")).expect("read kubeconfig");
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("kubeconfig")
    }

    /// The operator's AWS settings pointing at the emulator (TLS, its CA trusted).
    pub fn aws_settings(&self) -> AwsSettings {
        AwsSettings {
            endpoint_url: Some(self.var("AWS_ENDPOINT_URL").to_string()),
            ca_bundle: Some(PathBuf::from(self.var("AWS_CA_BUNDLE"))),
            default_region: Some(self.var("AWS_REGION").to_string()),
            ..Default::default()
        }
    }

    /// As [`Ground::aws_settings`], but through the fault-injecting endpoint in front of the
    /// emulator (same CA): what fails there is set with [`faults::Faults`].
    pub fn faulty_aws_settings(&self) -> AwsSettings {
        AwsSettings {
            endpoint_url: Some(self.var("TESTGROUND_FAULTS_ENDPOINT_URL").to_string()),
            ..self.aws_settings()
        }
    }

    /// `scripts/testground-ctl.sh DIR ACTION NAME`: stops, starts or restarts `etcd`,
    /// `kube-apiserver`, `faults` or `moto` (back empty: its state is in memory; a start
    /// waits until it answers). Blocking; panics with
    /// the script's output when it fails.
    pub fn ctl(&self, action: &str, name: &str) {
        let out = std::process::Command::new(self.var("TESTGROUND_CTL"))
            .args([self.var("TESTGROUND_DIR"), action, name])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run TESTGROUND_CTL");
        assert!(
            out.status.success(),
            "testground-ctl {action} {name} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The repository root (where `crds/` and `samples/` are): the checkout the test runs in.
///
/// Read at run time (cargo sets `CARGO_MANIFEST_DIR` for every test it runs), not with
/// `env!`: checkouts sharing one target directory reuse each other's test binaries when
/// their sources are older, and a compile-time path would then read another checkout's
/// (or a deleted clone's) files.
pub fn repo_root() -> &'static Path {
    static ROOT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
    })
}

/// A short random suffix for names that must not collide between tests and runs.
pub fn random_suffix() -> String {
    let n = std::collections::hash_map::RandomState::new().build_hasher().finish();
    format!("{:08x}", n as u32)
}

/// Label of the namespaces that [`test_namespace`] makes: the permissive test policy
/// selects them (the tenancy tests use [`strict_namespace`], under the built-in default).
pub const PERMISSIVE_LABEL: (&str, &str) = ("tfstate.dev/test-policy", "permissive");

/// The cluster policy of the ordinary integration tests: they trust service accounts of
/// other namespaces (`ci/runner`), adopt and use existing keys, which the built-in default
/// refuses. Only namespaces labelled [`PERMISSIVE_LABEL`] are selected.
const PERMISSIVE_POLICY: &str = r#"{
  "apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStatePolicy",
  "metadata": {"name": "tfstate-tests-permissive"},
  "spec": {
    "namespaceSelector": {"matchLabels": {"tfstate.dev/test-policy": "permissive"}},
    "allowAdoption": true,
    "trust": {"allowedServiceAccountNamespaces": ["*"], "allowedAwsAccountIds": ["123456789012", "210987654321"]},
    "encryption": {"allowedExistingKeyArns": ["arn:aws:kms:*:123456789012:key/*"]}
  }
}"#;

/// Applies every CRD of `crds/`, waits until the API server serves them, and applies the
/// permissive test policy.
pub async fn install_crd(client: &Client) {
    for file in ["terraformstatebackends.tfstate.dev.yaml", "terraformstatepolicies.tfstate.dev.yaml"] {
        let yaml = std::fs::read_to_string(repo_root().join("crds").join(file)).expect("read crds/");
        let crd: CustomResourceDefinition = serde_yaml_ng::from_str(&yaml).expect("crds/ holds a CRD");
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        let name = crd.metadata.name.clone().expect("CRD has a name");
        api.patch(&name, &PatchParams::apply("tfstate-tests").force(), &Patch::Apply(&crd)).await.expect("apply CRD");
        let mut established = false;
        for _ in 0..100 {
            let got = api.get(&name).await.expect("get CRD");
            established = got
                .status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
            if established {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(established, "CRD {name} not Established after 10 s");
    }
    let policy: tfstate_operator::api::TerraformStatePolicy =
        serde_json::from_str(PERMISSIVE_POLICY).expect("the permissive policy parses");
    let api: Api<tfstate_operator::api::TerraformStatePolicy> = Api::all(client.clone());
    api.patch("tfstate-tests-permissive", &PatchParams::apply("tfstate-tests").force(), &Patch::Apply(&policy))
        .await
        .expect("apply the permissive test policy");
}

/// Creates a fresh namespace `<prefix>-<random>` under the permissive test policy and
/// returns its name.
pub async fn test_namespace(client: &Client, prefix: &str) -> String {
    namespace_with(client, prefix, Some(PERMISSIVE_LABEL)).await
}

/// Creates a fresh namespace `<prefix>-<random>` that no test policy selects (the built-in
/// default applies) and returns its name.
pub async fn strict_namespace(client: &Client, prefix: &str) -> String {
    namespace_with(client, prefix, None).await
}

async fn namespace_with(client: &Client, prefix: &str, label: Option<(&str, &str)>) -> String {
    let name = format!("{prefix}-{}", random_suffix());
    let labels: std::collections::BTreeMap<String, String> =
        label.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("create namespace");
    name
}

/// Deletes a namespace (the controller-manager finishes the job in the background).
pub async fn delete_namespace(client: &Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone()).delete(name, &DeleteParams::default()).await;
}
