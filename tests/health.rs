//! Honest readiness, with the operator binary as a process under a service account of its
//! own: while its RBAC lacks list/watch on terraformstatebackends, `/readyz` answers 503
//! naming the failing watch and `tfstate_watch_errors_total{watch="backends"}` counts;
//! once the Role is granted, the watch lists and `/readyz` answers 200. Everything is
//! polled with deadlines.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::operator::operator_process;
use common::{Ground, install_crd, test_namespace};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// A `tfstate-operator run` process, killed when dropped.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// GET `path` on 127.0.0.1:`port`: (status code, body); None while nothing answers.
async fn get(port: u16, path: &'static str) -> Option<(u16, String)> {
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let (head, body) = out.split_once("\r\n\r\n")?;
        let code = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, body.to_string()))
    })
    .await
    .ok()?
}

/// `tfstate_watch_errors_total{watch="<watch>"}`, 0 when absent.
async fn watch_errors(port: u16, watch: &str) -> u64 {
    let Some((_, text)) = get(port, "/metrics").await else { return 0 };
    let series = format!("tfstate_watch_errors_total{{watch=\"{watch}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&series)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Polls until `pred` holds on `/readyz` (at most `timeout`); returns the last answer.
async fn wait_readyz(port: u16, timeout: Duration, what: &str, pred: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        if let Some((code, body)) = get(port, "/readyz").await {
            if pred(code, &body) {
                return (code, body);
            }
            last = Some((code, body));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("/readyz not {what} within {timeout:?}; last answer: {last:?}");
}

fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("a valid object")
}

/// A service account in `ns` and a kubeconfig with its token (the token controller of the
/// ground writes it into a Secret).
async fn service_account_kubeconfig(ground: &Ground, client: &Client, ns: &str, dir: &std::path::Path) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    accounts.create(&PostParams::default(), &from(json!({"metadata": {"name": "operator"}}))).await.expect("create SA");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let secret = loop {
        let sa = accounts.get("operator").await.expect("get SA");
        if let Some(name) = sa.secrets.unwrap_or_default().into_iter().find_map(|r| r.name) {
            break name;
        }
        assert!(tokio::time::Instant::now() < deadline, "no token Secret for the service account within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let secret = Api::<Secret>::namespaced(client.clone(), ns).get(&secret).await.expect("token Secret");
    let token = secret.data.and_then(|d| d.get("token").cloned()).expect("token in the Secret");
    let token = String::from_utf8(token.0).expect("token is text");
    let path = dir.join("kubeconfig");
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: g\n  cluster: {{server: \"{}\", certificate-authority: \"{}/certs/apiserver.crt\"}}\nusers:\n- name: op\n  user: {{token: \"{token}\"}}\ncontexts:\n- name: g\n  context: {{cluster: g, user: op, namespace: {ns}}}\ncurrent-context: g\n",
        ground.var("KUBE_APISERVER_URL"),
        ground.var("TESTGROUND_DIR"),
    );
    std::fs::write(&path, kubeconfig).expect("write the kubeconfig");
    path.display().to_string()
}

/// What the operator may do, as the chart grants it, but for `backends` (the rules on
/// terraformstatebackends, granted separately).
fn rules(backends: bool) -> serde_json::Value {
    if backends {
        return json!([
            {"apiGroups": ["tfstate.dev"], "resources": ["terraformstatebackends"], "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": ["tfstate.dev"], "resources": ["terraformstatebackends/status"], "verbs": ["get", "patch"]},
            {"apiGroups": ["tfstate.dev"], "resources": ["terraformstatebackends/finalizers"], "verbs": ["update"]}
        ]);
    }
    json!([
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch", "create", "patch"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}
    ])
}

async fn bind_role(client: &Client, ns: &str, name: &str, rules: serde_json::Value) {
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &from(json!({"metadata": {"name": name}, "rules": rules})))
        .await
        .expect("create Role");
    let binding = json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": ns}]
    });
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &from(binding))
        .await
        .expect("create RoleBinding");
}

/// The cluster-wide reads of the admission cache (policies, namespaces); deleted when dropped.
struct ClusterGrant {
    client: Client,
    name: String,
}

impl ClusterGrant {
    async fn new(client: &Client, ns: &str) -> ClusterGrant {
        let name = format!("tfstate-health-test-{ns}");
        let rules = json!([
            {"apiGroups": ["tfstate.dev"], "resources": ["terraformstatepolicies"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]}
        ]);
        Api::<ClusterRole>::all(client.clone())
            .create(&PostParams::default(), &from(json!({"metadata": {"name": name}, "rules": rules})))
            .await
            .expect("create ClusterRole");
        let binding = json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": ns}]
        });
        Api::<ClusterRoleBinding>::all(client.clone())
            .create(&PostParams::default(), &from(binding))
            .await
            .expect("create ClusterRoleBinding");
        ClusterGrant { client: client.clone(), name }
    }

    async fn remove(self) {
        let dp = DeleteParams::default();
        let _ = Api::<ClusterRoleBinding>::all(self.client.clone()).delete(&self.name, &dp).await;
        let _ = Api::<ClusterRole>::all(self.client.clone()).delete(&self.name, &dp).await;
    }
}

#[tokio::test]
async fn readyz_is_503_while_the_backend_watch_is_forbidden_and_200_once_granted() {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, "health").await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let kubeconfig = service_account_kubeconfig(&ground, &client, &ns, dir.path()).await;
    let grant = ClusterGrant::new(&client, &ns).await;
    bind_role(&client, &ns, "operator-base", rules(false)).await;

    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _operator = Process(
        operator_process(&ground, &ns)
            .env("KUBECONFIG", &kubeconfig)
            .args(["--metrics-addr", &addr, "--health-addr", &addr])
            .spawn()
            .expect("start the operator binary"),
    );

    // Forbidden: unready, the failing watch and its cause named, its errors counted.
    let (_, body) = wait_readyz(port, Duration::from_secs(60), "503 naming the backends watch", |code, body| {
        code == 503 && body.contains("backends: failing")
    })
    .await;
    assert!(body.contains("cannot list") && body.contains("(403 Forbidden)"), "the cause is in the body: {body}");
    for synced in ["configmaps: synced", "policies: synced", "namespaces: synced"] {
        let (_, body) = wait_readyz(port, Duration::from_secs(30), synced, |_, body| body.contains(synced)).await;
        assert!(body.starts_with("not ready"), "{body}");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while watch_errors(port, "backends").await < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the backend watch's errors are counted (2 within 30 s)");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(watch_errors(port, "configmaps").await, 0, "the other watches did not fail");

    // Granted: the next retry (the watcher backs off at most 30 s) lists, and it is ready.
    bind_role(&client, &ns, "operator-backends", rules(true)).await;
    let (_, body) = wait_readyz(port, Duration::from_secs(90), "200", |code, _| code == 200).await;
    assert!(body.starts_with("ready\n") && body.contains("backends: synced"), "{body}");

    grant.remove().await;
    common::delete_namespace(&client, &ns).await;
}
