//! One SDK request per AWS operation the operator makes, shaped like the operator's own
//! (same parameters, policies and tags of similar size), against throwaway resources.

use aws_sdk_dynamodb::types as ddb;
use aws_sdk_kms::types as kms;
use aws_sdk_s3::types as s3;
use aws_smithy_types::error::display::DisplayErrorContext;
use tfstate_operator::aws::AwsClients;

use super::Fixtures;
use crate::Result;

/// An operation the floor knows how to replay; `Other` is the cheap stand-in of a service
/// for operations it does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[allow(missing_docs)] // the variants are AWS operation names
pub enum Op {
    CreateBucket,
    HeadBucket,
    GetBucketTagging,
    GetBucketVersioning,
    GetBucketEncryption,
    GetPublicAccessBlock,
    GetBucketOwnershipControls,
    GetBucketLifecycleConfiguration,
    GetBucketPolicy,
    GetBucketLogging,
    ListObjectVersions,
    PutBucketTagging,
    PutBucketVersioning,
    PutBucketEncryption,
    PutPublicAccessBlock,
    PutBucketOwnershipControls,
    PutBucketLifecycleConfiguration,
    PutBucketPolicy,
    PutBucketLogging,
    CreateKey,
    DescribeKey,
    GetKeyPolicy,
    GetKeyRotationStatus,
    ListResourceTags,
    ListKeys,
    CreateAlias,
    UpdateAlias,
    EnableKeyRotation,
    PutKeyPolicy,
    KmsTagResource,
    KmsUntagResource,
    CreateTable,
    DescribeTable,
    DescribeContinuousBackups,
    ListTagsOfResource,
    UpdateContinuousBackups,
    UpdateTable,
    DdbTagResource,
    DdbUntagResource,
    CreateRole,
    GetRole,
    GetRolePolicy,
    PutRolePolicy,
    TagRole,
    UntagRole,
    UpdateAssumeRolePolicy,
    UpdateRole,
    GetCallerIdentity,
    /// Unknown operation of S3 / KMS / DynamoDB / IAM: a cheap read of the same service.
    OtherS3,
    OtherKms,
    OtherDynamoDb,
    OtherIam,
    /// Unknown operation of any other service: GetCallerIdentity.
    OtherSts,
}

impl Op {
    /// The replay of `service`/`operation`, and whether it is an exact mapping.
    pub fn of(service: &str, operation: &str) -> (Op, bool) {
        use Op::*;
        let exact = match (service, operation) {
            ("s3", "CreateBucket") => CreateBucket,
            ("s3", "HeadBucket") => HeadBucket,
            ("s3", "GetBucketTagging") => GetBucketTagging,
            ("s3", "GetBucketVersioning") => GetBucketVersioning,
            ("s3", "GetBucketEncryption") => GetBucketEncryption,
            ("s3", "GetPublicAccessBlock") => GetPublicAccessBlock,
            ("s3", "GetBucketOwnershipControls") => GetBucketOwnershipControls,
            ("s3", "GetBucketLifecycleConfiguration") => GetBucketLifecycleConfiguration,
            ("s3", "GetBucketPolicy") => GetBucketPolicy,
            ("s3", "GetBucketLogging") => GetBucketLogging,
            ("s3", "ListObjectVersions") => ListObjectVersions,
            ("s3", "PutBucketTagging") => PutBucketTagging,
            ("s3", "PutBucketVersioning") => PutBucketVersioning,
            ("s3", "PutBucketEncryption") => PutBucketEncryption,
            ("s3", "PutPublicAccessBlock") => PutPublicAccessBlock,
            ("s3", "PutBucketOwnershipControls") => PutBucketOwnershipControls,
            ("s3", "PutBucketLifecycleConfiguration") => PutBucketLifecycleConfiguration,
            ("s3", "PutBucketPolicy") => PutBucketPolicy,
            ("s3", "PutBucketLogging") => PutBucketLogging,
            ("kms", "CreateKey") => CreateKey,
            ("kms", "DescribeKey") => DescribeKey,
            ("kms", "GetKeyPolicy") => GetKeyPolicy,
            ("kms", "GetKeyRotationStatus") => GetKeyRotationStatus,
            ("kms", "ListResourceTags") => ListResourceTags,
            ("kms", "ListKeys") => ListKeys,
            ("kms", "CreateAlias") => CreateAlias,
            ("kms", "UpdateAlias") => UpdateAlias,
            ("kms", "EnableKeyRotation") => EnableKeyRotation,
            ("kms", "PutKeyPolicy") => PutKeyPolicy,
            ("kms", "TagResource") => KmsTagResource,
            ("kms", "UntagResource") => KmsUntagResource,
            ("dynamodb", "CreateTable") => CreateTable,
            ("dynamodb", "DescribeTable") => DescribeTable,
            ("dynamodb", "DescribeContinuousBackups") => DescribeContinuousBackups,
            ("dynamodb", "ListTagsOfResource") => ListTagsOfResource,
            ("dynamodb", "UpdateContinuousBackups") => UpdateContinuousBackups,
            ("dynamodb", "UpdateTable") => UpdateTable,
            ("dynamodb", "TagResource") => DdbTagResource,
            ("dynamodb", "UntagResource") => DdbUntagResource,
            ("iam", "CreateRole") => CreateRole,
            ("iam", "GetRole") => GetRole,
            ("iam", "GetRolePolicy") => GetRolePolicy,
            ("iam", "PutRolePolicy") => PutRolePolicy,
            ("iam", "TagRole") => TagRole,
            ("iam", "UntagRole") => UntagRole,
            ("iam", "UpdateAssumeRolePolicy") => UpdateAssumeRolePolicy,
            ("iam", "UpdateRole") => UpdateRole,
            ("sts", "GetCallerIdentity") => GetCallerIdentity,
            ("s3", _) => return (OtherS3, false),
            ("kms", _) => return (OtherKms, false),
            ("dynamodb", _) => return (OtherDynamoDb, false),
            ("iam", _) => return (OtherIam, false),
            _ => return (OtherSts, false),
        };
        (exact, true)
    }
}

/// Maps an SDK result to the benchmark's error text (with the service's error code).
trait Done {
    fn done(self) -> Result<()>;
}

impl<T, E: std::error::Error> Done for std::result::Result<T, E> {
    fn done(self) -> Result<()> {
        self.map(|_| ()).map_err(|e| DisplayErrorContext(&e).to_string())
    }
}

/// Issues one call of `op`. `n` spreads calls over the fixtures and names fresh resources;
/// `absent` targets a resource that does not exist (the operator's reads that answered
/// "not found" while it was creating).
pub async fn call(c: &AwsClients, f: &Fixtures, op: Op, n: usize, absent: bool) -> Result<()> {
    let i = n % f.size();
    let bucket = if absent { f.absent.as_str() } else { f.bucket(i) };
    let (key_id, key_arn) = f.key(i);
    let key_id = if absent { f.absent_key_id.as_str() } else { key_id };
    let table = if absent { f.absent.as_str() } else { f.table(i).0 };
    let role = if absent { f.absent.as_str() } else { f.role(i) };
    let fresh = f.fresh_name(n);
    match op {
        Op::CreateBucket => create_bucket(c, &fresh).await,
        Op::HeadBucket => c.s3.head_bucket().bucket(bucket).send().await.done(),
        Op::GetBucketTagging => c.s3.get_bucket_tagging().bucket(bucket).send().await.done(),
        Op::GetBucketVersioning => c.s3.get_bucket_versioning().bucket(bucket).send().await.done(),
        Op::GetBucketEncryption => c.s3.get_bucket_encryption().bucket(bucket).send().await.done(),
        Op::GetPublicAccessBlock => c.s3.get_public_access_block().bucket(bucket).send().await.done(),
        Op::GetBucketOwnershipControls => c.s3.get_bucket_ownership_controls().bucket(bucket).send().await.done(),
        Op::GetBucketLifecycleConfiguration => {
            c.s3.get_bucket_lifecycle_configuration().bucket(bucket).send().await.done()
        }
        Op::GetBucketPolicy => c.s3.get_bucket_policy().bucket(bucket).send().await.done(),
        Op::GetBucketLogging => c.s3.get_bucket_logging().bucket(bucket).send().await.done(),
        Op::ListObjectVersions => c.s3.list_object_versions().bucket(bucket).max_keys(1000).send().await.done(),
        Op::PutBucketTagging => {
            let tagging = s3::Tagging::builder().set_tag_set(Some(s3_tags(f)?)).build().map_err(err)?;
            c.s3.put_bucket_tagging().bucket(bucket).tagging(tagging).send().await.done()
        }
        Op::PutBucketVersioning => {
            let conf = s3::VersioningConfiguration::builder().status(s3::BucketVersioningStatus::Enabled).build();
            c.s3.put_bucket_versioning().bucket(bucket).versioning_configuration(conf).send().await.done()
        }
        Op::PutBucketEncryption => {
            let by_default = s3::ServerSideEncryptionByDefault::builder()
                .sse_algorithm(s3::ServerSideEncryption::AwsKms)
                .kms_master_key_id(key_arn)
                .build()
                .map_err(err)?;
            let rule = s3::ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(by_default)
                .bucket_key_enabled(true)
                .build();
            let conf = s3::ServerSideEncryptionConfiguration::builder().rules(rule).build().map_err(err)?;
            c.s3.put_bucket_encryption().bucket(bucket).server_side_encryption_configuration(conf).send().await.done()
        }
        Op::PutPublicAccessBlock => {
            let conf = s3::PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build();
            c.s3.put_public_access_block().bucket(bucket).public_access_block_configuration(conf).send().await.done()
        }
        Op::PutBucketOwnershipControls => {
            let rule = s3::OwnershipControlsRule::builder()
                .object_ownership(s3::ObjectOwnership::BucketOwnerEnforced)
                .build()
                .map_err(err)?;
            let conf = s3::OwnershipControls::builder().rules(rule).build().map_err(err)?;
            c.s3.put_bucket_ownership_controls().bucket(bucket).ownership_controls(conf).send().await.done()
        }
        Op::PutBucketLifecycleConfiguration => {
            let rule = s3::LifecycleRule::builder()
                .id("tfstate-operator")
                .status(s3::ExpirationStatus::Enabled)
                .filter(s3::LifecycleRuleFilter::builder().prefix("").build())
                .noncurrent_version_expiration(s3::NoncurrentVersionExpiration::builder().noncurrent_days(90).build())
                .abort_incomplete_multipart_upload(
                    s3::AbortIncompleteMultipartUpload::builder().days_after_initiation(7).build(),
                )
                .build()
                .map_err(err)?;
            let conf = s3::BucketLifecycleConfiguration::builder().rules(rule).build().map_err(err)?;
            c.s3.put_bucket_lifecycle_configuration().bucket(bucket).lifecycle_configuration(conf).send().await.done()
        }
        Op::PutBucketPolicy => {
            c.s3.put_bucket_policy().bucket(bucket).policy(f.bucket_policy(bucket)).send().await.done()
        }
        Op::PutBucketLogging => {
            let status = s3::BucketLoggingStatus::builder().build();
            c.s3.put_bucket_logging().bucket(bucket).bucket_logging_status(status).send().await.done()
        }
        Op::CreateKey => create_key(c, f).await.map(|_| ()),
        Op::DescribeKey => {
            let alias = if absent { format!("alias/{}", f.absent) } else { f.alias(i) };
            c.kms.describe_key().key_id(alias).send().await.done()
        }
        Op::GetKeyPolicy => c.kms.get_key_policy().key_id(key_id).policy_name("default").send().await.done(),
        Op::GetKeyRotationStatus => c.kms.get_key_rotation_status().key_id(key_id).send().await.done(),
        Op::ListResourceTags => c.kms.list_resource_tags().key_id(key_id).send().await.done(),
        Op::ListKeys => c.kms.list_keys().send().await.done(),
        Op::CreateAlias => {
            c.kms.create_alias().alias_name(format!("alias/{fresh}")).target_key_id(key_id).send().await.done()
        }
        Op::UpdateAlias => c.kms.update_alias().alias_name(f.alias(i)).target_key_id(key_id).send().await.done(),
        Op::EnableKeyRotation => c.kms.enable_key_rotation().key_id(key_id).send().await.done(),
        Op::PutKeyPolicy => {
            c.kms.put_key_policy().key_id(key_id).policy_name("default").policy(&f.key_policy).send().await.done()
        }
        Op::KmsTagResource => c.kms.tag_resource().key_id(key_id).set_tags(Some(kms_tags(f)?)).send().await.done(),
        Op::KmsUntagResource => c.kms.untag_resource().key_id(key_id).tag_keys("bench/absent").send().await.done(),
        Op::CreateTable => create_table(c, f, &fresh, key_arn).await,
        Op::DescribeTable => c.dynamodb.describe_table().table_name(table).send().await.done(),
        Op::DescribeContinuousBackups => c.dynamodb.describe_continuous_backups().table_name(table).send().await.done(),
        Op::ListTagsOfResource => {
            let arn = if absent { f.absent_table_arn() } else { f.table(i).1.to_string() };
            c.dynamodb.list_tags_of_resource().resource_arn(arn).send().await.done()
        }
        Op::UpdateContinuousBackups => {
            let spec = ddb::PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .map_err(err)?;
            let req = c.dynamodb.update_continuous_backups().table_name(table);
            req.point_in_time_recovery_specification(spec).send().await.done()
        }
        Op::UpdateTable => {
            c.dynamodb.update_table().table_name(table).deletion_protection_enabled(true).send().await.done()
        }
        Op::DdbTagResource => {
            let req = c.dynamodb.tag_resource().resource_arn(f.table(i).1);
            req.set_tags(Some(ddb_tags(f)?)).send().await.done()
        }
        Op::DdbUntagResource => {
            c.dynamodb.untag_resource().resource_arn(f.table(i).1).tag_keys("bench/absent").send().await.done()
        }
        Op::CreateRole => create_role(c, f, &fresh).await,
        Op::GetRole => c.iam.get_role().role_name(role).send().await.done(),
        Op::GetRolePolicy => c.iam.get_role_policy().role_name(role).policy_name(super::INLINE).send().await.done(),
        Op::PutRolePolicy => put_role_policy(c, f, role).await,
        Op::TagRole => c.iam.tag_role().role_name(role).set_tags(Some(iam_tags(f)?)).send().await.done(),
        Op::UntagRole => c.iam.untag_role().role_name(role).tag_keys("bench/absent").send().await.done(),
        Op::UpdateAssumeRolePolicy => {
            c.iam.update_assume_role_policy().role_name(role).policy_document(&f.trust_policy).send().await.done()
        }
        Op::UpdateRole => c.iam.update_role().role_name(role).max_session_duration(3600).send().await.done(),
        Op::GetCallerIdentity | Op::OtherSts => c.sts.get_caller_identity().send().await.done(),
        Op::OtherS3 => c.s3.get_bucket_versioning().bucket(f.bucket(i)).send().await.done(),
        Op::OtherKms => c.kms.describe_key().key_id(f.key(i).0).send().await.done(),
        Op::OtherDynamoDb => c.dynamodb.describe_table().table_name(f.table(i).0).send().await.done(),
        Op::OtherIam => c.iam.get_role().role_name(f.role(i)).send().await.done(),
    }
}

/// CreateBucket as the operator sends it (ACLs disabled, location constraint).
pub async fn create_bucket(c: &AwsClients, name: &str) -> Result<()> {
    let mut req = c.s3.create_bucket().bucket(name).object_ownership(s3::ObjectOwnership::BucketOwnerEnforced);
    // us-east-1 is the one region that must not be named as a location constraint.
    if c.region != "us-east-1" {
        let location = s3::BucketLocationConstraint::from(c.region.as_str());
        req = req.create_bucket_configuration(
            s3::CreateBucketConfiguration::builder().location_constraint(location).build(),
        );
    }
    req.send().await.done()
}

/// CreateKey as the operator sends it; returns (key id, ARN).
pub async fn create_key(c: &AwsClients, f: &Fixtures) -> Result<(String, String)> {
    let out = c
        .kms
        .create_key()
        .description("tfstate-operator benchmark floor")
        .key_spec(kms::KeySpec::SymmetricDefault)
        .key_usage(kms::KeyUsageType::EncryptDecrypt)
        .policy(&f.key_policy)
        .set_tags(Some(kms_tags(f)?))
        .send()
        .await
        .map_err(err)?;
    let meta = out.key_metadata().ok_or("CreateKey answered without KeyMetadata")?;
    Ok((meta.key_id().to_string(), meta.arn().unwrap_or_default().to_string()))
}

/// CreateTable as the operator sends it (LockID, on-demand, SSE-KMS, deletion protection).
pub async fn create_table(c: &AwsClients, f: &Fixtures, name: &str, key_arn: &str) -> Result<()> {
    let attr = ddb::AttributeDefinition::builder()
        .attribute_name("LockID")
        .attribute_type(ddb::ScalarAttributeType::S)
        .build()
        .map_err(err)?;
    let schema =
        ddb::KeySchemaElement::builder().attribute_name("LockID").key_type(ddb::KeyType::Hash).build().map_err(err)?;
    let sse = ddb::SseSpecification::builder().enabled(true).sse_type(ddb::SseType::Kms).kms_master_key_id(key_arn);
    c.dynamodb
        .create_table()
        .table_name(name)
        .attribute_definitions(attr)
        .key_schema(schema)
        .billing_mode(ddb::BillingMode::PayPerRequest)
        .sse_specification(sse.build())
        .deletion_protection_enabled(true)
        .set_tags(Some(ddb_tags(f)?))
        .send()
        .await
        .done()
}

/// CreateRole as the operator sends it.
pub async fn create_role(c: &AwsClients, f: &Fixtures, name: &str) -> Result<()> {
    c.iam
        .create_role()
        .role_name(name)
        .description("tfstate-operator benchmark floor")
        .assume_role_policy_document(&f.trust_policy)
        .max_session_duration(3600)
        .set_tags(Some(iam_tags(f)?))
        .send()
        .await
        .done()
}

/// PutRolePolicy of the backend's inline policy.
pub async fn put_role_policy(c: &AwsClients, f: &Fixtures, role: &str) -> Result<()> {
    let req = c.iam.put_role_policy().role_name(role).policy_name(super::INLINE);
    req.policy_document(&f.runner_policy).send().await.done()
}

fn err<E: std::error::Error>(e: E) -> String {
    DisplayErrorContext(&e).to_string()
}

fn s3_tags(f: &Fixtures) -> Result<Vec<s3::Tag>> {
    f.tags.iter().map(|(k, v)| s3::Tag::builder().key(k).value(v).build().map_err(err)).collect()
}

fn kms_tags(f: &Fixtures) -> Result<Vec<kms::Tag>> {
    f.tags.iter().map(|(k, v)| kms::Tag::builder().tag_key(k).tag_value(v).build().map_err(err)).collect()
}

fn ddb_tags(f: &Fixtures) -> Result<Vec<ddb::Tag>> {
    f.tags.iter().map(|(k, v)| ddb::Tag::builder().key(k).value(v).build().map_err(err)).collect()
}

fn iam_tags(f: &Fixtures) -> Result<Vec<aws_sdk_iam::types::Tag>> {
    f.tags.iter().map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build().map_err(err)).collect()
}
