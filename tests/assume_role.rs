//! Hub and spoke on the real ground: clients of an assumed role act in the role's account.
//!
//! What moto 5.2.5 does (read in `moto/sts/models.py`, `moto/core/responses.py`,
//! `moto/iam/models.py`, `moto/s3/models.py`, and checked here): AssumeRole never refuses
//! (no trust policy is evaluated; the role need not even exist) and issues a temporary
//! access key created in the IAM backend of the account named in the role ARN; moto then
//! picks a request's account from its access key (after `MOTO_ACCOUNT_ID` and the
//! `x-moto-account-id` header, which the ground does not use). So every call signed with the
//! assumed credentials acts in that account: its own KMS keys, tables, roles and bucket
//! list. S3 bucket names are global, as on AWS: another account cannot create a bucket of
//! the same name (BucketAlreadyExists) and does not list it, but, unlike AWS, can read it
//! (`MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS` defaults to true: no cross-account denial).
//!
//! The refusal of AssumeRole, which moto cannot produce, is tested against a scripted STS in
//! the factory's unit tests (`src/aws/factory_tests.rs`).

mod common;

use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use common::{Ground, random_suffix};
use tfstate_operator::aws::calls::{CallKey, Outcome};
use tfstate_operator::aws::{AssumeAs, AwsClientFactory, AwsClients, AwsErrorKind, session_name};
use tfstate_operator::context::{Context, ReconcileConfig};
use tfstate_operator::failpoint::Failpoints;
use tfstate_operator::reconcile::validate::OperatorDefaults;

const SPOKE: &str = "111111111111";

fn spoke_role(name: &str) -> String {
    format!("arn:aws:iam::{SPOKE}:role/{name}")
}

async fn factory(ground: &Ground) -> AwsClientFactory {
    AwsClientFactory::new(ground.aws_settings()).await.expect("AWS client factory")
}

fn calls(factory: &AwsClientFactory, service: &str, operation: &str) -> u64 {
    let key = CallKey { service: service.into(), operation: operation.into(), outcome: Outcome::Ok };
    factory.calls().snapshot().get(&key).copied().unwrap_or(0)
}

async fn account_of(aws: &AwsClients) -> (String, String) {
    let out = aws.sts.get_caller_identity().send().await.expect("GetCallerIdentity");
    (out.account().unwrap_or_default().to_string(), out.arn().unwrap_or_default().to_string())
}

async fn create_bucket(aws: &AwsClients, bucket: &str) -> Result<(), String> {
    let mut req = aws.s3.create_bucket().bucket(bucket);
    if aws.region != "us-east-1" {
        let c = BucketLocationConstraint::from(aws.region.as_str());
        req = req.create_bucket_configuration(CreateBucketConfiguration::builder().location_constraint(c).build());
    }
    req.send().await.map(|_| ()).map_err(|e| {
        use aws_sdk_s3::error::ProvideErrorMetadata;
        e.code().unwrap_or("?").to_string()
    })
}

async fn bucket_names(aws: &AwsClients) -> Vec<String> {
    let out = aws.s3.list_buckets().send().await.expect("ListBuckets");
    out.buckets().iter().filter_map(|b| b.name().map(str::to_string)).collect()
}

#[tokio::test]
async fn assumed_clients_act_in_the_role_account() {
    let ground = Ground::load();
    let hub_account = ground.var("TESTGROUND_ACCOUNT_ID").to_string();
    let region = ground.var("AWS_REGION");
    let factory = factory(&ground).await;
    let hub = factory.clients(region);
    let suffix = random_suffix();
    // Never created: moto's AssumeRole does not need the role to exist.
    let role = spoke_role(&format!("tfstate-spoke-{suffix}"));
    let assume = AssumeAs::for_object(&role, "team-a", "payments");
    let spoke = factory.clients_as(region, Some(&assume)).await.expect("AssumeRole");
    assert_eq!(spoke.assumed_role.as_deref(), Some(role.as_str()));
    assert_eq!(hub.assumed_role, None);

    let (account, arn) = account_of(&spoke).await;
    assert_eq!(account, SPOKE);
    assert_eq!(arn, format!("arn:aws:sts::{SPOKE}:assumed-role/tfstate-spoke-{suffix}/team-a.payments"));
    assert_eq!(account_of(&hub).await.0, hub_account, "the operator's own clients are untouched");

    // KMS: the key is the spoke's; the hub does not see it.
    let key = spoke.kms.create_key().description("spoke key").send().await.expect("CreateKey").key_metadata.unwrap();
    assert_eq!(key.aws_account_id(), Some(SPOKE));
    assert!(key.arn().unwrap().contains(&format!(":{SPOKE}:key/")), "{:?}", key.arn());
    spoke.kms.describe_key().key_id(key.key_id()).send().await.expect("the spoke reads its key");
    let err = hub.kms.describe_key().key_id(key.arn().unwrap()).send().await.expect_err("the hub must not see it");
    assert_eq!(tfstate_operator::aws::error::from_sdk("kms", "DescribeKey", err).kind, AwsErrorKind::NotFound);

    // DynamoDB.
    let table = format!("spoke-lock-{suffix}");
    let created = spoke
        .dynamodb
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("LockID")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(KeySchemaElement::builder().attribute_name("LockID").key_type(KeyType::Hash).build().unwrap())
        .send()
        .await
        .expect("CreateTable");
    let table_arn = created.table_description.and_then(|t| t.table_arn).unwrap();
    assert!(table_arn.contains(&format!(":{SPOKE}:table/")), "{table_arn}");
    spoke.dynamodb.describe_table().table_name(&table).send().await.expect("the spoke reads its table");
    let err = hub.dynamodb.describe_table().table_name(&table).send().await.expect_err("the hub must not see it");
    assert_eq!(tfstate_operator::aws::error::from_sdk("dynamodb", "DescribeTable", err).kind, AwsErrorKind::NotFound);

    // IAM.
    let runner = format!("spoke-runner-{suffix}");
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"sts:AssumeRole"}]}"#;
    let r = spoke.iam.create_role().role_name(&runner).assume_role_policy_document(trust).send().await.unwrap();
    assert_eq!(r.role.unwrap().arn, format!("arn:aws:iam::{SPOKE}:role/{runner}"));
    spoke.iam.get_role().role_name(&runner).send().await.expect("the spoke reads its role");
    let err = hub.iam.get_role().role_name(&runner).send().await.expect_err("the hub must not see it");
    assert_eq!(tfstate_operator::aws::error::from_sdk("iam", "GetRole", err).kind, AwsErrorKind::NotFound);

    // S3: the spoke's bucket list; bucket names are global.
    let bucket = format!("spoke-state-{suffix}");
    create_bucket(&spoke, &bucket).await.expect("CreateBucket");
    spoke
        .s3
        .put_object()
        .bucket(&bucket)
        .key("k/terraform.tfstate")
        .body(ByteStream::from_static(b"{}"))
        .send()
        .await
        .expect("PutObject");
    let got = spoke.s3.get_object().bucket(&bucket).key("k/terraform.tfstate").send().await.expect("GetObject");
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"{}");
    assert!(bucket_names(&spoke).await.contains(&bucket));
    assert!(!bucket_names(&hub).await.contains(&bucket), "the hub does not list the spoke's bucket");
    assert_eq!(create_bucket(&hub, &bucket).await, Err("BucketAlreadyExists".to_string()), "names are global");
    // moto, unlike AWS, lets another account read a bucket (no cross-account denial).
    hub.s3.head_bucket().bucket(&bucket).send().await.expect("moto: cross-account HeadBucket is allowed");

    // One AssumeRole served every one of those calls, and it was counted.
    assert_eq!(calls(&factory, "sts", "AssumeRole"), 1);
    assert_eq!(factory.assumed_cached(), (1, 1));
    let again = factory.clients_as(region, Some(&assume)).await.unwrap();
    assert_eq!(account_of(&again).await.0, SPOKE);
    assert_eq!(calls(&factory, "sts", "AssumeRole"), 1, "cached: no second AssumeRole");

    spoke.s3.delete_object().bucket(&bucket).key("k/terraform.tfstate").send().await.unwrap();
    spoke.s3.delete_bucket().bucket(&bucket).send().await.unwrap();
}

#[tokio::test]
async fn identity_is_that_of_the_assumed_role_once_per_role() {
    let ground = Ground::load();
    let region = ground.var("AWS_REGION").to_string();
    let config = ReconcileConfig {
        defaults: OperatorDefaults { region: Some(region.clone()) },
        endpoint_url: ground.aws_settings().endpoint_url,
        resync_interval: std::time::Duration::from_secs(60),
        verify_delay: std::time::Duration::from_secs(1),
        reconcile_timeout: std::time::Duration::from_secs(300),
        instance: None,
    };
    let ctx = Context::new(ground.kube().await, factory(&ground).await, config, Failpoints::default());
    let suffix = random_suffix();
    // A role with a path: the key policy must name it with its path, which the assumed-role
    // ARN that GetCallerIdentity returns does not carry.
    let role = spoke_role(&format!("ops/tfstate-spoke-{suffix}"));

    let own = ctx.identity(&ctx.aws.clients(&region)).await.expect("own identity");
    assert_eq!(own.account_id, ground.var("TESTGROUND_ACCOUNT_ID"));

    let a = ctx.aws.clients_as(&region, Some(&AssumeAs::for_object(&role, "team-a", "one"))).await.unwrap();
    let id = ctx.identity(&a).await.expect("assumed identity");
    assert_eq!(id.account_id, SPOKE);
    assert_eq!(id.partition, "aws");
    assert_eq!(id.operator_arn, role);
    assert_ne!(id, own);

    // Another session of the same role, in another region: the same identity, not asked again.
    let asked = calls(&ctx.aws, "sts", "GetCallerIdentity");
    let b = ctx.aws.clients_as("us-east-1", Some(&AssumeAs::for_object(&role, "team-b", "two"))).await.unwrap();
    assert_eq!(ctx.identity(&b).await.unwrap(), id);
    assert_eq!(ctx.identity(&ctx.aws.clients(&region)).await.unwrap(), own);
    assert_eq!(calls(&ctx.aws, "sts", "GetCallerIdentity"), asked);

    // Another role, in another account: its own identity.
    let other = "arn:aws:iam::222222222222:role/tfstate-other".to_string();
    let c = ctx.aws.clients_as(&region, Some(&AssumeAs::for_object(&other, "team-c", "three"))).await.unwrap();
    let id_c = ctx.identity(&c).await.unwrap();
    assert_eq!((id_c.account_id.as_str(), id_c.operator_arn.as_str()), ("222222222222", other.as_str()));
    assert_eq!(calls(&ctx.aws, "sts", "GetCallerIdentity"), asked + 1);
}

#[tokio::test]
async fn sessions_of_one_role_are_separate_and_roles_do_not_mix() {
    let ground = Ground::load();
    let region = ground.var("AWS_REGION");
    let factory = factory(&ground).await;
    let suffix = random_suffix();
    let role = spoke_role(&format!("tfstate-spoke-{suffix}"));
    let a = factory.clients_as(region, Some(&AssumeAs::for_object(&role, "team-a", "x"))).await.unwrap();
    let b = factory.clients_as(region, Some(&AssumeAs::for_object(&role, "team-b", "y"))).await.unwrap();
    assert_eq!(calls(&factory, "sts", "AssumeRole"), 2, "one AssumeRole per session");
    assert_eq!(factory.assumed_cached(), (2, 2));
    // Each session signs as itself (the session name is in the caller's ARN)...
    assert!(account_of(&a).await.1.ends_with("/team-a.x"));
    assert!(account_of(&b).await.1.ends_with("/team-b.y"));
    // ...in the same account: what one creates, the other sees (AWS's boundary is the
    // account and the role, not the session).
    let key = a.kms.create_key().send().await.unwrap().key_metadata.unwrap().arn.unwrap();
    b.kms.describe_key().key_id(&key).send().await.expect("same account");

    // A role of another account sees none of it.
    let other = format!("arn:aws:iam::333333333333:role/tfstate-other-{suffix}");
    let c = factory.clients_as(region, Some(&AssumeAs::for_object(&other, "team-a", "x"))).await.unwrap();
    assert_eq!(account_of(&c).await.0, "333333333333");
    let err = c.kms.describe_key().key_id(&key).send().await.expect_err("another account's key");
    assert_eq!(tfstate_operator::aws::error::from_sdk("kms", "DescribeKey", err).kind, AwsErrorKind::NotFound);
}

#[tokio::test]
async fn a_refused_assume_role_is_reported_with_the_role() {
    // moto refuses no AssumeRole on trust grounds, but it validates the session name: a
    // real refusal through the whole path (AccessDenied itself: the factory's unit tests).
    let ground = Ground::load();
    let factory = factory(&ground).await;
    let role = spoke_role("tfstate-spoke");
    let bad = AssumeAs { role_arn: role.clone(), session_name: "x".repeat(65), external_id: None };
    let err = factory.clients_as(ground.var("AWS_REGION"), Some(&bad)).await.expect_err("too long a session name");
    assert_eq!((err.service, err.operation), ("sts", "AssumeRole"));
    assert_eq!(err.code, "ValidationError", "{err}");
    assert!(err.to_string().contains(&role) && err.to_string().contains("sts:AssumeRole"), "{err}");
    assert_eq!(factory.assumed_cached().1, 0, "nothing cached for a refused session");
    // session_name never makes such a name.
    assert!(session_name(&"n".repeat(63), &"x".repeat(253)).len() <= 64);
}
