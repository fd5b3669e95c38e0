//! The runner policy: exact statements per lock and encryption mode, and no deletes on state.

use serde_json::{Value, json};

use super::*;
use crate::policy::test_support::{assert_json, assert_survives_aws_rewrite};

const TABLE: &str = "arn:aws:dynamodb:eu-west-1:123456789012:table/acme-tfstate-lock";
const KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-aaaa-bbbb-cccc-123456789abc";
const STATE: &str = "team-payments/prod/terraform.tfstate";

fn input(
    lockfile: bool,
    table_arn: Option<&'static str>,
    kms_key_arn: Option<&'static str>,
) -> RunnerPolicyInput<'static> {
    RunnerPolicyInput {
        partition: "aws",
        region: "eu-west-1",
        bucket: Some("acme-tfstate"),
        state_key: STATE,
        workspace_key_prefix: "env:",
        lockfile,
        table_arn,
        kms_key_arn,
        open_tofu_encryption: false,
    }
}

fn list_and_state() -> Vec<Value> {
    vec![
        json!({
            "Sid": "ListStatePrefixes", "Effect": "Allow", "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::acme-tfstate",
            "Condition": {"StringLike": {"s3:prefix": [STATE, "env:/", "env:/*"]}}
        }),
        json!({
            "Sid": "ReadWriteState", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": [
                format!("arn:aws:s3:::acme-tfstate/{STATE}"),
                format!("arn:aws:s3:::acme-tfstate/env:/*/{STATE}")
            ]
        }),
    ]
}

fn lock_files() -> Value {
    json!({
        "Sid": "ManageLockFiles", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
        "Resource": [
            format!("arn:aws:s3:::acme-tfstate/{STATE}.tflock"),
            format!("arn:aws:s3:::acme-tfstate/env:/*/{STATE}.tflock")
        ]
    })
}

fn lock_table() -> Value {
    json!({
        "Sid": "UseLockTable", "Effect": "Allow",
        "Action": ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"],
        "Resource": TABLE
    })
}

fn state_key(with_table: bool) -> Value {
    let via = if with_table {
        json!(["s3.eu-west-1.amazonaws.com", "dynamodb.eu-west-1.amazonaws.com"])
    } else {
        json!("s3.eu-west-1.amazonaws.com")
    };
    json!({
        "Sid": "UseStateKey", "Effect": "Allow",
        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
        "Resource": KEY,
        "Condition": {"StringEquals": {"kms:ViaService": via}}
    })
}

/// Every combination of lock file, lock table and key, with the statements each must produce.
fn all_modes() -> Vec<(RunnerPolicyInput<'static>, Vec<Value>)> {
    let mut out = Vec::new();
    for lockfile in [false, true] {
        for table in [None, Some(TABLE)] {
            for key in [None, Some(KEY)] {
                let mut expected = list_and_state();
                expected.extend(lockfile.then(lock_files));
                expected.extend(table.map(|_| lock_table()));
                expected.extend(key.map(|_| state_key(table.is_some())));
                out.push((input(lockfile, table, key), expected));
            }
        }
    }
    out
}

#[test]
fn exact_statements_in_every_mode() {
    for (input, expected) in all_modes() {
        assert_json(&runner_policy(&input), expected);
    }
}

#[test]
fn dynamodb_mode_with_kms() {
    let doc = runner_policy(&input(false, Some(TABLE), Some(KEY)));
    let mut expected = list_and_state();
    expected.extend([lock_table(), state_key(true)]);
    assert_json(&doc, expected);
}

#[test]
fn both_mode_has_lock_files_and_table() {
    let doc = runner_policy(&input(true, Some(TABLE), Some(KEY)));
    let sids: Vec<_> = doc.statements.iter().filter_map(|s| s.sid.as_deref()).collect();
    assert_eq!(sids, ["ListStatePrefixes", "ReadWriteState", "ManageLockFiles", "UseLockTable", "UseStateKey"]);
}

#[test]
fn custom_workspace_prefix_and_partition() {
    let doc = runner_policy(&RunnerPolicyInput {
        partition: "aws-cn",
        workspace_key_prefix: "workspaces",
        ..input(true, None, None)
    });
    let list = &doc.statements[0];
    assert_eq!(list.resource, Some(vec!["arn:aws-cn:s3:::acme-tfstate".to_owned()]));
    let prefixes = &list.condition.as_ref().expect("condition")["StringLike"]["s3:prefix"];
    assert_eq!(prefixes, &[STATE.into(), "workspaces/".into(), "workspaces/*".into()]);
    assert_eq!(
        doc.statements[2].resource.as_deref().expect("resources")[1],
        format!("arn:aws-cn:s3:::acme-tfstate/workspaces/*/{STATE}.tflock")
    );
}

#[test]
fn never_deletes_state() {
    for (input, _) in all_modes() {
        let doc = runner_policy(&input);
        for s in &doc.statements {
            let actions = s.action.iter().flatten().map(|a| a.to_lowercase());
            // No wildcard could smuggle a delete in either.
            assert!(s.not_action.is_none() && s.not_resource.is_none());
            for a in actions {
                assert!(!a.contains('*'), "wildcard action {a}");
                if a == "s3:deleteobject" {
                    let resources = s.resource.as_deref().expect("resources");
                    assert!(resources.iter().all(|r| r.ends_with(".tflock")), "DeleteObject on {resources:?}");
                }
            }
        }
        let deletes = doc.statements.iter().flat_map(|s| s.action.iter().flatten()).any(|a| a.contains("Delete"));
        assert_eq!(deletes, input.lockfile || input.table_arn.is_some());
    }
}

#[test]
fn grants_only_the_documented_actions() {
    let doc = runner_policy(&input(true, Some(TABLE), Some(KEY)));
    let mut actions: Vec<_> = doc.statements.iter().flat_map(|s| s.action.iter().flatten().cloned()).collect();
    actions.sort();
    actions.dedup();
    let expected = [
        "dynamodb:DeleteItem",
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "kms:Decrypt",
        "kms:DescribeKey",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "s3:DeleteObject",
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutObject",
    ];
    assert_eq!(actions, expected);
}

#[test]
fn survives_aws_rewrites() {
    for (input, _) in all_modes() {
        assert_survives_aws_rewrite(&runner_policy(&input));
    }
}

#[test]
fn modes_differ_semantically() {
    let modes: Vec<_> = all_modes().into_iter().map(|(i, _)| runner_policy(&i)).collect();
    for (i, a) in modes.iter().enumerate() {
        for (j, b) in modes.iter().enumerate() {
            assert_eq!(a.semantically_eq(b), i == j, "modes {i} and {j}");
        }
    }
}

/// A part the object does not own contributes no statement: no bucket, no S3 grant at all
/// (neither state nor lock files), and with nothing owned the document is empty.
#[test]
fn parts_not_owned_grant_nothing() {
    let no_bucket = RunnerPolicyInput { bucket: None, ..input(true, Some(TABLE), Some(KEY)) };
    let doc = runner_policy(&no_bucket);
    assert_json(&doc, vec![lock_table(), state_key(true)]);
    assert!(doc.statements.iter().flat_map(|s| s.action.iter().flatten()).all(|a| !a.starts_with("s3:")));
    let nothing = RunnerPolicyInput { bucket: None, ..input(true, None, None) };
    assert!(runner_policy(&nothing).statements.is_empty());
    assert_json(&runner_policy(&input(false, None, None)), list_and_state());
}

fn open_tofu() -> Value {
    json!({
        "Sid": "OpenTofuStateEncryption", "Effect": "Allow",
        "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
        "Resource": KEY,
        "Condition": {"Null": {"kms:EncryptionContextKeys": "true"}}
    })
}

/// OpenTofu's client-side encryption adds exactly one statement, after `UseStateKey`, and
/// only with a key; without the flag it is absent in every mode.
#[test]
fn open_tofu_encryption_adds_direct_key_use_only_when_asked() {
    for (plain, mut expected) in all_modes() {
        assert!(!runner_policy(&plain).statements.iter().any(|s| s.sid.as_deref() == Some("OpenTofuStateEncryption")));
        let with = RunnerPolicyInput { open_tofu_encryption: true, ..plain };
        expected.extend(with.kms_key_arn.map(|_| open_tofu()));
        assert_json(&runner_policy(&with), expected);
    }
}

/// Abuse: the direct grant is no wider than OpenTofu's two calls on the backend's key. No
/// other key, no wildcard, no Encrypt/ReEncrypt/CreateGrant, and no request with an
/// encryption context (the data keys of S3 and DynamoDB stay behind kms:ViaService).
#[test]
fn open_tofu_grant_is_no_wider_than_the_backend_key() {
    let doc = runner_policy(&RunnerPolicyInput { open_tofu_encryption: true, ..input(false, Some(TABLE), Some(KEY)) });
    let direct: Vec<_> = doc
        .statements
        .iter()
        .filter(|s| s.action.iter().flatten().any(|a| a.starts_with("kms:")))
        .filter(|s| !s.condition.as_ref().is_some_and(|c| c.contains_key("StringEquals")))
        .collect();
    assert_eq!(direct.len(), 1, "one statement without kms:ViaService");
    let s = direct[0];
    assert_eq!(s.resource.as_deref(), Some(&[KEY.to_owned()][..]));
    assert_eq!(s.action.as_deref(), Some(&["kms:GenerateDataKey".to_owned(), "kms:Decrypt".to_owned()][..]));
    assert!(s.action.iter().flatten().chain(s.resource.iter().flatten()).all(|v| !v.contains(['*', '?'])));
    // No key, no statement: the flag alone grants nothing.
    let no_key = RunnerPolicyInput { open_tofu_encryption: true, ..input(false, Some(TABLE), None) };
    assert!(
        runner_policy(&no_key).statements.iter().all(|s| s.action.iter().flatten().all(|a| !a.starts_with("kms:")))
    );
    assert_survives_aws_rewrite(&doc);
}
