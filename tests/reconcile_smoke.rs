//! The smallest end-to-end check: a backend converges and publishes its ConfigMap.

mod common;

use std::time::Duration;

use common::operator::{create_backend, start_operator, unique_bucket, wait_ready};
use common::{Ground, install_crd, test_namespace};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use tfstate_operator::api::TerraformStateBackend;

#[tokio::test]
async fn minimal_backend_becomes_ready_and_publishes() {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, "smoke").await;
    let _op = start_operator(&ground, &ns, Duration::from_secs(600)).await;
    let api: Api<TerraformStateBackend> = Api::namespaced(client.clone(), &ns);
    let bucket = unique_bucket("smoke");
    create_backend(&api, &format!(
        "apiVersion: tfstate.dev/v1alpha1\nkind: TerraformStateBackend\nmetadata: {{name: smoke}}\nspec:\n  bucket: {{name: {bucket}}}\n  access: {{trust: {{awsPrincipals: ['arn:aws:iam::123456789012:root']}}}}\n"
    )).await;
    let obj = wait_ready(&api, "smoke").await;
    let status = obj.status.unwrap();
    assert_eq!(status.bucket_arn.as_deref(), Some(format!("arn:aws:s3:::{bucket}").as_str()));
    assert!(status.kms_key_arn.is_some());
    let cm = Api::<ConfigMap>::namespaced(client, &ns).get("smoke-backend").await.unwrap();
    assert!(cm.data.unwrap()["backend.tf"].contains(&bucket));
}
