//! Terraform's S3 backend protocol, played against backends the operator built: every test
//! creates a `TerraformStateBackend`, waits for Ready, reads ONLY the published
//! `backend.tfbackend`, assumes the published role on the emulator's STS (with the ground's base
//! credentials, independent of the operator) and then does what Terraform >= 1.10 does with the
//! role's temporary credentials: HeadObject/GetObject/PutObject of the state with the rendered
//! encryption arguments, the DynamoDB lock (`LockID = "<bucket>/<key>"`, conditional PutItem)
//! and its `-md5` digest item, and the S3 lock file (`<key>.tflock`, `If-None-Match: *`).
//!
//! The emulator (moto through scripts/moto/launcher.py) evaluates the bucket policy as AWS
//! does, over TLS and over its plain-HTTP port on the same state. It does NOT evaluate IAM
//! identity policies: moto only does that once `INITIAL_NO_AUTH_ACTION_COUNT` (env, or POST
//! `/moto-api/reset-auth`, process-wide) is finite, and then every request must be signed by a
//! key of an IAM user or an assumed role, which the ground's `test`/`test` credentials (used by
//! the operator and every other test) are not. The role's inline policy is therefore checked
//! semantically here (`role_policy_allows_only_the_state_objects`), not enforced.

mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::Client as S3;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::put_object::PutObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ServerSideEncryption};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_types::SdkConfig;
use common::Ground;
use common::operator::{Operator, ReadyBackend, inspector};
use hcl::{Expression, ObjectKey};
use tfstate_operator::api::TerraformStateBackendStatus;
use tfstate_operator::policy::{Effect, PolicyDocument, Statement};
use tfstate_operator::reconcile::desired::INLINE_POLICY_NAME;

/// An SDK call's result.
type Sdk<T, E> = Result<T, SdkError<E, HttpResponse>>;

const STATE: &str =
    r#"{"version":4,"terraform_version":"1.10.5","serial":1,"lineage":"3f1c","outputs":{},"resources":[]}"#;

/// What Terraform reads from the published `backend.tfbackend`: strings (object fields as
/// `name.field`, e.g. `assume_role.role_arn`) and booleans.
#[derive(Debug, Default)]
struct Published {
    strings: BTreeMap<String, String>,
    bools: BTreeMap<String, bool>,
}

impl Published {
    fn parse(text: &str) -> Published {
        let body: hcl::Body = hcl::parse(text).unwrap_or_else(|e| panic!("backend.tfbackend is not HCL: {e}\n{text}"));
        assert_eq!(body.blocks().count(), 0, "Terraform refuses blocks in a .tfbackend file:\n{text}");
        let mut p = Published::default();
        for attr in body.attributes() {
            let name = attr.key().to_string();
            match attr.expr() {
                Expression::String(s) => _ = p.strings.insert(name, s.clone()),
                Expression::Bool(b) => _ = p.bools.insert(name, *b),
                Expression::Object(o) => {
                    for (k, v) in o {
                        let key = match k {
                            ObjectKey::Identifier(i) => i.to_string(),
                            ObjectKey::Expression(Expression::String(s)) => s.clone(),
                            other => panic!("{name}: unexpected key {other:?}"),
                        };
                        let Expression::String(v) = v else { panic!("{name}.{key} is not a string: {v:?}") };
                        p.strings.insert(format!("{name}.{key}"), v.clone());
                    }
                }
                other => panic!("{name} = {other:?}: not a value Terraform takes from a .tfbackend here"),
            }
        }
        p
    }
    fn s(&self, name: &str) -> &str {
        self.strings.get(name).unwrap_or_else(|| panic!("backend.tfbackend has no {name}: {self:#?}"))
    }
    fn opt(&self, name: &str) -> Option<&str> {
        self.strings.get(name).map(String::as_str)
    }
    fn flag(&self, name: &str) -> bool {
        self.bools.get(name).copied().unwrap_or(false)
    }
    fn bucket(&self) -> &str {
        self.s("bucket")
    }
    fn key(&self) -> &str {
        self.s("key")
    }
}

/// A Ready backend, its status and what its ConfigMap publishes.
struct Fixture {
    ground: Ground,
    cfg: Published,
    status: TerraformStateBackendStatus,
    _operator: Operator,
}

/// Creates backend `tf` with `extra` spec lines (2-space indented YAML), waits for Ready,
/// reads `tf-backend`'s `backend.tfbackend`.
async fn ready_backend(prefix: &str, extra: &str) -> Fixture {
    let ReadyBackend { ground, operator, bucket, status, data, .. } =
        common::operator::ready_backend(prefix, extra).await;
    let cfg = Published::parse(&data["backend.tfbackend"]);
    assert_eq!(cfg.bucket(), bucket);
    assert!(cfg.flag("encrypt") && cfg.flag("use_path_style"), "encrypt and use_path_style: {cfg:#?}");
    assert_eq!(cfg.opt("assume_role.role_arn"), status.role_arn.as_deref());
    assert_eq!(cfg.opt("kms_key_id"), status.kms_key_arn.as_deref());
    for service in ["s3", "dynamodb", "sts"] {
        assert_eq!(cfg.s(&format!("endpoints.{service}")), ground.var("AWS_ENDPOINT_URL"), "endpoints.{service}");
    }
    Fixture { ground, cfg, status, _operator: operator }
}

/// Terraform's clients, signed with the role's temporary credentials.
struct Runner {
    s3: S3,
    /// The same role, through the emulator's plain-HTTP port (same state).
    s3_plain: S3,
    ddb: aws_sdk_dynamodb::Client,
}

/// SDK settings: `creds`, `region`, an HTTP(S) client trusting exactly the ground's CA (as
/// src/aws/factory.rs builds it; it speaks plain HTTP too).
fn sdk_config(ground: &Ground, region: &str, creds: Credentials) -> SdkConfig {
    let pem = std::fs::read(ground.var("AWS_CA_BUNDLE")).expect("read the ground's CA");
    let trust = TrustStore::empty().with_native_roots(false).with_pem_certificate(pem);
    let tls = TlsContext::builder().with_trust_store(trust).build().expect("TLS context");
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .tls_context(tls)
        .build_https();
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(region.to_string()))
        .credentials_provider(SharedCredentialsProvider::new(creds))
        .build()
}

impl Runner {
    /// `assume_role` as Terraform does it: STS AssumeRole on `endpoints.sts`, base credentials.
    async fn assume(fx: &Fixture) -> Runner {
        let (cfg, region) = (&fx.cfg, fx.cfg.s("region"));
        let base = sdk_config(&fx.ground, region, Credentials::new("test", "test", None, None, "test-ground"));
        let sts = aws_sdk_sts::config::Builder::from(&base).endpoint_url(cfg.s("endpoints.sts")).build();
        let role_arn = cfg.s("assume_role.role_arn");
        let out = aws_sdk_sts::Client::from_conf(sts).assume_role().role_arn(role_arn).role_session_name("terraform");
        let out = out.send().await.expect("AssumeRole on the published role");
        let role_name = role_arn.rsplit('/').next().unwrap_or_default();
        let who = out.assumed_role_user().map(|u| u.arn()).unwrap_or_default();
        assert!(who.contains(&format!("assumed-role/{role_name}/terraform")), "assumed {who}");
        let c = out.credentials().expect("AssumeRole returns credentials");
        let token = Some(c.session_token().to_string());
        let creds = Credentials::new(c.access_key_id(), c.secret_access_key(), token, None, "assumed-role");
        let role = sdk_config(&fx.ground, region, creds);
        let s3 = |endpoint: &str| {
            let b = aws_sdk_s3::config::Builder::from(&role).endpoint_url(endpoint);
            S3::from_conf(b.force_path_style(cfg.flag("use_path_style")).build())
        };
        let ddb = aws_sdk_dynamodb::config::Builder::from(&role).endpoint_url(cfg.s("endpoints.dynamodb")).build();
        Runner {
            s3: s3(cfg.s("endpoints.s3")),
            s3_plain: s3(fx.ground.var("TESTGROUND_AWS_PLAIN_ENDPOINT_URL")),
            ddb: aws_sdk_dynamodb::Client::from_conf(ddb),
        }
    }
}

/// Server-side encryption headers of one PutObject.
#[derive(Clone, Debug)]
enum Sse {
    None,
    Aes256,
    Kms(Option<String>),
}

impl Sse {
    /// What Terraform sends with `encrypt = true` and the published `kms_key_id`, if any.
    fn terraform(cfg: &Published) -> Sse {
        cfg.opt("kms_key_id").map_or(Sse::Aes256, |k| Sse::Kms(Some(k.to_string())))
    }
}

/// PutObject as Terraform's state upload (with `lock`, its lock file write: `If-None-Match: *`).
async fn put(s3: &S3, cfg: &Published, key: &str, body: &str, sse: &Sse, lock: bool) -> Sdk<(), PutObjectError> {
    let mut req = s3
        .put_object()
        .bucket(cfg.bucket())
        .key(key)
        .content_type("application/json")
        .checksum_algorithm(ChecksumAlgorithm::Sha256) // as Terraform, unless skip_s3_checksum
        .body(ByteStream::from(body.as_bytes().to_vec()));
    req = match sse {
        Sse::None => req,
        Sse::Aes256 => req.server_side_encryption(ServerSideEncryption::Aes256),
        Sse::Kms(key_id) => req.server_side_encryption(ServerSideEncryption::AwsKms).set_ssekms_key_id(key_id.clone()),
    };
    if lock {
        req = req.if_none_match("*");
    }
    req.send().await.map(drop)
}

/// The HTTP status and error code of a refused request.
#[track_caller]
fn refusal<T: Debug, E: ProvideErrorMetadata + Debug>(what: &str, r: Sdk<T, E>) -> (u16, String) {
    let err = r.expect_err(&format!("{what} must be refused"));
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or_default();
    let code = err.as_service_error().and_then(|e| e.code()).unwrap_or_default().to_string();
    (status, code)
}

/// Asserts that `what` was refused by the bucket policy: S3's `403 AccessDenied`.
#[track_caller]
fn assert_denied<T: Debug, E: ProvideErrorMetadata + Debug>(what: &str, r: Sdk<T, E>) {
    assert_eq!(refusal(what, r), (403, "AccessDenied".to_string()), "{what}");
}

/// Reads `key` back as Terraform does (HeadObject, then GetObject) and checks body and encryption.
async fn assert_stored(r: &Runner, cfg: &Published, key: &str, body: &str) {
    let head = r.s3.head_object().bucket(cfg.bucket()).key(key).send().await.expect("HeadObject of the state");
    let got = r.s3.get_object().bucket(cfg.bucket()).key(key).send().await.expect("GetObject of the state");
    let found = (got.server_side_encryption().cloned(), got.ssekms_key_id().map(str::to_string));
    let bytes = got.body.collect().await.expect("read state body").into_bytes();
    assert_eq!(String::from_utf8_lossy(&bytes), body, "{key}: body");
    let expected = match cfg.opt("kms_key_id") {
        Some(key_arn) => (Some(ServerSideEncryption::AwsKms), Some(key_arn.to_string())),
        None => (Some(ServerSideEncryption::Aes256), None),
    };
    assert_eq!(found, expected, "GetObject {key}: encryption");
    let head = (head.server_side_encryption().cloned(), head.ssekms_key_id().map(str::to_string));
    assert_eq!(head, expected, "HeadObject {key}: encryption");
}

/// Writes the state at `key` with Terraform's encryption arguments and reads it back.
async fn state_round_trip(r: &Runner, cfg: &Published, key: &str) {
    put(&r.s3, cfg, key, STATE, &Sse::terraform(cfg), false).await.expect("Terraform's state PutObject");
    assert_stored(r, cfg, key, STATE).await;
}

/// Terraform's DynamoDB lock: conditional PutItem, lock info GetItem, `-md5` digest item, DeleteItem.
async fn dynamodb_lock_cycle(r: &Runner, cfg: &Published) {
    let table = cfg.s("dynamodb_table");
    let lock_id = format!("{}/{}", cfg.bucket(), cfg.key());
    let s = |v: &str| AttributeValue::S(v.to_string());
    let lock = || {
        r.ddb
            .put_item()
            .table_name(table)
            .item("LockID", s(&lock_id))
            .item("Info", s(r#"{"ID":"6f6c","Operation":"OperationTypeApply","Who":"runner@ci"}"#))
            .condition_expression("attribute_not_exists(LockID)")
    };
    lock().send().await.expect("first lock PutItem");
    let second = lock().send().await.expect_err("a second lock on the same state must fail");
    assert!(second.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()), "{second:?}");
    let info = r.ddb.get_item().table_name(table).key("LockID", s(&lock_id)).consistent_read(true).send().await;
    assert!(info.expect("lock info GetItem").item().is_some_and(|i| i.contains_key("Info")));
    // The digest item Terraform writes after each state upload (the hex MD5 of the state).
    let digest_id = format!("{lock_id}-md5");
    let digest = "0cc175b9c0f1b6a831c399e269772661";
    let put_digest = r.ddb.put_item().table_name(table).item("LockID", s(&digest_id)).item("Digest", s(digest));
    put_digest.send().await.expect("digest PutItem");
    let got = r.ddb.get_item().table_name(table).key("LockID", s(&digest_id)).projection_expression("LockID, Digest");
    let got = got.consistent_read(true).send().await.expect("digest GetItem");
    assert_eq!(got.item().and_then(|i| i.get("Digest")), Some(&s(digest)));
    r.ddb.delete_item().table_name(table).key("LockID", s(&lock_id)).send().await.expect("unlock DeleteItem");
    lock().send().await.expect("the lock can be taken again once released");
    r.ddb.delete_item().table_name(table).key("LockID", s(&lock_id)).send().await.expect("unlock DeleteItem");
}

/// Terraform's S3 lock file: `<key>.tflock` written with `If-None-Match: *` and the state's
/// encryption (or without SSE headers: default encryption applies); a second writer gets 412
/// PreconditionFailed (moto 5.2.5 implements conditional writes); DeleteObject releases it.
async fn lockfile_cycle(r: &Runner, cfg: &Published) {
    let lock_key = format!("{}.tflock", cfg.key());
    let info = r#"{"ID":"0b1d","Operation":"OperationTypePlan","Who":"runner@ci"}"#;
    let sse = Sse::terraform(cfg);
    // OpenTofu 1.10.0-1.10.1 sent no SSE header with the lock file (opentofu#2970): the bucket
    // policy judges only stated encryption, so it passes and default encryption applies.
    put(&r.s3, cfg, &lock_key, info, &Sse::None, true).await.expect("lock file PutObject without SSE headers");
    assert_stored(r, cfg, &lock_key, info).await;
    r.s3.delete_object().bucket(cfg.bucket()).key(&lock_key).send().await.expect("unlock DeleteObject");
    put(&r.s3, cfg, &lock_key, info, &sse, true).await.expect("lock file PutObject If-None-Match: *");
    let second = put(&r.s3, cfg, &lock_key, info, &sse, true).await;
    assert_eq!(refusal("a second lock file write", second), (412, "PreconditionFailed".to_string()));
    assert_stored(r, cfg, &lock_key, info).await;
    r.s3.delete_object().bucket(cfg.bucket()).key(&lock_key).send().await.expect("unlock DeleteObject");
    put(&r.s3, cfg, &lock_key, info, &sse, true).await.expect("the lock file can be taken again");
    r.s3.delete_object().bucket(cfg.bucket()).key(&lock_key).send().await.expect("unlock DeleteObject");
}

/// KMS + DynamoDB (the defaults): with the role's credentials, the state and a workspace's
/// state are written SSE-KMS with the published key and read back, and the DynamoDB lock
/// excludes a second holder until released.
#[tokio::test]
async fn kms_backend_with_dynamodb_lock_serves_terraform() {
    let fx = ready_backend("tfp-kms-ddb", "").await;
    let cfg = &fx.cfg;
    assert!(cfg.opt("kms_key_id").is_some() && cfg.opt("dynamodb_table").is_some() && !cfg.flag("use_lockfile"));
    let r = Runner::assume(&fx).await;
    state_round_trip(&r, cfg, cfg.key()).await;
    state_round_trip(&r, cfg, &format!("env:/staging/{}", cfg.key())).await;
    dynamodb_lock_cycle(&r, cfg).await;
}

/// KMS + Lockfile: no lock table is published, and Terraform's S3-native lock works.
#[tokio::test]
async fn kms_backend_with_lockfile_serves_terraform() {
    let fx = ready_backend("tfp-kms-lockfile", "  locking: {mode: Lockfile}\n").await;
    let cfg = &fx.cfg;
    assert!(cfg.flag("use_lockfile") && cfg.opt("dynamodb_table").is_none() && cfg.opt("kms_key_id").is_some());
    let r = Runner::assume(&fx).await;
    state_round_trip(&r, cfg, cfg.key()).await;
    lockfile_cycle(&r, cfg).await;
}

/// AES256 + Both: no key is published, objects are SSE-S3, Terraform takes both locks, the
/// bucket policy refuses an upload asking for SSE-KMS, and one without SSE headers is SSE-S3.
#[tokio::test]
async fn aes256_backend_with_both_locks_serves_terraform() {
    let fx = ready_backend("tfp-aes-both", "  encryption: {mode: AES256}\n  locking: {mode: Both}\n").await;
    let cfg = &fx.cfg;
    assert!(cfg.opt("kms_key_id").is_none() && fx.status.kms_key_arn.is_none());
    assert!(cfg.flag("use_lockfile") && cfg.opt("dynamodb_table").is_some());
    let r = Runner::assume(&fx).await;
    state_round_trip(&r, cfg, cfg.key()).await;
    dynamodb_lock_cycle(&r, cfg).await;
    lockfile_cycle(&r, cfg).await;
    let some_key = "arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-aaaa-bbbb-cccc-123456789abc";
    for sse in [Sse::Kms(None), Sse::Kms(Some(some_key.to_string()))] {
        assert_denied(&format!("{sse:?} upload"), put(&r.s3, cfg, cfg.key(), "{}", &sse, false).await);
    }
    assert_stored(&r, cfg, cfg.key(), STATE).await;
    let next = STATE.replace("\"serial\":1", "\"serial\":2");
    put(&r.s3, cfg, cfg.key(), &next, &Sse::None, false).await.expect("PutObject without SSE headers");
    assert_stored(&r, cfg, cfg.key(), &next).await;
}

/// The bucket policy, enforced end to end on a KMS backend: plain HTTP is refused for reads,
/// writes and deletes; over TLS, uploads with AES256, with `aws:kms` but no key id (S3 would
/// use `aws/s3`) or with another existing key are refused, and the state is untouched by all
/// of them; Terraform's own upload is accepted, and so is one without SSE headers, which
/// default encryption encrypts with the backend's key (tests/large_state.rs: multipart, SSE-C).
#[tokio::test]
async fn bucket_policy_refuses_everything_but_terraforms_encrypted_tls_requests() {
    let fx = ready_backend("tfp-policy", "").await;
    let (cfg, r) = (&fx.cfg, Runner::assume(&fx).await);
    state_round_trip(&r, cfg, cfg.key()).await;
    let (bucket, key) = (cfg.bucket(), cfg.key());
    assert_denied("GetObject over plain HTTP", r.s3_plain.get_object().bucket(bucket).key(key).send().await);
    let plain_put = put(&r.s3_plain, cfg, key, "{}", &Sse::terraform(cfg), false).await;
    assert_denied("Terraform's PutObject over plain HTTP", plain_put);
    assert_denied("DeleteObject over plain HTTP", r.s3_plain.delete_object().bucket(bucket).key(key).send().await);
    let other_key = inspector(&fx.ground).await.kms.create_key().description("not the backend's").send().await;
    let other_key = other_key.expect("CreateKey").key_metadata().and_then(|m| m.arn().map(str::to_string));
    for sse in [Sse::Aes256, Sse::Kms(None), Sse::Kms(other_key)] {
        assert_denied(&format!("PutObject with {sse:?}"), put(&r.s3, cfg, key, "{}", &sse, false).await);
    }
    assert_stored(&r, cfg, key, STATE).await;
    let next = STATE.replace("\"serial\":1", "\"serial\":2");
    put(&r.s3, cfg, key, &next, &Sse::terraform(cfg), false).await.expect("Terraform's PutObject over TLS");
    assert_stored(&r, cfg, key, &next).await;
    let last = STATE.replace("\"serial\":1", "\"serial\":3");
    put(&r.s3, cfg, key, &last, &Sse::None, false).await.expect("PutObject without SSE headers over TLS");
    assert_stored(&r, cfg, key, &last).await;
}

/// IAM glob: `*` any run of characters, `?` exactly one.
fn glob(pattern: &[u8], value: &[u8]) -> bool {
    match (pattern.first(), value.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&pattern[1..], value) || (!value.is_empty() && glob(pattern, &value[1..])),
        (Some(p), Some(v)) if *p == b'?' || p == v => glob(&pattern[1..], &value[1..]),
        _ => false,
    }
}

/// Whether `doc` allows `action` on `resource`, by Action/Resource wildcard matching only.
/// Conditions are ignored, which can only widen what is allowed, so "not allowed" here is
/// not allowed on AWS either.
fn allows(doc: &PolicyDocument, action: &str, resource: &str) -> bool {
    let applies = |s: &Statement| {
        s.action.iter().flatten().any(|a| glob(a.to_lowercase().as_bytes(), action.to_lowercase().as_bytes()))
            && s.resource.iter().flatten().any(|r| glob(r.as_bytes(), resource.as_bytes()))
    };
    let (allow, deny): (Vec<&Statement>, Vec<&Statement>) =
        doc.statements.iter().partition(|s| s.effect == Effect::Allow);
    allow.into_iter().any(applies) && !deny.into_iter().any(applies)
}

/// The role's inline policy (read back from IAM) grants the state key, its lock file and its
/// workspace variants (under the published `workspace_key_prefix`), the lock table and the
/// key, and nothing else: not another team's state, not deleting the state, not
/// administering the bucket, table or key. Terraform's own writes with that prefix work.
#[tokio::test]
async fn role_policy_allows_only_the_state_objects() {
    let fx = ready_backend("tfp-least", "  workspaceKeyPrefix: workspaces\n  locking: {mode: Both}\n").await;
    let cfg = &fx.cfg;
    let role = cfg.s("assume_role.role_arn").rsplit('/').next().expect("role name").to_string();
    let iam = inspector(&fx.ground).await.iam;
    let got = iam.get_role_policy().role_name(&role).policy_name(INLINE_POLICY_NAME).send().await;
    let doc = PolicyDocument::parse(got.expect("GetRolePolicy").policy_document()).expect("inline policy parses");
    for s in &doc.statements {
        assert!(s.not_action.is_none() && s.not_resource.is_none() && s.principal.is_none(), "{s:?}");
        assert!(s.action.iter().flatten().all(|a| !a.contains('*')), "no wildcard actions: {s:?}");
    }
    let wkp = cfg.s("workspace_key_prefix");
    assert_eq!(wkp, "workspaces");
    let (b, key) = (format!("arn:aws:s3:::{}", cfg.bucket()), cfg.key());
    let table = fx.status.lock_table_arn.clone().expect("lock table ARN");
    let kms = cfg.s("kms_key_id");
    let state_objects = [format!("{b}/{key}"), format!("{b}/{wkp}/dev/{key}")];
    for obj in &state_objects {
        for action in ["s3:GetObject", "s3:PutObject"] {
            assert!(allows(&doc, action, obj), "{action} on {obj} must be allowed");
        }
        assert!(!allows(&doc, "s3:DeleteObject", obj), "s3:DeleteObject on state {obj} must not be allowed");
        for action in ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"] {
            assert!(allows(&doc, action, &format!("{obj}.tflock")), "{action} on {obj}.tflock must be allowed");
        }
    }
    let allowed = [
        ("s3:ListBucket", b.as_str()),
        ("dynamodb:PutItem", &table),
        ("dynamodb:GetItem", &table),
        ("dynamodb:DeleteItem", &table),
        ("kms:GenerateDataKey", kms),
        ("kms:Decrypt", kms),
    ];
    for (action, resource) in allowed {
        assert!(allows(&doc, action, resource), "{action} on {resource} must be allowed");
    }
    let other_table = table.replace(cfg.s("dynamodb_table"), "other-lock");
    let refused = [
        ("s3:GetObject", format!("{b}/other-team/terraform.tfstate")),
        ("s3:PutObject", format!("{b}/other-team/terraform.tfstate")),
        ("s3:GetObject", format!("{b}/env:/dev/{key}")), // Terraform's default prefix is not the published one
        ("s3:GetObject", format!("{b}/{key}.backup")),
        ("s3:GetObject", format!("arn:aws:s3:::other-bucket/{key}")),
        ("s3:DeleteObjectVersion", format!("{b}/{key}")),
        ("s3:PutBucketPolicy", b.clone()),
        ("s3:DeleteBucket", b.clone()),
        ("dynamodb:DeleteTable", table.clone()),
        ("dynamodb:PutItem", other_table),
        ("kms:ScheduleKeyDeletion", kms.to_string()),
        ("kms:PutKeyPolicy", kms.to_string()),
        ("iam:PutRolePolicy", cfg.s("assume_role.role_arn").to_string()),
    ];
    for (action, resource) in refused {
        assert!(!allows(&doc, action, &resource), "{action} on {resource} must not be allowed:\n{}", doc.to_json());
    }
    let r = Runner::assume(&fx).await;
    state_round_trip(&r, cfg, &format!("{wkp}/dev/{key}")).await;
    // `terraform workspace list`: ListObjectsV2 under `<workspace_key_prefix>/`.
    let listed = r.s3.list_objects_v2().bucket(cfg.bucket()).prefix(format!("{wkp}/")).send().await;
    let keys: Vec<_> =
        listed.expect("ListObjectsV2").contents().iter().filter_map(|o| o.key()).map(str::to_string).collect();
    assert_eq!(keys, [format!("{wkp}/dev/{key}")]);
}
