//! The operator's own AWS client factory reaches the emulator over TLS: endpoint
//! override, region, trusted CA bundle and path-style S3.

mod common;

use std::path::PathBuf;

use common::{Ground, random_suffix};
use tfstate_operator::aws::{AwsClientFactory, FactoryError};

#[tokio::test]
async fn sts_get_caller_identity_returns_the_account() {
    let ground = Ground::load();
    let factory = AwsClientFactory::new(ground.aws_settings()).await.expect("factory");
    let clients = factory.clients("eu-west-1");
    let identity = clients.sts.get_caller_identity().send().await.expect("GetCallerIdentity over TLS");
    assert_eq!(identity.account(), Some(ground.var("TESTGROUND_ACCOUNT_ID")));
}

#[tokio::test]
async fn s3_is_addressed_path_style_in_the_requested_region() {
    let ground = Ground::load();
    let factory = AwsClientFactory::new(ground.aws_settings()).await.expect("factory");
    let clients = factory.clients("eu-central-1");
    assert_eq!(clients.region, "eu-central-1");
    // Virtual-hosted addressing would send this to <bucket>.127.0.0.1, which cannot resolve.
    let bucket = format!("tfstate-factory-{}", random_suffix());
    let cfg = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuCentral1)
        .build();
    clients.s3.create_bucket().bucket(&bucket).create_bucket_configuration(cfg).send().await.expect("CreateBucket");
    let location = clients.s3.get_bucket_location().bucket(&bucket).send().await.expect("GetBucketLocation");
    assert_eq!(location.location_constraint().map(|c| c.as_str()), Some("eu-central-1"));
    clients.s3.delete_bucket().bucket(&bucket).send().await.expect("DeleteBucket");
}

#[tokio::test]
async fn the_emulator_is_not_trusted_without_its_ca_bundle() {
    let ground = Ground::load();
    let mut settings = ground.aws_settings();
    settings.ca_bundle = None;
    let factory = AwsClientFactory::new(settings).await.expect("factory");
    let err = factory.clients("eu-west-1").sts.get_caller_identity().send().await;
    assert!(err.is_err(), "a self-signed endpoint must not be trusted by default");
}

#[tokio::test]
async fn unreadable_or_empty_ca_bundle_is_a_clear_error() {
    let ground = Ground::load();
    let mut settings = ground.aws_settings();
    settings.ca_bundle = Some(PathBuf::from("/nonexistent/ca.pem"));
    let err = AwsClientFactory::new(settings.clone()).await.unwrap_err();
    assert!(matches!(err, FactoryError::ReadCaBundle { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/ca.pem"));

    let empty = tempfile::NamedTempFile::new().unwrap();
    settings.ca_bundle = Some(empty.path().to_path_buf());
    let err = AwsClientFactory::new(settings).await.unwrap_err();
    assert!(matches!(err, FactoryError::EmptyCaBundle { .. }), "{err}");
}
