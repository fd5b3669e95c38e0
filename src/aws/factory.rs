//! Builds the AWS SDK clients the operator uses, from the operator's flags: credentials
//! from the SDK's default chain (IRSA, Pod Identity, environment, profile), an optional
//! endpoint override (S3-compatible stores, the local emulator) with path-style S3, and an
//! optional CA bundle to trust for that endpoint.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_types::region::Region;

use super::calls::{CallCounter, CountingInterceptor};

/// The operator's AWS settings (`--aws-endpoint-url`, `--aws-ca-bundle`, `--default-region`).
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    /// Send every AWS call to this endpoint instead of AWS's own (e.g. an S3-compatible
    /// store or an emulator). S3 is then addressed path-style.
    pub endpoint_url: Option<String>,
    /// PEM file of the CA certificates to trust instead of the system's (as the standard
    /// `AWS_CA_BUNDLE` of the other AWS SDKs and the CLI).
    pub ca_bundle: Option<PathBuf>,
    /// Region of backends whose spec names none.
    pub default_region: Option<String>,
}

/// Why the AWS clients could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FactoryError {
    /// The CA bundle file could not be read.
    #[error("cannot read the AWS CA bundle {path}: {source}")]
    ReadCaBundle {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The CA bundle holds no certificate.
    #[error("the AWS CA bundle {path} holds no PEM certificate")]
    EmptyCaBundle {
        /// The file.
        path: PathBuf,
    },
    /// The TLS configuration was refused.
    #[error("invalid TLS configuration for AWS: {0}")]
    Tls(#[from] aws_smithy_http_client::HttpClientError),
}

/// The clients of one region.
#[derive(Clone, Debug)]
pub struct AwsClients {
    /// The region these clients call.
    pub region: String,
    /// S3.
    pub s3: aws_sdk_s3::Client,
    /// KMS.
    pub kms: aws_sdk_kms::Client,
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// IAM (global, but signed for this region's partition).
    pub iam: aws_sdk_iam::Client,
    /// STS.
    pub sts: aws_sdk_sts::Client,
}

/// Builds and caches [`AwsClients`] per region. Credentials and the HTTP client (with its
/// connection pool and trust store) are shared by every region.
#[derive(Debug)]
pub struct AwsClientFactory {
    base: SdkConfig,
    settings: AwsSettings,
    calls: Arc<CallCounter>,
    by_region: Mutex<HashMap<String, AwsClients>>,
}

impl AwsClientFactory {
    /// Loads credentials from the SDK's default chain and prepares the HTTP client.
    pub async fn new(settings: AwsSettings) -> Result<Self, FactoryError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(path) = &settings.ca_bundle {
            loader = loader.http_client(https_client_trusting(path).await?);
        }
        if let Some(region) = &settings.default_region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        let base = loader.load().await;
        Ok(Self { base, settings, calls: CallCounter::new(), by_region: Mutex::new(HashMap::new()) })
    }

    /// The counters of every call made by the clients of this factory.
    pub fn calls(&self) -> &Arc<CallCounter> {
        &self.calls
    }

    /// The settings this factory was built from.
    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    /// The clients for `region`, built once and then reused.
    pub fn clients(&self, region: &str) -> AwsClients {
        // A poisoned lock only means another thread panicked while inserting; the map is
        // still usable.
        let mut cache = self.by_region.lock().unwrap_or_else(|e| e.into_inner());
        cache.entry(region.to_string()).or_insert_with(|| self.build(region)).clone()
    }

    fn build(&self, region: &str) -> AwsClients {
        let conf = self.base.to_builder().region(Region::new(region.to_string())).build();
        let count = CountingInterceptor(self.calls.clone());
        let s3_conf = aws_sdk_s3::config::Builder::from(&conf)
            // Custom endpoints rarely resolve virtual-hosted bucket names; AWS itself
            // accepts both styles.
            .force_path_style(self.settings.endpoint_url.is_some())
            .interceptor(count.clone())
            .build();
        AwsClients {
            region: region.to_string(),
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            kms: aws_sdk_kms::Client::from_conf(
                aws_sdk_kms::config::Builder::from(&conf).interceptor(count.clone()).build(),
            ),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&conf).interceptor(count.clone()).build(),
            ),
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(&conf).interceptor(count.clone()).build(),
            ),
            sts: aws_sdk_sts::Client::from_conf(aws_sdk_sts::config::Builder::from(&conf).interceptor(count).build()),
        }
    }
}

/// An HTTPS client that trusts exactly the certificates of the PEM file at `path`.
async fn https_client_trusting(
    path: &PathBuf,
) -> Result<aws_smithy_runtime_api::client::http::SharedHttpClient, FactoryError> {
    let pem =
        tokio::fs::read(path).await.map_err(|source| FactoryError::ReadCaBundle { path: path.clone(), source })?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(FactoryError::EmptyCaBundle { path: path.clone() });
    }
    let trust = TrustStore::empty().with_native_roots(false).with_pem_certificate(pem);
    let tls = TlsContext::builder().with_trust_store(trust).build()?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .tls_context(tls)
        .build_https())
}
