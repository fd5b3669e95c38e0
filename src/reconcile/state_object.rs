//! `status.state` from one listing of the state key's versions (pure): what is current, how
//! many versions are kept, whether the state was deleted. The operator never reads state
//! content; the listing's size and time are what S3 says of each version.

use crate::api::StateObjectStatus;
use crate::aws::s3::KeyVersion;

/// The state object's status from `versions` (of exactly the state key `key`, any order)
/// and whether the listing was `truncated`.
pub fn state_status(key: &str, versions: &[KeyVersion], truncated: bool) -> StateObjectStatus {
    let current = versions.iter().find(|v| v.latest);
    let kept = versions.iter().filter(|v| !v.delete_marker).count();
    let state = current.filter(|v| !v.delete_marker);
    StateObjectStatus {
        key: Some(key.to_string()),
        exists: state.is_some(),
        version_id: state.map(|v| v.id.clone()),
        size: state.and_then(|v| v.size),
        last_modified: state.map(|v| v.last_modified.clone()),
        versions: u32::try_from(kept).unwrap_or(u32::MAX),
        more_versions: truncated,
        deleted: current.is_some_and(|v| v.delete_marker),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str, at: &str, latest: bool, delete_marker: bool) -> KeyVersion {
        KeyVersion {
            id: id.into(),
            last_modified: at.into(),
            size: (!delete_marker).then_some(1200),
            latest,
            delete_marker,
        }
    }

    #[test]
    fn no_state_yet() {
        assert_eq!(state_status("k", &[], false), StateObjectStatus { key: Some("k".into()), ..Default::default() });
    }

    #[test]
    fn the_current_version_and_the_count() {
        let listed = [v("v3", "2026-12-01T10:03:00Z", true, false), v("v2", "2026-12-01T10:02:00Z", false, false)];
        let s = state_status("k", &listed, false);
        assert!(s.exists && !s.deleted && !s.more_versions);
        assert_eq!(s.version_id.as_deref(), Some("v3"));
        assert_eq!((s.size, s.last_modified.as_deref(), s.versions), (Some(1200), Some("2026-12-01T10:03:00Z"), 2));
    }

    #[test]
    fn a_deleted_state_keeps_its_versions() {
        let listed = [v("dm", "2026-12-01T10:04:00Z", true, true), v("v3", "2026-12-01T10:03:00Z", false, false)];
        let s = state_status("k", &listed, false);
        assert!(!s.exists && s.deleted);
        assert_eq!((s.version_id, s.size, s.versions), (None, None, 1), "delete markers are not versions");
    }

    #[test]
    fn a_truncated_listing_says_so() {
        let s = state_status("k", &[v("v9", "2026-12-01T10:09:00Z", true, false)], true);
        assert!(s.more_versions);
        assert_eq!(s.versions, 1, "a lower bound");
    }
}
