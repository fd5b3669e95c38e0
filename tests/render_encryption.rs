//! OpenTofu's client-side encryption (`encryption.tf`, `TF_ENCRYPTION`), read back by parsers.
//!
//! No `tofu` binary is installable here, so the shape is checked against OpenTofu's documented
//! schema of the `encryption` block (its `EncryptionConfig`: `key_provider` and `method` blocks
//! with two labels each, `state` and `plan` blocks with `method` and `enforced`; the `aws_kms`
//! key provider's `kms_key_id`, `key_spec`, `region`, `assume_role`), after hcl-rs parses the
//! text back, and HashiCorp's own parser (`terraform-config-inspect`) must report no syntax
//! diagnostics. References must be traversals that name a declared provider and method:
//! OpenTofu refuses strings there.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::process::Command;

use hcl::expr::TraversalOperator;
use hcl::{Block, Body, Expression};
use tfstate_operator::render::{
    BackendSettings, ENCRYPTION_TF_KEY, OpenTofuEncryption, RenderedEncryption, TF_ENCRYPTION_KEY, render,
};

const KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const ROLE: &str = "arn:aws:iam::123456789012:role/tfstate-team-payments-payments-prod";
/// The `aws_kms` key provider's arguments this renderer may use (a subset of OpenTofu's).
const AWS_KMS_ARGUMENTS: [&str; 4] = ["kms_key_id", "key_spec", "region", "assume_role"];
/// KMS's `DataKeySpec` values, which OpenTofu validates `key_spec` against.
const DATA_KEY_SPECS: [&str; 2] = ["AES_256", "AES_128"];

fn rendered(role: Option<&str>) -> RenderedEncryption {
    let settings = BackendSettings {
        kms_key_id: Some(KEY.to_owned()),
        open_tofu_encryption: Some(OpenTofuEncryption {
            kms_key_id: KEY.to_owned(),
            region: "eu-west-1".to_owned(),
            assume_role_arn: role.map(str::to_owned),
        }),
        ..BackendSettings::new("acme-tfstate", "team/app/terraform.tfstate", "eu-west-1")
    };
    render(&settings).expect("render").encryption.expect("encryption rendered")
}

/// `a.b.c` of a traversal expression, or an error naming what it is instead.
fn path_of(expr: &Expression) -> Result<Vec<String>, String> {
    let Expression::Traversal(t) = expr else { return Err(format!("not a traversal: {expr:?}")) };
    let Expression::Variable(root) = &t.expr else { return Err(format!("traversal root is not a name: {:?}", t.expr)) };
    let mut path = vec![root.as_str().to_owned()];
    for op in &t.operators {
        match op {
            TraversalOperator::GetAttr(ident) => path.push(ident.as_str().to_owned()),
            other => return Err(format!("unexpected traversal operator {other:?}")),
        }
    }
    Ok(path)
}

fn labels(block: &Block) -> Vec<&str> {
    block.labels().iter().map(|l| l.as_str()).collect()
}

/// Checks the body of an `encryption` block against OpenTofu's schema and returns it as a
/// description, so that two bodies can be compared.
fn check_encryption_body(body: &Body) -> Vec<String> {
    assert_eq!(body.attributes().count(), 0, "the encryption block takes blocks only");
    let blocks: Vec<&Block> = body.blocks().collect();
    let kinds: Vec<&str> = blocks.iter().map(|b| b.identifier()).collect();
    assert_eq!(kinds, ["key_provider", "method", "state", "plan"]);

    let provider = blocks[0];
    assert_eq!(labels(provider)[0], "aws_kms");
    assert_eq!(labels(provider).len(), 2);
    assert_eq!(provider.body.blocks().count(), 0, "aws_kms takes arguments only here");
    let names: BTreeSet<&str> = provider.body.attributes().map(|a| a.key()).collect();
    assert!(names.iter().all(|n| AWS_KMS_ARGUMENTS.contains(n)), "unknown aws_kms argument in {names:?}");
    let attr = |b: &Block, name: &str| b.body.attributes().find(|a| a.key() == name).map(|a| a.expr().clone());
    assert_eq!(attr(provider, "kms_key_id"), Some(Expression::String(KEY.to_owned())));
    assert_eq!(attr(provider, "region"), Some(Expression::String("eu-west-1".to_owned())));
    let Some(Expression::String(spec)) = attr(provider, "key_spec") else { panic!("key_spec must be a string") };
    assert!(DATA_KEY_SPECS.contains(&spec.as_str()), "key_spec {spec}");
    assert_eq!(spec, "AES_256", "aes_gcm takes 16, 24 or 32-byte keys: 32 here");
    if let Some(role) = attr(provider, "assume_role") {
        // An argument with an object value (OpenTofu's `hcl:"assume_role,optional"`).
        let Expression::Object(o) = role else { panic!("assume_role must be an object, got {role:?}") };
        assert_eq!(o.len(), 1);
        assert_eq!(o.values().next(), Some(&Expression::String(ROLE.to_owned())));
    }

    let method = blocks[1];
    assert_eq!(labels(method)[0], "aes_gcm");
    let keys = path_of(&attr(method, "keys").expect("keys")).expect("keys is a reference");
    assert_eq!(keys, ["key_provider", "aws_kms", labels(provider)[1]], "keys names the declared provider");

    for target in &blocks[2..] {
        assert!(target.labels().is_empty());
        let method_ref = path_of(&attr(target, "method").expect("method")).expect("method is a reference");
        assert_eq!(method_ref, ["method", "aes_gcm", labels(method)[1]], "{} names the method", target.identifier());
        assert_eq!(attr(target, "enforced"), Some(Expression::Bool(true)), "{} is enforced", target.identifier());
        assert_eq!(target.body.blocks().count(), 0, "no fallback: nothing unencrypted is ever read");
    }
    vec![format!("{body:?}")]
}

/// The one `encryption` block inside the one `terraform` block.
fn encryption_body(text: &str) -> Body {
    let body: Body = hcl::parse(text).unwrap_or_else(|e| panic!("encryption.tf is not HCL: {e}\n{text}"));
    let mut top: Vec<_> = body.into_inner();
    assert_eq!(top.len(), 1);
    let terraform = top.pop().and_then(|s| s.into_block()).expect("a block");
    assert_eq!(terraform.identifier(), "terraform");
    let mut inner = terraform.body.into_inner();
    assert_eq!(inner.len(), 1, "only the encryption block inside terraform");
    let encryption = inner.pop().and_then(|s| s.into_block()).expect("encryption block");
    assert_eq!(encryption.identifier(), "encryption");
    assert!(encryption.labels().is_empty());
    encryption.body
}

#[test]
fn encryption_tf_has_opentofus_shape() {
    for role in [None, Some(ROLE)] {
        check_encryption_body(&encryption_body(&rendered(role).encryption_tf));
    }
}

#[test]
fn tf_encryption_is_the_same_configuration_without_the_wrappers() {
    // OpenTofu reads TF_ENCRYPTION as the body of `encryption { }` (HCL unless it starts with `{`).
    for role in [None, Some(ROLE)] {
        let r = rendered(role);
        assert!(!r.tf_encryption.trim_start().starts_with('{'), "HCL, not JSON");
        let env: Body = hcl::parse(&r.tf_encryption).expect("TF_ENCRYPTION is HCL");
        assert_eq!(check_encryption_body(&env), check_encryption_body(&encryption_body(&r.encryption_tf)));
    }
}

#[test]
fn a_string_where_a_reference_belongs_is_caught() {
    // Guards against a vacuous shape check: `keys = "key_provider.aws_kms.x"` parses, and
    // OpenTofu refuses it.
    let bad = "method \"aes_gcm\" \"x\" {\n  keys = \"key_provider.aws_kms.x\"\n}\n";
    let body: Body = hcl::parse(bad).expect("HCL");
    let method = body.blocks().next().expect("block");
    let keys = method.body.attributes().next().expect("keys").expr().clone();
    assert!(path_of(&keys).is_err());
}

#[test]
fn configmap_holds_both_keys() {
    let settings = BackendSettings {
        open_tofu_encryption: Some(OpenTofuEncryption {
            kms_key_id: KEY.to_owned(),
            region: "eu-west-1".to_owned(),
            assume_role_arn: None,
        }),
        ..BackendSettings::new("acme-tfstate", "team/app/terraform.tfstate", "eu-west-1")
    };
    let data = render(&settings).expect("render").into_configmap_data();
    check_encryption_body(&encryption_body(&data[ENCRYPTION_TF_KEY]));
    check_encryption_body(&hcl::parse(&data[TF_ENCRYPTION_KEY]).expect("HCL"));
}

#[test]
fn hashicorp_parser_accepts_rendered_encryption_tf() {
    for role in [None, Some(ROLE)] {
        let r = rendered(role);
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("encryption.tf"), &r.encryption_tf).expect("write");
        // TF_ENCRYPTION is the same native syntax; the inspector reads *.tf only.
        std::fs::write(dir.path().join("env.tf"), &r.tf_encryption).expect("write");
        let output = match Command::new("terraform-config-inspect").arg("--json").arg(dir.path()).output() {
            Ok(output) => output,
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                "`terraform-config-inspect` is not on PATH: run scripts/install-terraform-inspect.sh (see tests/render_hcl.rs)"
            ),
            Err(e) => panic!("cannot run terraform-config-inspect: {e}"),
        };
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("inspector JSON");
        let diagnostics = json.get("diagnostics").cloned().unwrap_or(serde_json::Value::Null);
        assert!(diagnostics.is_null() || diagnostics == serde_json::json!([]), "{diagnostics:#}\n{}", r.encryption_tf);
    }
}
