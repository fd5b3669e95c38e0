//! Typed IAM, key and bucket policy documents (being written).
