//! The disaster-recovery outputs of a backend with `spec.replication`: the replica's flat
//! keys and `backend-dr.tfbackend`, a partial configuration pointing at the read-only replica
//! for `terraform state pull` while the state bucket's region is down.
//!
//! Built from the same argument list as the other outputs ([`super::arguments`]), from the
//! primary's settings with the replica's bucket, region and key, and without any lock: the
//! replica refuses writes, and the lock table is never replicated.

use std::collections::BTreeMap;

use hcl::Body;
use hcl::format::Formatter;

use super::arguments::arguments;
use super::settings::BackendSettings;
use super::{RenderError, attributes, format};

/// ConfigMap key of the replica's partial configuration file.
pub const BACKEND_DR_TFBACKEND_KEY: &str = "backend-dr.tfbackend";
/// ConfigMap key of the replica bucket's name.
pub const REPLICA_BUCKET_KEY: &str = "replica_bucket";
/// ConfigMap key of the replica's region.
pub const REPLICA_REGION_KEY: &str = "replica_region";
/// ConfigMap key of the replica key's ARN.
pub const REPLICA_KMS_KEY_ID_KEY: &str = "replica_kms_key_id";

/// Where the replica is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSettings {
    /// Replica bucket.
    pub bucket: String,
    /// Replica region.
    pub region: String,
    /// Replica key ARN.
    pub kms_key_id: String,
}

/// The replica's ConfigMap entries, given the primary's `primary` settings. The DR file
/// keeps the primary's key (state path), workspace prefix and endpoints, and names no lock
/// table, no lock file and no role to assume: reading the replica takes credentials allowed
/// to read it (the runners' role is not), see README "Cross-region replica".
pub fn render_replica(
    primary: &BackendSettings,
    replica: &ReplicaSettings,
) -> Result<BTreeMap<String, String>, RenderError> {
    let mut dr = BackendSettings::new(&replica.bucket, &primary.key, &replica.region);
    dr.kms_key_id = Some(replica.kms_key_id.clone());
    dr.workspace_key_prefix.clone_from(&primary.workspace_key_prefix);
    dr.endpoints.clone_from(&primary.endpoints);
    let body = Body::builder().add_attributes(attributes(&arguments(&dr))).build();
    let file = format(&body, Formatter::builder(), BACKEND_DR_TFBACKEND_KEY)?;
    Ok(BTreeMap::from([
        (BACKEND_DR_TFBACKEND_KEY.to_owned(), file),
        (REPLICA_BUCKET_KEY.to_owned(), replica.bucket.clone()),
        (REPLICA_REGION_KEY.to_owned(), replica.region.clone()),
        (REPLICA_KMS_KEY_ID_KEY.to_owned(), replica.kms_key_id.clone()),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{Endpoints, render};

    fn primary() -> BackendSettings {
        let mut s = BackendSettings::new("acme-tfstate", "team-a/app/terraform.tfstate", "eu-west-1");
        s.kms_key_id = Some("arn:aws:kms:eu-west-1:123456789012:key/1111".into());
        s.dynamodb_table = Some("acme-tfstate-lock".into());
        s.use_lockfile = true;
        s.assume_role_arn = Some("arn:aws:iam::123456789012:role/runner".into());
        s.workspace_key_prefix = Some("env:".into());
        s.endpoints = Some(Endpoints::all("https://127.0.0.1:4566"));
        s
    }

    fn replica() -> ReplicaSettings {
        ReplicaSettings {
            bucket: "acme-tfstate-replica".into(),
            region: "eu-central-1".into(),
            kms_key_id: "arn:aws:kms:eu-central-1:123456789012:key/2222".into(),
        }
    }

    /// The DR file points at the replica, keeps the state path, and takes no lock.
    #[test]
    fn dr_file_points_at_the_replica_without_locks() {
        let data = render_replica(&primary(), &replica()).expect("renders");
        let file = &data[BACKEND_DR_TFBACKEND_KEY];
        let parsed: hcl::Body = hcl::from_str(file).expect("valid HCL");
        let attr = |name: &str| parsed.attributes().find(|a| a.key() == name).map(|a| a.expr().clone());
        assert_eq!(attr("bucket"), Some("acme-tfstate-replica".into()));
        assert_eq!(attr("region"), Some("eu-central-1".into()));
        assert_eq!(attr("key"), Some("team-a/app/terraform.tfstate".into()));
        assert_eq!(attr("kms_key_id"), Some("arn:aws:kms:eu-central-1:123456789012:key/2222".into()));
        assert_eq!(attr("encrypt"), Some(true.into()));
        assert_eq!(attr("workspace_key_prefix"), Some("env:".into()));
        assert_eq!(attr("use_path_style"), Some(true.into()));
        for absent in ["dynamodb_table", "use_lockfile", "assume_role"] {
            assert_eq!(attr(absent), None, "{absent} in {file}");
        }
        assert_eq!(data[REPLICA_BUCKET_KEY], "acme-tfstate-replica");
        assert_eq!(data[REPLICA_REGION_KEY], "eu-central-1");
        assert_eq!(data[REPLICA_KMS_KEY_ID_KEY], "arn:aws:kms:eu-central-1:123456789012:key/2222");
    }

    /// None of the replica's keys collides with the primary's outputs.
    #[test]
    fn replica_keys_do_not_collide() {
        let primary_keys = render(&primary()).expect("renders").into_configmap_data();
        for key in render_replica(&primary(), &replica()).expect("renders").keys() {
            assert!(!primary_keys.contains_key(key), "{key}");
        }
    }
}
