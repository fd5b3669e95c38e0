//! Which backends exist, ranked by UID: each one's slot in the resync interval.
//!
//! A backend's resync slot is its rank among all backends divided by their number
//! ([`resync_slot`]). The set is fed by the backends' watch, not by the reconciles:
//! after a restart the watch lists every backend before the first pass finishes, so the
//! first round of slots is already even. Ranked from the reconciles instead, the first
//! backends to finish were ranked among a handful and crowded the start of the interval.
//!
//! The set holds exactly the backends that exist: a Delete event removes one, and a
//! relist (the watch restarted after an outage, when Deletes may have been missed) keeps
//! only what it listed. So it never grows past the number of backends.

use std::collections::BTreeSet;
use std::ops::Bound;

use kube::ResourceExt;
use kube::runtime::watcher::Event;

use crate::api::TerraformStateBackend;
use crate::reconcile::outcome::resync_slot;

/// The UIDs of the existing backends, ranked.
#[derive(Debug, Default)]
pub struct ResyncSlots {
    known: BTreeSet<String>,
    /// The UIDs listed so far by a relist in progress.
    relisted: Option<BTreeSet<String>>,
}

impl ResyncSlots {
    /// Takes in one event of the backends' watch.
    pub fn observe(&mut self, event: &Event<TerraformStateBackend>) {
        match event {
            Event::Init => self.relisted = Some(BTreeSet::new()),
            Event::InitApply(obj) => {
                if let Some(uid) = obj.uid() {
                    if let Some(listed) = self.relisted.as_mut() {
                        listed.insert(uid.clone());
                    }
                    self.known.insert(uid);
                }
            }
            Event::InitDone => {
                if let Some(listed) = self.relisted.take() {
                    self.known = listed;
                }
            }
            Event::Apply(obj) => {
                if let Some(uid) = obj.uid() {
                    self.known.insert(uid);
                }
            }
            Event::Delete(obj) => {
                if let Some(uid) = obj.uid() {
                    self.forget(&uid);
                }
            }
        }
    }

    /// The slot of backend `uid` in the interval, in `[0, 1)`. A backend the watch has not
    /// shown yet (its pass ran first) joins the ranking here.
    pub fn slot(&mut self, uid: &str) -> f64 {
        self.known.insert(uid.to_string());
        let rank = self.known.range::<str, _>((Bound::Unbounded, Bound::Excluded(uid))).count();
        resync_slot(rank, self.known.len())
    }

    /// Forgets a deleted backend (the others close ranks).
    pub fn forget(&mut self, uid: &str) {
        self.known.remove(uid);
        if let Some(listed) = self.relisted.as_mut() {
            listed.remove(uid);
        }
    }

    /// How many backends are ranked.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether no backend is ranked.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(uid: &str) -> TerraformStateBackend {
        let mut obj: TerraformStateBackend = serde_json::from_value(serde_json::json!({
            "apiVersion": "tfstate.dev/v1alpha1",
            "kind": "TerraformStateBackend",
            "metadata": {"name": uid, "namespace": "team"},
            "spec": {"bucket": {"name": "state-bucket"}, "access": {"trust": {"awsPrincipals": []}}}
        }))
        .unwrap();
        obj.metadata.uid = Some(uid.to_string());
        obj
    }

    #[test]
    fn the_listed_backends_rank_the_first_pass_evenly() {
        let mut slots = ResyncSlots::default();
        slots.observe(&Event::Init);
        for uid in ["a", "b", "c", "d"] {
            slots.observe(&Event::InitApply(backend(uid)));
        }
        slots.observe(&Event::InitDone);
        // Whatever order the passes finish in, each lands at its quarter.
        assert_eq!(slots.slot("d"), 0.75);
        assert_eq!(slots.slot("a"), 0.0);
        assert_eq!(slots.slot("c"), 0.5);
        assert_eq!(slots.slot("b"), 0.25);
        assert_eq!(slots.len(), 4);
    }

    #[test]
    fn a_deleted_backend_leaves_the_ranking() {
        let mut slots = ResyncSlots::default();
        for uid in ["a", "b", "c"] {
            slots.observe(&Event::Apply(backend(uid)));
        }
        slots.observe(&Event::Delete(backend("b")));
        assert_eq!(slots.slot("c"), 0.5);
        assert_eq!(slots.len(), 2);
    }

    #[test]
    fn a_relist_drops_backends_whose_delete_was_missed() {
        let mut slots = ResyncSlots::default();
        for uid in ["a", "b", "c"] {
            slots.observe(&Event::Apply(backend(uid)));
        }
        // The watch broke; "b" was deleted meanwhile; the relist shows only "a" and "c".
        slots.observe(&Event::Init);
        slots.observe(&Event::InitApply(backend("a")));
        slots.observe(&Event::InitApply(backend("c")));
        assert_eq!(slots.len(), 3, "nothing is dropped before the relist is complete");
        slots.observe(&Event::InitDone);
        assert_eq!(slots.len(), 2);
        assert_eq!(slots.slot("c"), 0.5);
    }

    #[test]
    fn a_pass_before_its_watch_event_still_gets_a_slot() {
        let mut slots = ResyncSlots::default();
        assert!(slots.is_empty());
        assert_eq!(slots.slot("x"), 0.0);
        slots.observe(&Event::Apply(backend("x")));
        assert_eq!(slots.len(), 1, "counted once");
    }
}
