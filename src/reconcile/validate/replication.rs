//! `spec.replication`: the replica's region, bucket, key and the replication role's name.

use super::keys::{KeyFor, created_key, existing_key};
use super::{EncryptionMode, ObjectRef, Problems, REGION, TerraformStateBackendSpec, check_bucket_name};
use crate::api::KmsKeySpec;
use crate::reconcile::valid::{Encryption, Replication};

/// Suffix of the derived replica bucket name, replica key alias and replication role name.
pub const REPLICA_SUFFIX: &str = "-replica";
/// Suffix of the derived replication role name.
pub const REPLICATION_ROLE_SUFFIX: &str = "-replication";

/// `spec.replication`: a replica bucket in another region (named after the state bucket
/// unless set), its own key, and the replication role's name (after the runner role's).
pub(super) fn resolve_replication(
    p: &mut Problems,
    obj: ObjectRef<'_>,
    spec: &TerraformStateBackendSpec,
    region: &str,
    primary: &Encryption,
    runner_role: &str,
) -> Option<Replication> {
    let r = spec.replication.as_ref()?;
    let path = "spec.replication.region";
    if p.literal(path, &r.region) && !REGION.is_match(&r.region) {
        p.add(path, format!("{:?} is not an AWS region name; use one like \"eu-central-1\"", r.region));
    } else if r.region == region {
        p.add(
            path,
            format!(
                "{:?} is the backend's own region: a replica for disaster recovery must be in another region",
                r.region
            ),
        );
    }
    if spec.encryption.mode != EncryptionMode::Kms {
        p.add(
            "spec.replication",
            "replication needs spec.encryption.mode KMS: the replication role is granted the state bucket's key, and the replica is encrypted with a key of its own",
        );
    }
    let bucket = r.bucket_name.clone().unwrap_or_else(|| format!("{}{REPLICA_SUFFIX}", spec.bucket.name));
    let path = "spec.replication.bucketName";
    if r.bucket_name.is_none() && bucket.len() > 63 {
        p.add(path, format!("the default {bucket:?} (the bucket name and {REPLICA_SUFFIX:?}) is longer than 63 characters; set {path} explicitly"));
    } else {
        check_bucket_name(p, path, &bucket);
    }
    if bucket == spec.bucket.name {
        p.add(path, "must not be the state bucket itself; name a bucket of its own in the replica's region");
    }
    if spec.bucket.access_logging.as_ref().is_some_and(|l| l.target_bucket == bucket) {
        p.add(path, "must not be the access logging target bucket");
    }
    let key_path = "spec.replication.kmsKey";
    let encryption = match &r.kms_key {
        Some(k) if k.create.is_some() == k.existing_key_arn.is_some() => {
            p.add(key_path, "set exactly one of create or existingKeyArn (or omit kmsKey to create a key)");
            Encryption::Aes256
        }
        Some(KmsKeySpec { existing_key_arn: Some(arn), .. }) => {
            if let Encryption::ExistingKey { arn: primary } = primary
                && primary == arn
            {
                p.add(format!("{key_path}.existingKeyArn"), "must not be the state bucket's key");
            }
            existing_key(p, key_path, arn, &r.region, KeyFor::Replica)
        }
        k => {
            let create = k.as_ref().and_then(|k| k.create.clone()).unwrap_or_default();
            let derived = match primary {
                Encryption::CreateKey { alias, .. } => format!("{alias}{REPLICA_SUFFIX}"),
                _ => format!("alias/tfstate-{}-{}{REPLICA_SUFFIX}", obj.namespace, obj.name),
            };
            created_key(p, key_path, &create, derived)
        }
    };
    // IAM role names are at most 64 characters: a long runner role name is cut, keeping
    // the suffix that says what the role is for.
    let keep = 64 - REPLICATION_ROLE_SUFFIX.len();
    let role_name = format!("{}{REPLICATION_ROLE_SUFFIX}", runner_role.chars().take(keep).collect::<String>());
    Some(Replication {
        region: r.region.clone(),
        bucket,
        encryption,
        role_name,
        replication_time_control: r.replication_time_control,
    })
}
