//! The pattern language of policies: `*` is the only wildcard, `{namespace}` is replaced by
//! the namespace's name, literally, and a value must match the whole pattern.

use std::fmt;

use regex::Regex;

use crate::api::policy::NAMESPACE_PLACEHOLDER;

/// A pattern with `{namespace}` already replaced.
///
/// `*` matches any run of characters, also none, except `:`: in an ARN pattern a star stays
/// within one component, as in IAM's `ArnLike` (no name of a bucket, table, role, alias or
/// namespace holds a `:`). The pattern is split at its stars before the namespace is put in,
/// so whatever the namespace holds is matched literally and can never act as a wildcard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// The literal runs between the stars (one more than there are stars).
    parts: Vec<String>,
}

impl Pattern {
    /// The pattern `pattern` for the namespace `namespace`.
    pub fn new(pattern: &str, namespace: &str) -> Self {
        Self { parts: pattern.split('*').map(|part| part.replace(NAMESPACE_PLACEHOLDER, namespace)).collect() }
    }

    /// Patterns for one namespace.
    pub fn all(patterns: &[String], namespace: &str) -> Vec<Self> {
        patterns.iter().map(|p| Self::new(p, namespace)).collect()
    }

    /// A pattern that matches exactly `value`.
    pub fn exact(value: &str) -> Self {
        Self { parts: vec![value.to_string()] }
    }

    /// Whether `value` matches the whole pattern.
    pub fn matches(&self, value: &str) -> bool {
        if let [only] = self.parts.as_slice() {
            return only == value;
        }
        let body = self.parts.iter().map(|p| regex::escape(p)).collect::<Vec<_>>().join("[^:]*");
        // Escaped literals and `[^:]*` only: the expression always compiles; a pattern too
        // large for the regex engine's limits (the schema caps lengths far below) matches
        // nothing, which refuses rather than allows.
        Regex::new(&format!("^(?s:{body})$")).is_ok_and(|re| re.is_match(value))
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.parts.join("*"))
    }
}
