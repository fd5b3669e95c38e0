//! `crds/` must hold exactly what `tfstate-operator crd --kind KIND` prints, `crd` must print
//! both, and every field of both schemas must be documented (so `kubectl explain --recursive`
//! documents everything).

use std::path::PathBuf;

use tfstate_operator::api::{crd, crd_yaml, policy_crd, policy_crd_yaml};

/// (`--kind`, file in `crds/`, generated YAML).
fn crds() -> [(&'static str, &'static str, String); 2] {
    [
        ("backend", "crds/terraformstatebackends.tfstate.dev.yaml", crd_yaml().expect("CRD serializes")),
        ("policy", "crds/terraformstatepolicies.tfstate.dev.yaml", policy_crd_yaml().expect("CRD serializes")),
    ]
}

/// The checkout the test runs in, read at run time: see `common::repo_root` for why not `env!`.
fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}

fn binary(args: &[&str]) -> String {
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_tfstate-operator")).args(args).output().expect("run binary");
    assert!(
        out.status.success(),
        "`tfstate-operator {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn crds_dir_matches_generated_crds() {
    for (kind, file, generated) in crds() {
        let committed =
            std::fs::read_to_string(repo_root().join(file)).unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
        assert!(
            committed == generated,
            "{file} is out of date with src/api/. Regenerate it with:\n\n    cargo run -- crd --kind {kind} > {file}\n"
        );
    }
    let mut names: Vec<_> = std::fs::read_dir(repo_root().join("crds"))
        .expect("crds/")
        .map(|e| format!("crds/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    names.sort();
    assert_eq!(names, crds().map(|(_, file, _)| file.to_string()), "crds/ holds exactly the generated CRDs");
}

#[test]
fn crd_output_is_the_binary_output() {
    let [(_, _, backend), (_, _, policy)] = crds();
    assert_eq!(binary(&["crd", "--kind", "backend"]), backend);
    assert_eq!(binary(&["crd", "--kind", "policy"]), policy);
    // Without --kind: both, as a multi-document YAML stream that `kubectl apply -f -` takes.
    let both = binary(&["crd"]);
    assert_eq!(both, format!("{backend}---\n{policy}"));
    let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&both)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML document"))
        .collect();
    let names: Vec<_> = docs.iter().map(|d| d["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["terraformstatebackends.tfstate.dev", "terraformstatepolicies.tfstate.dev"]);
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
fn every_policy_field_is_documented() {
    let crd = serde_json::to_value(policy_crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    assert!(schema["description"].as_str().is_some_and(|d| d.contains("TerraformStateBackends")));
    assert!(schema["properties"]["spec"]["description"].as_str().is_some_and(|d| d.contains("most specific")));
    assert!(schema["properties"].get("status").is_none(), "the operator never writes a policy's status");
    let mut missing = Vec::new();
    undocumented(&schema["properties"]["spec"], "spec", &mut missing);
    assert!(missing.is_empty(), "fields without a doc comment: {missing:#?}");
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
    assert_eq!(cols, ["Ready", "Bucket", "Lock", "Policy", "Age"]);
    assert!(v.subresources.as_ref().is_some_and(|s| s.status.is_some()));
}

#[test]
fn policy_printer_columns_and_names() {
    let crd = policy_crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("terraformstatepolicies.tfstate.dev"));
    assert_eq!(crd.spec.group, "tfstate.dev");
    assert_eq!(crd.spec.scope, "Cluster");
    assert_eq!(crd.spec.names.kind, "TerraformStatePolicy");
    assert_eq!(crd.spec.names.short_names.as_deref(), Some(&["tfsp".to_string()][..]));
    assert_eq!(crd.spec.names.categories.as_deref(), Some(&["terraform".to_string()][..]));
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    let cols: Vec<_> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.as_str(), c.json_path.as_str(), c.priority.unwrap_or(0)))
        .collect();
    assert_eq!(
        cols,
        [
            ("Operator-Role", ".spec.operatorRoleArn", 0),
            ("Boundary", ".spec.role.permissionsBoundaryArn", 0),
            ("Adoption", ".spec.allowAdoption", 0),
            ("Org", ".spec.trust.principalOrgId", 1),
            ("Selector", ".spec.namespaceSelector", 1),
            ("Age", ".metadata.creationTimestamp", 0),
        ]
    );
    assert!(v.subresources.is_none());
}

#[test]
fn policy_label_requirements_need_values_exactly_for_in_and_not_in() {
    let crd = serde_json::to_value(policy_crd()).unwrap();
    let requirement = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["namespaceSelector"]
        ["properties"]["matchExpressions"]["items"];
    assert_eq!(
        requirement["properties"]["operator"]["enum"],
        serde_json::json!(["In", "NotIn", "Exists", "DoesNotExist"])
    );
    assert_eq!(
        requirement["anyOf"],
        serde_json::json!([
            {"properties": {"operator": {"enum": ["In", "NotIn"]}, "values": {"minItems": 1}}, "required": ["values"]},
            {"properties": {"operator": {"enum": ["Exists", "DoesNotExist"]}, "values": {"maxItems": 0}}},
        ])
    );
}
