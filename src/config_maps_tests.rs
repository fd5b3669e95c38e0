use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::*;

fn data(backend: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("backend.hcl".to_string(), format!("bucket = \"{backend}\"\n"))])
}

fn config_map(name: &str, owner: &str, data: BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("team".into()),
            owner_references: Some(vec![OwnerReference { uid: owner.into(), ..Default::default() }]),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    }
}

/// A watch that has listed `cms`.
fn listed(cms: Vec<ConfigMap>) -> WatchedConfigMaps {
    let mut w = WatchedConfigMaps::default();
    w.observe(&Ok(Event::Init));
    for cm in cms {
        w.observe(&Ok(Event::InitApply(cm)));
    }
    w.observe(&Ok(Event::InitDone));
    w
}

#[test]
fn holds_exactly_what_was_listed_for_its_owner() {
    let w = listed(vec![config_map("tf-backend", "u1", data("acme"))]);
    assert!(w.holds("team", "tf-backend", &data("acme"), "u1"));
    assert!(!w.holds("team", "tf-backend", &data("other"), "u1"), "other data");
    assert!(!w.holds("team", "tf-backend", &data("acme"), "u2"), "another owner");
    assert!(!w.holds("other", "tf-backend", &data("acme"), "u1"), "another namespace");
    assert!(!w.holds("team", "unseen", &data("acme"), "u1"), "never seen: only the API server knows");
}

/// A second owner reference (a tenant adding one) is not what publishing writes.
#[test]
fn a_config_map_with_another_owner_too_is_not_held() {
    let mut cm = config_map("tf-backend", "u1", data("acme"));
    cm.metadata.owner_references.as_mut().unwrap().push(OwnerReference { uid: "u9".into(), ..Default::default() });
    let w = listed(vec![cm]);
    assert!(!w.holds("team", "tf-backend", &data("acme"), "u1"));
}

#[test]
fn follows_edits_and_deletions() {
    let mut w = listed(vec![config_map("tf-backend", "u1", data("acme"))]);
    w.observe(&Ok(Event::Apply(config_map("tf-backend", "u1", data("edited")))));
    assert!(!w.holds("team", "tf-backend", &data("acme"), "u1"), "an edit the pass must undo");
    w.observe(&Ok(Event::Apply(config_map("tf-backend", "u1", data("acme")))));
    assert!(w.holds("team", "tf-backend", &data("acme"), "u1"));
    w.observe(&Ok(Event::Delete(config_map("tf-backend", "u1", data("acme")))));
    assert!(!w.holds("team", "tf-backend", &data("acme"), "u1"));
    assert!(w.is_empty());
}

/// Before its first full list, after an error and during a re-list the watch may have
/// missed an edit: it answers nothing until a list completes.
#[test]
fn unsure_until_listed_after_an_error_and_while_relisting() {
    let mut w = WatchedConfigMaps::default();
    w.observe(&Ok(Event::Apply(config_map("tf-backend", "u1", data("acme")))));
    assert!(!w.holds("team", "tf-backend", &data("acme"), "u1"), "not listed yet");
    w.observe(&Err(watcher::Error::NoResourceVersion));
    w.observe(&Ok(Event::Apply(config_map("tf-backend", "u1", data("acme")))));
    assert!(!w.holds("team", "tf-backend", &data("acme"), "u1"), "an event before any full list proves nothing");

    let mut w = listed(vec![config_map("tf-backend", "u1", data("acme"))]);
    w.observe(&Err(watcher::Error::NoResourceVersion));
    assert!(!w.holds("team", "tf-backend", &data("acme"), "u1"), "after a watch error");
    // The watch resumes from its resource version: its next event is in order, so what it
    // shows is current again.
    w.observe(&Ok(Event::Apply(config_map("other", "u2", data("beta")))));
    assert!(w.holds("team", "tf-backend", &data("acme"), "u1"), "once the watch delivers again");
    w.observe(&Err(watcher::Error::NoResourceVersion));

    w.observe(&Ok(Event::Init));
    assert!(!w.holds("team", "tf-backend", &data("acme"), "u1"), "while re-listing");
    w.observe(&Ok(Event::InitApply(config_map("tf-backend", "u1", data("acme")))));
    w.observe(&Ok(Event::InitDone));
    assert!(w.holds("team", "tf-backend", &data("acme"), "u1"));
}

/// What a re-list no longer lists (deleted while the watch was down) is forgotten.
#[test]
fn a_relist_forgets_what_it_no_longer_lists() {
    let mut w = listed(vec![config_map("a", "u1", data("acme")), config_map("b", "u2", data("beta"))]);
    assert_eq!(w.len(), 2);
    w.observe(&Ok(Event::Init));
    w.observe(&Ok(Event::InitApply(config_map("a", "u1", data("acme")))));
    w.observe(&Ok(Event::InitDone));
    assert_eq!(w.len(), 1);
    assert!(!w.holds("team", "b", &data("beta"), "u2"));
    assert!(w.holds("team", "a", &data("acme"), "u1"));
}
