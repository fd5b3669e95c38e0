//! Building status: Ready from the five parts, kstatus Reconciling and Stalled, timestamps
//! that only move on a flip, and the comparison that skips writes when nothing but time changed.

use k8s_openapi::jiff::Timestamp;

use super::*;

const GEN: i64 = 3;

fn at(seconds: i64) -> Time {
    Time(Timestamp::from_second(seconds).expect("a valid timestamp"))
}

/// A report with every part ready, and the ARNs.
fn converged() -> StatusReport {
    let mut report = StatusReport {
        bucket_arn: Some("arn:aws:s3:::acme-tfstate".into()),
        kms_key_arn: Some("arn:aws:kms:eu-west-1:123456789012:key/k".into()),
        lock_table_arn: Some("arn:aws:dynamodb:eu-west-1:123456789012:table/acme-tfstate-lock".into()),
        role_arn: Some("arn:aws:iam::123456789012:role/r".into()),
        account_id: Some("123456789012".into()),
        config_map_name: Some("payments-prod-backend".into()),
        ..StatusReport::default()
    };
    for t in PARTS {
        report.parts.insert(t, PartState::ready(Reason::Converged, format!("{t} is converged")));
    }
    report
}

/// `converged()` with `part` not ready for `reason`.
fn failing(part: ConditionType, reason: Reason, message: &str) -> StatusReport {
    let mut report = converged();
    report.parts.insert(part, PartState::not_ready(reason, message));
    report
}

#[track_caller]
fn condition(status: &TerraformStateBackendStatus, t: ConditionType) -> &Condition {
    find(status, t).unwrap_or_else(|| panic!("no {t} condition in {:#?}", status.conditions))
}

fn find(status: &TerraformStateBackendStatus, t: ConditionType) -> Option<&Condition> {
    status.conditions.iter().find(|c| c.type_ == t.as_str())
}

fn types(status: &TerraformStateBackendStatus) -> Vec<&str> {
    status.conditions.iter().map(|c| c.type_.as_str()).collect()
}

/// With all five parts ready, Ready is True (Converged), every part follows it in order, no
/// Reconciling or Stalled is present, and the ARNs are carried over.
#[test]
fn all_parts_ready_is_ready() {
    let s = next_status(None, GEN, converged(), &at(100));
    assert_eq!(
        types(&s),
        ["Ready", "BucketReady", "EncryptionKeyReady", "LockTableReady", "RoleReady", "BackendConfigPublished"]
    );
    let ready = condition(&s, ConditionType::Ready);
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "Converged"));
    for c in &s.conditions[1..] {
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "Converged"), "{}", c.type_);
        assert_eq!(c.message, format!("{} is converged", c.type_));
    }
    assert_eq!(s.bucket_arn.as_deref(), Some("arn:aws:s3:::acme-tfstate"));
    assert_eq!(s.role_arn.as_deref(), Some("arn:aws:iam::123456789012:role/r"));
    assert_eq!(s.account_id.as_deref(), Some("123456789012"));
    assert_eq!(s.config_map_name.as_deref(), Some("payments-prod-backend"));
    assert!(s.lock_table_arn.is_some() && s.kms_key_arn.is_some());
}

/// observedGeneration is on the status and on every condition, including Stalled and
/// Reconciling, and moves to the new generation even where the condition is unchanged.
#[test]
fn observed_generation_everywhere() {
    let mut report = failing(ConditionType::RoleReady, Reason::Conflict, "taken");
    let previous = next_status(None, 2, report.clone(), &at(100));
    report.reconciling = Some("working".into());
    for s in [previous.clone(), next_status(Some(&previous), GEN, report, &at(200))] {
        let generation = s.observed_generation.expect("observedGeneration is set");
        assert!(s.conditions.iter().all(|c| c.observed_generation == Some(generation)), "{:#?}", s.conditions);
    }
    assert_eq!(next_status(Some(&previous), GEN, converged(), &at(200)).observed_generation, Some(GEN));
}

/// A pass that failed on the way keeps observedGeneration where it was (the spec change is
/// not done yet) and never drops what is known; one that converges or reports settles it.
#[test]
fn a_failed_pass_does_not_settle_the_generation() {
    let previous = next_status(None, 2, converged(), &at(100));
    let mut failed = status_memory_only(failing(ConditionType::BucketReady, Reason::AwsError, "throttled"));
    failed.keeps_observed_generation = true;
    let s = next_status(Some(&previous), GEN, remember(failed, Some(&previous)), &at(200));
    assert_eq!(s.observed_generation, Some(2));
    assert_eq!(s.kms_key_arn, previous.kms_key_arn);
    assert_eq!(s.role_arn, previous.role_arn);
    assert_eq!(s.lock_table_arn, previous.lock_table_arn);
    // Conditions describe the state seen now, for the current generation.
    assert!(s.conditions.iter().all(|c| c.observed_generation == Some(GEN)));
    // A first pass that fails leaves it unset: nothing was ever settled.
    let mut first = failing(ConditionType::BucketReady, Reason::AwsError, "throttled");
    first.keeps_observed_generation = true;
    assert_eq!(next_status(None, GEN, first, &at(100)).observed_generation, None);
    let reported = failing(ConditionType::BucketReady, Reason::Conflict, "taken");
    assert_eq!(next_status(Some(&previous), GEN, reported, &at(200)).observed_generation, Some(GEN));
}

/// `report` without the ARNs, as a pass that failed before learning them builds it.
fn status_memory_only(mut report: StatusReport) -> StatusReport {
    report.kms_key_arn = None;
    report.role_arn = None;
    report.lock_table_arn = None;
    report
}

/// Ready is False with the first failing part's reason, its message prefixed with the part.
#[test]
fn ready_false_carries_the_first_failing_part() {
    let mut report = failing(ConditionType::LockTableReady, Reason::AwsError, "DescribeTable throttled");
    report.parts.insert(ConditionType::RoleReady, PartState::not_ready(Reason::Creating, "creating the role"));
    let s = next_status(None, GEN, report, &at(100));
    let ready = condition(&s, ConditionType::Ready);
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "AwsError"));
    assert_eq!(ready.message, "LockTableReady: DescribeTable throttled");
    let table = condition(&s, ConditionType::LockTableReady);
    assert_eq!((table.status.as_str(), table.message.as_str()), ("False", "DescribeTable throttled"));
    assert_eq!(condition(&s, ConditionType::BucketReady).status, "True");
}

/// A part that was not reported leaves Ready False (Creating), never True.
#[test]
fn unreported_part_is_not_ready() {
    let mut report = converged();
    report.parts.remove(&ConditionType::BackendConfigPublished);
    let s = next_status(None, GEN, report, &at(100));
    let ready = condition(&s, ConditionType::Ready);
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "Creating"));
    assert!(find(&s, ConditionType::BackendConfigPublished).is_none());
}

/// lastTransitionTime stays while a condition's status is unchanged (even if its reason and
/// message change) and becomes `now` when it flips.
#[test]
fn transition_time_moves_only_on_a_flip() {
    let first = next_status(None, GEN, converged(), &at(100));
    assert!(first.conditions.iter().all(|c| c.last_transition_time == at(100)));

    let mut report = failing(ConditionType::BucketReady, Reason::AwsError, "throttled");
    report.parts.insert(ConditionType::RoleReady, PartState::ready(Reason::DriftRepaired, "trust put back"));
    let second = next_status(Some(&first), GEN, report, &at(200));
    for (t, expected) in [
        (ConditionType::Ready, 200),
        (ConditionType::BucketReady, 200),
        (ConditionType::RoleReady, 100),
        (ConditionType::EncryptionKeyReady, 100),
    ] {
        assert_eq!(condition(&second, t).last_transition_time, at(expected), "{t}");
    }
    assert_eq!(condition(&second, ConditionType::RoleReady).reason, "DriftRepaired");

    let third =
        next_status(Some(&second), GEN, failing(ConditionType::BucketReady, Reason::AwsError, "again"), &at(300));
    assert_eq!(condition(&third, ConditionType::BucketReady).last_transition_time, at(200));
    let fourth = next_status(Some(&third), GEN, converged(), &at(400));
    assert_eq!(condition(&fourth, ConditionType::Ready).last_transition_time, at(400));
    assert_eq!(condition(&fourth, ConditionType::LockTableReady).last_transition_time, at(100));
}

/// Reconciling is present (True, with the message) exactly while the report says so.
#[test]
fn reconciling_only_while_set() {
    let mut report = failing(ConditionType::EncryptionKeyReady, Reason::Creating, "creating the key");
    report.reconciling = Some("Creating the KMS key".into());
    let s = next_status(None, GEN, report.clone(), &at(100));
    let c = condition(&s, ConditionType::Reconciling);
    assert_eq!((c.status.as_str(), c.message.as_str()), ("True", "Creating the KMS key"));
    report.reconciling = None;
    assert!(find(&next_status(Some(&s), GEN, report, &at(200)), ConditionType::Reconciling).is_none());
    assert!(find(&next_status(None, GEN, converged(), &at(100)), ConditionType::Reconciling).is_none());
}

/// Stalled is present (True, with the part's reason and message) only for reasons retrying
/// cannot fix, and absent for transient ones and when everything is ready.
#[test]
fn stalled_only_for_permanent_reasons() {
    for reason in [Reason::InvalidSpec, Reason::Conflict, Reason::DependencyNotReady, Reason::AccessDenied] {
        let s = next_status(None, GEN, failing(ConditionType::RoleReady, reason, "fix it"), &at(100));
        let c = condition(&s, ConditionType::Stalled);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
            ("True", reason.as_str(), "RoleReady: fix it")
        );
    }
    // A transient failure of one part does not hide another part's stall.
    let mut both = failing(ConditionType::BucketReady, Reason::AwsError, "throttled");
    both.parts.insert(ConditionType::RoleReady, PartState::not_ready(Reason::Conflict, "taken"));
    let s = next_status(None, GEN, both, &at(100));
    let c = condition(&s, ConditionType::Stalled);
    assert_eq!((c.reason.as_str(), c.message.as_str()), ("Conflict", "RoleReady: taken"));
    for reason in
        [Reason::AwsError, Reason::KubernetesError, Reason::Creating, Reason::Updating, Reason::DeletionBlocked]
    {
        let s = next_status(None, GEN, failing(ConditionType::RoleReady, reason, "wait"), &at(100));
        assert!(find(&s, ConditionType::Stalled).is_none(), "{reason}: {:#?}", s.conditions);
    }
    let stalled = next_status(None, GEN, failing(ConditionType::RoleReady, Reason::Conflict, "taken"), &at(100));
    let fixed = next_status(Some(&stalled), GEN, converged(), &at(200));
    assert!(find(&fixed, ConditionType::Stalled).is_none());
}

/// An invalid spec marks every part InvalidSpec with the validation message, and stalls.
#[test]
fn invalid_spec_marks_every_part() {
    let report = invalid_spec_report("invalid spec: spec.bucket.name: too short");
    assert_eq!(report.parts.len(), PARTS.len());
    for t in PARTS {
        assert_eq!(
            report.parts[&t],
            PartState::not_ready(Reason::InvalidSpec, "invalid spec: spec.bucket.name: too short")
        );
    }
    let s = next_status(None, GEN, report, &at(100));
    let ready = condition(&s, ConditionType::Ready);
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "InvalidSpec"));
    assert_eq!(ready.message, "BucketReady: invalid spec: spec.bucket.name: too short");
    assert_eq!(condition(&s, ConditionType::Stalled).reason, "InvalidSpec");
}

/// `differs` ignores timestamps only: a new reason, message, ARN or generation is a write.
#[test]
fn differs_ignores_only_timestamps() {
    let current = next_status(None, GEN, converged(), &at(100));
    assert!(differs(None, &current));
    let mut later = current.clone();
    for c in &mut later.conditions {
        c.last_transition_time = at(999);
    }
    assert!(!differs(Some(&current), &later));
    assert!(!differs(Some(&current), &next_status(Some(&current), GEN, converged(), &at(200))));

    let mut reason = converged();
    reason.parts.insert(ConditionType::RoleReady, PartState::ready(Reason::DriftRepaired, "RoleReady is converged"));
    let mut message = converged();
    message.parts.insert(ConditionType::RoleReady, PartState::ready(Reason::Converged, "another message"));
    let mut arn = converged();
    arn.role_arn = Some("arn:aws:iam::123456789012:role/other".into());
    for (what, report, generation) in
        [("reason", reason, GEN), ("message", message, GEN), ("ARN", arn, GEN), ("generation", converged(), GEN + 1)]
    {
        assert!(differs(Some(&current), &next_status(Some(&current), generation, report, &at(100))), "{what}");
    }
}

/// Status is memory: what a failing or invalid-spec pass did not learn is kept from the
/// previous status, and what it did learn wins.
#[test]
fn remember_keeps_what_was_known() {
    let previous = TerraformStateBackendStatus {
        kms_key_arn: Some("arn:aws:kms:eu-west-1:123456789012:key/old".into()),
        role_arn: Some("arn:aws:iam::123456789012:role/r".into()),
        account_id: Some("123456789012".into()),
        lock_table_arn: Some("arn:aws:dynamodb:eu-west-1:123456789012:table/t".into()),
        lock_mode: Some(crate::api::LockMode::Lockfile),
        lock_mode_change: Some(crate::api::LockModeChange {
            from: crate::api::LockMode::Both,
            at: "2026-12-01T10:00:00Z".into(),
            until: "2026-12-01T12:00:00Z".into(),
        }),
        ..Default::default()
    };
    let report =
        StatusReport { kms_key_arn: Some("arn:aws:kms:eu-west-1:123456789012:key/new".into()), ..Default::default() };
    let got = remember(report.clone(), Some(&previous));
    // A forgotten change would close its roll-out window early: runners would lose grants.
    assert_eq!(
        (got.lock_mode, got.lock_mode_change.as_ref()),
        (previous.lock_mode, previous.lock_mode_change.as_ref())
    );
    let next = next_status(Some(&previous), GEN, report, &at(1));
    assert_eq!(next.lock_mode_change, previous.lock_mode_change, "a pass that did not publish keeps the change");
    assert_eq!(got.kms_key_arn.as_deref(), Some("arn:aws:kms:eu-west-1:123456789012:key/new"));
    assert_eq!(got.role_arn, previous.role_arn);
    assert_eq!(got.account_id, previous.account_id);
    assert_eq!(got.lock_table_arn, previous.lock_table_arn);
    assert_eq!(remember(StatusReport::default(), None), StatusReport::default());
}

/// `AuditReady` counts for `Ready` when it is reported (the spec asks for a trail), and is
/// absent otherwise; a part it waits on does not keep the others from being Ready.
#[test]
fn audit_ready_counts_only_when_asked_for() {
    let mut report = converged();
    report.parts.insert(ConditionType::AuditReady, PartState::ready(Reason::Converged, "trail ok"));
    let s = next_status(None, GEN, report, &at(1));
    assert_eq!(condition(&s, ConditionType::Ready).status, "True");
    assert_eq!(condition(&s, ConditionType::AuditReady).status, "True");

    let mut report = converged();
    report.trail_arn = Some("arn:aws:cloudtrail:eu-west-1:123456789012:trail/t".into());
    report.parts.insert(ConditionType::AuditReady, PartState::not_ready(Reason::DependencyNotReady, "log bucket"));
    let s = next_status(None, GEN, report, &at(1));
    let ready = condition(&s, ConditionType::Ready);
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "DependencyNotReady"));
    assert!(ready.message.starts_with("AuditReady: "), "{}", ready.message);
    assert_eq!(condition(&s, ConditionType::BackendConfigPublished).status, "True");
    assert_eq!(condition(&s, ConditionType::Stalled).reason, "DependencyNotReady");
    assert_eq!(s.trail_arn.as_deref(), Some("arn:aws:cloudtrail:eu-west-1:123456789012:trail/t"));

    let s = next_status(None, GEN, converged(), &at(1));
    assert!(find(&s, ConditionType::AuditReady).is_none());
    assert_eq!(condition(&s, ConditionType::Ready).status, "True");
    // An AuditReady alone is not every part.
    let mut only = StatusReport::default();
    only.parts.insert(ConditionType::AuditReady, PartState::ready(Reason::Converged, "trail ok"));
    assert_eq!(condition(&next_status(None, GEN, only, &at(1)), ConditionType::Ready).status, "False");
}

/// A table this pass created or AWS still creates is `Creating`; one being updated (by
/// another tool, or our own update) is `Updating`; one in a state that does not end by itself
/// is a permanent `DependencyNotReady` (not polled), each named as AWS says.
#[test]
fn a_table_not_yet_active_says_what_aws_is_doing() {
    for (observed, reason, says) in [
        (None, Reason::Creating, "is being created"),
        (Some("CREATING"), Reason::Creating, "is being created"),
        (Some("UPDATING"), Reason::Updating, "is UPDATING: waiting for it to become ACTIVE"),
        (
            Some("INACCESSIBLE_ENCRYPTION_CREDENTIALS"),
            Reason::DependencyNotReady,
            "is INACCESSIBLE_ENCRYPTION_CREDENTIALS",
        ),
        (Some("ARCHIVED"), Reason::DependencyNotReady, "is ARCHIVED: it cannot hold locks"),
    ] {
        let part = table_not_yet_active("locks", observed);
        assert!(!part.ready, "{observed:?}");
        assert_eq!(part.reason, reason, "{observed:?}");
        assert!(part.message.starts_with(&format!("DynamoDB table locks {says}")), "{observed:?}: {}", part.message);
        assert_eq!(part.reason.is_permanent(), reason == Reason::DependencyNotReady, "{observed:?}");
    }
}

fn with_replica(bucket: &str, region: &str) -> TerraformStateBackendStatus {
    TerraformStateBackendStatus {
        replica_bucket_arn: Some(format!("arn:aws:s3:::{bucket}")),
        replica_region: Some(region.into()),
        ..Default::default()
    }
}

/// A replica the spec no longer names (renamed, moved to another region, or replication
/// removed) keeps its region's replica key; the same replica keeps nothing.
#[test]
fn a_former_replica_keeps_its_regions_key() {
    let s = with_replica("old", "eu-central-1");
    assert_eq!(replica_keys_kept(Some(&s), Some(("new", "eu-central-1"))), ["eu-central-1"], "renamed");
    assert_eq!(replica_keys_kept(Some(&s), None), ["eu-central-1"], "replication removed");
    assert!(replica_keys_kept(Some(&s), Some(("old", "eu-central-1"))).is_empty(), "the same replica");
    // Moved away: its key would be found again by its alias if the replica came back.
    assert_eq!(replica_keys_kept(Some(&s), Some(("old", "us-east-1"))), ["eu-central-1"], "moved");
    let back = TerraformStateBackendStatus {
        replica_keys_kept: vec!["eu-central-1".into()],
        ..with_replica("old", "us-east-1")
    };
    assert_eq!(replica_keys_kept(Some(&back), Some(("other", "eu-central-1"))), ["eu-central-1", "us-east-1"], "back");
    assert!(replica_keys_kept(None, Some(("new", "eu-central-1"))).is_empty(), "a new object");
    assert!(replica_keys_kept(Some(&Default::default()), None).is_empty(), "never replicated");
    // What status knew stays, once each, whatever the spec says now.
    let known = TerraformStateBackendStatus { replica_keys_kept: vec!["us-east-1".into()], ..s };
    assert_eq!(replica_keys_kept(Some(&known), Some(("new", "eu-central-1"))), ["eu-central-1", "us-east-1"]);
    assert_eq!(replica_keys_kept(Some(&known), Some(("old", "eu-central-1"))), ["us-east-1"]);
}

/// No pass takes a kept region away: not one that reports none (an invalid spec, a failure).
#[test]
fn kept_replica_keys_are_never_forgotten() {
    let previous = TerraformStateBackendStatus { replica_keys_kept: vec!["eu-central-1".into()], ..Default::default() };
    let s = next_status(Some(&previous), GEN, converged(), &at(100));
    assert_eq!(s.replica_keys_kept, ["eu-central-1"]);
    let report = StatusReport { replica_keys_kept: vec!["ap-south-1".into(), "eu-central-1".into()], ..converged() };
    let s = next_status(Some(&previous), GEN, report, &at(100));
    assert_eq!(s.replica_keys_kept, ["ap-south-1", "eu-central-1"]);
    let s = next_status(Some(&previous), GEN, invalid_spec_report("bad"), &at(100));
    assert_eq!(s.replica_keys_kept, ["eu-central-1"]);
}
