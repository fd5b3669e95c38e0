//! The reconcile's error: each variant maps to a condition reason, an Event reason and
//! a metric label, and says whether retrying can help.

use crate::api::Reason;
use crate::aws::{AwsError, AwsErrorKind, FactoryError};
use crate::render::RenderError;

use super::outcome::FailureClass;
use super::publish::PublishError;

/// Why a reconcile did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// An AWS call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// A Kubernetes call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Publishing the ConfigMap failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Rendering the backend configuration failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The AWS clients could not be built.
    #[error(transparent)]
    Factory(#[from] FactoryError),
    /// The cluster policy of the namespace cannot be told yet.
    #[error(transparent)]
    Admission(#[from] crate::admission::AdmissionError),
    /// The pass did not finish within `--reconcile-timeout` (a call hung, or AWS is very
    /// slow); it is retried with back-off.
    #[error("the reconcile did not finish within {0:?} (an AWS call hung or AWS is very slow); it is retried")]
    Timeout(std::time::Duration),
    /// The object lacks metadata the API server always sets.
    #[error("the object has no {0}")]
    MissingMetadata(&'static str),
    /// Deletion waits: something could make remaining state unreadable (the message says
    /// what was found and what to do).
    #[error("{0}")]
    DeletionBlocked(String),
}

impl ReconcileError {
    /// The condition and Event reason.
    pub fn reason(&self) -> Reason {
        match self {
            ReconcileError::Aws(e) if e.kind == AwsErrorKind::AccessDenied => Reason::AccessDenied,
            ReconcileError::Aws(_) | ReconcileError::Factory(_) | ReconcileError::Timeout(_) => Reason::AwsError,
            ReconcileError::Publish(PublishError::NotOurs(_)) => Reason::Conflict,
            ReconcileError::Kube(_)
            | ReconcileError::Publish(_)
            | ReconcileError::MissingMetadata(_)
            | ReconcileError::Admission(_) => Reason::KubernetesError,
            ReconcileError::Render(_) => Reason::InvalidSpec,
            ReconcileError::DeletionBlocked(_) => Reason::DeletionBlocked,
        }
    }

    /// How retrying is paced: by what failed (see [`super::outcome::decide`]).
    pub fn class(&self) -> FailureClass {
        match self {
            ReconcileError::Aws(e) => match e.kind {
                AwsErrorKind::AccessDenied => FailureClass::AccessDenied,
                // Not found during a write: AWS not showing yet what was just created.
                AwsErrorKind::Transient | AwsErrorKind::Conflict | AwsErrorKind::NotFound => FailureClass::Transient,
                AwsErrorKind::Other => FailureClass::Deterministic,
            },
            // A CA bundle or TLS setting that cannot be used stays so until the operator is
            // reconfigured.
            ReconcileError::Render(_) | ReconcileError::MissingMetadata(_) | ReconcileError::Factory(_) => {
                FailureClass::Deterministic
            }
            ReconcileError::DeletionBlocked(_) => FailureClass::Waiting,
            ReconcileError::Kube(_)
            | ReconcileError::Publish(_)
            | ReconcileError::Admission(_)
            | ReconcileError::Timeout(_) => FailureClass::Transient,
        }
    }

    /// The metric label (the reason, in snake case).
    pub fn metric_label(&self) -> &'static str {
        match self.reason() {
            Reason::AccessDenied => "access_denied",
            Reason::AwsError => "aws_error",
            Reason::Conflict => "conflict",
            Reason::InvalidSpec => "invalid_spec",
            Reason::DeletionBlocked => "deletion_blocked",
            _ => "kubernetes_error",
        }
    }
}
