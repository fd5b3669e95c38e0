//! The pure parts of the `state` commands, one decision per test.

use std::slice::from_ref;

use super::*;

fn version(id: &str, latest: bool, head: Result<StateHead, String>) -> Version {
    Version {
        id: id.into(),
        last_modified: "2026-12-01T15:00:00Z".into(),
        size: Some(120),
        latest,
        delete_marker: false,
        head,
    }
}

/// A check of `target` against `newer` with no lock held and no check lifted; a test
/// changes the one field it is about with `..plain(..)`.
fn plain<'a>(target: &'a Version, newer: &'a [Version]) -> RestoreCheck<'a> {
    RestoreCheck { target, newer, lock: None, force: false, skip_lineage: false }
}

fn head(serial: u64, lineage: &str) -> Result<StateHead, String> {
    Ok(StateHead { serial: Some(serial), lineage: Some(lineage.into()) })
}

#[test]
fn serial_and_lineage_are_read_from_terraform_json_only() {
    let doc = br#"{"version": 4, "terraform_version": "1.10.0", "serial": 7, "lineage": "3f1c", "outputs": {}}"#;
    assert_eq!(state_head(doc), StateHead { serial: Some(7), lineage: Some("3f1c".into()) });
    assert_eq!(state_head(b"garbage \x00\xff"), StateHead::default());
    assert_eq!(state_head(b"[1, 2]"), StateHead::default());
    // OpenTofu's encrypted envelope carries neither.
    assert_eq!(
        state_head(br#"{"meta": {}, "encrypted_data": "AAAA", "encryption_version": "v0"}"#),
        StateHead::default()
    );
}

#[test]
fn table_shows_dashes_and_says_why_once() {
    let denied = Err("AccessDenied on s3:GetObject: your credentials may list versions but not read them".to_owned());
    let rows = [
        version("v3", true, denied.clone()),
        version("v2", false, denied),
        version("v1", false, head(1, "3f1c")),
        Version {
            size: None,
            delete_marker: true,
            head: Ok(StateHead::default()),
            ..version("dm", false, head(0, ""))
        },
    ];
    let text = format_versions("b", "k/terraform.tfstate", &rows, false);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "s3://b/k/terraform.tfstate: 4 version(s)");
    assert!(lines[1].starts_with("VERSION ID") && lines[1].ends_with("LINEAGE"));
    assert!(lines[2].starts_with("v3 ") && lines[2].contains(" * ") && lines[2].ends_with(" - -"), "{}", lines[2]);
    assert!(lines[4].ends_with("      1 3f1c"), "{}", lines[4]);
    assert!(lines[5].ends_with("(delete marker)") && lines[5].contains("          - "), "{}", lines[5]);
    assert_eq!(text.matches("serial and lineage shown as -").count(), 1, "the reason once:\n{text}");
    assert!(format_versions("b", "k", &rows, true).starts_with("s3://b/k: 4+ (only the first page is shown)"));
}

#[test]
fn restore_of_an_earlier_version_of_the_same_lineage_goes_ahead() {
    let (cur, old) = (version("v2", true, head(2, "L")), version("v1", false, head(1, "L")));
    assert_eq!(check_restore(&plain(&old, from_ref(&cur))), Ok(()));
}

#[test]
fn garbage_current_state_does_not_block_the_restore() {
    let (cur, old) = (version("v2", true, Ok(StateHead::default())), version("v1", false, head(1, "L")));
    assert_eq!(check_restore(&plain(&old, from_ref(&cur))), Ok(()));
    // Nor does a current version the caller cannot read.
    let cur = version("v2", true, Err("denied".into()));
    assert_eq!(check_restore(&plain(&old, from_ref(&cur))), Ok(()));
}

/// Abuse of the garbage exemption: garbage written over a state must not let another state
/// (another lineage) be restored unchecked; the state's lineage is then the newest readable
/// one before the garbage. With nothing readable after the target, nothing is compared.
#[test]
fn garbage_over_a_state_keeps_its_lineage() {
    let garbage = version("v3", true, Ok(StateHead::default()));
    let good = version("v2", false, head(2, "L"));
    let (same, other) = (version("v1", false, head(1, "L")), version("v0", false, head(7, "M")));
    let newer = [garbage.clone(), good.clone()];
    assert_eq!(check_restore(&plain(&same, &newer)), Ok(()));
    let refused = check_restore(&plain(&other, &newer));
    assert!(
        matches!(&refused, Err(Refusal::OtherLineage { of, current_lineage, .. }) if of == "v2" && current_lineage == "L"),
        "{refused:?}"
    );
    assert_eq!(state_lineage(&newer), Some(("v2", "L")));
    let only_garbage = [garbage, version("v2", false, Err("denied".into()))];
    assert_eq!(check_restore(&plain(&other, &only_garbage)), Ok(()));
}

#[test]
fn a_held_lock_refuses_unless_forced() {
    let (cur, old) = (version("v2", true, head(2, "L")), version("v1", false, head(1, "L")));
    let lock = Some("DynamoDB lock held by ci@runner, operation OperationTypeApply".to_owned());
    let refused = check_restore(&RestoreCheck { lock: lock.clone(), ..plain(&old, from_ref(&cur)) });
    assert!(matches!(refused, Err(Refusal::Locked(ref who)) if who.contains("ci@runner")), "{refused:?}");
    assert_eq!(check_restore(&RestoreCheck { lock, force: true, ..plain(&old, from_ref(&cur)) }), Ok(()));
}

#[test]
fn another_lineage_refuses_unless_forced() {
    let (cur, other) = (version("v2", true, head(2, "L")), version("v1", false, head(9, "M")));
    let refused = check_restore(&plain(&other, from_ref(&cur)));
    assert_eq!(
        refused,
        Err(Refusal::OtherLineage {
            target: "v1".into(),
            target_lineage: "M".into(),
            current_lineage: "L".into(),
            of: "v2".into()
        })
    );
    assert_eq!(check_restore(&RestoreCheck { force: true, ..plain(&other, from_ref(&cur)) }), Ok(()));
}

#[test]
fn an_unreadable_target_refuses_unless_forced() {
    let cur = version("v2", true, head(2, "L"));
    for target in [version("v1", false, Ok(StateHead::default())), version("v1", false, Err("AccessDenied".into()))] {
        let refused = check_restore(&plain(&target, from_ref(&cur)));
        assert!(matches!(refused, Err(Refusal::LineageUnknown { .. })), "{refused:?}");
        assert_eq!(check_restore(&RestoreCheck { force: true, ..plain(&target, from_ref(&cur)) }), Ok(()));
    }
}

/// `--skip-lineage-check` lifts the lineage checks (an unreadable lineage, such as an
/// OpenTofu-encrypted state's, or another state), but never the lock, nor the rules that
/// hold even with `--force`.
#[test]
fn skipping_the_lineage_check_still_respects_the_lock() {
    let cur = version("v3", true, head(3, "L"));
    let check = |target: &Version, lock: Option<String>| {
        check_restore(&RestoreCheck { lock, skip_lineage: true, ..plain(target, from_ref(&cur)) })
    };
    let encrypted = version("v1", false, Ok(StateHead::default()));
    let other = version("v2", false, head(9, "M"));
    assert_eq!(check(&encrypted, None), Ok(()));
    assert_eq!(check(&other, None), Ok(()));
    let held = Some("lock file held by ci@runner".to_owned());
    assert!(matches!(check(&encrypted, held), Err(Refusal::Locked(_))));
    assert!(matches!(check(&cur, None), Err(Refusal::AlreadyCurrent(_))));
    let marker = Version { delete_marker: true, ..version("v0", false, Ok(StateHead::default())) };
    assert!(matches!(check(&marker, None), Err(Refusal::DeleteMarker(_))));
}

#[test]
fn delete_markers_and_the_current_version_are_refused_even_forced() {
    let cur = version("v2", true, head(2, "L"));
    let marker = Version { delete_marker: true, ..version("dm", false, Ok(StateHead::default())) };
    for force in [false, true] {
        let refused = check_restore(&RestoreCheck { force, ..plain(&marker, from_ref(&cur)) });
        assert_eq!(refused, Err(Refusal::DeleteMarker("dm".into())));
        let refused = check_restore(&RestoreCheck { force, ..plain(&cur, from_ref(&cur)) });
        assert_eq!(refused, Err(Refusal::AlreadyCurrent("v2".into())));
    }
}
