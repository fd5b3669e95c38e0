//! Regular expressions shared by the CRD schema (validated by the API server, Go RE2
//! syntax) and the validate step (Rust `regex`): the subset both dialects agree on.

/// AWS region, e.g. `eu-west-1`, `us-gov-west-1`, `cn-north-1`.
pub const REGION: &str = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$";
/// S3 object key or key prefix as Terraform accepts it: no leading or trailing `/`.
pub const OBJECT_KEY: &str = r"^[^/](.*[^/])?$";
/// S3 bucket name characters; lengths are separate constraints.
pub const BUCKET_NAME: &str = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$";
/// KMS key ARN (not an alias ARN: bucket policies must name the key itself).
pub const KMS_KEY_ARN: &str = r"^arn:aws(-[a-z]+)*:kms:[a-z0-9-]+:[0-9]{12}:key/[a-zA-Z0-9-]+$";
/// KMS alias name.
pub const KMS_ALIAS: &str = r"^alias/[a-zA-Z0-9/_-]+$";
/// DynamoDB table name characters.
pub const TABLE_NAME: &str = r"^[a-zA-Z0-9_.-]+$";
/// IAM role name characters.
pub const ROLE_NAME: &str = r"^[a-zA-Z0-9+=,.@_-]+$";
/// IAM managed policy ARN (customer or AWS managed).
pub const POLICY_ARN: &str = r"^arn:aws(-[a-z]+)*:iam::([0-9]{12}|aws):policy/.+$";
/// IAM OIDC identity provider ARN.
pub const OIDC_PROVIDER_ARN: &str = r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:oidc-provider/.+$";
/// IAM principal ARN usable in a policy's `Principal.AWS`: account root, user or role.
pub const PRINCIPAL_ARN: &str = r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(root|user/.+|role/.+)$";
/// RFC 1123 DNS label (Kubernetes namespace names).
pub const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// RFC 1123 DNS subdomain (most Kubernetes object names).
pub const DNS_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
