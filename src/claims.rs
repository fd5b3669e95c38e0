//! Which state bucket each backend's status records as its own ([`own_bucket`]), kept
//! from the backend watch. Adoption asks it: a bucket whose ownership tags were removed (an
//! outside tool replacing the tag set) is still another backend's, and an object allowed to
//! adopt must not take it, and with it that backend's state. It only ever refuses.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;
use kube::runtime::watcher::Event;

use crate::api::TerraformStateBackend;
use crate::reconcile::validate::own_bucket;

/// Bucket recorded per backend UID.
#[derive(Debug, Default)]
pub struct RecordedBuckets {
    by_uid: BTreeMap<String, String>,
    /// During a re-list: the UIDs listed so far (the others are gone when it ends).
    relisted: Option<BTreeSet<String>>,
}

impl RecordedBuckets {
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
        match obj.status.as_ref().and_then(own_bucket) {
            Some(bucket) => {
                self.by_uid.insert(uid, bucket.to_string());
            }
            None => {
                self.by_uid.remove(&uid);
            }
        }
    }

    /// Whether a backend other than `uid` records `bucket` as its own.
    pub fn recorded_by_another(&self, bucket: &str, uid: &str) -> bool {
        self.by_uid.iter().any(|(u, b)| b == bucket && u != uid)
    }

    /// How many backends record a bucket (for tests).
    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    /// Whether no backend records a bucket.
    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{StateObjectStatus, TerraformStateBackendStatus};

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
        let mut r = RecordedBuckets::default();
        r.observe(&Event::Apply(backend("u1", "acme", true)));
        assert!(r.recorded_by_another("acme", "u2"));
        assert!(!r.recorded_by_another("acme", "u1"), "its own bucket");
        assert!(!r.recorded_by_another("other", "u2"));
    }

    /// A bucket named but never the backend's (a Conflict: no `status.state`) records
    /// nothing, so it does not keep others from a bucket it never had.
    #[test]
    fn a_bucket_only_named_records_nothing() {
        let mut r = RecordedBuckets::default();
        r.observe(&Event::Apply(backend("u1", "acme", false)));
        assert!(!r.recorded_by_another("acme", "u2"));
        assert!(r.is_empty());
    }

    #[test]
    fn deletions_and_relists_forget() {
        let mut r = RecordedBuckets::default();
        r.observe(&Event::Apply(backend("u1", "acme", true)));
        r.observe(&Event::Apply(backend("u2", "beta", true)));
        r.observe(&Event::Delete(backend("u1", "acme", true)));
        assert!(!r.recorded_by_another("acme", "u3"));
        // A re-list that no longer lists u2 (deleted while the watch was down).
        r.observe(&Event::Init);
        r.observe(&Event::InitApply(backend("u4", "gamma", true)));
        r.observe(&Event::InitDone);
        assert!(!r.recorded_by_another("beta", "u3"));
        assert!(r.recorded_by_another("gamma", "u3"));
        assert_eq!(r.len(), 1);
    }
}
