//! The cross-region replica (`spec.replication`) on the real ground: every setting read back
//! independently in both regions, the replica refusing a direct write, zero writes at steady
//! state, drift repair, removal of `spec.replication`, deletion under the primary's rules, and
//! the abuse cases (another backend's replica bucket, the backend's own region).
//!
//! What moto 5.2.5 does not do: it stores the replication configuration but replicates
//! nothing (no object ever reaches the replica by replication), does not check that the role
//! exists or that S3 may assume it, and does not check versioning on either side; the test
//! ground's launcher makes GetBucketReplication answer the stored rules (moto drops
//! `SourceSelectionCriteria` and fixes `Filter` and `DeleteMarkerReplication`). Bucket
//! policies are evaluated on object requests by the launcher, without a caller identity
//! (`aws:PrincipalArn` is absent, as for any principal that is not the replication role).

mod common;

use std::time::Duration;

use common::operator::{
    condition, create_backend, inspector, patch_spec, put_state, start_operator, unique_bucket, wait_for, wait_gone,
    wait_reason,
};
use common::{Ground, install_crd, test_namespace};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};
use serde_json::json;
use tfstate_operator::api::TerraformStateBackend;
use tfstate_operator::aws::{AwsClientFactory, AwsClients, iam, kms, s3};
use tfstate_operator::policy::PolicyDocument;

const REPLICA_REGION: &str = "eu-central-1";

fn backend_yaml(name: &str, bucket: &str, extra: &str) -> String {
    format!(
        "apiVersion: tfstate.dev/v1alpha1\nkind: TerraformStateBackend\nmetadata: {{name: {name}}}\nspec:\n  bucket: {{name: {bucket}}}\n  access: {{trust: {{awsPrincipals: ['arn:aws:iam::123456789012:root']}}}}\n{extra}"
    )
}

async fn setup(prefix: &str) -> (Ground, kube::Client, String) {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, prefix).await;
    (ground, client, ns)
}

/// Independent clients of the replica's region.
async fn replica_inspector(ground: &Ground) -> AwsClients {
    AwsClientFactory::new(ground.aws_settings()).await.expect("AWS client factory").clients(REPLICA_REGION)
}

fn replication_ready(o: &TerraformStateBackend) -> bool {
    o.status.as_ref().is_some_and(|s| s.observed_generation == o.metadata.generation)
        && condition(o, "Ready").is_some_and(|(s, _, _)| s == "True")
        && condition(o, "ReplicationReady").is_some_and(|(s, r, _)| s == "True" && r == "Converged")
}

fn statement_sids(doc: &PolicyDocument) -> Vec<String> {
    doc.statements.iter().filter_map(|s| s.sid.clone()).collect()
}

/// Creation, read-back in both regions, the read-only replica, steady state, drift repair
/// and removal of `spec.replication`.
#[tokio::test]
async fn replica_is_built_read_only_quiet_and_repaired() {
    let (ground, client, ns) = setup("replica").await;
    let op = start_operator(&ground, &ns, Duration::from_secs(1)).await;
    let api: Api<TerraformStateBackend> = Api::namespaced(client.clone(), &ns);
    let bucket = unique_bucket("repl");
    let extra = format!("  replication: {{region: {REPLICA_REGION}, replicationTimeControl: true}}\n");
    create_backend(&api, &backend_yaml("tf", &bucket, &extra)).await;
    let obj = wait_for(&api, "tf", Duration::from_secs(90), "Ready with its replica", replication_ready).await;
    let status = obj.status.clone().expect("status");
    let replica = format!("{bucket}-replica");
    let (primary, secondary) = (inspector(&ground).await, replica_inspector(&ground).await);

    // Status.
    let role_arn = status.replication_role_arn.clone().expect("replication role ARN");
    let replica_key = status.replica_kms_key_arn.clone().expect("replica key ARN");
    let source_key = status.kms_key_arn.clone().expect("state key ARN");
    assert_eq!(status.replica_bucket_arn.as_deref(), Some(format!("arn:aws:s3:::{replica}").as_str()));
    assert_eq!(status.replica_region.as_deref(), Some(REPLICA_REGION));
    assert_eq!(replica_key.split(':').nth(3), Some(REPLICA_REGION), "the replica key is in the replica region");
    assert_eq!(role_arn, "arn:aws:iam::123456789012:role/tfstate-".to_string() + &ns + "-tf-replication");

    // The replica key, read in its region: ours, enabled, rotating, aliased, its policy
    // letting the replication role encrypt through S3 in that region only.
    let info = kms::describe_key(&secondary.kms, &replica_key).await.unwrap().expect("replica key exists");
    assert!(info.is_enabled());
    let alias = format!("alias/tfstate-{ns}-tf-replica");
    assert_eq!(kms::describe_key(&secondary.kms, &alias).await.unwrap().map(|k| k.arn), Some(replica_key.clone()));
    assert!(kms::describe_key(&primary.kms, &replica_key).await.unwrap().is_none(), "not in the primary region");
    let settings = kms::get_settings(&secondary.kms, &info.key_id).await.unwrap();
    assert!(settings.rotation_enabled);
    assert_eq!(settings.tags.get("tfstate.dev/owner-uid"), obj.uid().as_ref());
    let key_policy = PolicyDocument::parse(settings.policy.as_deref().unwrap()).unwrap();
    let use_stmt = key_policy.statements.iter().find(|s| s.sid.as_deref() == Some("AllowReplicationRoleUse")).unwrap();
    let via = &use_stmt.condition.as_ref().unwrap()["StringEquals"]["kms:ViaService"];
    assert_eq!(via[0].as_aws_string(), format!("s3.{REPLICA_REGION}.amazonaws.com"));

    // The replica bucket, read in its region: hardened like the state bucket, read-only.
    let tags = s3::get_tags(&secondary.s3, &replica).await.unwrap().expect("replica bucket exists");
    assert_eq!(tags.get("tfstate.dev/owner-uid"), obj.uid().as_ref());
    let b = s3::get_settings(&secondary.s3, &replica, false).await.unwrap();
    assert!(b.versioning_enabled);
    assert_eq!(b.encryption, Some(s3::DefaultEncryption::Kms { key_id: Some(replica_key.clone()), bucket_key: true }));
    assert_eq!(b.public_access_block, Some(s3::PublicAccessBlock::ALL));
    assert_eq!(b.object_ownership.as_deref(), Some("BucketOwnerEnforced"));
    let bucket_policy = PolicyDocument::parse(b.policy.as_deref().unwrap()).unwrap();
    assert_eq!(
        statement_sids(&bucket_policy),
        ["DenyInsecureTransport", "DenyWritesButReplication", "DenyReplicatedDeletes", "DenyConfigChangesButOperator"]
    );
    let writes = &bucket_policy.statements[1];
    assert_eq!(writes.condition.as_ref().unwrap()["ArnNotEquals"]["aws:PrincipalArn"][0].as_aws_string(), role_arn);

    // The replication role: trusted by S3 for this account and source bucket only, with
    // exactly the replication minimum.
    let role_name = role_arn.rsplit('/').next().unwrap();
    let role = iam::get_role(&primary.iam, role_name).await.unwrap().expect("replication role");
    let trust = PolicyDocument::parse(&role.trust_policy).unwrap();
    assert_eq!(trust, tfstate_operator::policy::replication_trust_policy("aws", "123456789012", &bucket));
    let inline = iam::get_inline_policy(&primary.iam, role_name, "tfstate-backend").await.unwrap().unwrap();
    let inline = PolicyDocument::parse(&inline).unwrap();
    assert_eq!(
        statement_sids(&inline),
        ["ReadReplicationConfiguration", "ReadSourceVersions", "ReplicateToReplica", "DecryptSource", "EncryptReplica"]
    );
    let resources: Vec<String> = inline.statements.iter().flat_map(|s| s.resource.clone().unwrap()).collect();
    assert!(resources.contains(&source_key) && resources.contains(&replica_key), "{resources:?}");

    // The state bucket's replication configuration, read in the primary region.
    let config = s3::get_replication(&primary.s3, &bucket).await.unwrap().expect("replication configuration");
    assert_eq!(config.role_arn, role_arn);
    assert_eq!(
        config.rules,
        [s3::ReplicationRuleSettings {
            id: "tfstate-operator".into(),
            priority: Some(1),
            enabled: true,
            filter_prefix: Some(String::new()),
            delete_markers: false,
            sse_kms_objects: true,
            destination_bucket_arn: format!("arn:aws:s3:::{replica}"),
            replica_kms_key_id: Some(replica_key.clone()),
            replication_time: true,
            metrics: true,
        }]
    );

    // The ConfigMap names the replica, and its DR file points at it without a lock.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let data = cms.get("tf-backend").await.unwrap().data.unwrap();
    assert_eq!(data["replica_bucket"], replica);
    assert_eq!(data["replica_region"], REPLICA_REGION);
    assert_eq!(data["replica_kms_key_id"], replica_key);
    let dr: hcl::Body = hcl::from_str(&data["backend-dr.tfbackend"]).expect("DR file is HCL");
    let attr = |n: &str| dr.attributes().find(|a| a.key() == n).map(|a| a.expr().clone());
    assert_eq!(attr("bucket"), Some(replica.as_str().into()));
    assert_eq!(attr("region"), Some(REPLICA_REGION.into()));
    assert_eq!(attr("kms_key_id"), Some(replica_key.as_str().into()));
    assert!(attr("dynamodb_table").is_none() && attr("use_lockfile").is_none());

    // The replica refuses a direct write, even encrypted as it should be, while the same
    // caller may write the state bucket.
    put_state(&primary.s3, &bucket, "probe.tfstate", &source_key).await;
    let refused = secondary
        .s3
        .put_object()
        .bucket(&replica)
        .key("probe.tfstate")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .ssekms_key_id(&replica_key)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"{}"))
        .send()
        .await;
    let err = refused.expect_err("the replica must refuse a direct write");
    assert_eq!(err.into_service_error().meta().code(), Some("AccessDenied"));
    let versions = s3::count_versions(&secondary.s3, &replica, 10).await.unwrap();
    assert_eq!(versions, 0, "nothing was written to the replica");

    // Steady state: a few resyncs cost reads only, and nothing is written to Kubernetes.
    let before_version = api.get("tf").await.unwrap().resource_version();
    let cm_version = cms.get("tf-backend").await.unwrap().resource_version();
    let before = op.ctx.aws.calls().snapshot();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = op.ctx.aws.calls().snapshot();
    let delta = tfstate_operator::aws::calls::difference(&before, &after);
    let writes: Vec<_> = delta.iter().filter(|(k, n)| !k.is_read() && **n > 0).collect();
    assert!(writes.is_empty(), "writes at steady state: {writes:?}");
    let replication_reads: u64 =
        delta.iter().filter(|(k, _)| k.operation == "GetBucketReplication").map(|(_, n)| n).sum();
    assert!(replication_reads >= 2, "the replica is checked on every resync: {delta:?}");
    assert_eq!(api.get("tf").await.unwrap().resource_version(), before_version);
    assert_eq!(cms.get("tf-backend").await.unwrap().resource_version(), cm_version);

    // Drift: the replication configuration removed outside the operator is put back.
    s3::delete_replication(&primary.s3, &bucket).await.unwrap();
    wait_reason(&api, "tf", "ReplicationReady", "DriftRepaired").await;
    let repaired = s3::get_replication(&primary.s3, &bucket).await.unwrap().expect("repaired configuration");
    assert_eq!(repaired, config);
    wait_for(&api, "tf", Duration::from_secs(30), "settled again", replication_ready).await;

    // Removing spec.replication: the configuration and the role go, the replica bucket and
    // its key stay (they hold and encrypt copies of the state), status forgets the replica.
    patch_spec(&api, "tf", json!({"replication": null})).await;
    let obj = wait_for(&api, "tf", Duration::from_secs(60), "without replica", |o| {
        common::operator::is_ready(o)
            && condition(o, "ReplicationReady").is_none()
            && o.status.as_ref().is_some_and(|s| s.replication_role_arn.is_none())
    })
    .await;
    assert!(obj.status.unwrap().replica_bucket_arn.is_none());
    assert!(s3::get_replication(&primary.s3, &bucket).await.unwrap().is_none(), "configuration removed");
    assert!(iam::get_role(&primary.iam, role_name).await.unwrap().is_none(), "replication role deleted");
    assert!(s3::get_tags(&secondary.s3, &replica).await.unwrap().is_some(), "replica bucket kept");
    assert!(kms::describe_key(&secondary.kms, &replica_key).await.unwrap().unwrap().is_enabled(), "replica key kept");
    let data = cms.get("tf-backend").await.unwrap().data.unwrap();
    assert!(!data.contains_key("replica_bucket") && !data.contains_key("backend-dr.tfbackend"), "{data:?}");
}

/// Deletion with `deletionPolicy: Delete`: a replica that holds a version blocks everything
/// (nothing is deleted in either region); once it is empty, both buckets, the replication role
/// go, and both keys are scheduled for deletion.
#[tokio::test]
async fn replica_is_deleted_under_the_primary_rules() {
    let (ground, client, ns) = setup("replica-del").await;
    // No resync during the test: the replica's policy is lifted by hand below, as an
    // administrator would to place a version, and must stay lifted.
    let _op = start_operator(&ground, &ns, Duration::from_secs(600)).await;
    let api: Api<TerraformStateBackend> = Api::namespaced(client.clone(), &ns);
    let bucket = unique_bucket("repldel");
    let extra = format!("  deletionPolicy: Delete\n  replication: {{region: {REPLICA_REGION}}}\n");
    create_backend(&api, &backend_yaml("tf", &bucket, &extra)).await;
    let obj = wait_for(&api, "tf", Duration::from_secs(90), "Ready with its replica", replication_ready).await;
    let status = obj.status.unwrap();
    let (primary, secondary) = (inspector(&ground).await, replica_inspector(&ground).await);
    let replica = format!("{bucket}-replica");
    let replica_key = status.replica_kms_key_arn.clone().unwrap();
    let role_name = status.replication_role_arn.clone().unwrap().rsplit('/').next().unwrap().to_string();

    // A version in the replica (what replication would have put there).
    secondary.s3.delete_bucket_policy().bucket(&replica).send().await.unwrap();
    let version = put_state(&secondary.s3, &replica, "copy.tfstate", &replica_key).await;
    api.delete("tf", &DeleteParams::default()).await.unwrap();
    let blocked = wait_reason(&api, "tf", "BucketReady", "DeletionBlocked").await;
    let (_, _, message) = condition(&blocked, "BucketReady").unwrap();
    assert!(message.contains(&replica) && message.contains("1 object version"), "{message}");
    assert!(s3::get_tags(&primary.s3, &bucket).await.unwrap().is_some(), "the state bucket is kept");
    assert!(iam::get_role(&primary.iam, &role_name).await.unwrap().is_some(), "the role is kept");
    assert!(kms::describe_key(&secondary.kms, &replica_key).await.unwrap().unwrap().is_enabled(), "key kept");

    secondary.s3.delete_object().bucket(&replica).key("copy.tfstate").version_id(&version).send().await.unwrap();
    wait_gone(&api, "tf", Duration::from_secs(60)).await;
    assert!(s3::get_tags(&primary.s3, &bucket).await.unwrap().is_none(), "state bucket deleted");
    assert!(s3::get_tags(&secondary.s3, &replica).await.unwrap().is_none(), "replica bucket deleted");
    assert!(iam::get_role(&primary.iam, &role_name).await.unwrap().is_none(), "replication role deleted");
    let key = kms::describe_key(&secondary.kms, &replica_key).await.unwrap().unwrap();
    assert_eq!(key.state, "PendingDeletion");
}

/// Deletion after `spec.replication.bucketName` changed within the region: the old replica
/// (which status no longer names) may hold copies under the same replica key, found by the
/// same alias. Deletion goes on with what is its own, the new replica included, but leaves
/// the old replica as it is and keeps the replica key, with a Warning Event saying so.
/// Scheduling the key would make the copies left in the old replica unreadable.
#[tokio::test]
async fn a_renamed_replica_keeps_the_replica_key_at_deletion() {
    let (ground, client, ns) = setup("replica-renamed").await;
    let _op = start_operator(&ground, &ns, Duration::from_secs(600)).await;
    let api: Api<TerraformStateBackend> = Api::namespaced(client.clone(), &ns);
    let bucket = unique_bucket("replren");
    let (old, new) = (format!("{bucket}-old-replica"), format!("{bucket}-new-replica"));
    let extra = format!("  deletionPolicy: Delete\n  replication: {{region: {REPLICA_REGION}, bucketName: {old}}}\n");
    create_backend(&api, &backend_yaml("tf", &bucket, &extra)).await;
    let obj = wait_for(&api, "tf", Duration::from_secs(90), "Ready with its replica", replication_ready).await;
    let replica_key = obj.status.and_then(|s| s.replica_kms_key_arn).expect("replica key ARN");
    let secondary = replica_inspector(&ground).await;
    // A copy in the old replica (what replication would have put there).
    secondary.s3.delete_bucket_policy().bucket(&old).send().await.unwrap();
    put_state(&secondary.s3, &old, "copy.tfstate", &replica_key).await;

    patch_spec(&api, "tf", json!({"replication": {"bucketName": new}})).await;
    let obj = wait_for(&api, "tf", Duration::from_secs(90), "Ready on the new replica", |o| {
        replication_ready(o)
            && o.status.as_ref().and_then(|s| s.replica_bucket_arn.as_deref()) == Some(&format!("arn:aws:s3:::{new}"))
    })
    .await;
    let status = obj.status.unwrap();
    assert_eq!(status.replica_kms_key_arn.as_deref(), Some(replica_key.as_str()), "the same key, by its alias");
    assert_eq!(status.replica_keys_kept, [REPLICA_REGION], "status remembers the key must stay");

    api.delete("tf", &DeleteParams::default()).await.unwrap();
    wait_gone(&api, "tf", Duration::from_secs(60)).await;
    assert!(s3::get_tags(&secondary.s3, &new).await.unwrap().is_none(), "the new replica, ours and empty, deleted");
    assert!(s3::get_tags(&secondary.s3, &old).await.unwrap().is_some(), "the old replica is left as it is");
    let key = kms::describe_key(&secondary.kms, &replica_key).await.unwrap().unwrap();
    assert!(key.is_enabled(), "the key of the copies in {old} was scheduled for deletion: {key:?}");
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let notes: Vec<String> =
        events.list(&Default::default()).await.unwrap().items.into_iter().filter_map(|e| e.note).collect();
    assert!(notes.iter().any(|n| n.contains("replica key in") && n.contains("are kept")), "{notes:?}");
}

/// Abuse: a bucket another backend records, its tags removed by an outside tool, is not
/// adoptable on either path. As a replica, the adopter's replica policy would lock the
/// owner's runners out of their state (and its lifecycle expire their history); a replica
/// adopted as a state bucket would hand the adopter's runners the copies of the owner's state.
#[tokio::test]
async fn a_recorded_bucket_is_not_adoptable_as_a_replica_nor_a_replica_as_a_state_bucket() {
    let (ground, client, ns) = setup("replica-recorded").await;
    let _op = start_operator(&ground, &ns, Duration::from_secs(2)).await;
    let api: Api<TerraformStateBackend> = Api::namespaced(client.clone(), &ns);
    let (primary, secondary) = (inspector(&ground).await, replica_inspector(&ground).await);
    let bucket = unique_bucket("recorded");
    let replica = format!("{bucket}-replica");
    create_backend(
        &api,
        &backend_yaml("first-team", &bucket, &format!("  replication: {{region: {REPLICA_REGION}}}\n")),
    )
    .await;
    wait_for(&api, "first-team", Duration::from_secs(90), "Ready with its replica", |o| {
        replication_ready(o) && o.status.as_ref().is_some_and(|s| s.state.is_some())
    })
    .await;
    primary.s3.delete_bucket_tagging().bucket(&bucket).send().await.unwrap();
    secondary.s3.delete_bucket_tagging().bucket(&replica).send().await.unwrap();
    let policy_before = s3::get_settings(&primary.s3, &bucket, false).await.unwrap().policy;

    // The state bucket, named as a replica. (The taker's replica region is the first team's
    // state region: its own state bucket must be elsewhere.)
    let extra = format!(
        "  adoptExisting: true\n  region: {REPLICA_REGION}\n  replication: {{region: eu-west-1, bucketName: {bucket}}}\n"
    );
    create_backend(&api, &backend_yaml("replica-taker", &unique_bucket("rtaker"), &extra)).await;
    let taker = wait_reason(&api, "replica-taker", "ReplicationReady", "Conflict").await;
    let message = condition(&taker, "ReplicationReady").unwrap().2;
    assert!(message.contains("records it as its state or replica bucket"), "{message}");
    assert!(s3::get_tags(&primary.s3, &bucket).await.unwrap().unwrap_or_default().is_empty(), "tagged by the taker");
    assert_eq!(s3::get_settings(&primary.s3, &bucket, false).await.unwrap().policy, policy_before, "policy changed");

    // The replica, named as a state bucket.
    let extra = format!("  adoptExisting: true\n  region: {REPLICA_REGION}\n");
    create_backend(&api, &backend_yaml("state-taker", &replica, &extra)).await;
    let taker = wait_reason(&api, "state-taker", "BucketReady", "Conflict").await;
    let message = condition(&taker, "BucketReady").unwrap().2;
    assert!(message.contains("records it as its state or replica bucket"), "{message}");
    assert!(s3::get_tags(&secondary.s3, &replica).await.unwrap().unwrap_or_default().is_empty(), "tagged by the taker");
}

/// Abuse: an untagged replica bucket adopted (`adoptExisting`) receives no copies of the
/// state until a later pass reads its tags back as ours. When another object's tags land
/// last, the replica is a Conflict and the state bucket never got a replication rule into it.
#[tokio::test]
async fn an_adopted_replica_gets_no_state_before_its_tags_read_back() {
    let (ground, client, ns) = setup("replica-adopt").await;
    let _op = common::operator::start_operator_verifying_after(
        &ground,
        &ns,
        Duration::from_secs(300),
        Duration::from_secs(15),
    )
    .await;
    let api: Api<TerraformStateBackend> = Api::namespaced(client.clone(), &ns);
    let bucket = unique_bucket("repladopt");
    let replica = format!("{bucket}-replica");
    let (primary, secondary) = (inspector(&ground).await, replica_inspector(&ground).await);
    s3::create_bucket(&secondary.s3, &replica, REPLICA_REGION, &Default::default()).await.unwrap();
    let extra = format!("  adoptExisting: true\n  replication: {{region: {REPLICA_REGION}}}\n");
    create_backend(&api, &backend_yaml("tf", &bucket, &extra)).await;
    let obj = wait_for(&api, "tf", Duration::from_secs(90), "replica adopted or converged", |o| {
        condition(o, "ReplicationReady").is_some_and(|(s, r, _)| s == "True" || r == "Updating")
    })
    .await;
    let replication = s3::get_replication(&primary.s3, &bucket).await.unwrap();
    assert!(replication.is_none(), "the state bucket replicates into an unconfirmed bucket: {replication:?}");
    let (status, reason, message) = condition(&obj, "ReplicationReady").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Updating"), "{message}");
    let tags = s3::get_tags(&secondary.s3, &replica).await.unwrap().unwrap();
    assert_eq!(tags.get("tfstate.dev/owner-uid"), obj.metadata.uid.as_ref(), "the adopting pass tags it");

    let mut rival = tags.clone();
    rival.insert("tfstate.dev/owner-uid".into(), "00000000-0000-4000-8000-00000000beef".into());
    s3::put_tags(&secondary.s3, &replica, &rival).await.unwrap();
    let obj = wait_reason(&api, "tf", "ReplicationReady", "Conflict").await;
    assert!(condition(&obj, "ReplicationReady").unwrap().2.contains("another TerraformStateBackend"));
    assert!(s3::get_replication(&primary.s3, &bucket).await.unwrap().is_none(), "never replicated into it");
    assert_eq!(s3::get_tags(&secondary.s3, &replica).await.unwrap().unwrap(), rival, "the rival's tags are kept");
}

/// Abuse: another backend's replica bucket is a Conflict and is not touched; the backend's
/// own region and wildcard names are refused before any AWS call.
#[tokio::test]
async fn replica_abuse_is_refused() {
    let (ground, client, ns_a) = setup("replica-a").await;
    let ns_b = test_namespace(&client, "replica-b").await;
    let _op_a = start_operator(&ground, &ns_a, Duration::from_secs(2)).await;
    let _op_b = start_operator(&ground, &ns_b, Duration::from_secs(2)).await;
    let (api_a, api_b): (Api<TerraformStateBackend>, Api<TerraformStateBackend>) =
        (Api::namespaced(client.clone(), &ns_a), Api::namespaced(client.clone(), &ns_b));
    let bucket_a = unique_bucket("repla");
    let replica = format!("{bucket_a}-replica");
    create_backend(&api_a, &backend_yaml("tf", &bucket_a, &format!("  replication: {{region: {REPLICA_REGION}}}\n")))
        .await;
    wait_for(&api_a, "tf", Duration::from_secs(90), "Ready with its replica", replication_ready).await;
    let secondary = replica_inspector(&ground).await;
    let tags_before = s3::get_tags(&secondary.s3, &replica).await.unwrap().unwrap();
    let policy_before = s3::get_settings(&secondary.s3, &replica, false).await.unwrap().policy;

    let extra = format!("  replication: {{region: {REPLICA_REGION}, bucketName: {replica}}}\n");
    create_backend(&api_b, &backend_yaml("tf", &unique_bucket("replb"), &extra)).await;
    let b = wait_reason(&api_b, "tf", "ReplicationReady", "Conflict").await;
    let (_, _, message) = condition(&b, "ReplicationReady").unwrap();
    assert!(message.contains("another TerraformStateBackend") && !message.contains(&ns_a), "{message}");
    assert_eq!(condition(&b, "Ready").unwrap().0, "False");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(s3::get_tags(&secondary.s3, &replica).await.unwrap().unwrap(), tags_before);
    assert_eq!(s3::get_settings(&secondary.s3, &replica, false).await.unwrap().policy, policy_before);

    // The backend's own region: InvalidSpec, nothing created.
    let own = unique_bucket("replown");
    create_backend(&api_b, &backend_yaml("own", &own, "  replication: {region: eu-west-1}\n")).await;
    let o = wait_reason(&api_b, "own", "Ready", "InvalidSpec").await;
    assert!(condition(&o, "Ready").unwrap().2.contains("spec.replication.region"));
    assert!(s3::get_tags(&inspector(&ground).await.s3, &own).await.unwrap().is_none(), "no AWS resource");

    // Wildcards never reach a policy: the schema refuses them at the API server.
    for bad in ["repl-*", "repl-?"] {
        let yaml = backend_yaml(
            "wild",
            &unique_bucket("replw"),
            &format!("  replication: {{region: {REPLICA_REGION}, bucketName: '{bad}'}}\n"),
        );
        let obj: TerraformStateBackend = serde_yaml_ng::from_str(&yaml).unwrap();
        assert!(api_b.create(&Default::default(), &obj).await.is_err(), "{bad} was accepted");
    }
}
