//! The audit trail (`spec.audit.cloudTrail`) against the real test ground: a CloudTrail trail
//! owned by the backend that records only the S3 data events of the state bucket's objects,
//! logging, with log file validation, read back independently with the SDK; quiet once
//! converged; drift repaired; a missing log bucket reported (`DependencyNotReady`, saying what
//! to fix) and healed once it exists; another backend's trail, an untagged trail, a trail
//! name outside the policy, the state bucket as log bucket and non-literal names refused;
//! the trail deleted when `spec.audit` is removed and with `deletionPolicy: Delete`, the log
//! files never.
//!
//! What the emulator (moto 5.2.5) does not do, and so these tests cannot show: it never
//! checks the log bucket's policy (CreateTrail never answers
//! `InsufficientS3BucketPolicyException`: only the missing bucket is exercised here), never
//! delivers log files, does not validate selector fields, and evaluates no identity policy.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_cloudtrail::types::{AdvancedEventSelector, AdvancedFieldSelector, EventSelector, ReadWriteType, Tag};
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use common::harness::Harness;
use common::operator::{condition, is_ready, patch_spec, unique_bucket, wait_for, wait_ready};
use kube::ResourceExt;
use kube::api::{DeleteParams, PostParams};
use serde_json::{Value, json};
use tfstate_operator::api::TerraformStateBackend;
use tfstate_operator::aws::AwsClients;
use tfstate_operator::aws::calls::{difference, totals};
use tfstate_operator::reconcile::desired::{TAG_OWNER, TAG_OWNER_UID};

/// The drift check interval of these tests' operators.
const RESYNC: Duration = Duration::from_secs(2);
/// How long a repair or a heal may take: the next check or two, on a loaded machine.
const REPAIR_TIMEOUT: Duration = Duration::from_secs(20);
const ROOT: &str = "arn:aws:iam::123456789012:root";
const ACCOUNT: &str = "123456789012";

async fn harness(prefix: &str) -> Harness {
    common::harness::harness(prefix, RESYNC).await
}

impl Harness {
    /// A log bucket as its owner makes it: a bucket policy that lets CloudTrail write (the
    /// emulator does not check it; AWS does).
    async fn log_bucket(&self, name: &str) {
        let location = CreateBucketConfiguration::builder()
            .location_constraint(BucketLocationConstraint::from(self.aws.region.as_str()))
            .build();
        self.aws
            .s3
            .create_bucket()
            .bucket(name)
            .create_bucket_configuration(location)
            .send()
            .await
            .expect("log bucket");
        let policy = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "AWSCloudTrailAclCheck", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "s3:GetBucketAcl", "Resource": format!("arn:aws:s3:::{name}")},
            {"Sid": "AWSCloudTrailWrite", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "s3:PutObject", "Resource": format!("arn:aws:s3:::{name}/*"),
             "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}}}]});
        self.aws.s3.put_bucket_policy().bucket(name).policy(policy.to_string()).send().await.expect("log policy");
    }

    /// The trail's name, as the operator derives it for backend `name`.
    fn default_trail(&self, name: &str) -> String {
        format!("tfstate-{}.{name}", self.ns)
    }

    /// `DriftRepaired` Events about `name` whose note names `change`.
    async fn drift_events(&self, name: &str, change: &str) -> usize {
        self.count_events(name, "DriftRepaired", change).await
    }
}

fn spec(bucket: &str, audit: Value) -> Value {
    json!({"bucket": {"name": bucket}, "access": {"trust": {"awsPrincipals": [ROOT]}}, "audit": audit})
}

/// Ready, AuditReady settled (`Converged`), nothing in progress.
fn audit_settled(o: &TerraformStateBackend) -> bool {
    is_ready(o)
        && condition(o, "AuditReady").is_some_and(|(s, r, _)| s == "True" && r == "Converged")
        && condition(o, "Reconciling").is_none()
}

/// The trail as the SDK reads it, without the operator's wrappers.
struct ReadBack {
    bucket: String,
    prefix: Option<String>,
    multi_region: bool,
    global_events: bool,
    validation: bool,
    logging: bool,
    basic: Vec<EventSelector>,
    advanced: Vec<AdvancedEventSelector>,
    tags: BTreeMap<String, String>,
}

async fn read_back(aws: &AwsClients, name: &str) -> Option<ReadBack> {
    let ct = &aws.cloudtrail;
    let trail = match ct.get_trail().name(name).send().await {
        Ok(out) => out.trail().cloned().expect("GetTrail answers a trail"),
        Err(e) if format!("{e:?}").contains("TrailNotFoundException") => return None,
        Err(e) => panic!("GetTrail {name}: {e:?}"),
    };
    let arn = trail.trail_arn().expect("trail ARN").to_string();
    let status = ct.get_trail_status().name(name).send().await.expect("GetTrailStatus");
    let selectors = ct.get_event_selectors().trail_name(name).send().await.expect("GetEventSelectors");
    let tags = ct.list_tags().resource_id_list(&arn).send().await.expect("ListTags");
    Some(ReadBack {
        bucket: trail.s3_bucket_name().unwrap_or_default().to_string(),
        prefix: trail.s3_key_prefix().filter(|p| !p.is_empty()).map(str::to_string),
        multi_region: trail.is_multi_region_trail().unwrap_or(true),
        global_events: trail.include_global_service_events().unwrap_or(true),
        validation: trail.log_file_validation_enabled().unwrap_or(false),
        logging: status.is_logging().unwrap_or(false),
        basic: selectors.event_selectors().to_vec(),
        advanced: selectors.advanced_event_selectors().to_vec(),
        tags: tags
            .resource_tag_list()
            .iter()
            .flat_map(|r| r.tags_list())
            .map(|t| (t.key().to_string(), t.value().unwrap_or_default().to_string()))
            .collect(),
    })
}

/// The field selectors of `s` as (field, operator, values), sorted.
fn fields(s: &AdvancedEventSelector) -> Vec<(String, &'static str, Vec<String>)> {
    let mut out = Vec::new();
    for f in s.field_selectors() {
        for (op, values) in [
            ("Equals", f.equals()),
            ("StartsWith", f.starts_with()),
            ("EndsWith", f.ends_with()),
            ("NotEquals", f.not_equals()),
            ("NotStartsWith", f.not_starts_with()),
            ("NotEndsWith", f.not_ends_with()),
        ] {
            if !values.is_empty() {
                out.push((f.field().to_string(), op, values.to_vec()));
            }
        }
    }
    out.sort();
    out
}

/// Exactly the state bucket's object data events: one advanced selector, three conditions.
fn assert_records_only(trail: &ReadBack, bucket: &str) {
    assert!(trail.basic.is_empty(), "basic event selectors (management events): {:?}", trail.basic);
    assert_eq!(trail.advanced.len(), 1, "one advanced selector: {:?}", trail.advanced);
    let want = vec![
        ("eventCategory".to_string(), "Equals", vec!["Data".to_string()]),
        ("resources.ARN".to_string(), "StartsWith", vec![format!("arn:aws:s3:::{bucket}/")]),
        ("resources.type".to_string(), "Equals", vec!["AWS::S3::Object".to_string()]),
    ];
    assert_eq!(fields(&trail.advanced[0]), want, "the trail's selector");
}

/// A trail is created with exactly the specified settings and selectors, logging, tagged as
/// the backend's; the status names it; and once converged it costs 4 CloudTrail reads per
/// resync, no AWS write and no Kubernetes write.
#[tokio::test]
async fn trail_records_only_state_object_events_and_is_quiet() {
    let h = harness("audit-create").await;
    let (bucket, logs) = (unique_bucket("audit-state"), unique_bucket("audit-logs"));
    h.log_bucket(&logs).await;
    h.create("tf", spec(&bucket, json!({"cloudTrail": {"logBucket": logs, "logPrefix": "tfstate/audit"}}))).await;
    let obj = wait_for(&h.api, "tf", Duration::from_secs(60), "Ready with AuditReady", audit_settled).await;

    let name = h.default_trail("tf");
    let arn = format!("arn:aws:cloudtrail:{}:{ACCOUNT}:trail/{name}", h.aws.region);
    let status = obj.status.clone().expect("status");
    assert_eq!(status.trail_arn.as_deref(), Some(arn.as_str()), "status.trailArn");
    let (_, _, message) = condition(&obj, "AuditReady").expect("AuditReady");
    assert!(message.contains(&name) && message.contains(&bucket), "AuditReady message: {message}");

    let trail = read_back(&h.aws, &name).await.expect("the trail exists");
    assert_eq!(trail.bucket, logs, "log bucket");
    assert_eq!(trail.prefix.as_deref(), Some("tfstate/audit"), "log prefix");
    assert!(!trail.multi_region, "single-region");
    assert!(!trail.global_events, "no global service (management) events");
    assert!(trail.validation, "log file validation on");
    assert!(trail.logging, "logging started");
    assert_records_only(&trail, &bucket);
    assert_eq!(trail.tags.get(TAG_OWNER_UID), obj.uid().as_ref(), "owner UID tag: {:?}", trail.tags);
    assert_eq!(trail.tags.get(TAG_OWNER).map(String::as_str), Some(format!("{}/tf", h.ns).as_str()));

    // Steady state: several resyncs, reads only.
    let version = h.api.get("tf").await.expect("get").resource_version();
    let before = h.op.quiescent_calls(Duration::from_millis(300)).await;
    tokio::time::sleep(RESYNC * 3 + Duration::from_millis(500)).await;
    let diff = difference(&before, &h.op.quiescent_calls(Duration::from_millis(300)).await);
    let resyncs: u64 = diff.iter().filter(|(k, _)| k.operation == "GetBucketTagging").map(|(_, n)| n).sum();
    assert!(resyncs >= 2, "fewer than 2 resyncs in {:?}: {diff:#?}", RESYNC * 3);
    let writes: Vec<_> = diff.iter().filter(|(k, _)| !k.is_read()).collect();
    assert!(writes.is_empty(), "a converged backend with an audit trail made AWS writes: {writes:#?}");
    let trail_reads: BTreeMap<&str, u64> =
        diff.iter().filter(|(k, _)| k.service == "cloudtrail").map(|(k, n)| (k.operation.as_str(), *n)).collect();
    let per = |op: &str| trail_reads.get(op).copied().unwrap_or(0);
    for op in ["GetTrail", "ListTags", "GetTrailStatus", "GetEventSelectors"] {
        assert_eq!(per(op), resyncs, "{op}: once per resync ({resyncs} resyncs): {trail_reads:?}");
    }
    assert_eq!(trail_reads.len(), 4, "CloudTrail calls at steady state: {trail_reads:?}");
    let t = totals(&diff);
    eprintln!(
        "audit steady state: {resyncs} resyncs, {} reads ({:.1} per resync, 4 of them CloudTrail), {} writes",
        t.reads,
        t.reads as f64 / resyncs as f64,
        t.writes
    );
    assert_eq!(h.api.get("tf").await.expect("get").resource_version(), version, "status rewritten at steady state");
}

/// Logging stopped, the selectors replaced by basic ones logging every management event, and
/// log file validation turned off are each put back at the next check, reported as
/// `DriftRepaired` naming the change.
#[tokio::test]
async fn trail_drift_is_repaired_and_reported() {
    let h = harness("audit-drift").await;
    let (bucket, logs) = (unique_bucket("audit-drift"), unique_bucket("audit-drift-logs"));
    h.log_bucket(&logs).await;
    h.create("tf", spec(&bucket, json!({"cloudTrail": {"logBucket": logs}}))).await;
    wait_for(&h.api, "tf", Duration::from_secs(60), "Ready with AuditReady", audit_settled).await;
    let name = h.default_trail("tf");
    let ct = &h.aws.cloudtrail;

    // `seen`: the Events naming `change` before the damage (an earlier repair of the same
    // kind must not count as this one's report).
    async fn expect_repair(
        h: &Harness,
        name: &str,
        change: &str,
        seen: usize,
        repaired: impl AsyncFn(&ReadBack) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + REPAIR_TIMEOUT;
        loop {
            let trail = read_back(&h.aws, name).await.expect("the trail exists");
            let (is_repaired, events) = (repaired(&trail).await, h.drift_events("tf", change).await);
            if is_repaired && events > seen {
                eprintln!("repaired and reported: {change}");
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                let obj = h.api.get("tf").await.expect("get");
                panic!(
                    "{change}: not repaired and reported in {REPAIR_TIMEOUT:?} (repaired: {is_repaired}, \
                     {events} DriftRepaired Events naming it, {seen} before); AuditReady {:?}; Events: {:#?}",
                    condition(&obj, "AuditReady"),
                    h.events("tf").await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        wait_for(&h.api, "tf", REPAIR_TIMEOUT, "settled after the repair", audit_settled).await;
    }

    ct.stop_logging().name(&name).send().await.expect("StopLogging");
    assert!(!read_back(&h.aws, &name).await.expect("trail").logging, "the damage took");
    expect_repair(&h, &name, "StartLogging", 0, async |t| t.logging).await;

    let all = EventSelector::builder().read_write_type(ReadWriteType::All).include_management_events(true).build();
    ct.put_event_selectors().trail_name(&name).event_selectors(all).send().await.expect("PutEventSelectors");
    expect_repair(&h, &name, "PutSelectors", 0, async |t| {
        t.basic.is_empty() && t.advanced.len() == 1 && fields(&t.advanced[0]).len() == 3
    })
    .await;
    assert_records_only(&read_back(&h.aws, &name).await.expect("trail"), &bucket);

    // A wider advanced selector: every bucket's objects.
    let wide = AdvancedEventSelector::builder()
        .field_selectors(AdvancedFieldSelector::builder().field("eventCategory").equals("Data").build().unwrap())
        .field_selectors(
            AdvancedFieldSelector::builder().field("resources.type").equals("AWS::S3::Object").build().unwrap(),
        )
        .build()
        .unwrap();
    let seen = h.drift_events("tf", "PutSelectors").await;
    ct.put_event_selectors().trail_name(&name).advanced_event_selectors(wide).send().await.expect("widen");
    expect_repair(&h, &name, "PutSelectors", seen, async |t| {
        t.advanced.len() == 1 && fields(&t.advanced[0]).len() == 3
    })
    .await;
    assert_records_only(&read_back(&h.aws, &name).await.expect("trail"), &bucket);

    ct.update_trail().name(&name).enable_log_file_validation(false).send().await.expect("UpdateTrail");
    assert!(!read_back(&h.aws, &name).await.expect("trail").validation, "the damage took");
    expect_repair(&h, &name, "Update", 0, async |t| t.validation).await;
}

/// A log bucket that does not exist: `AuditReady` False, `DependencyNotReady`, saying what to
/// create and the exact statements CloudTrail needs (principal, actions, ARNs); `Ready` False
/// while the backend's ConfigMap is published; then the log bucket is created and the
/// backend heals at a later check, without an edit.
#[tokio::test]
async fn missing_log_bucket_is_reported_then_heals() {
    let h = harness("audit-heal").await;
    let (bucket, logs) = (unique_bucket("audit-heal"), unique_bucket("audit-heal-logs"));
    h.create("tf", spec(&bucket, json!({"cloudTrail": {"logBucket": logs, "logPrefix": "p"}}))).await;
    let obj = wait_for(&h.api, "tf", Duration::from_secs(60), "AuditReady DependencyNotReady", |o| {
        condition(o, "AuditReady").is_some_and(|(s, r, _)| s == "False" && r == "DependencyNotReady")
    })
    .await;
    let (_, _, message) = condition(&obj, "AuditReady").expect("AuditReady");
    let name = h.default_trail("tf");
    let arn = format!("arn:aws:cloudtrail:{}:{ACCOUNT}:trail/{name}", h.aws.region);
    for needle in [
        format!("the log bucket {logs} does not exist"),
        "cloudtrail.amazonaws.com".to_string(),
        "s3:GetBucketAcl".to_string(),
        "s3:PutObject".to_string(),
        format!("arn:aws:s3:::{logs}/p/AWSLogs/{ACCOUNT}/*"),
        format!("\"aws:SourceArn\":\"{arn}\""),
        "spec.audit.cloudTrail.logBucket".to_string(),
    ] {
        assert!(message.contains(&needle), "AuditReady message does not say {needle:?}: {message}");
    }
    let (ready, reason, _) = condition(&obj, "Ready").expect("Ready");
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "DependencyNotReady"), "Ready reflects the audit part");
    let published = wait_for(&h.api, "tf", Duration::from_secs(30), "BackendConfigPublished", |o| {
        condition(o, "BackendConfigPublished").is_some_and(|(s, _, _)| s == "True")
    })
    .await;
    assert!(condition(&published, "Stalled").is_some_and(|(_, r, _)| r == "DependencyNotReady"), "kstatus Stalled");
    assert!(read_back(&h.aws, &name).await.is_none(), "no trail while the log bucket is missing");
    assert_eq!(published.status.and_then(|s| s.trail_arn), None, "no status.trailArn without a trail");

    // Not a hot loop: a blocked part is looked at again at the resync interval only.
    wait_for(&h.api, "tf", Duration::from_secs(30), "the ConfigMap settled", |o| {
        condition(o, "BackendConfigPublished").is_some_and(|(_, r, _)| r == "Converged")
    })
    .await;
    let window = RESYNC * 3;
    let before = h.op.ctx.aws.calls().snapshot();
    tokio::time::sleep(window).await;
    let creates: u64 = difference(&before, &h.op.ctx.aws.calls().snapshot())
        .iter()
        .filter(|(k, _)| k.operation == "CreateTrail")
        .map(|(_, n)| n)
        .sum();
    eprintln!("missing log bucket: {creates} CreateTrail attempts in {window:?} (resync {RESYNC:?})");
    assert!((1..=4).contains(&creates), "{creates} CreateTrail attempts in {window:?}: not one per resync");

    h.log_bucket(&logs).await;
    wait_for(&h.api, "tf", REPAIR_TIMEOUT, "healed: Ready with AuditReady", audit_settled).await;
    let trail = read_back(&h.aws, &name).await.expect("the trail exists once the bucket does");
    assert!(trail.logging && trail.validation && trail.bucket == logs);
    assert_records_only(&trail, &bucket);
}

/// Another backend's trail name is a `Conflict` that does not name the owner, and the owner's
/// trail is left exactly as it was; an existing untagged trail is a `Conflict` too without
/// `adoptExisting`; a name outside the policy (its default allows `tfstate-<namespace>-*`
/// only) is a `PolicyViolation` with no AWS call for it.
#[tokio::test]
async fn trails_of_others_are_never_taken() {
    let h = harness("audit-abuse").await;
    let logs = unique_bucket("audit-abuse-logs");
    h.log_bucket(&logs).await;
    let (bucket_a, bucket_b) = (unique_bucket("audit-owner"), unique_bucket("audit-thief"));
    h.create("owner", spec(&bucket_a, json!({"cloudTrail": {"logBucket": logs}}))).await;
    wait_for(&h.api, "owner", Duration::from_secs(60), "Ready", audit_settled).await;
    let taken = h.default_trail("owner");
    let before = read_back(&h.aws, &taken).await.expect("owner's trail");

    h.create("thief", spec(&bucket_b, json!({"cloudTrail": {"logBucket": logs, "trailName": taken}}))).await;
    let thief = wait_for(&h.api, "thief", Duration::from_secs(60), "AuditReady Conflict", |o| {
        condition(o, "AuditReady").is_some_and(|(s, r, _)| s == "False" && r == "Conflict")
    })
    .await;
    let (_, _, message) = condition(&thief, "AuditReady").expect("AuditReady");
    let owner_uid = h.api.get("owner").await.expect("owner").uid().expect("uid");
    assert!(message.contains("another TerraformStateBackend"), "{message}");
    assert!(
        !message.contains(&format!("{}/owner", h.ns)) && !message.contains(&owner_uid),
        "names the owner: {message}"
    );
    tokio::time::sleep(RESYNC * 2).await;
    let after = read_back(&h.aws, &taken).await.expect("owner's trail");
    assert_records_only(&after, &bucket_a);
    assert_eq!(after.tags, before.tags, "the owner's trail tags were touched");
    assert!(after.logging && after.bucket == logs);

    // An untagged trail of the account.
    let untagged = format!("tfstate-{}.manual", h.ns);
    h.aws.cloudtrail.create_trail().name(&untagged).s3_bucket_name(&logs).send().await.expect("CreateTrail");
    let note = Tag::builder().key("team").value("security").build().unwrap();
    let untagged_arn = format!("arn:aws:cloudtrail:{}:{ACCOUNT}:trail/{untagged}", h.aws.region);
    h.aws.cloudtrail.add_tags().resource_id(&untagged_arn).tags_list(note).send().await.expect("AddTags");
    let bucket_c = unique_bucket("audit-untagged");
    h.create("squatter", spec(&bucket_c, json!({"cloudTrail": {"logBucket": logs, "trailName": untagged}}))).await;
    let squatter = wait_for(&h.api, "squatter", Duration::from_secs(60), "AuditReady Conflict", |o| {
        condition(o, "AuditReady").is_some_and(|(s, r, _)| s == "False" && r == "Conflict")
    })
    .await;
    let (_, _, message) = condition(&squatter, "AuditReady").expect("AuditReady");
    assert!(message.contains("adoptExisting"), "{message}");
    let manual = read_back(&h.aws, &untagged).await.expect("the untagged trail");
    assert!(!manual.logging && manual.advanced.is_empty(), "the untagged trail was changed");
    assert_eq!(manual.tags.get(TAG_OWNER_UID), None, "the untagged trail was tagged");

    // Outside the policy's trail names: refused before any AWS call.
    let bucket_d = unique_bucket("audit-outside");
    h.create("outside", spec(&bucket_d, json!({"cloudTrail": {"logBucket": logs, "trailName": "org-security-trail"}})))
        .await;
    let outside = wait_for(&h.api, "outside", Duration::from_secs(30), "PolicyViolation", |o| {
        condition(o, "Ready").is_some_and(|(_, r, _)| r == "PolicyViolation")
    })
    .await;
    let (_, _, message) = condition(&outside, "Ready").expect("Ready");
    assert!(message.contains("spec.audit.cloudTrail.trailName") && message.contains("tfstate-"), "{message}");
    assert!(read_back(&h.aws, "org-security-trail").await.is_none(), "a trail outside the policy was created");
}

/// The state bucket as log bucket is refused by the validate step (the schema cannot compare
/// two fields); wildcards, `$`, bad characters and bad lengths in the trail name, the log
/// bucket and the prefix are refused by the API server's schema; two separators in a row by
/// the validate step.
#[tokio::test]
async fn invalid_audit_specs_are_refused() {
    let h = harness("audit-invalid").await;
    let bucket = unique_bucket("audit-self");
    h.create("self", spec(&bucket, json!({"cloudTrail": {"logBucket": bucket}}))).await;
    let obj = wait_for(&h.api, "self", Duration::from_secs(30), "InvalidSpec", |o| {
        condition(o, "Ready").is_some_and(|(_, r, _)| r == "InvalidSpec")
    })
    .await;
    let (_, _, message) = condition(&obj, "Ready").expect("Ready");
    assert!(message.contains("spec.audit.cloudTrail.logBucket") && message.contains("state bucket"), "{message}");

    let adjacent = format!("tfstate-{}.a--b", h.ns);
    h.create(
        "adjacent",
        spec(&unique_bucket("audit-adj"), json!({"cloudTrail": {"logBucket": "some-logs", "trailName": adjacent}})),
    )
    .await;
    let obj = wait_for(&h.api, "adjacent", Duration::from_secs(30), "InvalidSpec", |o| {
        condition(o, "Ready").is_some_and(|(_, r, _)| r == "InvalidSpec")
    })
    .await;
    let (_, _, message) = condition(&obj, "Ready").expect("Ready");
    assert!(message.contains("spec.audit.cloudTrail.trailName") && message.contains("in a row"), "{message}");

    let refused = [
        json!({"logBucket": "some-logs", "trailName": "tfstate-*"}),
        json!({"logBucket": "some-logs", "trailName": "tfstate-?"}),
        json!({"logBucket": "some-logs", "trailName": "trail-${aws:username}"}),
        json!({"logBucket": "some-logs", "trailName": "-leading-dash"}),
        json!({"logBucket": "some-logs", "trailName": "ab"}),
        json!({"logBucket": "some-logs", "trailName": "tr\u{e4}il"}),
        json!({"logBucket": "logs-*"}),
        json!({"logBucket": "Logs"}),
        json!({"logBucket": "some-logs", "logPrefix": "audit/*"}),
        json!({"logBucket": "some-logs", "logPrefix": "/audit"}),
        json!({"logBucket": "some-logs", "logPrefix": "a\nb"}),
    ];
    for (i, ct) in refused.iter().enumerate() {
        let obj: TerraformStateBackend = serde_json::from_value(json!({
            "apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStateBackend",
            "metadata": {"name": format!("refused-{i}")}, "spec": spec("acme-tfstate-x", json!({"cloudTrail": ct})),
        }))
        .expect("test backend");
        match h.api.create(&PostParams::default(), &obj).await {
            Err(kube::Error::Api(e)) if e.code == 422 => {}
            other => panic!("{ct}: the API server accepted it or failed otherwise: {other:?}"),
        }
    }
}

/// Removing `spec.audit` deletes the backend's trail (and clears `status.trailArn` and
/// `AuditReady`); renaming the trail creates the new one and deletes the old; with
/// `deletionPolicy: Delete` deleting the object deletes the trail after the bucket, and the
/// log files in the log bucket stay.
#[tokio::test]
async fn trail_is_deleted_with_its_audit_spec_and_its_backend() {
    let h = harness("audit-delete").await;
    let logs = unique_bucket("audit-delete-logs");
    h.log_bucket(&logs).await;
    // A log file, as CloudTrail would have delivered one: it must survive everything below.
    let log_key = format!("AWSLogs/{ACCOUNT}/CloudTrail/{}/2026/12/01/log.json.gz", h.aws.region);
    h.aws.s3.put_object().bucket(&logs).key(&log_key).body(b"{}".to_vec().into()).send().await.expect("log file");

    let bucket = unique_bucket("audit-remove");
    h.create("tf", spec(&bucket, json!({"cloudTrail": {"logBucket": logs}}))).await;
    wait_for(&h.api, "tf", Duration::from_secs(60), "Ready", audit_settled).await;
    let first = h.default_trail("tf");
    assert!(read_back(&h.aws, &first).await.is_some());

    let renamed = format!("tfstate-{}.tf-audit", h.ns);
    patch_spec(&h.api, "tf", json!({"audit": {"cloudTrail": {"trailName": renamed}}})).await;
    let obj = wait_for(&h.api, "tf", Duration::from_secs(60), "Ready after the rename", audit_settled).await;
    assert!(obj.status.and_then(|s| s.trail_arn).is_some_and(|a| a.ends_with(&format!("/{renamed}"))));
    let deadline = tokio::time::Instant::now() + REPAIR_TIMEOUT;
    while read_back(&h.aws, &first).await.is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the old trail {first} was not deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_records_only(&read_back(&h.aws, &renamed).await.expect("the renamed trail"), &bucket);

    patch_spec(&h.api, "tf", json!({"audit": null})).await;
    let obj = wait_for(&h.api, "tf", Duration::from_secs(60), "Ready without audit", |o| {
        is_ready(o) && condition(o, "AuditReady").is_none() && o.status.as_ref().is_some_and(|s| s.trail_arn.is_none())
    })
    .await;
    assert!(read_back(&h.aws, &renamed).await.is_none(), "the trail outlived spec.audit");
    assert!(obj.status.is_some());

    // deletionPolicy Delete: the trail goes with the (empty) bucket.
    let bucket2 = unique_bucket("audit-gone");
    let mut spec2 = spec(&bucket2, json!({"cloudTrail": {"logBucket": logs}}));
    spec2["deletionPolicy"] = json!("Delete");
    h.create("gone", spec2).await;
    wait_for(&h.api, "gone", Duration::from_secs(60), "Ready", audit_settled).await;
    let trail = h.default_trail("gone");
    assert!(read_back(&h.aws, &trail).await.is_some());
    h.api.delete("gone", &DeleteParams::default()).await.expect("delete backend");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while h.api.get_opt("gone").await.expect("get").is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the backend was not deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(read_back(&h.aws, &trail).await.is_none(), "the trail outlived its backend");
    let kept = h.aws.s3.head_object().bucket(&logs).key(&log_key).send().await;
    assert!(kept.is_ok(), "the log file was deleted: {kept:?}");
    assert!(wait_ready(&h.api, "tf").await.status.is_some());
}
