//! What each backend's status records as its own, kept from the backend watch: its state
//! bucket ([`own_bucket`]), its replica bucket (`status.replicaBucketArn`) and its lock
//! table (`status.lockTableArn`). Adoption asks it: a bucket or table whose ownership tags
//! were removed (an outside tool replacing the tag set) is still another backend's, and an
//! object allowed to adopt must not take it, and with it that backend's state, the copies of
//! it, or its runners' locks. It only ever refuses.
//!
//! It is complete before the first pass: the watch hands it each event before the
//! controller's store (`inspect` before `reflect`), and kube-runtime holds every reconcile
//! until that store has its first full list.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;
use kube::runtime::watcher::Event;

use crate::api::TerraformStateBackend;
use crate::reconcile::validate::own_bucket;

/// What one backend records as its own.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recorded {
    /// Its state bucket's name, once a pass listed the state in it.
    bucket: Option<String>,
    /// Its replica bucket's name (`status.replicaBucketArn`). Status names the spec's replica
    /// from the first pass, before it is verified ours: it only ever keeps others from
    /// adopting that bucket, which is the safe side.
    replica_bucket: Option<String>,
    /// Its lock table's ARN.
    table_arn: Option<String>,
}

/// The buckets and lock tables recorded, per backend UID.
#[derive(Debug, Default)]
pub struct RecordedClaims {
    by_uid: BTreeMap<String, Recorded>,
    /// During a re-list: the UIDs listed so far (the others are gone when it ends).
    relisted: Option<BTreeSet<String>>,
}

impl RecordedClaims {
    /// Follows one event of the backend watch.
    pub fn observe(&mut self, event: &Event<TerraformStateBackend>) {
        match event {
            Event::Init => self.relisted = Some(BTreeSet::new()),
            Event::InitApply(obj) => {
                if let (Some(listed), Some(uid)) = (self.relisted.as_mut(), obj.uid()) {
                    listed.insert(uid);
                }
                self.record(obj);
            }
            Event::InitDone => {
                if let Some(listed) = self.relisted.take() {
                    self.by_uid.retain(|uid, _| listed.contains(uid));
                }
            }
            Event::Apply(obj) => self.record(obj),
            Event::Delete(obj) => {
                if let Some(uid) = obj.uid() {
                    self.by_uid.remove(&uid);
                }
            }
        }
    }

    fn record(&mut self, obj: &TerraformStateBackend) {
        let Some(uid) = obj.uid() else { return };
        let status = obj.status.as_ref();
        let replica = status.and_then(|s| s.replica_bucket_arn.as_deref()).and_then(|a| a.rsplit_once(":::"));
        let recorded = Recorded {
            bucket: status.and_then(own_bucket).map(str::to_string),
            replica_bucket: replica.map(|(_, name)| name.to_string()),
            table_arn: status.and_then(|s| s.lock_table_arn.clone()),
        };
        if recorded.bucket.is_none() && recorded.replica_bucket.is_none() && recorded.table_arn.is_none() {
            self.by_uid.remove(&uid);
        } else {
            self.by_uid.insert(uid, recorded);
        }
    }

    /// Whether a backend other than `uid` records `bucket` as its state or replica bucket.
    pub fn bucket_recorded_by_another(&self, bucket: &str, uid: &str) -> bool {
        let names = |r: &Recorded| r.bucket.as_deref() == Some(bucket) || r.replica_bucket.as_deref() == Some(bucket);
        self.by_uid.iter().any(|(u, r)| u != uid && names(r))
    }

    /// Whether a backend other than `uid` records the table of `arn` as its lock table.
    pub fn table_recorded_by_another(&self, arn: &str, uid: &str) -> bool {
        self.by_uid.iter().any(|(u, r)| r.table_arn.as_deref() == Some(arn) && u != uid)
    }

    /// How many backends record a bucket or a table (for tests).
    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    /// Whether no backend records anything.
    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{StateObjectStatus, TerraformStateBackendStatus};

    const TABLE: &str = "arn:aws:dynamodb:eu-west-1:123456789012:table/acme-locks";

    fn backend(uid: &str, bucket: &str, listed: bool) -> TerraformStateBackend {
        let yaml = format!(
            "apiVersion: tfstate.dev/v1alpha1\nkind: TerraformStateBackend\nmetadata: {{name: b, namespace: n, uid: {uid}}}\nspec:\n  bucket: {{name: {bucket}}}\n  access: {{trust: {{awsPrincipals: ['arn:aws:iam::123456789012:root']}}}}\n"
        );
        let mut obj: TerraformStateBackend = serde_yaml_ng::from_str(&yaml).expect("test object");
        obj.status = Some(TerraformStateBackendStatus {
            bucket_arn: Some(format!("arn:aws:s3:::{bucket}")),
            state: listed.then(StateObjectStatus::default),
            ..Default::default()
        });
        obj
    }

    #[test]
    fn a_bucket_listed_by_one_backend_is_refused_to_the_others() {
        let mut r = RecordedClaims::default();
        r.observe(&Event::Apply(backend("u1", "acme", true)));
        assert!(r.bucket_recorded_by_another("acme", "u2"));
        assert!(!r.bucket_recorded_by_another("acme", "u1"), "its own bucket");
        assert!(!r.bucket_recorded_by_another("other", "u2"));
    }

    /// A bucket named but never the backend's (a Conflict: no `status.state`) records
    /// nothing, so it does not keep others from a bucket it never had.
    #[test]
    fn a_bucket_only_named_records_nothing() {
        let mut r = RecordedClaims::default();
        r.observe(&Event::Apply(backend("u1", "acme", false)));
        assert!(!r.bucket_recorded_by_another("acme", "u2"));
        assert!(r.is_empty());
    }

    #[test]
    fn deletions_and_relists_forget() {
        let mut r = RecordedClaims::default();
        r.observe(&Event::Apply(backend("u1", "acme", true)));
        r.observe(&Event::Apply(backend("u2", "beta", true)));
        r.observe(&Event::Delete(backend("u1", "acme", true)));
        assert!(!r.bucket_recorded_by_another("acme", "u3"));
        // A re-list that no longer lists u2 (deleted while the watch was down).
        r.observe(&Event::Init);
        r.observe(&Event::InitApply(backend("u4", "gamma", true)));
        r.observe(&Event::InitDone);
        assert!(!r.bucket_recorded_by_another("beta", "u3"));
        assert!(r.bucket_recorded_by_another("gamma", "u3"));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn a_lock_table_recorded_by_one_backend_is_refused_to_the_others() {
        let mut r = RecordedClaims::default();
        let mut obj = backend("u1", "acme", false);
        obj.status.as_mut().unwrap().lock_table_arn = Some(TABLE.to_string());
        r.observe(&Event::Apply(obj.clone()));
        assert!(r.table_recorded_by_another(TABLE, "u2"));
        assert!(!r.table_recorded_by_another(TABLE, "u1"), "its own table");
        assert!(!r.table_recorded_by_another(&TABLE.replace("eu-west-1", "us-east-1"), "u2"), "another region's");
        assert!(!r.bucket_recorded_by_another("acme", "u2"), "the bucket was never listed");
        // A status that no longer records the table forgets it.
        obj.status.as_mut().unwrap().lock_table_arn = None;
        r.observe(&Event::Apply(obj));
        assert!(!r.table_recorded_by_another(TABLE, "u2"));
        assert!(r.is_empty());
    }

    #[test]
    fn a_replica_bucket_recorded_by_one_backend_is_refused_to_the_others() {
        let mut r = RecordedClaims::default();
        let mut obj = backend("u1", "acme", false);
        obj.status.as_mut().unwrap().replica_bucket_arn = Some("arn:aws:s3:::acme-replica".into());
        r.observe(&Event::Apply(obj));
        assert!(r.bucket_recorded_by_another("acme-replica", "u2"));
        assert!(!r.bucket_recorded_by_another("acme-replica", "u1"), "its own replica");
        assert!(!r.bucket_recorded_by_another("acme", "u2"), "the state bucket was never listed");
    }
}
