//! AWS access: one client factory, and (with the reconciler) one thin module per service.

pub mod factory;

pub use factory::{AwsClientFactory, AwsClients, AwsSettings, FactoryError};
