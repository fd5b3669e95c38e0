//! The rendered backend configuration, read back by HCL parsers.
//!
//! 1. hcl-rs parses `backend.tf`, `backend.tfbackend` and the object-valued flat keys, and every
//!    value must equal the input; `assume_role` and `endpoints` must be attributes with object
//!    values, because Terraform rejects them as blocks.
//! 2. HashiCorp's own parser (the `terraform-config-inspect` CLI, Debian package
//!    `terraform-config-inspect`) must report no diagnostics. It checks syntax only: it accepts
//!    `assume_role { ... }` too, which is why the shape checks of (1) exist.
//!
//! No network needed. Without `terraform-config-inspect` on PATH the HashiCorp tests fail (they
//! never pass silently).

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;
use std::process::Command;

use hcl::{Body, Expression, ObjectKey};
use tfstate_operator::render::{BackendSettings, Endpoints, RenderedBackend, render};

const INSPECT: &str = "terraform-config-inspect";

/// A value as Terraform would see it: string, bool, or an object of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Str(String),
    Bool(bool),
    Object(Vec<(String, String)>),
}

fn s(value: &str) -> Value {
    Value::Str(value.to_owned())
}

/// The arguments the settings must render to, written out independently of the renderer.
fn expected(settings: &BackendSettings) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    map.insert("bucket".to_owned(), s(&settings.bucket));
    map.insert("key".to_owned(), s(&settings.key));
    map.insert("region".to_owned(), s(&settings.region));
    map.insert("encrypt".to_owned(), Value::Bool(settings.encrypt));
    if let Some(v) = &settings.kms_key_id {
        map.insert("kms_key_id".to_owned(), s(v));
    }
    if let Some(v) = &settings.dynamodb_table {
        map.insert("dynamodb_table".to_owned(), s(v));
    }
    if settings.use_lockfile {
        map.insert("use_lockfile".to_owned(), Value::Bool(true));
    }
    if let Some(v) = &settings.workspace_key_prefix {
        map.insert("workspace_key_prefix".to_owned(), s(v));
    }
    if let Some(v) = &settings.assume_role_arn {
        map.insert("assume_role".to_owned(), Value::Object(vec![("role_arn".to_owned(), v.clone())]));
    }
    if let Some(e) = &settings.endpoints {
        let pairs = [("s3", &e.s3), ("dynamodb", &e.dynamodb), ("sts", &e.sts), ("iam", &e.iam)];
        map.insert("endpoints".to_owned(), Value::Object(pairs.map(|(k, v)| (k.to_owned(), v.clone())).to_vec()));
        map.insert("use_path_style".to_owned(), Value::Bool(true));
    }
    map
}

fn value_of(name: &str, expr: &Expression) -> Value {
    match expr {
        Expression::String(v) => Value::Str(v.clone()),
        Expression::Bool(v) => Value::Bool(*v),
        Expression::Object(object) => Value::Object(
            object
                .iter()
                .map(|(key, value)| {
                    let ObjectKey::Identifier(key) = key else {
                        panic!("{name}: key {key:?} is not a bare identifier")
                    };
                    let Expression::String(value) = value else { panic!("{name}.{key}: {value:?} is not a string") };
                    (key.to_string(), value.clone())
                })
                .collect(),
        ),
        other => panic!("{name}: unexpected expression {other:?}"),
    }
}

/// The attributes of a body, refusing any nested block: a backend body holds arguments only,
/// and `assume_role { }` / `endpoints { }` as blocks are exactly what Terraform refuses.
fn arguments_of(body: &Body) -> Result<BTreeMap<String, Value>, String> {
    let blocks: Vec<&str> = body.blocks().map(|b| b.identifier()).collect();
    if !blocks.is_empty() {
        return Err(format!("blocks where only arguments are allowed: {blocks:?}"));
    }
    let mut map = BTreeMap::new();
    for attr in body.attributes() {
        if map.insert(attr.key().to_owned(), value_of(attr.key(), attr.expr())).is_some() {
            return Err(format!("duplicate argument {}", attr.key()));
        }
    }
    Ok(map)
}

/// The body of the single `backend "s3"` block inside the single `terraform` block.
fn backend_body(backend_tf: &str) -> Body {
    let body: Body = hcl::parse(backend_tf).unwrap_or_else(|e| panic!("backend.tf is not HCL: {e}\n{backend_tf}"));
    let structures: Vec<_> = body.into_inner();
    assert_eq!(structures.len(), 1, "one top-level structure expected");
    let terraform = structures.into_iter().next().and_then(|s| s.into_block()).expect("a block");
    assert_eq!(terraform.identifier(), "terraform");
    assert!(terraform.labels().is_empty());
    let mut inner = terraform.body.into_inner();
    assert_eq!(inner.len(), 1, "only the backend block inside terraform");
    let backend = inner.pop().and_then(|s| s.into_block()).expect("backend block");
    assert_eq!(backend.identifier(), "backend");
    assert_eq!(backend.labels().iter().map(|l| l.as_str()).collect::<Vec<_>>(), ["s3"]);
    backend.body
}

fn flat_as_values(rendered: &RenderedBackend, expected: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    rendered
        .flat
        .iter()
        .map(|(name, raw)| {
            // Terraform converts primitive `-backend-config=KEY=VALUE` values from the raw text
            // and parses object-typed ones as an HCL expression; do the same.
            let value = match expected.get(name) {
                Some(Value::Bool(_)) => Value::Bool(raw.parse().unwrap_or_else(|_| panic!("{name}={raw} not a bool"))),
                Some(Value::Object(_)) => {
                    let expr: Expression = raw.parse().unwrap_or_else(|e| panic!("{name}={raw} not HCL: {e}"));
                    value_of(name, &expr)
                }
                _ => Value::Str(raw.clone()),
            };
            (name.clone(), value)
        })
        .collect()
}

/// The combinations the operator produces.
fn cases() -> Vec<(&'static str, BackendSettings)> {
    let base = BackendSettings::new(
        "acme-tfstate-payments-prod",
        "team-payments/payments-prod/terraform.tfstate",
        "eu-west-1",
    );
    let kms = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let role = "arn:aws:iam::123456789012:role/tfstate-team-payments-payments-prod";
    vec![
        (
            "kms+dynamodb",
            BackendSettings {
                kms_key_id: Some(kms.to_owned()),
                dynamodb_table: Some("acme-tfstate-payments-prod-lock".to_owned()),
                ..base.clone()
            },
        ),
        ("aes256+lockfile", BackendSettings { use_lockfile: true, ..base.clone() }),
        (
            "both+endpoints+assume_role",
            BackendSettings {
                kms_key_id: Some(kms.to_owned()),
                dynamodb_table: Some("acme-tfstate-payments-prod-lock".to_owned()),
                use_lockfile: true,
                assume_role_arn: Some(role.to_owned()),
                endpoints: Some(Endpoints::all("https://127.0.0.1:4566")),
                ..base.clone()
            },
        ),
        (
            "workspace_prefix+distinct_endpoints",
            BackendSettings {
                workspace_key_prefix: Some("env:".to_owned()),
                endpoints: Some(Endpoints {
                    s3: "https://s3.eu-west-1.example.com".to_owned(),
                    dynamodb: "https://dynamodb.eu-west-1.example.com".to_owned(),
                    sts: "https://sts.eu-west-1.example.com".to_owned(),
                    iam: "https://iam.example.com".to_owned(),
                }),
                ..base
            },
        ),
    ]
}

#[test]
fn backend_tf_parses_back_to_the_input() {
    for (name, settings) in cases() {
        let rendered = render(&settings).expect("render");
        assert_eq!(arguments_of(&backend_body(&rendered.backend_tf)), Ok(expected(&settings)), "{name}");
    }
}

#[test]
fn tfbackend_parses_back_to_the_input() {
    for (name, settings) in cases() {
        let rendered = render(&settings).expect("render");
        let body: Body = hcl::parse(&rendered.backend_tfbackend).expect("backend.tfbackend is HCL");
        assert_eq!(arguments_of(&body), Ok(expected(&settings)), "{name}");
    }
}

#[test]
fn flat_keys_read_back_to_the_input() {
    for (name, settings) in cases() {
        let rendered = render(&settings).expect("render");
        let expected = expected(&settings);
        assert_eq!(flat_as_values(&rendered, &expected), expected, "{name}");
    }
}

#[test]
fn assume_role_and_endpoints_are_attributes_with_object_values() {
    let (_, settings) = cases().into_iter().find(|(n, _)| *n == "both+endpoints+assume_role").expect("case");
    let rendered = render(&settings).expect("render");
    let tfbackend: Body = hcl::parse(&rendered.backend_tfbackend).expect("HCL");
    for body in [backend_body(&rendered.backend_tf), tfbackend] {
        for name in ["assume_role", "endpoints"] {
            let attr = body.attributes().find(|a| a.key() == name).unwrap_or_else(|| panic!("{name} attribute"));
            assert!(matches!(attr.expr(), Expression::Object(_)), "{name} = {:?}", attr.expr());
            assert!(body.blocks().all(|b| b.identifier() != name), "{name} must not be a block");
        }
    }
}

#[test]
fn the_shape_check_catches_a_hand_written_assume_role_block() {
    let bad = "terraform {\n  backend \"s3\" {\n    bucket = \"b\"\n    assume_role {\n      role_arn = \"x\"\n    }\n  }\n}\n";
    let body = backend_body(bad);
    assert!(body.attributes().all(|a| a.key() != "assume_role"));
    assert_eq!(body.blocks().map(|b| b.identifier()).collect::<Vec<_>>(), ["assume_role"]);
    assert_eq!(arguments_of(&body), Err(r#"blocks where only arguments are allowed: ["assume_role"]"#.to_owned()));
}

// ---- HashiCorp's parser -------------------------------------------------------------------

/// Runs `terraform-config-inspect --json DIR` and returns its diagnostics (none when the key is
/// absent). Its exit status is 1 when there are diagnostics, so the JSON is the verdict.
fn inspect_diagnostics(dir: &Path) -> Vec<serde_json::Value> {
    let output = match Command::new(INSPECT).arg("--json").arg(dir).output() {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`{INSPECT}` is not on PATH: install the Debian package `terraform-config-inspect` \
             (it is in Debian trixie and later; on bookworm install trixie's .deb, it needs only libc6) \
             so that the rendered HCL is checked by HashiCorp's own parser"
        ),
        Err(e) => panic!("cannot run {INSPECT}: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("{INSPECT} printed no JSON ({e}); stdout: {stdout}; stderr: {}", String::from_utf8_lossy(&output.stderr))
    });
    match json.get("diagnostics") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(diagnostics)) => diagnostics.clone(),
        Some(other) => panic!("unexpected diagnostics value: {other}"),
    }
}

/// Diagnostics for `text` saved as the only `.tf` file of a fresh directory.
fn inspect_text(text: &str) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("backend.tf"), text).expect("write backend.tf");
    inspect_diagnostics(dir.path())
}

#[test]
fn hashicorp_parser_accepts_rendered_backend_tf() {
    for (name, settings) in cases() {
        let rendered = render(&settings).expect("render");
        let diagnostics = inspect_text(&rendered.backend_tf);
        assert!(diagnostics.is_empty(), "{name}: {diagnostics:#?}\n{}", rendered.backend_tf);
    }
}

#[test]
fn hashicorp_parser_accepts_rendered_tfbackend() {
    // Terraform reads a .tfbackend file with the same HCL native-syntax parser as .tf files;
    // the inspector only looks at *.tf, so the file is checked under that name.
    for (name, settings) in cases() {
        let rendered = render(&settings).expect("render");
        let diagnostics = inspect_text(&rendered.backend_tfbackend);
        assert!(diagnostics.is_empty(), "{name}: {diagnostics:#?}\n{}", rendered.backend_tfbackend);
    }
}

#[test]
fn hashicorp_parser_does_report_syntax_errors() {
    // Guards against a vacuous pass: a broken file must produce a diagnostic.
    let diagnostics = inspect_text("terraform {\n  backend \"s3\" {\n    bucket =\n  }\n}\n");
    assert!(!diagnostics.is_empty(), "a missing value must be reported");
    assert_eq!(diagnostics[0]["severity"], "error", "{diagnostics:#?}");
}

#[test]
fn hashicorp_parser_accepts_an_assume_role_block_so_the_shape_check_is_what_protects_us() {
    // Documents the limit of a syntax check: `assume_role { ... }` is valid HCL, so the
    // inspector reports nothing, yet Terraform >= 1.6 refuses it ("Blocks of type
    // "assume_role" are not expected here"). The shape tests above are the guard.
    let bad = "terraform {\n  backend \"s3\" {\n    bucket = \"b\"\n    assume_role {\n      role_arn = \"x\"\n    }\n  }\n}\n";
    assert_eq!(inspect_text(bad), Vec::<serde_json::Value>::new());
}
