//! The emulator's floor: the same number and mix of AWS operations the operator made,
//! issued straight at the emulator with full concurrency, timed (once per concurrency
//! level asked for; the fastest is the floor). Reads that answered "not found" to the
//! operator (it looks before it creates) target absent resources; everything else
//! targets a small pool of fully configured throwaway resources, and creates make fresh
//! ones.

#[path = "floor/ops.rs"]
mod ops;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tfstate_operator::aws::AwsClients;
use tfstate_operator::aws::calls::{CallKey, Outcome, difference, is_read_operation, totals};
use tfstate_operator::aws::{AwsClientFactory, CallTotals};

use crate::Result;
use ops::Op;

/// Name of the fixtures' inline role policy (the operator's).
const INLINE: &str = "tfstate-backend";
/// Fully configured resources of each kind that reads and updates spread over.
const POOL: usize = 8;

/// The throwaway resources the replay works on, and the documents it sends.
pub struct Fixtures {
    prefix: String,
    region: String,
    account: String,
    /// Names of the pool: bucket, table, role and alias `i` share name `i`.
    pool_names: Vec<String>,
    keys: Vec<(String, String)>,
    table_arns: Vec<String>,
    /// A name no resource of any kind has.
    absent: String,
    /// A well-formed key id no key has.
    absent_key_id: String,
    key_policy: String,
    trust_policy: String,
    runner_policy: String,
    tags: Vec<(String, String)>,
}

impl Fixtures {
    fn size(&self) -> usize {
        self.keys.len().max(1)
    }
    fn bucket(&self, i: usize) -> &str {
        &self.pool_names[i]
    }
    fn key(&self, i: usize) -> (&str, &str) {
        (&self.keys[i].0, &self.keys[i].1)
    }
    fn alias(&self, i: usize) -> String {
        format!("alias/{}", self.pool_names[i])
    }
    fn table(&self, i: usize) -> (&str, &str) {
        (&self.pool_names[i], &self.table_arns[i])
    }
    fn role(&self, i: usize) -> &str {
        &self.pool_names[i]
    }
    /// A name for the n-th call's fresh resource (valid as bucket, table, role, alias).
    fn fresh_name(&self, n: usize) -> String {
        format!("{}-n{n:07}", self.prefix)
    }
    fn absent_table_arn(&self) -> String {
        format!("arn:aws:dynamodb:{}:{}:table/{}", self.region, self.account, self.absent)
    }
    /// A TLS-only, encryption-enforcing bucket policy like the operator's.
    fn bucket_policy(&self, bucket: &str) -> String {
        let res = serde_json::json!([format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")]);
        serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": res,
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            {"Sid": "DenyIncorrectEncryptionHeader", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
             "Resource": format!("arn:aws:s3:::{bucket}/*"),
             "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}},
        ]})
        .to_string()
    }
}

/// One timed replay.
pub struct Replay {
    /// Calls in flight.
    pub concurrency: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Calls made (counted by the SDK interceptor, as the operator's are).
    pub made: CallTotals,
    /// Calls that failed although they should not have.
    pub unexpected_errors: u64,
    /// Where the CPU went meanwhile.
    pub cpu: crate::cpu::Usage,
}

/// What the replays measured.
pub struct Floor {
    /// The fastest replay's wall time: the floor.
    pub elapsed: Duration,
    /// Calls asked for in each replay.
    pub planned: u64,
    /// Every replay, in the order they ran.
    pub replays: Vec<Replay>,
    /// `service:Operation` of operations replayed by a stand-in.
    pub unmapped: BTreeSet<String>,
    /// The first few unexpected errors.
    pub first_errors: Vec<String>,
}

/// Sets up fixtures (untimed), then replays `mix` once per concurrency level of
/// `levels`; the floor is the fastest replay.
pub async fn measure(
    factory: &AwsClientFactory,
    region: &str,
    run: &str,
    mix: &BTreeMap<CallKey, u64>,
    levels: &[usize],
    procs: &crate::cpu::Processes,
) -> Result<Floor> {
    let c = factory.clients(region);
    let fixtures = setup(&c, run).await?;
    let mut plan = Vec::new();
    let mut unmapped = BTreeSet::new();
    for (key, count) in mix {
        let (op, exact) = Op::of(&key.service, &key.operation);
        if !exact {
            unmapped.insert(format!("{}:{}", key.service, key.operation));
        }
        let absent = exact && key.outcome != Outcome::Ok && is_read_operation(&key.operation);
        plan.extend(std::iter::repeat_n((op, absent), *count as usize));
    }
    shuffle(&mut plan);
    let mut floor =
        Floor { elapsed: Duration::MAX, planned: plan.len() as u64, replays: vec![], unmapped, first_errors: vec![] };
    let (c, f) = (&c, &fixtures);
    for (round, &concurrency) in levels.iter().enumerate() {
        let before = factory.calls().snapshot();
        let cpu_before = procs.sample();
        let started = Instant::now();
        // Call numbers name fresh resources: each round has its own range.
        let calls = plan.iter().enumerate().map(|(i, &(op, absent))| (round * 1_000_000 + i, op, absent));
        let results: Vec<(bool, Result<()>)> = futures::stream::iter(calls)
            .map(|(n, op, absent)| async move { (absent, ops::call(c, f, op, n, absent).await) })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let elapsed = started.elapsed();
        let cpu = procs.sample().since(&cpu_before);
        let made = totals(&difference(&before, &factory.calls().snapshot()));
        let unexpected: Vec<String> =
            results.into_iter().filter_map(|(absent, r)| r.err().filter(|_| !absent)).collect();
        eprintln!("bench: floor replay with {concurrency} in flight: {:.1} s", elapsed.as_secs_f64());
        floor.elapsed = floor.elapsed.min(elapsed);
        floor.first_errors.extend(unexpected.iter().take(5 - floor.first_errors.len().min(5)).cloned());
        floor.replays.push(Replay { concurrency, elapsed, made, unexpected_errors: unexpected.len() as u64, cpu });
    }
    Ok(floor)
}

/// Creates and configures the pool: KMS keys with aliases, buckets configured as the
/// operator configures them, lock tables with PITR, roles with their inline policy.
async fn setup(c: &AwsClients, run: &str) -> Result<Fixtures> {
    let id = c.sts.get_caller_identity().send().await.map_err(|e| format!("GetCallerIdentity: {e}"))?;
    let account = id.account().unwrap_or("123456789012").to_string();
    let root = format!("arn:aws:iam::{account}:root");
    let prefix = format!("flr-{run}");
    let mut f = Fixtures {
        pool_names: (0..POOL).map(|i| format!("{prefix}-p{i}")).collect(),
        absent: format!("{prefix}-absent"),
        absent_key_id: "00000000-0000-4000-8000-000000000000".into(),
        key_policy: serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "AccountAdministers", "Effect": "Allow", "Principal": {"AWS": &root}, "Action": "kms:*",
             "Resource": "*"},
            {"Sid": "RunnersUse", "Effect": "Allow", "Principal": {"AWS": &root},
             "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"], "Resource": "*"},
        ]})
        .to_string(),
        trust_policy: serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": &root}, "Action": "sts:AssumeRole"}]})
        .to_string(),
        runner_policy: serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": format!("arn:aws:s3:::{prefix}-p0")},
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
             "Resource": format!("arn:aws:s3:::{prefix}-p0/bench/terraform.tfstate")},
            {"Effect": "Allow", "Action": ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem",
             "dynamodb:DeleteItem"], "Resource": format!("arn:aws:dynamodb:*:{account}:table/{prefix}-p0")},
        ]})
        .to_string(),
        tags: vec![
            ("tfstate.dev/managed-by".into(), "tfstate-operator".into()),
            ("tfstate.dev/owner".into(), format!("bench/{prefix}")),
            ("tfstate.dev/owner-uid".into(), "00000000-0000-4000-8000-000000000001".into()),
        ],
        prefix,
        region: c.region.clone(),
        account,
        keys: vec![],
        table_arns: vec![],
    };
    let keys = futures::future::try_join_all((0..POOL).map(|_| ops::create_key(c, &f))).await?;
    f.keys = keys;
    f.table_arns =
        (0..POOL).map(|i| format!("arn:aws:dynamodb:{}:{}:table/{}", f.region, f.account, f.pool_names[i])).collect();
    let f = f;
    futures::future::try_join_all((0..POOL).map(|i| setup_one(c, &f, i)))
        .await
        .map_err(|e| format!("floor setup: {e}"))?;
    Ok(f)
}

/// One pool entry: alias, configured bucket, table with PITR, role with inline policy.
async fn setup_one(c: &AwsClients, f: &Fixtures, i: usize) -> Result<()> {
    let name = f.bucket(i).to_string();
    let (key_id, key_arn) = f.key(i);
    c.kms.create_alias().alias_name(f.alias(i)).target_key_id(key_id).send().await.map_err(|e| e.to_string())?;
    ops::create_bucket(c, &name).await?;
    for op in [
        Op::PutBucketTagging,
        Op::PutBucketVersioning,
        Op::PutBucketEncryption,
        Op::PutPublicAccessBlock,
        Op::PutBucketOwnershipControls,
        Op::PutBucketLifecycleConfiguration,
        Op::PutBucketPolicy,
        Op::EnableKeyRotation,
    ] {
        ops::call(c, f, op, i, false).await.map_err(|e| format!("{op:?}: {e}"))?;
    }
    ops::create_table(c, f, &name, key_arn).await?;
    ops::call(c, f, Op::UpdateContinuousBackups, i, false).await?;
    ops::create_role(c, f, &name).await?;
    ops::put_role_policy(c, f, &name).await
}

/// Deterministic Fisher-Yates shuffle (xorshift64), so the mix is interleaved as the
/// operator's calls are, yet every run replays the same order.
fn shuffle<T>(items: &mut [T]) {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
}
