//! Rendering of the backend configuration (being written).
