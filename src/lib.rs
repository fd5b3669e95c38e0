//! tfstate-operator: turns one `TerraformStateBackend` object into a complete, hardened
//! Terraform state backend in AWS (encrypted versioned S3 bucket, KMS key, DynamoDB lock
//! table, least-privilege IAM role) and publishes the `backend "s3"` configuration.
//!
//! The binary (`src/main.rs`) is a thin CLI over this library.

pub mod admission;
pub mod api;
pub mod aws;
pub mod cache;
pub mod claims;
pub mod config_maps;
pub mod context;
pub mod controller;
pub mod failpoint;
pub mod health;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod offline;
pub mod policy;
pub mod reconcile;
pub mod render;
pub mod slots;
pub mod state;
pub mod telemetry;
pub mod tenancy;
