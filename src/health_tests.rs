use super::*;

fn t0() -> Instant {
    Instant::now()
}

fn sync_all(s: &mut State, now: Instant) {
    for w in Watch::ALL {
        s.record(w, Seen::Restart, now);
        s.record(w, Seen::Object, now);
        s.record(w, Seen::Synced, now);
    }
}

fn line(r: &Readiness, w: Watch) -> &str {
    r.report.lines().find_map(|l| l.strip_prefix(&format!("{}: ", w.label()))).unwrap_or_default()
}

#[test]
fn not_ready_until_every_watch_has_synced() {
    let now = t0();
    let mut s = State::new(Role::Single);
    assert!(!s.judge(now).ready);
    for w in [Watch::Backends, Watch::ConfigMaps, Watch::Policies] {
        s.record(w, Seen::Restart, now);
        s.record(w, Seen::Synced, now);
    }
    let r = s.judge(now);
    assert!(!r.ready, "{}", r.report);
    assert_eq!(line(&r, Watch::Namespaces), "waiting for the initial list");
    assert_eq!(line(&r, Watch::Backends), "synced");
    s.record(Watch::Namespaces, Seen::Synced, now);
    let r = s.judge(now);
    assert!(r.ready, "{}", r.report);
    assert!(r.report.starts_with("ready\n"));
}

#[test]
fn a_watch_that_cannot_list_reports_its_cause_until_a_list_succeeds() {
    let now = t0();
    // A fresh replica whose backend list is refused (RBAC): unready with the cause.
    let mut s2 = State::new(Role::Single);
    for w in [Watch::ConfigMaps, Watch::Policies, Watch::Namespaces] {
        s2.record(w, Seen::Synced, now);
    }
    s2.record(Watch::Backends, Seen::Restart, now);
    s2.record(Watch::Backends, Seen::Error("forbidden: cannot list terraformstatebackends".into()), now);
    let r = s2.judge(now);
    assert!(!r.ready);
    assert_eq!(line(&r, Watch::Backends), "failing (not synced): forbidden: cannot list terraformstatebackends");
    // Long after, with the retries still failing: still unready, still the cause.
    let later = now + Duration::from_secs(600);
    s2.record(Watch::Backends, Seen::Restart, later);
    s2.record(Watch::Backends, Seen::Error("forbidden again".into()), later);
    assert_eq!(line(&s2.judge(later), Watch::Backends), "failing (not synced): forbidden again");
    // Granted: the relist ends in InitDone.
    s2.record(Watch::Backends, Seen::Restart, later);
    s2.record(Watch::Backends, Seen::Synced, later);
    assert!(s2.judge(later).ready);
    // Never synced and no error for a long time: still not ready (no list has completed).
    let mut s3 = State::new(Role::Single);
    s3.record(Watch::Backends, Seen::Error("refused".into()), now);
    assert_eq!(line(&s3.judge(now + FAILING_FOR * 2), Watch::Backends), "waiting for the initial list");
    assert!(!s3.judge(now + FAILING_FOR * 2).ready);
}

#[test]
fn a_synced_watch_that_keeps_failing_is_unready_until_it_recovers() {
    let now = t0();
    let mut s = State::new(Role::Single);
    sync_all(&mut s, now);
    // One error (a dropped connection) does not make the replica unready.
    s.record(Watch::Policies, Seen::Error("connection reset".into()), now);
    assert!(s.judge(now).ready);
    // A second in a row does.
    let t1 = now + Duration::from_secs(1);
    s.record(Watch::Policies, Seen::Error("the server could not find the requested resource".into()), t1);
    let r = s.judge(t1);
    assert!(!r.ready);
    assert_eq!(
        line(&r, Watch::Policies),
        "failing (2 errors in a row): the server could not find the requested resource"
    );
    // A relist that completes, or any object, ends it at once.
    let mut relisted = s.clone();
    relisted.record(Watch::Policies, Seen::Restart, t1);
    assert!(!relisted.judge(t1).ready, "a restart alone proves nothing");
    relisted.record(Watch::Policies, Seen::Synced, t1);
    assert!(relisted.judge(t1).ready);
    let mut event = s.clone();
    event.record(Watch::Policies, Seen::Object, t1);
    assert!(event.judge(t1).ready);
    // A resumed watch on a quiet cluster delivers nothing: recovered once no error came
    // for FAILING_FOR.
    assert!(!s.judge(t1 + FAILING_FOR - Duration::from_secs(1)).ready);
    assert!(s.judge(t1 + FAILING_FOR).ready);
}

#[test]
fn a_standby_is_ready_and_a_new_leader_waits_for_its_watches() {
    let now = t0();
    let mut s = State::new(Role::Standby);
    let r = s.judge(now);
    assert!(r.ready);
    assert!(r.report.contains("standby"), "{}", r.report);
    s.set_role(Role::Leader);
    assert!(!s.judge(now).ready, "leading, with no watch synced yet");
    sync_all(&mut s, now);
    let r = s.judge(now);
    assert!(r.ready);
    assert!(r.report.contains("leader: yes"), "{}", r.report);
}

#[test]
fn watch_items_are_classified() {
    let item: Result<watcher::Event<()>, watcher::Error> = Ok(watcher::Event::InitDone);
    assert_eq!(Seen::of(&item), Seen::Synced);
    let item: Result<watcher::Event<()>, watcher::Error> = Ok(watcher::Event::Init);
    assert_eq!(Seen::of(&item), Seen::Restart);
    let item: Result<watcher::Event<()>, watcher::Error> = Ok(watcher::Event::Delete(()));
    assert_eq!(Seen::of(&item), Seen::Object);
    let item: Result<watcher::Event<()>, watcher::Error> = Err(watcher::Error::NoResourceVersion);
    assert!(matches!(Seen::of(&item), Seen::Error(c) if c.contains("resourceVersion")));
}

#[test]
fn health_counts_errors_and_sets_the_leader_gauge() {
    let metrics = Arc::new(Metrics::new(Default::default()));
    let health = Health::new(metrics.clone());
    assert_eq!(metrics.leader.get(), 1);
    health.set_role(Role::Standby);
    assert_eq!(metrics.leader.get(), 0);
    assert!(health.readiness().ready);
    health.set_role(Role::Leader);
    assert_eq!(metrics.leader.get(), 1);
    let err: Result<watcher::Event<()>, watcher::Error> = Err(watcher::Error::NoResourceVersion);
    health.observe(Watch::Backends, &err);
    health.observe(Watch::Backends, &err);
    let text = metrics.encode();
    assert!(text.contains("tfstate_watch_errors_total{watch=\"backends\"} 2"), "{text}");
    assert!(text.contains("tfstate_leader 1"), "{text}");
    assert!(!health.readiness().ready);
}

#[test]
fn the_cause_is_the_api_servers_message_in_one_line() {
    let status = kube::core::Status::failure(
        "terraformstatebackends.tfstate.dev is forbidden: User \"op\" cannot list",
        "Forbidden",
    )
    .with_code(403);
    let item: Result<watcher::Event<()>, watcher::Error> =
        Err(watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status))));
    assert_eq!(
        Seen::of(&item),
        Seen::Error(
            "list failed: terraformstatebackends.tfstate.dev is forbidden: User \"op\" cannot list (403 Forbidden)"
                .into()
        )
    );
}
