//! Typed IAM, KMS key and S3 bucket policy documents, their semantic equality, and the four
//! policies of a backend.
//!
//! Policies are built as typed [`PolicyDocument`]s, sent to AWS with
//! [`PolicyDocument::to_json`], read back with [`PolicyDocument::parse`] (which also takes the
//! URL-encoded form IAM returns) and compared with [`PolicyDocument::semantically_eq`], never
//! as strings: AWS reorders, re-spells and re-encodes what it stores, and a text comparison
//! would rewrite a converged backend on every resync.
//!
//! The builders are pure functions of their inputs:
//! - [`bucket_policy`]: TLS only, uploads must use the backend's encryption;
//! - [`key_policy`]: account root, operator and extra administrators, backend role use;
//! - [`trust_policy`]: IRSA, EKS Pod Identity and IAM principals;
//! - [`runner_policy`]: the role's inline policy, Terraform's documented minimum;
//! - the replica's ([`replication_role_policy`] and friends): see `replication.rs`.

mod bucket;
mod document;
mod key;
mod normalize;
mod replication;
mod runner;
mod trust;
mod wire;

#[cfg(test)]
mod test_support;

pub use bucket::{BucketPolicyEncryption, BucketPolicyInput, bucket_policy};
pub use document::{
    Condition, ConditionValue, Effect, PolicyDocument, PolicyError, Principal, Statement, VERSION_2008_10_17,
    VERSION_2012_10_17,
};
pub use key::{KeyPolicyInput, key_policy, principal_arn_for_policy};
pub use replication::{
    REPLICA_CONFIG_WRITES, REPLICA_OBJECT_WRITES, ReplicationPolicyInput, S3_SERVICE, replica_bucket_policy,
    replica_key_policy, replication_role_policy, replication_trust_policy,
};
pub use runner::{RunnerPolicyInput, runner_policy};
pub use trust::{TrustPolicyInput, trust_policy};
