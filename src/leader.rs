//! Leader election on a `coordination.k8s.io/v1` Lease (kube-lease-manager): with several
//! replicas only the leader reconciles; the others wait and take over within the lease
//! duration when it goes away.

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;

/// Where and as whom to hold the lease.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// Namespace of the Lease (the operator's own).
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's identity (its Pod name).
    pub identity: String,
    /// Seconds a lease stays valid without renewal: the longest a dead leader blocks the others.
    pub duration_seconds: u64,
}

/// Leadership, once won. Dropping it releases the lease, so a replica shutting down
/// cleanly hands over at once instead of after the lease duration.
pub struct Leadership {
    state: watch::Receiver<bool>,
}

impl Leadership {
    /// Resolves when leadership is lost (the lease was taken over or could not be renewed).
    pub async fn lost(&mut self) {
        while *self.state.borrow_and_update() {
            if self.state.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Waits until this replica holds the lease.
pub async fn acquire(client: Client, config: &LeaderConfig) -> Result<Leadership, LeaseManagerError> {
    let manager = LeaseManagerBuilder::new(client, &config.lease_name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(config.duration_seconds)
        // Renew well before expiry: a third of the duration.
        .with_grace((config.duration_seconds / 3).max(1))
        // One field manager per replica, as the library's default: the lease is taken by a
        // server-side apply without force, so a second replica taking an orphaned lease at the
        // same moment gets a conflict. With one shared manager both applies succeeded and both
        // replicas led until the next renewal (seen in tests/leader_election.rs).
        .with_field_manager(format!("tfstate-operator-{}", config.identity))
        .build()
        .await?;
    let (mut state, _task) = manager.watch().await;
    tracing::info!(lease = %config.lease_name, identity = %config.identity, "waiting for leadership");
    while !*state.borrow_and_update() {
        if state.changed().await.is_err() {
            break;
        }
    }
    tracing::info!(lease = %config.lease_name, identity = %config.identity, "leading");
    Ok(Leadership { state })
}
