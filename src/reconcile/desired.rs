//! Step 2, pure: the desired AWS state of a backend, from its validated spec and the
//! identities involved. Everything AWS must look like is decided here, once.

use crate::api::LockMode;
use crate::aws::Tags;
use crate::aws::cloudtrail::{EventSelector, FieldSelector, TrailConfig};
use crate::aws::s3::{Lifecycle, Logging, PublicAccessBlock};
use crate::aws::s3::{ReplicationRuleSettings, ReplicationSettings};
use crate::policy::{
    BucketPolicyEncryption, BucketPolicyInput, KeyPolicyInput, PolicyDocument, ReplicationPolicyInput,
    RunnerPolicyInput, TrustPolicyInput, bucket_policy, key_policy, replica_bucket_policy, replica_key_policy,
    replication_role_policy, replication_trust_policy, runner_policy, trust_policy,
};
use crate::render::{BackendSettings, Endpoints, OpenTofuEncryption};

use super::validate::{Encryption, ValidSpec};

/// Ownership tag: who manages the resource.
pub const TAG_MANAGED_BY: &str = "tfstate.dev/managed-by";
/// Ownership tag: `<namespace>/<name>` of the owning object.
pub const TAG_OWNER: &str = "tfstate.dev/owner";
/// Ownership tag: UID of the owning object (names can be reused, UIDs cannot).
pub const TAG_OWNER_UID: &str = "tfstate.dev/owner-uid";
/// Value of [`TAG_MANAGED_BY`].
pub const MANAGED_BY: &str = "tfstate-operator";
/// Name of the runners' inline policy.
pub const INLINE_POLICY_NAME: &str = "tfstate-backend";
/// ID of the operator's lifecycle rule.
pub const LIFECYCLE_RULE_ID: &str = "tfstate-operator";
/// Days after which incomplete multipart uploads are aborted.
pub const ABORT_MULTIPART_DAYS: i32 = 7;
/// Terraform's default `workspace_key_prefix`.
pub const TERRAFORM_DEFAULT_WORKSPACE_PREFIX: &str = "env:";

/// The object that owns the backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

impl Owner {
    /// Whether `tags` (as read from AWS) say this object owns the resource: its UID, never
    /// its name, which another object may reuse.
    pub fn owns(&self, tags: &Tags) -> bool {
        tags.get(TAG_OWNER_UID) == Some(&self.uid)
    }
}

/// Who the operator is in AWS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Account of every resource.
    pub account_id: String,
    /// ARN partition (`aws`, `aws-cn`, `aws-us-gov`).
    pub partition: String,
    /// The operator's principal, as a key policy can name it.
    pub operator_arn: String,
}

/// The KMS key of the backend.
#[derive(Clone, Debug, PartialEq)]
pub enum DesiredKey {
    /// SSE-S3: no key.
    None,
    /// An existing key: checked, never changed.
    Existing {
        /// Its ARN.
        arn: String,
    },
    /// A key the operator creates and keeps converged.
    Managed {
        /// Alias.
        alias: String,
        /// Deletion window for deletionPolicy Delete.
        deletion_window_days: i32,
        /// Description.
        description: String,
        /// Key policy.
        policy: PolicyDocument,
    },
}

/// The state bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredBucket {
    /// Name.
    pub name: String,
    /// Default encryption key (`None`: SSE-S3).
    pub kms_key_arn: Option<String>,
    /// Public access block (always all four).
    pub public_access_block: PublicAccessBlock,
    /// Lifecycle rules (exactly these).
    pub lifecycle: Vec<Lifecycle>,
    /// Bucket policy.
    pub policy: PolicyDocument,
    /// Access logging, when the spec asks for it.
    pub logging: Option<Logging>,
}

/// The lock table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredTable {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: String,
    /// SSE key (`None`: AWS owned key, with SSE-S3 backends).
    pub kms_key_arn: Option<String>,
    /// Point-in-time recovery.
    pub pitr: bool,
    /// Deletion protection.
    pub deletion_protection: bool,
}

/// The runners' role.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredRole {
    /// Name.
    pub name: String,
    /// ARN (deterministic: the account and the name).
    pub arn: String,
    /// Description.
    pub description: String,
    /// Trust policy.
    pub trust: PolicyDocument,
    /// Maximum session duration.
    pub max_session_duration: i32,
    /// Permissions boundary.
    pub boundary: Option<String>,
    /// IAM path (`/` or `/.../`).
    pub path: String,
}

/// Everything but the key, once the key's ARN is known.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredResources {
    /// Bucket.
    pub bucket: DesiredBucket,
    /// Lock table (DynamoDB and Both modes).
    pub table: Option<DesiredTable>,
    /// The backend configuration to publish.
    pub backend: BackendSettings,
}

/// Ownership tags of `owner`.
pub fn ownership_tags(owner: &Owner) -> Tags {
    Tags::from([
        (TAG_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (TAG_OWNER.to_string(), format!("{}/{}", owner.namespace, owner.name)),
        (TAG_OWNER_UID.to_string(), owner.uid.clone()),
    ])
}

/// Tags of every resource: the user's plus the ownership tags.
pub fn resource_tags(valid: &ValidSpec, owner: &Owner) -> Tags {
    let mut tags = valid.tags.clone();
    tags.extend(ownership_tags(owner));
    tags
}

/// ARN of the runners' role.
pub fn role_arn(valid: &ValidSpec, id: &Identity) -> String {
    // The path starts and ends with `/` (`/` alone by default).
    format!("arn:{}:iam::{}:role{}{}", id.partition, id.account_id, valid.role.path, valid.role.name)
}

/// The role (without its inline policy, which needs the key ARN).
pub fn desired_role(valid: &ValidSpec, id: &Identity, owner: &Owner) -> DesiredRole {
    let r = &valid.role;
    let service_accounts: Vec<(String, String)> =
        r.service_accounts.iter().map(|sa| (sa.namespace.clone(), sa.name.clone())).collect();
    let trust = trust_policy(&TrustPolicyInput {
        partition: &id.partition,
        account_id: &id.account_id,
        service_accounts: &service_accounts,
        oidc_provider_arn: r.oidc_provider_arn.as_deref(),
        eks_pod_identity: r.eks_pod_identity,
        aws_principals: &r.aws_principals,
        principal_org_id: r.principal_org_id.as_deref(),
    });
    DesiredRole {
        name: r.name.clone(),
        arn: role_arn(valid, id),
        description: format!(
            "Terraform state backend {}/{} (managed by tfstate-operator)",
            owner.namespace, owner.name
        ),
        trust,
        max_session_duration: r.max_session_duration_seconds,
        boundary: r.permissions_boundary_arn.clone(),
        path: r.path.clone(),
    }
}

/// The key.
pub fn desired_key(valid: &ValidSpec, id: &Identity, owner: &Owner) -> DesiredKey {
    match &valid.encryption {
        Encryption::Aes256 => DesiredKey::None,
        Encryption::ExistingKey { arn } => DesiredKey::Existing { arn: arn.clone() },
        Encryption::CreateKey { alias, deletion_window_days, admins } => DesiredKey::Managed {
            alias: alias.clone(),
            deletion_window_days: *deletion_window_days,
            description: format!("Terraform state of {}/{} (managed by tfstate-operator)", owner.namespace, owner.name),
            policy: key_policy(&KeyPolicyInput {
                partition: &id.partition,
                account_id: &id.account_id,
                region: &valid.region,
                operator_arn: &id.operator_arn,
                role_arn: &role_arn(valid, id),
                admins,
                principal_org_id: valid.role.principal_org_id.as_deref(),
                open_tofu_encryption: valid.open_tofu_encryption,
            }),
        },
    }
}

/// What this object owns now, as read from AWS in this pass (its owner-UID tag, or
/// created with it in this pass): the runners are granted exactly these parts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owned<'a> {
    /// The state bucket (state objects and lock files).
    pub bucket: bool,
    /// The lock table's ARN.
    pub table_arn: Option<&'a str>,
    /// The key's ARN: a managed key of ours, or an existing key this object may use.
    pub kms_key_arn: Option<&'a str>,
}

/// The role's inline policy granting what `owned` names, and nothing of any part that is
/// not ours (a `Conflict` contributes no statement), for runners locking the `lock_mode` way
/// (the spec's mode, or during a roll-out window the union with the one before: see
/// [`super::locks::granted_mode`]). `None` when nothing is owned: IAM refuses a policy
/// without statements, so the inline policy is removed instead.
pub fn desired_runner_policy(
    valid: &ValidSpec,
    id: &Identity,
    owned: &Owned<'_>,
    lock_mode: LockMode,
) -> Option<PolicyDocument> {
    let policy = runner_policy(&RunnerPolicyInput {
        partition: &id.partition,
        region: &valid.region,
        bucket: owned.bucket.then_some(valid.bucket.as_str()),
        state_key: &valid.state_key,
        workspace_key_prefix: valid.workspace_key_prefix.as_deref().unwrap_or(TERRAFORM_DEFAULT_WORKSPACE_PREFIX),
        lockfile: lock_mode.uses_lockfile(),
        table_arn: owned.table_arn,
        kms_key_arn: owned.kms_key_arn,
        open_tofu_encryption: valid.open_tofu_encryption,
    });
    (!policy.statements.is_empty()).then_some(policy)
}

/// Bucket, table and backend configuration, given the key's ARN
/// (`None` with SSE-S3). `endpoint_url` is the operator's custom AWS endpoint, which
/// runners must use too.
pub fn desired_resources(
    valid: &ValidSpec,
    id: &Identity,
    key_arn: Option<&str>,
    endpoint_url: Option<&str>,
) -> DesiredResources {
    let p = &id.partition;
    let bucket = DesiredBucket {
        name: valid.bucket.clone(),
        kms_key_arn: key_arn.map(str::to_string),
        public_access_block: PublicAccessBlock::ALL,
        lifecycle: vec![Lifecycle {
            id: LIFECYCLE_RULE_ID.into(),
            enabled: true,
            prefix: String::new(),
            noncurrent_days: valid.noncurrent_version_expiration_days,
            abort_multipart_days: Some(ABORT_MULTIPART_DAYS),
            expires_current: false,
        }],
        policy: bucket_policy(&BucketPolicyInput {
            partition: p,
            bucket: &valid.bucket,
            encryption: match key_arn {
                Some(key_arn) => BucketPolicyEncryption::Kms { key_arn },
                None => BucketPolicyEncryption::Aes256,
            },
        }),
        logging: valid
            .access_logging
            .as_ref()
            .map(|l| Logging { target_bucket: l.target_bucket.clone(), target_prefix: l.target_prefix.clone() }),
    };
    let table = valid.lock_table.as_ref().map(|t| DesiredTable {
        name: t.name.clone(),
        arn: format!("arn:{p}:dynamodb:{}:{}:table/{}", valid.region, id.account_id, t.name),
        kms_key_arn: key_arn.map(str::to_string),
        pitr: t.point_in_time_recovery,
        deletion_protection: t.deletion_protection,
    });
    let mut backend = BackendSettings::new(&valid.bucket, &valid.state_key, &valid.region);
    backend.kms_key_id = key_arn.map(str::to_string);
    backend.dynamodb_table = table.as_ref().map(|t| t.name.clone());
    backend.use_lockfile = valid.lock_mode.uses_lockfile();
    backend.assume_role_arn = valid.render_assume_role.then(|| role_arn(valid, id));
    backend.workspace_key_prefix = valid.workspace_key_prefix.clone();
    backend.endpoints = endpoint_url.map(Endpoints::all);
    backend.open_tofu_encryption = key_arn.filter(|_| valid.open_tofu_encryption).map(|key| OpenTofuEncryption {
        kms_key_id: key.to_string(),
        region: valid.region.clone(),
        assume_role_arn: backend.assume_role_arn.clone(),
    });
    DesiredResources { bucket, table, backend }
}

/// The name of the trail's one advanced event selector.
pub const TRAIL_SELECTOR_NAME: &str = "tfstate-operator: S3 data events on the state bucket's objects";

/// The audit trail (`spec.audit.cloudTrail`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredTrail {
    /// The trail's settings: the log bucket and prefix, single-region, no global service
    /// events, log file validation on.
    pub config: TrailConfig,
    /// ARN (deterministic: region, account, name).
    pub arn: String,
    /// Exactly these advanced event selectors (normalized).
    pub selectors: Vec<EventSelector>,
}

/// What the trail records: S3 data events (reads and writes) on the objects of `bucket`,
/// and nothing else. No selector of category `Management`, so no management event is
/// recorded (and none billed); `resources.ARN` starts with `arn:PARTITION:s3:::BUCKET/`, so
/// objects of other buckets (`BUCKET-other/...`) are not matched.
pub fn state_object_selector(partition: &str, bucket: &str) -> EventSelector {
    let field = |name: &str, equals: &[&str], starts_with: &[String]| FieldSelector {
        field: name.into(),
        equals: equals.iter().map(|v| v.to_string()).collect(),
        starts_with: starts_with.to_vec(),
        ..Default::default()
    };
    EventSelector {
        name: Some(TRAIL_SELECTOR_NAME.into()),
        fields: vec![
            field("eventCategory", &["Data"], &[]),
            field("resources.type", &["AWS::S3::Object"], &[]),
            field("resources.ARN", &[], &[format!("arn:{partition}:s3:::{bucket}/")]),
        ],
    }
    .normalized()
}

/// The trail of the spec's `audit.cloudTrail`, in the backend's region (`None`: no audit).
pub fn desired_trail(valid: &ValidSpec, id: &Identity) -> Option<DesiredTrail> {
    let audit = valid.audit.as_ref()?;
    Some(DesiredTrail {
        config: TrailConfig {
            name: audit.trail_name.clone(),
            log_bucket: audit.log_bucket.clone(),
            log_prefix: audit.log_prefix.clone(),
            multi_region: false,
            global_service_events: false,
            log_file_validation: true,
        },
        arn: trail_arn(valid, id, &audit.trail_name),
        selectors: vec![state_object_selector(&id.partition, &valid.bucket)],
    })
}

/// ARN of the trail `name` of this backend's region and account.
pub fn trail_arn(valid: &ValidSpec, id: &Identity, name: &str) -> String {
    format!("arn:{}:cloudtrail:{}:{}:trail/{name}", id.partition, valid.region, id.account_id)
}

/// The two bucket policy statements a log bucket needs for CloudTrail to deliver the trail's
/// log files (AWS's documented policy, bound to this one trail by `aws:SourceArn`): for the
/// message that tells the user what to add.
pub fn log_bucket_statements(partition: &str, account_id: &str, trail: &DesiredTrail) -> serde_json::Value {
    let bucket = &trail.config.log_bucket;
    let prefix = trail.config.log_prefix.as_deref().map(|p| format!("{p}/")).unwrap_or_default();
    serde_json::json!([
        {
            "Sid": "AWSCloudTrailAclCheck",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "s3:GetBucketAcl",
            "Resource": format!("arn:{partition}:s3:::{bucket}"),
            "Condition": {"StringEquals": {"aws:SourceArn": trail.arn}}
        },
        {
            "Sid": "AWSCloudTrailWrite",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": format!("arn:{partition}:s3:::{bucket}/{prefix}AWSLogs/{account_id}/*"),
            "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceArn": trail.arn}}
        }
    ])
}

/// ID of the operator's replication rule.
pub const REPLICATION_RULE_ID: &str = "tfstate-operator";

/// The replica's parts that do not depend on the replica key: role and key.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredReplica {
    /// Replica region.
    pub region: String,
    /// The replication role (trusted by S3 for this source bucket only), without its
    /// inline policy.
    pub role: DesiredRole,
    /// The replica's key (`Managed` in the replica region, or `Existing`).
    pub key: DesiredKey,
}

/// The replica's parts once the replica key's ARN is known.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredReplicaResources {
    /// The replica bucket: hardened like the state bucket, read-only.
    pub bucket: DesiredBucket,
    /// The replication role's inline policy.
    pub role_policy: PolicyDocument,
    /// The state bucket's replication configuration.
    pub config: ReplicationSettings,
}

/// The replica's role and key (`None` without `spec.replication`).
pub fn desired_replica(valid: &ValidSpec, id: &Identity, owner: &Owner) -> Option<DesiredReplica> {
    let r = valid.replication.as_ref()?;
    let p = &id.partition;
    let role_arn = format!("arn:{p}:iam::{}:role{}{}", id.account_id, valid.role.path, r.role_name);
    let key = match &r.encryption {
        Encryption::CreateKey { alias, deletion_window_days, admins } => DesiredKey::Managed {
            alias: alias.clone(),
            deletion_window_days: *deletion_window_days,
            description: format!(
                "Replica of the Terraform state of {}/{} (managed by tfstate-operator)",
                owner.namespace, owner.name
            ),
            policy: replica_key_policy(
                &KeyPolicyInput {
                    partition: p,
                    account_id: &id.account_id,
                    region: &r.region,
                    operator_arn: &id.operator_arn,
                    role_arn: &role_arn,
                    admins,
                    principal_org_id: valid.role.principal_org_id.as_deref(),
                    open_tofu_encryption: false,
                },
                &r.bucket,
            ),
        },
        Encryption::ExistingKey { arn } => DesiredKey::Existing { arn: arn.clone() },
        // Refused by validate (replication needs KMS).
        Encryption::Aes256 => DesiredKey::None,
    };
    let role = DesiredRole {
        name: r.role_name.clone(),
        arn: role_arn,
        description: format!(
            "S3 replication of the Terraform state bucket of {}/{} (managed by tfstate-operator)",
            owner.namespace, owner.name
        ),
        trust: replication_trust_policy(p, &id.account_id, &valid.bucket),
        max_session_duration: 3600,
        boundary: valid.role.permissions_boundary_arn.clone(),
        path: valid.role.path.clone(),
    };
    Some(DesiredReplica { region: r.region.clone(), role, key })
}

/// The replica bucket, the replication role's policy and the replication configuration,
/// given the state bucket's key and the replica's key.
pub fn desired_replica_resources(
    valid: &ValidSpec,
    id: &Identity,
    replica: &DesiredReplica,
    source_key_arn: &str,
    replica_key_arn: &str,
) -> Option<DesiredReplicaResources> {
    let r = valid.replication.as_ref()?;
    let p = &id.partition;
    let primary = desired_resources(valid, id, Some(source_key_arn), None).bucket;
    let bucket = DesiredBucket {
        name: r.bucket.clone(),
        kms_key_arn: Some(replica_key_arn.to_string()),
        public_access_block: PublicAccessBlock::ALL,
        // The replica keeps versions as long as the state bucket does.
        lifecycle: primary.lifecycle,
        policy: replica_bucket_policy(p, &r.bucket, &replica.role.arn, &id.operator_arn),
        logging: None,
    };
    let role_policy = replication_role_policy(&ReplicationPolicyInput {
        partition: p,
        account_id: &id.account_id,
        source_bucket: &valid.bucket,
        source_region: &valid.region,
        source_key_arn,
        replica_bucket: &r.bucket,
        replica_region: &r.region,
        replica_key_arn: Some(replica_key_arn),
    });
    let config = ReplicationSettings {
        role_arn: replica.role.arn.clone(),
        rules: vec![ReplicationRuleSettings {
            id: REPLICATION_RULE_ID.into(),
            priority: Some(1),
            enabled: true,
            // The whole bucket: every state and workspace state (lock files too, as plain
            // objects; the lock table is DynamoDB and never replicated).
            filter_prefix: Some(String::new()),
            // Not replicated: see README ("Why delete markers are not replicated").
            delete_markers: false,
            sse_kms_objects: true,
            destination_bucket_arn: format!("arn:{p}:s3:::{}", r.bucket),
            replica_kms_key_id: Some(replica_key_arn.to_string()),
            replication_time: r.replication_time_control,
            metrics: r.replication_time_control,
        }],
    };
    Some(DesiredReplicaResources { bucket, role_policy, config })
}

#[cfg(test)]
#[path = "desired_tests.rs"]
mod tests;
