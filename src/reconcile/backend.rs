//! The Apply side of a backend's life: validate -> desired -> observe -> plan -> apply
//! -> publish -> status. Every step is its own module; this file only orders them.

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};

use crate::api::{ConditionType as C, LockMode, Reason, TerraformStateBackend};
use crate::aws::{AssumeAs, AwsClients, s3};
use crate::context::Context;
use crate::render::render;

use super::admit::admit;
use super::apply::{
    BucketApplied, TableApplied, apply_bucket_settings, apply_inline_policy, apply_key, apply_role, apply_table,
    claim_bucket,
};
use super::desired::{
    DesiredKey, Identity, Owned, Owner, desired_key, desired_resources, desired_role, desired_runner_policy,
    resource_tags,
};
use super::error::ReconcileError;
use super::locks::{self, LockTargets, check_locks};
use super::notes::{self, Note};
use super::observe::{KeyHints, ObservedBackend, ObservedBucket, observe};
use super::outcome::{Outcome, PartHistory, PartReport, decide, part_report};
use super::plan::{
    Before, Claim, KeyChange, in_claim_order, plan_bucket, plan_inline_policy, plan_key, plan_role, plan_table,
    refuse_recorded_adoption, refuse_recorded_table_adoption,
};
use super::publish::{Published, publish};
use super::state_object::state_status;
use super::status::{self, PartState, StatusReport, invalid_spec_report, next_status, refused_report};
use super::validate::{ObjectRef, ValidSpec, check_kept_names, own_bucket, validate};

mod audit;
mod replica;

/// Reasons that report a change made by this pass.
const CHANGE_REASONS: [Reason; 3] = [Reason::Created, Reason::Updated, Reason::DriftRepaired];

/// The owner of a backend's resources, from the object's metadata.
pub fn owner_of(obj: &TerraformStateBackend) -> Result<Owner, ReconcileError> {
    Ok(Owner {
        namespace: obj.namespace().ok_or(ReconcileError::MissingMetadata("namespace"))?,
        name: obj.name_any(),
        uid: obj.uid().ok_or(ReconcileError::MissingMetadata("uid"))?,
    })
}

/// Converges one backend.
pub async fn apply_backend(obj: &TerraformStateBackend, ctx: &Context) -> Result<Action, ReconcileError> {
    let owner = owner_of(obj)?;
    let api: Api<TerraformStateBackend> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    let generation = obj.metadata.generation.unwrap_or(0);
    let previous = obj.status.as_ref();
    let now = Time(k8s_openapi::jiff::Timestamp::now());

    let target = ObjectRef { namespace: &owner.namespace, name: &owner.name };
    // Then against what status says is already the object's own (its bucket, its runners'
    // lock table): renaming those would strand the state or split the lock.
    let checked = validate(target, &obj.spec, &ctx.config.defaults)
        .and_then(|valid| check_kept_names(&valid, previous).map(|()| valid));
    let valid = match checked {
        Ok(valid) => valid,
        Err(e) => {
            // Nothing is done in AWS for an invalid spec; it waits for the next edit.
            let decision = decide(Outcome::Invalid);
            let report = status::remember(invalid_spec_report(&e.to_string()), previous);
            let status = next_status(previous, generation, report, &now);
            if status::write(&api, &owner.name, previous, &status).await?
                && let Some(kind) = decision.event
            {
                event(ctx, obj, kind, decision.reason, e.to_string()).await;
            }
            return Ok(ctx.requeue(&owner.uid, decision.requeue));
        }
    };
    // Lock-mode migrations go through Both: judged against what runners use now, before
    // any AWS call.
    let runners_use =
        locks::previous_mode(previous.and_then(|s| s.lock_mode), previous.and_then(|s| s.lock_table_arn.as_deref()));
    // And within `staleAfter` of the last change, against the mode before it too: runs that
    // started then may still lock that way. Such a refusal lifts itself when the window closes.
    let rollout = locks::open_rollout(previous.and_then(|s| s.lock_mode_change.as_ref()), valid.stale_after, now.0);
    let refusal = locks::check_migration(runners_use, valid.lock_mode).map_err(|m| (m, None)).and_then(|()| {
        locks::check_rollout(rollout.as_ref(), valid.lock_mode)
            .map_err(|m| (m, rollout.as_ref().map(|r| locks::until_closed(r, now.0))))
    });
    if let Err((message, window_closes)) = refusal {
        // A straight change waits for an edit (Stalled); one inside a window for its close
        // (Reconciling: it ends by itself).
        let (decision, reason) = match window_closes {
            None => (decide(Outcome::Invalid), Reason::UnsafeLockMigration),
            Some(_) => (decide(Outcome::AwaitingRollout), Reason::LockModeRollout),
        };
        let mut report = status::remember(refused_report(reason, &message), previous);
        if window_closes.is_some() {
            report.reconciling = Some(message.clone());
        }
        let status = next_status(previous, generation, report, &now);
        if status::write(&api, &owner.name, previous, &status).await?
            && let Some(kind) = decision.event
        {
            event(ctx, obj, kind, reason, message).await;
        }
        return Ok(ctx.requeue_within(&owner.uid, decision.requeue, window_closes));
    }
    let policy = ctx.admission.effective(&ctx.client, &owner.namespace).await?;
    // Asked once per process: the operator's own account is what "own account" means.
    let account = ctx.identity(&ctx.aws.clients(&valid.region)).await?.account_id;
    let built_in = previous.and_then(|s| s.account_id.as_deref());
    let valid = match admit(valid, &policy, &account, built_in) {
        Ok(valid) => valid,
        Err(refused) => {
            // No AWS call for a spec the policy refuses. Policies are not watched per
            // object, so look again at the resync interval: a changed policy admits it.
            let decision = decide(Outcome::Refused);
            let message = format!("refused by {}: {refused}", policy.source);
            let mut report = status::remember(refused_report(decision.reason, &message), previous);
            report.policy = Some(refused.policy.clone());
            let status = next_status(previous, generation, report, &now);
            if status::write(&api, &owner.name, previous, &status).await?
                && let Some(kind) = decision.event
            {
                event(ctx, obj, kind, decision.reason, message).await;
            }
            return Ok(ctx.requeue(&owner.uid, decision.requeue));
        }
    };

    // A replica the spec no longer names may hold copies under its region's replica key:
    // known before any AWS call, so that every status this pass writes (an intent before a
    // new replica key, too) already remembers it.
    let spec_replica = valid.replication.as_ref().map(|r| (r.bucket.as_str(), r.region.as_str()));
    let report = StatusReport {
        policy: Some(policy.policy_name().to_string()),
        replica_keys_kept: status::replica_keys_kept(previous, spec_replica),
        ..Default::default()
    };
    // Hub and spoke: the policy's operator role, assumed for this object (AWS then enforces
    // the tenant boundary, and the backend lives in that role's account).
    let assume =
        policy.operator_role_arn.as_deref().map(|arn| AssumeAs::for_object(arn, &owner.namespace, &owner.name));
    let mut run = Run {
        ctx,
        obj,
        api: &api,
        owner: &owner,
        valid: &valid,
        report,
        events: vec![],
        lock_events: vec![],
        assume: assume.clone(),
        runners_use,
        rollout: rollout.clone(),
    };
    let result = async {
        let aws = ctx.aws.clients_as(&valid.region, assume.as_ref()).await?;
        Box::pin(run.converge(&aws)).await
    }
    .await;
    let Run { mut report, mut events, lock_events, .. } = run;
    // The lock table runners may lock in is never forgotten by a pass that did not settle it
    // (its part blocked, adopted, not ACTIVE, or not reached): deletion and the rename
    // check find it by this name.
    if report.lock_table_arn.is_none() {
        report.lock_table_arn = previous.and_then(|s| s.lock_table_arn.clone());
    }
    if let Err(e) = &result {
        let decision = decide(Outcome::Failed(e.reason(), e.class()));
        report = status::remember(report, previous);
        report.keeps_observed_generation = !decision.settles_generation;
        if let Some(kind) = decision.event {
            events.push((kind, decision.reason, e.to_string()));
        }
        // Parts not reached before the failure show the failure.
        let optional =
            [valid.audit.as_ref().map(|_| C::AuditReady), valid.replication.as_ref().map(|_| C::ReplicationReady)];
        for t in status::PARTS.into_iter().chain(optional.into_iter().flatten()) {
            report.parts.entry(t).or_insert_with(|| PartState::not_ready(e.reason(), e.to_string()));
        }
    }
    let status = next_status(previous, generation, report, &now);
    let ready = status.conditions.iter().find(|c| c.type_ == C::Ready.as_str()).map(|c| c.status.as_str());
    ctx.metrics.set_ready(&format!("{}/{}", owner.namespace, owner.name), ready);
    ctx.metrics.set_lock(&owner.namespace, &owner.name, status.lock.as_ref());
    let wrote = status::write(&api, &owner.name, previous, &status).await?;
    tracing::debug!(wrote, events = events.len(), "status of the pass");
    // Events only for what changed: a no-op resync is silent. Lock Events answer a request
    // or are remembered in status.lock (StaleLock): published once each, after the status.
    // One Event per type and reason, naming every part (a create: one, not four).
    if !wrote {
        events.clear();
    }
    let notes = notes::fold(events.into_iter().chain(lock_events));
    futures::future::join_all(notes.into_iter().map(|(kind, reason, note)| event(ctx, obj, kind, reason, note))).await;
    // A failure goes to the controller's error policy, which backs off by its class.
    result?;
    let has = |t: C| status.conditions.iter().any(|c| c.type_ == t.as_str());
    let changed = status.conditions.iter().any(|c| CHANGE_REASONS.iter().any(|r| c.reason == r.as_str()));
    let blocked = status.conditions.iter().find(|c| c.type_ == C::Stalled.as_str()).and_then(|c| reason_of(&c.reason));
    let outcome = if has(C::Reconciling) {
        Outcome::InProgress
    } else if wrote && changed {
        // Something was written: look again shortly to verify it and settle the status to
        // Converged, so that no later resync has anything to write.
        Outcome::Changed
    } else if let Some(reason) = blocked {
        Outcome::Blocked(reason)
    } else {
        Outcome::Converged
    };
    // A roll-out window's end narrows the runner role's grants: a pass is due then.
    let window_closes = rollout.as_ref().map(|r| locks::until_closed(r, now.0));
    Ok(ctx.requeue_within(&owner.uid, decide(outcome).requeue, window_closes))
}

/// A condition reason as written into status.
fn reason_of(reason: &str) -> Option<Reason> {
    serde_json::from_value(serde_json::Value::String(reason.to_string())).ok()
}

/// One reconcile's working state.
struct Run<'a> {
    ctx: &'a Context,
    obj: &'a TerraformStateBackend,
    api: &'a Api<TerraformStateBackend>,
    owner: &'a Owner,
    valid: &'a ValidSpec,
    report: StatusReport,
    events: Vec<Note>,
    /// Events of the lock part (published even when the status did not change).
    lock_events: Vec<Note>,
    /// The policy's operator role, assumed for this object (hub and spoke), in every region.
    assume: Option<AssumeAs>,
    /// The lock mode runners use now (`status.lockMode`, or what it is taken to be).
    runners_use: Option<LockMode>,
    /// The last lock-mode change, while runners may still use the mode before it.
    rollout: Option<locks::Rollout>,
}

impl Run<'_> {
    /// The lock mode the runner role is granted in this pass (see [`locks::granted_mode`]).
    fn granted_mode(&self) -> LockMode {
        locks::granted_mode(self.valid.lock_mode, self.runners_use, self.rollout.as_ref())
    }

    async fn converge(&mut self, aws: &AwsClients) -> Result<(), ReconcileError> {
        let (ctx, valid, owner) = (self.ctx, self.valid, self.owner);
        let id = ctx.identity(aws).await?;
        let tags = resource_tags(valid, owner);
        let previous = self.obj.status.as_ref();
        self.report.account_id = Some(id.account_id.clone());
        self.report.config_map_name = Some(valid.config_map_name.clone());
        self.report.bucket_arn = Some(format!("arn:{}:s3:::{}", id.partition, valid.bucket));
        self.report.creation_started_at = previous.and_then(|s| s.creation_started_at.clone());

        let d_role = desired_role(valid, &id, owner);
        let d_key = desired_key(valid, &id, owner);
        let hints = KeyHints {
            known_arn: previous
                .and_then(|s| s.kms_key_arn.clone())
                .filter(|_| matches!(d_key, DesiredKey::Managed { .. })),
            creation_started: self.report.creation_started_at.is_some(),
            account_id: id.account_id.clone(),
        };
        let previous_trail = previous.and_then(|s| s.trail_arn.as_deref());
        // The spec's lock table, or while runners may still lock there (a roll-out away from
        // the table), the one kept: the name status recorded, else the default.
        let granted = self.granted_mode();
        let kept_table_name = || {
            previous
                .and_then(|s| s.lock_table_arn.as_deref())
                .and_then(|arn| arn.rsplit_once(":table/").map(|(_, name)| name.to_owned()))
                .unwrap_or_else(|| super::validate::default_lock_table(&valid.bucket))
        };
        let table =
            valid.lock_table.as_ref().map(|t| t.name.clone()).or_else(|| granted.uses_table().then(kept_table_name));
        let observed = observe(aws, valid, &d_key, owner, &hints, previous_trail, table.as_deref()).await?;
        let adopt = valid.adopt_existing;

        // The role first: the key policy names it, and KMS refuses unknown principals.
        let role_ok = match plan_role(&d_role, observed.role.as_ref(), &tags, owner, adopt) {
            Ok(changes) => {
                apply_role(aws, &d_role, observed.role.as_ref(), &changes, &tags).await?;
                self.settle(C::RoleReady, &format!("IAM role {}", d_role.name), &changes, observed.role.is_none());
                self.report.role_arn = Some(d_role.arn.clone());
                true
            }
            Err(b) => {
                self.block(C::RoleReady, b.reason, b.message);
                false
            }
        };

        let key_arn = self.converge_key(aws, &d_key, &observed, &tags, role_ok).await?;
        let key_usable = key_arn.is_some() || matches!(d_key, DesiredKey::None);
        if !key_usable {
            for t in [C::BucketReady, C::LockTableReady] {
                self.block(t, Reason::DependencyNotReady, "waiting for the KMS key (see EncryptionKeyReady)".into());
            }
            self.block(C::BackendConfigPublished, Reason::DependencyNotReady, "waiting for the KMS key".into());
            if valid.audit.is_some() {
                self.block(C::AuditReady, Reason::DependencyNotReady, "waiting for the state bucket".into());
            }
            self.report.trail_arn = previous.and_then(|s| s.trail_arn.clone());
            // Not reached: the replica as known (its key is how the replica key is found again).
            self.report.replica = status::remember(StatusReport::default(), previous).replica;
            if valid.replication.is_some() {
                self.block(C::ReplicationReady, Reason::DependencyNotReady, "waiting for the KMS key".into());
            }
            return Ok(());
        }
        self.converge_resources(aws, &id, key_arn.as_deref(), &observed, &tags, role_ok).await
    }

    async fn converge_key(
        &mut self,
        aws: &AwsClients,
        d_key: &DesiredKey,
        observed: &ObservedBackend,
        tags: &crate::aws::Tags,
        role_ok: bool,
    ) -> Result<Option<String>, ReconcileError> {
        match d_key {
            DesiredKey::None => {
                self.report.parts.insert(
                    C::EncryptionKeyReady,
                    PartState::ready(Reason::NotRequired, "SSE-S3 (AES256): no KMS key"),
                );
                return Ok(None);
            }
            DesiredKey::Managed { .. } if !role_ok => {
                self.block(
                    C::EncryptionKeyReady,
                    Reason::DependencyNotReady,
                    "waiting for the IAM role, which the key policy names".into(),
                );
                self.keep_known_key();
                return Ok(None);
            }
            _ => {}
        }
        let changes = match plan_key(d_key, &observed.key, tags, self.owner, self.valid.adopt_existing) {
            Ok(changes) => changes,
            Err(b) => {
                self.block(C::EncryptionKeyReady, b.reason, b.message);
                self.keep_known_key();
                return Ok(None);
            }
        };
        if changes.contains(&KeyChange::Create) {
            // Crash safety: a restart then looks for a key carrying our tags instead of
            // creating a second one.
            self.mark_creation_started("creating the KMS key").await?;
        }
        let arn = apply_key(aws, d_key, &observed.key, &changes, tags, &self.ctx.failpoints).await?;
        let what = match d_key {
            DesiredKey::Existing { arn } => format!("existing KMS key {arn}"),
            _ => format!("KMS key {}", arn.as_deref().unwrap_or_default()),
        };
        self.settle(C::EncryptionKeyReady, &what, &changes, changes.contains(&KeyChange::Create));
        // The key exists under its alias now: nothing left to find after a crash.
        self.report.creation_started_at = None;
        self.report.kms_key_arn = arn.clone();
        Ok(arn)
    }

    async fn converge_resources(
        &mut self,
        aws: &AwsClients,
        id: &Identity,
        key_arn: Option<&str>,
        observed: &ObservedBackend,
        tags: &crate::aws::Tags,
        role_ok: bool,
    ) -> Result<(), ReconcileError> {
        let (valid, owner, adopt) = (self.valid, self.owner, self.valid.adopt_existing);
        let res = desired_resources(valid, id, key_arn, self.ctx.config.endpoint_url.as_deref());
        // Names are taken in order (see plan::in_claim_order): no bucket while the role is
        // not ours...
        let (bucket_name, role_name) = (format!("S3 bucket {}", valid.bucket), format!("IAM role {}", valid.role.name));
        let role = Before {
            what: &role_name,
            claim: if role_ok { Claim::Ours } else { Claim::NotOurs },
            condition: C::RoleReady,
        };
        let bucket_is_ours = observed_ours(&observed.bucket, owner);
        let bucket_plan = plan_bucket(&res.bucket, &observed.bucket, tags, owner, adopt);
        // An untagged bucket another backend's status records lost its tags to an outside
        // tool: not adoptable, unless this backend's own status proves it is its own.
        let recorded_by_another = self.ctx.bucket_recorded_by_another(&valid.bucket, &owner.uid)
            && self.obj.status.as_ref().and_then(own_bucket) != Some(valid.bucket.as_str());
        let bucket_plan = refuse_recorded_adoption(bucket_plan, &bucket_name, recorded_by_another);
        let bucket_plan = in_claim_order(bucket_plan, &bucket_name, bucket_is_ours, role);
        let claim = match &bucket_plan {
            Ok(changes) => claim_bucket(aws, &res.bucket, changes, tags, &self.ctx.failpoints).await.map(Some),
            Err(_) => Ok(None),
        };
        // ...and no lock table while the bucket is not: a new bucket is created and its tags
        // read back first; an adopted one is confirmed by the next pass.
        let bucket_claim = match (&bucket_plan, &claim) {
            (Ok(_), Ok(Some(BucketApplied::Done))) => Claim::Ours,
            (Ok(_), Ok(Some(BucketApplied::Adopted)) | Err(_)) => Claim::Pending,
            _ => Claim::NotOurs,
        };
        let table_is_ours = observed.table.as_ref().is_some_and(|o| owner.owns(&o.settings.tags));
        let table_plan = plan_table(res.table.as_ref(), observed.table.as_ref(), tags, owner, adopt);
        // So is an untagged table another backend's status records as its lock table.
        let table_plan = match &res.table {
            Some(table) => {
                let recorded = self.ctx.table_recorded_by_another(&table.arn, &owner.uid);
                refuse_recorded_table_adoption(table_plan, &table.name, table_is_ours, recorded)
            }
            None => table_plan,
        };
        let table_plan = match &res.table {
            Some(table) => {
                let bucket = Before { what: &bucket_name, claim: bucket_claim, condition: C::BucketReady };
                in_claim_order(table_plan, &format!("DynamoDB table {}", table.name), table_is_ours, bucket)
            }
            None => table_plan,
        };
        let bucket_claimed = matches!(claim, Ok(Some(BucketApplied::Done)));
        // Then the bucket's settings and the table are written concurrently; each part's
        // outcome is recorded on its own, so one failing part does not hide the others.
        let (settings, t) = tokio::join!(
            async {
                match &bucket_plan {
                    Ok(changes) if bucket_claimed => apply_bucket_settings(aws, &res.bucket, changes, tags).await,
                    _ => Ok(()),
                }
            },
            async {
                match (&table_plan, &res.table) {
                    (Ok(changes), Some(table)) => apply_table(aws, table, observed.table.as_ref(), changes, tags).await,
                    _ => Ok(TableApplied::Done),
                }
            },
        );
        let b = claim.and_then(|claimed| settings.map(|()| claimed));
        // Grants follow ownership as AWS reports it in this pass: a part that is ours
        // (tagged with our UID when observed, or created or adopted by this pass) is granted;
        // a Conflict, or a creation another object won, contributes nothing.
        let bucket_owned = match (&bucket_plan, &b) {
            (Ok(_), Ok(Some(BucketApplied::Done))) => true,
            (Ok(_), Err(_)) => observed_ours(&observed.bucket, owner),
            _ => false,
        };
        // A table is granted once it is ours: created by this pass, or read back with our tags
        // (one adopted by this pass only got its tags: it is granted by the next pass).
        let table_adopted =
            table_plan.is_ok() && matches!(t, Ok(TableApplied::Done)) && observed.table.is_some() && !table_is_ours;
        let table_owned = table_plan.is_ok() && (table_is_ours || (t.is_ok() && observed.table.is_none()));
        // During a roll-out away from the table, runs on the old configuration still lock
        // there: the kept table stays granted while its tags say it is ours.
        let granted = self.granted_mode();
        let kept_table = observed
            .table
            .as_ref()
            .filter(|o| res.table.is_none() && granted.uses_table() && owner.owns(&o.settings.tags))
            .map(|o| o.info.arn.as_str());
        let grants = Owned {
            bucket: bucket_owned,
            table_arn: res.table.as_ref().filter(|_| table_owned).map(|t| t.arn.as_str()).or(kept_table),
            kms_key_arn: key_arn,
        };
        let runner_policy = desired_runner_policy(valid, id, &grants, granted);
        let inline = if role_ok { plan_inline_policy(runner_policy.as_ref(), observed.role.as_ref()) } else { vec![] };
        // A window that closed since the last pass narrows the policy the operator itself
        // widened: an update, not drift. Told by the policy found: exactly the window's.
        let status = self.obj.status.as_ref();
        let change = status.and_then(|s| s.lock_mode_change.as_ref()).filter(|_| self.rollout.is_none());
        let wide = change.map(|c| locks::window_mode(valid.lock_mode, self.runners_use, Some(c)));
        let narrowing = match wide {
            Some(wide) if wide != granted && !inline.is_empty() => {
                let known_table = status.and_then(|s| s.lock_table_arn.as_deref()).filter(|_| wide.uses_table());
                let table_arn = grants.table_arn.or(known_table);
                let window = desired_runner_policy(valid, id, &Owned { table_arn, ..grants }, wide);
                plan_inline_policy(window.as_ref(), observed.role.as_ref()).is_empty()
            }
            _ => false,
        };
        if kept_table.is_some() {
            // Still ours and still granted: remembered, so the next pass finds it by name.
            self.report.lock_table_arn = kept_table.map(str::to_owned);
        } else if res.table.is_none() {
            // Lockfile mode: a table kept from an earlier mode (a mode change never deletes
            // one) is not looked at once its window has closed, but stays remembered, so that
            // deletion finds it, a custom name included, and deletes it if still ours.
            self.report.lock_table_arn = status.and_then(|s| s.lock_table_arn.clone());
        }
        let i = if inline.is_empty() {
            Ok(())
        } else {
            apply_inline_policy(aws, &valid.role.name, runner_policy.as_ref()).await
        };
        let mut first_error = None;

        match (bucket_plan, b) {
            (Ok(_), Err(e)) if e.code == "InvalidTargetBucketForLogging" => {
                let target = valid.access_logging.as_ref().map(|l| l.target_bucket.as_str()).unwrap_or_default();
                let msg = format!(
                    "access logging target bucket {target} does not exist or does not accept logs: create it in {} or fix spec.bucket.accessLogging",
                    valid.region
                );
                self.block(C::BucketReady, Reason::DependencyNotReady, msg);
            }
            (Ok(_), Err(e)) => {
                self.fail(C::BucketReady, &e);
                first_error.get_or_insert(e);
            }
            (Ok(_), Ok(Some(BucketApplied::Adopted))) => {
                let what = format!("S3 bucket {}", valid.bucket);
                self.adopted(C::BucketReady, &what);
            }
            (Ok(_), Ok(Some(BucketApplied::AdoptedByAnother))) => {
                let msg = format!(
                    "S3 bucket {} was adopted by another TerraformStateBackend meanwhile; it is left untouched: \
                     choose another name",
                    valid.bucket
                );
                self.block(C::BucketReady, Reason::Conflict, msg);
            }
            (Ok(_), Ok(Some(BucketApplied::LostCreationRace))) => {
                let msg = format!(
                    "S3 bucket {} was created by another TerraformStateBackend at the same time; it is left untouched: \
                     choose another name",
                    valid.bucket
                );
                self.block(C::BucketReady, Reason::Conflict, msg);
            }
            (Ok(changes), Ok(_)) => {
                let created = matches!(observed.bucket, ObservedBucket::Missing);
                self.settle(C::BucketReady, &format!("S3 bucket {}", valid.bucket), &changes, created);
            }
            (Err(b), _) => self.block(C::BucketReady, b.reason, b.message),
        }
        match (table_plan, &res.table, t) {
            (_, None, _) => {
                let mut msg = "lock files in S3 (use_lockfile): no DynamoDB table".to_string();
                // The same words in the pass that changes the mode and in the window's passes,
                // so the window's resyncs write nothing; the close changes them (with the role).
                if let Some(arn) = kept_table {
                    msg = format!(
                        "{msg}; runs that started before the last lock-mode change may still lock in {arn}: runners \
                         keep that grant until spec.locking.staleAfter has passed since status.lockModeChange.at"
                    );
                }
                self.report.parts.insert(C::LockTableReady, PartState::ready(Reason::NotRequired, msg));
            }
            (Ok(_), Some(_), Err(e)) => {
                self.fail(C::LockTableReady, &e);
                first_error.get_or_insert(e);
            }
            (Ok(_), Some(table), Ok(TableApplied::AdoptedByAnother)) => {
                let message = format!(
                    "DynamoDB table {} was adopted by another TerraformStateBackend meanwhile; it is left untouched: \
                     choose another spec.locking.table.name",
                    table.name
                );
                self.block(C::LockTableReady, Reason::Conflict, message);
            }
            (Ok(_), Some(table), Ok(TableApplied::Pending)) => {
                let observed_status = observed.table.as_ref().map(|o| o.info.status.as_str());
                let part = status::table_not_yet_active(&table.name, observed_status);
                if part.reason.is_permanent() {
                    // A state that does not end by itself: looked at again at the resync.
                    self.block(C::LockTableReady, part.reason, part.message);
                } else {
                    // PITR can only be turned on once the table is ACTIVE: look again shortly.
                    self.report.reconciling =
                        Some(format!("waiting for DynamoDB table {} to become ACTIVE", table.name));
                    self.report.parts.insert(C::LockTableReady, part);
                }
            }
            (Ok(_), Some(table), Ok(TableApplied::Done)) if table_adopted => {
                self.adopted(C::LockTableReady, &format!("DynamoDB table {}", table.name));
            }
            (Ok(changes), Some(table), Ok(TableApplied::Done)) => {
                self.settle(
                    C::LockTableReady,
                    &format!("DynamoDB table {}", table.name),
                    &changes,
                    // A table that needed a second pass to become ACTIVE was still created
                    // by us, not repaired.
                    observed.table.is_none() || self.previous_reason(C::LockTableReady) == Some(Reason::Creating),
                );
                self.report.lock_table_arn = Some(table.arn.clone());
            }
            (Err(b), _, _) => self.block(C::LockTableReady, b.reason, b.message),
        }
        match i {
            Err(e) => {
                self.fail(C::RoleReady, &e);
                first_error.get_or_insert(e);
            }
            Ok(()) if narrowing => {
                let what = format!("IAM role {}", valid.role.name);
                let list = inline.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ");
                let message = format!("{what} updated: the lock-mode roll-out window closed: {list}");
                self.record(C::RoleReady, Reason::Updated, message);
            }
            // A role created in this pass has been announced already, inline policy included.
            Ok(()) if role_ok && !inline.is_empty() && observed.role.is_some() => {
                // The role part settled before the key existed; now its inline policy too.
                self.settle(C::RoleReady, &format!("IAM role {}", valid.role.name), &inline, false);
            }
            Ok(()) => {}
        }
        // The audit trail records the state bucket's objects: only a bucket of ours.
        if let Some(e) = self.converge_audit(aws, id, observed, tags, bucket_owned).await {
            first_error.get_or_insert(e);
        }
        // The replica after the state bucket (replication needs it versioned) and on its own:
        // a failing replica never holds back the runners' configuration.
        let replica = match self.converge_replica(aws, id, key_arn, bucket_owned, tags).await {
            Ok(replica) => Ok(replica),
            Err(ReconcileError::Aws(e)) => {
                self.fail(C::ReplicationReady, &e);
                Err(ReconcileError::Aws(e))
            }
            Err(e) => Err(e),
        };
        if let Some(e) = first_error {
            self.block(C::BackendConfigPublished, Reason::Creating, "waiting for the other parts".into());
            return Err(e.into());
        }
        let dr = match &replica {
            Ok(Some(dr)) => Some(dr.clone()),
            _ => self.remembered_replica(),
        };
        // Back to the lock table after lock files: the digests it kept went stale under
        // runners that did not update them, and Terraform refuses a state that does not
        // match its digest. Cleared before runners get the table again (Terraform skips the
        // check without a digest, and writes a new one with the next state).
        // Once more at `Both -> DynamoDB` after `Lockfile -> Both`: lock-file runs still going
        // in the Both window did not update them either (a one-time cleanup: the window
        // keeps lock-file-only runs from reaching the DynamoDB step).
        let runners_use = status.and_then(|s| s.lock_mode);
        let from_lockfile =
            status.and_then(|s| s.lock_mode_change.as_ref()).map(|c| c.from) == Some(LockMode::Lockfile);
        let digests_stale = runners_use == Some(LockMode::Lockfile)
            || (runners_use == Some(LockMode::Both) && valid.lock_mode == LockMode::DynamoDB && from_lockfile);
        if digests_stale && let Some(table) = res.table.as_ref().filter(|_| table_owned && observed.table.is_some()) {
            let cleared = locks::clear_stale_digests(aws, &table.name, &valid.bucket).await?;
            if cleared > 0 {
                let note = format!(
                    "deleted {cleared} Terraform state digest item(s) of bucket {} from lock table {}: lock files \
                     were used since they were written, so they no longer match the state",
                    valid.bucket, table.name
                );
                self.lock_events.push((EventType::Normal, Reason::Updated, note));
            }
        }
        self.publish(&res.backend, dr.as_ref()).await?;
        // The lock, where the lock mode keeps it and only in what is ours.
        let targets = LockTargets {
            table: res.table.as_ref().filter(|_| table_owned && observed.table.is_some()).map(|t| t.name.as_str()),
            lockfile_bucket: (valid.lock_mode.uses_lockfile() && bucket_owned).then_some(valid.bucket.as_str()),
            bucket: &valid.bucket,
            state_key: &valid.state_key,
            workspace_key_prefix: valid.workspace_key_prefix.as_deref(),
        };
        if targets.table.is_some() || targets.lockfile_bucket.is_some() {
            let now = k8s_openapi::jiff::Timestamp::now();
            let pass = check_locks(aws, self.api, self.obj, &targets, valid.stale_after, now).await?;
            self.report.lock = Some(pass.status);
            self.report.force_unlock = pass.force_unlock;
            self.lock_events.extend(pass.events);
        }
        // The state's versions, in a bucket of ours only (one listing page: reads, no content).
        // A bucket this pass created holds none yet (and may not be listable at once).
        if bucket_owned && matches!(observed.bucket, ObservedBucket::Missing) {
            self.report.state = Some(state_status(&valid.state_key, &[], false));
        } else if bucket_owned {
            let (versions, more) = s3::list_key_versions(&aws.s3, &valid.bucket, &valid.state_key)
                .await
                .map_err(|e| e.on(format!("S3 bucket {}, state {}", valid.bucket, valid.state_key)))?;
            self.report.state = Some(state_status(&valid.state_key, &versions, more));
        }
        replica.map(|_| ())
    }

    async fn publish(
        &mut self,
        backend: &crate::render::BackendSettings,
        replica: Option<&crate::render::ReplicaSettings>,
    ) -> Result<(), ReconcileError> {
        let waiting: Vec<C> = [C::BucketReady, C::EncryptionKeyReady, C::LockTableReady, C::RoleReady]
            .into_iter()
            .filter(|t| !self.report.parts.get(t).is_some_and(|p| p.ready))
            .collect();
        if !waiting.is_empty() {
            // Runners must not start against a half-built backend. Waiting on a stalled
            // part is a stall; waiting on one still being created is progress.
            let stalled = waiting.iter().any(|t| self.report.parts.get(t).is_some_and(|p| p.reason.is_permanent()));
            let reason = if stalled { Reason::DependencyNotReady } else { Reason::Creating };
            let msg = format!("waiting for {}", waiting.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "));
            self.report.parts.insert(C::BackendConfigPublished, PartState::not_ready(reason, msg));
            return Ok(());
        }
        let mut data = render(backend)?.into_configmap_data();
        if let Some(replica) = replica {
            data.extend(crate::render::render_replica(backend, replica)?);
        }
        let cms: Api<ConfigMap> = Api::namespaced(self.ctx.client.clone(), &self.owner.namespace);
        let name = &self.valid.config_map_name;
        // Before the write: its watch event may arrive before the write's answer does.
        self.ctx.expect_own_config_map(&self.owner.namespace, name, &data, &self.owner.uid);
        let watched = self.ctx.watch_shows_config_map(&self.owner.namespace, name, &data, &self.owner.uid);
        match publish(&cms, self.obj, name, &data, watched).await {
            Ok(published) => {
                let reason = match &published {
                    Published::Created => Reason::Created,
                    Published::Updated => Reason::Updated,
                    Published::Unchanged => Reason::Converged,
                };
                let tofu = if backend.open_tofu_encryption.is_some() { ", encryption.tf, TF_ENCRYPTION" } else { "" };
                // Runners now get this lock mode: later mode changes are judged against it,
                // and against the one before for `staleAfter` (the roll-out window).
                self.report.lock_mode = Some(self.valid.lock_mode);
                let last = self.obj.status.as_ref().and_then(|s| s.lock_mode_change.as_ref());
                let now = k8s_openapi::jiff::Timestamp::now();
                self.report.lock_mode_change =
                    locks::record_change(self.runners_use, self.valid.lock_mode, last, self.valid.stale_after, now);
                let msg = format!("ConfigMap {name} holds backend.tf, backend.tfbackend{tofu} and one key per setting");
                self.report.parts.insert(C::BackendConfigPublished, PartState::ready(reason, msg));
                Ok(())
            }
            Err(e @ super::publish::PublishError::NotOurs(_)) => {
                self.block(C::BackendConfigPublished, Reason::Conflict, e.to_string());
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Records a part that is converged now, and the Event its changes deserve.
    fn settle<T: std::fmt::Debug>(&mut self, part: C, what: &str, changes: &[T], created: bool) {
        let list = changes.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ");
        let status = self.obj.status.as_ref();
        let before = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == part.as_str()));
        let history = PartHistory {
            settled_generation: status.and_then(|s| s.observed_generation),
            generation: self.obj.metadata.generation,
            before: before.and_then(|c| Some((c.status == "True", reason_of(&c.reason)?))),
        };
        let report = part_report(!changes.is_empty(), created, history);
        tracing::debug!(part = part.as_str(), changes = %list, created, ?history, ?report, "part settled");
        let (reason, message) = match report {
            PartReport::Converged => (Reason::Converged, format!("{what} matches the spec")),
            PartReport::Created if changes.is_empty() || created => (Reason::Created, format!("{what} created")),
            PartReport::Created => (Reason::Created, format!("{what} created: {list}")),
            PartReport::Updated => (Reason::Updated, format!("{what} updated: {list}")),
            PartReport::DriftRepaired => {
                (Reason::DriftRepaired, format!("{what}: repaired changes made outside the operator: {list}"))
            }
            PartReport::StillVerifying(reason) => {
                // Same condition as before: no status write, no Event, no drift counted.
                let message = before.map(|c| c.message.clone()).unwrap_or_default();
                self.report.parts.insert(part, PartState::ready(reason, message));
                return;
            }
        };
        self.record(part, reason, message);
    }

    /// Records a part that this pass adopted (tagged, nothing else): not ready until a later
    /// pass reads the tags back as ours, which then writes its settings and grants it. Looked
    /// at again soon, like any work under way.
    fn adopted(&mut self, part: C, what: &str) {
        let message = format!(
            "{what} adopted (spec.adoptExisting): its ownership tags are written; its settings, and any access \
             to it, follow once they read back as this backend's"
        );
        self.events.push((EventType::Normal, Reason::Updated, message.clone()));
        self.report.reconciling.get_or_insert_with(|| format!("confirming the adoption of {what}"));
        self.report.parts.insert(part, PartState::not_ready(Reason::Updating, message));
    }

    /// Records a part's converged state and the Event a change deserves.
    fn record(&mut self, part: C, reason: Reason, message: String) {
        if reason == Reason::DriftRepaired {
            self.ctx
                .metrics
                .drift_repairs
                .get_or_create(&crate::metrics::PartLabels { part: part.as_str().into() })
                .inc();
        }
        if reason != Reason::Converged {
            let kind = EventType::Normal;
            self.events.push((kind, reason, message.clone()));
        }
        self.report.parts.insert(part, PartState::ready(reason, message));
    }

    /// Records, before a non-atomic creation, that one is under way (a status write, once).
    async fn mark_creation_started(&mut self, what: &str) -> Result<(), ReconcileError> {
        if self.report.creation_started_at.is_some() {
            return Ok(());
        }
        let mut intent = status::remember(self.report.clone(), self.obj.status.as_ref());
        intent.creation_started_at = Some(k8s_openapi::jiff::Timestamp::now().to_string());
        intent.reconciling = Some(what.to_string());
        // An intent is not an answer for this generation.
        intent.keeps_observed_generation = true;
        let generation = self.obj.metadata.generation.unwrap_or(0);
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let status = next_status(self.obj.status.as_ref(), generation, intent.clone(), &now);
        status::write(self.api, &self.owner.name, self.obj.status.as_ref(), &status).await?;
        self.report.creation_started_at = intent.creation_started_at;
        Ok(())
    }

    /// The reason the part had in the status this reconcile started from.
    fn previous_reason(&self, part: C) -> Option<Reason> {
        let prev = self.obj.status.as_ref()?.conditions.iter().find(|c| c.type_ == part.as_str())?;
        reason_of(&prev.reason)
    }

    /// Records a part whose writes failed (retried with back-off).
    fn fail(&mut self, part: C, e: &crate::aws::AwsError) {
        let reason =
            if e.kind == crate::aws::AwsErrorKind::AccessDenied { Reason::AccessDenied } else { Reason::AwsError };
        self.report.parts.insert(part, PartState::not_ready(reason, e.to_string()));
    }

    /// A key part that is blocked (its alias taken by another key, its role not ours) keeps
    /// the key ARN status knew: it is how this object's key is found again once the block
    /// is gone, instead of a second key being created while state is encrypted with the first.
    fn keep_known_key(&mut self) {
        self.report.kms_key_arn = self.obj.status.as_ref().and_then(|s| s.kms_key_arn.clone());
    }

    /// Records a part that cannot be converged now.
    fn block(&mut self, part: C, reason: Reason, message: String) {
        if reason.is_permanent() {
            self.events.push((EventType::Warning, reason, message.clone()));
        }
        self.report.parts.insert(part, PartState::not_ready(reason, message));
    }
}

/// Whether the bucket, as observed in this pass, carries this object's ownership tags.
fn observed_ours(bucket: &ObservedBucket, owner: &Owner) -> bool {
    matches!(bucket, ObservedBucket::Exists { tags, .. } if owner.owns(tags))
}

/// Publishes an Event about `obj` (failures are logged, never fatal); a note longer than
/// the API server accepts is cut ([`notes::cut`]) rather than losing the Event.
pub async fn event(ctx: &Context, obj: &TerraformStateBackend, type_: EventType, reason: Reason, note: String) {
    let note = Some(notes::cut(note));
    let ev = Event { type_, reason: reason.as_str().into(), note, action: "Reconcile".into(), secondary: None };
    if let Err(e) = ctx.recorder().publish(&ev, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, "could not publish an Event");
    }
}
