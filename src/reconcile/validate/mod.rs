//! Step 1, pure: re-check the whole spec, including what the CRD schema cannot express,
//! and resolve every derived default. Returns every problem at once, each with its field
//! path and a message that says what to fix. Nothing here talks to AWS or Kubernetes, so
//! an invalid spec never costs an AWS call.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use crate::api::{EncryptionMode, TerraformStateBackendSpec, patterns};

pub use super::valid::{AccessLogging, Audit, Encryption, LockTable, Replication, Role, ValidSpec};
pub use kept::{check_kept_names, own_bucket};
pub use replication::{REPLICA_SUFFIX, REPLICATION_ROLE_SUFFIX};

mod audit;
mod kept;
mod keys;
mod replication;
mod role;

use audit::resolve_audit;
use keys::resolve_encryption;
use replication::resolve_replication;
use role::resolve_role;

/// Prefix of the ownership tags; user tags may not use it.
pub const RESERVED_TAG_PREFIX: &str = "tfstate.dev/";
/// Tags the operator adds to every resource (managed-by, owner, owner UID).
pub const OWNERSHIP_TAG_COUNT: usize = 3;
/// The lowest tag limit among S3 buckets, KMS keys, DynamoDB tables and IAM roles.
const AWS_MAX_TAGS: usize = 50;

/// Which object is being validated: derived names are built from it.
#[derive(Clone, Copy, Debug)]
pub struct ObjectRef<'a> {
    /// The object's namespace.
    pub namespace: &'a str,
    /// The object's name.
    pub name: &'a str,
}

/// Operator-wide settings that fill in what a spec leaves out.
#[derive(Clone, Debug, Default)]
pub struct OperatorDefaults {
    /// `--default-region`.
    pub region: Option<String>,
}

/// One problem in a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `spec.bucket.name`.
    pub path: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The validate step's error: every problem found in the spec.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidationError {
    /// The spec is invalid; nothing may be done in AWS until it is fixed.
    #[error("invalid spec: {}", join(.0))]
    InvalidSpec(Vec<FieldError>),
}

fn join(errors: &[FieldError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("patterns are constants covered by tests")
}

static REGION: LazyLock<Regex> = LazyLock::new(|| re(patterns::REGION));
static BUCKET: LazyLock<Regex> = LazyLock::new(|| re(patterns::BUCKET_NAME));
static IPV4: LazyLock<Regex> = LazyLock::new(|| re(r"^\d+\.\d+\.\d+\.\d+$"));
static KMS_KEY_ARN: LazyLock<Regex> = LazyLock::new(|| re(patterns::KMS_KEY_ARN));
static KMS_ALIAS: LazyLock<Regex> = LazyLock::new(|| re(patterns::KMS_ALIAS));
static TABLE: LazyLock<Regex> = LazyLock::new(|| re(patterns::TABLE_NAME));
static ROLE: LazyLock<Regex> = LazyLock::new(|| re(patterns::ROLE_NAME));
static POLICY_ARN: LazyLock<Regex> = LazyLock::new(|| re(patterns::POLICY_ARN));
static OIDC_ARN: LazyLock<Regex> = LazyLock::new(|| re(patterns::OIDC_PROVIDER_ARN));
static PRINCIPAL_ARN: LazyLock<Regex> = LazyLock::new(|| re(patterns::PRINCIPAL_ARN));
static DNS_LABEL: LazyLock<Regex> = LazyLock::new(|| re(patterns::DNS_LABEL));
static DNS_SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| re(patterns::DNS_SUBDOMAIN));
static KEY_CHAR: LazyLock<Regex> = LazyLock::new(|| re(patterns::OBJECT_KEY_CHAR));
static TRAIL: LazyLock<Regex> = LazyLock::new(|| re(patterns::TRAIL_NAME));
static TAG_CHARS: LazyLock<Regex> = LazyLock::new(|| re(r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$"));

/// Collects every problem instead of stopping at the first.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { path: path.into(), message: message.into() });
    }

    /// Values written into a policy document must be literal (see [`patterns::non_literal`]):
    /// reports the first character that is not. Returns whether `value` is literal.
    fn literal(&mut self, path: impl Into<String>, value: &str) -> bool {
        let Some((c, why)) = patterns::non_literal(value) else { return true };
        self.add(
            path,
            format!(
                "{value:?} contains {c:?}, {why}: this value is written into the backend's IAM or KMS policies, where it must be literal; remove the character"
            ),
        );
        false
    }
}

/// Validates `spec` of the object `obj` and resolves its defaults.
pub fn validate(
    obj: ObjectRef<'_>,
    spec: &TerraformStateBackendSpec,
    defaults: &OperatorDefaults,
) -> Result<ValidSpec, ValidationError> {
    let mut p = Problems::default();

    let region = match spec.region.as_ref().or(defaults.region.as_ref()) {
        Some(r) => {
            if p.literal("spec.region", r) && !REGION.is_match(r) {
                p.add("spec.region", format!("{r:?} is not an AWS region name; use one like \"eu-west-1\""));
            }
            r.clone()
        }
        None => {
            p.add("spec.region", "no region: set spec.region, or start the operator with --default-region");
            String::new()
        }
    };

    check_bucket_name(&mut p, "spec.bucket.name", &spec.bucket.name);
    if spec.bucket.noncurrent_version_expiration_days < 0 {
        p.add(
            "spec.bucket.noncurrentVersionExpirationDays",
            "must be 0 (keep old versions forever) or a positive number of days",
        );
    }
    let access_logging = spec.bucket.access_logging.as_ref().map(|l| {
        let path = "spec.bucket.accessLogging.targetBucket";
        check_bucket_name(&mut p, path, &l.target_bucket);
        if l.target_bucket == spec.bucket.name {
            p.add(path, "must not be the state bucket itself (logs would log themselves); name a separate log bucket");
        }
        AccessLogging {
            target_bucket: l.target_bucket.clone(),
            target_prefix: l.target_prefix.clone().unwrap_or_default(),
        }
    });

    let state_key =
        spec.state_key.clone().unwrap_or_else(|| format!("{}/{}/terraform.tfstate", obj.namespace, obj.name));
    check_object_key(&mut p, "spec.stateKey", &state_key, 1024);
    if state_key.ends_with(".tflock") {
        p.add("spec.stateKey", "must not end with \".tflock\": Terraform uses \"<key>.tflock\" as the lock file");
    }
    if state_key.ends_with("-md5") {
        // Its DynamoDB lock item would be named like Terraform's state digest of another key
        // (`<bucket>/<key>-md5`), which is not a lock and must never be read or broken as one.
        p.add(
            "spec.stateKey",
            "must not end with \"-md5\": Terraform names its state digest items \"<bucket>/<key>-md5\"",
        );
    }
    if let Some(prefix) = &spec.workspace_key_prefix {
        check_object_key(&mut p, "spec.workspaceKeyPrefix", prefix, 512);
    }

    let encryption = resolve_encryption(&mut p, obj, spec, &region);
    let lock_table = resolve_lock_table(&mut p, spec);
    let stale_after = super::locks::parse_stale_after(&spec.locking.stale_after)
        .map_err(|e| p.add("spec.locking.staleAfter", e))
        .unwrap_or_default();
    let role = resolve_role(&mut p, obj, spec);
    check_tags(&mut p, &spec.tags);
    let audit = resolve_audit(&mut p, obj, spec);

    check_open_tofu_encryption(&mut p, spec);

    let config_map_name = spec.output.config_map_name.clone().unwrap_or_else(|| format!("{}-backend", obj.name));
    check_derived(
        &mut p,
        "spec.output.configMapName",
        spec.output.config_map_name.is_none(),
        &config_map_name,
        253,
        DNS_SUBDOMAIN.is_match(&config_map_name),
        "a DNS subdomain name (lowercase letters, digits, '-' and '.')",
    );

    let replication = resolve_replication(&mut p, obj, spec, &region, &encryption, &role.name);

    if !p.0.is_empty() {
        return Err(ValidationError::InvalidSpec(p.0));
    }
    Ok(ValidSpec {
        region,
        bucket: spec.bucket.name.clone(),
        noncurrent_version_expiration_days: Some(spec.bucket.noncurrent_version_expiration_days).filter(|d| *d > 0),
        access_logging,
        state_key,
        workspace_key_prefix: spec.workspace_key_prefix.clone(),
        encryption,
        lock_mode: spec.locking.mode,
        lock_table,
        role,
        deletion_policy: spec.deletion_policy,
        adopt_existing: spec.adopt_existing,
        tags: spec.tags.clone(),
        config_map_name,
        render_assume_role: spec.output.assume_role,
        open_tofu_encryption: spec.output.open_tofu_encryption,
        audit,
        stale_after,
        replication,
    })
}

/// S3's bucket naming rules, beyond what the schema's pattern says.
fn check_bucket_name(p: &mut Problems, path: &str, name: &str) {
    let fix = "bucket names are 3-63 characters of lowercase letters, digits, '.' and '-', starting and ending with a letter or digit";
    if !p.literal(path, name) {
        return;
    }
    if !(3..=63).contains(&name.len()) || !BUCKET.is_match(name) {
        p.add(path, format!("{name:?} is not a valid S3 bucket name: {fix}"));
    } else if name.contains("..") {
        p.add(path, format!("{name:?} has two adjacent dots, which S3 forbids"));
    } else if IPV4.is_match(name) {
        p.add(path, format!("{name:?} looks like an IP address, which S3 forbids as a bucket name"));
    } else if let Some(bad) = ["xn--", "sthree-", "amzn-s3-demo-"].iter().find(|x| name.starts_with(*x)) {
        p.add(path, format!("{name:?} starts with {bad:?}, a prefix S3 reserves"));
    } else if let Some(bad) =
        ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"].iter().find(|x| name.ends_with(*x))
    {
        p.add(path, format!("{name:?} ends with {bad:?}, a suffix S3 reserves"));
    }
}

/// Terraform's rules for `key` and `workspace_key_prefix`, and the characters of
/// [`patterns::OBJECT_KEY`]: both end up in the runner role's policy.
fn check_object_key(p: &mut Problems, path: &str, key: &str, max: usize) {
    if key.is_empty() || key.len() > max {
        p.add(path, format!("must be 1-{max} bytes long"));
    } else if key.starts_with('/') || key.ends_with('/') {
        p.add(path, format!("{key:?} must not start or end with '/' (Terraform refuses it)"));
    } else if key.contains("//") {
        p.add(path, format!("{key:?} must not contain \"//\" (Terraform refuses it)"));
    }
    if p.literal(path, key)
        && let Some(c) = key.chars().find(|c| !KEY_CHAR.is_match(c.encode_utf8(&mut [0; 4])))
    {
        p.add(
            path,
            format!(
                "{key:?} contains {c:?}, which S3 advises against in keys: keys may hold {} only",
                patterns::OBJECT_KEY_CHARS
            ),
        );
    }
}

/// A derived default name must satisfy AWS's rules too; if it does not, the user has to
/// pick the name explicitly.
fn check_derived(p: &mut Problems, path: &str, derived: bool, value: &str, max: usize, chars_ok: bool, rule: &str) {
    let what = if derived {
        format!("the default {value:?} (derived from the object's namespace and name)")
    } else {
        format!("{value:?}")
    };
    let hint = if derived { format!("; set {path} explicitly") } else { String::new() };
    if value.len() > max {
        p.add(path, format!("{what} is {} characters long, more than the {max} allowed{hint}", value.len()));
    } else if !chars_ok {
        p.add(path, format!("{what} is not {rule}{hint}"));
    }
}

/// OpenTofu's `aws_kms` key provider needs a KMS key: with SSE-S3 there is none to name.
fn check_open_tofu_encryption(p: &mut Problems, spec: &TerraformStateBackendSpec) {
    if spec.output.open_tofu_encryption && spec.encryption.mode == EncryptionMode::Aes256 {
        p.add(
            "spec.output.openTofuEncryption",
            "OpenTofu's client-side encryption uses the backend's KMS key (aws_kms key provider), and encryption \
             mode AES256 has none: set spec.encryption.mode to KMS (a created key, or an existing one whose key \
             policy allows the runner role kms:GenerateDataKey and kms:Decrypt directly), or turn \
             openTofuEncryption off",
        );
    }
    // The replica's copies are encrypted by OpenTofu under the state key, in the backend's
    // region: in an outage of that region (what the replica is for) they cannot be decrypted,
    // so `backend-dr.tfbackend` would serve state nobody can read.
    if spec.output.open_tofu_encryption && spec.replication.is_some() {
        p.add(
            "spec.output.openTofuEncryption",
            "cannot be combined with spec.replication: OpenTofu encrypts the state with the backend's KMS key, \
             in the backend's region, so in an outage of that region the replica's copies could not be \
             decrypted and backend-dr.tfbackend would serve unreadable state; keep the replica (S3 encrypts it \
             with a key in the replica's region) or OpenTofu's encryption, not both",
        );
    }
}

/// Whether DynamoDB accepts `name` as a table name: 3-255 letters, digits, `_`, `-`, `.`.
pub fn is_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len()) && TABLE.is_match(name)
}

/// The lock table's name when `spec.locking.table.name` is not set: `<bucket>-lock`.
pub fn default_lock_table(bucket: &str) -> String {
    format!("{bucket}-lock")
}

fn resolve_lock_table(p: &mut Problems, spec: &TerraformStateBackendSpec) -> Option<LockTable> {
    let t = &spec.locking.table;
    if !spec.locking.mode.uses_table() {
        if t.name.is_some() {
            p.add(
                "spec.locking.table.name",
                "a lock table is only used with locking mode DynamoDB or Both: remove the name or change the mode",
            );
        }
        return None;
    }
    let name = t.name.clone().unwrap_or_else(|| default_lock_table(&spec.bucket.name));
    if p.literal("spec.locking.table.name", &name) {
        check_derived(
            p,
            "spec.locking.table.name",
            t.name.is_none(),
            &name,
            255,
            is_table_name(&name),
            "a DynamoDB table name (3-255 letters, digits, '_', '-' or '.')",
        );
    }
    Some(LockTable {
        name,
        point_in_time_recovery: t.point_in_time_recovery,
        deletion_protection: t.deletion_protection,
    })
}

fn check_principals(p: &mut Problems, path: &str, arns: &[String]) {
    let mut seen = BTreeSet::new();
    for (i, arn) in arns.iter().enumerate() {
        if p.literal(format!("{path}[{i}]"), arn) && !PRINCIPAL_ARN.is_match(arn) {
            p.add(
                format!("{path}[{i}]"),
                format!(
                    "{arn:?} is not an IAM principal ARN (arn:aws:iam::ACCOUNT:root, :role/NAME or :user/NAME, NAME and any path segments of letters, digits and +=,.@_-)"
                ),
            );
        }
        if !seen.insert(arn) {
            p.add(format!("{path}[{i}]"), format!("{arn:?} is listed twice; remove the duplicate"));
        }
    }
}

fn check_tags(p: &mut Problems, tags: &BTreeMap<String, String>) {
    let max = AWS_MAX_TAGS - OWNERSHIP_TAG_COUNT;
    if tags.len() > max {
        p.add(
            "spec.tags",
            format!(
                "{} tags, but at most {max} fit next to the operator's {OWNERSHIP_TAG_COUNT} ownership tags",
                tags.len()
            ),
        );
    }
    for (k, v) in tags {
        let path = format!("spec.tags[{k}]");
        if k.is_empty() || k.chars().count() > 128 {
            p.add(&path, "tag keys are 1-128 characters long");
        } else if k.to_ascii_lowercase().starts_with("aws:") {
            p.add(&path, "tag keys starting with \"aws:\" are reserved by AWS");
        } else if k.starts_with(RESERVED_TAG_PREFIX) {
            p.add(
                &path,
                format!(
                    "tag keys starting with {RESERVED_TAG_PREFIX:?} are reserved for the operator's ownership tags"
                ),
            );
        } else if !TAG_CHARS.is_match(k) {
            p.add(&path, "tag keys may hold letters, digits, spaces and _ . : / = + - @ only");
        }
        if v.chars().count() > 256 {
            p.add(&path, "tag values are at most 256 characters long");
        } else if !TAG_CHARS.is_match(v) {
            p.add(&path, "tag values may hold letters, digits, spaces and _ . : / = + - @ only");
        }
    }
}

fn sorted_unique(items: &[String]) -> Vec<String> {
    items.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect()
}

#[cfg(test)]
mod tests;
