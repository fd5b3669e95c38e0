//! The policies of a backend's cross-region replica (`spec.replication`):
//! - [`replication_trust_policy`]: only S3, for this account and this source bucket;
//! - [`replication_role_policy`]: exactly what S3 replication needs, and no delete;
//! - [`replica_bucket_policy`]: TLS only, and read-only for everyone but the replication role;
//! - [`replica_key_policy`]: the replica key's administration, and its use by the replication
//!   role through S3 in the replica's region only.
//!
//! Both buckets use S3 Bucket Keys, so S3 asks KMS with the encryption context
//! `aws:s3:arn` = the BUCKET's ARN, not the object's: a grant conditioned on the object ARN
//! (`arn:aws:s3:::bucket/*`) never matches and replication fails silently.

use super::document::{Effect, PolicyDocument, Principal, Statement};
use super::key::{KeyPolicyInput, administration, dns_suffix};

/// The service principal of S3 replication.
pub const S3_SERVICE: &str = "s3.amazonaws.com";
/// The encryption context key S3 passes to KMS.
const CONTEXT_S3_ARN: &str = "kms:EncryptionContext:aws:s3:arn";

/// What the replication policies depend on.
#[derive(Clone, Copy, Debug)]
pub struct ReplicationPolicyInput<'a> {
    /// AWS partition, e.g. `aws`.
    pub partition: &'a str,
    /// The account of both buckets.
    pub account_id: &'a str,
    /// The state bucket (replication source).
    pub source_bucket: &'a str,
    /// The state bucket's region.
    pub source_region: &'a str,
    /// The state bucket's key ARN.
    pub source_key_arn: &'a str,
    /// The replica bucket (destination).
    pub replica_bucket: &'a str,
    /// The replica's region.
    pub replica_region: &'a str,
    /// The replica key's ARN (`None` while it does not exist yet: no statement for it).
    pub replica_key_arn: Option<&'a str>,
}

fn bucket_arn(partition: &str, bucket: &str) -> String {
    format!("arn:{partition}:s3:::{bucket}")
}

fn via_s3(partition: &str, region: &str) -> String {
    format!("s3.{region}.{}", dns_suffix(partition))
}

/// The replication role's trust policy: `sts:AssumeRole` by `s3.amazonaws.com` only, on
/// behalf of this account (`aws:SourceAccount`) and this source bucket (`aws:SourceArn`),
/// so that no other bucket's replication can use the role (confused deputy).
pub fn replication_trust_policy(partition: &str, account_id: &str, source_bucket: &str) -> PolicyDocument {
    PolicyDocument::new(vec![
        Statement::new("AllowS3ReplicationOfTheStateBucket", Effect::Allow)
            .principal(Principal::service([S3_SERVICE]))
            .actions(["sts:AssumeRole"])
            .condition("StringEquals", "aws:SourceAccount", [account_id])
            .condition("ArnEquals", "aws:SourceArn", [bucket_arn(partition, source_bucket)]),
    ])
}

/// The replication role's inline policy, `Sid`s:
/// - `ReadReplicationConfiguration`: `s3:GetReplicationConfiguration`, `s3:ListBucket` on the
///   source bucket;
/// - `ReadSourceVersions`: `s3:GetObjectVersionForReplication`, `s3:GetObjectVersionAcl`,
///   `s3:GetObjectVersionTagging` on the source objects;
/// - `ReplicateToReplica`: `s3:ReplicateObject`, `s3:ReplicateTags` on the replica's objects
///   (not `s3:ReplicateDelete`: delete markers are not replicated);
/// - `DecryptSource`: `kms:Decrypt` on the source key, through S3 in the source region, for the
///   source bucket's encryption context;
/// - `EncryptReplica` (once the replica key exists): `kms:Encrypt` and `kms:GenerateDataKey`
///   (S3 Bucket Keys on the replica make S3 generate a bucket-level data key) on the replica
///   key, through S3 in the replica region, for the replica bucket's encryption context.
pub fn replication_role_policy(input: &ReplicationPolicyInput<'_>) -> PolicyDocument {
    let p = input.partition;
    let source = bucket_arn(p, input.source_bucket);
    let replica = bucket_arn(p, input.replica_bucket);
    let mut statements = vec![
        Statement::new("ReadReplicationConfiguration", Effect::Allow)
            .actions(["s3:GetReplicationConfiguration", "s3:ListBucket"])
            .resources([source.as_str()]),
        Statement::new("ReadSourceVersions", Effect::Allow)
            .actions(["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"])
            .resources([format!("{source}/*")]),
        Statement::new("ReplicateToReplica", Effect::Allow)
            .actions(["s3:ReplicateObject", "s3:ReplicateTags"])
            .resources([format!("{replica}/*")]),
        Statement::new("DecryptSource", Effect::Allow)
            .actions(["kms:Decrypt"])
            .resources([input.source_key_arn])
            .condition("StringEquals", "kms:ViaService", [via_s3(p, input.source_region)])
            .condition("StringEquals", CONTEXT_S3_ARN, [source.as_str()]),
    ];
    if let Some(key) = input.replica_key_arn {
        statements.push(
            Statement::new("EncryptReplica", Effect::Allow)
                .actions(["kms:Encrypt", "kms:GenerateDataKey"])
                .resources([key])
                .condition("StringEquals", "kms:ViaService", [via_s3(p, input.replica_region)])
                .condition("StringEquals", CONTEXT_S3_ARN, [replica.as_str()]),
        );
    }
    PolicyDocument::new(statements)
}

/// Object actions that write, delete or re-permission a replica object: refused to every
/// principal but the replication role.
pub const REPLICA_OBJECT_WRITES: [&str; 16] = [
    "s3:PutObject",
    "s3:PutObjectAcl",
    "s3:PutObjectVersionAcl",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersionTagging",
    "s3:BypassGovernanceRetention",
    "s3:RestoreObject",
    "s3:ReplicateObject",
    "s3:ReplicateTags",
    "s3:ObjectOwnerOverrideToBucketOwner",
];

/// Bucket configuration changes refused to every principal but the operator, which keeps
/// them converged (the account root user can always remove a bucket policy that locks
/// everyone else out). Wildcards, not a list: every bucket-level write is a `Put*` (a
/// bucket-level `Delete...` needs the `Put...` of its configuration, e.g. DeleteBucketCors
/// `s3:PutBucketCORS`) or a `DeleteBucket*` action, so a configuration S3 adds later
/// (inventory exports of the listing, logging, CORS, acceleration...) is refused too. On the
/// bucket's ARN only, so object writes (the replication role's) are not concerned.
pub const REPLICA_CONFIG_WRITES: [&str; 2] = ["s3:Put*", "s3:DeleteBucket*"];

/// The replica bucket's policy, `Sid`s:
/// - `DenyInsecureTransport`: any request without TLS;
/// - `DenyWritesButReplication`: [`REPLICA_OBJECT_WRITES`] by any principal whose
///   `aws:PrincipalArn` is not the replication role;
/// - `DenyReplicatedDeletes`: `s3:ReplicateDelete` by anyone (the configuration does not
///   replicate delete markers, and the role is not granted it);
/// - `DenyConfigChangesButOperator`: [`REPLICA_CONFIG_WRITES`] by any principal but the
///   operator.
pub fn replica_bucket_policy(
    partition: &str,
    replica_bucket: &str,
    replication_role_arn: &str,
    operator_arn: &str,
) -> PolicyDocument {
    let bucket = bucket_arn(partition, replica_bucket);
    let objects = format!("{bucket}/*");
    PolicyDocument::new(vec![
        Statement::new("DenyInsecureTransport", Effect::Deny)
            .principal(Principal::Any)
            .actions(["s3:*"])
            .resources([bucket.as_str(), &objects])
            .condition("Bool", "aws:SecureTransport", ["false"]),
        Statement::new("DenyWritesButReplication", Effect::Deny)
            .principal(Principal::Any)
            .actions(REPLICA_OBJECT_WRITES)
            .resources([objects.as_str()])
            .condition("ArnNotEquals", "aws:PrincipalArn", [replication_role_arn]),
        Statement::new("DenyReplicatedDeletes", Effect::Deny)
            .principal(Principal::Any)
            .actions(["s3:ReplicateDelete"])
            .resources([objects.as_str()]),
        Statement::new("DenyConfigChangesButOperator", Effect::Deny)
            .principal(Principal::Any)
            .actions(REPLICA_CONFIG_WRITES)
            .resources([bucket.as_str()])
            .condition("ArnNotEquals", "aws:PrincipalArn", [operator_arn]),
    ])
}

/// The replica key's policy: the administration statements of every key the operator
/// creates (account root, operator, extra admins; `input.region` is the replica's), then
/// `AllowReplicationRoleUse`: `kms:Encrypt` and `kms:GenerateDataKey` by the replication
/// role (`input.role_arn`), through S3 in the replica's region, for the replica bucket's
/// encryption context only.
pub fn replica_key_policy(input: &KeyPolicyInput<'_>, replica_bucket: &str) -> PolicyDocument {
    let mut statements = administration(input, false);
    statements.push(
        Statement::new("AllowReplicationRoleUse", Effect::Allow)
            .principal(Principal::aws([input.role_arn]))
            .actions(["kms:Encrypt", "kms:GenerateDataKey"])
            .resources(["*"])
            .condition("StringEquals", "kms:ViaService", [via_s3(input.partition, input.region)])
            .condition("StringEquals", CONTEXT_S3_ARN, [bucket_arn(input.partition, replica_bucket)]),
    );
    PolicyDocument::new(statements)
}

#[cfg(test)]
#[path = "replication_tests.rs"]
mod tests;
