//! The plan step: a converged observation plans nothing, each single drift plans exactly the
//! one write that repairs it, and what is not ours is never touched. Observed values are built
//! from the desired ones, with policies spelt as AWS returns them.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::*;
use crate::api::{ConditionType, TerraformStateBackendSpec};
use crate::aws::dynamodb::{TableInfo, TableSettings};
use crate::aws::iam::RoleInfo;
use crate::aws::kms::{KeyInfo, KeySettings};
use crate::aws::s3::{BucketSettings, DefaultEncryption, Lifecycle, Logging, PublicAccessBlock};
use crate::policy::{Effect, Principal, Statement};
use crate::reconcile::desired::*;
use crate::reconcile::observe::{ObservedBucket, ObservedKey, ObservedRole, ObservedTable};
use crate::reconcile::validate::{ObjectRef, OperatorDefaults, validate};

const OBJ: ObjectRef<'static> = ObjectRef { namespace: "team-payments", name: "payments-prod" };
const OPERATOR: &str = "arn:aws:iam::123456789012:role/op";
const KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const OTHER_KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/ffffffff-12ab-34cd-56ef-1234567890ab";
/// Every way in, a boundary, key admins, both lock modes and access logging.
const FULL: &str = "
region: eu-west-1
bucket: {name: acme-tfstate, accessLogging: {targetBucket: acme-logs, targetPrefix: tfstate/}}
tags: {team: payments}
encryption: {kmsKey: {create: {admins: ['arn:aws:iam::123456789012:role/admin']}}}
locking: {mode: Both}
access:
  permissionsBoundaryArn: arn:aws:iam::123456789012:policy/boundary
  trust:
    oidcProviderArn: arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC
    eksPodIdentity: true
    serviceAccounts: [{namespace: ci, name: tf}, {namespace: team-payments, name: runner}]
    awsPrincipals: ['arn:aws:iam::123456789012:role/ci', 'arn:aws:iam::210987654321:root']
";
/// IAM encodes everything but the RFC 3986 unreserved characters.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn owner() -> Owner {
    Owner { namespace: "team-payments".into(), name: "payments-prod".into(), uid: "uid-1".into() }
}

/// What a backend wants of AWS.
struct Backend {
    key: DesiredKey,
    role: DesiredRole,
    res: DesiredResources,
    /// The inline policy when the object owns every part.
    runner_policy: PolicyDocument,
    tags: Tags,
}

/// The desired backend of `FULL` with `extra` YAML merged over it (top-level keys replaced).
fn backend(extra: &str) -> Backend {
    let mut base: serde_json::Value = serde_yaml_ng::from_str(FULL).unwrap();
    let extra: serde_json::Value = serde_yaml_ng::from_str(extra).unwrap();
    for (k, v) in extra.as_object().into_iter().flatten() {
        base[k] = v.clone();
    }
    let spec: TerraformStateBackendSpec = serde_json::from_value(base).unwrap();
    let v = validate(OBJ, &spec, &OperatorDefaults::default()).expect("test spec is valid");
    let id = Identity { account_id: "123456789012".into(), partition: "aws".into(), operator_arn: OPERATOR.into() };
    let key = desired_key(&v, &id, &owner());
    let key_arn = match &key {
        DesiredKey::None => None,
        DesiredKey::Existing { arn } => Some(arn.as_str()),
        DesiredKey::Managed { .. } => Some(KEY),
    };
    let res = desired_resources(&v, &id, key_arn, None);
    let owned = Owned { bucket: true, table_arn: res.table.as_ref().map(|t| t.arn.as_str()), kms_key_arn: key_arn };
    let runner_policy = desired_runner_policy(&v, &id, &owned, v.lock_mode).expect("statements");
    Backend { role: desired_role(&v, &id, &owner()), key, res, runner_policy, tags: resource_tags(&v, &owner()) }
}

/// `doc` as S3 and KMS return it: keys re-sorted, every array reversed, no `Sid`, pretty.
fn stored(doc: &PolicyDocument) -> String {
    fn rewrite(v: Value) -> Value {
        match v {
            Value::Array(items) => Value::Array(items.into_iter().rev().map(rewrite).collect()),
            Value::Object(map) => {
                Value::Object(map.into_iter().filter(|(k, _)| k != "Sid").map(|(k, v)| (k, rewrite(v))).collect())
            }
            other => other,
        }
    }
    let text = serde_json::to_string_pretty(&rewrite(serde_json::from_str(&doc.to_json()).unwrap())).unwrap();
    assert_ne!(text, doc.to_json(), "the stored form must differ as text");
    text
}

/// `doc` as IAM returns it: stored, then URL-encoded.
fn iam(doc: &PolicyDocument) -> String {
    utf8_percent_encode(&stored(doc), RFC3986).to_string()
}

/// Tags as AWS returns them: ours plus AWS's own, which are not ours to compare.
fn aws_tags(tags: &Tags) -> Tags {
    let mut t = tags.clone();
    t.insert("aws:cloudformation:stack-name".into(), "not-ours".into());
    t
}

fn settings(b: &Backend) -> BucketSettings {
    let d = &b.res.bucket;
    BucketSettings {
        versioning_enabled: true,
        encryption: Some(match &d.kms_key_arn {
            Some(arn) => DefaultEncryption::Kms { key_id: Some(arn.clone()), bucket_key: true },
            None => DefaultEncryption::Aes256 { bucket_key: false },
        }),
        public_access_block: Some(PublicAccessBlock::ALL),
        object_ownership: Some("BucketOwnerEnforced".into()),
        lifecycle: d.lifecycle.clone(),
        policy: Some(stored(&d.policy)),
        logging: d.logging.clone(),
    }
}

fn bucket(b: &Backend, s: BucketSettings) -> ObservedBucket {
    ObservedBucket::Exists { tags: aws_tags(&b.tags), settings: Some(s) }
}

fn key_info(state: &str) -> KeyInfo {
    KeyInfo { arn: KEY.into(), key_id: "1234abcd".into(), state: state.into(), symmetric_encrypt_decrypt: true }
}

/// The managed key, converged.
fn key(b: &Backend) -> ObservedKey {
    let DesiredKey::Managed { policy, .. } = &b.key else { panic!("a managed key") };
    let settings = KeySettings { policy: Some(stored(policy)), rotation_enabled: true, tags: aws_tags(&b.tags) };
    ObservedKey::Found { info: key_info("Enabled"), has_alias: true, settings }
}

fn found(k: &mut ObservedKey) -> (&mut KeyInfo, &mut bool, &mut KeySettings) {
    let ObservedKey::Found { info, has_alias, settings } = k else { panic!("a found key") };
    (info, has_alias, settings)
}

fn role(b: &Backend) -> ObservedRole {
    let info = RoleInfo {
        arn: b.role.arn.clone(),
        trust_policy: iam(&b.role.trust),
        max_session_duration: b.role.max_session_duration,
        permissions_boundary_arn: b.role.boundary.clone(),
        tags: aws_tags(&b.tags),
    };
    ObservedRole { info, inline_policy: Some(iam(&b.runner_policy)) }
}

fn table(b: &Backend) -> ObservedTable {
    let d = b.res.table.as_ref().expect("a desired table");
    let info = TableInfo {
        arn: d.arn.clone(),
        status: "ACTIVE".into(),
        hash_key: Some(("LockID".into(), "S".into())),
        has_range_key: false,
        billing_mode: "PAY_PER_REQUEST".into(),
        sse_kms_key_arn: d.kms_key_arn.clone(),
        deletion_protection: d.deletion_protection,
    };
    ObservedTable { info, settings: TableSettings { pitr: d.pitr, tags: aws_tags(&b.tags) } }
}

fn plan_b(b: &Backend, o: &ObservedBucket, adopt: bool) -> PartPlan<BucketChange> {
    plan_bucket(&b.res.bucket, o, &b.tags, &owner(), adopt)
}
fn plan_k(b: &Backend, o: &ObservedKey, adopt: bool) -> PartPlan<KeyChange> {
    plan_key(&b.key, o, &b.tags, &owner(), adopt)
}
fn plan_r(b: &Backend, o: &ObservedRole, adopt: bool) -> PartPlan<RoleChange> {
    plan_role(&b.role, Some(o), &b.tags, &owner(), adopt)
}
fn plan_t(b: &Backend, o: &ObservedTable, adopt: bool) -> PartPlan<TableChange> {
    plan_table(b.res.table.as_ref(), Some(o), &b.tags, &owner(), adopt)
}

/// Asserts a part is blocked with `reason` and a message containing every one of `needles`.
#[track_caller]
fn assert_blocked<T: std::fmt::Debug>(plan: Result<T, Blocked>, reason: Reason, needles: &[&str]) {
    match plan {
        Err(b) => {
            assert_eq!(b.reason, reason, "{}", b.message);
            for n in needles {
                assert!(b.message.contains(n), "{:?} does not mention {n:?}", b.message);
            }
        }
        Ok(changes) => panic!("expected {reason:?}, planned {changes:?}"),
    }
}

/// Drift cases: what drifted, how, and the changes that repair it.
type Drifts<'a, O, C> = &'a [(&'a str, fn(&mut O), Vec<C>)];

/// Asserts that `base`, changed by each drift of `cases`, plans exactly the changes listed.
#[track_caller]
fn assert_drifts<O: Clone, C>(base: O, plan: impl Fn(&O) -> PartPlan<C>, cases: Drifts<'_, O, C>)
where
    C: Clone + PartialEq + std::fmt::Debug,
{
    for (what, drift, changes) in cases {
        let mut o = base.clone();
        drift(&mut o);
        assert_eq!(plan(&o), Ok(changes.clone()), "{what}");
    }
}

/// A converged backend, policies reordered and URL-encoded and `aws:` tags added by AWS,
/// plans nothing, in KMS + Both and in SSE-S3 + Lockfile (no key, no table, where logging the
/// spec does not ask for is left alone).
#[test]
fn converged_backend_plans_nothing() {
    let b = backend("");
    assert_eq!(plan_b(&b, &bucket(&b, settings(&b)), false), Ok(vec![]));
    assert_eq!(plan_k(&b, &key(&b), false), Ok(vec![]));
    assert_eq!(plan_r(&b, &role(&b), false), Ok(vec![]));
    assert_eq!(plan_inline_policy(Some(&b.runner_policy), Some(&role(&b))), vec![]);
    assert_eq!(plan_t(&b, &table(&b), false), Ok(vec![]));

    let b = backend(
        "encryption: {mode: AES256}\nlocking: {mode: Lockfile}\nbucket: {name: acme-tfstate}\n\
         access: {trust: {eksPodIdentity: true, serviceAccounts: [{namespace: ci, name: tf}]}}",
    );
    let mut s = settings(&b);
    s.logging = Some(Logging { target_bucket: "someone-elses".into(), target_prefix: String::new() });
    assert_eq!(plan_b(&b, &bucket(&b, s), false), Ok(vec![]));
    assert_eq!(plan_k(&b, &ObservedKey::NotNeeded, false), Ok(vec![]));
    assert_eq!(plan_r(&b, &role(&b), false), Ok(vec![]));
    assert_eq!(plan_inline_policy(Some(&b.runner_policy), Some(&role(&b))), vec![]);
    assert_eq!(plan_table(None, None, &b.tags, &owner(), false), Ok(vec![]));
}

/// Each single bucket drift plans exactly the one write that repairs it.
#[test]
fn each_bucket_drift_is_one_change() {
    use BucketChange::*;
    fn kms(key: &str, bucket_key: bool) -> Option<DefaultEncryption> {
        Some(DefaultEncryption::Kms { key_id: Some(key.into()), bucket_key })
    }
    fn pab(flag_off: fn(&mut PublicAccessBlock)) -> Option<PublicAccessBlock> {
        let mut p = PublicAccessBlock::ALL;
        flag_off(&mut p);
        Some(p)
    }
    let cases: Drifts<BucketSettings, BucketChange> = &[
        ("versioning suspended", |s| s.versioning_enabled = false, vec![EnableVersioning]),
        ("another key", |s| s.encryption = kms(OTHER_KEY, true), vec![PutEncryption]),
        ("AES256", |s| s.encryption = Some(DefaultEncryption::Aes256 { bucket_key: true }), vec![PutEncryption]),
        ("bucket key off", |s| s.encryption = kms(KEY, false), vec![PutEncryption]),
        ("DSSE-KMS", |s| s.encryption = Some(DefaultEncryption::Other("aws:kms:dsse".into())), vec![PutEncryption]),
        ("no encryption", |s| s.encryption = None, vec![PutEncryption]),
        ("no public access block", |s| s.public_access_block = None, vec![PutPublicAccessBlock]),
        ("PAB 1", |s| s.public_access_block = pab(|p| p.block_public_acls = false), vec![PutPublicAccessBlock]),
        ("PAB 2", |s| s.public_access_block = pab(|p| p.ignore_public_acls = false), vec![PutPublicAccessBlock]),
        ("PAB 3", |s| s.public_access_block = pab(|p| p.block_public_policy = false), vec![PutPublicAccessBlock]),
        ("PAB 4", |s| s.public_access_block = pab(|p| p.restrict_public_buckets = false), vec![PutPublicAccessBlock]),
        ("ACLs enabled", |s| s.object_ownership = Some("ObjectWriter".into()), vec![EnforceBucketOwner]),
        ("noncurrent days", |s| s.lifecycle[0].noncurrent_days = Some(30), vec![PutLifecycle]),
        ("rule disabled", |s| s.lifecycle[0].enabled = false, vec![PutLifecycle]),
        (
            "extra rule",
            |s| s.lifecycle.push(Lifecycle { id: "a".into(), ..s.lifecycle[0].clone() }),
            vec![PutLifecycle],
        ),
        ("no rules", |s| s.lifecycle.clear(), vec![PutLifecycle]),
        ("policy deleted", |s| s.policy = None, vec![PutPolicy]),
        ("policy unreadable", |s| s.policy = Some("{not json".into()), vec![PutPolicy]),
        ("logging prefix", |s| s.logging.iter_mut().for_each(|l| l.target_prefix = "x/".into()), vec![PutLogging]),
        ("logging off", |s| s.logging = None, vec![PutLogging]),
    ];
    let b = backend("");
    assert_drifts(settings(&b), |s| plan_b(&b, &bucket(&b, s.clone()), false), cases);
    // Weaker: the policy without its DenyWrongKmsKey statement.
    let mut weaker = b.res.bucket.policy.clone();
    weaker.statements.retain(|st| st.sid.as_deref() != Some("DenyWrongKmsKey"));
    let mut s = settings(&b);
    s.policy = Some(stored(&weaker));
    assert_eq!(plan_b(&b, &bucket(&b, s), false), Ok(vec![PutPolicy]));
    let mut tags = b.tags.clone();
    tags.remove("team");
    let o = ObservedBucket::Exists { tags, settings: Some(settings(&b)) };
    assert_eq!(plan_b(&b, &o, false), Ok(vec![PutTags]));
}

/// A missing bucket is created with every setting; logging only when asked for.
#[test]
fn missing_bucket_is_created() {
    let mut all = vec![BucketChange::Create];
    all.extend(super::bucket::AFTER_CREATE);
    assert_eq!(plan_b(&backend(""), &ObservedBucket::Missing, false), Ok(all.clone()));
    all.retain(|c| *c != BucketChange::PutLogging);
    assert_eq!(plan_b(&backend("bucket: {name: acme-tfstate}"), &ObservedBucket::Missing, false), Ok(all));
}

/// Each single drift of the managed key plans exactly its repair.
#[test]
fn each_key_drift_is_its_repair() {
    use KeyChange::*;
    const DEFAULT_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"kms:*","Resource":"*"}]}"#;
    let cases: Drifts<ObservedKey, KeyChange> = &[
        ("rotation off", |k| found(k).2.rotation_enabled = false, vec![EnableRotation]),
        ("default policy", |k| found(k).2.policy = Some(DEFAULT_POLICY.into()), vec![PutPolicy]),
        ("policy unread", |k| found(k).2.policy = None, vec![PutPolicy]),
        ("tag changed", |k| drop(found(k).2.tags.insert("team".into(), "other".into())), vec![SyncTags]),
        ("pending deletion", |k| found(k).0.state = "PendingDeletion".into(), vec![CancelDeletion, Enable]),
        ("disabled", |k| found(k).0.state = "Disabled".into(), vec![Enable]),
        ("alias deleted", |k| *found(k).1 = false, vec![SetAlias]),
    ];
    let b = backend("");
    assert_drifts(key(&b), |k| plan_k(&b, k, false), cases);
    assert_eq!(plan_k(&b, &ObservedKey::Missing, false), Ok(vec![Create]));
}

/// An existing key is checked, never changed: missing, disabled or asymmetric blocks the part.
#[test]
fn existing_key_must_be_usable() {
    let b = backend(&format!("encryption: {{kmsKey: {{existingKeyArn: '{KEY}'}}}}"));
    let blocked = |info: Option<KeyInfo>, needles: &[&str]| {
        assert_blocked(
            plan_k(&b, &ObservedKey::Existing { info, tags: None }, false),
            Reason::DependencyNotReady,
            needles,
        );
    };
    blocked(None, &[KEY, "existingKeyArn"]);
    blocked(Some(key_info("Disabled")), &["Disabled"]);
    blocked(Some(key_info("PendingDeletion")), &["PendingDeletion"]);
    blocked(Some(KeyInfo { symmetric_encrypt_decrypt: false, ..key_info("Enabled") }), &["symmetric"]);
    assert_eq!(plan_k(&b, &ObservedKey::Existing { info: Some(key_info("Enabled")), tags: None }, false), Ok(vec![]));
    // A key of the platform team (untagged) or of this very object may be used...
    for tags in [Tags::new(), ownership_tags(&owner())] {
        let o = ObservedKey::Existing { info: Some(key_info("Enabled")), tags: Some(tags) };
        assert_eq!(plan_k(&b, &o, false), Ok(vec![]));
    }
    // ...another backend's managed key may not (its runners could decrypt that state).
    let theirs = Owner { uid: "other-uid".into(), ..owner() };
    let o = ObservedKey::Existing { info: Some(key_info("Enabled")), tags: Some(ownership_tags(&theirs)) };
    assert_blocked(plan_k(&b, &o, false), Reason::Conflict, &["another TerraformStateBackend"]);
}

/// Each single drift of the role or its inline policy plans exactly its repair.
#[test]
fn each_role_drift_is_one_change() {
    use RoleChange::*;
    let cases: Drifts<ObservedRole, RoleChange> = &[
        ("session length", |r| r.info.max_session_duration = 43200, vec![UpdateMaxSession]),
        ("boundary to set", |r| r.info.permissions_boundary_arn = None, vec![SetBoundary]),
        ("tag added", |r| drop(r.info.tags.insert("extra".into(), "x".into())), vec![SyncTags]),
    ];
    let b = backend("");
    assert_drifts(role(&b), |r| plan_r(&b, r, false), cases);
    // A trust widened to another account.
    let mut wider = b.role.trust.clone();
    let extra = Statement::new("X", Effect::Allow).principal(Principal::aws(["999999999999"]));
    wider.statements.push(extra.actions(["sts:AssumeRole"]));
    let mut r = role(&b);
    r.info.trust_policy = iam(&wider);
    assert_eq!(plan_r(&b, &r, false), Ok(vec![UpdateTrust]));
    // A boundary the spec does not ask for (any more) is removed.
    let unbounded = backend("access: {trust: {awsPrincipals: ['arn:aws:iam::123456789012:role/ci']}}");
    let mut r = role(&unbounded);
    r.info.permissions_boundary_arn = Some("arn:aws:iam::123456789012:policy/boundary".into());
    assert_eq!(plan_r(&unbounded, &r, false), Ok(vec![SetBoundary]));
    assert_eq!(plan_role(&b.role, None, &b.tags, &owner(), false), Ok(vec![Create]));

    let mut r = role(&b);
    r.inline_policy = None;
    assert_eq!(plan_inline_policy(Some(&b.runner_policy), Some(&r)), vec![PutInlinePolicy]);
    // The policy of a DynamoDB-only backend lacks the lock file statement.
    r.inline_policy = Some(iam(&backend("locking: {mode: DynamoDB}").runner_policy));
    assert_eq!(plan_inline_policy(Some(&b.runner_policy), Some(&r)), vec![PutInlinePolicy]);
    assert_eq!(plan_inline_policy(Some(&b.runner_policy), None), vec![PutInlinePolicy]);
    // Nothing owned any more (every part a Conflict): the grants granted earlier go.
    assert_eq!(plan_inline_policy(None, Some(&role(&b))), vec![DeleteInlinePolicy]);
    r.inline_policy = None;
    assert_eq!(plan_inline_policy(None, Some(&r)), vec![]);
}

/// Each single table drift plans its repair; the table settings go into one UpdateTable.
#[test]
fn each_table_drift_is_its_repair() {
    use TableChange::*;
    fn up(dp: Option<bool>, sse: Option<&str>, on_demand: bool) -> TableChange {
        Update { deletion_protection: dp, sse_key: sse.map(|k| Some(k.into())), on_demand }
    }
    let cases: Drifts<ObservedTable, TableChange> = &[
        ("deletion protection off", |t| t.info.deletion_protection = false, vec![up(Some(true), None, false)]),
        ("another key", |t| t.info.sse_kms_key_arn = Some(OTHER_KEY.into()), vec![up(None, Some(KEY), false)]),
        ("AWS owned key", |t| t.info.sse_kms_key_arn = None, vec![up(None, Some(KEY), false)]),
        ("provisioned", |t| t.info.billing_mode = "PROVISIONED".into(), vec![up(None, None, true)]),
        (
            "two at once",
            |t| (t.info.billing_mode, t.info.deletion_protection) = ("P".into(), false),
            vec![up(Some(true), None, true)],
        ),
        ("PITR off", |t| t.settings.pitr = false, vec![SetPitr(true)]),
        ("tag removed", |t| drop(t.settings.tags.remove("team")), vec![SyncTags]),
    ];
    let b = backend("");
    assert_drifts(table(&b), |t| plan_t(&b, t, false), cases);
    let mut t = table(&b);
    t.info.status = "UPDATING".into();
    t.settings.pitr = false;
    assert_eq!(plan_t(&b, &t, false), Ok(vec![WaitUntilActive]));
    let missing = plan_table(b.res.table.as_ref(), None, &b.tags, &owner(), false);
    assert_eq!(missing, Ok(vec![Create, SetPitr(true)]));
    // No table wanted (Lockfile): an existing one is left alone.
    assert_eq!(plan_table(None, Some(&t), &b.tags, &owner(), false), Ok(vec![]));
}

/// A table whose key schema Terraform cannot lock with is someone else's: Conflict.
#[test]
fn table_with_wrong_key_schema_is_a_conflict() {
    let b = backend("");
    for hash_key in [None, Some(("id".into(), "S".into())), Some(("LockID".into(), "N".into()))] {
        let mut t = table(&b);
        t.info.hash_key = hash_key;
        assert_blocked(plan_t(&b, &t, false), Reason::Conflict, &["LockID", "acme-tfstate-lock"]);
    }
    let mut t = table(&b);
    t.info.has_range_key = true;
    assert_blocked(plan_t(&b, &t, false), Reason::Conflict, &["range key"]);
}

/// Two objects racing for the same names: a part that is not ours yet (to be created or
/// adopted) is taken only once the part before it is ours (a lost bucket means no lock
/// table); one that is ours is still repaired whoever owns the part before; a plan already
/// blocked keeps its reason; while the part before is not confirmed yet, the wait is not
/// permanent (no Stalled, no Warning).
#[test]
fn a_part_is_taken_only_once_the_part_before_it_is_ours() {
    let b = backend("");
    let create = || plan_table(b.res.table.as_ref(), None, &b.tags, &owner(), false);
    let what = "DynamoDB table acme-tfstate-lock";
    let bucket = |claim| Before { what: "S3 bucket acme-tfstate", claim, condition: ConditionType::BucketReady };
    assert_eq!(in_claim_order(create(), what, false, bucket(Claim::Ours)), create(), "held back, the bucket ours");
    assert_blocked(
        in_claim_order(create(), what, false, bucket(Claim::NotOurs)),
        Reason::DependencyNotReady,
        &["DynamoDB table acme-tfstate-lock waits for S3 bucket acme-tfstate (see BucketReady)"],
    );
    let pending = in_claim_order(create(), what, false, bucket(Claim::Pending));
    assert_blocked(pending.clone(), Reason::Creating, &["confirmed to be this backend's", "BucketReady"]);
    assert!(!pending.unwrap_err().reason.is_permanent());
    // An untagged table of the name, to be adopted: taken over only after the bucket too.
    let mut untagged = table(&b);
    untagged.settings.tags = Tags::new();
    let adopt = plan_table(b.res.table.as_ref(), Some(&untagged), &b.tags, &owner(), true);
    assert_eq!(adopt, Ok(vec![TableChange::SyncTags]));
    assert_blocked(in_claim_order(adopt, what, false, bucket(Claim::NotOurs)), Reason::DependencyNotReady, &[]);
    let repairs = Ok(vec![TableChange::SetPitr(true), TableChange::SyncTags]);
    for claim in [Claim::NotOurs, Claim::Pending] {
        assert_eq!(in_claim_order(repairs.clone(), what, true, bucket(claim)), repairs, "ours: repaired");
    }
    let conflict: PartPlan<TableChange> =
        Err(Blocked { reason: Reason::Conflict, message: "managed by another TerraformStateBackend".into() });
    assert_eq!(in_claim_order(conflict.clone(), what, false, bucket(Claim::NotOurs)), conflict);
    let new_bucket = plan_bucket(&b.res.bucket, &ObservedBucket::Missing, &b.tags, &owner(), false);
    let role = Before { what: "IAM role r", claim: Claim::NotOurs, condition: ConditionType::RoleReady };
    assert_blocked(
        in_claim_order(new_bucket, "S3 bucket acme-tfstate", false, role),
        Reason::DependencyNotReady,
        &["S3 bucket acme-tfstate waits for IAM role r (see RoleReady)"],
    );
}

/// The four parts, converged but for their tags, planned; changes as Debug text.
fn plan_tagged(b: &Backend, tags: &Tags, adopt: bool) -> [Result<String, Blocked>; 4] {
    fn text<C: std::fmt::Debug>(plan: PartPlan<C>) -> Result<String, Blocked> {
        plan.map(|changes| format!("{changes:?}"))
    }
    let (mut k, mut r, mut t) = (key(b), role(b), table(b));
    found(&mut k).2.tags = tags.clone();
    (r.info.tags, t.settings.tags) = (tags.clone(), tags.clone());
    [
        text(plan_b(b, &ObservedBucket::Exists { tags: tags.clone(), settings: Some(self::settings(b)) }, adopt)),
        text(plan_k(b, &k, adopt)),
        text(plan_r(b, &r, adopt)),
        text(plan_t(b, &t, adopt)),
    ]
}

/// Resources owned by another object are a Conflict, even with adoption on, and the message
/// never names the owner (another tenant's namespace and name); a bucket name taken in
/// another account is a Conflict too.
#[test]
fn resources_of_another_owner_are_untouched() {
    let b = backend("");
    let mut theirs = b.tags.clone();
    theirs.insert(TAG_OWNER.into(), "team-x/other".into());
    theirs.insert(TAG_OWNER_UID.into(), "uid-2".into());
    for adopt in [false, true] {
        for plan in plan_tagged(&b, &theirs, adopt) {
            assert_blocked(plan.clone(), Reason::Conflict, &["another TerraformStateBackend"]);
            let message = plan.expect_err("blocked").message;
            assert!(!message.contains("team-x") && !message.contains("uid-2"), "leaks the owner: {message}");
        }
    }
    assert_blocked(plan_b(&b, &ObservedBucket::OtherAccount, true), Reason::Conflict, &["another AWS account"]);
}

/// Untagged resources are a Conflict pointing at adoptExisting; adopted, they are tagged.
#[test]
fn untagged_resources_need_adopt_existing() {
    let b = backend("");
    let untagged = Tags::from([("aws:createdBy".into(), "console".into())]);
    for plan in plan_tagged(&b, &untagged, false) {
        assert_blocked(plan, Reason::Conflict, &["not managed by tfstate-operator", "spec.adoptExisting"]);
    }
    let adopted = plan_tagged(&b, &untagged, true).map(|p| p.expect("adoptable"));
    assert_eq!(adopted, ["[Adopt]", "[SyncTags]", "[SyncTags]", "[SyncTags]"]);
}

/// Adopting a bucket or table is a claim first: only the tags, whatever else differs. Its
/// settings are repaired once a later pass reads the tags back as this object's (another
/// object adopting it at the same moment may have written its tags last).
#[test]
fn an_adopted_bucket_or_table_gets_its_settings_only_once_its_tags_read_back() {
    let b = backend("");
    let mut drifted = settings(&b);
    drifted.versioning_enabled = false;
    drifted.policy = None;
    let untagged = ObservedBucket::Exists { tags: Tags::new(), settings: Some(drifted.clone()) };
    assert_eq!(plan_b(&b, &untagged, true), Ok(vec![BucketChange::Adopt]));
    let claimed = ObservedBucket::Exists { tags: aws_tags(&b.tags), settings: Some(drifted) };
    assert_eq!(plan_b(&b, &claimed, true), Ok(vec![BucketChange::EnableVersioning, BucketChange::PutPolicy]));

    let mut t = table(&b);
    t.settings.pitr = !t.settings.pitr;
    t.info.billing_mode = "PROVISIONED".into();
    let tagged = t.clone();
    t.settings.tags = Tags::new();
    assert_eq!(plan_t(&b, &t, true), Ok(vec![TableChange::SyncTags]));
    let repairs = plan_t(&b, &tagged, true).expect("ours");
    assert!(repairs.contains(&TableChange::SetPitr(!tagged.settings.pitr)) && repairs.len() == 2, "{repairs:?}");
    // A table in the wrong shape is refused before anything is claimed.
    t.info.has_range_key = true;
    assert_blocked(plan_t(&b, &t, true), Reason::Conflict, &["LockID"]);
}

mod replication {
    use crate::aws::s3::{ReplicationRuleSettings, ReplicationSettings};
    use crate::reconcile::plan::{ReplicationChange, plan_replication};

    fn config() -> ReplicationSettings {
        ReplicationSettings {
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            rules: vec![ReplicationRuleSettings {
                id: "tfstate-operator".into(),
                priority: Some(1),
                enabled: true,
                filter_prefix: Some(String::new()),
                delete_markers: false,
                sse_kms_objects: true,
                destination_bucket_arn: "arn:aws:s3:::replica".into(),
                replica_kms_key_id: Some("arn:aws:kms:eu-central-1:123456789012:key/k".into()),
                replication_time: false,
                metrics: false,
            }],
        }
    }

    /// Converged plans nothing; every difference (KMS objects deselected, delete markers
    /// turned on, another role, an extra rule) is put back; a removed spec deletes it.
    #[test]
    fn replication_configuration_plan() {
        assert!(plan_replication(Some(&config()), Some(&config())).is_empty());
        assert!(plan_replication(None, None).is_empty());
        assert_eq!(plan_replication(Some(&config()), None), [ReplicationChange::PutConfiguration]);
        assert_eq!(plan_replication(None, Some(&config())), [ReplicationChange::DeleteConfiguration]);
        let drifts: [fn(&mut ReplicationSettings); 4] = [
            |c| c.rules[0].sse_kms_objects = false,
            |c| c.rules[0].delete_markers = true,
            |c| c.role_arn = "arn:aws:iam::123456789012:role/other".into(),
            |c| {
                let mut extra = c.rules[0].clone();
                extra.id = "zz-extra".into();
                c.rules.push(extra);
            },
        ];
        for drift in drifts {
            let mut observed = config();
            drift(&mut observed);
            assert_eq!(plan_replication(Some(&config()), Some(&observed)), [ReplicationChange::PutConfiguration]);
        }
    }
}

/// Adoption of what another backend's status records is refused: only an adoption (the
/// claim alone), and only when another records it; every other plan passes unchanged.
#[test]
fn adopting_what_another_backend_records_is_a_conflict() {
    let adopt = || Ok(vec![BucketChange::Adopt]);
    assert_eq!(refuse_recorded_adoption(adopt(), "S3 bucket acme", false), adopt(), "nobody records it");
    assert_blocked(
        refuse_recorded_adoption(adopt(), "S3 bucket acme", true),
        Reason::Conflict,
        &["S3 bucket acme", "records it as its state or replica bucket"],
    );
    let settings = || Ok(vec![BucketChange::EnableVersioning]);
    assert_eq!(refuse_recorded_adoption(settings(), "S3 bucket acme", true), settings(), "ours: not an adoption");

    let claim = || Ok(vec![TableChange::SyncTags]);
    assert_eq!(refuse_recorded_table_adoption(claim(), "locks", false, false), claim(), "nobody records it");
    assert_blocked(
        refuse_recorded_table_adoption(claim(), "locks", false, true),
        Reason::Conflict,
        &["DynamoDB table locks", "records it as its lock table"],
    );
    // Our own table with drifted tags is repaired, whatever another status says.
    assert_eq!(refuse_recorded_table_adoption(claim(), "locks", true, true), claim());
}
