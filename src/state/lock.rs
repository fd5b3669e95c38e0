//! Pure: the lock a restore holds while it reads, checks and copies, in Terraform's own lock
//! info format, so that a runner starting meanwhile waits (and says who holds the state), and
//! the operator shows it in `status.lock` like any other lock.

use serde_json::json;

/// The `Operation` of a restore's lock info (Terraform's are `OperationTypeApply`, ...).
pub const RESTORE_OPERATION: &str = "tfstate-operator state restore";

/// Who takes the lock, as Terraform says it: `user@host`, from the environment
/// (`USER`/`LOGNAME`, `HOSTNAME`), `unknown` where it says nothing.
pub fn who(user: Option<String>, host: Option<String>) -> String {
    let clean = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    format!("{}@{}", clean(user).unwrap_or_else(|| "unknown".into()), clean(host).unwrap_or_else(|| "unknown".into()))
}

/// What the lock records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreLockInfo<'a> {
    /// A fresh UUID: the ID a force-unlock names.
    pub id: &'a str,
    /// `user@host`.
    pub who: &'a str,
    /// `<bucket>/<key>`, as Terraform's `Path`.
    pub path: &'a str,
    /// The version being restored.
    pub version: &'a str,
    /// RFC 3339 time the lock is taken.
    pub created: &'a str,
}

/// Terraform's lock info JSON (`ID`, `Operation`, `Info`, `Who`, `Version`, `Created`, `Path`):
/// the DynamoDB item's `Info` and the lock file's body. Conditional deletes compare it byte
/// for byte, so it is rendered once and kept.
pub fn lock_info(l: &RestoreLockInfo<'_>) -> String {
    json!({
        "ID": l.id,
        "Operation": RESTORE_OPERATION,
        "Info": format!("restoring version {}", l.version),
        "Who": l.who,
        "Version": env!("CARGO_PKG_VERSION"),
        "Created": l.created,
        "Path": l.path,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::locks::parse_lock_info;

    #[test]
    fn who_is_user_at_host_with_unknown_for_what_is_missing() {
        assert_eq!(who(Some("ana".into()), Some("laptop".into())), "ana@laptop");
        assert_eq!(who(None, Some(" ".into())), "unknown@unknown");
    }

    #[test]
    fn lock_info_is_terraforms_format_and_read_back_by_the_operator() {
        let info = lock_info(&RestoreLockInfo {
            id: "0b6a1f3e-4c1d-4d8e-9a51-2f0c7e6d5b4a",
            who: "ana@laptop",
            path: "acme-tfstate/team/terraform.tfstate",
            version: "3HL4kq",
            created: "2026-12-01T21:00:00Z",
        });
        let v: serde_json::Value = serde_json::from_str(&info).expect("JSON");
        for key in ["ID", "Operation", "Info", "Who", "Version", "Created", "Path"] {
            assert!(v.get(key).is_some_and(serde_json::Value::is_string), "{key} missing in {info}");
        }
        // What `status.lock` and the StaleLock Event will show for it.
        let parsed = parse_lock_info(&info).expect("the operator reads it");
        assert_eq!(parsed.id.as_deref(), Some("0b6a1f3e-4c1d-4d8e-9a51-2f0c7e6d5b4a"));
        assert_eq!(parsed.who.as_deref(), Some("ana@laptop"));
        assert_eq!(parsed.operation.as_deref(), Some(RESTORE_OPERATION));
        assert!(parsed.created_at.is_some(), "its age is known, so a stale restore lock is reported");
    }
}
