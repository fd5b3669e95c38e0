//! The `TerraformStatePolicy` CRD on a real kube-apiserver (v1.20): it installs, the examples
//! of docs/tenancy.md are accepted and read back with exactly the defaults the Rust types
//! declare, invalid policies are rejected naming the field, `kubectl get tfsp` shows useful
//! columns, and policies listed from the server resolve against real namespace labels.
//!
//! Policies are cluster-scoped: every name here carries a random suffix, and each test
//! considers only its own policies.

mod common;

use std::time::Duration;

use common::{Ground, delete_namespace, random_suffix, repo_root};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tfstate_operator::api::{TerraformStatePolicy, TerraformStatePolicySpec};
use tfstate_operator::tenancy::resolve;

/// Applies the policy CRD from `crds/` and waits until the API server serves it.
async fn install_policy_crd(client: &Client) {
    let yaml =
        std::fs::read_to_string(repo_root().join("crds/terraformstatepolicies.tfstate.dev.yaml")).expect("read crds/");
    let crd: CustomResourceDefinition = serde_yaml_ng::from_str(&yaml).expect("crds/ holds a CRD");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().expect("CRD has a name");
    api.patch(&name, &PatchParams::apply("tfstate-tests").force(), &Patch::Apply(&crd)).await.expect("apply CRD");
    for _ in 0..100 {
        let got = api.get(&name).await.expect("get CRD");
        let established = got
            .status
            .and_then(|s| s.conditions)
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
        if established {
            // Established can precede serving by a moment.
            let policies = Api::<TerraformStatePolicy>::all(client.clone());
            for _ in 0..50 {
                if policies.list(&Default::default()).await.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("CRD {name} not served after 10 s");
}

fn dynamic_api(client: &Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &ApiResource::erase::<TerraformStatePolicy>(&()))
}

/// The `TerraformStatePolicy` examples of docs/tenancy.md, as JSON.
fn documented_policies() -> Vec<Value> {
    let text = std::fs::read_to_string(repo_root().join("docs/tenancy.md")).expect("docs/tenancy.md");
    text.split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split_once("```").map(|(yaml, _)| yaml))
        .filter(|yaml| yaml.contains("kind: TerraformStatePolicy"))
        .map(|yaml| serde_yaml_ng::from_str(yaml).expect("documented policy is YAML"))
        .collect()
}

fn object(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStatePolicy", "metadata": {"name": name}, "spec": spec})
}

async fn create(api: &Api<DynamicObject>, obj: &Value) -> Result<DynamicObject, kube::Error> {
    let obj: DynamicObject = serde_json::from_value(obj.clone()).expect("test object is a Kubernetes object");
    api.create(&PostParams::default(), &obj).await
}

async fn delete_all(api: &Api<DynamicObject>, names: &[String]) {
    for name in names {
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
}

#[tokio::test]
async fn documented_policies_are_accepted_and_read_back_with_defaults() {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_policy_crd(&client).await;
    let api = dynamic_api(&client);
    let sfx = random_suffix();
    let examples = documented_policies();
    assert_eq!(examples.len(), 4, "docs/tenancy.md has four policy examples");
    let mut created = Vec::new();
    for mut example in examples {
        let name = format!("{}-{sfx}", example["metadata"]["name"].as_str().unwrap());
        example["metadata"]["name"] = json!(name);
        let result = create(&api, &example).await;
        created.push(name.clone());
        if let Err(e) = result {
            delete_all(&api, &created).await;
            panic!("documented policy {name} rejected: {e}");
        }
        let stored = api.get(&name).await.unwrap();
        // The Rust types' defaults are exactly what the API server stored.
        let typed: TerraformStatePolicySpec = serde_json::from_value(example["spec"].clone()).unwrap();
        assert_eq!(stored.data["spec"], serde_json::to_value(&typed).unwrap(), "{name}: server-side defaults differ");
    }
    // Server-side defaults of an empty policy: nothing allowed beyond the defaults.
    let minimal = format!("minimal-{sfx}");
    create(&api, &object(&minimal, json!({"namespaceSelector": {}}))).await.expect("minimal policy");
    created.push(minimal.clone());
    assert_eq!(
        api.get(&minimal).await.unwrap().data["spec"],
        json!({"namespaceSelector": {}, "allowedNames": {}, "allowAdoption": false, "trust": {}, "encryption": {}, "role": {}})
    );
    delete_all(&api, &created).await;
}

#[tokio::test]
async fn invalid_policies_are_rejected_naming_the_field() {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_policy_crd(&client).await;
    let api = dynamic_api(&client);
    let sfx = random_suffix();
    let expr = |e: Value| json!({"namespaceSelector": {"matchExpressions": [e]}});
    // v1.20 names list items without their index (`matchExpressions.values`).
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "spec.namespaceSelector"),
        (expr(json!({"key": "env", "operator": "In"})), "spec.namespaceSelector.matchExpressions"),
        (expr(json!({"key": "env", "operator": "NotIn", "values": []})), "spec.namespaceSelector.matchExpressions"),
        (expr(json!({"key": "env", "operator": "Exists", "values": ["x"]})), "spec.namespaceSelector.matchExpressions"),
        (
            expr(json!({"key": "env", "operator": "Equals", "values": ["x"]})),
            "spec.namespaceSelector.matchExpressions.operator",
        ),
        (expr(json!({"key": "bad key!", "operator": "Exists"})), "spec.namespaceSelector.matchExpressions.key"),
        (
            json!({"namespaceSelector": {}, "allowedNames": {"buckets": ["acme-{namspace}-*"]}}),
            "spec.allowedNames.buckets",
        ),
        (json!({"namespaceSelector": {}, "allowedNames": {"roles": ["bad role"]}}), "spec.allowedNames.roles"),
        (
            json!({"namespaceSelector": {}, "allowedNames": {"kmsAliases": ["tfstate/*"]}}),
            "spec.allowedNames.kmsAliases",
        ),
        (
            json!({"namespaceSelector": {}, "trust": {"allowedServiceAccountNamespaces": ["Team_A"]}}),
            "spec.trust.allowedServiceAccountNamespaces",
        ),
        (
            json!({"namespaceSelector": {}, "trust": {"allowedAwsAccountIds": ["12345"]}}),
            "spec.trust.allowedAwsAccountIds",
        ),
        (json!({"namespaceSelector": {}, "trust": {"principalOrgId": "org-1"}}), "spec.trust.principalOrgId"),
        (
            json!({"namespaceSelector": {}, "encryption": {"allowedExistingKeyArns": ["kms:*"]}}),
            "spec.encryption.allowedExistingKeyArns",
        ),
        (json!({"namespaceSelector": {}, "role": {"iamPath": "/no-trailing-slash"}}), "spec.role.iamPath"),
        (
            json!({"namespaceSelector": {}, "role": {"permissionsBoundaryArn": "arn:aws:iam::123456789012:role/x"}}),
            "spec.role.permissionsBoundaryArn",
        ),
        (
            json!({"namespaceSelector": {}, "operatorRoleArn": "arn:aws:iam::123456789012:user/x"}),
            "spec.operatorRoleArn",
        ),
    ];
    let mut problems = Vec::new();
    let mut created = Vec::new();
    for (i, (spec, field)) in cases.iter().enumerate() {
        let name = format!("invalid-{i}-{sfx}");
        match create(&api, &object(&name, spec.clone())).await {
            Ok(_) => {
                created.push(name);
                problems.push(format!("accepted {spec}"));
            }
            Err(kube::Error::Api(e)) if e.code == 422 && e.message.contains(field) => {}
            Err(e) => problems.push(format!("{spec}: expected 422 naming {field}, got {e}")),
        }
    }
    // The valid forms of the same requirements are accepted.
    for (i, e) in [
        json!({"key": "env", "operator": "In", "values": ["prod"]}),
        json!({"key": "env", "operator": "NotIn", "values": ["prod"]}),
        json!({"key": "tfstate.dev/tenant", "operator": "Exists"}),
        json!({"key": "env", "operator": "DoesNotExist", "values": []}),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("valid-{i}-{sfx}");
        match create(&api, &object(&name, expr(e.clone()))).await {
            Ok(_) => created.push(name),
            Err(err) => problems.push(format!("rejected the valid requirement {e}: {err}")),
        }
    }
    delete_all(&api, &created).await;
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test]
async fn kubectl_get_shows_the_policy_columns() {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_policy_crd(&client).await;
    let api = dynamic_api(&client);
    let name = format!("columns-{}", random_suffix());
    let spec = json!({
        "namespaceSelector": {"matchLabels": {"tier": "tenant"}},
        "allowAdoption": true,
        "trust": {"principalOrgId": "o-a1b2c3d4e5"},
        "role": {"permissionsBoundaryArn": "arn:aws:iam::123456789012:policy/boundary"},
        "operatorRoleArn": "arn:aws:iam::210987654321:role/tfstate-operator",
    });
    create(&api, &object(&name, spec)).await.expect("create policy");
    // What kubectl asks for: the server-side Table of the object.
    let request = axum::http::Request::get(format!("/apis/tfstate.dev/v1alpha1/terraformstatepolicies/{name}"))
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .unwrap();
    let table: Value = client.request(request).await.expect("table");
    delete_all(&api, std::slice::from_ref(&name)).await;
    let columns: Vec<(&str, i64)> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["priority"].as_i64().unwrap_or(0)))
        .collect();
    assert_eq!(
        columns,
        [("Name", 0), ("Operator-Role", 0), ("Boundary", 0), ("Adoption", 0), ("Org", 1), ("Selector", 1), ("Age", 0)]
    );
    let cells = &table["rows"][0]["cells"];
    assert_eq!(cells[0], json!(name));
    assert_eq!(cells[1], "arn:aws:iam::210987654321:role/tfstate-operator");
    assert_eq!(cells[2], "arn:aws:iam::123456789012:policy/boundary");
    assert_eq!(cells[3], true);
    assert_eq!(cells[4], "o-a1b2c3d4e5");
    assert!(cells[5].as_str().is_some_and(|s| s.contains("tier") && s.contains("tenant")), "selector cell: {cells}");
}

#[tokio::test]
async fn policies_from_the_server_resolve_against_namespace_labels() {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_policy_crd(&client).await;
    let api = dynamic_api(&client);
    let sfx = random_suffix();
    // A label key of this run only, so that other tests' policies select nothing here.
    let key = format!("tfstate-test/run-{sfx}");
    let specs = [
        ("catch-all", json!({"namespaceSelector": {"matchExpressions": [{"key": key, "operator": "Exists"}]}})),
        (
            "tenants",
            json!({"namespaceSelector": {"matchLabels": {key.clone(): "tenant"}, "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]},
                   "operatorRoleArn": "arn:aws:iam::210987654321:role/tfstate-{namespace}"}),
        ),
    ];
    let mut created = Vec::new();
    for (name, spec) in &specs {
        let name = format!("{name}-{sfx}");
        create(&api, &object(&name, spec.clone())).await.expect("create policy");
        created.push(name);
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let labelled = [
        (format!("tenant-{sfx}"), json!({key.clone(): "tenant"})),
        (format!("prod-{sfx}"), json!({key.clone(): "tenant", "env": "prod"})),
        (format!("plain-{sfx}"), json!({})),
    ];
    for (ns, labels) in &labelled {
        let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns, "labels": labels}})).unwrap();
        namespaces.create(&PostParams::default(), &obj).await.expect("create namespace");
    }

    // Typed: what the reconciler will list, with the server's defaults filled in.
    let mine: Vec<TerraformStatePolicy> = Api::<TerraformStatePolicy>::all(client.clone())
        .list(&Default::default())
        .await
        .expect("list policies")
        .items
        .into_iter()
        .filter(|p| p.metadata.name.as_deref().is_some_and(|n| n.ends_with(&sfx)))
        .collect();
    assert_eq!(mine.len(), 2);
    let mut results = Vec::new();
    for (ns, _) in &labelled {
        let labels = namespaces.get(ns).await.expect("get namespace").metadata.labels.unwrap_or_default();
        let p = resolve(&mine, ns, &labels);
        results.push((p.policy_name().to_string(), p.operator_role_arn));
    }
    for (ns, _) in &labelled {
        delete_namespace(&client, ns).await;
    }
    delete_all(&api, &created).await;
    assert_eq!(
        results,
        [
            (format!("tenants-{sfx}"), Some(format!("arn:aws:iam::210987654321:role/tfstate-tenant-{sfx}"))),
            (format!("catch-all-{sfx}"), None),
            ("built-in default".to_string(), None),
        ]
    );
}
