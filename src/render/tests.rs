//! Unit tests of rendering. The exact-text tests double as documentation of the output.

use std::collections::BTreeMap;

use super::*;

const KMS_KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const ROLE: &str = "arn:aws:iam::123456789012:role/tfstate-team-payments-payments-prod";
const ENDPOINT: &str = "https://127.0.0.1:4566";

fn minimal() -> BackendSettings {
    BackendSettings::new("acme-tfstate-payments-prod", "team-payments/payments-prod/terraform.tfstate", "eu-west-1")
}

/// Every optional argument set: KMS, both lock modes, a workspace prefix, a role, endpoints.
fn full() -> BackendSettings {
    BackendSettings {
        kms_key_id: Some(KMS_KEY.to_owned()),
        dynamodb_table: Some("acme-tfstate-payments-prod-lock".to_owned()),
        use_lockfile: true,
        assume_role_arn: Some(ROLE.to_owned()),
        workspace_key_prefix: Some("env:".to_owned()),
        endpoints: Some(Endpoints::all(ENDPOINT)),
        ..minimal()
    }
}

fn rendered(settings: &BackendSettings) -> RenderedBackend {
    render(settings).expect("rendering never fails for plain settings")
}

#[test]
fn full_backend_tf_is_exactly_this() {
    let expected = r#"terraform {
  backend "s3" {
    bucket = "acme-tfstate-payments-prod"
    key = "team-payments/payments-prod/terraform.tfstate"
    region = "eu-west-1"
    encrypt = true
    kms_key_id = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    dynamodb_table = "acme-tfstate-payments-prod-lock"
    use_lockfile = true
    workspace_key_prefix = "env:"
    assume_role = {
      role_arn = "arn:aws:iam::123456789012:role/tfstate-team-payments-payments-prod"
    }
    endpoints = {
      s3 = "https://127.0.0.1:4566"
      dynamodb = "https://127.0.0.1:4566"
      sts = "https://127.0.0.1:4566"
      iam = "https://127.0.0.1:4566"
    }
    use_path_style = true
  }
}
"#;
    assert_eq!(rendered(&full()).backend_tf, expected);
}

#[test]
fn full_tfbackend_is_exactly_this() {
    let expected = r#"bucket = "acme-tfstate-payments-prod"
key = "team-payments/payments-prod/terraform.tfstate"
region = "eu-west-1"
encrypt = true
kms_key_id = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
dynamodb_table = "acme-tfstate-payments-prod-lock"
use_lockfile = true
workspace_key_prefix = "env:"
assume_role = {
  role_arn = "arn:aws:iam::123456789012:role/tfstate-team-payments-payments-prod"
}
endpoints = {
  s3 = "https://127.0.0.1:4566"
  dynamodb = "https://127.0.0.1:4566"
  sts = "https://127.0.0.1:4566"
  iam = "https://127.0.0.1:4566"
}
use_path_style = true
"#;
    assert_eq!(rendered(&full()).backend_tfbackend, expected);
}

#[test]
fn minimal_outputs_are_exactly_this() {
    let out = rendered(&minimal());
    let tf = r#"terraform {
  backend "s3" {
    bucket = "acme-tfstate-payments-prod"
    key = "team-payments/payments-prod/terraform.tfstate"
    region = "eu-west-1"
    encrypt = true
  }
}
"#;
    let tfbackend = r#"bucket = "acme-tfstate-payments-prod"
key = "team-payments/payments-prod/terraform.tfstate"
region = "eu-west-1"
encrypt = true
"#;
    assert_eq!(out.backend_tf, tf);
    assert_eq!(out.backend_tfbackend, tfbackend);
}

#[test]
fn full_flat_keys_are_raw_values() {
    let obj_endpoints =
        format!(r#"{{ s3 = "{ENDPOINT}", dynamodb = "{ENDPOINT}", sts = "{ENDPOINT}", iam = "{ENDPOINT}" }}"#);
    let expected: BTreeMap<String, String> = [
        ("bucket", "acme-tfstate-payments-prod".to_owned()),
        ("key", "team-payments/payments-prod/terraform.tfstate".to_owned()),
        ("region", "eu-west-1".to_owned()),
        ("encrypt", "true".to_owned()),
        ("kms_key_id", KMS_KEY.to_owned()),
        ("dynamodb_table", "acme-tfstate-payments-prod-lock".to_owned()),
        ("use_lockfile", "true".to_owned()),
        ("workspace_key_prefix", "env:".to_owned()),
        ("assume_role", format!(r#"{{ role_arn = "{ROLE}" }}"#)),
        ("endpoints", obj_endpoints),
        ("use_path_style", "true".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(rendered(&full()).flat, expected);
}

#[test]
fn minimal_flat_keys_are_the_required_ones() {
    let keys: Vec<String> = rendered(&minimal()).flat.into_keys().collect();
    assert_eq!(keys, ["bucket", "encrypt", "key", "region"]);
}

#[test]
fn object_arguments_use_the_equals_sign_never_blocks() {
    let out = rendered(&full());
    for text in [&out.backend_tf, &out.backend_tfbackend] {
        assert!(text.contains("assume_role = {"), "{text}");
        assert!(text.contains("endpoints = {"), "{text}");
        assert!(!text.contains("assume_role {"), "{text}");
        assert!(!text.contains("endpoints {"), "{text}");
    }
}

#[test]
fn never_the_removed_top_level_role_arn_or_force_path_style() {
    let out = rendered(&full());
    let tf: Body = hcl::parse(&out.backend_tf).expect("valid HCL");
    let terraform = tf.blocks().next().expect("terraform block");
    let backend = terraform.body().blocks().next().expect("backend block");
    let tfbackend: Body = hcl::parse(&out.backend_tfbackend).expect("valid HCL");
    for body in [backend.body(), &tfbackend] {
        let names: Vec<&str> = body.attributes().map(|a| a.key()).collect();
        assert!(!names.contains(&"role_arn"), "{names:?}");
        assert!(!names.contains(&"force_path_style"), "{names:?}");
        assert!(names.contains(&"use_path_style"), "{names:?}");
    }
    assert!(!out.flat.contains_key("role_arn"));
}

#[test]
fn optional_arguments_appear_only_when_set() {
    let out = rendered(&minimal());
    for name in [
        "kms_key_id",
        "dynamodb_table",
        "use_lockfile",
        "workspace_key_prefix",
        "assume_role",
        "endpoints",
        "use_path_style",
    ] {
        assert!(!out.flat.contains_key(name), "{name}");
        assert!(!out.backend_tf.contains(name), "{name}");
        assert!(!out.backend_tfbackend.contains(name), "{name}");
    }
}

/// Sets one optional field of the settings.
type Setter = fn(&mut BackendSettings);

#[test]
fn each_optional_argument_appears_alone() {
    let cases: [(Setter, &[&str]); 6] = [
        (|s| s.kms_key_id = Some(KMS_KEY.to_owned()), &["kms_key_id"]),
        (|s| s.dynamodb_table = Some("t".to_owned()), &["dynamodb_table"]),
        (|s| s.use_lockfile = true, &["use_lockfile"]),
        (|s| s.workspace_key_prefix = Some("ws".to_owned()), &["workspace_key_prefix"]),
        (|s| s.assume_role_arn = Some(ROLE.to_owned()), &["assume_role"]),
        (|s| s.endpoints = Some(Endpoints::all(ENDPOINT)), &["endpoints", "use_path_style"]),
    ];
    for (set, added) in cases {
        let mut settings = minimal();
        set(&mut settings);
        let keys: Vec<String> = rendered(&settings).flat.into_keys().collect();
        let mut expected: Vec<&str> =
            ["bucket", "encrypt", "key", "region"].into_iter().chain(added.iter().copied()).collect();
        expected.sort_unstable();
        assert_eq!(keys, expected);
    }
}

#[test]
fn encrypt_is_a_bool_and_false_is_explicit() {
    let mut settings = minimal();
    assert!(rendered(&settings).backend_tf.contains("    encrypt = true\n"));
    settings.encrypt = false;
    let out = rendered(&settings);
    assert!(out.backend_tf.contains("    encrypt = false\n"));
    assert_eq!(out.flat["encrypt"], "false");
}

#[test]
fn endpoints_all_sets_every_service() {
    let endpoints = Endpoints::all(ENDPOINT);
    assert_eq!([&endpoints.s3, &endpoints.dynamodb, &endpoints.sts, &endpoints.iam], [ENDPOINT; 4]);
}

#[test]
fn distinct_endpoints_keep_their_service() {
    let endpoints = Endpoints {
        s3: "https://s3.example".to_owned(),
        dynamodb: "https://ddb.example".to_owned(),
        sts: "https://sts.example".to_owned(),
        iam: "https://iam.example".to_owned(),
    };
    let settings = BackendSettings { endpoints: Some(endpoints), ..minimal() };
    assert_eq!(
        rendered(&settings).flat["endpoints"],
        r#"{ s3 = "https://s3.example", dynamodb = "https://ddb.example", sts = "https://sts.example", iam = "https://iam.example" }"#
    );
}

#[test]
fn configmap_data_holds_files_and_flat_keys() {
    let out = rendered(&full());
    let data = out.clone().into_configmap_data();
    assert_eq!(data.len(), out.flat.len() + 2);
    assert_eq!(data[BACKEND_TF_KEY], out.backend_tf);
    assert_eq!(data[BACKEND_TFBACKEND_KEY], out.backend_tfbackend);
    for (key, value) in &out.flat {
        assert_eq!(&data[key], value);
    }
}

#[test]
fn output_is_deterministic() {
    assert_eq!(rendered(&full()), rendered(&full()));
}

#[test]
fn awkward_strings_are_escaped_in_files_and_raw_in_flat_keys() {
    // Not values the validate step lets through, but the formatter must keep the HCL valid
    // whatever it gets: quotes, backslashes and template markers are escaped.
    let key = r#"a"b\c${var.x}%{if}d"#;
    let settings = BackendSettings { key: key.to_owned(), ..minimal() };
    let out = rendered(&settings);
    assert_eq!(out.flat["key"], key);
    let body: Body = hcl::parse(&out.backend_tfbackend).expect("valid HCL");
    let attr = body.attributes().find(|a| a.key() == "key").expect("key attribute");
    assert_eq!(attr.expr(), &Expression::String(key.to_owned()));
}

#[test]
fn format_error_names_the_output() {
    let source = <hcl::Error as serde::ser::Error>::custom("boom");
    let err = RenderError::Format { output: BACKEND_TF_KEY.to_owned(), source };
    assert_eq!(err.to_string(), "cannot format backend.tf as HCL: boom");
}

/// OpenTofu's client-side encryption for the backend's key, with the role the backend assumes.
fn with_open_tofu() -> BackendSettings {
    BackendSettings {
        open_tofu_encryption: Some(OpenTofuEncryption {
            kms_key_id: KMS_KEY.to_owned(),
            region: "eu-west-1".to_owned(),
            assume_role_arn: Some(ROLE.to_owned()),
        }),
        ..full()
    }
}

#[test]
fn encryption_tf_is_exactly_this() {
    let expected = r#"terraform {
  encryption {
    key_provider "aws_kms" "tfstate" {
      kms_key_id = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
      region = "eu-west-1"
      key_spec = "AES_256"
      assume_role = {
        role_arn = "arn:aws:iam::123456789012:role/tfstate-team-payments-payments-prod"
      }
    }

    method "aes_gcm" "tfstate" {
      keys = key_provider.aws_kms.tfstate
    }

    state {
      method = method.aes_gcm.tfstate
      enforced = true
    }

    plan {
      method = method.aes_gcm.tfstate
      enforced = true
    }
  }
}
"#;
    let enc = rendered(&with_open_tofu()).encryption.expect("encryption rendered");
    assert_eq!(enc.encryption_tf, expected);
}

#[test]
fn tf_encryption_is_the_body_of_the_encryption_block() {
    // OpenTofu parses TF_ENCRYPTION as the body of `encryption { }`: no wrapper blocks.
    let expected = r#"key_provider "aws_kms" "tfstate" {
  kms_key_id = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  region = "eu-west-1"
  key_spec = "AES_256"
}

method "aes_gcm" "tfstate" {
  keys = key_provider.aws_kms.tfstate
}

state {
  method = method.aes_gcm.tfstate
  enforced = true
}

plan {
  method = method.aes_gcm.tfstate
  enforced = true
}
"#;
    let mut settings = with_open_tofu();
    if let Some(enc) = settings.open_tofu_encryption.as_mut() {
        enc.assume_role_arn = None;
    }
    let enc = rendered(&settings).encryption.expect("encryption rendered");
    assert_eq!(enc.tf_encryption, expected);
    assert!(!enc.encryption_tf.contains("assume_role"), "no role, no assume_role");
}

#[test]
fn encryption_keys_are_in_the_configmap_only_when_asked_for() {
    let data = rendered(&with_open_tofu()).into_configmap_data();
    assert!(data.contains_key(ENCRYPTION_TF_KEY) && data.contains_key(TF_ENCRYPTION_KEY));
    let without = rendered(&full());
    assert_eq!(without.encryption, None);
    let data = without.into_configmap_data();
    assert!(!data.contains_key(ENCRYPTION_TF_KEY) && !data.contains_key(TF_ENCRYPTION_KEY));
    // The backend files are the same either way: encryption is not a backend argument.
    assert_eq!(rendered(&with_open_tofu()).backend_tf, rendered(&full()).backend_tf);
}

#[test]
fn encryption_values_are_escaped_by_the_library() {
    let mut settings = with_open_tofu();
    if let Some(enc) = settings.open_tofu_encryption.as_mut() {
        enc.region = "eu-west-1\" }\nkey_provider \"x\" \"y\" { a = \"${b}".to_owned();
    }
    let enc = rendered(&settings).encryption.expect("encryption rendered");
    let body: hcl::Body = hcl::from_str(&enc.tf_encryption).expect("parses");
    assert_eq!(body.blocks().count(), 4, "no block injected");
}
