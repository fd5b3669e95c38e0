//! AWS access: one client factory, call accounting, and one thin module per service.

pub mod calls;
pub mod dynamodb;
pub mod error;
pub mod factory;
pub mod iam;
pub mod kms;
pub mod s3;

pub use calls::{CallCounter, CallTotals};
pub use error::{AwsError, AwsErrorKind};
pub use factory::{AwsClientFactory, AwsClients, AwsSettings, FactoryError};

/// AWS resource tags, sorted by key.
pub type Tags = std::collections::BTreeMap<String, String>;
