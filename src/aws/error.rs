//! One error type for every AWS call: which call failed, and a classification that
//! decides the condition reason and whether retrying can help.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What kind of failure an AWS call had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// The resource does not exist.
    NotFound,
    /// The caller lacks a permission (a permanent error until IAM changes).
    AccessDenied,
    /// A conflicting request or state; usually transient.
    Conflict,
    /// Throttling, 5xx, network: retry with back-off.
    Transient,
    /// Anything else reported by AWS.
    Other,
}

/// A failed AWS call, with enough context to act on it.
#[derive(Debug, thiserror::Error)]
#[error("{service} {operation} failed: {code}: {message}")]
pub struct AwsError {
    /// Service, e.g. `s3`.
    pub service: &'static str,
    /// Operation, e.g. `PutBucketPolicy`.
    pub operation: &'static str,
    /// AWS error code (or a transport description).
    pub code: String,
    /// AWS error message.
    pub message: String,
    /// Classification.
    pub kind: AwsErrorKind,
}

impl AwsError {
    /// Whether the resource was not found.
    pub fn is_not_found(&self) -> bool {
        self.kind == AwsErrorKind::NotFound
    }
}

const NOT_FOUND: &[&str] = &[
    "NoSuchBucket",
    "NotFoundException",
    "NoSuchEntity",
    "ResourceNotFoundException",
    "NoSuchBucketPolicy",
    "NoSuchTagSet",
    "NoSuchTagSetError",
    "ServerSideEncryptionConfigurationNotFoundError",
    "NoSuchPublicAccessBlockConfiguration",
    "OwnershipControlsNotFoundError",
    "NoSuchLifecycleConfiguration",
    "NotFound",
];
const ACCESS_DENIED: &[&str] = &["AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Forbidden"];
const CONFLICT: &[&str] = &[
    "OperationAborted",
    "ResourceInUseException",
    "ConcurrentModification",
    "ConcurrentModificationException",
    "ConflictException",
];
const TRANSIENT: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "KMSInternalException",
    "LimitExceededException",
];

/// Classifies an AWS error code.
pub fn classify(code: &str, http_status: Option<u16>) -> AwsErrorKind {
    if NOT_FOUND.contains(&code) || (code.is_empty() && http_status == Some(404)) {
        AwsErrorKind::NotFound
    } else if ACCESS_DENIED.contains(&code) || (code.is_empty() && http_status == Some(403)) {
        AwsErrorKind::AccessDenied
    } else if CONFLICT.contains(&code) {
        AwsErrorKind::Conflict
    } else if TRANSIENT.contains(&code) || http_status.is_some_and(|s| s >= 500) || http_status == Some(429) {
        AwsErrorKind::Transient
    } else {
        AwsErrorKind::Other
    }
}

/// Converts an SDK error into an [`AwsError`] for `service`/`operation`.
pub fn from_sdk<E>(service: &'static str, operation: &'static str, err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    // The full chain, for errors that carry no AWS code (unparsable responses, transport).
    let detail = format!("{}", aws_smithy_types::error::display::DisplayErrorContext(&err));
    match err {
        SdkError::ServiceError(service_err) if service_err.err().code().is_some() => {
            let e = service_err.err();
            let code = e.code().unwrap_or_default().to_string();
            let message = e.message().unwrap_or_default().to_string();
            AwsError { service, operation, kind: classify(&code, status), code, message }
        }
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => AwsError {
            service,
            operation,
            code: status.map_or_else(|| "UnhandledResponse".into(), |s| format!("HTTP{s}")),
            message: detail,
            kind: classify("", status),
        },
        _ => AwsError {
            service,
            operation,
            code: "TransportError".into(),
            message: detail,
            kind: AwsErrorKind::Transient,
        },
    }
}

/// Extension to turn SDK results into [`AwsError`] results with context.
pub trait Context<T> {
    /// Attaches the service and operation.
    fn ctx(self, service: &'static str, operation: &'static str) -> Result<T, AwsError>;
}

impl<T, E> Context<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    fn ctx(self, service: &'static str, operation: &'static str) -> Result<T, AwsError> {
        self.map_err(|e| from_sdk(service, operation, e))
    }
}

/// A request that could not even be built (a required field missing): a bug, reported
/// as an error rather than a panic.
pub fn build_error(
    service: &'static str,
    operation: &'static str,
    e: aws_smithy_types::error::operation::BuildError,
) -> AwsError {
    AwsError { service, operation, code: "BuildError".into(), message: e.to_string(), kind: AwsErrorKind::Other }
}

/// Turns a not-found error into `None`.
pub fn optional<T>(r: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify("NoSuchBucket", Some(404)), AwsErrorKind::NotFound);
        assert_eq!(classify("", Some(404)), AwsErrorKind::NotFound);
        assert_eq!(classify("AccessDenied", Some(403)), AwsErrorKind::AccessDenied);
        assert_eq!(classify("ThrottlingException", Some(400)), AwsErrorKind::Transient);
        assert_eq!(classify("Weird", Some(503)), AwsErrorKind::Transient);
        assert_eq!(classify("MalformedPolicy", Some(400)), AwsErrorKind::Other);
    }
}
