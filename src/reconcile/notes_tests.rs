use kube::runtime::events::EventType::{Normal, Warning};

use super::*;

fn note(kind: EventType, reason: Reason, text: &str) -> Note {
    (kind, reason, text.to_string())
}

#[test]
fn a_create_is_one_event_naming_every_part() {
    let pass = vec![
        note(Normal, Reason::Created, "S3 bucket b created"),
        note(Normal, Reason::Created, "KMS key k created"),
        note(Normal, Reason::Created, "DynamoDB table t created"),
        note(Normal, Reason::Created, "IAM role r created"),
    ];
    assert_eq!(
        fold(pass),
        vec![note(
            Normal,
            Reason::Created,
            "S3 bucket b created; KMS key k created; DynamoDB table t created; IAM role r created"
        )]
    );
}

#[test]
fn reasons_and_types_stay_apart_in_first_seen_order() {
    let pass = vec![
        note(Normal, Reason::DriftRepaired, "S3 bucket b: repaired changes made outside the operator: Versioning"),
        note(Warning, Reason::Conflict, "DynamoDB table t belongs to another object"),
        note(Normal, Reason::Updated, "IAM role r updated: InlinePolicy"),
        note(Normal, Reason::DriftRepaired, "KMS key k: repaired changes made outside the operator: Rotation"),
        note(Normal, Reason::Conflict, "not a warning"),
    ];
    let folded = fold(pass);
    let heads: Vec<(EventType, Reason)> = folded.iter().map(|(k, r, _)| (*k, *r)).collect();
    assert_eq!(
        heads,
        vec![
            (Normal, Reason::DriftRepaired),
            (Warning, Reason::Conflict),
            (Normal, Reason::Updated),
            (Normal, Reason::Conflict)
        ]
    );
    assert_eq!(
        folded[0].2,
        "S3 bucket b: repaired changes made outside the operator: Versioning; \
         KMS key k: repaired changes made outside the operator: Rotation"
    );
}

#[test]
fn a_repeated_note_is_said_once() {
    let pass = vec![note(Warning, Reason::AwsError, "throttled"), note(Warning, Reason::AwsError, "throttled")];
    assert_eq!(fold(pass), vec![note(Warning, Reason::AwsError, "throttled")]);
}

#[test]
fn no_event_is_longer_than_the_api_server_accepts() {
    // Nine notes of 300 bytes: three fit in 1,024 bytes with their separators.
    let long: Vec<Note> = (0..9).map(|i| note(Normal, Reason::Updated, &format!("{i}{}", "x".repeat(299)))).collect();
    let folded = fold(long);
    assert_eq!(folded.len(), 3, "{folded:?}");
    assert!(folded.iter().all(|(_, _, n)| n.len() <= NOTE_LIMIT));
    // Nothing lost and nothing reordered.
    let joined: Vec<String> =
        folded.iter().flat_map(|(_, _, n)| n.split(SEPARATOR).map(str::to_string).collect::<Vec<_>>()).collect();
    assert_eq!(joined, (0..9).map(|i| format!("{i}{}", "x".repeat(299))).collect::<Vec<_>>());
}

#[test]
fn an_overlong_note_is_cut_at_a_character_boundary() {
    // 'é' is two bytes: the cut must not split one.
    let text = "é".repeat(NOTE_LIMIT);
    let folded = fold(vec![note(Normal, Reason::DriftRepaired, &text)]);
    let cut = &folded[0].2;
    assert!(cut.len() <= NOTE_LIMIT, "{} bytes", cut.len());
    assert!(cut.ends_with(ELLIPSIS));
    assert!(cut.trim_end_matches(ELLIPSIS).chars().all(|c| c == 'é'));
    assert!(cut.len() > NOTE_LIMIT - 8, "cut far too short: {} bytes", cut.len());
}

#[test]
fn nothing_to_say_is_no_event() {
    assert!(fold(Vec::new()).is_empty());
}
