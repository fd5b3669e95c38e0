//! S3: thin typed wrappers. Reads return plain observed values; writes take desired
//! values. Nothing here decides anything.

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint, BucketLoggingStatus,
    BucketVersioningStatus, CreateBucketConfiguration, ExpirationStatus, LifecycleRule, LifecycleRuleFilter,
    LoggingEnabled, NoncurrentVersionExpiration, ObjectOwnership, OwnershipControls, OwnershipControlsRule,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging, VersioningConfiguration,
};

use super::error::{AwsError, AwsErrorKind, Context, build_error, optional};
use super::{ConditionalDelete, Tags};

mod replication;
pub use replication::{
    RTC_MINUTES, ReplicationRuleSettings, ReplicationSettings, delete_replication, get_replication, put_replication,
};

const S3: &str = "s3";

/// Default encryption of a bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DefaultEncryption {
    /// SSE-KMS with this key (ARN as configured) and Bucket Keys on or off.
    Kms {
        /// The configured key.
        key_id: Option<String>,
        /// Whether S3 Bucket Keys are enabled.
        bucket_key: bool,
    },
    /// SSE-S3.
    Aes256 {
        /// Whether S3 Bucket Keys are enabled (meaningless for SSE-S3, but reported).
        bucket_key: bool,
    },
    /// Another algorithm (e.g. DSSE-KMS).
    Other(String),
}

/// The four public access block settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PublicAccessBlock {
    /// BlockPublicAcls.
    pub block_public_acls: bool,
    /// IgnorePublicAcls.
    pub ignore_public_acls: bool,
    /// BlockPublicPolicy.
    pub block_public_policy: bool,
    /// RestrictPublicBuckets.
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    /// All four on.
    pub const ALL: PublicAccessBlock = PublicAccessBlock {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    };
}

/// A lifecycle rule, reduced to what the operator manages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    /// Rule ID.
    pub id: String,
    /// Status Enabled.
    pub enabled: bool,
    /// Filter prefix (empty = whole bucket).
    pub prefix: String,
    /// NoncurrentVersionExpiration days.
    pub noncurrent_days: Option<i32>,
    /// AbortIncompleteMultipartUpload days.
    pub abort_multipart_days: Option<i32>,
    /// Whether the rule also expires current versions (never wanted for state).
    pub expires_current: bool,
}

/// Server access logging target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logging {
    /// Target bucket.
    pub target_bucket: String,
    /// Target prefix.
    pub target_prefix: String,
}

/// Every bucket setting the operator manages, as observed.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct BucketSettings {
    /// Versioning is Enabled.
    pub versioning_enabled: bool,
    /// Default encryption.
    pub encryption: Option<DefaultEncryption>,
    /// Public access block.
    pub public_access_block: Option<PublicAccessBlock>,
    /// Object ownership setting.
    pub object_ownership: Option<String>,
    /// Lifecycle rules.
    pub lifecycle: Vec<Lifecycle>,
    /// Bucket policy JSON.
    pub policy: Option<String>,
    /// Access logging (only read when the spec asks for it).
    pub logging: Option<Logging>,
}

/// The bucket's tags; `None` when the bucket does not exist. An AccessDenied means the
/// name is taken by another account.
pub async fn get_tags(c: &Client, bucket: &str) -> Result<Option<Tags>, AwsError> {
    match c.get_bucket_tagging().bucket(bucket).send().await.ctx(S3, "GetBucketTagging") {
        Ok(out) => Ok(Some(out.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect())),
        Err(e) if e.code == "NoSuchTagSet" || e.code == "NoSuchTagSetError" => Ok(Some(Tags::new())),
        Err(e) if e.code == "NoSuchBucket" => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the bucket exists and the caller may use it (HeadBucket): `false` when S3 says
/// there is no such bucket.
pub async fn exists(c: &Client, bucket: &str) -> Result<bool, AwsError> {
    match c.head_bucket().bucket(bucket).send().await.ctx(S3, "HeadBucket") {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Polls HeadBucket, quickly at first, until S3 shows `bucket` (just created: S3 may answer
/// `NoSuchBucket` for a while). Returns `false` if it still does not after `within`.
pub async fn wait_until_exists(c: &Client, bucket: &str, within: std::time::Duration) -> Result<bool, AwsError> {
    let started = tokio::time::Instant::now();
    let mut delay = std::time::Duration::from_millis(100);
    while !exists(c, bucket).await? {
        if started.elapsed() + delay > within {
            return Ok(false);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(2));
    }
    Ok(true)
}

/// Whether the operator's own account owns a bucket of this name (ListBuckets, which lists
/// only the caller's buckets). Asked when a bucket's tags are refused: a bucket of another
/// account and a denied permission (IAM propagation, an SCP) both answer 403 AccessDenied,
/// and only the first is a name taken.
pub async fn owned_by_caller(c: &Client, bucket: &str) -> Result<bool, AwsError> {
    let mut token = None;
    loop {
        let out = c
            .list_buckets()
            .prefix(bucket)
            .max_buckets(1000)
            .set_continuation_token(token)
            .send()
            .await
            .ctx(S3, "ListBuckets")?;
        if out.buckets().iter().any(|b| b.name() == Some(bucket)) {
            return Ok(true);
        }
        match out.continuation_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(false),
        }
    }
}

/// Reads every managed setting concurrently (7 reads, 8 with logging).
pub async fn get_settings(c: &Client, bucket: &str, with_logging: bool) -> Result<BucketSettings, AwsError> {
    let (versioning, encryption, pab, ownership, lifecycle, policy, logging) = tokio::try_join!(
        async { c.get_bucket_versioning().bucket(bucket).send().await.ctx(S3, "GetBucketVersioning") },
        async { optional(c.get_bucket_encryption().bucket(bucket).send().await.ctx(S3, "GetBucketEncryption")) },
        async { optional(c.get_public_access_block().bucket(bucket).send().await.ctx(S3, "GetPublicAccessBlock")) },
        async {
            optional(
                c.get_bucket_ownership_controls().bucket(bucket).send().await.ctx(S3, "GetBucketOwnershipControls"),
            )
        },
        async {
            optional(
                c.get_bucket_lifecycle_configuration()
                    .bucket(bucket)
                    .send()
                    .await
                    .ctx(S3, "GetBucketLifecycleConfiguration"),
            )
        },
        async { optional(c.get_bucket_policy().bucket(bucket).send().await.ctx(S3, "GetBucketPolicy")) },
        async {
            if with_logging {
                c.get_bucket_logging().bucket(bucket).send().await.ctx(S3, "GetBucketLogging").map(Some)
            } else {
                Ok(None)
            }
        },
    )?;
    let encryption = encryption.and_then(|o| {
        let rule = o.server_side_encryption_configuration()?.rules().first()?.clone();
        let by_default = rule.apply_server_side_encryption_by_default()?;
        let bucket_key = rule.bucket_key_enabled().unwrap_or(false);
        Some(match by_default.sse_algorithm() {
            ServerSideEncryption::AwsKms => {
                DefaultEncryption::Kms { key_id: by_default.kms_master_key_id().map(str::to_string), bucket_key }
            }
            ServerSideEncryption::Aes256 => DefaultEncryption::Aes256 { bucket_key },
            other => DefaultEncryption::Other(other.as_str().to_string()),
        })
    });
    let public_access_block = pab.and_then(|o| {
        o.public_access_block_configuration().map(|p| PublicAccessBlock {
            block_public_acls: p.block_public_acls().unwrap_or(false),
            ignore_public_acls: p.ignore_public_acls().unwrap_or(false),
            block_public_policy: p.block_public_policy().unwrap_or(false),
            restrict_public_buckets: p.restrict_public_buckets().unwrap_or(false),
        })
    });
    let object_ownership = ownership
        .and_then(|o| o.ownership_controls()?.rules().first().map(|r| r.object_ownership().as_str().to_string()));
    let lifecycle = lifecycle.map(|o| o.rules().iter().map(lifecycle_from_sdk).collect()).unwrap_or_default();
    Ok(BucketSettings {
        versioning_enabled: versioning.status() == Some(&BucketVersioningStatus::Enabled),
        encryption,
        public_access_block,
        object_ownership,
        lifecycle,
        policy: policy.and_then(|p| p.policy().map(str::to_string)),
        logging: logging.and_then(|l| {
            l.logging_enabled().map(|e| Logging {
                target_bucket: e.target_bucket().to_string(),
                target_prefix: e.target_prefix().to_string(),
            })
        }),
    })
}

fn lifecycle_from_sdk(r: &LifecycleRule) -> Lifecycle {
    #[allow(deprecated)] // older servers still answer with the top-level Prefix
    let prefix = r.filter().and_then(|f| f.prefix()).or(r.prefix()).unwrap_or_default().to_string();
    Lifecycle {
        id: r.id().unwrap_or_default().to_string(),
        enabled: r.status() == &ExpirationStatus::Enabled,
        prefix,
        noncurrent_days: r.noncurrent_version_expiration().and_then(|n| n.noncurrent_days()),
        abort_multipart_days: r.abort_incomplete_multipart_upload().and_then(|a| a.days_after_initiation()),
        expires_current: r.expiration().is_some_and(|e| e.days().is_some() || e.date().is_some()),
    }
}

/// Creates the bucket in `region`, tagged with `tags` in the same call
/// (`CreateBucketConfiguration.Tags`): a bucket of ours is never untagged, not even for a
/// moment, so ownership is never guessed afterwards.
pub async fn create_bucket(c: &Client, bucket: &str, region: &str, tags: &Tags) -> Result<(), AwsError> {
    let tags = if tags.is_empty() { None } else { Some(sdk_tags(tags, "CreateBucket")?) };
    let mut config = CreateBucketConfiguration::builder().set_tags(tags);
    // us-east-1 is the one region that must not be named as a location constraint.
    if region != "us-east-1" {
        config = config.location_constraint(BucketLocationConstraint::from(region));
    }
    c.create_bucket()
        .bucket(bucket)
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .create_bucket_configuration(config.build())
        .send()
        .await
        .ctx(S3, "CreateBucket")
        .map(|_| ())
}

fn sdk_tags(tags: &Tags, operation: &'static str) -> Result<Vec<Tag>, AwsError> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| build_error(S3, operation, e))
}

/// Replaces the bucket's tags.
pub async fn put_tags(c: &Client, bucket: &str, tags: &Tags) -> Result<(), AwsError> {
    let tag_set = sdk_tags(tags, "PutBucketTagging")?;
    let tagging =
        Tagging::builder().set_tag_set(Some(tag_set)).build().map_err(|e| build_error(S3, "PutBucketTagging", e))?;
    c.put_bucket_tagging().bucket(bucket).tagging(tagging).send().await.ctx(S3, "PutBucketTagging").map(|_| ())
}

/// Turns versioning on.
pub async fn enable_versioning(c: &Client, bucket: &str) -> Result<(), AwsError> {
    let conf = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    c.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(conf)
        .send()
        .await
        .ctx(S3, "PutBucketVersioning")?;
    Ok(())
}

/// Sets default encryption: SSE-KMS with `kms_key_arn` and Bucket Keys, or SSE-S3.
pub async fn put_encryption(c: &Client, bucket: &str, kms_key_arn: Option<&str>) -> Result<(), AwsError> {
    let op = "PutBucketEncryption";
    let by_default = match kms_key_arn {
        Some(arn) => {
            ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::AwsKms).kms_master_key_id(arn)
        }
        None => ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256),
    }
    .build()
    .map_err(|e| build_error(S3, op, e))?;
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(by_default)
        .bucket_key_enabled(kms_key_arn.is_some())
        .build();
    let conf = ServerSideEncryptionConfiguration::builder().rules(rule).build().map_err(|e| build_error(S3, op, e))?;
    c.put_bucket_encryption().bucket(bucket).server_side_encryption_configuration(conf).send().await.ctx(S3, op)?;
    Ok(())
}

/// Sets all four public access block settings.
pub async fn put_public_access_block(c: &Client, bucket: &str, pab: PublicAccessBlock) -> Result<(), AwsError> {
    let conf = PublicAccessBlockConfiguration::builder()
        .block_public_acls(pab.block_public_acls)
        .ignore_public_acls(pab.ignore_public_acls)
        .block_public_policy(pab.block_public_policy)
        .restrict_public_buckets(pab.restrict_public_buckets)
        .build();
    c.put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(conf)
        .send()
        .await
        .ctx(S3, "PutPublicAccessBlock")?;
    Ok(())
}

/// Sets object ownership to BucketOwnerEnforced (ACLs disabled).
pub async fn enforce_bucket_owner(c: &Client, bucket: &str) -> Result<(), AwsError> {
    let op = "PutBucketOwnershipControls";
    let rule = OwnershipControlsRule::builder()
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .build()
        .map_err(|e| build_error(S3, op, e))?;
    let conf = OwnershipControls::builder().rules(rule).build().map_err(|e| build_error(S3, op, e))?;
    c.put_bucket_ownership_controls().bucket(bucket).ownership_controls(conf).send().await.ctx(S3, op)?;
    Ok(())
}

/// Replaces the lifecycle configuration with exactly `rules`.
pub async fn put_lifecycle(c: &Client, bucket: &str, rules: &[Lifecycle]) -> Result<(), AwsError> {
    let op = "PutBucketLifecycleConfiguration";
    let sdk_rules = rules
        .iter()
        .map(|r| {
            let mut b = LifecycleRule::builder()
                .id(&r.id)
                .status(if r.enabled { ExpirationStatus::Enabled } else { ExpirationStatus::Disabled })
                .filter(LifecycleRuleFilter::builder().prefix(&r.prefix).build());
            if let Some(days) = r.noncurrent_days {
                b = b.noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder().noncurrent_days(days).build(),
                );
            }
            if let Some(days) = r.abort_multipart_days {
                b = b.abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder().days_after_initiation(days).build(),
                );
            }
            b.build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| build_error(S3, op, e))?;
    let conf = BucketLifecycleConfiguration::builder()
        .set_rules(Some(sdk_rules))
        .build()
        .map_err(|e| build_error(S3, op, e))?;
    c.put_bucket_lifecycle_configuration().bucket(bucket).lifecycle_configuration(conf).send().await.ctx(S3, op)?;
    Ok(())
}

/// Replaces the bucket policy.
pub async fn put_policy(c: &Client, bucket: &str, policy_json: &str) -> Result<(), AwsError> {
    c.put_bucket_policy().bucket(bucket).policy(policy_json).send().await.ctx(S3, "PutBucketPolicy")?;
    Ok(())
}

/// Turns server access logging on (to `logging`) or off (`None`).
pub async fn put_logging(c: &Client, bucket: &str, logging: Option<&Logging>) -> Result<(), AwsError> {
    let op = "PutBucketLogging";
    let status = match logging {
        Some(l) => BucketLoggingStatus::builder().logging_enabled(
            LoggingEnabled::builder()
                .target_bucket(&l.target_bucket)
                .target_prefix(&l.target_prefix)
                .build()
                .map_err(|e| build_error(S3, op, e))?,
        ),
        None => BucketLoggingStatus::builder(),
    }
    .build();
    c.put_bucket_logging().bucket(bucket).bucket_logging_status(status).send().await.ctx(S3, op)?;
    Ok(())
}

/// Counts object versions and delete markers (stops counting at `limit`).
pub async fn count_versions(c: &Client, bucket: &str, limit: u64) -> Result<u64, AwsError> {
    let mut count = 0u64;
    let mut key_marker: Option<String> = None;
    let mut version_marker: Option<String> = None;
    loop {
        let out = c
            .list_object_versions()
            .bucket(bucket)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .ctx(S3, "ListObjectVersions")?;
        count += (out.versions().len() + out.delete_markers().len()) as u64;
        if !out.is_truncated().unwrap_or(false) || count >= limit {
            return Ok(count);
        }
        key_marker = out.next_key_marker().map(str::to_string);
        version_marker = out.next_version_id_marker().map(str::to_string);
    }
}

/// One version or delete marker of one object key, as ListObjectVersions lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyVersion {
    /// S3's version id (`null` for an object written before versioning).
    pub id: String,
    /// Last-modified time, RFC 3339 (UTC).
    pub last_modified: String,
    /// Size in bytes (`None` for a delete marker).
    pub size: Option<i64>,
    /// Whether it is the current version.
    pub latest: bool,
    /// A delete marker rather than an object.
    pub delete_marker: bool,
}

/// The most versions one listing returns: the listing is one page, never a walk of the
/// whole history.
pub const MAX_KEY_VERSIONS: i32 = 1000;

/// The versions and delete markers of exactly `key` (not of the other keys it prefixes),
/// newest first, from one page of ListObjectVersions; and whether S3 had more.
pub async fn list_key_versions(c: &Client, bucket: &str, key: &str) -> Result<(Vec<KeyVersion>, bool), AwsError> {
    let out = c
        .list_object_versions()
        .bucket(bucket)
        .prefix(key)
        .max_keys(MAX_KEY_VERSIONS)
        .send()
        .await
        .ctx(S3, "ListObjectVersions")?;
    let time = |d: Option<&aws_smithy_types::DateTime>| {
        d.and_then(|d| d.fmt(aws_smithy_types::date_time::Format::DateTime).ok()).unwrap_or_default()
    };
    let version = |id: Option<&str>, at, size, latest: Option<bool>, delete_marker| KeyVersion {
        id: id.unwrap_or("null").to_owned(),
        last_modified: time(at),
        size,
        latest: latest.unwrap_or(false),
        delete_marker,
    };
    let mut all: Vec<KeyVersion> = out
        .versions()
        .iter()
        .filter(|v| v.key() == Some(key))
        .map(|v| version(v.version_id(), v.last_modified(), v.size(), v.is_latest(), false))
        .collect();
    all.extend(
        out.delete_markers()
            .iter()
            .filter(|m| m.key() == Some(key))
            .map(|m| version(m.version_id(), m.last_modified(), None, m.is_latest(), true)),
    );
    // Newest first (RFC 3339 in UTC sorts as text); the current one first among equals.
    all.sort_by(|a, b| b.last_modified.cmp(&a.last_modified).then(b.latest.cmp(&a.latest)));
    Ok((all, out.is_truncated().unwrap_or(false)))
}

/// Deletes the (empty) bucket.
pub async fn delete_bucket(c: &Client, bucket: &str) -> Result<(), AwsError> {
    optional(c.delete_bucket().bucket(bucket).send().await.ctx(S3, "DeleteBucket")).map(|_| ())
}

/// The most of a lock file that is read: Terraform's lock info is a few hundred bytes.
pub const LOCK_FILE_MAX_BYTES: usize = 64 * 1024;

/// A lock file (`<key>.tflock`) as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockObject {
    /// Its content, at most [`LOCK_FILE_MAX_BYTES`].
    pub body: Vec<u8>,
    /// Whether it was longer than that (and cut).
    pub truncated: bool,
    /// Its ETag, for the conditional delete.
    pub etag: String,
}

/// GetObject of a lock file, reading at most [`LOCK_FILE_MAX_BYTES`]; `None` when there is
/// none (no lock held). Only ever called for `<key>.tflock`, never for state.
pub async fn get_lock_object(c: &Client, bucket: &str, key: &str) -> Result<Option<LockObject>, AwsError> {
    let op = "GetObject";
    let out = match c.get_object().bucket(bucket).key(key).send().await.ctx(S3, op) {
        Ok(out) => out,
        Err(e) if e.code == "NoSuchKey" || e.kind == AwsErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let etag = out.e_tag().unwrap_or_default().to_string();
    let mut stream = out.body;
    let mut body = Vec::new();
    let mut truncated = false;
    loop {
        let chunk = stream.try_next().await.map_err(|e| AwsError {
            service: S3,
            operation: op,
            resource: None,
            code: "TransportError".into(),
            message: e.to_string(),
            kind: AwsErrorKind::Transient,
        })?;
        let Some(chunk) = chunk else { break };
        let room = LOCK_FILE_MAX_BYTES - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(LockObject { body, truncated, etag }))
}

/// DeleteObject of a lock file with `If-Match: etag`: deleted only if it is still exactly
/// the object read (never blind). A changed or vanished lock file deletes nothing.
pub async fn delete_lock_object_if_match(
    c: &Client,
    bucket: &str,
    key: &str,
    etag: &str,
) -> Result<ConditionalDelete, AwsError> {
    match c.delete_object().bucket(bucket).key(key).if_match(etag).send().await.ctx(S3, "DeleteObject") {
        Ok(_) => Ok(ConditionalDelete::Deleted),
        Err(e) if e.code == "PreconditionFailed" || e.code == "NoSuchKey" || e.kind == AwsErrorKind::NotFound => {
            Ok(ConditionalDelete::Changed)
        }
        Err(e) => Err(e),
    }
}
