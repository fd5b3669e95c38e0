//! `tfstate-operator state versions|restore`, the built binary, on the real test ground.
//!
//! States are written with the SDK the way Terraform writes them (JSON with serial and lineage,
//! SSE-KMS with the backend's key); the CLI runs as a separate process with the caller's own
//! credentials and reads the backend from the cluster (`-n NS NAME`). A restore must make the old
//! content current by a server-side copy encrypted with the backend's key, delete no version,
//! update Terraform's DynamoDB digest, and refuse while locked (unless `--force`) or for another
//! lineage (unless `--skip-lineage-check`, which still respects the lock, or `--force`).

mod common;

use std::process::{Command, Output};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use common::operator::{ReadyBackend, inspector, ready_backend};
use md5::{Digest, Md5};

fn cli(b: &ReadyBackend, args: &[&str]) -> Output {
    cli_at(b, "AWS_ENDPOINT_URL", args)
}

/// The CLI with its AWS calls sent to the endpoint in the ground's variable `endpoint`.
fn cli_at(b: &ReadyBackend, endpoint: &str, args: &[&str]) -> Output {
    let mut cmd = state_command(b, endpoint, args);
    // Not on the runtime's thread: the in-process operator and the clients' connections
    // must go on while the CLI runs (a blocked runtime stalls their TLS handshakes).
    tokio::task::block_in_place(|| cmd.output().expect("run tfstate-operator state"))
}

/// `tfstate-operator state ARGS -n NS tf` for backend `b`, its AWS calls sent to the endpoint in
/// the ground's variable `endpoint`; not started, so a test may run it in the background.
fn state_command(b: &ReadyBackend, endpoint: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tfstate-operator"));
    cmd.arg("state")
        .args(args)
        .args(["-n", &b.namespace, "tf"])
        .env("KUBECONFIG", b.ground.var("KUBECONFIG"))
        .env("AWS_ENDPOINT_URL", b.ground.var(endpoint))
        .env("AWS_CA_BUNDLE", b.ground.var("AWS_CA_BUNDLE"))
        .env("AWS_REGION", b.ground.var("AWS_REGION"))
        // The backend names no region: the operator's default applies, as with `render`.
        .env("TFSTATE_DEFAULT_REGION", b.ground.var("AWS_REGION"));
    cmd
}

/// The tests that steer the fault proxy, one at a time (its rules are global to the ground).
async fn proxy_serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// String attribute `attribute` of item `id` of the lock table (strongly consistent), if the
/// item is there.
async fn item_attribute(ddb: &aws_sdk_dynamodb::Client, table: &str, id: &str, attribute: &str) -> Option<String> {
    let out = ddb
        .get_item()
        .table_name(table)
        .key("LockID", AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    out.item().and_then(|i| i.get(attribute)).and_then(|v| v.as_s().ok()).cloned()
}

/// The DynamoDB lock item's `Info`, if the item is there.
async fn lock_item(ddb: &aws_sdk_dynamodb::Client, table: &str, lock_id: &str) -> Option<String> {
    item_attribute(ddb, table, lock_id, "Info").await
}

/// Terraform's digest of the state (`<lock ID>-md5`, attribute `Digest`).
async fn digest_item(ddb: &aws_sdk_dynamodb::Client, table: &str, lock_id: &str) -> Option<String> {
    item_attribute(ddb, table, &format!("{lock_id}-md5"), "Digest").await
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn state(serial: u64, lineage: &str) -> Vec<u8> {
    format!(r#"{{"version": 4, "terraform_version": "1.10.0", "serial": {serial}, "lineage": "{lineage}", "outputs": {{}}, "resources": []}}"#).into_bytes()
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, kms: &str, body: Vec<u8>) -> String {
    let out = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(kms)
        .body(ByteStream::from(body))
        .send()
        .await
        .expect("PutObject as Terraform does");
    out.version_id().expect("version id").to_owned()
}

async fn version_ids(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<String> {
    let out = s3.list_object_versions().bucket(bucket).prefix(key).send().await.expect("ListObjectVersions");
    out.versions().iter().filter(|v| v.key() == Some(key)).filter_map(|v| v.version_id().map(str::to_owned)).collect()
}

async fn current(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> (Vec<u8>, Option<String>, Option<String>) {
    let got = s3.get_object().bucket(bucket).key(key).send().await.expect("GetObject");
    let (sse, kms) =
        (got.server_side_encryption().map(|s| s.as_str().to_owned()), got.ssekms_key_id().map(str::to_owned));
    (got.body.collect().await.expect("body").into_bytes().to_vec(), sse, kms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_and_restore_with_lock_and_lineage_checks() {
    let b = ready_backend("state-cli", "").await;
    let aws = inspector(&b.ground).await;
    let (bucket, key) = (b.bucket.clone(), format!("{}/tf/terraform.tfstate", b.namespace));
    let kms = b.status.kms_key_arn.clone().expect("kmsKeyArn");
    let table = format!("{bucket}-lock");

    // Another state's version first (lineage M), then three of lineage L, as Terraform writes them.
    let other = put(&aws.s3, &bucket, &key, &kms, state(5, "lineage-m")).await;
    let v1 = put(&aws.s3, &bucket, &key, &kms, state(1, "lineage-l")).await;
    let v2 = put(&aws.s3, &bucket, &key, &kms, state(2, "lineage-l")).await;
    let v3 = put(&aws.s3, &bucket, &key, &kms, state(3, "lineage-l")).await;

    let listed = cli(&b, &["versions"]);
    let (out, err) = text(&listed);
    assert!(listed.status.success(), "versions failed: {err}");
    assert!(out.starts_with(&format!("s3://{bucket}/{key}: 4 version(s)")), "{out}");
    let line = |id: &str| {
        out.lines().find(|l| l.starts_with(id)).unwrap_or_else(|| panic!("{id} not listed:\n{out}")).to_owned()
    };
    assert!(line(&v3).contains(" * ") && line(&v3).ends_with(" 3 lineage-l"), "{}", line(&v3));
    assert!(line(&v1).ends_with(" 1 lineage-l") && !line(&v1).contains(" * "), "{}", line(&v1));
    assert!(line(&other).ends_with(" 5 lineage-m"), "{}", line(&other));
    assert!(!out.contains("shown as -"), "the caller may read every version here:\n{out}");

    // The bad day: garbage overwrites the state.
    let garbage = put(&aws.s3, &bucket, &key, &kms, b"\x00 not a state {".to_vec()).await;
    let before = version_ids(&aws.s3, &bucket, &key).await;
    assert_eq!(before.len(), 5);
    // Abuse of the bad day: garbage does not lift the lineage check. The state's lineage is
    // then the newest readable one (v3's), so another state is still refused.
    let refused = cli(&b, &["restore", "--version", &other]);
    let (_, err) = text(&refused);
    assert!(!refused.status.success(), "another lineage restored over garbage without --force");
    assert!(err.contains("lineage lineage-m") && err.contains(&v3) && err.contains("--skip-lineage-check"), "{err}");
    assert_eq!(version_ids(&aws.s3, &bucket, &key).await, before, "nothing written");

    // A held lock (Terraform's item) refuses the restore, and nothing changes.
    let info = r#"{"ID":"6c2f6d1e","Operation":"OperationTypeApply","Who":"ci@runner-7","Version":"1.10.0","Created":"2026-12-01T15:00:00Z","Path":""}"#;
    let lock_id = format!("{bucket}/{key}");
    aws.dynamodb
        .put_item()
        .table_name(&table)
        .item("LockID", AttributeValue::S(lock_id.clone()))
        .item("Info", AttributeValue::S(info.into()))
        .condition_expression("attribute_not_exists(LockID)")
        .send()
        .await
        .expect("take the lock");
    let refused = cli(&b, &["restore", "--version", &v2]);
    let (_, err) = text(&refused);
    assert!(!refused.status.success(), "restore while locked must fail");
    assert!(err.contains("locked") && err.contains("ci@runner-7") && err.contains("--force"), "{err}");
    assert_eq!(version_ids(&aws.s3, &bucket, &key).await, before, "nothing written while locked");
    // Skipping the lineage check does not skip the lock.
    let refused = cli(&b, &["restore", "--version", &other, "--skip-lineage-check"]);
    let (_, err) = text(&refused);
    assert!(!refused.status.success() && err.contains("ci@runner-7"), "--skip-lineage-check past a lock: {err}");
    assert_eq!(version_ids(&aws.s3, &bucket, &key).await, before, "nothing written while locked");
    assert_eq!(lock_item(&aws.dynamodb, &table, &lock_id).await.as_deref(), Some(info), "the runner's lock changed");
    aws.dynamodb
        .delete_item()
        .table_name(&table)
        .key("LockID", AttributeValue::S(lock_id.clone()))
        .send()
        .await
        .expect("unlock");

    // Restore v2: its content is current again, encrypted with the backend's key, nothing deleted.
    let restored = cli(&b, &["restore", "--version", &v2]);
    let (out, err) = text(&restored);
    assert!(restored.status.success(), "restore failed: {err}");
    assert!(
        out.contains(&format!("current version {garbage} -> ")) && out.contains(&format!("copy of version {v2}")),
        "{out}"
    );
    assert!(out.contains("serial 2, lineage lineage-l") && out.contains("no version was deleted"), "{out}");
    let (content, sse, key_id) = current(&aws.s3, &bucket, &key).await;
    assert_eq!(content, state(2, "lineage-l"), "the restored content is v2's");
    assert_eq!(sse.as_deref(), Some("aws:kms"));
    assert_eq!(key_id.as_deref(), Some(kms.as_str()), "encrypted with the backend's key");
    let after = version_ids(&aws.s3, &bucket, &key).await;
    assert_eq!(after.len(), before.len() + 1, "one new version, none deleted");
    assert!(before.iter().all(|v| after.contains(v)), "every earlier version is still there");
    // Terraform's digest now matches the restored state.
    let want: String = Md5::digest(state(2, "lineage-l")).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest_item(&aws.dynamodb, &table, &lock_id).await, Some(want));

    // Another lineage is refused, then restored with --skip-lineage-check, under the lock.
    let refused = cli(&b, &["restore", "--version", &other]);
    let (_, err) = text(&refused);
    assert!(!refused.status.success() && err.contains("lineage lineage-m"), "{err}");
    assert_eq!(version_ids(&aws.s3, &bucket, &key).await.len(), after.len(), "nothing written");
    let skipped = cli(&b, &["restore", "--version", &other, "--skip-lineage-check"]);
    let (out, err) = text(&skipped);
    assert!(skipped.status.success(), "restore with --skip-lineage-check failed: {err}");
    assert!(out.contains("lineage was not checked") && out.contains("released it"), "{out}");
    assert_eq!(current(&aws.s3, &bucket, &key).await.0, state(5, "lineage-m"));
    assert_eq!(lock_item(&aws.dynamodb, &table, &lock_id).await, None, "the restore's lock was left");

    // A held lock with --force: restored, and said so.
    aws.dynamodb
        .put_item()
        .table_name(&table)
        .item("LockID", AttributeValue::S(lock_id.clone()))
        .item("Info", AttributeValue::S(info.into()))
        .send()
        .await
        .expect("take the lock again");
    let forced = cli(&b, &["restore", "--version", &v1, "--force"]);
    let (out, err) = text(&forced);
    assert!(forced.status.success(), "forced restore failed: {err}");
    assert!(out.contains("warning: restored while locked"), "{out}");
    assert_eq!(
        lock_item(&aws.dynamodb, &table, &lock_id).await.as_deref(),
        Some(info),
        "a forced restore touched the lock it was forced past"
    );
    assert_eq!(current(&aws.s3, &bucket, &key).await.0, state(1, "lineage-l"));
    assert_eq!(version_ids(&aws.s3, &bucket, &key).await.len(), before.len() + 3, "still nothing deleted");

    // A version that is not one of this state's is named as such (the runner's lock gone
    // first: the lock is taken before anything is read), and the restore's lock is released.
    aws.dynamodb
        .delete_item()
        .table_name(&table)
        .key("LockID", AttributeValue::S(lock_id.clone()))
        .send()
        .await
        .expect("unlock");
    let unknown = cli(&b, &["restore", "--version", "no-such-version"]);
    assert!(!unknown.status.success() && text(&unknown).1.contains("is not a version of"), "{}", text(&unknown).1);
    let left = lock_item(&aws.dynamodb, &table, &lock_id).await;
    assert!(left.is_none(), "a refused restore left its lock: {left:?}");
}

/// The restore holds the state's lock, as Terraform takes it, from before it reads the versions
/// until after it wrote the copy and the digest: a runner starting meanwhile is refused by the
/// lock itself (both the lock file and the DynamoDB item, in mode Both), and afterwards both are
/// gone (released conditionally, each only while still the restore's own). The copy is slowed
/// down by the fault proxy so that "meanwhile" is long enough to look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_holds_the_lock_while_it_copies() {
    let _serial = proxy_serial().await;
    let b = ready_backend("state-cli-lock", "  locking: {mode: Both}\n").await;
    let aws = inspector(&b.ground).await;
    let faults = common::faults::Faults::from_ground(&b.ground);
    let (bucket, key) = (b.bucket.clone(), format!("{}/tf/terraform.tfstate", b.namespace));
    let kms = b.status.kms_key_arn.clone().expect("kmsKeyArn");
    let (table, lock_id, lock_file) = (format!("{bucket}-lock"), format!("{bucket}/{key}"), format!("{key}.tflock"));
    let v1 = put(&aws.s3, &bucket, &key, &kms, state(1, "lineage-l")).await;
    put(&aws.s3, &bucket, &key, &kms, state(2, "lineage-l")).await;

    // Every CopyObject on this bucket waits 6 s at the proxy before it reaches S3.
    faults.set_rules(serde_json::json!([
        {"service": "s3", "operation": "CopyObject", "bucket": bucket, "fault": "latency", "latency_ms": 6000}
    ]));
    let mut cmd = state_command(&b, "TESTGROUND_FAULTS_ENDPOINT_URL", &["restore", "--version", &v1]);
    cmd.env("USER", "ana").stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("start the restore");

    // While it copies: the DynamoDB item is the restore's, with Terraform's lock info ...
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let info = loop {
        if let Some(info) = lock_item(&aws.dynamodb, &table, &lock_id).await {
            break info;
        }
        assert!(std::time::Instant::now() < deadline, "the restore took no DynamoDB lock within 15 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let parsed: serde_json::Value = serde_json::from_str(&info).expect("lock info JSON");
    assert_eq!(parsed["Operation"], "tfstate-operator state restore", "{info}");
    assert!(parsed["Who"].as_str().is_some_and(|w| w.starts_with("ana@")), "{info}");
    assert_eq!(parsed["Path"].as_str(), Some(lock_id.as_str()), "{info}");
    // ... the lock file holds the same info ...
    let file = aws.s3.get_object().bucket(&bucket).key(&lock_file).send().await.expect("the lock file exists");
    assert_eq!(file.body.collect().await.expect("body").into_bytes().as_ref(), info.as_bytes());
    // ... and a runner taking the lock the way Terraform does is refused by both.
    let runner = aws
        .dynamodb
        .put_item()
        .table_name(&table)
        .item("LockID", AttributeValue::S(lock_id.clone()))
        .item("Info", AttributeValue::S(r#"{"ID":"runner"}"#.into()))
        .condition_expression("attribute_not_exists(LockID)")
        .send()
        .await;
    assert!(runner.is_err(), "a runner took the DynamoDB lock during the restore");
    let runner_file = aws
        .s3
        .put_object()
        .bucket(&bucket)
        .key(&lock_file)
        .if_none_match("*")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&kms)
        .body(ByteStream::from_static(b"{\"ID\":\"runner\"}"))
        .send()
        .await;
    assert!(runner_file.is_err(), "a runner took the lock file during the restore");

    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.expect("join").expect("wait");
    faults.clear_rules();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "restore failed: {stderr}");
    let id = parsed["ID"].as_str().expect("lock ID");
    assert!(stdout.contains(&format!("held the state lock {id} during the restore, and released it")), "{stdout}");
    assert_eq!(current(&aws.s3, &bucket, &key).await.0, state(1, "lineage-l"), "v1 is current again");
    // Released: no lock item, no lock file; the digest is the restored state's.
    let left = lock_item(&aws.dynamodb, &table, &lock_id).await;
    assert!(left.is_none(), "the lock item is still there: {left:?}");
    let head = aws.s3.head_object().bucket(&bucket).key(&lock_file).send().await;
    assert!(head.is_err(), "the lock file is still there");
    let want: String = Md5::digest(state(1, "lineage-l")).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest_item(&aws.dynamodb, &table, &lock_id).await, Some(want));

    // A lock file held by a runner (Both mode, no DynamoDB item) refuses the restore, and the
    // restore leaves the runner's lock file as it was and takes no DynamoDB item.
    let runner_info =
        r#"{"ID":"9d1e","Operation":"OperationTypeApply","Who":"ci@runner-9","Created":"2026-12-01T15:00:00Z"}"#;
    aws.s3
        .put_object()
        .bucket(&bucket)
        .key(&lock_file)
        .if_none_match("*")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&kms)
        .body(ByteStream::from_static(runner_info.as_bytes()))
        .send()
        .await
        .expect("a runner takes the lock file");
    let versions = version_ids(&aws.s3, &bucket, &key).await;
    // Through the proxy, to count its calls: the lock is tried first, so a refused restore has
    // not even listed the versions (what it would check is read only under the lock).
    let listed = |stats: &serde_json::Value| stats["requests"]["s3:ListObjectVersions"].as_u64().unwrap_or(0);
    let lists_before = listed(&faults.stats());
    let refused = cli_at(&b, "TESTGROUND_FAULTS_ENDPOINT_URL", &["restore", "--version", &v1]);
    assert!(!refused.status.success(), "restored while a runner held the lock file");
    assert!(text(&refused).1.contains("locked"), "{}", text(&refused).1);
    assert_eq!(listed(&faults.stats()), lists_before, "a restore refused by the lock listed the versions first");
    assert_eq!(version_ids(&aws.s3, &bucket, &key).await, versions, "nothing written");
    let file = aws.s3.get_object().bucket(&bucket).key(&lock_file).send().await.expect("the runner's lock file");
    assert_eq!(file.body.collect().await.expect("body").into_bytes().as_ref(), runner_info.as_bytes());
    assert!(
        lock_item(&aws.dynamodb, &table, &lock_id).await.is_none(),
        "the refused restore left a DynamoDB lock item"
    );
}

/// Releasing is conditional and failures are named: a lock replaced by someone else during the
/// restore (here: deleted and retaken by a "runner" while the copy is slowed) is left as it is
/// and said so; a restore that fails (CopyObject answers 500 to every attempt) and cannot
/// release its lock (DeleteItem answers 500 too) says which lock ID to break, and that lock
/// is indeed still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_releases_only_its_own_lock_and_names_one_it_cannot_release() {
    let _serial = proxy_serial().await;
    let b = ready_backend("state-cli-release", "").await;
    let aws = inspector(&b.ground).await;
    let faults = common::faults::Faults::from_ground(&b.ground);
    let (bucket, key) = (b.bucket.clone(), format!("{}/tf/terraform.tfstate", b.namespace));
    let kms = b.status.kms_key_arn.clone().expect("kmsKeyArn");
    let (table, lock_id) = (format!("{bucket}-lock"), format!("{bucket}/{key}"));
    let v1 = put(&aws.s3, &bucket, &key, &kms, state(1, "lineage-l")).await;
    put(&aws.s3, &bucket, &key, &kms, state(2, "lineage-l")).await;

    // Replaced during the restore: the runner's lock survives the release.
    faults.set_rules(serde_json::json!([
        {"service": "s3", "operation": "CopyObject", "bucket": bucket, "fault": "latency", "latency_ms": 5000}
    ]));
    let mut cmd = state_command(&b, "TESTGROUND_FAULTS_ENDPOINT_URL", &["restore", "--version", &v1]);
    let restore = std::thread::spawn(move || cmd.output().expect("run the restore"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while lock_item(&aws.dynamodb, &table, &lock_id).await.is_none() {
        assert!(std::time::Instant::now() < deadline, "the restore took no lock within 15 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let runner = r#"{"ID":"runner-after-break","Operation":"OperationTypeApply","Who":"ci@runner-3"}"#;
    aws.dynamodb
        .put_item()
        .table_name(&table)
        .item("LockID", AttributeValue::S(lock_id.clone()))
        .item("Info", AttributeValue::S(runner.into()))
        .send()
        .await
        .expect("someone breaks the restore's lock and takes it");
    let out = tokio::task::block_in_place(|| restore.join().expect("join"));
    faults.clear_rules();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "restore failed: {stderr}");
    assert!(stdout.contains("was replaced during the restore") && stdout.contains("left as it is"), "{stdout}");
    assert_eq!(
        lock_item(&aws.dynamodb, &table, &lock_id).await.as_deref(),
        Some(runner),
        "the runner's lock was deleted"
    );
    aws.dynamodb
        .delete_item()
        .table_name(&table)
        .key("LockID", AttributeValue::S(lock_id.clone()))
        .send()
        .await
        .expect("the runner unlocks");

    // The restore fails and so does the release: the lock left is named, and is there.
    faults.set_rules(serde_json::json!([
        {"service": "s3", "operation": "CopyObject", "bucket": bucket, "fault": "error500"},
        {"service": "dynamodb", "operation": "DeleteItem", "fault": "error500"}
    ]));
    let versions = version_ids(&aws.s3, &bucket, &key).await;
    let failed = cli_at(&b, "TESTGROUND_FAULTS_ENDPOINT_URL", &["restore", "--version", &v1]);
    faults.clear_rules();
    let (_, stderr) = text(&failed);
    assert!(!failed.status.success(), "a restore whose copy failed succeeded");
    let left = lock_item(&aws.dynamodb, &table, &lock_id).await.expect("the lock that could not be released");
    let id =
        serde_json::from_str::<serde_json::Value>(&left).expect("lock info")["ID"].as_str().expect("ID").to_owned();
    assert!(
        stderr.contains(&format!("holding the state lock {id}")) && stderr.contains("could not be released"),
        "the lock left is not named: {stderr}"
    );
    assert!(stderr.contains(&format!("terraform force-unlock {id}")), "{stderr}");
    assert_eq!(version_ids(&aws.s3, &bucket, &key).await, versions, "a failed copy wrote a version");
}
