//! `spec.audit`: the trail's name, its log bucket and prefix.

use super::{Audit, IPV4, ObjectRef, Problems, TRAIL, TerraformStateBackendSpec, check_bucket_name, check_object_key};

/// `spec.audit.cloudTrail`: CloudTrail's naming rules for the trail, S3's for the log bucket
/// (never the state bucket: the trail would log its own deliveries), the object key rules for
/// the prefix (it is quoted into the bucket policy statement the user is told to add).
pub(super) fn resolve_audit(p: &mut Problems, obj: ObjectRef<'_>, spec: &TerraformStateBackendSpec) -> Option<Audit> {
    let ct = &spec.audit.as_ref()?.cloud_trail;
    let path = "spec.audit.cloudTrail.trailName";
    let trail_name = ct.trail_name.clone().unwrap_or_else(|| format!("tfstate-{}.{}", obj.namespace, obj.name));
    let hint = if ct.trail_name.is_none() {
        format!(" (the default {trail_name:?}, derived from the object's namespace and name; set {path} explicitly)")
    } else {
        String::new()
    };
    if p.literal(path, &trail_name) {
        let fix = "trail names are 3-128 letters, digits, '.', '_' and '-', starting and ending with a letter or digit";
        if !(3..=128).contains(&trail_name.len()) || !TRAIL.is_match(&trail_name) {
            p.add(path, format!("{trail_name:?} is not a valid CloudTrail trail name: {fix}{hint}"));
        } else if trail_name.as_bytes().windows(2).any(|w| w.iter().all(|b| b"._-".contains(b))) {
            p.add(path, format!("{trail_name:?} has two of '.', '_', '-' in a row, which CloudTrail forbids{hint}"));
        } else if IPV4.is_match(&trail_name) {
            p.add(path, format!("{trail_name:?} looks like an IP address, which CloudTrail forbids as a trail name"));
        }
    }
    let bucket_path = "spec.audit.cloudTrail.logBucket";
    check_bucket_name(p, bucket_path, &ct.log_bucket);
    if ct.log_bucket == spec.bucket.name {
        p.add(
            bucket_path,
            "must not be the state bucket itself: the trail would record its own log deliveries, and log files \
             would mix with state; name a separate log bucket",
        );
    }
    if let Some(prefix) = &ct.log_prefix {
        check_object_key(p, "spec.audit.cloudTrail.logPrefix", prefix, 200);
    }
    Some(Audit { trail_name, log_bucket: ct.log_bucket.clone(), log_prefix: ct.log_prefix.clone() })
}
