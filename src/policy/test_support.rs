//! Test helpers shared by the builders' tests: exact JSON assertions and a simulation of how
//! AWS hands a stored policy back.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::document::PolicyDocument;

/// RFC 3986 unreserved characters stay as they are; IAM encodes everything else.
pub(crate) const RFC3986: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// URL-encodes `text` as IAM's `GetRole` and `GetRolePolicy` return documents.
pub(crate) fn url_encode(text: &str) -> String {
    utf8_percent_encode(text, RFC3986).to_string()
}

/// Asserts that `doc` is a `2012-10-17` document with exactly `statements`, in that order.
#[track_caller]
pub(crate) fn assert_json(doc: &PolicyDocument, statements: Vec<Value>) {
    let actual: Value = serde_json::from_str(&doc.to_json()).expect("to_json writes JSON");
    let expected = json!({"Version": "2012-10-17", "Statement": statements});
    assert_eq!(actual, expected, "\nactual:   {actual:#}\nexpected: {expected:#}");
}

/// Rewrites a document the way AWS may return it: every array reversed, bare values turned
/// into one-element arrays, `"Principal": "*"` spelt `{"AWS": ["*"]}`, `Sid`s dropped,
/// pretty-printed.
pub(crate) fn aws_rewrite(doc: &PolicyDocument) -> String {
    fn rewrite(v: Value, key: Option<&str>) -> Value {
        match (v, key) {
            (Value::Array(items), _) => Value::Array(
                items.into_iter().rev().map(|i| if i.is_object() { rewrite(i, None) } else { i }).collect(),
            ),
            (Value::Object(map), _) => Value::Object(
                map.into_iter().filter(|(k, _)| k != "Sid").map(|(k, v)| (k.clone(), rewrite(v, Some(&k)))).collect(),
            ),
            (Value::String(s), Some("Principal" | "NotPrincipal")) if s == "*" => json!({"AWS": ["*"]}),
            // These elements are single strings by definition; every other string is a list.
            (Value::String(s), Some("Version" | "Id" | "Effect")) => Value::String(s),
            (Value::String(s), _) => Value::Array(vec![Value::String(s)]),
            (other, _) => other,
        }
    }
    let value: Value = serde_json::from_str(&doc.to_json()).expect("to_json writes JSON");
    serde_json::to_string_pretty(&rewrite(value, None)).expect("a Value serialises")
}

/// Asserts that `doc` equals itself as AWS might return it, both as JSON (S3, KMS) and
/// URL-encoded (IAM), and that the rewrite really changed the text.
#[track_caller]
pub(crate) fn assert_survives_aws_rewrite(doc: &PolicyDocument) {
    let rewritten = aws_rewrite(doc);
    assert_ne!(rewritten, doc.to_json(), "the rewrite must change the text to test anything");
    for text in [rewritten.clone(), url_encode(&rewritten)] {
        let back = PolicyDocument::parse(&text).expect("the rewritten document parses");
        assert!(doc.semantically_eq(&back), "not equal after rewrite:\n{rewritten}");
        assert!(back.semantically_eq(doc), "equality must be symmetric:\n{rewritten}");
    }
}
