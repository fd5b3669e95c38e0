//! The policy of a KMS key the operator creates for a backend.
//!
//! Every principal but the account root gets an explicit list of actions, never a wildcard:
//! the operator exactly what it calls, extra administrators from the spec administration that
//! cannot be turned into use, the backend role use through S3 and DynamoDB only.

use super::document::{Effect, PolicyDocument, Principal, Statement};

/// What the key policy depends on.
#[derive(Clone, Copy, Debug)]
pub struct KeyPolicyInput<'a> {
    /// AWS partition, e.g. `aws`.
    pub partition: &'a str,
    /// The account that owns the key.
    pub account_id: &'a str,
    /// The key's region (the backend's): the services that may use the key are named in it.
    pub region: &'a str,
    /// The operator's own principal, as [`principal_arn_for_policy`] returns it.
    pub operator_arn: &'a str,
    /// The backend role, which Terraform runners assume.
    pub role_arn: &'a str,
    /// Extra key administrators from the spec (`encryption.kmsKey.create.admins`).
    pub admins: &'a [String],
    /// When set (the cluster policy's `trust.principalOrgId`), extra admins act only as
    /// principals of this AWS Organization.
    pub principal_org_id: Option<&'a str>,
    /// OpenTofu's client-side state encryption (`output.openTofuEncryption`): the backend
    /// role may also use the key directly, as OpenTofu's `aws_kms` key provider does.
    pub open_tofu_encryption: bool,
}

/// What the operator calls on a key it manages (`src/aws/kms.rs`), and nothing else.
/// `PutKeyPolicy` converges this very policy (KMS also refuses a new policy that does not let
/// its caller put the policy again). `CreateKey` and `ListKeys` are not authorised by a key's
/// policy; DynamoDB's grant is [`OPERATOR_GRANT_ACTION`].
const OPERATOR_ACTIONS: [&str; 14] = [
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:PutKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:EnableKeyRotation",
    "kms:ListResourceTags",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:CreateAlias",
    "kms:UpdateAlias",
    "kms:DeleteAlias",
    "kms:EnableKey",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
];

/// The operator's one grant action: DynamoDB creates a grant for itself, with the operator's
/// permissions, to encrypt the lock table with the key. Only grants for AWS resources
/// (`kms:GrantIsForAWSResource`): never one the operator could hand to a principal.
const OPERATOR_GRANT_ACTION: &str = "kms:CreateGrant";

/// What extra administrators from the spec may do: read the key, turn it and its rotation
/// on and off, revoke grants, schedule or cancel its deletion. Deliberately not:
/// - `kms:PutKeyPolicy`: rewriting the policy grants anything, use above all;
/// - `kms:CreateGrant`: a grant gives use to any principal, the administrator included;
/// - `kms:TagResource`, `kms:UntagResource` and the alias actions: with ABAC, IAM policies
///   grant use by tag (`aws:ResourceTag`) or alias (`kms:ResourceAliases`), and this key
///   delegates to IAM (root statement), so KMS warns that administrators who may manage tags
///   or aliases control access; tags and alias also carry the operator's ownership, and the
///   spec (`tags`, `alias`) is where they are set;
/// - any use action (`Encrypt`, `Decrypt`, `ReEncrypt*`, `GenerateDataKey*`).
///
/// The operator reverts what it converges (key disabled, rotation off, deletion scheduled) on
/// its next pass.
const ADMIN_ACTIONS: [&str; 13] = [
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListResourceTags",
    "kms:EnableKey",
    "kms:DisableKey",
    "kms:EnableKeyRotation",
    "kms:DisableKeyRotation",
    "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
];

/// What Terraform's S3 backend needs of the key, through S3 and DynamoDB.
const USE_ACTIONS: [&str; 4] = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"];

/// The key policy, `Sid`s `EnableRootAccountAdministration`, `AllowOperatorAdministration`,
/// `AllowOperatorGrantsForAwsResources`, `AllowKeyAdministrators` (only with admins),
/// `AllowBackendRoleUse` and `AllowBackendRoleOpenTofuEncryption` (only with OpenTofu's
/// client-side encryption).
pub fn key_policy(input: &KeyPolicyInput<'_>) -> PolicyDocument {
    let mut statements = administration(input, true);
    // Only through the backend's two services in its region. (IAM policies may still grant
    // more through the root statement's delegation: that is the runner policy's business.)
    let suffix = dns_suffix(input.partition);
    let via = [format!("s3.{}.{suffix}", input.region), format!("dynamodb.{}.{suffix}", input.region)];
    statements.push(
        Statement::new("AllowBackendRoleUse", Effect::Allow)
            .principal(Principal::aws([input.role_arn]))
            .actions(USE_ACTIONS)
            .resources(["*"])
            .condition("StringEquals", "kms:ViaService", via),
    );
    if input.open_tofu_encryption {
        // OpenTofu calls KMS itself: no kms:ViaService, but only without encryption context
        // (see `runner::open_tofu_statement`).
        statements.push(
            Statement::new("AllowBackendRoleOpenTofuEncryption", Effect::Allow)
                .principal(Principal::aws([input.role_arn]))
                .actions(super::runner::OPEN_TOFU_ACTIONS)
                .resources(["*"])
                .condition("Null", "kms:EncryptionContextKeys", ["true"]),
        );
    }
    PolicyDocument::new(statements)
}

/// The statements every key the operator creates starts with: account root, operator,
/// operator grants for AWS resources, with `lock_files` the operator's Decrypt of lock files
/// (the state key's only: a replica's lock files are never read), extra administrators.
/// `input.role_arn` is not used.
pub(crate) fn administration(input: &KeyPolicyInput<'_>, lock_files: bool) -> Vec<Statement> {
    let root = format!("arn:{}:iam::{}:root", input.partition, input.account_id);
    let operator = || Principal::aws([input.operator_arn]);
    let mut statements = vec![
        // Without this statement a key whose other principals are deleted can only be
        // recovered through AWS Support; with it, the account's IAM policies stay in charge.
        Statement::new("EnableRootAccountAdministration", Effect::Allow)
            .principal(Principal::aws([root]))
            .actions(["kms:*"])
            .resources(["*"]),
        Statement::new("AllowOperatorAdministration", Effect::Allow)
            .principal(operator())
            .actions(OPERATOR_ACTIONS)
            .resources(["*"]),
        Statement::new("AllowOperatorGrantsForAwsResources", Effect::Allow)
            .principal(operator())
            .actions([OPERATOR_GRANT_ACTION])
            .resources(["*"])
            .condition("Bool", "kms:GrantIsForAWSResource", ["true"]),
    ];
    if lock_files {
        // The operator reads Terraform's lock files (`<key>.tflock`, encrypted by default
        // encryption) to show and break locks: Decrypt only through S3 in the backend's
        // region. Its IAM policy allows s3:GetObject on `*.tflock` objects only, so this
        // never reaches state (with Bucket Keys S3's encryption context is the bucket, so
        // the object cannot be named here).
        statements.push(
            Statement::new("AllowOperatorReadLockFiles", Effect::Allow)
                .principal(Principal::aws([input.operator_arn]))
                .actions(["kms:Decrypt"])
                .resources(["*"])
                .condition(
                    "StringEquals",
                    "kms:ViaService",
                    [format!("s3.{}.{}", input.region, dns_suffix(input.partition))],
                ),
        );
    }
    if !input.admins.is_empty() {
        let mut admins = Statement::new("AllowKeyAdministrators", Effect::Allow)
            .principal(Principal::aws(input.admins.iter().map(String::as_str)))
            .actions(ADMIN_ACTIONS)
            .resources(["*"]);
        if let Some(org) = input.principal_org_id {
            admins = admins.condition("StringEquals", "aws:PrincipalOrgID", [org]);
        }
        statements.push(admins);
    }
    statements
}

/// The DNS suffix of service endpoints in `partition` (what `kms:ViaService` names).
pub(crate) fn dns_suffix(partition: &str) -> &'static str {
    if partition == "aws-cn" { "amazonaws.com.cn" } else { "amazonaws.com" }
}

/// The ARN to name `caller_arn` (from STS `GetCallerIdentity`) in a key policy.
///
/// With IRSA or Pod Identity the operator runs as an assumed role,
/// `arn:aws:sts::123456789012:assumed-role/ROLE/SESSION`, which a policy cannot name (the
/// session changes); this returns the role, `arn:aws:iam::123456789012:role/ROLE`. A role
/// path (`role/team/ROLE`) is not part of the assumed-role ARN and cannot be recovered here:
/// a role with a path must be named explicitly. IAM user ARNs and anything else are returned
/// unchanged.
pub fn principal_arn_for_policy(caller_arn: &str) -> String {
    let assumed = || {
        let mut parts = caller_arn.splitn(6, ':');
        let (arn, partition, service, region, account, resource) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if arn != "arn" || service != "sts" || !region.is_empty() {
            return None;
        }
        let (role, session) = resource.strip_prefix("assumed-role/")?.split_once('/')?;
        if role.is_empty() || session.is_empty() {
            return None;
        }
        Some(format!("arn:{partition}:iam::{account}:role/{role}"))
    };
    assumed().unwrap_or_else(|| caller_arn.to_owned())
}

#[cfg(test)]
#[path = "key_tests.rs"]
mod tests;
