//! The Events of one pass (pure): one per type and reason, its note naming every part.
//!
//! A create used to publish one `Created` Event per part (bucket, key, table, role): four
//! writes to the API server, and four lines in `kubectl describe`, for one thing that
//! happened. In `scripts/bench.sh` those were 3.80 of the 9.71 writes per create the API
//! server took (about 40%), on a machine whose cores it shares with everything else. Folded by type and
//! reason, a pass that creates a backend publishes one Event; a pass that repairs two parts
//! one `DriftRepaired` naming both; the reasons stay apart, so a Warning is never hidden in
//! a Normal Event.

use kube::runtime::events::EventType;

use crate::api::Reason;

/// The longest note `events.k8s.io/v1` accepts, in bytes: the API server refuses the whole
/// Event beyond it ("can have at most 1024 characters"; 1,025 refused, 1,024 accepted on
/// the test ground), and the Event would be lost.
pub const NOTE_LIMIT: usize = 1024;

/// Between the notes folded into one Event.
const SEPARATOR: &str = "; ";

/// What an overlong note ends with.
const ELLIPSIS: &str = "…";

/// One Event to publish: its type, reason and note.
pub type Note = (EventType, Reason, String);

/// Folds `notes` into one Event per type and reason, in the order each first appears,
/// joining their notes with "; ". A note that would make an Event longer than
/// [`NOTE_LIMIT`] starts another Event of the same type and reason; a single note longer
/// than that is cut, at a character boundary, and ends with "…". A note already in the
/// Event is not repeated.
pub fn fold(notes: impl IntoIterator<Item = Note>) -> Vec<Note> {
    let mut out: Vec<Note> = Vec::new();
    for (kind, reason, note) in notes {
        let note = cut(note);
        // The newest Event of this type and reason: the earlier ones are full.
        let last = out.iter_mut().rev().find(|(k, r, _)| *k == kind && *r == reason);
        match last {
            Some((_, _, text)) if text.split(SEPARATOR).any(|n| n == note) => {}
            Some((_, _, text)) if text.len() + SEPARATOR.len() + note.len() <= NOTE_LIMIT => {
                text.push_str(SEPARATOR);
                text.push_str(&note);
            }
            _ => out.push((kind, reason, note)),
        }
    }
    out
}

/// `note`, at most [`NOTE_LIMIT`] bytes long.
pub fn cut(mut note: String) -> String {
    if note.len() <= NOTE_LIMIT {
        return note;
    }
    let mut end = NOTE_LIMIT - ELLIPSIS.len();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    note.truncate(end);
    note.push_str(ELLIPSIS);
    note
}

#[cfg(test)]
#[path = "notes_tests.rs"]
mod tests;
