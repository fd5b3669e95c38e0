//! The lock part of a pass: read the default workspace's lock where the lock mode keeps it,
//! act on a force-unlock request (of the default workspace's lock, or of a named workspace's),
//! and say what `status.lock`, the `ForceUnlock` condition
//! and the Events are. AWS reads, and deletes only on request and only conditionally.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::api::{LockSource, LockStatus, Reason, TerraformStateBackend};
use crate::aws::{AwsClients, AwsError, AwsErrorKind, ConditionalDelete, dynamodb, s3};
use crate::reconcile::error::ReconcileError;
use crate::reconcile::status::{FIELD_MANAGER, PartState};

use super::info::{LockInfoError, parse_lock_info, shown};
use super::rules::{
    ReadLock, UnlockPlan, is_stale, lock_status, plan_unlock, source_name, stale_event_due, workspace_state_key,
};
use super::{FORCE_UNLOCK_ANNOTATION, FORCE_UNLOCK_WORKSPACE_ANNOTATION};

/// Where this backend's lock lives, derived from the spec only (never from the annotation).
#[derive(Clone, Copy, Debug)]
pub struct LockTargets<'a> {
    /// The lock table, when the lock mode uses it and this object owns it (and it exists).
    pub table: Option<&'a str>,
    /// The state bucket, when the lock mode uses lock files and this object owns it.
    pub lockfile_bucket: Option<&'a str>,
    /// The state bucket's name (the lock item is `<bucket>/<stateKey>`).
    pub bucket: &'a str,
    /// The default workspace's state key.
    pub state_key: &'a str,
    /// `spec.workspaceKeyPrefix` (Terraform's `env:` when `None`), for workspace locks.
    pub workspace_key_prefix: Option<&'a str>,
}

impl LockTargets<'_> {
    /// Terraform's DynamoDB `LockID` of the default workspace (not the `-md5` digest item).
    pub fn lock_id(&self) -> String {
        format!("{}/{}", self.bucket, self.state_key)
    }

    /// The lock file of the default workspace.
    pub fn lock_file(&self) -> String {
        format!("{}.tflock", self.state_key)
    }
}

/// What the lock part of a pass found and did.
#[derive(Clone, Debug, Default)]
pub struct LockPass {
    /// `status.lock`.
    pub status: LockStatus,
    /// The answer to a force-unlock request, when there was one.
    pub force_unlock: Option<PartState>,
    /// Events to publish (StaleLock, ForceUnlocked, refusals).
    pub events: Vec<(EventType, Reason, String)>,
}

/// One source as read, with what its conditional delete needs (the exact `Info`, the ETag).
struct Read {
    source: LockSource,
    lock: ReadLock,
    guard: Option<String>,
}

async fn read_all(aws: &AwsClients, t: &LockTargets<'_>) -> Vec<Read> {
    let mut reads = Vec::new();
    if let Some(table) = t.table {
        let read = match dynamodb::get_lock(&aws.dynamodb, table, &t.lock_id()).await {
            Ok(None) => Read { source: LockSource::DynamoDB, lock: ReadLock::Free, guard: None },
            Ok(Some(item)) => {
                let lock = match item.info.as_deref().ok_or(LockInfoError::NoInfo).and_then(parse_lock_info) {
                    Ok(info) => ReadLock::Held(info),
                    Err(e) => ReadLock::Unreadable(e.to_string()),
                };
                Read { source: LockSource::DynamoDB, lock, guard: item.info }
            }
            Err(e) => {
                let e = e.on(format!("DynamoDB table {table}, item {}", t.lock_id()));
                Read { source: LockSource::DynamoDB, lock: failed(&e), guard: None }
            }
        };
        reads.push(read);
    }
    if let Some(bucket) = t.lockfile_bucket {
        let key = t.lock_file();
        let read = match s3::get_lock_object(&aws.s3, bucket, &key).await {
            Ok(None) => Read { source: LockSource::Lockfile, lock: ReadLock::Free, guard: None },
            Ok(Some(obj)) => {
                let lock = if obj.truncated {
                    ReadLock::Unreadable(LockInfoError::TooLarge(s3::LOCK_FILE_MAX_BYTES).to_string())
                } else {
                    match parse_lock_info(&String::from_utf8_lossy(&obj.body)) {
                        Ok(info) => ReadLock::Held(info),
                        Err(e) => ReadLock::Unreadable(e.to_string()),
                    }
                };
                Read { source: LockSource::Lockfile, lock, guard: Some(obj.etag) }
            }
            Err(e) => {
                let e = e.on(format!("S3 object s3://{bucket}/{key}"));
                Read { source: LockSource::Lockfile, lock: failed(&e), guard: None }
            }
        };
        reads.push(read);
    }
    reads
}

/// A failed read, said at warn: a transient one leaves `status.lock` as it was (see
/// [`lock_status`]), so the log is where it shows.
fn failed(e: &AwsError) -> ReadLock {
    let transient = e.kind == AwsErrorKind::Transient;
    tracing::warn!(error = %e, transient, "the state lock could not be read");
    ReadLock::Failed { error: e.to_string(), transient }
}

fn pairs(reads: &[Read]) -> Vec<(LockSource, &ReadLock)> {
    reads.iter().map(|r| (r.source, &r.lock)).collect()
}

/// Reads the lock, acts on the object's force-unlock annotation, and decides the StaleLock
/// Event. `stale_after` is `spec.locking.staleAfter`; `now` the pass's clock.
pub async fn check_locks(
    aws: &AwsClients,
    api: &Api<TerraformStateBackend>,
    obj: &TerraformStateBackend,
    targets: &LockTargets<'_>,
    stale_after: Duration,
    now: Timestamp,
) -> Result<LockPass, ReconcileError> {
    let previous = obj.status.as_ref().and_then(|s| s.lock.as_ref());
    let mut reads = read_all(aws, targets).await;
    let mut pass = LockPass::default();

    let request = obj.annotations().get(FORCE_UNLOCK_ANNOTATION).map(String::as_str);
    let workspace = obj.annotations().get(FORCE_UNLOCK_WORKSPACE_ANNOTATION).map(String::as_str);
    if request.is_none() && workspace.is_some() {
        // Alone it asks for nothing; left there, it would send the next default-workspace
        // request (the one the StaleLock Event suggests) to that workspace.
        let msg = "tfstate.dev/force-unlock-workspace without tfstate.dev/force-unlock names no lock: nothing \
                   changed and the annotation was removed (set both, the lock ID in tfstate.dev/force-unlock)";
        remove_annotations(api, obj, None, workspace).await?;
        pass.force_unlock = Some(PartState::not_ready(Reason::ForceUnlockRefused, msg));
        pass.events.push((EventType::Warning, Reason::ForceUnlockRefused, msg.into()));
    }
    if let Some(requested) = request {
        let answer = match workspace
            .map(|ws| (ws, workspace_state_key(targets.workspace_key_prefix, ws, targets.state_key)))
        {
            None => {
                let before = lock_status(&pairs(&reads), previous);
                force_unlock(aws, targets, requested, &reads, &before, "").await?
            }
            Some((_, Err(msg))) => Unlock::Refused(
                Reason::ForceUnlockRefused,
                format!("{msg}; nothing changed and the annotations were removed"),
            ),
            Some((ws, Ok(key))) => {
                // Another workspace's lock: read where it lives, under this backend's own
                // table and bucket only (the targets are the spec's), and unlock it there.
                let ws_targets = LockTargets { state_key: &key, ..*targets };
                let ws_reads = read_all(aws, &ws_targets).await;
                let before = lock_status(&pairs(&ws_reads), None);
                force_unlock(aws, &ws_targets, requested, &ws_reads, &before, &format!(" of workspace {:?}", shown(ws)))
                    .await?
            }
        };
        match answer {
            Unlock::Done(state, event) => {
                remove_annotations(api, obj, Some(requested), workspace).await?;
                pass.force_unlock = Some(state);
                pass.events.push(event);
                // What is there now, after the deletes.
                reads = read_all(aws, targets).await;
            }
            Unlock::Refused(reason, msg) => {
                remove_annotations(api, obj, Some(requested), workspace).await?;
                pass.force_unlock = Some(PartState::not_ready(reason, msg.clone()));
                pass.events.push((EventType::Warning, reason, msg));
            }
            Unlock::Wait(msg) => {
                pass.force_unlock = Some(PartState::not_ready(Reason::ForceUnlockRefused, msg));
            }
        }
    }

    let mut status = lock_status(&pairs(&reads), previous);
    let created_at = reads.iter().find_map(|r| match &r.lock {
        ReadLock::Held(info) if info.id.as_deref().map(shown) == status.id && status.held => info.created_at,
        _ => None,
    });
    if stale_event_due(&status, is_stale(created_at, now, stale_after)) {
        let id = status.id.clone().unwrap_or_default();
        pass.events.push((
            EventType::Warning,
            Reason::StaleLock,
            format!(
                "the state lock {id:?} held by {} for {} since {} is older than spec.locking.staleAfter ({}): if its \
                 holder is gone, break it with: kubectl annotate terraformstatebackend {} tfstate.dev/force-unlock='{id}'",
                status.who.as_deref().unwrap_or("an unknown holder"),
                status.operation.as_deref().unwrap_or("an unknown operation"),
                status.created.as_deref().unwrap_or("an unknown time"),
                humantime::format_duration(stale_after),
                obj.name_any(),
            ),
        ));
        status.stale_reported = true;
    }
    pass.status = status;
    Ok(pass)
}

/// The answer to a force-unlock request.
enum Unlock {
    /// Deleted (or found changed and left alone): the part's state and its Event.
    Done(PartState, (EventType, Reason, String)),
    /// Nothing done; the request is dropped (reason, message).
    Refused(Reason, String),
    /// Nothing done; the request stays (a lock could not be read).
    Wait(String),
}

/// Acts on a request to remove lock `requested` at `t` (`reads` as just read there, `before`
/// their status): each source holding exactly that lock ID is deleted conditionally, on what
/// was read. `scope` names a workspace in messages (empty for the default workspace).
async fn force_unlock(
    aws: &AwsClients,
    t: &LockTargets<'_>,
    requested: &str,
    reads: &[Read],
    before: &LockStatus,
    scope: &str,
) -> Result<Unlock, ReconcileError> {
    let sources = match plan_unlock(requested, &pairs(reads)) {
        UnlockPlan::Delete(sources) => sources,
        UnlockPlan::Refuse(reason, msg) if scope.is_empty() => return Ok(Unlock::Refused(reason, msg)),
        UnlockPlan::Refuse(reason, msg) => return Ok(Unlock::Refused(reason, format!("workspace{scope}: {msg}"))),
        UnlockPlan::Wait(msg) => return Ok(Unlock::Wait(msg)),
    };
    let mut changed = Vec::new();
    for read in reads.iter().filter(|r| sources.contains(&r.source)) {
        let guard = read.guard.as_deref().unwrap_or_default();
        let result = match read.source {
            LockSource::DynamoDB => {
                let table = t.table.unwrap_or_default();
                dynamodb::delete_lock_if(&aws.dynamodb, table, &t.lock_id(), guard)
                    .await
                    .map_err(|e| e.on(format!("DynamoDB table {table}, item {}", t.lock_id())))?
            }
            _ => {
                let bucket = t.lockfile_bucket.unwrap_or_default();
                let key = t.lock_file();
                s3::delete_lock_object_if_match(&aws.s3, bucket, &key, guard)
                    .await
                    .map_err(|e| e.on(format!("S3 object s3://{bucket}/{key}")))?
            }
        };
        if result == ConditionalDelete::Changed {
            changed.push(source_name(read.source));
        }
    }
    let asked = shown(requested);
    Ok(if changed.is_empty() {
        let msg = format!(
            "removed lock {asked:?}{scope} ({}) held by {} for {} since {}",
            sources.iter().map(|s| source_name(*s)).collect::<Vec<_>>().join(" and "),
            before.who.as_deref().unwrap_or("an unknown holder"),
            before.operation.as_deref().unwrap_or("an unknown operation"),
            before.created.as_deref().unwrap_or("an unknown time"),
        );
        Unlock::Done(
            PartState::ready(Reason::ForceUnlocked, msg.clone()),
            (EventType::Normal, Reason::ForceUnlocked, msg),
        )
    } else {
        let msg = format!(
            "force-unlock of {asked:?}{scope}: the {} changed between the read and the conditional delete \
             (another holder took the lock, or it was released): it was not deleted; nothing else changed \
             and the annotation was removed",
            changed.join(" and ")
        );
        Unlock::Done(
            PartState::not_ready(Reason::LockChanged, msg.clone()),
            (EventType::Warning, Reason::LockChanged, msg),
        )
    })
}

/// Removes the force-unlock annotations (the lock ID and the workspace) by a merge patch of
/// only those, with the object's resourceVersion as precondition, and only while they still
/// ask for what was answered (`requested`, `workspace`): a new request made meanwhile is never
/// dropped unanswered.
async fn remove_annotations(
    api: &Api<TerraformStateBackend>,
    obj: &TerraformStateBackend,
    requested: Option<&str>,
    workspace: Option<&str>,
) -> Result<(), ReconcileError> {
    let name = obj.name_any();
    let mut version = obj.resource_version();
    for _ in 0..3 {
        let patch = json!({"metadata": {
            "resourceVersion": version,
            "annotations": {FORCE_UNLOCK_ANNOTATION: null, FORCE_UNLOCK_WORKSPACE_ANNOTATION: null},
        }});
        match api
            .patch(
                &name,
                &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() },
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Changed since read: still the same request?
                let now = api.get(&name).await?;
                let asks = |key: &str| now.annotations().get(key).map(String::as_str);
                if asks(FORCE_UNLOCK_ANNOTATION) != requested || asks(FORCE_UNLOCK_WORKSPACE_ANNOTATION) != workspace {
                    return Ok(());
                }
                version = now.resource_version();
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Deletes Terraform's state digest items of `bucket` (`<bucket>/<key>-md5`, every
/// workspace's) from the lock table `table`, each only if its digest is unchanged since it
/// was read. Returns how many were deleted. For a lock table runners get back after using
/// lock files only: the digests there predate the states written meanwhile.
///
/// # Errors
///
/// [`ReconcileError::Aws`] when the table cannot be scanned or an item not deleted.
pub async fn clear_stale_digests(aws: &AwsClients, table: &str, bucket: &str) -> Result<usize, ReconcileError> {
    let on = |e: crate::aws::AwsError| e.on(format!("DynamoDB table {table}, digest items of bucket {bucket}"));
    let mut deleted = 0;
    for (id, digest) in dynamodb::digest_items(&aws.dynamodb, table, bucket).await.map_err(on)? {
        if dynamodb::delete_digest_if(&aws.dynamodb, table, &id, &digest).await.map_err(on)?
            == ConditionalDelete::Deleted
        {
            deleted += 1;
        }
    }
    Ok(deleted)
}
