//! KMS keys: the state bucket's (`spec.encryption`) and the replica's
//! (`spec.replication.kmsKey`) follow the same rules, each with its own field paths.

use super::{
    EncryptionMode, KMS_ALIAS, KMS_KEY_ARN, ObjectRef, Problems, TerraformStateBackendSpec, check_derived,
    check_principals, sorted_unique,
};
use crate::api::KmsKeyCreateSpec;
use crate::reconcile::valid::Encryption;

/// `spec.encryption`: SSE-S3, an existing key, or a key the operator creates (by default,
/// alias `alias/tfstate-NAMESPACE-NAME`).
pub(super) fn resolve_encryption(
    p: &mut Problems,
    obj: ObjectRef<'_>,
    spec: &TerraformStateBackendSpec,
    region: &str,
) -> Encryption {
    let enc = &spec.encryption;
    match (enc.mode, &enc.kms_key) {
        (EncryptionMode::Aes256, Some(_)) => {
            p.add(
                "spec.encryption.kmsKey",
                "is only used with mode KMS: remove it, or set spec.encryption.mode to KMS",
            );
            Encryption::Aes256
        }
        (EncryptionMode::Aes256, None) => Encryption::Aes256,
        (EncryptionMode::Kms, Some(k)) if k.create.is_some() && k.existing_key_arn.is_some() => {
            p.add("spec.encryption.kmsKey", "set exactly one of create or existingKeyArn, not both");
            Encryption::Aes256
        }
        (EncryptionMode::Kms, Some(k)) if k.create.is_none() && k.existing_key_arn.is_none() => {
            p.add(
                "spec.encryption.kmsKey",
                "set exactly one of create or existingKeyArn (or omit kmsKey to create a key)",
            );
            Encryption::Aes256
        }
        (EncryptionMode::Kms, Some(k)) if k.existing_key_arn.is_some() => {
            let arn = k.existing_key_arn.as_deref().unwrap_or_default();
            existing_key(p, "spec.encryption.kmsKey", arn, region, KeyFor::Backend)
        }
        (EncryptionMode::Kms, k) => {
            let create = k.as_ref().and_then(|k| k.create.clone()).unwrap_or_default();
            let derived = format!("alias/tfstate-{}-{}", obj.namespace, obj.name);
            created_key(p, "spec.encryption.kmsKey", &create, derived)
        }
    }
}

/// Which bucket a key encrypts: it must be in that bucket's region.
#[derive(Clone, Copy)]
pub(super) enum KeyFor {
    /// The state bucket, in the backend's region.
    Backend,
    /// The replica bucket, in `spec.replication.region`.
    Replica,
}

/// `existingKeyArn` under `field` (e.g. `spec.encryption.kmsKey`): a literal key ARN, not an
/// alias (the policies name the key by ARN), in `region`, the region of the bucket it is for.
pub(super) fn existing_key(p: &mut Problems, field: &str, arn: &str, region: &str, for_: KeyFor) -> Encryption {
    let path = format!("{field}.existingKeyArn");
    let key_region = arn.split(':').nth(3).unwrap_or_default();
    if !p.literal(&path, arn) {
        // Reported.
    } else if !KMS_KEY_ARN.is_match(arn) {
        p.add(path, format!("{arn:?} is not a KMS key ARN; use arn:aws:kms:REGION:ACCOUNT:key/KEY-ID (not an alias)"));
    } else if key_region != region && !region.is_empty() {
        let (whose, bucket) = match for_ {
            KeyFor::Backend => ("the backend", "the bucket's"),
            KeyFor::Replica => ("the replica", "the replica bucket's"),
        };
        p.add(
            path,
            format!(
                "the key is in region {key_region:?} but {whose} is in {region:?}; S3 needs a key in {bucket} region"
            ),
        );
    }
    Encryption::ExistingKey { arn: arn.to_string() }
}

/// `create` under `field`: the alias (`derived` unless set; either must be a valid alias
/// outside AWS's reserved `alias/aws/`), the deletion window and the key administrators.
pub(super) fn created_key(p: &mut Problems, field: &str, create: &KmsKeyCreateSpec, derived: String) -> Encryption {
    let path = format!("{field}.create.alias");
    let alias = create.alias.clone().unwrap_or(derived);
    if p.literal(&path, &alias) {
        check_derived(
            p,
            &path,
            create.alias.is_none(),
            &alias,
            256,
            KMS_ALIAS.is_match(&alias),
            "an alias of the form alias/NAME (letters, digits, '/', '_' and '-')",
        );
    }
    if alias.starts_with("alias/aws/") {
        p.add(&path, "aliases under alias/aws/ are reserved for AWS managed keys; choose another alias");
    }
    if !(7..=30).contains(&create.deletion_window_days) {
        p.add(format!("{field}.create.deletionWindowDays"), "must be between 7 and 30 days");
    }
    check_principals(p, &format!("{field}.create.admins"), &create.admins);
    Encryption::CreateKey {
        alias,
        deletion_window_days: create.deletion_window_days,
        admins: sorted_unique(&create.admins),
    }
}
