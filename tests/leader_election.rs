//! Leader election with two operator processes against the ground: only the leader
//! reconciles; when it is killed, the other takes over within the lease duration.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::operator::{create_backend, operator_process, unique_bucket, wait_ready};
use common::{Ground, install_crd, test_namespace};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use tfstate_operator::api::TerraformStateBackend;

const LEASE_SECONDS: u64 = 4;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Replica {
    identity: String,
    port: u16,
    child: Child,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(ground: &Ground, ns: &str, identity: &str) -> Replica {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = operator_process(ground, ns)
        .args(["--leader-elect", "--lease-namespace", ns, "--identity", identity])
        .args(["--lease-duration-seconds", &LEASE_SECONDS.to_string(), "--metrics-addr", &addr, "--health-addr", &addr])
        .spawn()
        .expect("start the operator binary");
    Replica { identity: identity.into(), port, child }
}

/// Reconciles a replica has run, from its /metrics (None while it does not answer).
async fn reconciles(port: u16) -> Option<u64> {
    let text = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    })
    .await
    .ok()??;
    Some(
        text.lines()
            .filter(|l| l.starts_with("tfstate_reconciles_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum(),
    )
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases.get_opt("tfstate-operator-leader").await.ok()??.spec?.holder_identity
}

#[tokio::test]
async fn only_the_leader_reconciles_and_the_other_takes_over() {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, "leader").await;
    let api: Api<TerraformStateBackend> = Api::namespaced(client.clone(), &ns);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let mut replicas = vec![spawn(&ground, &ns, "replica-a"), spawn(&ground, &ns, "replica-b")];

    let yaml = |name: &str| {
        format!(
            "apiVersion: tfstate.dev/v1alpha1\nkind: TerraformStateBackend\nmetadata: {{name: {name}}}\nspec:\n  bucket: {{name: {}}}\n  access: {{trust: {{awsPrincipals: ['arn:aws:iam::123456789012:root']}}}}\n",
            unique_bucket("leader")
        )
    };
    create_backend(&api, &yaml("first")).await;
    wait_ready(&api, "first").await;
    let leader = holder(&leases).await.expect("a replica holds the lease");
    let (lead, standby): (Vec<_>, Vec<_>) = replicas.iter().partition(|r| r.identity == leader);
    let (lead_port, standby_port) = (lead[0].port, standby[0].port);
    assert!(reconciles(lead_port).await.unwrap_or(0) > 0, "the leader reconciled");
    assert_eq!(reconciles(standby_port).await, Some(0), "the standby answers /metrics but never reconciles");

    // Kill the leader outright (no lease release): the standby must take over once the
    // lease expires, and converge a new backend.
    let killed_at = Instant::now();
    replicas.retain(|r| r.identity != leader);
    create_backend(&api, &yaml("second")).await;
    wait_ready(&api, "second").await;
    let took = killed_at.elapsed();
    let new_leader = holder(&leases).await.unwrap();
    assert_ne!(new_leader, leader, "leadership moved");
    assert!(reconciles(standby_port).await.unwrap_or(0) > 0, "the new leader reconciles");
    eprintln!("failover: the second backend was Ready {took:?} after the leader was killed (lease {LEASE_SECONDS} s)");
    assert!(
        took < Duration::from_secs(LEASE_SECONDS * 3 + 10),
        "took over within the lease duration (+ creation time)"
    );
}
