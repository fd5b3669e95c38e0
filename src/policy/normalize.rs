//! Semantic equality of policy documents.
//!
//! AWS stores a policy in its own spelling: IAM and S3 turn a bare account id principal into
//! the account's root ARN, arrays come back in another order, single values come back bare, and
//! IAM returns its documents URL-encoded. Comparing documents as text would make every resync
//! rewrite a converged backend (as ACK does with bucket policies), so the plan step compares
//! [`PolicyDocument::normalized`] forms instead. The rules only merge spellings AWS evaluates
//! identically; when in doubt two documents stay different, which costs one idempotent write,
//! whereas a wrong "equal" would leave drift in place.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;

use super::document::{Condition, ConditionValue, PolicyDocument, Principal, Statement, VERSION_2008_10_17};

/// The root ARN of an account in any partition.
static ROOT_ARN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^arn:[a-z-]+:iam::([0-9]{12}):root$").expect("static regex is valid"));

impl PolicyDocument {
    /// The canonical spelling of this document, for comparison. Two documents AWS evaluates
    /// identically through the spellings below have equal normalized forms:
    /// - `Version` missing is `2008-10-17` (never equal to `2012-10-17`); `Sid` and `Id` are
    ///   labels and are dropped;
    /// - statements, actions, resources, principals and condition values are sets: order and
    ///   duplicates do not count, and a bare value is a one-element array;
    /// - action names are lower-cased (`s3:GetObject` is `S3:getobject` to AWS);
    /// - `"Principal": "*"` is `{"AWS": "*"}`, and an account's root ARN in an `AWS` principal is
    ///   the bare account id (IAM and S3 store `123456789012` as `arn:aws:iam::123456789012:root`;
    ///   the id is the canonical side because it does not depend on the partition);
    /// - condition operators and keys are lower-cased (AWS matches them case-insensitively),
    ///   unless two of them differ only in case, which is left for AWS to judge;
    /// - condition values are strings (`true` is `"true"`, `3` is `"3"`), as AWS compares them.
    ///
    /// Resources, principals and condition values keep their case: ARNs and object keys are
    /// case-sensitive.
    pub fn normalized(&self) -> PolicyDocument {
        let mut statements: Vec<Statement> = self.statements.iter().map(normalize_statement).collect();
        // `Statement` has no `Ord` (`serde_json::Number` has none); its canonical JSON orders totally.
        statements.sort_by_cached_key(|s| serde_json::to_string(s).unwrap_or_default());
        statements.dedup();
        PolicyDocument {
            version: Some(self.version.clone().unwrap_or_else(|| VERSION_2008_10_17.to_owned())),
            id: None,
            statements,
        }
    }
}

fn normalize_statement(s: &Statement) -> Statement {
    Statement {
        sid: None,
        effect: s.effect,
        principal: s.principal.as_ref().map(normalize_principal),
        not_principal: s.not_principal.as_ref().map(normalize_principal),
        action: s.action.as_deref().map(normalize_actions),
        not_action: s.not_action.as_deref().map(normalize_actions),
        resource: s.resource.as_deref().map(|r| set(r.iter().cloned())),
        not_resource: s.not_resource.as_deref().map(|r| set(r.iter().cloned())),
        // `"Condition": {}` tests nothing, like no condition at all.
        condition: s.condition.as_ref().filter(|c| !c.is_empty()).map(normalize_condition),
    }
}

/// Sorted and without duplicates.
fn set(values: impl Iterator<Item = String>) -> Vec<String> {
    values.collect::<BTreeSet<_>>().into_iter().collect()
}

fn normalize_actions(actions: &[String]) -> Vec<String> {
    set(actions.iter().map(|a| a.to_lowercase()))
}

fn normalize_principal(p: &Principal) -> Principal {
    let typed = match p {
        Principal::Any => BTreeMap::from([("AWS".to_owned(), vec!["*".to_owned()])]),
        Principal::Typed(map) => map
            .iter()
            .map(|(kind, ids)| {
                let ids = if kind == "AWS" {
                    set(ids.iter().map(|id| account_of_root(id)))
                } else {
                    set(ids.iter().cloned())
                };
                (kind.clone(), ids)
            })
            .collect(),
    };
    Principal::Typed(typed)
}

/// `arn:<partition>:iam::<account>:root` -> `<account>`; anything else unchanged.
fn account_of_root(id: &str) -> String {
    ROOT_ARN.captures(id).and_then(|c| c.get(1)).map_or(id, |m| m.as_str()).to_owned()
}

fn normalize_condition(c: &Condition) -> Condition {
    case_insensitive(c)
        .into_iter()
        .map(|(op, keys)| {
            let keys = case_insensitive(keys)
                .into_iter()
                .map(|(key, values)| {
                    let values = set(values.iter().map(ConditionValue::as_aws_string));
                    (key, values.into_iter().map(ConditionValue::String).collect())
                })
                .collect();
            (op, keys)
        })
        .collect()
}

/// Lower-cases the keys of `map`, except those that would then collide: merging
/// `{"k": "a", "K": "b"}` would turn an AND of two tests into one OR, so such keys keep their
/// spelling and the document compares unequal to any other spelling.
fn case_insensitive<V>(map: &BTreeMap<String, V>) -> BTreeMap<String, &V> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for k in map.keys() {
        *seen.entry(k.to_lowercase()).or_default() += 1;
    }
    map.iter()
        .map(|(k, v)| {
            let lower = k.to_lowercase();
            (if seen[&lower] == 1 { lower } else { k.clone() }, v)
        })
        .collect()
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
