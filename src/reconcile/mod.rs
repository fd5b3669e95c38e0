//! The reconcile pipeline, one step per file:
//! validate (pure) -> desired (pure) -> observe -> plan (pure) -> apply -> publish -> status,
//! and outcome (pure): what the pass's result means for the object.

pub mod admit;
pub mod apply;
pub mod backend;
pub mod cleanup;
pub mod desired;
pub mod error;
pub mod locks;
pub mod observe;
pub mod outcome;
pub mod plan;
pub mod publish;
pub mod state_object;
pub mod status;
pub mod valid;
pub mod validate;
