//! The cluster-scoped `TerraformStatePolicy` API: what backends in the namespaces it selects
//! may name, trust and use. Resolved and enforced by [`crate::tenancy`]; documented for
//! cluster administrators in `docs/tenancy.md`.
//!
//! As for the backend, every field carries a doc comment (`kubectl explain`), and what an
//! OpenAPI schema can say is said here: the target API servers (v1.20) know no CEL rules.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The placeholder that patterns and ARNs of a policy may hold; replaced, literally, by the
/// name of the backend's namespace.
pub const NAMESPACE_PLACEHOLDER: &str = "{namespace}";

/// Schema patterns (Go RE2 and Rust `regex` alike): the characters of each kind of name, `*`,
/// and `{namespace}` as the only brace expression, so that a typo such as `{namspace}` is
/// refused when the policy is applied instead of silently never matching.
pub mod patterns {
    /// Bucket name pattern.
    pub const BUCKET: &str = r"^([a-z0-9.*-]|\{namespace\})+$";
    /// DynamoDB table name pattern.
    pub const TABLE: &str = r"^([a-zA-Z0-9_.*-]|\{namespace\})+$";
    /// IAM role name pattern.
    pub const ROLE: &str = r"^([a-zA-Z0-9+=,.@_*-]|\{namespace\})+$";
    /// KMS alias pattern.
    pub const KMS_ALIAS: &str = r"^alias/([a-zA-Z0-9/_*-]|\{namespace\})+$";
    /// CloudTrail trail name pattern.
    pub const TRAIL: &str = r"^([a-zA-Z0-9_.*-]|\{namespace\})+$";
    /// Kubernetes namespace pattern.
    pub const NAMESPACE: &str = r"^([a-z0-9*-]|\{namespace\})+$";
    /// ARN pattern (OIDC providers, KMS keys).
    pub const ARN: &str = r"^arn:([^{}]|\{namespace\})+$";
    /// A 12-digit AWS account id.
    pub const ACCOUNT_ID: &str = r"^[0-9]{12}$";
    /// An AWS Organizations id.
    pub const ORG_ID: &str = r"^o-[a-z0-9]{10,32}$";
    /// IAM managed policy ARN, `{namespace}` allowed in the name.
    pub const POLICY_ARN: &str = r"^arn:aws(-[a-z]+)*:iam::([0-9]{12}|aws):policy/([^{}]|\{namespace\})+$";
    /// IAM role ARN, `{namespace}` allowed in the name.
    pub const ROLE_ARN: &str = r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/([^{}]|\{namespace\})+$";
    /// IAM path: `/` or `/a/b/` (printable ASCII), `{namespace}` allowed.
    pub const IAM_PATH: &str = r"^/(([!-z|~]|\{namespace\})*/)?$";
    /// Label key (optional DNS-subdomain prefix and `/`, then a name).
    pub const LABEL_KEY: &str = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$";
}

/// What Terraform state backends in the selected namespaces may name, trust and use. Of the
/// policies whose `namespaceSelector` selects a namespace, the most specific one applies (the
/// one with the most selector requirements; on a tie, the first by name); without any, the
/// operator's built-in default applies. Violations are reported as `PolicyViolation` and
/// nothing is done in AWS. See docs/tenancy.md.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "tfstate.dev",
    version = "v1alpha1",
    kind = "TerraformStatePolicy",
    plural = "terraformstatepolicies",
    shortname = "tfsp",
    category = "terraform",
    doc = "Tenancy rules of tfstate-operator for the namespaces a selector picks: which names TerraformStateBackends may give their bucket, lock table, role and KMS alias, whom their role may trust, which existing KMS keys they may use, whether they may adopt existing resources, the permissions boundary and IAM path of their role, and the IAM role the operator assumes for them.",
    printcolumn = r#"{"name":"Operator-Role","type":"string","jsonPath":".spec.operatorRoleArn"}"#,
    printcolumn = r#"{"name":"Boundary","type":"string","jsonPath":".spec.role.permissionsBoundaryArn"}"#,
    printcolumn = r#"{"name":"Adoption","type":"boolean","jsonPath":".spec.allowAdoption"}"#,
    printcolumn = r#"{"name":"Org","type":"string","priority":1,"jsonPath":".spec.trust.principalOrgId"}"#,
    printcolumn = r#"{"name":"Selector","type":"string","priority":1,"jsonPath":".spec.namespaceSelector"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TerraformStatePolicySpec {
    /// The namespaces this policy applies to, by their labels. `{}` selects every namespace
    /// (and is the least specific selector). Every requirement must hold.
    pub namespace_selector: NamespaceSelector,

    /// Patterns the names of the AWS resources must match. An omitted list leaves that kind of
    /// name unrestricted; an empty list allows none (e.g. `lockTables: []` forces lock files).
    #[serde(default)]
    pub allowed_names: AllowedNames,

    /// Honour `adoptExisting: true` of backends: let them take over existing AWS resources that
    /// carry no ownership tags. When false (the default) such a backend is refused.
    #[serde(default)]
    pub allow_adoption: bool,

    /// Whom the runners' roles may trust.
    #[serde(default)]
    pub trust: TrustPolicy,

    /// Which KMS keys backends may use.
    #[serde(default)]
    pub encryption: EncryptionPolicy,

    /// What every runners' role gets, whatever its backend says.
    #[serde(default)]
    pub role: RolePolicy,

    /// IAM role the operator assumes to create and manage the backends of these namespaces
    /// (hub and spoke: the backends live in that role's account). `{namespace}` is replaced by
    /// the namespace. Omitted: the operator's own credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = patterns::ROLE_ARN))]
    pub operator_role_arn: Option<String>,
}

/// A label selector over namespaces, as Kubernetes' `LabelSelector`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    /// Labels a namespace must carry with exactly these values. Each entry is one requirement.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,

    /// Further requirements on the namespace's labels. Each entry is one requirement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelRequirement>,
}

/// One requirement on a label, as Kubernetes' `LabelSelectorRequirement`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelRequirement {
    /// The label key.
    #[schemars(length(min = 1, max = 317), regex(pattern = patterns::LABEL_KEY))]
    pub key: String,

    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: LabelOperator,

    /// The values, for `In` and `NotIn` (at least one); empty for `Exists` and `DoesNotExist`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// How a [`LabelRequirement`] compares.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum LabelOperator {
    /// The label is set to one of the values.
    In,
    /// The label is not set, or set to none of the values.
    NotIn,
    /// The label is set, to any value.
    Exists,
    /// The label is not set.
    DoesNotExist,
}

/// Patterns for resource names: `*` matches any run of characters (also none) and is the only
/// wildcard; `{namespace}` is the namespace's name, literally; a name must match a whole
/// pattern. Follow `{namespace}` with a character that namespace names cannot hold (`.` `_`
/// `/`) or end the pattern with it: with `-` after it, namespace `a` may take the names that
/// `a-b` would use (docs/tenancy.md).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedNames {
    /// Patterns for `spec.bucket.name`, e.g. `acme-tfstate-{namespace}-*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(length(min = 1, max = 256), regex(pattern = patterns::BUCKET)))]
    pub buckets: Option<Vec<String>>,

    /// Patterns for the lock table's name (`spec.locking.table.name` or its default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(length(min = 1, max = 512), regex(pattern = patterns::TABLE)))]
    pub lock_tables: Option<Vec<String>>,

    /// Patterns for the runners' role name (`spec.access.roleName` or its default). IAM role
    /// names are unique regardless of case; these patterns compare case-sensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(length(min = 1, max = 256), regex(pattern = patterns::ROLE)))]
    pub roles: Option<Vec<String>>,

    /// Patterns for the alias of a key the operator creates
    /// (`spec.encryption.kmsKey.create.alias` or its default), e.g. `alias/tfstate/{namespace}/*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(length(min = 7, max = 512), regex(pattern = patterns::KMS_ALIAS)))]
    pub kms_aliases: Option<Vec<String>>,

    /// Patterns for the audit trail's name (`spec.audit.cloudTrail.trailName` or its default
    /// `tfstate-<namespace>.<name>`). Unlike the other lists, omitting it does not lift the
    /// restriction: a trail is an account-wide, billed resource, so an omitted list allows
    /// only `tfstate-{namespace}.*` (the derived names of the namespace's own backends); `[]`
    /// allows no audit trail at all. Without any policy (the built-in default) every name is
    /// allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(length(min = 1, max = 256), regex(pattern = patterns::TRAIL)))]
    pub trails: Option<Vec<String>>,
}

/// Whom the runners' roles may trust.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustPolicy {
    /// Namespaces (patterns, `*` and `{namespace}`) whose service accounts may be trusted.
    /// Omitted: `["{namespace}"]`, the backend's own namespace only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(length(min = 1, max = 256), regex(pattern = patterns::NAMESPACE)))]
    pub allowed_service_account_namespaces: Option<Vec<String>>,

    /// ARN patterns of the IAM OIDC providers (IRSA) that may be trusted. Omitted: any OIDC
    /// provider of the account the backend lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(length(min = 5, max = 2048), regex(pattern = patterns::ARN)))]
    pub allowed_oidc_provider_arns: Option<Vec<String>>,

    /// Accounts whose principals may be named in `awsPrincipals` and as KMS key admins.
    /// Omitted: only the account the backend lives in, or any account when `principalOrgId`
    /// is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(regex(pattern = patterns::ACCOUNT_ID)))]
    pub allowed_aws_account_ids: Option<Vec<String>>,

    /// An AWS Organizations id: the statements trusting `awsPrincipals` (and naming key
    /// admins) then carry the condition `aws:PrincipalOrgID` equal to it, so that only
    /// principals of that organisation can use them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = patterns::ORG_ID))]
    pub principal_org_id: Option<String>,
}

/// Which KMS keys backends may use.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionPolicy {
    /// ARN patterns of the existing keys that `spec.encryption.kmsKey.existingKeyArn` may
    /// name, e.g. `arn:aws:kms:*:123456789012:key/*`. Omitted or empty: no existing key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 5, max = 2048), regex(pattern = patterns::ARN)))]
    pub allowed_existing_key_arns: Vec<String>,
}

/// What every runners' role gets.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolePolicy {
    /// Permissions boundary of every runners' role (`{namespace}` replaced). A backend may
    /// omit `spec.access.permissionsBoundaryArn` or repeat this ARN, nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = patterns::POLICY_ARN))]
    pub permissions_boundary_arn: Option<String>,

    /// IAM path of every runners' role, e.g. `/tfstate/{namespace}/` (`{namespace}` replaced).
    /// Omitted: `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 400), regex(pattern = patterns::IAM_PATH))]
    pub iam_path: Option<String>,
}
