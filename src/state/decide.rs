//! Pure parts of the `state` commands: Terraform's serial and lineage of a state, the version
//! table, and whether a restore may go ahead.

use std::fmt::Write as _;

/// Terraform's serial and lineage, read from a state's JSON; `None` where unreadable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateHead {
    /// `serial`: incremented by every write of the same lineage.
    pub serial: Option<u64>,
    /// `lineage`: a UUID fixed when the state was first created.
    pub lineage: Option<String>,
}

/// The serial and lineage of a state document (`None` for both when it is not Terraform's
/// JSON: garbage, or OpenTofu's client-side encrypted envelope, which shows neither).
pub fn state_head(content: &[u8]) -> StateHead {
    let Ok(serde_json::Value::Object(doc)) = serde_json::from_slice::<serde_json::Value>(content) else {
        return StateHead::default();
    };
    StateHead {
        serial: doc.get("serial").and_then(serde_json::Value::as_u64),
        lineage: doc.get("lineage").and_then(serde_json::Value::as_str).map(str::to_owned),
    }
}

/// One version of the state object, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// S3's version id.
    pub id: String,
    /// Last-modified time, RFC 3339.
    pub last_modified: String,
    /// Size in bytes (`None` for a delete marker).
    pub size: Option<i64>,
    /// Whether it is the current version.
    pub latest: bool,
    /// A delete marker rather than a state.
    pub delete_marker: bool,
    /// Terraform's serial and lineage, or why they are unknown.
    pub head: Result<StateHead, String>,
}

/// The version table, newest first as S3 lists them, `-` for what is unknown, and the reason
/// serial and lineage are unknown said once (not on every line).
pub fn format_versions(bucket: &str, key: &str, versions: &[Version], truncated: bool) -> String {
    let mut out = String::new();
    let more = if truncated { "+ (only the first page is shown)" } else { "" };
    let _ = writeln!(out, "s3://{bucket}/{key}: {}{more} version(s)", versions.len());
    let _ = writeln!(
        out,
        "{:<34} {:<25} {:>10} {:<6} {:>7} LINEAGE",
        "VERSION ID", "LAST MODIFIED", "SIZE", "LATEST", "SERIAL"
    );
    let mut why = Vec::new();
    for v in versions {
        let size = v.size.map_or_else(|| "-".to_owned(), |s| s.to_string());
        let (serial, lineage) = match (&v.head, v.delete_marker) {
            (_, true) => ("-".to_owned(), "(delete marker)".to_owned()),
            (Ok(h), _) => (
                h.serial.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                h.lineage.clone().unwrap_or_else(|| "-".to_owned()),
            ),
            (Err(reason), _) => {
                if !why.contains(reason) {
                    why.push(reason.clone());
                }
                ("-".to_owned(), "-".to_owned())
            }
        };
        let latest = if v.latest { "*" } else { "" };
        let _ = writeln!(out, "{:<34} {:<25} {size:>10} {latest:<6} {serial:>7} {lineage}", v.id, v.last_modified);
    }
    for reason in why {
        let _ = writeln!(out, "serial and lineage shown as - : {reason}");
    }
    out
}

/// What a restore decision depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreCheck<'a> {
    /// The version to restore.
    pub target: &'a Version,
    /// The versions newer than the target, newest first (the current one first), with the
    /// heads read of as many as [`state_lineage`] needed.
    pub newer: &'a [Version],
    /// Who holds the lock, when it is held (DynamoDB item and/or `.tflock`).
    pub lock: Option<String>,
    /// `--force`: past a held lock and the lineage checks.
    pub force: bool,
    /// `--skip-lineage-check`: past the lineage checks only (a state whose lineage cannot be
    /// read, such as an OpenTofu-encrypted one, or a deliberate switch to another state);
    /// a held lock still refuses.
    pub skip_lineage: bool,
}

/// Why a restore is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A lock is held: a run may be writing the state right now.
    #[error(
        "the state is locked ({0}): a run may be writing it now; wait for it, or break a stale lock first (or pass --force)"
    )]
    Locked(String),
    /// The version is a delete marker: there is nothing to restore.
    #[error("version {0} is a delete marker, not a state")]
    DeleteMarker(String),
    /// The version is already the current one.
    #[error("version {0} is already the current version")]
    AlreadyCurrent(String),
    /// The version belongs to another state (another lineage).
    #[error(
        "version {target} has lineage {target_lineage}, the state (its newest version with a lineage, {of}) {current_lineage}: it is another state, not an earlier version of this one (pass --skip-lineage-check to restore it anyway)"
    )]
    OtherLineage {
        /// The version.
        target: String,
        /// Its lineage.
        target_lineage: String,
        /// The state's lineage.
        current_lineage: String,
        /// The version the state's lineage was read from.
        of: String,
    },
    /// The version's lineage cannot be read (content not JSON, or not readable by the caller).
    #[error(
        "the lineage of version {target} cannot be checked ({why}); pass --skip-lineage-check to restore it unchecked"
    )]
    LineageUnknown {
        /// The version.
        target: String,
        /// Why.
        why: String,
    },
}

/// The state's lineage, from `newer` (newest first): the first version that is no delete
/// marker and has one, as (version id, lineage). A garbage current version (the bad day this
/// is for) has none, so the state's lineage is that of the newest version before it that has
/// one: restoring another state over garbage is refused like restoring it over a good one.
pub fn state_lineage(newer: &[Version]) -> Option<(&str, &str)> {
    newer.iter().filter(|v| !v.delete_marker).find_map(|v| match &v.head {
        Ok(StateHead { lineage: Some(l), .. }) => Some((v.id.as_str(), l.as_str())),
        _ => None,
    })
}

/// Whether the restore may go ahead. Never refused for a current state that is garbage (the
/// bad day this is for): the target's lineage is compared with the state's
/// ([`state_lineage`]), and only when both are known.
///
/// # Errors
///
/// The [`Refusal`], most important first: a delete marker or the current version always; a
/// held lock unless forced, a lineage mismatch or an unreadable lineage unless forced or
/// skipped.
pub fn check_restore(c: &RestoreCheck<'_>) -> Result<(), Refusal> {
    let id = || c.target.id.clone();
    if c.target.delete_marker {
        return Err(Refusal::DeleteMarker(id()));
    }
    if c.target.latest {
        return Err(Refusal::AlreadyCurrent(id()));
    }
    if c.force {
        return Ok(());
    }
    if let Some(holder) = &c.lock {
        return Err(Refusal::Locked(holder.clone()));
    }
    if c.skip_lineage {
        return Ok(());
    }
    let target_lineage = match &c.target.head {
        Ok(StateHead { lineage: Some(l), .. }) => l.clone(),
        Ok(_) => return Err(Refusal::LineageUnknown { target: id(), why: "it is not Terraform state JSON".into() }),
        Err(why) => return Err(Refusal::LineageUnknown { target: id(), why: why.clone() }),
    };
    if let Some((of, current)) = state_lineage(c.newer)
        && current != target_lineage
    {
        let (current_lineage, of) = (current.to_owned(), of.to_owned());
        return Err(Refusal::OtherLineage { target: id(), target_lineage, current_lineage, of });
    }
    Ok(())
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
