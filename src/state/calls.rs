//! The AWS calls of the `state` commands, made with the caller's own credentials. They are not
//! the operator's calls (its policy grants no object access at all): the caller's policy is
//! documented in `docs/state-restore.md`. Thin wrappers, errors named by resource.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::types::ServerSideEncryption;

use crate::aws::AwsError;
use crate::aws::error::{Context, optional};

use super::decide::Version;
use super::target::{Sse, StateTarget};

const S3: &str = "s3";
const DYNAMODB: &str = "dynamodb";

/// The versions (and delete markers) of exactly the state key, newest first
/// (one page of ListObjectVersions: bounded, never a walk of the whole history) and whether S3
/// had more. Serial and lineage are not read here (`head` is left `Ok(default)`).
pub async fn list_versions(s3: &aws_sdk_s3::Client, t: &StateTarget) -> Result<(Vec<Version>, bool), AwsError> {
    let resource = format!("s3://{}/{}", t.bucket, t.key);
    let (listed, truncated) =
        crate::aws::s3::list_key_versions(s3, &t.bucket, &t.key).await.map_err(|e| e.on(&resource))?;
    let all = listed
        .into_iter()
        .map(|v| Version {
            id: v.id,
            last_modified: v.last_modified,
            size: v.size,
            latest: v.latest,
            delete_marker: v.delete_marker,
            head: Ok(Default::default()),
        })
        .collect();
    Ok((all, truncated))
}

/// The content of one version (GetObject with versionId; S3 decrypts SSE-KMS for a caller
/// allowed kms:Decrypt on the key).
pub async fn read_version(s3: &aws_sdk_s3::Client, t: &StateTarget, version: &str) -> Result<Vec<u8>, AwsError> {
    let resource = format!("s3://{}/{}?versionId={version}", t.bucket, t.key);
    let out = s3
        .get_object()
        .bucket(&t.bucket)
        .key(&t.key)
        .version_id(version)
        .send()
        .await
        .ctx(S3, "GetObject")
        .map_err(|e| e.on(&resource))?;
    let bytes = out.body.collect().await.map_err(|e| AwsError {
        service: S3,
        operation: "GetObject",
        resource: Some(resource.clone()),
        code: "BodyReadError".into(),
        message: e.to_string(),
        kind: crate::aws::AwsErrorKind::Transient,
    })?;
    Ok(bytes.into_bytes().to_vec())
}

/// Who holds the state's lock, if anyone: the DynamoDB item `<bucket>/<key>` and/or the
/// `<key>.tflock` object, as the lock mode uses them (Terraform's lock info, as it wrote it).
pub async fn lock_holder(
    s3: &aws_sdk_s3::Client,
    ddb: &aws_sdk_dynamodb::Client,
    t: &StateTarget,
) -> Result<Option<String>, AwsError> {
    let mut held = Vec::new();
    if let Some(table) = &t.lock_table {
        let item = ddb
            .get_item()
            .table_name(table)
            .key("LockID", AttributeValue::S(t.lock_id()))
            .consistent_read(true)
            .send()
            .await
            .ctx(DYNAMODB, "GetItem")
            .map_err(|e| e.on(format!("{table} item {}", t.lock_id())))?;
        if let Some(item) = item.item() {
            let info = item.get("Info").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            held.push(format!("DynamoDB item {} in {table}: {}", t.lock_id(), lock_summary(&info)));
        }
    }
    if t.lockfile {
        let key = t.lockfile_key();
        let head = s3.head_object().bucket(&t.bucket).key(&key).send().await.ctx(S3, "HeadObject");
        if optional(head.map_err(|e| e.on(format!("s3://{}/{key}", t.bucket))))?.is_some() {
            held.push(format!("lock file s3://{}/{key}", t.bucket));
        }
    }
    Ok((!held.is_empty()).then(|| held.join("; ")))
}

/// The lock a restore took: what it wrote, so that releasing removes exactly that.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeldLock {
    /// The lock file `<key>.tflock` was written; its ETag.
    pub file_etag: Option<String>,
    /// The DynamoDB lock item `<bucket>/<key>` was written.
    pub item: bool,
}

/// The answer to [`take_lock`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TakeLock {
    /// Every lock the mode uses is now ours.
    Taken(HeldLock),
    /// Someone holds one of them (who, as [`lock_holder`] says it; `None`: released again
    /// by the time it was read); nothing of ours is left.
    Busy(Option<String>),
}

/// Takes the state's lock exactly as Terraform does, with `info` (Terraform's lock info JSON)
/// as the lock file's body and the item's `Info`: the lock file by `PutObject` with
/// `If-None-Match: *` (encrypted as the backend encrypts), then the DynamoDB item by `PutItem`
/// with `attribute_not_exists(LockID)`. Either write is refused while someone else holds it, so
/// a runner starting during the restore waits, and a restore never copies under a running apply.
///
/// # Errors
///
/// An [`AwsError`] other than "already held" (what was taken is released first).
pub async fn take_lock(
    s3: &aws_sdk_s3::Client,
    ddb: &aws_sdk_dynamodb::Client,
    t: &StateTarget,
    info: &str,
) -> Result<TakeLock, AwsError> {
    let mut held = HeldLock::default();
    if t.lockfile {
        let key = t.lockfile_key();
        let put = s3
            .put_object()
            .bucket(&t.bucket)
            .key(&key)
            .content_type("application/json")
            .if_none_match("*")
            .body(aws_sdk_s3::primitives::ByteStream::from(info.as_bytes().to_vec()));
        let put = match &t.sse {
            Sse::Kms(key_id) => put.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(key_id),
            Sse::Aes256 => put.server_side_encryption(ServerSideEncryption::Aes256),
        };
        match put.send().await.ctx(S3, "PutObject") {
            Ok(out) => held.file_etag = Some(out.e_tag().unwrap_or_default().to_owned()),
            // 412: the lock file exists; 409: another conditional write of it is in flight.
            Err(e) if e.code == "PreconditionFailed" || e.code == "ConditionalRequestConflict" => {
                return busy(s3, ddb, t).await;
            }
            Err(e) => return Err(e.on(format!("s3://{}/{key}", t.bucket))),
        }
    }
    if let Some(table) = &t.lock_table {
        let put = ddb
            .put_item()
            .table_name(table)
            .item("LockID", AttributeValue::S(t.lock_id()))
            .item("Info", AttributeValue::S(info.to_owned()))
            .condition_expression("attribute_not_exists(LockID)")
            .send()
            .await
            .ctx(DYNAMODB, "PutItem");
        match put {
            Ok(_) => held.item = true,
            Err(e) => {
                // Not left half-taken: the lock file goes again first. If that fails too,
                // both are said, and which lock file stays.
                let e = e.on(format!("{table} item {}", t.lock_id()));
                if let Err(left) = release_lock(s3, ddb, t, &held, info).await {
                    return Err(AwsError {
                        message: format!(
                            "{}; and the lock file s3://{}/{} this restore had just written could not be removed \
                             ({left}): delete it, or break the lock by its ID",
                            e.message,
                            t.bucket,
                            t.lockfile_key()
                        ),
                        ..e
                    });
                }
                if e.code == "ConditionalCheckFailedException" {
                    return busy(s3, ddb, t).await;
                }
                return Err(e);
            }
        }
    }
    Ok(TakeLock::Taken(held))
}

/// Who holds the lock that refused us (read again: it may be gone by now).
async fn busy(s3: &aws_sdk_s3::Client, ddb: &aws_sdk_dynamodb::Client, t: &StateTarget) -> Result<TakeLock, AwsError> {
    Ok(TakeLock::Busy(lock_holder(s3, ddb, t).await?))
}

/// Releases what [`take_lock`] took, each only while it is still ours: the DynamoDB item by a
/// `DeleteItem` conditional on its `Info` being `info`, the lock file by a `DeleteObject` with
/// `If-Match` its ETag; both are tried whatever the first answered. Returns what was no longer
/// ours and so was left alone.
///
/// # Errors
///
/// An [`AwsError`] when a delete fails (that part of the lock stays: break it by its ID); with
/// both failing, the first, its message naming the second too.
pub async fn release_lock(
    s3: &aws_sdk_s3::Client,
    ddb: &aws_sdk_dynamodb::Client,
    t: &StateTarget,
    held: &HeldLock,
    info: &str,
) -> Result<Vec<String>, AwsError> {
    let (mut not_ours, mut failed) = (Vec::new(), Vec::new());
    if held.item
        && let Some(table) = &t.lock_table
    {
        let deleted = ddb
            .delete_item()
            .table_name(table)
            .key("LockID", AttributeValue::S(t.lock_id()))
            .condition_expression("Info = :info")
            .expression_attribute_values(":info", AttributeValue::S(info.to_owned()))
            .send()
            .await
            .ctx(DYNAMODB, "DeleteItem");
        match deleted {
            Ok(_) => {}
            Err(e) if e.code == "ConditionalCheckFailedException" => {
                not_ours.push(format!("DynamoDB item {} in {table}", t.lock_id()));
            }
            Err(e) => failed.push(e.on(format!("{table} item {}", t.lock_id()))),
        }
    }
    if let Some(etag) = &held.file_etag {
        let key = t.lockfile_key();
        match s3.delete_object().bucket(&t.bucket).key(&key).if_match(etag).send().await.ctx(S3, "DeleteObject") {
            Ok(_) => {}
            Err(e) if e.code == "PreconditionFailed" || e.code == "NoSuchKey" => {
                not_ours.push(format!("lock file s3://{}/{key}", t.bucket));
            }
            Err(e) => failed.push(e.on(format!("s3://{}/{key}", t.bucket))),
        }
    }
    let mut failed = failed.into_iter();
    match (failed.next(), failed.next()) {
        (None, _) => Ok(not_ours),
        (Some(first), None) => Err(first),
        (Some(first), Some(second)) => Err(AwsError { message: format!("{}; and {second}", first.message), ..first }),
    }
}

/// Terraform's lock info (`{"ID", "Operation", "Who", "Created", ...}`) in one line.
fn lock_summary(info: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(info) else { return "lock info unreadable".into() };
    let f = |k: &str| v.get(k).and_then(serde_json::Value::as_str).unwrap_or("?").to_owned();
    format!("ID {}, {} by {} since {}", f("ID"), f("Operation"), f("Who"), f("Created"))
}

/// Makes `version` current by a server-side copy onto the state key, encrypted as the backend
/// encrypts (never deleting anything); returns the new current version id.
pub async fn copy_version(s3: &aws_sdk_s3::Client, t: &StateTarget, version: &str) -> Result<String, AwsError> {
    let resource = format!("s3://{}/{}", t.bucket, t.key);
    // CopySource is `bucket/key?versionId=ID`, the key URL-encoded.
    let source = format!(
        "{}/{}?versionId={}",
        t.bucket,
        percent_encoding::utf8_percent_encode(&t.key, COPY_SOURCE),
        percent_encoding::utf8_percent_encode(version, COPY_SOURCE)
    );
    let copy = s3.copy_object().bucket(&t.bucket).key(&t.key).copy_source(source);
    let copy = match &t.sse {
        // With the Bucket Key, as the bucket's default encryption writes every object: the
        // replication role's key use is allowed for the bucket's encryption context only.
        Sse::Kms(key) => {
            copy.server_side_encryption(ServerSideEncryption::AwsKms).ssekms_key_id(key).bucket_key_enabled(true)
        }
        Sse::Aes256 => copy.server_side_encryption(ServerSideEncryption::Aes256),
    };
    let out = copy.send().await.ctx(S3, "CopyObject").map_err(|e| e.on(&resource))?;
    Ok(out.version_id().unwrap_or("null").to_owned())
}

/// Characters kept as they are in a CopySource path (`/` separates key segments).
const COPY_SOURCE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Writes Terraform's digest item `<bucket>/<key>-md5` (`Digest` = hex MD5 of the state), as
/// Terraform does after each write with a DynamoDB lock table: without it Terraform refuses the
/// restored state ("checksum ... does not match").
pub async fn put_digest(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    t: &StateTarget,
    digest: &str,
) -> Result<(), AwsError> {
    ddb.put_item()
        .table_name(table)
        .item("LockID", AttributeValue::S(t.digest_id()))
        .item("Digest", AttributeValue::S(digest.to_owned()))
        .send()
        .await
        .ctx(DYNAMODB, "PutItem")
        .map_err(|e| e.on(format!("{table} item {}", t.digest_id())))?;
    Ok(())
}
