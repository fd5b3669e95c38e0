//! The reconcile pipeline, one step per file:
//! validate (pure) -> desired (pure) -> observe -> plan (pure) -> apply -> publish -> status,
//! outcome (pure): what the pass's result means for the object, and notes (pure): its
//! Events, folded into one per type and reason.

pub mod admit;
pub mod apply;
pub mod backend;
pub mod cleanup;
pub mod desired;
pub mod error;
pub mod locks;
pub mod notes;
pub mod observe;
pub mod outcome;
pub mod plan;
pub mod publish;
pub mod state_object;
pub mod status;
pub mod valid;
pub mod validate;
