//! AWS access: one client factory, call accounting, and one thin module per service.

pub mod calls;
pub mod cloudtrail;
pub mod dynamodb;
pub mod error;
pub mod factory;
pub mod iam;
pub mod kms;
pub mod ratelimit;
pub mod s3;

pub use calls::{CallCounter, CallTotals};
pub use error::{AwsError, AwsErrorKind};
pub use factory::{
    AssumeAs, AwsClientFactory, AwsClients, AwsSettings, CallLimits, FactoryError, credentials_failure, session_name,
};
pub use ratelimit::RateLimits;

/// What a conditional delete did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionalDelete {
    /// The item or object was exactly as read, and is gone.
    Deleted,
    /// It changed (or went) since it was read: nothing was deleted.
    Changed,
}

/// AWS resource tags, sorted by key.
pub type Tags = std::collections::BTreeMap<String, String>;

/// What to tag and untag to turn a resource's `current` tags into `desired`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagDiff {
    /// Tags to add or overwrite.
    pub set: Tags,
    /// Keys to remove (never AWS's own `aws:` tags, which cannot be removed).
    pub remove: Vec<String>,
}

/// The tag writes that make `current` equal `desired` (but for `aws:` tags).
pub fn tag_diff(current: &Tags, desired: &Tags) -> TagDiff {
    TagDiff {
        set: desired.iter().filter(|(k, v)| current.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect(),
        remove: current.keys().filter(|k| !desired.contains_key(*k) && !k.starts_with("aws:")).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_diff_sets_changes_and_removes_extras_but_not_aws_tags() {
        let current = Tags::from([("a".into(), "1".into()), ("b".into(), "2".into()), ("aws:cf".into(), "x".into())]);
        let desired = Tags::from([("a".into(), "1".into()), ("c".into(), "3".into())]);
        let d = tag_diff(&current, &desired);
        assert_eq!(d.set, Tags::from([("c".into(), "3".into())]));
        assert_eq!(d.remove, vec!["b".to_string()]);
        assert_eq!(tag_diff(&desired, &desired), TagDiff::default());
    }
}
