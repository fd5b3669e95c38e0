//! The reconcile pipeline, one step per file:
//! validate (pure) -> desired (pure) -> observe -> plan (pure) -> apply -> publish -> status.

pub mod validate;
