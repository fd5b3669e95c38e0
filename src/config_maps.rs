//! What the ConfigMap watch last showed of each published ConfigMap: the digest of its data
//! and owners ([`config_map_digest`]), per `namespace/name`. Publishing asks it before it
//! reads the ConfigMap from the API server: a ConfigMap the watch shows holding exactly
//! what a pass would publish needs neither a read nor a write. That was one GET per pass:
//! two per create and one per backend per resync, the only Kubernetes request a converged
//! backend still cost.
//!
//! It answers only what it is sure of. Before the watch's first full list, during a re-list,
//! and after a watch error until the watch delivers again, it knows nothing (an edit made
//! meanwhile may not have reached it), and publishing reads the ConfigMap as before. A
//! watch that fails resumes from its last resource version (kube-runtime's watcher), so
//! the first event after the error proves nothing was missed; one that cannot resume (410
//! Gone) re-lists. A ConfigMap it does not show at all (not ours, not labelled, not
//! yet seen) is read too: only the API server can say whether one of that name belongs to
//! someone else. A stale answer can only ever be "unchanged" for an edit the watch has not
//! delivered yet, and that edit's event triggers the owner's pass, which then sees it.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::runtime::watcher::{self, Event};

use crate::context::config_map_digest;

/// The published ConfigMaps as the watch shows them.
#[derive(Debug, Default)]
pub struct WatchedConfigMaps {
    by_key: HashMap<String, u64>,
    /// During a re-list: the keys listed so far (the others are gone when it ends).
    relisted: Option<HashSet<String>>,
    /// Whether the watch has listed everything and delivers: not re-listing, and no error
    /// since its last event.
    complete: bool,
    /// Whether a full list ever completed (a resumed watch proves nothing before that).
    listed: bool,
}

impl WatchedConfigMaps {
    /// Follows one item of the ConfigMap watch (errors included: they make it unsure).
    pub fn observe(&mut self, item: &Result<Event<ConfigMap>, watcher::Error>) {
        let event = match item {
            Ok(event) => event,
            Err(_) => {
                // Edits may be under way that the watch will only deliver once it runs again.
                self.complete = false;
                return;
            }
        };
        // An event of a running watch (not a re-list): it resumed where it left off.
        let resumed = self.listed && self.relisted.is_none();
        match event {
            Event::Init => {
                self.complete = false;
                self.relisted = Some(HashSet::new());
            }
            Event::InitApply(cm) => {
                let key = key_of(cm);
                if let Some(listed) = self.relisted.as_mut() {
                    listed.insert(key.clone());
                }
                self.by_key.insert(key, digest_of(cm));
            }
            Event::InitDone => {
                if let Some(listed) = self.relisted.take() {
                    self.by_key.retain(|key, _| listed.contains(key));
                }
                self.listed = true;
                self.complete = true;
            }
            Event::Apply(cm) => {
                self.by_key.insert(key_of(cm), digest_of(cm));
                self.complete |= resumed;
            }
            Event::Delete(cm) => {
                self.by_key.remove(&key_of(cm));
                self.complete |= resumed;
            }
        }
    }

    /// Whether the watch, complete and unbroken, shows ConfigMap `namespace/name` holding
    /// exactly `data`, owned by `owner_uid` alone.
    pub fn holds(
        &self,
        namespace: &str,
        name: &str,
        data: &std::collections::BTreeMap<String, String>,
        owner_uid: &str,
    ) -> bool {
        self.complete && self.by_key.get(&format!("{namespace}/{name}")) == Some(&config_map_digest(data, [owner_uid]))
    }

    /// How many ConfigMaps it shows (for tests).
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether it shows none.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

fn key_of(cm: &ConfigMap) -> String {
    format!("{}/{}", cm.namespace().unwrap_or_default(), cm.name_any())
}

/// The digest of `cm`'s data and owners' UIDs, as [`config_map_digest`] makes it.
pub fn digest_of(cm: &ConfigMap) -> u64 {
    let empty = std::collections::BTreeMap::new();
    let owners = cm.metadata.owner_references.iter().flatten().map(|r| r.uid.as_str());
    config_map_digest(cm.data.as_ref().unwrap_or(&empty), owners)
}

#[cfg(test)]
#[path = "config_maps_tests.rs"]
mod tests;
