//! What `/readyz` answers, from what the watches tell.
//!
//! A replica is ready when every watch it runs has delivered its initial list (the
//! controller's TerraformStateBackend and ConfigMap watches, the admission cache's
//! TerraformStatePolicy and Namespace watches) and none is failing. A watch fails when the
//! API server refuses it (RBAC, a missing CRD) or the connection breaks; kube-runtime then
//! retries it with back-off (at most 30 s apart), and every error is logged at warn and
//! counted in `tfstate_watch_errors_total{watch}`.
//!
//! A failing watch is only known to have recovered when it delivers something again: a
//! relist ends in `InitDone`, a resumed watch in its next event. A resumed watch on a quiet
//! namespace may deliver nothing for hours, so a watch also counts as recovered once
//! [`FAILING_FOR`] has passed without a new error: the back-off retries far more often, so
//! a watch that is still failing keeps reporting errors within that window. One error alone
//! (a dropped connection that the next retry repairs) does not make a synced replica unready.
//!
//! Standbys under leader election are ready: they run no watch until they lead, and an
//! unready standby would stall a rolling update (the new Pod could never become ready while
//! the old leader lives) and count as disrupted in the chart's PodDisruptionBudget, blocking
//! node drains. Leadership is reported apart, by the `tfstate_leader` gauge; `/readyz` says
//! `standby` in its body. A replica that becomes leader is unready until its watches sync.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::watcher;
use tokio::time::Instant;

use crate::metrics::{Metrics, WatchLabels};

/// How long after its last error a watch that failed more than once still counts as
/// failing when nothing has told that it recovered: twice the watcher's longest back-off
/// (30 s), and a little more.
pub const FAILING_FOR: Duration = Duration::from_secs(65);

/// The watches readiness depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watch {
    /// TerraformStateBackend objects (the controller).
    Backends,
    /// The published ConfigMaps (the controller).
    ConfigMaps,
    /// TerraformStatePolicy objects (the admission cache).
    Policies,
    /// Namespaces (the admission cache).
    Namespaces,
}

impl Watch {
    /// Every watch, in report order.
    pub const ALL: [Watch; 4] = [Watch::Backends, Watch::ConfigMaps, Watch::Policies, Watch::Namespaces];

    /// The `watch` label of `tfstate_watch_errors_total`.
    pub fn label(self) -> &'static str {
        match self {
            Watch::Backends => "backends",
            Watch::ConfigMaps => "configmaps",
            Watch::Policies => "policies",
            Watch::Namespaces => "namespaces",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// This replica's part under leader election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// No leader election: the only replica, working as soon as its watches sync.
    Single,
    /// Waiting for the lease: runs no watch, ready (see the module's documentation).
    Standby,
    /// Holds the lease: works, and is ready once its watches sync.
    Leader,
}

/// What one watch event means for readiness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// The initial list (or a relist) is complete.
    Synced,
    /// The API server answered with an object: the watch works.
    Object,
    /// A list or watch is starting: says nothing yet.
    Restart,
    /// The watch failed, with the cause.
    Error(String),
}

impl Seen {
    /// The meaning of a watcher stream item.
    pub fn of<K>(item: &Result<watcher::Event<K>, watcher::Error>) -> Seen {
        match item {
            Ok(watcher::Event::InitDone) => Seen::Synced,
            Ok(watcher::Event::Init) => Seen::Restart,
            Ok(watcher::Event::Apply(_) | watcher::Event::InitApply(_) | watcher::Event::Delete(_)) => Seen::Object,
            Err(e) => Seen::Error(cause(e)),
        }
    }
}

/// The error in one line: what failed, and the API server's own message and code when it
/// answered (kube's Display of an API error carries the whole Status, debug-printed).
fn cause(e: &watcher::Error) -> String {
    let status = |s: &kube::core::Status| format!("{} ({} {})", s.message, s.code, s.reason);
    let client = |what: &str, e: &kube::Error| match e {
        kube::Error::Api(s) => format!("{what}: {}", status(s)),
        other => format!("{what}: {other}"),
    };
    match e {
        watcher::Error::InitialListFailed(e) => client("list failed", e),
        watcher::Error::WatchStartFailed(e) => client("watch failed to start", e),
        watcher::Error::WatchFailed(e) => client("watch broke", e),
        watcher::Error::WatchError(s) => format!("watch error: {}", status(s)),
        other => other.to_string(),
    }
}

#[derive(Clone, Debug, Default)]
struct WatchState {
    synced: bool,
    errors_in_a_row: u32,
    last_error: Option<(Instant, String)>,
}

/// The readiness state machine, without a clock or metrics (see [`Health`]).
#[derive(Clone, Debug)]
pub struct State {
    role: Role,
    watches: [WatchState; 4],
}

/// The answer of `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// 200 when true, 503 otherwise.
    pub ready: bool,
    /// The body: `ready` or `not ready`, then one line per watch (and the role).
    pub report: String,
}

impl State {
    /// Nothing synced yet.
    pub fn new(role: Role) -> Self {
        Self { role, watches: Default::default() }
    }

    /// Sets the role.
    pub fn set_role(&mut self, role: Role) {
        self.role = role;
    }

    /// Records what watch `w` delivered at `now`.
    pub fn record(&mut self, w: Watch, seen: Seen, now: Instant) {
        let s = &mut self.watches[w.index()];
        match seen {
            Seen::Synced => {
                s.synced = true;
                s.errors_in_a_row = 0;
                s.last_error = None;
            }
            Seen::Object => {
                s.errors_in_a_row = 0;
                s.last_error = None;
            }
            Seen::Restart => {}
            Seen::Error(cause) => {
                s.errors_in_a_row = s.errors_in_a_row.saturating_add(1);
                s.last_error = Some((now, cause));
            }
        }
    }

    /// Whether the replica is ready at `now`, and why (not).
    pub fn judge(&self, now: Instant) -> Readiness {
        if self.role == Role::Standby {
            return Readiness { ready: true, report: "ready\nstandby: not leading, no watch runs\n".into() };
        }
        let mut ready = true;
        let mut lines = String::new();
        for w in Watch::ALL {
            let s = &self.watches[w.index()];
            let recent = s.last_error.as_ref().filter(|(at, _)| now.saturating_duration_since(*at) < FAILING_FOR);
            let line = match (s.synced, recent) {
                (false, Some((_, cause))) => format!("failing (not synced): {cause}"),
                (false, None) => "waiting for the initial list".into(),
                (true, Some((_, cause))) if s.errors_in_a_row >= 2 => {
                    format!("failing ({} errors in a row): {cause}", s.errors_in_a_row)
                }
                (true, _) => "synced".into(),
            };
            ready &= line == "synced";
            let _ = writeln!(lines, "{}: {line}", w.label());
        }
        let head = if ready { "ready" } else { "not ready" };
        let role = if self.role == Role::Leader { "leader: yes\n" } else { "" };
        Readiness { ready, report: format!("{head}\n{lines}{role}") }
    }
}

/// The replica's readiness, fed by the watches, with the `tfstate_watch_errors_total` and
/// `tfstate_leader` metrics.
pub struct Health {
    state: Mutex<State>,
    metrics: Arc<Metrics>,
}

impl Health {
    /// Not ready, nothing synced, no leader election (see [`Health::set_role`]).
    pub fn new(metrics: Arc<Metrics>) -> Self {
        metrics.leader.set(1);
        Self { state: Mutex::new(State::new(Role::Single)), metrics }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the role, and `tfstate_leader` with it (0 only on a standby).
    pub fn set_role(&self, role: Role) {
        self.metrics.leader.set(i64::from(role != Role::Standby));
        self.lock().set_role(role);
    }

    /// Records a watcher stream item of watch `w`: errors are logged at warn with their
    /// cause and counted.
    pub fn observe<K>(&self, w: Watch, item: &Result<watcher::Event<K>, watcher::Error>) {
        let seen = Seen::of(item);
        if let Seen::Error(cause) = &seen {
            self.metrics.watch_errors.get_or_create(&WatchLabels { watch: w.label().into() }).inc();
            tracing::warn!(watch = w.label(), error = %cause, "watch failed; retrying with back-off");
        }
        self.lock().record(w, seen, Instant::now());
    }

    /// The answer of `/readyz` now.
    pub fn readiness(&self) -> Readiness {
        self.lock().judge(Instant::now())
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
