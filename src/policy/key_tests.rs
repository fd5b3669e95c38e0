//! The key policy, statement by statement, and what each principal may and may not do.

use serde_json::{Value, json};

use super::*;
use crate::policy::test_support::{assert_json, assert_survives_aws_rewrite};

const OPERATOR: &str = "arn:aws:iam::123456789012:role/tfstate-operator";
const ROLE: &str = "arn:aws:iam::123456789012:role/tfstate-team-payments-prod";

fn input(admins: &[String]) -> KeyPolicyInput<'_> {
    KeyPolicyInput {
        partition: "aws",
        account_id: "123456789012",
        region: "eu-west-1",
        operator_arn: OPERATOR,
        role_arn: ROLE,
        admins,
        principal_org_id: None,
        open_tofu_encryption: false,
    }
}

/// With the cluster policy's organisation id, the extra admins' statement carries it.
#[test]
fn principal_org_id_binds_the_admins() {
    let admins = vec!["arn:aws:iam::210987654321:role/platform".to_owned()];
    let doc = key_policy(&KeyPolicyInput { principal_org_id: Some("o-a1b2c3d4e5"), ..input(&admins) });
    let s = doc.statements.iter().find(|s| s.sid.as_deref() == Some("AllowKeyAdministrators")).expect("admins");
    let json = serde_json::to_value(s.condition.as_ref().expect("condition")).unwrap();
    assert_eq!(json, json!({"StringEquals": {"aws:PrincipalOrgID": ["o-a1b2c3d4e5"]}}));
}

fn root() -> Value {
    json!({"Sid": "EnableRootAccountAdministration", "Effect": "Allow",
           "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "kms:*", "Resource": "*"})
}

fn operator_administration() -> Value {
    json!({"Sid": "AllowOperatorAdministration", "Effect": "Allow", "Principal": {"AWS": OPERATOR},
           "Action": [
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
               "kms:CancelKeyDeletion"
           ],
           "Resource": "*"})
}

fn operator_grants() -> Value {
    json!({"Sid": "AllowOperatorGrantsForAwsResources", "Effect": "Allow", "Principal": {"AWS": OPERATOR},
           "Action": "kms:CreateGrant", "Resource": "*",
           "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}})
}

fn operator_reads_lock_files() -> Value {
    json!({"Sid": "AllowOperatorReadLockFiles", "Effect": "Allow", "Principal": {"AWS": OPERATOR},
           "Action": "kms:Decrypt", "Resource": "*",
           "Condition": {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}})
}

fn key_administrators(admins: Value) -> Value {
    json!({"Sid": "AllowKeyAdministrators", "Effect": "Allow", "Principal": {"AWS": admins},
           "Action": [
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
               "kms:CancelKeyDeletion"
           ],
           "Resource": "*"})
}

fn backend_role_use(via: Value) -> Value {
    json!({"Sid": "AllowBackendRoleUse", "Effect": "Allow", "Principal": {"AWS": ROLE},
           "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"], "Resource": "*",
           "Condition": {"StringEquals": {"kms:ViaService": via}}})
}

fn eu_west_1() -> Value {
    json!(["s3.eu-west-1.amazonaws.com", "dynamodb.eu-west-1.amazonaws.com"])
}

/// IAM's action matching: `*` any characters, `?` one, case-insensitive.
fn action_matches(pattern: &str, action: &str) -> bool {
    fn glob(p: &[char], a: &[char]) -> bool {
        match (p.first(), a.first()) {
            (None, None) => true,
            (Some('*'), _) => glob(&p[1..], a) || (!a.is_empty() && glob(p, &a[1..])),
            (Some('?'), Some(_)) => glob(&p[1..], &a[1..]),
            (Some(x), Some(y)) => x.eq_ignore_ascii_case(y) && glob(&p[1..], &a[1..]),
            _ => false,
        }
    }
    let (p, a): (Vec<char>, Vec<char>) = (pattern.chars().collect(), action.chars().collect());
    glob(&p, &a)
}

/// Whether `statement` allows `action`.
fn allows(statement: &Statement, action: &str) -> bool {
    statement.action.iter().flatten().any(|p| action_matches(p, action))
}

fn with_two_admins() -> PolicyDocument {
    key_policy(&input(&["arn:aws:iam::123456789012:role/platform".into(), "arn:aws:iam::123456789012:user/a".into()]))
}

#[test]
fn without_admins() {
    assert_json(
        &key_policy(&input(&[])),
        vec![
            root(),
            operator_administration(),
            operator_grants(),
            operator_reads_lock_files(),
            backend_role_use(eu_west_1()),
        ],
    );
}

#[test]
fn with_admins() {
    let admins =
        vec!["arn:aws:iam::123456789012:role/platform".to_owned(), "arn:aws:iam::123456789012:user/alice".into()];
    assert_json(
        &key_policy(&input(&admins)),
        vec![
            root(),
            operator_administration(),
            operator_grants(),
            operator_reads_lock_files(),
            key_administrators(json!(admins)),
            backend_role_use(eu_west_1()),
        ],
    );
    let one = vec!["arn:aws:iam::123456789012:role/platform".to_owned()];
    assert_json(
        &key_policy(&input(&one)),
        vec![
            root(),
            operator_administration(),
            operator_grants(),
            operator_reads_lock_files(),
            key_administrators(json!(one[0])),
            backend_role_use(eu_west_1()),
        ],
    );
}

#[test]
fn role_use_is_bound_to_the_backend_region_and_partition() {
    let doc = key_policy(&KeyPolicyInput { region: "us-east-2", ..input(&[]) });
    assert_eq!(
        serde_json::to_value(doc.statements.last().unwrap()).unwrap(),
        backend_role_use(json!(["s3.us-east-2.amazonaws.com", "dynamodb.us-east-2.amazonaws.com"]))
    );
    let cn = key_policy(&KeyPolicyInput { partition: "aws-cn", region: "cn-north-1", ..input(&[]) });
    let via = &cn.statements.last().unwrap().condition.as_ref().unwrap()["StringEquals"]["kms:ViaService"];
    let via: Vec<String> = via.iter().map(|v| v.as_aws_string()).collect();
    assert_eq!(via, ["s3.cn-north-1.amazonaws.com.cn", "dynamodb.cn-north-1.amazonaws.com.cn"]);
}

#[test]
fn only_the_root_statement_has_wildcard_actions() {
    let doc = with_two_admins();
    for s in &doc.statements {
        let sid = s.sid.as_deref().unwrap_or_default();
        let wildcards: Vec<&String> = s.action.iter().flatten().filter(|a| a.contains(['*', '?'])).collect();
        match sid {
            "EnableRootAccountAdministration" => assert_eq!(wildcards, ["kms:*"]),
            // Terraform's documented need; GenerateDataKey* is only GenerateDataKey and
            // GenerateDataKeyWithoutPlaintext for a symmetric key, and only through S3 and DynamoDB.
            "AllowBackendRoleUse" => assert_eq!(wildcards, ["kms:GenerateDataKey*"]),
            _ => assert!(wildcards.is_empty(), "{sid} has wildcard actions {wildcards:?}"),
        }
    }
}

#[test]
fn create_grant_only_for_aws_resources() {
    let doc = with_two_admins();
    let granting: Vec<&Statement> = doc
        .statements
        .iter()
        .filter(|s| s.sid.as_deref() != Some("EnableRootAccountAdministration") && allows(s, "kms:CreateGrant"))
        .collect();
    assert_eq!(granting.len(), 1, "{granting:#?}");
    assert_eq!(granting[0].principal, Some(Principal::aws([OPERATOR])));
    assert_eq!(granting[0].action, Some(vec!["kms:CreateGrant".to_owned()]));
    let condition = serde_json::to_value(&granting[0].condition).unwrap();
    assert_eq!(condition, json!({"Bool": {"kms:GrantIsForAWSResource": ["true"]}}));
}

#[test]
fn extra_admins_cannot_give_themselves_use() {
    let doc = with_two_admins();
    let admins = doc.statements.iter().find(|s| s.sid.as_deref() == Some("AllowKeyAdministrators")).unwrap();
    for action in [
        "kms:PutKeyPolicy",
        "kms:CreateGrant",
        "kms:TagResource",
        "kms:UntagResource",
        "kms:CreateAlias",
        "kms:UpdateAlias",
        "kms:DeleteAlias",
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
        "kms:GenerateDataKey",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:GenerateDataKeyPair",
        "kms:ReplicateKey",
        "kms:ImportKeyMaterial",
    ] {
        assert!(!allows(admins, action), "extra admins may {action}");
    }
    // Nor does any statement of theirs exist besides this one.
    let admin = Principal::aws(["arn:aws:iam::123456789012:role/platform", "arn:aws:iam::123456789012:user/a"]);
    assert_eq!(doc.statements.iter().filter(|s| s.principal.as_ref() == Some(&admin)).count(), 1);
}

/// Every operation `src/aws/kms.rs` calls on a key is allowed to the operator by the key
/// policy, except those no key policy authorises.
#[test]
fn operator_may_call_every_kms_operation_of_the_wrapper() {
    const NOT_KEY_POLICY: [&str; 3] = ["CreateKey", "ListKeys", "ListAliases"];
    let source = include_str!("../aws/kms.rs");
    let operations: Vec<&str> = source
        .split(".ctx(KMS, \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|op| !NOT_KEY_POLICY.contains(op))
        .collect();
    assert!(operations.len() >= 14, "{operations:?}");
    let doc = key_policy(&input(&[]));
    let operator = Some(Principal::aws([OPERATOR]));
    for op in &operations {
        let allowed = doc
            .statements
            .iter()
            .filter(|s| s.principal == operator && s.condition.is_none())
            .any(|s| allows(s, &format!("kms:{op}")));
        assert!(allowed, "the key policy does not let the operator call {op}");
    }
    // And nothing it does not call: the one conditioned grant is DynamoDB's.
    let listed: Vec<&str> = OPERATOR_ACTIONS.iter().map(|a| a.trim_start_matches("kms:")).collect();
    for a in &listed {
        assert!(operations.contains(a), "the operator is allowed {a}, which it never calls");
    }
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
fn a_changed_region_or_condition_is_a_change() {
    let a = key_policy(&input(&[]));
    let b = key_policy(&KeyPolicyInput { region: "eu-central-1", ..input(&[]) });
    assert!(!a.semantically_eq(&b));
    let mut unconditioned = a.clone();
    unconditioned.statements[2].condition = None;
    assert!(!a.semantically_eq(&unconditioned));
}

#[test]
fn survives_aws_rewrites() {
    assert_survives_aws_rewrite(&key_policy(&input(&[])));
    assert_survives_aws_rewrite(&key_policy(&input(&["a".into(), "arn:aws:iam::123456789012:role/x".into()])));
    assert_survives_aws_rewrite(&with_two_admins());
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

fn backend_role_open_tofu() -> Value {
    json!({"Sid": "AllowBackendRoleOpenTofuEncryption", "Effect": "Allow", "Principal": {"AWS": ROLE},
           "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*",
           "Condition": {"Null": {"kms:EncryptionContextKeys": "true"}}})
}

/// With OpenTofu's client-side encryption the role may also use the key directly (no
/// kms:ViaService), for exactly OpenTofu's two calls; without it, that statement is absent.
#[test]
fn open_tofu_encryption_lets_the_role_use_the_key_directly() {
    let plain = vec![
        root(),
        operator_administration(),
        operator_grants(),
        operator_reads_lock_files(),
        backend_role_use(eu_west_1()),
    ];
    assert_json(&key_policy(&input(&[])), plain.clone());
    let doc = key_policy(&KeyPolicyInput { open_tofu_encryption: true, ..input(&[]) });
    let mut expected = plain;
    expected.push(backend_role_open_tofu());
    assert_json(&doc, expected);
    assert_survives_aws_rewrite(&doc);
}

/// Abuse: the direct statement names only the backend role, no wildcard action, nothing that
/// encrypts for someone else or hands use on (Encrypt, ReEncrypt*, CreateGrant), and never a
/// request carrying an encryption context (S3's and DynamoDB's data keys).
#[test]
fn open_tofu_statement_is_no_wider_than_opentofus_calls() {
    let admins = vec!["arn:aws:iam::123456789012:role/platform".to_owned()];
    let doc = key_policy(&KeyPolicyInput { open_tofu_encryption: true, ..input(&admins) });
    let s = doc
        .statements
        .iter()
        .find(|s| s.sid.as_deref() == Some("AllowBackendRoleOpenTofuEncryption"))
        .expect("statement");
    assert_eq!(s.principal, Some(Principal::aws([ROLE])));
    for action in ["kms:Encrypt", "kms:ReEncryptFrom", "kms:CreateGrant", "kms:GenerateDataKeyWithoutPlaintext"] {
        assert!(!allows(s, action), "{action}");
    }
    let json = serde_json::to_value(s.condition.as_ref().expect("condition")).unwrap();
    assert_eq!(json, json!({"Null": {"kms:EncryptionContextKeys": ["true"]}}));
    // Admins still get no use at all.
    let admin = doc.statements.iter().find(|s| s.sid.as_deref() == Some("AllowKeyAdministrators")).expect("admins");
    assert!(!allows(admin, "kms:Decrypt") && !allows(admin, "kms:GenerateDataKey"));
}
