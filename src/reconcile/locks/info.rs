//! Pure: Terraform's lock info, as the S3 backend writes it into the DynamoDB item's `Info`
//! attribute and into the `<key>.tflock` object: a JSON object with `ID`, `Operation`,
//! `Info`, `Who`, `Version`, `Created` (RFC 3339, UTC) and `Path` (`<bucket>/<key>`).
//!
//! Everything in it was written by whoever holds the lock: it is parsed leniently (missing
//! fields are missing, not an error), and every string that reaches status or an Event is
//! cleaned of control characters and cut to a bounded length. The free-form `Info` field
//! (`-lock-info`... text of the holder's choosing) is never shown.

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

/// The longest string of a lock info that is shown (status, Events).
pub const MAX_SHOWN: usize = 256;

/// A lock info, as far as it could be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockInfo {
    /// `ID`, exactly as written (compared byte for byte with a force-unlock request).
    pub id: Option<String>,
    /// `Operation`, e.g. `OperationTypeApply`.
    pub operation: Option<String>,
    /// `Who`, e.g. `runner@pod-7`.
    pub who: Option<String>,
    /// `Version` of Terraform.
    pub version: Option<String>,
    /// `Created`, as written.
    pub created: Option<String>,
    /// `Created`, parsed (`None` when missing or not RFC 3339).
    pub created_at: Option<Timestamp>,
    /// `Path`, e.g. `<bucket>/<key>`.
    pub path: Option<String>,
}

/// Why a lock's content could not be read as a lock info.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LockInfoError {
    /// Not JSON, or not a JSON object.
    #[error("the lock info is not a JSON object ({0})")]
    NotAnObject(String),
    /// The DynamoDB item has no `Info` string attribute.
    #[error("the lock item has no Info attribute")]
    NoInfo,
    /// The lock file is larger than any lock info.
    #[error("the lock file is larger than {0} bytes: not a Terraform lock info")]
    TooLarge(usize),
}

/// Parses a lock info. Fields of the wrong type count as missing.
pub fn parse_lock_info(text: &str) -> Result<LockInfo, LockInfoError> {
    let value: Value = serde_json::from_str(text).map_err(|e| LockInfoError::NotAnObject(short(&e.to_string())))?;
    let obj = value.as_object().ok_or_else(|| LockInfoError::NotAnObject("JSON of another type".into()))?;
    let field = |name: &str| obj.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let created = field("Created");
    Ok(LockInfo {
        id: field("ID"),
        operation: field("Operation"),
        who: field("Who"),
        version: field("Version"),
        created_at: created.as_deref().and_then(|c| c.parse::<Timestamp>().ok()),
        created,
        path: field("Path"),
    })
}

/// `text` cleaned for display: control characters replaced by `?`, at most
/// [`MAX_SHOWN`] characters (a cut string ends with `...`).
pub fn shown(text: &str) -> String {
    let clean: String = text.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    if clean.chars().count() <= MAX_SHOWN {
        return clean;
    }
    let mut cut: String = clean.chars().take(MAX_SHOWN - 3).collect();
    cut.push_str("...");
    cut
}

fn short(text: &str) -> String {
    text.chars().take(120).collect()
}
