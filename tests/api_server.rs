//! The CRD on a real kube-apiserver: it installs, every sample is accepted and reads
//! back with exactly the defaults the Rust types declare, and invalid objects are
//! rejected with a message that names the field.

mod common;

use common::{Ground, delete_namespace, install_crd, repo_root, test_namespace};
use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tfstate_operator::api::{TerraformStateBackend, TerraformStateBackendSpec};
use tfstate_operator::reconcile::validate::{ObjectRef, OperatorDefaults, validate};

fn dynamic_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<TerraformStateBackend>(&()))
}

fn read_samples() -> Vec<(String, Value)> {
    let mut samples: Vec<_> = std::fs::read_dir(repo_root().join("samples"))
        .expect("samples/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), serde_yaml_ng::from_str(&text).unwrap())
        })
        .collect();
    samples.sort_by(|a, b| a.0.cmp(&b.0));
    samples
}

async fn create(api: &Api<DynamicObject>, obj: &Value) -> Result<DynamicObject, kube::Error> {
    let obj: DynamicObject = serde_json::from_value(obj.clone()).expect("test object is a Kubernetes object");
    api.create(&PostParams::default(), &obj).await
}

/// Creates `obj` and requires the API server to refuse it (422) with a message naming
/// `field`; `what` describes the case.
async fn assert_refused(api: &Api<DynamicObject>, obj: &Value, what: &str, field: &str) {
    match create(api, obj).await {
        Ok(_) => panic!("{what} was accepted by the API server"),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{what}: {status:?}");
            assert!(status.message.contains(field), "{what}: message does not name {field}: {}", status.message);
        }
        Err(e) => panic!("{what}: unexpected error {e}"),
    }
}

#[tokio::test]
async fn samples_are_accepted_and_read_back_with_defaults() {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, "samples").await;
    let api = dynamic_api(&client, &ns);

    let samples = read_samples();
    let names: Vec<&str> = samples.iter().map(|(n, _)| n.as_str()).collect();
    for required in [
        "minimal",
        "kms-existing-key",
        "lockfile",
        "both-locks",
        "irsa",
        "pod-identity",
        "audit",
        "replication",
        "opentofu-encryption",
    ] {
        assert!(names.contains(&format!("{required}.yaml").as_str()), "samples/{required}.yaml is missing");
    }
    for (file, sample) in &samples {
        let created = create(&api, sample).await.unwrap_or_else(|e| panic!("{file} rejected: {e}"));
        let stored = api.get(&created.metadata.name.clone().unwrap()).await.unwrap();
        // What the Rust types make of the sample, defaults included, is exactly what the
        // API server stored: schema defaults and serde defaults agree.
        let typed: TerraformStateBackendSpec = serde_json::from_value(sample["spec"].clone()).unwrap();
        assert_eq!(stored.data["spec"], serde_json::to_value(&typed).unwrap(), "{file}: server-side defaults differ");
        // And the operator's own validation accepts every sample.
        let obj = ObjectRef { namespace: &ns, name: stored.metadata.name.as_deref().unwrap() };
        validate(obj, &typed, &OperatorDefaults::default()).unwrap_or_else(|e| panic!("{file}: {e}"));
    }

    // The defaults the minimal sample relies on are really there, written by the server.
    let minimal = api.get("minimal").await.unwrap().data["spec"].clone();
    assert_eq!(minimal["bucket"]["noncurrentVersionExpirationDays"], 90);
    assert_eq!(minimal["encryption"], json!({"mode": "KMS"}));
    assert_eq!(
        minimal["locking"],
        json!({"mode": "DynamoDB", "staleAfter": "2h", "table": {"pointInTimeRecovery": true, "deletionProtection": true}})
    );
    assert_eq!(minimal["access"]["maxSessionDurationSeconds"], 3600);
    assert_eq!(minimal["deletionPolicy"], "Retain");
    assert_eq!(minimal["adoptExisting"], false);
    assert_eq!(minimal["output"], json!({"assumeRole": true, "openTofuEncryption": false}));
    delete_namespace(&client, &ns).await;
}

/// Sets `value` at the JSON pointer `path` of `doc`, creating objects on the way.
fn set(doc: &mut Value, path: &str, value: Value) {
    let mut cur = doc;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            if value.is_null() {
                cur.as_object_mut().unwrap().remove(*part);
            } else {
                cur[*part] = value;
            }
            return;
        }
        cur = &mut cur[*part];
    }
}

/// `value` with every `{}` in its strings replaced by `insert`.
fn subst(value: &Value, insert: &str) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace("{}", insert)),
        Value::Array(items) => Value::Array(items.iter().map(|v| subst(v, insert)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), subst(v, insert))).collect()),
        other => other.clone(),
    }
}

#[tokio::test]
async fn invalid_objects_are_rejected_naming_the_field() {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, "invalid").await;
    let api = dynamic_api(&client, &ns);
    let base: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(repo_root().join("samples/minimal.yaml")).unwrap()).unwrap();

    let tags: serde_json::Map<String, Value> = (0..48).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/spec/bucket/name", json!("Acme_State"), "spec.bucket.name"),
        ("/spec/bucket/name", json!("ab"), "spec.bucket.name"),
        ("/spec/bucket", Value::Null, "spec.bucket"),
        ("/spec/access", Value::Null, "spec.access"),
        ("/spec/access/trust", Value::Null, "spec.access.trust"),
        ("/spec/region", json!("Europe"), "spec.region"),
        ("/spec/stateKey", json!("/abs/terraform.tfstate"), "spec.stateKey"),
        ("/spec/stateKey", json!("team//terraform.tfstate"), "spec.stateKey"),
        ("/spec/stateKey", json!("*"), "spec.stateKey"),
        ("/spec/workspaceKeyPrefix", json!("${aws:username}"), "spec.workspaceKeyPrefix"),
        ("/spec/bucket/noncurrentVersionExpirationDays", json!(-1), "spec.bucket.noncurrentVersionExpirationDays"),
        ("/spec/encryption", json!({"mode": "aes"}), "spec.encryption.mode"),
        (
            "/spec/encryption",
            json!({"kmsKey": {"create": {"deletionWindowDays": 3}}}),
            "spec.encryption.kmsKey.create.deletionWindowDays",
        ),
        (
            "/spec/encryption",
            json!({"kmsKey": {"create": {"alias": "tfstate"}}}),
            "spec.encryption.kmsKey.create.alias",
        ),
        (
            "/spec/encryption",
            json!({"kmsKey": {"existingKeyArn": "arn:aws:kms:eu-west-1:123456789012:alias/x"}}),
            "spec.encryption.kmsKey.existingKeyArn",
        ),
        ("/spec/locking", json!({"mode": "Redis"}), "spec.locking.mode"),
        ("/spec/locking", json!({"table": {"name": "my lock"}}), "spec.locking.table.name"),
        ("/spec/access/roleName", json!("r".repeat(65)), "spec.access.roleName"),
        ("/spec/access/maxSessionDurationSeconds", json!(100000), "spec.access.maxSessionDurationSeconds"),
        ("/spec/access/trust/awsPrincipals", json!(["123456789012"]), "spec.access.trust.awsPrincipals"),
        (
            "/spec/access/trust/serviceAccounts",
            json!([{"namespace": "Bad NS", "name": "tf"}]),
            "spec.access.trust.serviceAccounts",
        ),
        ("/spec/deletionPolicy", json!("Destroy"), "spec.deletionPolicy"),
        ("/spec/output", json!({"configMapName": "Not_A_Name"}), "spec.output.configMapName"),
        ("/spec/tags", Value::Object(tags), "spec.tags"),
    ];
    assert!(cases.len() >= 10);
    for (i, (path, value, field)) in cases.into_iter().enumerate() {
        let mut obj = base.clone();
        set(&mut obj, "/metadata/name", json!(format!("bad-{i}")));
        set(&mut obj, path, value.clone());
        assert_refused(&api, &obj, &format!("{path} = {value}"), field).await;
    }
    delete_namespace(&client, &ns).await;
}

/// Every spec value the operator writes into a policy (Resource ARNs, conditions, principals)
/// must be literal: the schema refuses IAM's wildcards `*` and `?`, the `$` of policy
/// variables, control characters and non-ASCII characters in each of them.
#[tokio::test]
async fn non_literal_policy_values_are_rejected_naming_the_field() {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, "literal").await;
    let api = dynamic_api(&client, &ns);
    let base: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(repo_root().join("samples/minimal.yaml")).unwrap()).unwrap();

    // (JSON pointer, value with `{}` where the character goes, field named in the message);
    // each is accepted with `{}` removed (checked below).
    let fields: Vec<(&str, Value, &str)> = vec![
        ("/spec/stateKey", json!("team/app{}/terraform.tfstate"), "spec.stateKey"),
        ("/spec/stateKey", json!("{}terraform.tfstate"), "spec.stateKey"),
        ("/spec/workspaceKeyPrefix", json!("env:{}"), "spec.workspaceKeyPrefix"),
        ("/spec/region", json!("eu-west-1{}"), "spec.region"),
        ("/spec/bucket/name", json!("acme-tf{}state"), "spec.bucket.name"),
        (
            "/spec/encryption",
            json!({"kmsKey": {"existingKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd{}"}}),
            "spec.encryption.kmsKey.existingKeyArn",
        ),
        (
            "/spec/encryption",
            json!({"kmsKey": {"create": {"alias": "alias/tf{}"}}}),
            "spec.encryption.kmsKey.create.alias",
        ),
        (
            "/spec/encryption",
            json!({"kmsKey": {"create": {"admins": ["arn:aws:iam::123456789012:role/admin{}"]}}}),
            "spec.encryption.kmsKey.create.admins",
        ),
        ("/spec/locking", json!({"table": {"name": "acme-lock{}"}}), "spec.locking.table.name"),
        ("/spec/access/roleName", json!("tfstate{}"), "spec.access.roleName"),
        (
            "/spec/access/trust/awsPrincipals",
            json!(["arn:aws:iam::123456789012:role/ci{}"]),
            "spec.access.trust.awsPrincipals",
        ),
        (
            "/spec/access/trust/awsPrincipals",
            json!(["arn:aws:iam::123456789012:user/team{}/alice"]),
            "spec.access.trust.awsPrincipals",
        ),
        (
            "/spec/access/trust/serviceAccounts",
            json!([{"namespace": "ci{}", "name": "tf"}]),
            "spec.access.trust.serviceAccounts",
        ),
        (
            "/spec/access/trust/serviceAccounts",
            json!([{"namespace": "ci", "name": "tf{}"}]),
            "spec.access.trust.serviceAccounts",
        ),
        (
            "/spec/access/trust/oidcProviderArn",
            json!("arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC{}"),
            "spec.access.trust.oidcProviderArn",
        ),
        (
            "/spec/access/permissionsBoundaryArn",
            json!("arn:aws:iam::123456789012:policy/boundary{}"),
            "spec.access.permissionsBoundaryArn",
        ),
    ];
    let object = |i: &str, path: &str, value: Value| {
        let mut obj = base.clone();
        set(&mut obj, "/metadata/name", json!(format!("literal-{i}")));
        set(&mut obj, path, value);
        obj
    };

    for (i, (path, template, _)) in fields.iter().enumerate() {
        let value = subst(template, "");
        let obj = object(&format!("ok-{i}"), path, value.clone());
        create(&api, &obj).await.unwrap_or_else(|e| panic!("{path} = {value} was rejected: {e}"));
    }
    let mut n = 0;
    for (path, template, field) in &fields {
        for bad in ["*", "?", "${aws:username}", "$", "\t", "\u{1b}", "\u{7f}", "é", "\u{202e}"] {
            n += 1;
            let value = subst(template, bad);
            let obj = object(&n.to_string(), path, value.clone());
            assert_refused(&api, &obj, &format!("{path} = {value}"), field).await;
        }
    }
    delete_namespace(&client, &ns).await;
}

/// Keys as Terraform users write them pass the schema's literal-key pattern; the ones
/// Terraform itself refuses (`//`) and characters S3 advises against do not.
#[tokio::test]
async fn terraform_keys_are_accepted_and_odd_ones_rejected() {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, "keys").await;
    let api = dynamic_api(&client, &ns);
    let base: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(repo_root().join("samples/minimal.yaml")).unwrap()).unwrap();
    let object = |name: String, key: &str, prefix: &str| {
        let mut obj = base.clone();
        set(&mut obj, "/metadata/name", json!(name));
        set(&mut obj, "/spec/stateKey", json!(key));
        set(&mut obj, "/spec/workspaceKeyPrefix", json!(prefix));
        obj
    };
    let good = [
        ("team/app/terraform.tfstate", "env:"),
        ("a.b-c_d/e=f@g+h/terraform.tfstate", "workspaces/env:"),
        ("Team App/(prod)/it's;a,b&c!.tfstate", "x"),
    ];
    for (i, (key, prefix)) in good.into_iter().enumerate() {
        create(&api, &object(format!("good-{i}"), key, prefix))
            .await
            .unwrap_or_else(|e| panic!("stateKey {key:?} / workspaceKeyPrefix {prefix:?} rejected: {e}"));
    }
    let bad = ["a//b", "a/", "a#b", "a%2Fb", "a{b}", "a~b", "a\\b", "a\"b", "a\nb"];
    for (i, key) in bad.into_iter().enumerate() {
        for (obj, field) in [
            (object(format!("bad-key-{i}"), key, "env:"), "spec.stateKey"),
            (object(format!("bad-prefix-{i}"), "terraform.tfstate", key), "spec.workspaceKeyPrefix"),
        ] {
            match create(&api, &obj).await {
                Ok(_) => panic!("{field} = {key:?} was accepted by the API server"),
                Err(kube::Error::Api(status)) => {
                    assert_eq!(status.code, 422, "{field} = {key:?}: {status:?}");
                    assert!(status.message.contains(field), "{field} = {key:?}: {}", status.message);
                }
                Err(e) => panic!("{field} = {key:?}: unexpected error {e}"),
            }
        }
    }
    delete_namespace(&client, &ns).await;
}

/// The ground's controller-manager collects garbage: a ConfigMap owned by a backend
/// object disappears with it (the operator's published ConfigMaps rely on this).
#[tokio::test]
async fn owned_configmaps_are_garbage_collected() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::DeleteParams;

    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, "gc").await;
    let api = dynamic_api(&client, &ns);
    let mut sample: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(repo_root().join("samples/minimal.yaml")).unwrap()).unwrap();
    set(&mut sample, "/metadata/name", json!("owner"));
    let owner = create(&api, &sample).await.unwrap();
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "owned", "ownerReferences": [{
            "apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStateBackend",
            "name": "owner", "uid": owner.metadata.uid.unwrap(), "controller": true, "blockOwnerDeletion": true
        }]},
        "data": {"k": "v"}
    }))
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    cms.create(&PostParams::default(), &cm).await.unwrap();
    api.delete("owner", &DeleteParams::default()).await.unwrap();
    // The garbage collector discovers new resource types (our CRD) every 30 s, so on a
    // freshly started ground the first collection may take a while.
    for _ in 0..1200 {
        if cms.get_opt("owned").await.unwrap().is_none() {
            delete_namespace(&client, &ns).await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the owned ConfigMap was not garbage-collected within 120 s: is kube-controller-manager running?");
}
