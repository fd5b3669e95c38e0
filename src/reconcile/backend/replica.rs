//! The replica part of a pass (`spec.replication`), in dependency order: the replication
//! role (the replica key's policy names it), the replica key, the replica bucket (encrypted
//! with that key), the role's inline policy (naming both keys), and last the state bucket's
//! replication configuration (naming the role, the replica bucket and its key). The same
//! plan and apply steps as the primary's parts, with the replica region's clients.

use crate::api::{ConditionType as C, Reason};
use crate::aws::{AwsClients, Tags, iam, s3};
use crate::reconcile::apply::{
    BucketApplied, apply_bucket, apply_inline_policy, apply_key, apply_replication, apply_role,
};
use crate::reconcile::desired::{DesiredKey, INLINE_POLICY_NAME, Identity, desired_replica, desired_replica_resources};
use crate::reconcile::error::ReconcileError;
use crate::reconcile::observe::{KeyHints, ObservedBucket, observe_bucket, observe_key, observe_role};
use crate::reconcile::plan::{
    KeyChange, ReplicationChange, plan_bucket, plan_inline_policy, plan_key, plan_replication, plan_role,
    refuse_recorded_adoption,
};
use crate::reconcile::status::ReplicaReport;
use crate::render::ReplicaSettings;

use super::Run;

impl Run<'_> {
    /// Converges the replica; returns where it is once every part of it is converged (for
    /// the ConfigMap), `None` otherwise or without `spec.replication`. `source_key_arn` is
    /// the state bucket's key, `bucket_owned` whether the state bucket is ours in this pass.
    pub(super) async fn converge_replica(
        &mut self,
        aws: &AwsClients,
        id: &Identity,
        source_key_arn: Option<&str>,
        bucket_owned: bool,
        tags: &Tags,
    ) -> Result<Option<ReplicaSettings>, ReconcileError> {
        let (valid, owner, adopt) = (self.valid, self.owner, self.valid.adopt_existing);
        let Some(d) = desired_replica(valid, id, owner) else {
            return self.remove_replication(aws, bucket_owned).await.map(|()| None);
        };
        let Some(r) = valid.replication.as_ref() else { return Ok(None) };
        let previous = self.obj.status.as_ref();
        self.report.replica = Some(ReplicaReport {
            region: Some(d.region.clone()),
            bucket_arn: Some(format!("arn:{}:s3:::{}", id.partition, r.bucket)),
            ..Default::default()
        });
        let (Some(source_key), true) = (source_key_arn, bucket_owned) else {
            let msg = "waiting for the state bucket and its key (see BucketReady and EncryptionKeyReady)";
            self.block(C::ReplicationReady, Reason::DependencyNotReady, msg.into());
            return Ok(None);
        };
        let replica_aws = self.ctx.aws.clients_as(&d.region, self.assume.as_ref()).await?;
        let hints = KeyHints {
            // Only a key of this region: after a move, the old region's key is not this one.
            known_arn: previous
                .and_then(|s| s.replica_kms_key_arn.clone())
                .filter(|arn| arn.split(':').nth(3) == Some(d.region.as_str()))
                .filter(|_| matches!(d.key, DesiredKey::Managed { .. })),
            creation_started: previous.is_some_and(|s| s.creation_started_at.is_some()),
            account_id: id.account_id.clone(),
        };
        let (role, key, bucket, config) = tokio::try_join!(
            observe_role(aws, &d.role.name),
            observe_key(&replica_aws, &d.key, owner, &hints),
            observe_bucket(&replica_aws, &r.bucket, false, owner, adopt),
            async {
                s3::get_replication(&aws.s3, &valid.bucket)
                    .await
                    .map_err(|e| e.on(format!("replication configuration of S3 bucket {}", valid.bucket)))
            },
        )?;
        let mut changes: Vec<String> = Vec::new();

        let role_changes = match plan_role(&d.role, role.as_ref(), tags, owner, adopt) {
            Ok(c) => c,
            Err(b) => {
                self.block(C::ReplicationReady, b.reason, b.message);
                return Ok(None);
            }
        };
        apply_role(aws, &d.role, role.as_ref(), &role_changes, tags).await?;
        changes.extend(role_changes.iter().map(|c| format!("role {c:?}")));
        if let Some(rep) = self.report.replica.as_mut() {
            rep.role_arn = Some(d.role.arn.clone());
        }

        let key_changes = match plan_key(&d.key, &key, tags, owner, adopt) {
            Ok(c) => c,
            Err(b) => {
                self.block(C::ReplicationReady, b.reason, format!("replica key: {}", b.message));
                return Ok(None);
            }
        };
        if key_changes.contains(&KeyChange::Create) {
            self.mark_creation_started("creating the replica's KMS key").await?;
        }
        let replica_key = apply_key(&replica_aws, &d.key, &key, &key_changes, tags, &self.ctx.failpoints).await?;
        self.report.creation_started_at = None;
        changes.extend(key_changes.iter().map(|c| format!("key {c:?}")));
        let Some(replica_key) = replica_key else { return Ok(None) };
        if let Some(rep) = self.report.replica.as_mut() {
            rep.kms_key_arn = Some(replica_key.clone());
        }
        let Some(res) = desired_replica_resources(valid, id, &d, source_key, &replica_key) else { return Ok(None) };

        let created = matches!(bucket, ObservedBucket::Missing);
        // The same rule as for the state bucket: another backend's bucket, its tags removed,
        // is not adoptable as a replica (its policy would lock that backend's runners out).
        let plan = plan_bucket(&res.bucket, &bucket, tags, owner, adopt);
        let recorded_by_another = self.ctx.bucket_recorded_by_another(&r.bucket, &owner.uid);
        let bucket_changes =
            match refuse_recorded_adoption(plan, &format!("S3 bucket {}", r.bucket), recorded_by_another) {
                Ok(c) => c,
                Err(b) => {
                    self.block(C::ReplicationReady, b.reason, format!("replica bucket: {}", b.message));
                    return Ok(None);
                }
            };
        // Only a replica bucket confirmed ours receives copies of the state: one adopted by
        // this pass waits for the next to read its tags back (see `plan_bucket`).
        let taken = match apply_bucket(&replica_aws, &res.bucket, &bucket_changes, tags, &self.ctx.failpoints).await? {
            BucketApplied::Done => None,
            BucketApplied::Adopted => {
                self.adopted(C::ReplicationReady, &format!("replica bucket {}", r.bucket));
                return Ok(None);
            }
            BucketApplied::LostCreationRace => Some("was created by another TerraformStateBackend at the same time"),
            BucketApplied::AdoptedByAnother => Some("was adopted by another TerraformStateBackend meanwhile"),
        };
        if let Some(how) = taken {
            let msg = format!(
                "replica bucket {} {how}; it is left untouched: choose another spec.replication.bucketName",
                r.bucket
            );
            self.block(C::ReplicationReady, Reason::Conflict, msg);
            return Ok(None);
        }
        changes.extend(bucket_changes.iter().map(|c| format!("bucket {c:?}")));

        let inline = plan_inline_policy(Some(&res.role_policy), role.as_ref());
        if !inline.is_empty() {
            apply_inline_policy(aws, &d.role.name, Some(&res.role_policy)).await?;
            changes.extend(inline.iter().map(|c| format!("role {c:?}")));
        }

        let config_changes = plan_replication(Some(&res.config), config.as_ref());
        apply_replication(aws, &valid.bucket, Some(&res.config), &config_changes).await?;
        changes.extend(config_changes.iter().map(|c| format!("{c:?}")));

        let what = format!("replica {} in {} (key {replica_key}, role {})", r.bucket, r.region, d.role.name);
        self.settle(C::ReplicationReady, &what, &changes, created);
        Ok(Some(ReplicaSettings { bucket: r.bucket.clone(), region: r.region.clone(), kms_key_id: replica_key }))
    }

    /// The replica as the previous status knew it, while it is still the spec's: the
    /// ConfigMap keeps naming it during a pass that could not converge it (no flapping).
    pub(super) fn remembered_replica(&self) -> Option<ReplicaSettings> {
        let r = self.valid.replication.as_ref()?;
        let s = self.obj.status.as_ref()?;
        let same = s.replica_bucket_arn.as_deref().is_some_and(|a| a.ends_with(&format!(":::{}", r.bucket)))
            && s.replica_region.as_deref() == Some(r.region.as_str());
        let key = s.replica_kms_key_arn.clone().filter(|_| same)?;
        Some(ReplicaSettings { bucket: r.bucket.clone(), region: r.region.clone(), kms_key_id: key })
    }

    /// `spec.replication` was removed (status still names a replication role): the state
    /// bucket's replication configuration goes, and so does the replication role (it holds no
    /// data, only access to the state). The replica bucket and its key stay: they hold and
    /// encrypt copies of the state. Without a replica in status, nothing is read.
    async fn remove_replication(&mut self, aws: &AwsClients, bucket_owned: bool) -> Result<(), ReconcileError> {
        let Some(role_arn) = self.obj.status.as_ref().and_then(|s| s.replication_role_arn.clone()) else {
            return Ok(());
        };
        if !bucket_owned {
            // Not ours in this pass (or not reached): look again next time.
            self.report.replica =
                crate::reconcile::status::remember(Default::default(), self.obj.status.as_ref()).replica;
            return Ok(());
        }
        {
            let config = s3::get_replication(&aws.s3, &self.valid.bucket).await?;
            // Only the operator's configuration: one naming the role it created.
            if config.as_ref().is_some_and(|c| c.role_arn == role_arn) {
                let changes = plan_replication(None, config.as_ref());
                apply_replication(aws, &self.valid.bucket, None, &changes).await?;
                debug_assert_eq!(changes, [ReplicationChange::DeleteConfiguration]);
            }
        }
        let name = role_arn.rsplit('/').next().unwrap_or_default();
        if let Some(role) = iam::get_role(&aws.iam, name).await?
            && self.owner.owns(&role.tags)
        {
            iam::delete_role(&aws.iam, name, INLINE_POLICY_NAME).await?;
        }
        // Status forgets the replica: it is no longer managed.
        self.report.replica = None;
        Ok(())
    }
}
