use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::info::{LockInfoError, MAX_SHOWN, parse_lock_info, shown};
use super::*;
use crate::api::{LockMode, LockSource, LockStatus, Reason};

/// What Terraform's S3 backend writes (statemgr.LockInfo, marshalled): `Created` with
/// nanoseconds, `Info` empty unless `-lock-info`... was given.
const TERRAFORM: &str = r#"{"ID":"4d6a1d8e-2f7b-11f0-9c1b-0242ac120002","Operation":"OperationTypeApply","Info":"","Who":"runner@tf-job-7","Version":"1.9.8","Created":"2026-12-01T12:00:00.123456789Z","Path":"acme-tfstate/team/terraform.tfstate"}"#;

fn terraform() -> LockInfo {
    parse_lock_info(TERRAFORM).expect("Terraform's lock info")
}

fn at(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

#[test]
fn parses_terraforms_lock_info() {
    let info = terraform();
    assert_eq!(info.id.as_deref(), Some("4d6a1d8e-2f7b-11f0-9c1b-0242ac120002"));
    assert_eq!(info.operation.as_deref(), Some("OperationTypeApply"));
    assert_eq!(info.who.as_deref(), Some("runner@tf-job-7"));
    assert_eq!(info.version.as_deref(), Some("1.9.8"));
    assert_eq!(info.path.as_deref(), Some("acme-tfstate/team/terraform.tfstate"));
    assert_eq!(info.created.as_deref(), Some("2026-12-01T12:00:00.123456789Z"));
    assert_eq!(info.created_at, Some(at("2026-12-01T12:00:00.123456789Z")));
}

#[test]
fn missing_and_mistyped_fields_are_missing_not_errors() {
    let info = parse_lock_info(r#"{"ID":"x","Created":"yesterday","Who":42}"#).expect("lenient");
    assert_eq!(info.id.as_deref(), Some("x"));
    assert_eq!(info.who, None, "a number is not a holder");
    assert_eq!(info.created.as_deref(), Some("yesterday"));
    assert_eq!(info.created_at, None, "not RFC 3339: age unknown");
    let empty = parse_lock_info("{}").expect("an empty object");
    assert_eq!((empty.id, empty.operation, empty.created_at), (None, None, None));
    // An empty ID counts as none (it could never be matched safely).
    assert_eq!(parse_lock_info(r#"{"ID":""}"#).expect("object").id, None);
}

#[test]
fn garbage_is_an_error() {
    for text in ["", "not json", "[1,2]", "\"ID\"", "{\"ID\":", "null"] {
        assert!(matches!(parse_lock_info(text), Err(LockInfoError::NotAnObject(_))), "{text:?}");
    }
}

#[test]
fn shown_strings_are_clean_and_bounded() {
    assert_eq!(shown("a\nb\u{1b}[31mc"), "a?b?[31mc");
    let long = "x".repeat(10_000);
    let s = shown(&long);
    assert_eq!(s.chars().count(), MAX_SHOWN);
    assert!(s.ends_with("..."));
}

fn held(info: LockInfo) -> ReadLock {
    ReadLock::Held(info)
}

#[test]
fn status_of_one_lock_in_both_sources_is_one_lock() {
    let (d, l) = (held(terraform()), held(terraform()));
    let s = lock_status(&[(LockSource::DynamoDB, &d), (LockSource::Lockfile, &l)], None);
    assert!(s.held);
    assert_eq!(s.source, Some(LockSource::Both));
    assert_eq!(s.id.as_deref(), Some("4d6a1d8e-2f7b-11f0-9c1b-0242ac120002"));
    assert_eq!(s.who.as_deref(), Some("runner@tf-job-7"));
    assert_eq!(s.created.as_deref(), Some("2026-12-01T12:00:00.123456789Z"));
    assert_eq!(s.message, None);

    let only = lock_status(&[(LockSource::DynamoDB, &ReadLock::Free), (LockSource::Lockfile, &l)], None);
    assert_eq!(only.source, Some(LockSource::Lockfile));
    let free = lock_status(&[(LockSource::DynamoDB, &ReadLock::Free)], None);
    assert_eq!(free, LockStatus { held: false, ..Default::default() });
}

#[test]
fn status_says_what_could_not_be_read() {
    let bad = ReadLock::Unreadable("the lock info is not a JSON object (x)".into());
    let s = lock_status(&[(LockSource::DynamoDB, &bad)], None);
    assert!(s.held && s.id.is_none());
    assert!(s.message.as_deref().is_some_and(|m| m.contains("unreadable")), "{s:?}");

    let failed = ReadLock::Failed { error: "s3:GetObject failed: AccessDenied".into(), transient: false };
    let s = lock_status(&[(LockSource::DynamoDB, &ReadLock::Free), (LockSource::Lockfile, &failed)], None);
    assert!(!s.held);
    assert!(s.message.as_deref().is_some_and(|m| m.contains("lock file could not be read")), "{s:?}");

    let mut other = terraform();
    other.id = Some("other".into());
    let (d, l) = (held(terraform()), held(other));
    let s = lock_status(&[(LockSource::DynamoDB, &d), (LockSource::Lockfile, &l)], None);
    assert_eq!(s.source, Some(LockSource::DynamoDB));
    assert!(s.message.as_deref().is_some_and(|m| m.contains("another lock, ID \"other\"")), "{s:?}");
}

#[test]
fn stale_is_judged_against_the_creation_time() {
    let created = Some(at("2026-12-01T12:00:00Z"));
    let two_hours = Duration::from_secs(7200);
    assert!(!is_stale(created, at("2026-12-01T13:59:59Z"), two_hours));
    assert!(is_stale(created, at("2026-12-01T14:00:00Z"), two_hours));
    assert!(!is_stale(None, at("2030-01-01T00:00:00Z"), two_hours), "unknown age is never stale");
    assert!(!is_stale(created, at("2026-12-01T11:00:00Z"), two_hours), "a lock from the future is not stale");
}

#[test]
fn stale_event_once_per_lock_id() {
    let d = held(terraform());
    let first = lock_status(&[(LockSource::DynamoDB, &d)], None);
    assert!(stale_event_due(&first, true));
    assert!(!stale_event_due(&first, false));
    // Published and remembered in status: the next pass (or a restarted operator) does not
    // publish it again for the same ID...
    let published = LockStatus { stale_reported: true, ..first.clone() };
    let next = lock_status(&[(LockSource::DynamoDB, &d)], Some(&published));
    assert!(next.stale_reported);
    assert!(!stale_event_due(&next, true));
    // ...but does for another lock.
    let mut info = terraform();
    info.id = Some("a-new-lock".into());
    let new = lock_status(&[(LockSource::DynamoDB, &held(info))], Some(&published));
    assert!(!new.stale_reported);
    assert!(stale_event_due(&new, true));
    // A lock without ID cannot be named in the Event's advice.
    let bad = lock_status(&[(LockSource::DynamoDB, &ReadLock::Unreadable("x".into()))], None);
    assert!(!stale_event_due(&bad, true));
}

#[test]
fn force_unlock_only_deletes_the_lock_with_that_id() {
    let id = "4d6a1d8e-2f7b-11f0-9c1b-0242ac120002";
    let (d, l) = (held(terraform()), held(terraform()));
    let both = [(LockSource::DynamoDB, &d), (LockSource::Lockfile, &l)];
    assert_eq!(plan_unlock(id, &both), UnlockPlan::Delete(vec![LockSource::DynamoDB, LockSource::Lockfile]));

    let free = ReadLock::Free;
    let one = [(LockSource::DynamoDB, &free), (LockSource::Lockfile, &l)];
    assert_eq!(plan_unlock(id, &one), UnlockPlan::Delete(vec![LockSource::Lockfile]));

    // A near miss is a miss: no trimming, no case folding, no prefix match.
    for wrong in [" 4d6a1d8e-2f7b-11f0-9c1b-0242ac120002", "4D6A1D8E-2F7B-11F0-9C1B-0242AC120002", "4d6a1d8e", "*"] {
        match plan_unlock(wrong, &both) {
            UnlockPlan::Refuse(Reason::LockIdMismatch, msg) => {
                assert!(msg.contains(id) && msg.contains("nothing changed"), "{msg}")
            }
            other => panic!("{wrong:?}: {other:?}"),
        }
    }
}

#[test]
fn force_unlock_refusals_say_why() {
    let free = ReadLock::Free;
    match plan_unlock("some-id", &[(LockSource::DynamoDB, &free)]) {
        UnlockPlan::Refuse(Reason::NoLockHeld, msg) => assert!(msg.contains("no lock is held"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        plan_unlock("  ", &[(LockSource::DynamoDB, &free)]),
        UnlockPlan::Refuse(Reason::ForceUnlockRefused, _)
    ));
    let bad = ReadLock::Unreadable("no Info".into());
    match plan_unlock("x", &[(LockSource::DynamoDB, &bad)]) {
        UnlockPlan::Refuse(Reason::LockIdMismatch, msg) => assert!(msg.contains("by hand"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // A source that could not be read: nothing is decided, the request waits.
    let failed = ReadLock::Failed { error: "throttled".into(), transient: true };
    let d = held(terraform());
    let reads = [(LockSource::DynamoDB, &d), (LockSource::Lockfile, &failed)];
    assert!(matches!(plan_unlock("4d6a1d8e-2f7b-11f0-9c1b-0242ac120002", &reads), UnlockPlan::Wait(_)));
}

#[test]
fn a_read_failed_only_for_now_keeps_what_was_read_last() {
    let throttled = ReadLock::Failed { error: "dynamodb:GetItem failed: ThrottlingException".into(), transient: true };
    let denied = ReadLock::Failed { error: "dynamodb:GetItem failed: AccessDeniedException".into(), transient: false };
    let last = lock_status(&[(LockSource::DynamoDB, &held(terraform()))], None);
    assert!(last.held);
    // Throttled after a reading: the reading stays as it was, word for word (no status write).
    assert_eq!(lock_status(&[(LockSource::DynamoDB, &throttled)], Some(&last)), last);
    let free = LockStatus { held: false, ..Default::default() };
    let both = [(LockSource::DynamoDB, &ReadLock::Free), (LockSource::Lockfile, &throttled)];
    assert_eq!(lock_status(&both, Some(&free)), free, "one source of two throttled");
    // Nothing read before: there is nothing to keep, so the failure is said.
    let first = lock_status(&[(LockSource::DynamoDB, &throttled)], None);
    assert!(first.message.as_deref().is_some_and(|m| m.contains("could not be read")), "{first:?}");
    // A failure that lasts (a permission) is said even over an earlier reading.
    let s = lock_status(&[(LockSource::DynamoDB, &denied)], Some(&last));
    assert!(!s.held && s.message.as_deref().is_some_and(|m| m.contains("AccessDenied")), "{s:?}");
}

#[test]
fn odd_ids_are_quoted_cleaned_and_bounded_in_messages() {
    let free = ReadLock::Free;
    let odd = format!("\"}}\n{{\u{0}$(rm -rf){}", "y".repeat(5000));
    let UnlockPlan::Refuse(_, msg) = plan_unlock(&odd, &[(LockSource::DynamoDB, &free)]) else { panic!() };
    assert!(!msg.chars().any(char::is_control), "{msg:?}");
    assert!(msg.len() < 1100, "{}", msg.len());
}

#[test]
fn lock_mode_changes_go_through_both() {
    use LockMode::*;
    let refused = check_migration(Some(DynamoDB), Lockfile).expect_err("straight to lock files");
    assert!(refused.contains("Both") && refused.contains("-md5"), "{refused}");
    assert!(check_migration(Some(Lockfile), DynamoDB).expect_err("straight to the table").contains("Both"));
    for (from, to) in [(DynamoDB, Both), (Both, Lockfile), (Lockfile, Both), (Both, DynamoDB), (Both, Both)] {
        assert_eq!(check_migration(Some(from), to), Ok(()), "{from:?} -> {to:?}");
    }
    for to in [DynamoDB, Lockfile, Both] {
        assert_eq!(check_migration(None, to), Ok(()), "a new backend may start in {to:?}");
    }
    // A backend converged before lockMode was recorded, with a table: taken as DynamoDB.
    assert_eq!(previous_mode(None, Some("arn:aws:dynamodb:eu-west-1:1:table/t")), Some(DynamoDB));
    assert_eq!(previous_mode(Some(Both), Some("arn")), Some(Both));
    assert_eq!(previous_mode(None, None), None);
}

#[test]
fn stale_after_durations() {
    assert_eq!(parse_stale_after("2h"), Ok(Duration::from_secs(7200)));
    assert_eq!(parse_stale_after("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_stale_after("45s"), Ok(Duration::from_secs(45)));
    assert_eq!(parse_stale_after("8760h"), Ok(Duration::from_secs(8760 * 3600)));
    for bad in ["", "0s", "2", "h", "2d", "1.5h", "-1h", "2h ", "8761h", "9999999h", "2h*", "1h$x"] {
        assert!(parse_stale_after(bad).is_err(), "{bad:?}");
    }
    // The CRD pattern agrees with the parser on the shapes.
    let re = regex::Regex::new(crate::api::patterns::DURATION).expect("pattern");
    for good in ["2h", "1h30m", "45s"] {
        assert!(re.is_match(good));
    }
    for bad in ["2d", "1.5h", "2h*", ""] {
        assert!(!re.is_match(bad), "{bad:?}");
    }
}

#[test]
fn a_workspace_lock_is_under_the_prefix_and_names_cannot_leave_it() {
    assert_eq!(
        rules::workspace_state_key(None, "staging", "team/terraform.tfstate").as_deref(),
        Ok("env:/staging/team/terraform.tfstate")
    );
    assert_eq!(
        rules::workspace_state_key(Some("workspaces"), "prod-eu_1.v2~x", "k").as_deref(),
        Ok("workspaces/prod-eu_1.v2~x/k")
    );
    // Terraform accepts what url.PathEscape leaves unchanged, `$&+:=@` included.
    assert_eq!(rules::workspace_state_key(None, "a$b&c+d:e=f@g", "k").as_deref(), Ok("env:/a$b&c+d:e=f@g/k"));
    // Abuse: a name that would reach another path of the bucket (another workspace's nested
    // key, another backend's key) or is not Terraform's is refused, naming the annotation.
    for bad in
        ["", ".", "..", "../other-team", "a/b", "x*", "a b", "é", "ws\n", "a?b", "a;b", "a,b", "%2F", &"w".repeat(91)]
    {
        let err = rules::workspace_state_key(None, bad, "k").expect_err(bad);
        assert!(err.contains("tfstate.dev/force-unlock-workspace"), "{err}");
    }
    let err = rules::workspace_state_key(None, "default", "k").expect_err("default");
    assert!(err.contains("without tfstate.dev/force-unlock-workspace"), "{err}");
}
