//! What the operator remembers per backend goes when the backend goes: the record of its
//! own ConfigMap writes (which spares a reconcile per own write) is forgotten on the
//! backend's deletion, and so is its resync slot, so that thousands of short-lived
//! backends cannot grow the process.

mod common;

use std::time::Duration;

use common::operator::{create_backend, start_operator, unique_bucket, wait_ready};
use common::{Ground, install_crd, test_namespace};
use kube::Api;
use kube::api::DeleteParams;
use tfstate_operator::api::TerraformStateBackend;

#[tokio::test]
async fn own_config_map_writes_are_forgotten_when_the_backend_is_deleted() {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, "bounded").await;
    let operator = start_operator(&ground, &ns, Duration::from_secs(600)).await;
    let api: Api<TerraformStateBackend> = Api::namespaced(client.clone(), &ns);
    let bucket = unique_bucket("bounded");
    create_backend(&api, &format!(
        "apiVersion: tfstate.dev/v1alpha1\nkind: TerraformStateBackend\nmetadata: {{name: tf}}\nspec:\n  bucket: {{name: {bucket}}}\n  access: {{trust: {{awsPrincipals: ['arn:aws:iam::123456789012:root']}}}}\n"
    ))
    .await;
    wait_ready(&api, "tf").await;
    let ctx = operator.ctx.clone();
    assert_eq!(ctx.own_config_map_writes(), 1, "the published ConfigMap's write is remembered");
    assert_eq!(ctx.resync_slots(), 1, "the backend has its resync slot");

    api.delete("tf", &DeleteParams::default()).await.expect("delete the backend");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while api.get_opt("tf").await.expect("get backend").is_some()
        || ctx.own_config_map_writes() > 0
        || ctx.resync_slots() > 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "within 60 s the backend is gone, its writes and its resync slot forgotten (writes: {}, slots: {})",
            ctx.own_config_map_writes(),
            ctx.resync_slots()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    common::delete_namespace(&client, &ns).await;
}
