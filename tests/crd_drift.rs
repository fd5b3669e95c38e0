//! `crds/` must hold exactly what `tfstate-operator crd` prints, and every field of the
//! schema must be documented (so `kubectl explain --recursive` documents everything).

use std::path::Path;

use tfstate_operator::api::{crd, crd_yaml};

const CRD_FILE: &str = "crds/terraformstatebackends.tfstate.dev.yaml";

#[test]
fn crds_dir_matches_generated_crd() {
    let committed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(CRD_FILE))
        .unwrap_or_else(|e| panic!("cannot read {CRD_FILE}: {e}"));
    let generated = crd_yaml().expect("CRD serializes");
    assert!(
        committed == generated,
        "{CRD_FILE} is out of date with src/api/. Regenerate it with:\n\n    cargo run -- crd > {CRD_FILE}\n"
    );
}

#[test]
fn crd_output_is_the_binary_output() {
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_tfstate-operator")).arg("crd").output().expect("run binary");
    assert!(out.status.success(), "`tfstate-operator crd` failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), crd_yaml().unwrap());
}

/// Walks the schema and collects the paths of properties without a description.
fn undocumented(schema: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
        for (name, sub) in props {
            let p = format!("{path}.{name}");
            if sub.get("description").and_then(|d| d.as_str()).is_none_or(str::is_empty) {
                out.push(p.clone());
            }
            undocumented(sub, &p, out);
        }
    }
    if let Some(items) = schema.get("items") {
        undocumented(items, &format!("{path}[]"), out);
    }
}

#[test]
fn every_spec_and_status_field_is_documented() {
    let crd = serde_json::to_value(crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    assert!(schema["description"].as_str().is_some_and(|d| d.contains("Terraform")));
    let mut missing = Vec::new();
    undocumented(&schema["properties"]["spec"], "spec", &mut missing);
    undocumented(&schema["properties"]["status"], "status", &mut missing);
    // metav1.Condition's own fields come documented from k8s-openapi.
    assert!(missing.is_empty(), "fields without a doc comment: {missing:#?}");
    // `nullable` would hide the types of optional fields from `kubectl explain` on 1.20.
    assert!(!serde_json::to_string(schema).unwrap().contains("nullable"));
}

#[test]
fn printer_columns_and_names() {
    let crd = crd();
    assert_eq!(crd.spec.group, "tfstate.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names.as_deref(), Some(&["tfsb".to_string()][..]));
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    let cols: Vec<_> = v.additional_printer_columns.iter().flatten().map(|c| c.name.as_str()).collect();
    assert_eq!(cols, ["Ready", "Bucket", "Lock", "Age"]);
    assert!(v.subresources.as_ref().is_some_and(|s| s.status.is_some()));
}
