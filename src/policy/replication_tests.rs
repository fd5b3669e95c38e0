use serde_json::json;

use super::*;
use crate::policy::test_support::{assert_json, assert_survives_aws_rewrite};

const SOURCE_KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/11111111-aaaa-bbbb-cccc-123456789abc";
const REPLICA_KEY: &str = "arn:aws:kms:eu-central-1:123456789012:key/22222222-aaaa-bbbb-cccc-123456789abc";
const ROLE: &str = "arn:aws:iam::123456789012:role/tfstate-team-a-app-replication";
const OPERATOR: &str = "arn:aws:iam::123456789012:role/tfstate-operator";

fn input(replica_key_arn: Option<&str>) -> ReplicationPolicyInput<'_> {
    ReplicationPolicyInput {
        partition: "aws",
        account_id: "123456789012",
        source_bucket: "acme-tfstate",
        source_region: "eu-west-1",
        source_key_arn: SOURCE_KEY,
        replica_bucket: "acme-tfstate-replica",
        replica_region: "eu-central-1",
        replica_key_arn,
    }
}

/// Only S3, only for this account and this source bucket.
#[test]
fn trust_is_s3_for_this_account_and_source_bucket_only() {
    let doc = replication_trust_policy("aws", "123456789012", "acme-tfstate");
    assert_json(
        &doc,
        vec![json!({
            "Sid": "AllowS3ReplicationOfTheStateBucket", "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": "123456789012"},
                "ArnEquals": {"aws:SourceArn": "arn:aws:s3:::acme-tfstate"}
            }
        })],
    );
    assert_survives_aws_rewrite(&doc);
}

/// Exactly what replication needs: the KMS conditions name the BUCKET ARNs (Bucket Keys),
/// and no delete is granted.
#[test]
fn role_policy_is_exactly_the_replication_minimum() {
    let doc = replication_role_policy(&input(Some(REPLICA_KEY)));
    assert_json(
        &doc,
        vec![
            json!({"Sid": "ReadReplicationConfiguration", "Effect": "Allow",
                   "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
                   "Resource": "arn:aws:s3:::acme-tfstate"}),
            json!({"Sid": "ReadSourceVersions", "Effect": "Allow",
                   "Action": ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"],
                   "Resource": "arn:aws:s3:::acme-tfstate/*"}),
            json!({"Sid": "ReplicateToReplica", "Effect": "Allow",
                   "Action": ["s3:ReplicateObject", "s3:ReplicateTags"],
                   "Resource": "arn:aws:s3:::acme-tfstate-replica/*"}),
            json!({"Sid": "DecryptSource", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": SOURCE_KEY,
                   "Condition": {"StringEquals": {
                       "kms:ViaService": "s3.eu-west-1.amazonaws.com",
                       "kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::acme-tfstate"}}}),
            json!({"Sid": "EncryptReplica", "Effect": "Allow", "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
                   "Resource": REPLICA_KEY,
                   "Condition": {"StringEquals": {
                       "kms:ViaService": "s3.eu-central-1.amazonaws.com",
                       "kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::acme-tfstate-replica"}}}),
        ],
    );
    assert_survives_aws_rewrite(&doc);
}

/// Before the replica key exists, no statement names a key that might be someone else's.
#[test]
fn no_replica_key_no_encrypt_statement() {
    let doc = replication_role_policy(&input(None));
    assert!(doc.statements.iter().all(|s| s.sid.as_deref() != Some("EncryptReplica")));
    assert_eq!(doc.statements.len(), 4);
}

/// Abuse: no action is a wildcard, nothing deletes or replicates deletes, every resource
/// is one of the two buckets (or their objects) or one of the two keys, and no KMS use
/// lacks its service and encryption-context conditions.
#[test]
fn role_policy_reaches_nothing_else() {
    let doc = replication_role_policy(&input(Some(REPLICA_KEY)));
    let allowed_resources = [
        "arn:aws:s3:::acme-tfstate",
        "arn:aws:s3:::acme-tfstate/*",
        "arn:aws:s3:::acme-tfstate-replica/*",
        SOURCE_KEY,
        REPLICA_KEY,
    ];
    for s in &doc.statements {
        assert_eq!(s.effect, Effect::Allow);
        assert!(s.not_action.is_none() && s.not_resource.is_none() && s.principal.is_none());
        for a in s.action.iter().flatten() {
            assert!(!a.contains('*') && !a.contains('?'), "wildcard action {a}");
            assert!(!a.contains("Delete"), "a delete is granted: {a}");
        }
        for r in s.resource.iter().flatten() {
            assert!(allowed_resources.contains(&r.as_str()), "unexpected resource {r}");
        }
        if s.action.iter().flatten().any(|a| a.starts_with("kms:")) {
            let c = s.condition.as_ref().expect("KMS use is conditioned");
            let keys = &c["StringEquals"];
            assert!(keys.contains_key("kms:ViaService") && keys.contains_key(CONTEXT_S3_ARN), "{s:?}");
            let context = keys[CONTEXT_S3_ARN][0].as_aws_string();
            assert!(!context.ends_with("/*"), "the object ARN never matches with Bucket Keys: {context}");
        }
    }
}

/// Read-only: every write and delete of objects is refused but to the replication role,
/// configuration changes but to the operator, TLS always.
#[test]
fn replica_bucket_is_read_only_but_for_the_replication_role() {
    let doc = replica_bucket_policy("aws", "acme-tfstate-replica", ROLE, OPERATOR);
    let bucket = "arn:aws:s3:::acme-tfstate-replica";
    let objects = "arn:aws:s3:::acme-tfstate-replica/*";
    assert_json(
        &doc,
        vec![
            json!({"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                   "Resource": [bucket, objects], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}),
            json!({"Sid": "DenyWritesButReplication", "Effect": "Deny", "Principal": "*",
                   "Action": REPLICA_OBJECT_WRITES, "Resource": objects,
                   "Condition": {"ArnNotEquals": {"aws:PrincipalArn": ROLE}}}),
            json!({"Sid": "DenyReplicatedDeletes", "Effect": "Deny", "Principal": "*",
                   "Action": "s3:ReplicateDelete", "Resource": objects}),
            json!({"Sid": "DenyConfigChangesButOperator", "Effect": "Deny", "Principal": "*",
                   "Action": REPLICA_CONFIG_WRITES, "Resource": bucket,
                   "Condition": {"ArnNotEquals": {"aws:PrincipalArn": OPERATOR}}}),
        ],
    );
    assert_survives_aws_rewrite(&doc);
    for needed in ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl"] {
        assert!(REPLICA_OBJECT_WRITES.contains(&needed), "{needed} is not refused");
    }
    // Abuse: bucket-level writes a tenant could use on the replica (exporting its listing
    // elsewhere, logging, CORS, a policy of its own, deleting it) are all refused but to the
    // operator; reads are not.
    let refused = |action: &str| {
        REPLICA_CONFIG_WRITES.iter().any(|p| p.strip_suffix('*').is_some_and(|prefix| action.starts_with(prefix)))
    };
    for write in [
        "s3:PutInventoryConfiguration",
        "s3:PutBucketLogging",
        "s3:PutBucketCORS",
        "s3:PutAccelerateConfiguration",
        "s3:PutIntelligentTieringConfiguration",
        "s3:PutAnalyticsConfiguration",
        "s3:PutMetricsConfiguration",
        "s3:PutBucketRequestPayment",
        "s3:PutBucketPolicy",
        "s3:DeleteBucketPolicy",
        "s3:PutBucketVersioning",
        "s3:PutReplicationConfiguration",
        "s3:PutBucketNotification",
        "s3:DeleteBucketWebsite",
        "s3:DeleteBucket",
    ] {
        assert!(refused(write), "{write} is not refused on the replica bucket");
    }
    for read in ["s3:GetObject", "s3:ListBucket", "s3:GetBucketPolicy", "s3:ListBucketVersions"] {
        assert!(!refused(read), "{read} is refused");
    }
}

/// The replica key: administration as every created key, use by the replication role
/// through S3 in the replica's region for the replica bucket only; never Decrypt for it.
#[test]
fn replica_key_lets_the_replication_role_encrypt_only() {
    let admins = vec![];
    let key = KeyPolicyInput {
        partition: "aws",
        account_id: "123456789012",
        region: "eu-central-1",
        operator_arn: OPERATOR,
        role_arn: ROLE,
        admins: &admins,
        principal_org_id: None,
        open_tofu_encryption: false,
    };
    let doc = replica_key_policy(&key, "acme-tfstate-replica");
    let sids: Vec<_> = doc.statements.iter().filter_map(|s| s.sid.as_deref()).collect();
    assert_eq!(
        sids,
        [
            "EnableRootAccountAdministration",
            "AllowOperatorAdministration",
            "AllowOperatorGrantsForAwsResources",
            "AllowReplicationRoleUse"
        ]
    );
    let last = serde_json::to_value(doc.statements.last().expect("statement")).expect("json");
    assert_eq!(
        last,
        json!({"Sid": "AllowReplicationRoleUse", "Effect": "Allow", "Principal": {"AWS": ROLE},
               "Action": ["kms:Encrypt", "kms:GenerateDataKey"], "Resource": "*",
               "Condition": {"StringEquals": {
                   "kms:ViaService": "s3.eu-central-1.amazonaws.com",
                   "kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::acme-tfstate-replica"}}})
    );
    assert_survives_aws_rewrite(&doc);
}
