//! The policy of a KMS key the operator creates for a backend.

use super::document::{Effect, PolicyDocument, Principal, Statement};

/// What the key policy depends on.
#[derive(Clone, Copy, Debug)]
pub struct KeyPolicyInput<'a> {
    /// AWS partition, e.g. `aws`.
    pub partition: &'a str,
    /// The account that owns the key.
    pub account_id: &'a str,
    /// The operator's own principal, as [`principal_arn_for_policy`] returns it.
    pub operator_arn: &'a str,
    /// The backend role, which Terraform runners assume.
    pub role_arn: &'a str,
    /// Extra key administrators from the spec (`encryption.kmsKey.create.admins`).
    pub admins: &'a [String],
}

/// The AWS console's standard "key administrators" actions: manage the key, never use it.
const ADMINISTRATION_ACTIONS: [&str; 14] = [
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
];

/// What Terraform's S3 backend needs of the key, through S3 and DynamoDB.
const USE_ACTIONS: [&str; 4] = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"];

/// The key policy, `Sid`s `EnableRootAccountAdministration`, `AllowOperatorAdministration`,
/// `AllowKeyAdministrators` (only with admins) and `AllowBackendRoleUse`.
pub fn key_policy(input: &KeyPolicyInput<'_>) -> PolicyDocument {
    let root = format!("arn:{}:iam::{}:root", input.partition, input.account_id);
    let mut statements = vec![
        // Without this statement a key whose other principals are deleted can only be
        // recovered through AWS Support; with it, the account's IAM policies stay in charge.
        Statement::new("EnableRootAccountAdministration", Effect::Allow)
            .principal(Principal::aws([root]))
            .actions(["kms:*"])
            .resources(["*"]),
        // kms:CreateGrant is already matched by kms:Create*; it is named because DynamoDB
        // needs a grant to encrypt the lock table with this key, and a reader should see that.
        Statement::new("AllowOperatorAdministration", Effect::Allow)
            .principal(Principal::aws([input.operator_arn]))
            .actions(ADMINISTRATION_ACTIONS.into_iter().chain(["kms:CreateGrant"]))
            .resources(["*"]),
    ];
    if !input.admins.is_empty() {
        statements.push(
            Statement::new("AllowKeyAdministrators", Effect::Allow)
                .principal(Principal::aws(input.admins.iter().map(String::as_str)))
                .actions(ADMINISTRATION_ACTIONS)
                .resources(["*"]),
        );
    }
    statements.push(
        Statement::new("AllowBackendRoleUse", Effect::Allow)
            .principal(Principal::aws([input.role_arn]))
            .actions(USE_ACTIONS)
            .resources(["*"]),
    );
    PolicyDocument::new(statements)
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
mod tests {
    use serde_json::json;

    use super::*;
    use crate::policy::test_support::{assert_json, assert_survives_aws_rewrite};

    const OPERATOR: &str = "arn:aws:iam::123456789012:role/tfstate-operator";
    const ROLE: &str = "arn:aws:iam::123456789012:role/tfstate-team-payments-prod";

    fn input(admins: &[String]) -> KeyPolicyInput<'_> {
        KeyPolicyInput { partition: "aws", account_id: "123456789012", operator_arn: OPERATOR, role_arn: ROLE, admins }
    }

    fn admin_actions() -> serde_json::Value {
        json!([
            "kms:Create*",
            "kms:Describe*",
            "kms:Enable*",
            "kms:List*",
            "kms:Put*",
            "kms:Update*",
            "kms:Revoke*",
            "kms:Disable*",
            "kms:Get*",
            "kms:Delete*",
            "kms:TagResource",
            "kms:UntagResource",
            "kms:ScheduleKeyDeletion",
            "kms:CancelKeyDeletion"
        ])
    }

    fn expected(admins: Option<serde_json::Value>) -> Vec<serde_json::Value> {
        let mut operator_actions = admin_actions();
        operator_actions.as_array_mut().expect("array").push(json!("kms:CreateGrant"));
        let mut statements = vec![
            json!({"Sid": "EnableRootAccountAdministration", "Effect": "Allow",
                   "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "kms:*", "Resource": "*"}),
            json!({"Sid": "AllowOperatorAdministration", "Effect": "Allow",
                   "Principal": {"AWS": OPERATOR}, "Action": operator_actions, "Resource": "*"}),
        ];
        if let Some(admins) = admins {
            statements.push(json!({"Sid": "AllowKeyAdministrators", "Effect": "Allow",
                   "Principal": {"AWS": admins}, "Action": admin_actions(), "Resource": "*"}));
        }
        statements.push(json!({"Sid": "AllowBackendRoleUse", "Effect": "Allow", "Principal": {"AWS": ROLE},
               "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"], "Resource": "*"}));
        statements
    }

    #[test]
    fn without_admins() {
        assert_json(&key_policy(&input(&[])), expected(None));
    }

    #[test]
    fn with_admins() {
        let admins =
            vec!["arn:aws:iam::123456789012:role/platform".to_owned(), "arn:aws:iam::123456789012:user/alice".into()];
        assert_json(&key_policy(&input(&admins)), expected(Some(json!(admins))));
        let one = vec!["arn:aws:iam::123456789012:role/platform".to_owned()];
        assert_json(&key_policy(&input(&one)), expected(Some(json!(one[0]))));
    }

    #[test]
    fn root_uses_partition() {
        let doc = key_policy(&KeyPolicyInput { partition: "aws-us-gov", ..input(&[]) });
        assert_eq!(doc.statements[0].principal, Some(Principal::aws(["arn:aws-us-gov:iam::123456789012:root"])));
    }

    #[test]
    fn root_principal_equals_bare_account_id() {
        // KMS may show the root principal either way.
        let doc = key_policy(&input(&[]));
        let bare = doc.to_json().replace("arn:aws:iam::123456789012:root", "123456789012");
        assert!(doc.semantically_eq(&PolicyDocument::parse(&bare).expect("parses")));
    }

    #[test]
    fn role_never_administers() {
        let doc = key_policy(&input(&["arn:aws:iam::123456789012:role/platform".into()]));
        let role = Some(Principal::aws([ROLE]));
        let role_statements: Vec<_> = doc.statements.iter().filter(|s| s.principal == role).collect();
        assert_eq!(role_statements.len(), 1);
        assert!(role_statements[0].action.iter().flatten().all(|a| USE_ACTIONS.contains(&a.as_str())));
    }

    #[test]
    fn survives_aws_rewrites() {
        assert_survives_aws_rewrite(&key_policy(&input(&[])));
        assert_survives_aws_rewrite(&key_policy(&input(&["a".into(), "arn:aws:iam::123456789012:role/x".into()])));
    }

    #[test]
    fn assumed_role_becomes_role() {
        assert_eq!(
            principal_arn_for_policy("arn:aws:sts::123456789012:assumed-role/tfstate-operator/botocore-session-1"),
            "arn:aws:iam::123456789012:role/tfstate-operator"
        );
        assert_eq!(
            principal_arn_for_policy("arn:aws-cn:sts::123456789012:assumed-role/op/i-0abc"),
            "arn:aws-cn:iam::123456789012:role/op"
        );
    }

    #[test]
    fn other_principals_pass_through() {
        for arn in [
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:iam::123456789012:role/path/op",
            "arn:aws:iam::123456789012:root",
            "arn:aws:sts::123456789012:federated-user/bob",
            "arn:aws:sts::123456789012:assumed-role/no-session",
            "arn:aws:sts::123456789012:assumed-role//session",
            "not an arn",
            "",
        ] {
            assert_eq!(principal_arn_for_policy(arn), arn);
        }
    }
}
