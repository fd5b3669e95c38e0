//! The typed model of an AWS policy document (IAM, KMS key and S3 bucket policies share it),
//! how it is read from what AWS returns, and how it is written for AWS.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};

use super::wire;

/// The policy language version every document built by this operator uses. Only this version
/// understands policy variables and the newer condition operators.
pub const VERSION_2012_10_17: &str = "2012-10-17";

/// What AWS assumes when a document has no `Version`: the original 2008 language.
pub const VERSION_2008_10_17: &str = "2008-10-17";

/// `Condition`: operator (e.g. `StringEquals`) -> condition key (e.g. `aws:SourceAccount`) ->
/// values, which AWS ORs together.
pub type Condition = BTreeMap<String, BTreeMap<String, Vec<ConditionValue>>>;

/// An AWS policy document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// `Version`; AWS reads a missing version as [`VERSION_2008_10_17`].
    #[serde(rename = "Version", default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `Id`, an optional label with no effect on evaluation.
    #[serde(rename = "Id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `Statement`, one object or an array in JSON; always written as an array.
    #[serde(rename = "Statement", deserialize_with = "wire::statements::deserialize")]
    pub statements: Vec<Statement>,
}

/// Whether a statement grants or refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// `"Allow"`.
    Allow,
    /// `"Deny"`; wins over any `Allow`.
    Deny,
}

/// One statement. Every list field accepts a bare value or an array in JSON.
// Unknown fields are refused rather than ignored: a document that cannot be fully modelled
// must never be declared equal to the desired one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// `Sid`, a label; ignored by semantic equality.
    #[serde(rename = "Sid", default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// `Effect`.
    #[serde(rename = "Effect")]
    pub effect: Effect,
    /// `Principal` (resource-based policies only).
    #[serde(rename = "Principal", default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Principal>,
    /// `NotPrincipal`.
    #[serde(rename = "NotPrincipal", default, skip_serializing_if = "Option::is_none")]
    pub not_principal: Option<Principal>,
    /// `Action`.
    #[serde(rename = "Action", default, skip_serializing_if = "Option::is_none", with = "wire::opt_list")]
    pub action: Option<Vec<String>>,
    /// `NotAction`.
    #[serde(rename = "NotAction", default, skip_serializing_if = "Option::is_none", with = "wire::opt_list")]
    pub not_action: Option<Vec<String>>,
    /// `Resource`.
    #[serde(rename = "Resource", default, skip_serializing_if = "Option::is_none", with = "wire::opt_list")]
    pub resource: Option<Vec<String>>,
    /// `NotResource`.
    #[serde(rename = "NotResource", default, skip_serializing_if = "Option::is_none", with = "wire::opt_list")]
    pub not_resource: Option<Vec<String>>,
    /// `Condition`.
    #[serde(rename = "Condition", default, skip_serializing_if = "Option::is_none", with = "wire::opt_condition")]
    pub condition: Option<Condition>,
}

/// `Principal` / `NotPrincipal`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// `"*"`: everyone, the same as `{"AWS": "*"}`.
    Any,
    /// `{"AWS": ..., "Service": ..., "Federated": ..., "CanonicalUser": ...}`: principal type
    /// (spelt as AWS spells it) -> identifiers.
    Typed(BTreeMap<String, Vec<String>>),
}

/// One value in a condition. AWS compares them as strings, so `true` and `"true"` match the
/// same requests; the JSON type is kept only to write back what was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConditionValue {
    /// A JSON string.
    String(String),
    /// A JSON boolean.
    Bool(bool),
    /// A JSON number.
    Number(serde_json::Number),
}

impl ConditionValue {
    /// The string AWS compares: `true` -> `"true"`, `3` -> `"3"`.
    pub fn as_aws_string(&self) -> String {
        match self {
            ConditionValue::String(s) => s.clone(),
            ConditionValue::Bool(b) => b.to_string(),
            ConditionValue::Number(n) => n.to_string(),
        }
    }
}

impl From<&str> for ConditionValue {
    fn from(s: &str) -> Self {
        ConditionValue::String(s.to_owned())
    }
}

impl From<String> for ConditionValue {
    fn from(s: String) -> Self {
        ConditionValue::String(s)
    }
}

/// Why a policy document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The text (after URL-decoding, if it was URL-encoded) is not a policy document.
    #[error("{} policy document is invalid: {source} (near {excerpt:?})", form(*.url_encoded))]
    InvalidJson {
        /// Whether the text was URL-encoded, as IAM returns role and inline policies.
        url_encoded: bool,
        /// The text around the error, to find it in a long document.
        excerpt: String,
        /// serde_json's error, with line and column.
        source: serde_json::Error,
    },
    /// A `%` not followed by two hexadecimal digits.
    #[error("URL-encoded policy document has an invalid percent escape at byte {offset}")]
    InvalidPercentEncoding {
        /// Byte offset of the `%` in the trimmed text.
        offset: usize,
    },
    /// The percent escapes decode to bytes that are not UTF-8.
    #[error("URL-encoded policy document does not decode to UTF-8: {source}")]
    InvalidUtf8 {
        /// Where decoding failed.
        source: std::str::Utf8Error,
    },
}

impl PolicyDocument {
    /// A `2012-10-17` document holding `statements`.
    pub fn new(statements: Vec<Statement>) -> Self {
        PolicyDocument { version: Some(VERSION_2012_10_17.to_owned()), id: None, statements }
    }

    /// Reads a document as S3 and KMS return it (JSON) or as IAM returns it from `GetRole` and
    /// `GetRolePolicy` (URL-encoded JSON, RFC 3986). A JSON document starts with `{`, and a
    /// URL-encoded one cannot (`{` is encoded as `%7B`), which tells the two apart.
    pub fn parse(text: &str) -> Result<PolicyDocument, PolicyError> {
        let trimmed = text.trim();
        if trimmed.starts_with('{') {
            return from_json(trimmed, false);
        }
        check_percent_escapes(trimmed)?;
        // `+` is left alone: RFC 3986 encoding writes a space as `%20`, so a `+` is a plus.
        let decoded =
            percent_decode_str(trimmed).decode_utf8().map_err(|source| PolicyError::InvalidUtf8 { source })?;
        from_json(decoded.trim(), true)
    }

    /// Compact JSON for AWS. Deterministic: fields in a fixed order, maps sorted by key.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: every map key is a string and no number is NaN.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether AWS treats both documents as the same policy (see [`PolicyDocument::normalized`]).
    pub fn semantically_eq(&self, other: &PolicyDocument) -> bool {
        self.normalized() == other.normalized()
    }
}

/// How the unreadable document was written, for the error message.
fn form(url_encoded: bool) -> &'static str {
    if url_encoded { "URL-encoded" } else { "JSON" }
}

fn from_json(text: &str, url_encoded: bool) -> Result<PolicyDocument, PolicyError> {
    serde_json::from_str(text).map_err(|source| PolicyError::InvalidJson {
        url_encoded,
        excerpt: excerpt(text, source.line(), source.column()),
        source,
    })
}

/// Up to 40 characters either side of a 1-based line and column.
fn excerpt(text: &str, line: usize, column: usize) -> String {
    let Some(l) = text.lines().nth(line.saturating_sub(1)) else { return String::new() };
    let chars: Vec<char> = l.chars().collect();
    let at = column.saturating_sub(1).min(chars.len());
    chars[at.saturating_sub(40)..(at + 40).min(chars.len())].iter().collect()
}

/// `percent_decode_str` passes malformed escapes through silently; a policy with one is not
/// what IAM sent, so it is refused.
fn check_percent_escapes(text: &str) -> Result<(), PolicyError> {
    let bytes = text.as_bytes();
    for (offset, _) in text.match_indices('%') {
        let hex = bytes.get(offset + 1..offset + 3);
        if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
            return Err(PolicyError::InvalidPercentEncoding { offset });
        }
    }
    Ok(())
}

impl Statement {
    /// A statement with only its `Sid` and `Effect`; the builder methods below add the rest.
    pub fn new(sid: &str, effect: Effect) -> Self {
        Statement {
            sid: Some(sid.to_owned()),
            effect,
            principal: None,
            not_principal: None,
            action: None,
            not_action: None,
            resource: None,
            not_resource: None,
            condition: None,
        }
    }

    /// Sets `Principal`.
    pub fn principal(mut self, principal: Principal) -> Self {
        self.principal = Some(principal);
        self
    }

    /// Sets `Action`.
    pub fn actions<S: Into<String>>(mut self, actions: impl IntoIterator<Item = S>) -> Self {
        self.action = Some(actions.into_iter().map(Into::into).collect());
        self
    }

    /// Sets `Resource`.
    pub fn resources<S: Into<String>>(mut self, resources: impl IntoIterator<Item = S>) -> Self {
        self.resource = Some(resources.into_iter().map(Into::into).collect());
        self
    }

    /// Adds one condition `operator: {key: values}` (ANDed with the others).
    pub fn condition<V: Into<ConditionValue>>(
        mut self,
        operator: &str,
        key: &str,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        self.condition
            .get_or_insert_with(Condition::new)
            .entry(operator.to_owned())
            .or_default()
            .insert(key.to_owned(), values.into_iter().map(Into::into).collect());
        self
    }
}

impl Principal {
    /// `{"<kind>": [ids]}`.
    pub fn typed<S: Into<String>>(kind: &str, ids: impl IntoIterator<Item = S>) -> Self {
        Principal::Typed(BTreeMap::from([(kind.to_owned(), ids.into_iter().map(Into::into).collect())]))
    }

    /// `{"AWS": [arns]}`: accounts, IAM users and roles.
    pub fn aws<S: Into<String>>(arns: impl IntoIterator<Item = S>) -> Self {
        Self::typed("AWS", arns)
    }

    /// `{"Service": [names]}`: AWS services such as `pods.eks.amazonaws.com`.
    pub fn service<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Self::typed("Service", names)
    }

    /// `{"Federated": [arns]}`: identity providers such as an IAM OIDC provider.
    pub fn federated<S: Into<String>>(arns: impl IntoIterator<Item = S>) -> Self {
        Self::typed("Federated", arns)
    }
}

#[cfg(test)]
#[path = "document_tests.rs"]
mod tests;
