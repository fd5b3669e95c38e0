//! Step 7: the object's status. Building it is pure (the clock comes in as a value);
//! writing it is one server-side apply with a fixed field manager, skipped when nothing
//! but timestamps would change.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::api::{
    ConditionType, LockMode, LockModeChange, LockStatus, Reason, StateObjectStatus, TerraformStateBackend,
    TerraformStateBackendStatus,
};

/// Field manager of everything the operator writes.
pub const FIELD_MANAGER: &str = "tfstate-operator";

/// The state of one part (bucket, key, table, role, published config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartState {
    /// Condition status.
    pub ready: bool,
    /// Reason.
    pub reason: Reason,
    /// Message: what happened or what to do.
    pub message: String,
}

impl PartState {
    /// A part that is as desired.
    pub fn ready(reason: Reason, message: impl Into<String>) -> Self {
        Self { ready: true, reason, message: message.into() }
    }

    /// A part that is not (yet) as desired.
    pub fn not_ready(reason: Reason, message: impl Into<String>) -> Self {
        Self { ready: false, reason, message: message.into() }
    }
}

/// Everything a reconcile learned, to be written into status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusReport {
    /// One state per part condition type.
    pub parts: BTreeMap<ConditionType, PartState>,
    /// ARNs and names, where known.
    pub bucket_arn: Option<String>,
    /// KMS key ARN.
    pub kms_key_arn: Option<String>,
    /// Lock table ARN.
    pub lock_table_arn: Option<String>,
    /// Role ARN.
    pub role_arn: Option<String>,
    /// Account.
    pub account_id: Option<String>,
    /// ConfigMap name.
    pub config_map_name: Option<String>,
    /// The cluster policy the spec was admitted (or refused) under.
    pub policy: Option<String>,
    /// Crash-safety marker for key and bucket creation.
    pub creation_started_at: Option<String>,
    /// The replica's bucket ARN, region, key ARN and replication role ARN.
    pub replica: Option<ReplicaReport>,
    /// Work is still under way (requeued soon): kstatus `Reconciling`.
    pub reconciling: Option<String>,
    /// This pass neither converged nor gave a final answer for the object's generation (it
    /// failed on the way, or only recorded an intent): `observedGeneration` keeps its
    /// previous value, so that a spec change completed by a later pass is reported as an
    /// update (see [`super::outcome::Decision::settles_generation`]).
    pub keeps_observed_generation: bool,
    /// ARN of the audit trail this backend owns.
    pub trail_arn: Option<String>,
    /// `status.lock`, when this pass read it.
    pub lock: Option<LockStatus>,
    /// The lock mode of the configuration published by this pass.
    pub lock_mode: Option<LockMode>,
    /// `status.lockModeChange` as of this pass (the last change of the published mode).
    pub lock_mode_change: Option<LockModeChange>,
    /// The answer to a force-unlock request made in this pass (`ForceUnlock` condition);
    /// `None` keeps the previous answer as it was.
    pub force_unlock: Option<PartState>,
    /// `status.state`, when this pass listed the state's versions.
    pub state: Option<StateObjectStatus>,
    /// Regions whose replica key must outlive the backend ([`replica_keys_kept`]); added
    /// to what status already knew, never taking anything away.
    pub replica_keys_kept: Vec<String>,
}

/// What status says of the replica (`spec.replication`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaReport {
    /// Replica bucket ARN.
    pub bucket_arn: Option<String>,
    /// Replica region.
    pub region: Option<String>,
    /// Replica key ARN.
    pub kms_key_arn: Option<String>,
    /// Replication role ARN.
    pub role_arn: Option<String>,
}

/// The parts whose conditions make up `Ready`.
pub const PARTS: [ConditionType; 5] = [
    ConditionType::BucketReady,
    ConditionType::EncryptionKeyReady,
    ConditionType::LockTableReady,
    ConditionType::RoleReady,
    ConditionType::BackendConfigPublished,
];

/// The parts that exist only when the spec asks for them; when reported, `Ready` needs them
/// True too (the user asked for them: a backend whose audit trail is missing is not what
/// was asked for, although its runners may already use it).
pub const OPTIONAL_PARTS: [ConditionType; 2] = [ConditionType::AuditReady, ConditionType::ReplicationReady];

/// Builds the next status from `report`, keeping each condition's
/// `lastTransitionTime` while its status does not change.
pub fn next_status(
    previous: Option<&TerraformStateBackendStatus>,
    generation: i64,
    report: StatusReport,
    now: &Time,
) -> TerraformStateBackendStatus {
    let prev_conditions = previous.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let mut conditions = Vec::new();
    let mut push = |t: ConditionType, s: &PartState| {
        let status = if s.ready { "True" } else { "False" };
        let since = prev_conditions
            .iter()
            .find(|c| c.type_ == t.as_str() && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        conditions.push(Condition {
            type_: t.as_str().to_string(),
            status: status.to_string(),
            reason: s.reason.as_str().to_string(),
            message: s.message.clone(),
            last_transition_time: since,
            observed_generation: Some(generation),
        });
    };

    let parts: Vec<(ConditionType, &PartState)> =
        PARTS.iter().chain(&OPTIONAL_PARTS).filter_map(|t| report.parts.get(t).map(|s| (*t, s))).collect();
    let not_ready = parts.iter().find(|(_, s)| !s.ready);
    let required = parts.iter().filter(|(t, _)| PARTS.contains(t)).count();
    let ready = match not_ready {
        None if required == PARTS.len() => {
            PartState::ready(Reason::Converged, "The backend is ready: every part is converged")
        }
        None => PartState::not_ready(Reason::Creating, "Not every part has been checked yet"),
        Some((t, s)) => PartState::not_ready(s.reason, format!("{t}: {}", s.message)),
    };
    push(ConditionType::Ready, &ready);
    for (t, s) in &parts {
        push(*t, s);
    }
    // kstatus: Reconciling and Stalled are present only while they are true.
    // Both may hold at once (one part still being created, another blocked).
    if let Some(msg) = &report.reconciling {
        push(ConditionType::Reconciling, &PartState::ready(Reason::Creating, msg.clone()));
    }
    if let Some((t, s)) = parts.iter().find(|(_, s)| !s.ready && s.reason.is_permanent()) {
        push(ConditionType::Stalled, &PartState::ready(s.reason, format!("{t}: {}", s.message)));
    }
    // The last force-unlock answer stays, as written, until the next request.
    match &report.force_unlock {
        Some(s) => push(ConditionType::ForceUnlock, s),
        None => conditions
            .extend(prev_conditions.iter().filter(|c| c.type_ == ConditionType::ForceUnlock.as_str()).cloned()),
    }

    let observed_generation =
        if report.keeps_observed_generation { previous.and_then(|s| s.observed_generation) } else { Some(generation) };
    TerraformStateBackendStatus {
        observed_generation,
        conditions,
        bucket_arn: report.bucket_arn,
        kms_key_arn: report.kms_key_arn,
        lock_table_arn: report.lock_table_arn,
        role_arn: report.role_arn,
        account_id: report.account_id,
        config_map_name: report.config_map_name,
        policy: report.policy,
        creation_started_at: report.creation_started_at,
        trail_arn: report.trail_arn,
        // A pass that did not get to the lock (or to publishing) keeps what was known.
        lock: report.lock.or_else(|| previous.and_then(|p| p.lock.clone())),
        lock_mode: report.lock_mode.or(previous.and_then(|p| p.lock_mode)),
        lock_mode_change: report.lock_mode_change.or_else(|| previous.and_then(|p| p.lock_mode_change.clone())),
        state: report.state.or_else(|| previous.and_then(|p| p.state.clone())),
        replica_bucket_arn: report.replica.as_ref().and_then(|r| r.bucket_arn.clone()),
        replica_region: report.replica.as_ref().and_then(|r| r.region.clone()),
        replica_kms_key_arn: report.replica.as_ref().and_then(|r| r.kms_key_arn.clone()),
        replication_role_arn: report.replica.and_then(|r| r.role_arn),
        replica_keys_kept: merged_regions(previous.map(|p| p.replica_keys_kept.as_slice()), &report.replica_keys_kept),
    }
}

/// The regions of `previous` and `now`, sorted, each once.
fn merged_regions(previous: Option<&[String]>, now: &[String]) -> Vec<String> {
    let all: std::collections::BTreeSet<&String> = previous.unwrap_or_default().iter().chain(now).collect();
    all.into_iter().cloned().collect()
}

/// The regions whose replica key must outlive the backend, given what status knew and the
/// replica the spec names now (bucket, region): the status's plus, when the spec no longer
/// names the replica status records (another bucket, another region, or no replication),
/// that replica's region. Its key is found again by the same alias if the replica ever
/// comes back to that region (A, then B, then A with another bucket), and would otherwise
/// be scheduled for deletion with copies of the state still in the bucket left behind.
pub fn replica_keys_kept(previous: Option<&TerraformStateBackendStatus>, spec: Option<(&str, &str)>) -> Vec<String> {
    let Some(p) = previous else { return Vec::new() };
    let mut kept = p.replica_keys_kept.clone();
    let recorded = p.replica_bucket_arn.as_deref().and_then(|a| a.rsplit_once(":::")).map(|(_, b)| b);
    if let (Some(bucket), Some(region)) = (recorded, p.replica_region.as_deref()) {
        let left = spec != Some((bucket, region));
        if left && !kept.iter().any(|r| r == region) {
            kept.push(region.to_string());
        }
    }
    merged_regions(None, &kept)
}

/// `report` with what `previous` already knew filled in where this pass learned nothing:
/// for failing, intent and invalid-spec passes. Status is the object's memory: an ARN
/// found once (the key's above all: it is how the key is found again) is never dropped by
/// a pass that did not get that far.
pub fn remember(mut report: StatusReport, previous: Option<&TerraformStateBackendStatus>) -> StatusReport {
    let Some(p) = previous else { return report };
    let keep = |now: &mut Option<String>, before: &Option<String>| {
        if now.is_none() {
            now.clone_from(before);
        }
    };
    keep(&mut report.bucket_arn, &p.bucket_arn);
    keep(&mut report.kms_key_arn, &p.kms_key_arn);
    keep(&mut report.lock_table_arn, &p.lock_table_arn);
    keep(&mut report.role_arn, &p.role_arn);
    keep(&mut report.account_id, &p.account_id);
    keep(&mut report.config_map_name, &p.config_map_name);
    keep(&mut report.policy, &p.policy);
    keep(&mut report.trail_arn, &p.trail_arn);
    if report.lock.is_none() {
        report.lock.clone_from(&p.lock);
    }
    if report.lock_mode.is_none() {
        report.lock_mode = p.lock_mode;
    }
    if report.lock_mode_change.is_none() {
        report.lock_mode_change.clone_from(&p.lock_mode_change);
    }
    if report.state.is_none() {
        report.state.clone_from(&p.state);
    }
    if report.replica.is_none() && p.replica_bucket_arn.is_some() {
        report.replica = Some(ReplicaReport {
            bucket_arn: p.replica_bucket_arn.clone(),
            region: p.replica_region.clone(),
            kms_key_arn: p.replica_kms_key_arn.clone(),
            role_arn: p.replication_role_arn.clone(),
        });
    }
    report
}

/// The lock table's part while the table is not ACTIVE, from the status AWS reported
/// (`None`: this pass created it). Says what AWS is doing: a table another tool is updating
/// is not one being created (and its settle later is not reported `Created`). A state that
/// does not end by itself (its KMS key unusable, archived, being deleted) is a permanent
/// `DependencyNotReady`, looked at again at the resync rather than polled.
pub fn table_not_yet_active(name: &str, observed_status: Option<&str>) -> PartState {
    match observed_status {
        None | Some("CREATING") => {
            PartState::not_ready(Reason::Creating, format!("DynamoDB table {name} is being created"))
        }
        Some("UPDATING") => PartState::not_ready(
            Reason::Updating,
            format!("DynamoDB table {name} is UPDATING: waiting for it to become ACTIVE"),
        ),
        Some(other) => PartState::not_ready(
            Reason::DependencyNotReady,
            format!(
                "DynamoDB table {name} is {other}: it cannot hold locks until it is ACTIVE again (for \
                 INACCESSIBLE_ENCRYPTION_CREDENTIALS or ARCHIVED: make its KMS key usable, or restore it)"
            ),
        ),
    }
}

/// The status of an object whose spec is invalid: no AWS call was made.
pub fn invalid_spec_report(message: &str) -> StatusReport {
    refused_report(Reason::InvalidSpec, message)
}

/// The status of an object refused before any AWS call (`InvalidSpec`, `PolicyViolation`):
/// every part carries the reason and what to fix.
pub fn refused_report(reason: Reason, message: &str) -> StatusReport {
    let mut report = StatusReport::default();
    for t in PARTS {
        report.parts.insert(t, PartState::not_ready(reason, message));
    }
    report
}

/// Whether two statuses differ in more than condition timestamps.
pub fn differs(a: Option<&TerraformStateBackendStatus>, b: &TerraformStateBackendStatus) -> bool {
    let strip = |s: &TerraformStateBackendStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = Time(Default::default());
        }
        s
    };
    a.is_none_or(|a| strip(a) != strip(b))
}

/// Writes `status` by server-side apply, unless it equals `current` but for timestamps.
/// Returns whether a write was made.
pub async fn write(
    api: &Api<TerraformStateBackend>,
    name: &str,
    current: Option<&TerraformStateBackendStatus>,
    status: &TerraformStateBackendStatus,
) -> Result<bool, kube::Error> {
    if !differs(current, status) {
        return Ok(false);
    }
    let patch = json!({
        "apiVersion": "tfstate.dev/v1alpha1",
        "kind": "TerraformStateBackend",
        "status": status,
    });
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(true)
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
