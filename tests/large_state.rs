//! Large states on a backend the operator built, on the TLS emulator. Terraform uploads a state
//! above 5 MiB with the AWS SDK's multipart uploader: CreateMultipartUpload carries the
//! encryption headers (`x-amz-server-side-encryption: aws:kms` and the key id), UploadPart and
//! CompleteMultipartUpload carry none, and S3 authorises all three as `s3:PutObject`. The
//! bucket policy judges only requests that STATE an encryption, so the header-less parts pass
//! and default encryption encrypts the object with the backend's key; anything stating weaker
//! or foreign encryption, and anything over plain HTTP, is refused with S3's `403 AccessDenied`.
//!
//! The requests are signed with the ground's base credentials: the bucket policy applies to
//! every principal (`"Principal": "*"`), and the role's own credentials are exercised by
//! tests/terraform_protocol.rs. The emulator is moto through scripts/moto/launcher.py, which
//! evaluates the bucket policy as S3 does, with each request's own headers as its condition
//! context.

mod common;

use std::fmt::Debug;

use aws_sdk_s3::Client as S3;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadError;
use aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadError;
use aws_sdk_s3::operation::put_object::PutObjectError;
use aws_sdk_s3::operation::upload_part::UploadPartError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use common::Ground;
use common::operator::{Operator, ReadyBackend, inspector};
use tfstate_operator::aws::{AwsClientFactory, AwsSettings};

/// An SDK call's result.
type Sdk<T, E> = Result<T, SdkError<E, HttpResponse>>;

const MIB: usize = 1024 * 1024;
/// The part size of Terraform's uploader (the SDK manager's default, and S3's minimum).
const PART_SIZE: usize = 5 * MIB;
/// A state that takes three parts (5 + 5 + 2 MiB).
const LARGE_STATE_SIZE: usize = 12 * MIB;
/// An SSE-C key (32 bytes, base64) and its MD5 (base64), as an SDK sends them.
const SSE_C_KEY: &str = "dGZzdGF0ZS10ZXN0LXNzZS1jLWtleS0zMi1ieXRlcyE=";
const SSE_C_KEY_MD5: &str = "yFdo8C2m9zi5zKPpGAilTw==";

/// A Ready backend and clients for its bucket.
struct Fixture {
    /// Over TLS, the endpoint the published configuration names.
    s3: S3,
    /// The emulator's plain-HTTP port (same state).
    s3_plain: S3,
    bucket: String,
    key: String,
    /// The backend's key (`None` with AES256).
    kms_key_arn: Option<String>,
    ground: Ground,
    _operator: Operator,
}

/// Creates a Lockfile backend with `extra` spec lines (2-space indented YAML), waits for
/// Ready and reads the published flat keys.
async fn ready_backend(prefix: &str, extra: &str) -> Fixture {
    let ReadyBackend { ground, operator, bucket, status, data, .. } =
        common::operator::ready_backend(prefix, &format!("  locking: {{mode: Lockfile}}\n{extra}")).await;
    assert_eq!(data["bucket"], bucket);
    assert_eq!((data["encrypt"].as_str(), data["use_lockfile"].as_str()), ("true", "true"));
    assert_eq!(data.get("kms_key_id"), status.kms_key_arn.as_ref());
    let plain = AwsSettings {
        endpoint_url: Some(ground.var("TESTGROUND_AWS_PLAIN_ENDPOINT_URL").to_string()),
        ..ground.aws_settings()
    };
    let s3_plain = AwsClientFactory::new(plain).await.expect("AWS client factory").clients(data["region"].as_str()).s3;
    Fixture {
        s3: inspector(&ground).await.s3,
        s3_plain,
        bucket,
        key: data["key"].clone(),
        kms_key_arn: data.get("kms_key_id").cloned(),
        ground,
        _operator: operator,
    }
}

/// The encryption a request states.
#[derive(Clone, Debug)]
enum Sse {
    /// No SSE header at all: what UploadPart and CompleteMultipartUpload send.
    None,
    Aes256,
    Kms(Option<String>),
    /// A customer-provided key.
    SseC,
}

impl Sse {
    /// What Terraform states with `encrypt = true` and the published `kms_key_id`, if any.
    fn terraform(fx: &Fixture) -> Sse {
        fx.kms_key_arn.clone().map_or(Sse::Aes256, |k| Sse::Kms(Some(k)))
    }
}

/// Sets the SSE-C headers on a request builder (`$b`) when `$on`.
macro_rules! with_sse_c {
    ($b:expr, $on:expr) => {
        if $on {
            $b.sse_customer_algorithm("AES256").sse_customer_key(SSE_C_KEY).sse_customer_key_md5(SSE_C_KEY_MD5)
        } else {
            $b
        }
    };
}

/// Sets the headers of `sse` on a PutObject or CreateMultipartUpload builder (`$b`).
macro_rules! with_sse {
    ($b:expr, $sse:expr) => {
        match $sse {
            Sse::None => $b,
            Sse::Aes256 => $b.server_side_encryption(ServerSideEncryption::Aes256),
            Sse::Kms(key_id) => {
                $b.server_side_encryption(ServerSideEncryption::AwsKms).set_ssekms_key_id(key_id.clone())
            }
            Sse::SseC => with_sse_c!($b, true),
        }
    };
}

/// UploadPart and CompleteMultipartUpload take no SSE-S3/SSE-KMS headers; only SSE-C is
/// restated on them (S3 requires it for an SSE-C upload).
fn part_sse(sse: &Sse) -> Sse {
    if matches!(sse, Sse::SseC) { Sse::SseC } else { Sse::None }
}

/// CreateMultipartUpload as Terraform's uploader sends it (content type, SHA-256 checksums).
async fn create_upload(s3: &S3, fx: &Fixture, key: &str, sse: &Sse) -> Sdk<String, CreateMultipartUploadError> {
    let req = s3
        .create_multipart_upload()
        .bucket(&fx.bucket)
        .key(key)
        .content_type("application/json")
        .checksum_algorithm(ChecksumAlgorithm::Sha256);
    let out = with_sse!(req, sse).send().await?;
    Ok(out.upload_id().expect("CreateMultipartUpload returns an upload id").to_string())
}

/// One UploadPart, with the SHA-256 checksum the SDK computes.
async fn upload_part(
    s3: &S3,
    fx: &Fixture,
    key: &str,
    upload_id: &str,
    number: i32,
    bytes: &[u8],
    sse: &Sse,
) -> Sdk<CompletedPart, UploadPartError> {
    let req = s3
        .upload_part()
        .bucket(&fx.bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(bytes.to_vec()));
    let out = with_sse_c!(req, matches!(sse, Sse::SseC)).send().await?;
    Ok(CompletedPart::builder()
        .part_number(number)
        .set_e_tag(out.e_tag().map(str::to_string))
        .set_checksum_sha256(out.checksum_sha256().map(str::to_string))
        .build())
}

/// CompleteMultipartUpload of `parts`.
async fn complete(
    s3: &S3,
    fx: &Fixture,
    key: &str,
    upload_id: &str,
    parts: Vec<CompletedPart>,
    sse: &Sse,
) -> Sdk<(), CompleteMultipartUploadError> {
    let done = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
    let req = s3.complete_multipart_upload().bucket(&fx.bucket).key(key).upload_id(upload_id).multipart_upload(done);
    with_sse_c!(req, matches!(sse, Sse::SseC)).send().await.map(drop)
}

/// The whole upload of `body` at `key` in 5 MiB parts, stating `sse` on CreateMultipartUpload
/// (and, for SSE-C only, on every part and the completion, as the SDK requires).
async fn multipart_upload(fx: &Fixture, key: &str, body: &[u8], sse: &Sse) -> usize {
    let upload_id = create_upload(&fx.s3, fx, key, sse).await.expect("CreateMultipartUpload");
    let mut parts = Vec::new();
    for (i, chunk) in body.chunks(PART_SIZE).enumerate() {
        let number = i32::try_from(i + 1).expect("part number");
        let part = upload_part(&fx.s3, fx, key, &upload_id, number, chunk, &part_sse(sse)).await;
        parts.push(part.unwrap_or_else(|e| panic!("UploadPart {number} without SSE headers: {e:?}")));
    }
    let count = parts.len();
    complete(&fx.s3, fx, key, &upload_id, parts, &part_sse(sse)).await.expect("CompleteMultipartUpload");
    count
}

/// PutObject as Terraform's state upload (with `lock`, its lock file write: `If-None-Match: *`).
async fn put(s3: &S3, fx: &Fixture, key: &str, body: &[u8], sse: &Sse, lock: bool) -> Sdk<(), PutObjectError> {
    let mut req = s3
        .put_object()
        .bucket(&fx.bucket)
        .key(key)
        .content_type("application/json")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(body.to_vec()));
    req = with_sse!(req, sse);
    if lock {
        req = req.if_none_match("*");
    }
    req.send().await.map(drop)
}

/// A JSON state of exactly `size` bytes whose content depends on the position, so that parts
/// assembled in the wrong order would not compare equal.
fn large_state(size: usize) -> Vec<u8> {
    let head = br#"{"version":4,"terraform_version":"1.10.5","serial":7,"lineage":"3f1c","outputs":{"blob":{"type":"string","value":""#;
    let tail = br#""}},"resources":[]}"#;
    let pad = size - head.len() - tail.len();
    let mut state = head.to_vec();
    state.extend((0..pad).map(|i| b'a' + u8::try_from((i / 4096) % 26).expect("below 26")));
    state.extend_from_slice(tail);
    state
}

/// Asserts that `what` was refused by the bucket policy: S3's `403 AccessDenied`.
#[track_caller]
fn assert_denied<T: Debug, E: ProvideErrorMetadata + Debug>(what: &str, r: Sdk<T, E>) {
    let err = r.expect_err(&format!("{what} must be refused"));
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or_default();
    let code = err.as_service_error().and_then(|e| e.code()).unwrap_or_default().to_string();
    assert_eq!((status, code.as_str()), (403, "AccessDenied"), "{what}: {err:?}");
}

/// Reads `key` back (HeadObject, then GetObject): body, size and encryption with the backend's.
async fn assert_stored(fx: &Fixture, key: &str, body: &[u8]) {
    let head = fx.s3.head_object().bucket(&fx.bucket).key(key).send().await.expect("HeadObject");
    let expected = match &fx.kms_key_arn {
        Some(arn) => (Some(ServerSideEncryption::AwsKms), Some(arn.clone())),
        None => (Some(ServerSideEncryption::Aes256), None),
    };
    let found = (head.server_side_encryption().cloned(), head.ssekms_key_id().map(str::to_string));
    assert_eq!(found, expected, "HeadObject {key}: encryption");
    assert_eq!(head.content_length(), Some(i64::try_from(body.len()).expect("size")), "HeadObject {key}: size");
    let got = fx.s3.get_object().bucket(&fx.bucket).key(key).send().await.expect("GetObject");
    let bytes = got.body.collect().await.expect("read body").into_bytes();
    assert!(bytes.as_ref() == body, "{key}: the body read back differs from the one uploaded");
}

/// No object at `key` (a refused upload left nothing behind).
async fn assert_absent(fx: &Fixture, key: &str) {
    let head = fx.s3.head_object().bucket(&fx.bucket).key(key).send().await;
    let err = head.expect_err(&format!("{key} must not exist"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404), "{key}: {err:?}");
}

/// KMS: a 12 MiB state uploaded in parts exactly as Terraform's uploader sends it passes every
/// request and is stored SSE-KMS with the backend's key; so are Terraform's single PutObject
/// and its `.tflock` write (`If-None-Match: *`); a second lock writer gets 412.
#[tokio::test]
async fn large_state_in_parts_is_accepted_and_encrypted_with_the_backend_key() {
    let fx = ready_backend("large-kms", "").await;
    assert!(fx.kms_key_arn.is_some(), "a KMS backend publishes kms_key_id");
    let state = large_state(LARGE_STATE_SIZE);
    let parts = multipart_upload(&fx, &fx.key, &state, &Sse::terraform(&fx)).await;
    assert_eq!(parts, 3, "12 MiB in 5 MiB parts");
    assert_stored(&fx, &fx.key, &state).await;

    let small = large_state(64 * 1024);
    put(&fx.s3, &fx, &fx.key, &small, &Sse::terraform(&fx), false).await.expect("Terraform's single PutObject");
    assert_stored(&fx, &fx.key, &small).await;
    let lock_key = format!("{}.tflock", fx.key);
    let info = br#"{"ID":"0b1d","Operation":"OperationTypeApply","Who":"runner@ci"}"#;
    put(&fx.s3, &fx, &lock_key, info, &Sse::terraform(&fx), true).await.expect("lock file PutObject If-None-Match: *");
    let second = put(&fx.s3, &fx, &lock_key, info, &Sse::terraform(&fx), true).await.expect_err("a second lock");
    assert_eq!(second.raw_response().map(|r| r.status().as_u16()), Some(412), "{second:?}");
    assert_stored(&fx, &lock_key, info).await;
}

/// KMS: plain HTTP, AES256, another key, `aws:kms` without a key id (S3 would use `aws/s3`) and
/// SSE-C are refused with 403 AccessDenied wherever they are stated (CreateMultipartUpload,
/// UploadPart, CompleteMultipartUpload, PutObject), and nothing is stored by any of them.
#[tokio::test]
async fn foreign_encryption_and_plain_http_are_refused_in_every_request() {
    let fx = ready_backend("large-deny", "").await;
    let kms = inspector(&fx.ground).await.kms;
    let other = kms.create_key().description("not the backend's").send().await.expect("CreateKey");
    let other_key = other.key_metadata().and_then(|m| m.arn()).expect("key ARN").to_string();
    let (key, chunk) = (fx.key.clone(), large_state(PART_SIZE));
    let terraform = Sse::terraform(&fx);

    for sse in [Sse::Aes256, Sse::Kms(None), Sse::Kms(Some(other_key)), Sse::SseC] {
        assert_denied(&format!("CreateMultipartUpload with {sse:?}"), create_upload(&fx.s3, &fx, &key, &sse).await);
        assert_denied(&format!("PutObject with {sse:?}"), put(&fx.s3, &fx, &key, &chunk, &sse, false).await);
    }
    let plain_create = create_upload(&fx.s3_plain, &fx, &key, &terraform).await;
    assert_denied("Terraform's CreateMultipartUpload over plain HTTP", plain_create);
    assert_denied(
        "Terraform's PutObject over plain HTTP",
        put(&fx.s3_plain, &fx, &key, &chunk, &terraform, false).await,
    );

    // An upload Terraform started correctly: a part or a completion over plain HTTP, or
    // stating SSE-C, is refused; the same requests over TLS without SSE headers pass.
    let upload_id = create_upload(&fx.s3, &fx, &key, &terraform).await.expect("CreateMultipartUpload");
    let plain_part = upload_part(&fx.s3_plain, &fx, &key, &upload_id, 1, &chunk, &Sse::None).await;
    assert_denied("UploadPart over plain HTTP", plain_part);
    let sse_c_part = upload_part(&fx.s3, &fx, &key, &upload_id, 1, &chunk, &Sse::SseC).await;
    assert_denied("UploadPart stating SSE-C", sse_c_part);
    let first = upload_part(&fx.s3, &fx, &key, &upload_id, 1, &chunk, &Sse::None).await.expect("UploadPart");
    let plain_done = complete(&fx.s3_plain, &fx, &key, &upload_id, vec![first.clone()], &Sse::None).await;
    assert_denied("CompleteMultipartUpload over plain HTTP", plain_done);
    let sse_c_done = complete(&fx.s3, &fx, &key, &upload_id, vec![first.clone()], &Sse::SseC).await;
    assert_denied("CompleteMultipartUpload stating SSE-C", sse_c_done);
    assert_absent(&fx, &key).await;
    complete(&fx.s3, &fx, &key, &upload_id, vec![first], &Sse::None).await.expect("CompleteMultipartUpload over TLS");
    assert_stored(&fx, &key, &chunk).await;
}

/// AES256: the same uploader with `encrypt = true` and no key states AES256 on
/// CreateMultipartUpload; the object is SSE-S3. Stating `aws:kms` or SSE-C is refused.
#[tokio::test]
async fn aes256_backend_takes_large_states_in_parts() {
    let fx = ready_backend("large-aes", "  encryption: {mode: AES256}\n").await;
    assert!(fx.kms_key_arn.is_none(), "an AES256 backend publishes no kms_key_id");
    let state = large_state(LARGE_STATE_SIZE);
    assert_eq!(multipart_upload(&fx, &fx.key, &state, &Sse::terraform(&fx)).await, 3);
    assert_stored(&fx, &fx.key, &state).await;
    let other = format!("{}.other", fx.key);
    for sse in [Sse::Kms(None), Sse::SseC] {
        assert_denied(&format!("CreateMultipartUpload with {sse:?}"), create_upload(&fx.s3, &fx, &other, &sse).await);
    }
    assert_absent(&fx, &other).await;
}
