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
#[error("{service}:{operation}{} failed: {code}: {message}", on_resource(resource))]
pub struct AwsError {
    /// Service, e.g. `s3`.
    pub service: &'static str,
    /// Operation, e.g. `PutBucketPolicy`.
    pub operation: &'static str,
    /// What the call was about (a bucket, key, role or table), where the caller said so:
    /// an AccessDenied then names both the action and the resource.
    pub resource: Option<String>,
    /// AWS error code (or a transport description).
    pub code: String,
    /// AWS error message.
    pub message: String,
    /// Classification.
    pub kind: AwsErrorKind,
}

fn on_resource(resource: &Option<String>) -> String {
    resource.as_deref().map(|r| format!(" on {r}")).unwrap_or_default()
}

impl AwsError {
    /// The same error, naming the resource the call was about (kept if already named).
    pub fn on(mut self, resource: impl Into<String>) -> Self {
        self.resource.get_or_insert_with(|| resource.into());
        self
    }

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
    "ReplicationConfigurationNotFoundError",
    "NotFound",
    "TrailNotFoundException",
];
const ACCESS_DENIED: &[&str] = &["AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Forbidden"];
/// A conflicting request, or a resource that exists although a read just said it did not
/// (IAM and KMS are eventually consistent): the next pass reads again and decides.
const CONFLICT: &[&str] = &[
    "OperationAborted",
    "EntityAlreadyExists",
    "AlreadyExistsException",
    "BucketAlreadyOwnedByYou",
    "ResourceInUseException",
    "ConcurrentModification",
    "ConcurrentModificationException",
    "ConflictException",
    "TrailAlreadyExistsException",
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
    // KMS refuses a key policy naming a principal it cannot resolve yet: an IAM role
    // created seconds ago (propagation; AWS documents retrying). IAM's own
    // `MalformedPolicyDocument` (no suffix) is a real error and stays `Other`.
    "MalformedPolicyDocumentException",
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
            AwsError { resource: None, service, operation, kind: classify(&code, status), code, message }
        }
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => AwsError {
            resource: None,
            service,
            operation,
            code: status.map_or_else(|| "UnhandledResponse".into(), |s| format!("HTTP{s}")),
            message: detail,
            kind: classify("", status),
        },
        _ => AwsError {
            resource: None,
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
    AwsError {
        resource: None,
        service,
        operation,
        code: "BuildError".into(),
        message: e.to_string(),
        kind: AwsErrorKind::Other,
    }
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
        assert_eq!(classify("MalformedPolicyDocument", Some(400)), AwsErrorKind::Other);
        assert_eq!(classify("MalformedPolicyDocumentException", Some(400)), AwsErrorKind::Transient);
        assert_eq!(classify("OperationAborted", Some(409)), AwsErrorKind::Conflict);
    }

    #[test]
    fn an_error_names_action_and_resource() {
        let e = AwsError {
            resource: None,
            service: "s3",
            operation: "GetBucketTagging",
            code: "AccessDenied".into(),
            message: "Access Denied".into(),
            kind: AwsErrorKind::AccessDenied,
        };
        assert_eq!(e.to_string(), "s3:GetBucketTagging failed: AccessDenied: Access Denied");
        let e = e.on("arn:aws:s3:::b").on("ignored");
        assert_eq!(e.to_string(), "s3:GetBucketTagging on arn:aws:s3:::b failed: AccessDenied: Access Denied");
    }
}
