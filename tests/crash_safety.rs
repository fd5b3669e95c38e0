//! Crash-safe creation: the operator may die at any instant, and after a restart there
//! is exactly one KMS key (and one of everything else) per backend. The operator runs as
//! a real process here, so that it can really die. Needs the `failpoints` feature.

mod common;

use std::process::Child;
use std::time::Duration;

use common::operator::{create_backend, inspector, operator_process, unique_bucket, wait_ready};
use common::{Ground, install_crd, test_namespace};
use kube::Api;
use tfstate_operator::api::TerraformStateBackend;
use tfstate_operator::aws::{kms, s3};

/// An operator process, killed when dropped, so that a failing test leaves none behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Starts `tfstate-operator run` for `namespace`, optionally with a fail point armed.
fn spawn_operator(ground: &Ground, namespace: &str, failpoint: Option<&str>) -> Running {
    let mut cmd = operator_process(ground, namespace);
    cmd.args(["--resync-interval", "2s", "--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0"]);
    if let Some(f) = failpoint {
        cmd.args(["--failpoint", f]);
    }
    Running(cmd.spawn().expect("start the operator binary"))
}

/// Keys (not pending deletion) tagged as owned by `uid`.
async fn keys_owned_by(ground: &Ground, uid: &str) -> Vec<String> {
    let aws = inspector(ground).await;
    kms::find_tagged(&aws.kms, "tfstate.dev/owner-uid", uid, false).await.unwrap().into_iter().map(|k| k.arn).collect()
}

fn backend(name: &str, bucket: &str) -> String {
    format!(
        "apiVersion: tfstate.dev/v1alpha1\nkind: TerraformStateBackend\nmetadata: {{name: {name}}}\nspec:\n  bucket: {{name: {bucket}}}\n  access: {{trust: {{awsPrincipals: ['arn:aws:iam::123456789012:root']}}}}\n"
    )
}

/// The process dies right after CreateKey succeeded, before the alias exists. The
/// restarted operator finds that key by its tags and uses it: one key, not two.
#[tokio::test]
async fn killed_right_after_create_key_leaves_one_key() {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, "crash").await;
    let api: Api<TerraformStateBackend> = Api::namespaced(client.clone(), &ns);

    let mut doomed = spawn_operator(&ground, &ns, Some("after-create-key"));
    let obj = create_backend(&api, &backend("crashy", &unique_bucket("crashy"))).await;
    let uid = obj.metadata.uid.clone().unwrap();
    let exit = tokio::task::spawn_blocking(move || doomed.0.wait()).await.unwrap().unwrap();
    assert!(!exit.success(), "the fail point must kill the operator, it exited with {exit:?}");

    // The crash left a key without alias, and the intent recorded before CreateKey.
    let orphans = keys_owned_by(&ground, &uid).await;
    assert_eq!(orphans.len(), 1, "CreateKey ran exactly once before the crash: {orphans:?}");
    let aws = inspector(&ground).await;
    assert!(kms::describe_key(&aws.kms, &format!("alias/tfstate-{ns}-crashy")).await.unwrap().is_none());
    let crashed = api.get("crashy").await.unwrap();
    assert!(crashed.status.as_ref().and_then(|s| s.creation_started_at.as_ref()).is_some(), "intent recorded");

    let mut operator = spawn_operator(&ground, &ns, None);
    let ready = wait_ready(&api, "crashy").await;
    operator.kill().ok();
    operator.wait().ok();
    let status = ready.status.unwrap();
    assert_eq!(keys_owned_by(&ground, &uid).await, orphans, "the orphan was adopted, no second key");
    assert_eq!(status.kms_key_arn.as_ref(), orphans.first());
    assert_eq!(status.creation_started_at, None, "intent cleared once key and bucket are converged");
    let by_alias = kms::describe_key(&aws.kms, &format!("alias/tfstate-{ns}-crashy")).await.unwrap().unwrap();
    assert_eq!(Some(&by_alias.arn), orphans.first());
}

/// SIGKILL at arbitrary moments while several backends are being created, seven times
/// over; in the end every backend is Ready with exactly one key.
#[tokio::test]
async fn killed_at_arbitrary_moments_converges_to_one_of_everything() {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, "chaos").await;
    let api: Api<TerraformStateBackend> = Api::namespaced(client.clone(), &ns);
    let mut uids = Vec::new();
    for i in 0..4 {
        let obj = create_backend(&api, &backend(&format!("chaos-{i}"), &unique_bucket("chaos"))).await;
        uids.push(obj.metadata.uid.unwrap());
    }
    // Kill delays spread over the creation window (a pseudo-random but reproducible walk).
    for delay_ms in [60u64, 170, 90, 260, 130, 450, 700] {
        let mut op = spawn_operator(&ground, &ns, None);
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        op.kill().expect("SIGKILL the operator");
        op.wait().ok();
    }
    let mut op = spawn_operator(&ground, &ns, None);
    for i in 0..4 {
        wait_ready(&api, &format!("chaos-{i}")).await;
    }
    op.kill().ok();
    op.wait().ok();
    for (i, uid) in uids.iter().enumerate() {
        let keys = keys_owned_by(&ground, uid).await;
        assert_eq!(keys.len(), 1, "chaos-{i} has {} keys: {keys:?}", keys.len());
        let status = api.get(&format!("chaos-{i}")).await.unwrap().status.unwrap();
        assert_eq!(status.kms_key_arn.as_ref(), keys.first());
    }
}

/// The process dies right after CreateBucket, before any setting is written. The bucket
/// was tagged in the CreateBucket call itself, so the restarted operator finds it as its
/// own by its tags, with no guess and no creation intent, and converges it.
#[tokio::test]
async fn killed_right_after_create_bucket_finds_its_tagged_bucket() {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, "crash-bucket").await;
    let api: Api<TerraformStateBackend> = Api::namespaced(client.clone(), &ns);
    let bucket = unique_bucket("crashy-bucket");

    let mut doomed = spawn_operator(&ground, &ns, Some("after-create-bucket"));
    let obj = create_backend(&api, &backend("crashy", &bucket)).await;
    let exit = tokio::task::spawn_blocking(move || doomed.0.wait()).await.unwrap().unwrap();
    assert!(!exit.success(), "the fail point must kill the operator, it exited with {exit:?}");
    let aws = inspector(&ground).await;
    let tags = s3::get_tags(&aws.s3, &bucket).await.unwrap().expect("the bucket was created before the crash");
    assert_eq!(tags.get("tfstate.dev/owner-uid"), obj.metadata.uid.as_ref(), "tagged by CreateBucket itself");
    assert!(!s3::get_settings(&aws.s3, &bucket, false).await.unwrap().versioning_enabled, "the crash came first");

    let mut operator = spawn_operator(&ground, &ns, None);
    let ready = wait_ready(&api, "crashy").await;
    operator.kill().ok();
    operator.wait().ok();
    let tags = s3::get_tags(&aws.s3, &bucket).await.unwrap().unwrap();
    assert_eq!(tags.get("tfstate.dev/owner-uid"), obj.metadata.uid.as_ref(), "tagged as ours");
    assert!(s3::get_settings(&aws.s3, &bucket, false).await.unwrap().versioning_enabled);
    assert_eq!(ready.status.unwrap().creation_started_at, None);
    assert_eq!(keys_owned_by(&ground, obj.metadata.uid.as_deref().unwrap()).await.len(), 1);
}
