//! Regular expressions shared by the CRD schema (validated by the API server, Go RE2
//! syntax) and the validate step (Rust `regex`): the subset both dialects agree on.
//!
//! Values that the operator writes into a policy document (the runner role's inline and
//! trust policies, the key policy, the bucket policy) must be literal: IAM reads `*` and `?`
//! as wildcards in `Resource` ARNs and `StringLike` conditions, and `${...}` as a policy
//! variable in both, so `stateKey: "*"` would grant the whole bucket. Every pattern of such
//! a value allows an explicit set of characters without `*`, `?`, `$`, control characters
//! and non-ASCII characters (IAM refuses policy text above U+00FF); [`non_literal`] names
//! the offending character for the validate step's messages.

/// AWS region, e.g. `eu-west-1`, `us-gov-west-1`, `cn-north-1`.
pub const REGION: &str = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$";
/// The characters of an object key besides `/`: those S3 calls safe or usable with special
/// handling, except the wildcards `*` and `?` and the `$` of policy variables.
macro_rules! key_chars {
    () => {
        "a-zA-Z0-9!_.'()&@=;:+ ,-"
    };
}

/// S3 object key or key prefix as Terraform accepts it (no leading or trailing `/`, no `//`):
/// non-empty segments of letters, digits, spaces and `!_.'()&@=;:+,-`, separated by `/`.
pub const OBJECT_KEY: &str = concat!("^[", key_chars!(), "]+(/[", key_chars!(), "]+)*$");
/// One character of [`OBJECT_KEY`], `/` included.
pub const OBJECT_KEY_CHAR: &str = concat!("^[", key_chars!(), "/]$");
/// The characters of [`OBJECT_KEY`], for messages.
pub const OBJECT_KEY_CHARS: &str = "letters, digits, spaces and ! _ . ' ( ) & @ = ; : + , - /";
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
/// IAM managed policy ARN (customer or AWS managed), with an optional path. Path segments
/// use the characters of IAM names (IAM itself would allow `*` and `?` in a path).
pub const POLICY_ARN: &str =
    r"^arn:aws(-[a-z]+)*:iam::([0-9]{12}|aws):policy/([a-zA-Z0-9+=,.@_-]+/)*[a-zA-Z0-9+=,.@_-]+$";
/// IAM OIDC identity provider ARN: the issuer's host name and optional path, without a port,
/// a query or a scheme (`oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE`).
pub const OIDC_PROVIDER_ARN: &str =
    r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:oidc-provider/[a-zA-Z0-9.-]+(/[a-zA-Z0-9._~-]+)*/?$";
/// IAM principal ARN usable in a policy's `Principal.AWS`: account root, user or role (with an
/// optional path; segments use the characters of IAM names).
pub const PRINCIPAL_ARN: &str =
    r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(root|(user|role)/([a-zA-Z0-9+=,.@_-]+/)*[a-zA-Z0-9+=,.@_-]+)$";
/// CloudTrail trail name characters: letters, digits, `.`, `_`, `-`, starting and ending with
/// a letter or digit (no two of `._-` in a row, not an IP address: the validate step).
pub const TRAIL_NAME: &str = r"^[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?$";

/// A duration of hours, minutes and seconds, e.g. `2h`, `1h30m`, `45s`.
pub const DURATION: &str = r"^([0-9]{1,6}(h|m|s))+$";
/// RFC 1123 DNS label (Kubernetes namespace names).
pub const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// RFC 1123 DNS subdomain (most Kubernetes object names).
pub const DNS_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// The first character of `value` that IAM would not take literally in a policy document, or
/// would refuse there, with the reason: `*` and `?` (wildcards), `$` (policy variables
/// `${...}`), control characters and non-ASCII characters.
pub fn non_literal(value: &str) -> Option<(char, &'static str)> {
    value.chars().find_map(|c| {
        let why = match c {
            '*' => "which IAM reads as a wildcard matching any characters",
            '?' => "which IAM reads as a wildcard matching any one character",
            '$' => "which IAM reads as the start of a policy variable (\"${...}\")",
            c if c.is_control() => "a control character",
            c if !c.is_ascii() => "a non-ASCII character (IAM refuses most of them in policies)",
            _ => return None,
        };
        Some((c, why))
    })
}
