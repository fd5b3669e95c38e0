//! `status.state`: each pass lists the state key's versions (one page, never content) and the
//! status follows what runners write: nothing before the first state, the current version,
//! its size and time, how many are kept, a deletion (delete marker) shown as such; and a
//! backend whose state does not change writes nothing.

mod common;

use std::time::Duration;

use common::operator::{create_backend, inspector, put_state, start_operator, unique_bucket, wait_for, wait_ready};
use common::{Ground, install_crd, test_namespace};
use kube::Api;
use tfstate_operator::api::{StateObjectStatus, TerraformStateBackend};

fn state_of(o: &TerraformStateBackend) -> Option<&StateObjectStatus> {
    o.status.as_ref().and_then(|s| s.state.as_ref())
}

#[tokio::test]
async fn status_state_follows_the_state_object() {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, "state-status").await;
    let operator = start_operator(&ground, &ns, Duration::from_secs(1)).await;
    let api: Api<TerraformStateBackend> = Api::namespaced(client.clone(), &ns);
    let bucket = unique_bucket("state-status");
    create_backend(&api, &format!(
        "apiVersion: tfstate.dev/v1alpha1\nkind: TerraformStateBackend\nmetadata: {{name: tf}}\nspec:\n  bucket: {{name: {bucket}}}\n  access: {{trust: {{awsPrincipals: ['arn:aws:iam::123456789012:root']}}}}\n"
    ))
    .await;
    let ready = wait_ready(&api, "tf").await;
    let none = state_of(&ready).expect("status.state from the first pass");
    assert!(!none.exists && !none.deleted && none.versions == 0, "no state yet: {none:?}");

    let aws = inspector(&ground).await;
    let key = format!("{ns}/tf/terraform.tfstate");
    let kms = ready.status.as_ref().and_then(|s| s.kms_key_arn.clone()).expect("kmsKeyArn");
    // A lock file and a backup next to the state share its prefix: they are not versions of it.
    put_state(&aws.s3, &bucket, &format!("{key}.tflock"), &kms).await;
    put_state(&aws.s3, &bucket, &format!("{key}.backup"), &kms).await;
    let v1 = put_state(&aws.s3, &bucket, &key, &kms).await;
    let at = |want: String, n: u32| {
        move |o: &TerraformStateBackend| {
            state_of(o).is_some_and(|s| s.exists && s.version_id.as_deref() == Some(want.as_str()) && s.versions == n)
        }
    };
    let seen = wait_for(&api, "tf", Duration::from_secs(30), "status.state at the first version", at(v1, 1)).await;
    let s = state_of(&seen).unwrap();
    assert_eq!(s.size, Some(14), "the size S3 lists: {s:?}");
    assert!(s.last_modified.as_deref().is_some_and(|t| t.starts_with("20")), "{s:?}");

    let v2 = put_state(&aws.s3, &bucket, &key, &kms).await;
    wait_for(&api, "tf", Duration::from_secs(30), "status.state at the second version", at(v2, 2)).await;

    // Unchanged state, unchanged status: three more listings (resyncs) write nothing.
    let listings = || {
        operator
            .ctx
            .aws
            .calls()
            .snapshot()
            .iter()
            .filter(|(k, _)| k.service == "s3" && k.operation == "ListObjectVersions")
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    let before = api.get("tf").await.expect("get").metadata.resource_version;
    let (start, deadline) = (listings(), tokio::time::Instant::now() + Duration::from_secs(30));
    while listings() < start + 3 {
        assert!(tokio::time::Instant::now() < deadline, "three resyncs within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(api.get("tf").await.expect("get").metadata.resource_version, before, "a quiet backend writes nothing");

    // The state deleted (a delete marker): shown as deleted, its versions still counted.
    aws.s3.delete_object().bucket(&bucket).key(&key).send().await.expect("DeleteObject");
    let deleted = wait_for(&api, "tf", Duration::from_secs(30), "status.state deleted", |o| {
        state_of(o).is_some_and(|s| s.deleted)
    })
    .await;
    let s = state_of(&deleted).unwrap();
    assert!(!s.exists && s.version_id.is_none() && s.versions == 2, "{s:?}");
    common::delete_namespace(&client, &ns).await;
}
