//! The operator's own minimum AWS IAM policy, the template `docs/operator-iam-policy.json`,
//! checked against the operations the operator makes.
//!
//! The template is rendered as a cluster administrator renders it (placeholders `<NAME>`
//! replaced by [`TEST_VALUES`]), and, for the boundary variant, with the statements of the
//! block in `docs/operator-iam-policy.md` replacing those of the same Sid.
//!
//! - `every_aws_call_in_the_source_is_mapped_and_allowed` (no test ground needed) reads every
//!   `.ctx("service", "Operation")` of `src/aws/*.rs` and `src/context.rs` (every AWS call goes
//!   through one) and requires each operation to be in [`OPERATIONS`], the table of the IAM
//!   actions each operation needs, and each of those actions to be allowed by the policy on a
//!   resource under the documented prefixes (and every write refused outside them). The policy
//!   in turn may grant no action that no operation needs, no wildcard action, `Resource: "*"`
//!   only for [`UNSCOPED_ACTIONS`], and every write to a KMS key, DynamoDB table or IAM role
//!   must carry a managed-by tag condition ([`CREATE_TIME_ACTIONS`] and [`UNTAGGED_WRITES`]
//!   are the documented exceptions). `docs/operator-iam-policy.md` must document every
//!   statement, row and placeholder. A new AWS call therefore cannot be added without updating
//!   the table, the policy and its documentation.
//! - `full_lifecycle_needs_only_the_documented_policy` runs an operator of its own on the real
//!   ground through a full lifecycle (every encryption, locking and trust mode, access logging, a
//!   spec update, out-of-band drift repaired, deletion with `deletionPolicy: Delete`), then maps
//!   every (service, operation) its call counter saw to IAM actions and requires each to be
//!   allowed on the buckets, tables, roles, keys and aliases the run used. The emulator does not
//!   evaluate identity policies, so this is the check that the policy covers what the operator
//!   really calls on the names it really uses; `Condition` elements are checked for their shape
//!   only (they follow AWS's documentation). Actions of the policy that the run never needed are
//!   printed (the documentation says when the rare ones are used).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, ObjectOwnership, OwnershipControls, OwnershipControlsRule,
};
use common::operator::{create_backend, inspector, patch_spec, start_operator, unique_bucket, wait_gone, wait_ready};
use common::{Ground, delete_namespace, install_crd, repo_root, test_namespace};
use kube::Api;
use kube::api::DeleteParams;
use serde_json::{Value, json};
use tfstate_operator::api::TerraformStateBackend;
use tfstate_operator::aws::calls::{Outcome, is_read_operation};
use tfstate_operator::aws::{AwsClients, Tags, dynamodb, iam, kms, s3};

/// Every AWS operation the operator can call: (service as the SDK names it, operation, the IAM
/// actions it needs). S3's action names differ from its API names (GetBucketEncryption needs
/// `s3:GetEncryptionConfiguration`). Some operations need actions of their own beyond their
/// name: S3 CreateBucket with an ObjectOwnership header and tags, KMS CreateKey with a key
/// policy and tags, DynamoDB CreateTable with tags, IAM CreateRole with tags, and DynamoDB
/// CreateTable/UpdateTable with a customer managed key, for which DynamoDB describes the key
/// and creates a grant with the caller's permissions.
const OPERATIONS: &[(&str, &str, &[&str])] = &[
    ("sts", "GetCallerIdentity", &["sts:GetCallerIdentity"]),
    ("sts", "AssumeRole", &["sts:AssumeRole"]),
    // S3: the state bucket (bucket-level actions only; the operator never reads or writes objects).
    ("s3", "GetBucketTagging", &["s3:GetBucketTagging"]),
    ("s3", "HeadBucket", &["s3:ListBucket"]),
    ("s3", "ListBuckets", &["s3:ListAllMyBuckets"]),
    ("s3", "GetBucketVersioning", &["s3:GetBucketVersioning"]),
    ("s3", "GetBucketEncryption", &["s3:GetEncryptionConfiguration"]),
    ("s3", "GetPublicAccessBlock", &["s3:GetBucketPublicAccessBlock"]),
    ("s3", "GetBucketOwnershipControls", &["s3:GetBucketOwnershipControls"]),
    ("s3", "GetBucketLifecycleConfiguration", &["s3:GetLifecycleConfiguration"]),
    ("s3", "GetBucketPolicy", &["s3:GetBucketPolicy"]),
    ("s3", "GetBucketLogging", &["s3:GetBucketLogging"]),
    ("s3", "ListObjectVersions", &["s3:ListBucketVersions"]),
    ("s3", "CreateBucket", &["s3:CreateBucket", "s3:PutBucketOwnershipControls", "s3:TagResource"]),
    ("s3", "PutBucketTagging", &["s3:PutBucketTagging"]),
    ("s3", "PutBucketVersioning", &["s3:PutBucketVersioning"]),
    ("s3", "PutBucketEncryption", &["s3:PutEncryptionConfiguration"]),
    ("s3", "PutPublicAccessBlock", &["s3:PutBucketPublicAccessBlock"]),
    ("s3", "PutBucketOwnershipControls", &["s3:PutBucketOwnershipControls"]),
    ("s3", "PutBucketLifecycleConfiguration", &["s3:PutLifecycleConfiguration"]),
    ("s3", "PutBucketPolicy", &["s3:PutBucketPolicy"]),
    ("s3", "PutBucketLogging", &["s3:PutBucketLogging"]),
    ("s3", "DeleteBucket", &["s3:DeleteBucket"]),
    // S3: the state bucket's replication configuration (spec.replication). PutBucketReplication
    // passes the replication role to S3.
    ("s3", "GetBucketReplication", &["s3:GetReplicationConfiguration"]),
    ("s3", "PutBucketReplication", &["s3:PutReplicationConfiguration", "iam:PassRole"]),
    ("s3", "DeleteBucketReplication", &["s3:PutReplicationConfiguration"]),
    // KMS: the backend's key.
    ("kms", "DescribeKey", &["kms:DescribeKey"]),
    ("kms", "GetKeyPolicy", &["kms:GetKeyPolicy"]),
    ("kms", "GetKeyRotationStatus", &["kms:GetKeyRotationStatus"]),
    ("kms", "ListResourceTags", &["kms:ListResourceTags"]),
    ("kms", "ListKeys", &["kms:ListKeys"]),
    ("kms", "ListAliases", &["kms:ListAliases"]),
    ("kms", "CreateKey", &["kms:CreateKey", "kms:TagResource", "kms:PutKeyPolicy"]),
    ("kms", "CreateAlias", &["kms:CreateAlias"]),
    ("kms", "UpdateAlias", &["kms:UpdateAlias"]),
    ("kms", "DeleteAlias", &["kms:DeleteAlias"]),
    ("kms", "EnableKeyRotation", &["kms:EnableKeyRotation"]),
    ("kms", "PutKeyPolicy", &["kms:PutKeyPolicy"]),
    ("kms", "TagResource", &["kms:TagResource"]),
    ("kms", "UntagResource", &["kms:UntagResource"]),
    ("kms", "ScheduleKeyDeletion", &["kms:ScheduleKeyDeletion"]),
    ("kms", "CancelKeyDeletion", &["kms:CancelKeyDeletion"]),
    ("kms", "EnableKey", &["kms:EnableKey"]),
    // DynamoDB: the lock table.
    ("dynamodb", "DescribeTable", &["dynamodb:DescribeTable"]),
    ("dynamodb", "DescribeContinuousBackups", &["dynamodb:DescribeContinuousBackups"]),
    ("dynamodb", "ListTagsOfResource", &["dynamodb:ListTagsOfResource"]),
    (
        "dynamodb",
        "CreateTable",
        &["dynamodb:CreateTable", "dynamodb:TagResource", "kms:DescribeKey", "kms:CreateGrant"],
    ),
    ("dynamodb", "UpdateTable", &["dynamodb:UpdateTable", "kms:DescribeKey", "kms:CreateGrant"]),
    ("dynamodb", "UpdateContinuousBackups", &["dynamodb:UpdateContinuousBackups"]),
    ("dynamodb", "TagResource", &["dynamodb:TagResource"]),
    ("dynamodb", "UntagResource", &["dynamodb:UntagResource"]),
    ("dynamodb", "DeleteTable", &["dynamodb:DeleteTable"]),
    // The default workspace's lock item (read every pass; deleted only on a force-unlock request).
    ("dynamodb", "GetItem", &["dynamodb:GetItem"]),
    ("dynamodb", "DeleteItem", &["dynamodb:DeleteItem"]),
    ("dynamodb", "Scan", &["dynamodb:Scan"]),
    // S3 objects: Terraform's lock files only, never state. A delete with If-Match needs
    // s3:GetObject too. (S3's kms:Decrypt of a lock file comes from the key policy of the
    // keys the operator creates, `AllowOperatorReadLockFiles`, not from this policy.)
    ("s3", "GetObject", &["s3:GetObject"]),
    ("s3", "DeleteObject", &["s3:DeleteObject", "s3:GetObject"]),
    // IAM: the runners' role and its inline policy.
    ("iam", "GetRole", &["iam:GetRole"]),
    ("iam", "GetRolePolicy", &["iam:GetRolePolicy"]),
    ("iam", "CreateRole", &["iam:CreateRole", "iam:TagRole"]),
    ("iam", "UpdateAssumeRolePolicy", &["iam:UpdateAssumeRolePolicy"]),
    ("iam", "UpdateRole", &["iam:UpdateRole"]),
    ("iam", "PutRolePermissionsBoundary", &["iam:PutRolePermissionsBoundary"]),
    ("iam", "DeleteRolePermissionsBoundary", &["iam:DeleteRolePermissionsBoundary"]),
    ("iam", "PutRolePolicy", &["iam:PutRolePolicy"]),
    ("iam", "TagRole", &["iam:TagRole"]),
    ("iam", "UntagRole", &["iam:UntagRole"]),
    ("iam", "DeleteRolePolicy", &["iam:DeleteRolePolicy"]),
    ("iam", "DeleteRole", &["iam:DeleteRole"]),
    // CloudTrail: the audit trail (`spec.audit.cloudTrail`), in the second document.
    ("cloudtrail", "GetTrail", &["cloudtrail:GetTrail"]),
    ("cloudtrail", "GetTrailStatus", &["cloudtrail:GetTrailStatus"]),
    ("cloudtrail", "GetEventSelectors", &["cloudtrail:GetEventSelectors"]),
    ("cloudtrail", "ListTags", &["cloudtrail:ListTags"]),
    ("cloudtrail", "CreateTrail", &["cloudtrail:CreateTrail", "cloudtrail:AddTags"]),
    ("cloudtrail", "UpdateTrail", &["cloudtrail:UpdateTrail"]),
    ("cloudtrail", "PutEventSelectors", &["cloudtrail:PutEventSelectors"]),
    ("cloudtrail", "StartLogging", &["cloudtrail:StartLogging"]),
    ("cloudtrail", "StopLogging", &["cloudtrail:StopLogging"]),
    ("cloudtrail", "AddTags", &["cloudtrail:AddTags"]),
    ("cloudtrail", "RemoveTags", &["cloudtrail:RemoveTags"]),
    ("cloudtrail", "DeleteTrail", &["cloudtrail:DeleteTrail"]),
];

/// The only actions a statement may grant on `Resource: "*"`: they have no resource-level
/// permission at all (documented as unavoidable in `docs/operator-iam-policy.md`).
const UNSCOPED_ACTIONS: [&str; 5] =
    ["sts:GetCallerIdentity", "s3:ListAllMyBuckets", "kms:CreateKey", "kms:ListKeys", "kms:ListAliases"];

/// Writes to a key, table or role that AWS checks when the resource is created (or for the tags
/// and policy of a create request): they are conditioned on `aws:RequestTag`, not on
/// `aws:ResourceTag` (the resource does not exist, or has no tags, yet).
const CREATE_TIME_ACTIONS: [&str; 7] = [
    "kms:CreateKey",
    "kms:TagResource",
    "kms:PutKeyPolicy",
    "dynamodb:CreateTable",
    "dynamodb:TagResource",
    "iam:CreateRole",
    "iam:TagRole",
];

/// Writes without a tag condition, each with the reason the documentation gives:
/// `kms:CreateGrant` (the key may be an existing key the operator does not tag; bounded by
/// `kms:GrantIsForAWSResource` and `kms:ViaService` instead) and the alias half of the alias
/// actions (aliases carry no tags; the key half is tag-conditioned).
const UNTAGGED_WRITES: [&str; 4] = ["kms:CreateGrant", "kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"];

/// The ownership tags: the tag conditions name the first; no untag may remove any.
const MANAGED_BY_TAG: &str = "tfstate.dev/managed-by";
const MANAGED_BY: &str = "tfstate-operator";
const OWNERSHIP_TAGS: [&str; 3] = ["tfstate.dev/managed-by", "tfstate.dev/owner", "tfstate.dev/owner-uid"];

/// The action the boundary variant refuses on purpose: a boundary is never removed.
const REFUSED_WITH_BOUNDARY: &str = "iam:DeleteRolePermissionsBoundary";
/// Actions the boundary variant allows only with `iam:PermissionsBoundary` = the boundary.
const BOUNDARY_BOUND: [&str; 3] = ["iam:CreateRole", "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy"];

const POLICY_JSON: &str = "docs/operator-iam-policy.json";
/// The second managed policy, for backends with `spec.audit` (the first is near the 6,144
/// characters of a managed policy): the operator's policy is the union of both.
const AUDIT_POLICY_JSON: &str = "docs/operator-iam-policy-audit.json";
const POLICY_DOC: &str = "docs/operator-iam-policy.md";
/// The second managed policy, for clusters whose backends use `spec.replication` (the first
/// one is at its size limit).
const REPLICATION_POLICY_JSON: &str = "docs/operator-iam-policy-replication.json";
/// What precedes the boundary variant's JSON block in the documentation.
const BOUNDARY_MARKER: &str = "<!-- boundary-variant: statements replacing those of the same Sid -->";
/// The files through which every AWS call goes (`.ctx(service, operation)`).
const CALL_SITES: &str = "src/aws";
const IDENTITY_CALL_SITE: &str = "src/context.rs";
/// The AWS calls of `tfstate-operator state`, made with a PERSON's credentials, never the
/// operator's: not in the operator's policy, but each documented in [`PERSON_DOC`].
const PERSON_CALL_SITE: &str = "src/state/calls.rs";
/// Where the person's permissions for `state versions|restore` are documented.
const PERSON_DOC: &str = "docs/state-restore.md";
/// A managed policy's size limit (characters without whitespace).
const MANAGED_POLICY_LIMIT: usize = 6_144;

const RESYNC: Duration = Duration::from_secs(2);
const REPAIR_TIMEOUT: Duration = Duration::from_secs(30);
const ROOT: &str = "arn:aws:iam::123456789012:root";
const OIDC: &str = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/IAMPOLICY0123";
const BOUNDARY: &str = "arn:aws:iam::aws:policy/PowerUserAccess";
const KEY_ADMIN: &str = "arn:aws:iam::123456789012:role/platform-admin";

/// What a cluster administrator fills into the template's placeholders.
#[derive(Clone, Copy, Debug)]
struct Values<'a> {
    partition: &'a str,
    account: &'a str,
    region: &'a str,
    name_prefix: &'a str,
    role_prefix: &'a str,
    alias_prefix: &'a str,
    boundary: &'a str,
    trail_prefix: &'a str,
    replica_region: &'a str,
}

impl Values<'_> {
    /// (placeholder, value), for every placeholder the template may hold.
    fn pairs(&self) -> [(&'static str, &str); 9] {
        [
            ("<PARTITION>", self.partition),
            ("<ACCOUNT_ID>", self.account),
            ("<REGION>", self.region),
            ("<NAME_PREFIX>", self.name_prefix),
            ("<ROLE_PREFIX>", self.role_prefix),
            ("<ALIAS_PREFIX>", self.alias_prefix),
            ("<BOUNDARY_ARN>", self.boundary),
            ("<TRAIL_PREFIX>", self.trail_prefix),
            ("<REPLICA_REGION>", self.replica_region),
        ]
    }
}

/// The values the tests render the template with. The lifecycle test's buckets (and so its
/// tables, `<bucket>-lock`) start with `acme-tfstate-`; its roles and aliases are the derived
/// defaults `tfstate-<namespace>-<name>` (path `/`) and `alias/tfstate-<namespace>-<name>`.
const TEST_VALUES: Values<'static> = Values {
    partition: "aws",
    account: "123456789012",
    region: "eu-west-1",
    name_prefix: "acme-tfstate-",
    role_prefix: "/tfstate-",
    alias_prefix: "tfstate-",
    boundary: "arn:aws:iam::123456789012:policy/tfstate-runner-boundary",
    trail_prefix: "tfstate-",
    replica_region: "eu-central-1",
};

/// Long but plausible values: the rendered policy must still fit a managed policy.
const LONG_VALUES: Values<'static> = Values {
    partition: "aws-us-gov",
    account: "123456789012",
    region: "us-gov-west-1",
    name_prefix: "acme-platform-team-tfstate-",
    role_prefix: "/platform/tfstate-runners/",
    alias_prefix: "platform/tfstate-keys/",
    boundary: "arn:aws-us-gov:iam::123456789012:policy/platform/tfstate-runner-boundary",
    trail_prefix: "platform-tfstate-audit-",
    replica_region: "us-gov-east-1",
};

/// The IAM actions `operation` of `service` needs, from [`OPERATIONS`].
fn actions_of(service: &str, operation: &str) -> Option<&'static [&'static str]> {
    OPERATIONS.iter().find(|(s, o, _)| *s == service && *o == operation).map(|(_, _, a)| *a)
}

/// The kinds of resource AWS authorizes an action on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// No resource-level permission: `Resource: "*"`.
    Any,
    Bucket,
    Table,
    Role,
    Key,
    Alias,
    /// The replica's KMS key, in the replica's region (`spec.replication`).
    ReplicaKey,
    /// The replica key's alias, in the replica's region.
    ReplicaAlias,
    /// An S3 object: Terraform's lock files (`<key>.tflock`) are the only ones allowed.
    LockObject,
    /// A hub-and-spoke operator role, in another account (`sts:AssumeRole`).
    SpokeRole,
    /// A CloudTrail trail.
    Trail,
}

/// What AWS authorizes `action` on: KMS alias actions on the alias and on the key, actions
/// without resource-level permissions on `*`, the others on their service's resource.
fn kinds_of(action: &str) -> &'static [Kind] {
    match action {
        a if UNSCOPED_ACTIONS.contains(&a) => &[Kind::Any],
        "kms:CreateAlias" | "kms:UpdateAlias" | "kms:DeleteAlias" => {
            &[Kind::Alias, Kind::Key, Kind::ReplicaAlias, Kind::ReplicaKey]
        }
        // For DynamoDB's use of a lock table's key: lock tables are never replicated.
        "kms:CreateGrant" => &[Kind::Key],
        "s3:GetObject" | "s3:DeleteObject" => &[Kind::LockObject],
        a if a.starts_with("s3:") => &[Kind::Bucket],
        a if a.starts_with("kms:") => &[Kind::Key, Kind::ReplicaKey],
        a if a.starts_with("dynamodb:") => &[Kind::Table],
        "sts:AssumeRole" => &[Kind::SpokeRole],
        a if a.starts_with("cloudtrail:") => &[Kind::Trail],
        a if a.starts_with("iam:") => &[Kind::Role],
        other => panic!("{other}: no resource kind known; add it to kinds_of"),
    }
}

/// Whether `action` writes (anything but Get, List, Describe and Head).
fn is_write(action: &str) -> bool {
    !is_read_operation(action.split_once(':').map_or(action, |(_, a)| a))
}

/// A statement of the rendered policy.
#[derive(Debug)]
struct Statement {
    sid: String,
    allow: bool,
    actions: Vec<String>,
    resources: Vec<String>,
    condition: Value,
}

impl Statement {
    /// The value of condition `operator` / `key` when it is one string.
    fn condition_value(&self, operator: &str, key: &str) -> Option<&str> {
        self.condition.get(operator)?.get(key)?.as_str()
    }

    /// The values of condition `operator` / `key` (one string or a list).
    fn condition_values(&self, operator: &str, key: &str) -> Vec<&str> {
        match self.condition.get(operator).and_then(|o| o.get(key)) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        }
    }

    fn grants(&self, action: &str) -> bool {
        self.actions.iter().any(|p| action_matches(p, action))
    }

    fn covers(&self, resource: &str) -> bool {
        self.resources.iter().any(|p| resource_matches(p, resource))
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// `<PLACEHOLDER>`s in `text`.
fn placeholders(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"<[A-Z][A-Z_]*>").expect("regex");
    re.find_iter(text).map(|m| m.as_str().to_string()).collect()
}

/// `text` with every placeholder replaced, or the placeholders left.
fn try_render(text: &str, values: &Values<'_>) -> Result<String, BTreeSet<String>> {
    let mut out = text.to_string();
    for (placeholder, value) in values.pairs() {
        out = out.replace(placeholder, value);
    }
    let left = placeholders(&out);
    if left.is_empty() { Ok(out) } else { Err(left) }
}

/// `text` with every placeholder replaced; none may be left.
fn render(text: &str, values: &Values<'_>) -> String {
    try_render(text, values).unwrap_or_else(|left| panic!("placeholders left after rendering: {left:?}"))
}

/// The boundary variant's statements, as the documentation shows them (not rendered).
fn boundary_block(doc: &str) -> String {
    let after = doc
        .split_once(BOUNDARY_MARKER)
        .map(|(_, a)| a)
        .unwrap_or_else(|| panic!("{POLICY_DOC} has no boundary variant (a ```json block after {BOUNDARY_MARKER:?})"));
    let body = after.trim_start().strip_prefix("```json\n").expect("the marker is followed by a ```json block");
    body.split_once("\n```").expect("the ```json block is closed").0.to_string()
}

/// The operator's whole policy: the first document (see [`policy_document`]) with the
/// statements of the audit document appended.
fn full_policy(values: &Values<'_>, boundary: bool) -> Value {
    let mut doc = policy_document(values, boundary);
    let audit = audit_policy_document(values);
    let extra = audit["Statement"].as_array().expect("the audit document's Statement is a list").clone();
    doc["Statement"].as_array_mut().expect("Statement is a list").extend(extra);
    doc
}

/// The audit document, rendered.
fn audit_policy_document(values: &Values<'_>) -> Value {
    let doc: Value = serde_json::from_str(&render(&read(AUDIT_POLICY_JSON), values))
        .unwrap_or_else(|e| panic!("{AUDIT_POLICY_JSON} is not valid JSON: {e}"));
    assert_eq!(doc["Version"], "2012-10-17", "{AUDIT_POLICY_JSON}: Version must be 2012-10-17");
    doc
}

/// The main and the replication documents as one (what the operator's role holds with replication);
/// with `boundary`, the variant's statements replace those of the same Sid.
fn policy_document(values: &Values<'_>, boundary: bool) -> Value {
    let mut doc = main_policy_document(values, boundary);
    let extra = replication_policy_document(values);
    let list = doc["Statement"].as_array_mut().expect("Statement is a list");
    list.extend(extra["Statement"].as_array().expect("Statement is a list").iter().cloned());
    doc
}

/// The rendered replication add-on.
fn replication_policy_document(values: &Values<'_>) -> Value {
    serde_json::from_str(&render(&read(REPLICATION_POLICY_JSON), values))
        .unwrap_or_else(|e| panic!("{REPLICATION_POLICY_JSON} is not valid JSON: {e}"))
}

/// The rendered main policy document.
fn main_policy_document(values: &Values<'_>, boundary: bool) -> Value {
    let mut doc: Value = serde_json::from_str(&render(&read(POLICY_JSON), values))
        .unwrap_or_else(|e| panic!("{POLICY_JSON} is not valid JSON: {e}"));
    if boundary {
        let variant: Vec<Value> = serde_json::from_str(&render(&boundary_block(&read(POLICY_DOC)), values))
            .unwrap_or_else(|e| panic!("the boundary variant of {POLICY_DOC} is not a JSON list: {e}"));
        let list = doc["Statement"].as_array_mut().expect("Statement is a list");
        for replacement in variant {
            let sid = replacement["Sid"].as_str().expect("variant statements have a Sid").to_string();
            let slot = list.iter_mut().find(|s| s["Sid"] == sid.as_str());
            *slot.unwrap_or_else(|| panic!("the boundary variant replaces {sid}, which the policy does not have")) =
                replacement;
        }
    }
    doc
}

/// The statements of a rendered policy. Only `Action` and `Resource` are supported (a
/// `NotAction` would grant every other action of every service: never least privilege).
fn statements_of(doc: &Value) -> Vec<Statement> {
    assert_eq!(doc["Version"], "2012-10-17", "{POLICY_JSON}: Version must be 2012-10-17");
    let statements = match &doc["Statement"] {
        Value::Array(list) => list.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        other => panic!("{POLICY_JSON}: Statement must be a list or an object, not {other}"),
    };
    let strings = |sid: &str, field: &str, v: &Value| -> Vec<String> {
        match v {
            Value::String(a) => vec![a.clone()],
            Value::Array(list) => list.iter().map(|a| a.as_str().expect("strings").to_string()).collect(),
            other => panic!("{sid}: {field} must be a string or a list, not {other}"),
        }
    };
    statements
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let sid =
                s["Sid"].as_str().unwrap_or_else(|| panic!("{POLICY_JSON}: statement {i} has no Sid")).to_string();
            assert!(s.get("NotAction").is_none() && s.get("NotResource").is_none(), "{sid}: use Action and Resource");
            let allow = match s["Effect"].as_str() {
                Some("Allow") => true,
                Some("Deny") => false,
                other => panic!("{sid}: Effect must be Allow or Deny, not {other:?}"),
            };
            assert!(s.get("Resource").is_some(), "{sid}: an identity policy statement needs a Resource");
            Statement {
                actions: strings(&sid, "Action", &s["Action"]),
                resources: strings(&sid, "Resource", &s["Resource"]),
                condition: s.get("Condition").cloned().unwrap_or(Value::Null),
                sid,
                allow,
            }
        })
        .collect()
}

/// IAM's wildcard matching: `*` any run of characters, `?` any one character.
fn glob(p: &[u8], a: &[u8]) -> bool {
    match (p.first(), a.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], a) || (!a.is_empty() && glob(p, &a[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &a[1..]),
        (Some(x), Some(y)) if x == y => glob(&p[1..], &a[1..]),
        _ => false,
    }
}

/// IAM's action matching: case-insensitive, with wildcards.
fn action_matches(pattern: &str, action: &str) -> bool {
    glob(pattern.to_ascii_lowercase().as_bytes(), action.to_ascii_lowercase().as_bytes())
}

/// IAM's resource matching: case-sensitive, with wildcards (`*` also across `/` and `:`).
fn resource_matches(pattern: &str, resource: &str) -> bool {
    glob(pattern.as_bytes(), resource.as_bytes())
}

/// The Sids of the Allow statements granting `action` on `resource`, joined with `|`; `None`
/// when none does or an unconditional Deny statement names it. Conditions of Allow statements
/// are not evaluated here (their shape is checked by [`structural_problems`]); a Deny with a
/// condition only denies requests the operator never makes (documented per statement).
fn allowed_by(statements: &[Statement], action: &str, resource: &str) -> Option<String> {
    let applies = |s: &&Statement| s.grants(action) && s.covers(resource);
    if statements.iter().filter(|s| !s.allow && s.condition.is_null()).any(|s| applies(&s)) {
        return None;
    }
    let sids: Vec<&str> = statements.iter().filter(|s| s.allow).filter(applies).map(|s| s.sid.as_str()).collect();
    (!sids.is_empty()).then(|| sids.join("|"))
}

/// Resources of each kind: within the rendered prefixes (`inside`) or not.
fn sample_resources(v: &Values<'_>, inside: bool) -> BTreeMap<Kind, Vec<String>> {
    let (p, acct, region) = (v.partition, v.account, v.region);
    let key = "1234abcd-12ab-34cd-56ef-1234567890ab";
    let other = "210987654321";
    if inside {
        BTreeMap::from([
            (Kind::Any, vec!["*".to_string()]),
            (Kind::Bucket, vec![format!("arn:{p}:s3:::{}payments-prod", v.name_prefix)]),
            (Kind::Table, vec![format!("arn:{p}:dynamodb:{region}:{acct}:table/{}payments-prod-lock", v.name_prefix)]),
            (Kind::Role, vec![format!("arn:{p}:iam::{acct}:role{}payments-prod", v.role_prefix)]),
            (Kind::Key, vec![format!("arn:{p}:kms:{region}:{acct}:key/{key}")]),
            (Kind::Alias, vec![format!("arn:{p}:kms:{region}:{acct}:alias/{}payments-prod", v.alias_prefix)]),
            (Kind::ReplicaKey, vec![format!("arn:{p}:kms:{}:{acct}:key/{key}", v.replica_region)]),
            (
                Kind::ReplicaAlias,
                vec![format!("arn:{p}:kms:{}:{acct}:alias/{}payments-prod-replica", v.replica_region, v.alias_prefix)],
            ),
            (
                Kind::LockObject,
                vec![
                    format!("arn:{p}:s3:::{}payments-prod/team/terraform.tfstate.tflock", v.name_prefix),
                    format!("arn:{p}:s3:::{}payments-prod/env:/dev/team/terraform.tfstate.tflock", v.name_prefix),
                ],
            ),
            (Kind::SpokeRole, vec![format!("arn:{p}:iam::111111111111:role/tfstate-operator-spoke-team-a")]),
            (Kind::Trail, vec![format!("arn:{p}:cloudtrail:{region}:{acct}:trail/{}payments-prod", v.trail_prefix)]),
        ])
    } else {
        BTreeMap::from([
            (Kind::Bucket, vec![format!("arn:{p}:s3:::other-team-state")]),
            (
                Kind::Table,
                vec![
                    format!("arn:{p}:dynamodb:{region}:{acct}:table/other-team-lock"),
                    format!("arn:{p}:dynamodb:{region}:{other}:table/{}payments-prod-lock", v.name_prefix),
                    format!("arn:{p}:dynamodb:ap-south-2:{acct}:table/{}payments-prod-lock", v.name_prefix),
                ],
            ),
            (
                Kind::Role,
                vec![
                    format!("arn:{p}:iam::{acct}:role/other-team-role"),
                    format!("arn:{p}:iam::{other}:role{}payments-prod", v.role_prefix),
                ],
            ),
            (
                Kind::Key,
                vec![
                    format!("arn:{p}:kms:{region}:{other}:key/{key}"),
                    format!("arn:{p}:kms:ap-south-2:{acct}:key/{key}"),
                ],
            ),
            (Kind::Alias, vec![format!("arn:{p}:kms:{region}:{acct}:alias/other-team-key")]),
            (Kind::ReplicaKey, vec![format!("arn:{p}:kms:{}:{other}:key/{key}", v.replica_region)]),
            (Kind::ReplicaAlias, vec![format!("arn:{p}:kms:{}:{acct}:alias/other-team-key", v.replica_region)]),
            (
                Kind::Trail,
                vec![
                    format!("arn:{p}:cloudtrail:{region}:{acct}:trail/org-security-trail"),
                    format!("arn:{p}:cloudtrail:{region}:{other}:trail/{}payments-prod", v.trail_prefix),
                    format!("arn:{p}:cloudtrail:ap-south-2:{acct}:trail/{}payments-prod", v.trail_prefix),
                ],
            ),
            (
                Kind::LockObject,
                vec![
                    // The state itself, and a state digest-like name: never readable, never deletable.
                    format!("arn:{p}:s3:::{}payments-prod/team/terraform.tfstate", v.name_prefix),
                    format!("arn:{p}:s3:::{}payments-prod/team/terraform.tfstate.tflock.bak", v.name_prefix),
                    format!("arn:{p}:s3:::other-team-state/team/terraform.tfstate.tflock"),
                ],
            ),
        ])
    }
}

/// Whether a resource outside the prefixes may still be read by design: roles are read in the
/// whole account (role names are unique across paths; see `IamReadRoles`).
fn read_anywhere_in_account(action: &str, resource: &str, v: &Values<'_>) -> bool {
    !is_write(action)
        && action.starts_with("iam:")
        && resource.starts_with(&format!("arn:{}:iam::{}:", v.partition, v.account))
}

/// Problems of the policy's shape: wildcards, unscoped resources, missing tag conditions,
/// untag statements that could remove ownership tags.
fn structural_problems(statements: &[Statement], v: &Values<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    for s in statements {
        for action in &s.actions {
            if action.contains('*') || action.contains('?') {
                problems.push(format!("{}: {action} is a wildcard; list the actions explicitly", s.sid));
            }
        }
        if !s.allow {
            continue;
        }
        // Resource "*" only for actions without resource-level permissions; every ARN names the
        // rendered partition, account and region.
        for resource in &s.resources {
            if resource == "*" {
                for action in s.actions.iter().filter(|a| !UNSCOPED_ACTIONS.contains(&a.as_str())) {
                    problems.push(format!(
                        "{}: {action} is granted on Resource \"*\"; scope it (only {UNSCOPED_ACTIONS:?} may be unscoped)",
                        s.sid
                    ));
                }
                continue;
            }
            let fields: Vec<&str> = resource.splitn(6, ':').collect();
            let [arn, partition, service, region, account, _rest] = fields[..] else {
                problems.push(format!("{}: {resource} is not an ARN", s.sid));
                continue;
            };
            // Only the replicas' keys and aliases live in the replica region.
            let in_region = region.is_empty() || region == v.region || (service == "kms" && region == v.replica_region);
            if arn != "arn" || partition != v.partition || !in_region {
                problems
                    .push(format!("{}: {resource} is not in partition {} and region {}", s.sid, v.partition, v.region));
            }
            // The one statement about other accounts: the spoke roles of hub and spoke.
            if !(account.is_empty() || account == v.account || s.sid == "AssumeSpokeOperatorRoles") {
                problems.push(format!("{}: {resource} is not in account {}", s.sid, v.account));
            }
        }
        // Writes to keys, tables and roles: only tagged ones (or, at creation, tagging ones).
        let resource_tag = s.condition_value("StringEquals", &format!("aws:ResourceTag/{MANAGED_BY_TAG}"));
        let request_tag = s.condition_value("StringEquals", &format!("aws:RequestTag/{MANAGED_BY_TAG}"));
        for action in s.actions.iter().map(String::as_str) {
            let tagged_service = ["kms:", "dynamodb:", "iam:"].iter().any(|p| action.starts_with(p));
            if !tagged_service || !is_write(action) || resource_tag == Some(MANAGED_BY) {
                continue;
            }
            let ok = match action {
                a if CREATE_TIME_ACTIONS.contains(&a) && request_tag == Some(MANAGED_BY) => true,
                "kms:CreateGrant" => {
                    s.condition_value("Bool", "kms:GrantIsForAWSResource") == Some("true")
                        && s.condition_value("StringLike", "kms:ViaService").is_some()
                }
                a if UNTAGGED_WRITES.contains(&a) => s.resources.iter().all(|r| r.contains(":alias/")),
                _ => false,
            };
            if !ok {
                problems.push(format!(
                    "{}: {action} writes to a key, table or role without the condition \
                     StringEquals aws:ResourceTag/{MANAGED_BY_TAG} = {MANAGED_BY} (aws:RequestTag for the \
                     create-time actions {CREATE_TIME_ACTIONS:?}; documented exceptions {UNTAGGED_WRITES:?})",
                    s.sid
                ));
            }
        }
        // No untag can remove an ownership tag.
        let untags = ["kms:UntagResource", "dynamodb:UntagResource", "iam:UntagRole", "cloudtrail:RemoveTags"];
        if s.actions.iter().any(|a| untags.contains(&a.as_str())) {
            let kept = s.condition_values("ForAllValues:StringNotEquals", "aws:TagKeys");
            for tag in OWNERSHIP_TAGS.iter().filter(|t| !kept.contains(t)) {
                problems.push(format!(
                    "{}: an untag may remove {tag}: add it to ForAllValues:StringNotEquals aws:TagKeys",
                    s.sid
                ));
            }
        }
    }
    problems
}

/// Every (service, operation) of a `.ctx(SERVICE, OPERATION)` in the call sites, where SERVICE is
/// a string literal or a `const` of the file and OPERATION a literal or a `let` binding to one.
fn source_operations() -> BTreeSet<(String, String)> {
    // Recursively: a service module may have children (src/aws/s3/replication.rs).
    let mut files = Vec::new();
    rust_files(&repo_root().join(CALL_SITES), &mut files);
    files.push(repo_root().join(IDENTITY_CALL_SITE));
    operations_in(files)
}

/// The (service, operation) pairs of every `.ctx(...)` (and hand-mapped `from_sdk`) in `files`.
fn operations_in(files: Vec<std::path::PathBuf>) -> BTreeSet<(String, String)> {
    let ctx = regex::Regex::new(
        r"\.ctx\(\s*([A-Za-z_][A-Za-z0-9_]*|\x22[^\x22]*\x22)\s*,\s*([A-Za-z_][A-Za-z0-9_]*|\x22[^\x22]*\x22)\s*\)",
    )
    .expect("regex");
    let konst = regex::Regex::new(r#"const\s+([A-Z][A-Z0-9_]*)\s*:\s*&str\s*=\s*"([^"]*)"\s*;"#).expect("regex");
    // Calls whose errors are mapped by hand (credentials of an assumed role): from_sdk("sts", "Op", ..).
    let mapped = regex::Regex::new(r#"from_sdk\(\s*"([a-z0-9]+)"\s*,\s*"([A-Za-z]+)""#).expect("regex");
    let mut found = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        let name = file.strip_prefix(repo_root()).unwrap_or(&file).display().to_string();
        let consts: BTreeMap<&str, &str> =
            konst.captures_iter(&text).map(|c| (c.get(1).unwrap().as_str(), c.get(2).unwrap().as_str())).collect();
        for m in mapped.captures_iter(&text) {
            found.insert((m[1].to_string(), m[2].to_string()));
        }
        let calls: Vec<_> = ctx.captures_iter(&text).collect();
        assert_eq!(
            calls.len(),
            text.matches(".ctx(").count(),
            "{name}: a .ctx( call of an unrecognised form; use .ctx(SERVICE_CONST or \"service\", \"Operation\" or a \
             `let op = \"Operation\"` binding) so that this test can see the operation"
        );
        for c in calls {
            let at = c.get(0).unwrap().start();
            let line = text[..at].lines().count();
            let service = match c.get(1).unwrap().as_str() {
                lit if lit.starts_with('"') => lit.trim_matches('"').to_string(),
                id => consts.get(id).unwrap_or_else(|| panic!("{name}:{line}: {id} is not a &str const")).to_string(),
            };
            let operation = match c.get(2).unwrap().as_str() {
                lit if lit.starts_with('"') => lit.trim_matches('"').to_string(),
                id => {
                    // The nearest `let id = "..."` before the call.
                    let binding =
                        regex::Regex::new(&format!(r#"let\s+{id}\s*=\s*"([^"]*)"\s*;"#)).expect("binding regex");
                    binding
                        .captures_iter(&text[..at])
                        .last()
                        .map(|b| b.get(1).unwrap().as_str().to_string())
                        .unwrap_or_else(|| panic!("{name}:{line}: cannot resolve the operation {id} to a literal"))
                }
            };
            found.insert((service, operation));
        }
    }
    found
}

/// Rust files under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Every action of [`OPERATIONS`] allowed on the resources `by_kind` holds of its kinds, but
/// `except`; the problems otherwise.
fn coverage_problems(
    statements: &[Statement],
    by_kind: &BTreeMap<Kind, Vec<String>>,
    what: &str,
    except: &[&str],
) -> Vec<String> {
    let mut problems = Vec::new();
    for (service, operation, actions) in OPERATIONS {
        for action in actions.iter().filter(|a| !except.contains(a)) {
            for kind in kinds_of(action) {
                for resource in by_kind.get(kind).into_iter().flatten() {
                    if allowed_by(statements, action, resource).is_none() {
                        problems.push(format!(
                            "{what}: {action} (needed by {service} {operation}) is not allowed on {resource}"
                        ));
                    }
                }
            }
        }
    }
    problems
}

/// Statically: the source, the table, the rendered policy (and its boundary variant) and the
/// documentation agree.
#[test]
fn every_aws_call_in_the_source_is_mapped_and_allowed() {
    let mut problems = Vec::new();

    // No AWS request is sent outside the call sites (where .ctx names every operation).
    let mut files = Vec::new();
    rust_files(&repo_root().join("src"), &mut files);
    for file in files {
        let rel = file.strip_prefix(repo_root()).unwrap_or(&file).to_path_buf();
        if rel.starts_with(CALL_SITES) || rel == Path::new(IDENTITY_CALL_SITE) || rel == Path::new(PERSON_CALL_SITE) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        if text.contains("aws_sdk_") || text.contains(".send().await") {
            problems.push(format!(
                "{}: uses an AWS SDK client directly; AWS calls belong in {CALL_SITES}/*.rs with .ctx(service, operation)",
                rel.display()
            ));
        }
    }

    // The person's calls (`state versions|restore`): each documented with its IAM action.
    let person_doc = read(PERSON_DOC);
    let person = operations_in(vec![repo_root().join(PERSON_CALL_SITE)]);
    assert!(person.len() >= 5, "only {} operations found in {PERSON_CALL_SITE}", person.len());
    for (service, operation) in &person {
        if !person_doc.contains(&format!("| {service}:{operation} |")) {
            problems.push(format!(
                "{service} {operation} (called by `state`) is not in the permissions table of {PERSON_DOC}"
            ));
        }
    }

    // Source <-> table, both ways.
    let in_source = source_operations();
    assert!(in_source.len() > 40, "only {} operations found in the source: is the regex still right?", in_source.len());
    for (service, operation) in &in_source {
        if actions_of(service, operation).is_none() {
            problems.push(format!(
                "{service} {operation} is called in the source but missing from OPERATIONS in this test: add its IAM \
                 action(s) there, to {POLICY_JSON} and to the table of {POLICY_DOC}"
            ));
        }
    }
    for (service, operation, _) in OPERATIONS {
        if !in_source.contains(&(service.to_string(), operation.to_string())) {
            problems.push(format!(
                "{service} {operation} is in OPERATIONS but no longer called: remove it (and actions only it needs)"
            ));
        }
    }

    // The template: known placeholders only, every one documented.
    let (template, doc) = (read(POLICY_JSON), read(POLICY_DOC));
    let known: BTreeSet<String> = TEST_VALUES.pairs().iter().map(|(p, _)| p.to_string()).collect();
    let used: BTreeSet<String> = placeholders(&template)
        .union(&placeholders(&boundary_block(&doc)))
        .cloned()
        .chain(placeholders(&read(AUDIT_POLICY_JSON)))
        .chain(placeholders(&read(REPLICATION_POLICY_JSON)))
        .collect();
    for p in used.difference(&known) {
        problems.push(format!("{POLICY_JSON} uses the placeholder {p}, which this test does not render"));
    }
    for p in known.difference(&used) {
        problems.push(format!("the placeholder {p} is no longer used: remove it from Values"));
    }
    for p in &known {
        if !doc.contains(&format!("`{p}`")) {
            problems.push(format!("{POLICY_DOC} does not explain the placeholder `{p}`"));
        }
    }

    // Rendered, with and without the boundary variant.
    let statements = statements_of(&full_policy(&TEST_VALUES, false));
    let variant = statements_of(&full_policy(&TEST_VALUES, true));
    let inside = sample_resources(&TEST_VALUES, true);
    problems.extend(coverage_problems(&statements, &inside, POLICY_JSON, &[]));
    problems.extend(coverage_problems(&variant, &inside, "the boundary variant", &[REFUSED_WITH_BOUNDARY]));
    problems.extend(structural_problems(&statements, &TEST_VALUES));
    problems.extend(structural_problems(&variant, &TEST_VALUES).into_iter().map(|p| format!("boundary variant: {p}")));

    // Outside the prefixes (and the account and region), nothing but the account-wide role reads.
    let needed: BTreeSet<&str> = OPERATIONS.iter().flat_map(|(_, _, actions)| actions.iter().copied()).collect();
    for (kind, resources) in sample_resources(&TEST_VALUES, false) {
        for action in needed.iter().filter(|a| kinds_of(a).contains(&kind)) {
            for resource in resources.iter().filter(|r| !read_anywhere_in_account(action, r, &TEST_VALUES)) {
                if let Some(sids) = allowed_by(&statements, action, resource) {
                    problems.push(format!("{sids}: {action} is allowed on {resource}, outside the prefixes"));
                }
            }
        }
    }

    // The boundary variant: the boundary required, never removed.
    if allowed_by(&variant, REFUSED_WITH_BOUNDARY, &inside[&Kind::Role][0]).is_some() {
        problems.push(format!("the boundary variant still allows {REFUSED_WITH_BOUNDARY}"));
    }
    for s in variant.iter().filter(|s| s.allow) {
        for action in BOUNDARY_BOUND.iter().filter(|a| s.grants(a)) {
            if s.condition_value("StringLike", "iam:PermissionsBoundary") != Some(TEST_VALUES.boundary) {
                problems.push(format!(
                    "boundary variant: {}: {action} without StringLike iam:PermissionsBoundary = <BOUNDARY_ARN>",
                    s.sid
                ));
            }
        }
    }

    // Policy -> table: nothing granted that no operation needs.
    let mut sids = BTreeSet::new();
    for s in &statements {
        if !sids.insert(s.sid.as_str()) {
            problems.push(format!("{POLICY_JSON}: Sid {} is used twice", s.sid));
        }
        for action in s.actions.iter().filter(|_| s.allow) {
            if !needed.iter().any(|n| n.eq_ignore_ascii_case(action)) {
                problems.push(format!("{}: {action} is granted but no operation needs it", s.sid));
            }
        }
    }
    // The operator passes only its replication roles, and only to S3 (PutBucketReplication).
    for s in statements.iter().chain(&variant).filter(|s| s.allow && s.grants("iam:PassRole")) {
        if s.condition_value("StringEquals", "iam:PassedToService") != Some("s3.amazonaws.com") {
            problems.push(format!(
                "{}: iam:PassRole must be limited to S3 (StringEquals iam:PassedToService s3.amazonaws.com)",
                s.sid
            ));
        }
    }

    // Size: each document a managed policy, even with long values.
    for values in [TEST_VALUES, LONG_VALUES] {
        for boundary in [false, true] {
            let size = main_policy_document(&values, boundary).to_string().len();
            if size > MANAGED_POLICY_LIMIT {
                problems.push(format!(
                    "rendered with {values:?} (boundary variant: {boundary}) the policy has {size} characters, more than \
                     the {MANAGED_POLICY_LIMIT} of a managed policy"
                ));
            }
        }
        let size = audit_policy_document(&values).to_string().len();
        if size > MANAGED_POLICY_LIMIT {
            problems.push(format!("{AUDIT_POLICY_JSON} rendered with {values:?} has {size} characters"));
        }
    }

    for values in [TEST_VALUES, LONG_VALUES] {
        let size = replication_policy_document(&values).to_string().len();
        if size > MANAGED_POLICY_LIMIT {
            problems.push(format!("{REPLICATION_POLICY_JSON} rendered with {values:?} has {size} characters"));
        }
    }

    // The documentation explains every statement and every row of the table.
    for sid in &sids {
        if !doc.contains(&format!("`{sid}`")) {
            problems.push(format!("{POLICY_DOC} does not explain statement `{sid}`"));
        }
    }
    for (service, operation, actions) in OPERATIONS {
        if !doc.contains(&format!("`{operation}`")) {
            problems.push(format!("{POLICY_DOC}: the table has no row for {service} `{operation}`"));
        }
        for action in *actions {
            if !doc.contains(&format!("`{action}`")) {
                problems.push(format!("{POLICY_DOC} never names `{action}` (needed by {service} {operation})"));
            }
        }
    }
    for action in UNSCOPED_ACTIONS.iter().chain(&CREATE_TIME_ACTIONS).chain(&UNTAGGED_WRITES) {
        if !doc.contains(&format!("`{action}`")) {
            problems.push(format!("{POLICY_DOC} does not document the exception `{action}`"));
        }
    }
    eprintln!(
        "{} operations, {} actions, {} statements ({} in the boundary variant); rendered size {} characters",
        OPERATIONS.len(),
        needed.len(),
        statements.len(),
        variant.len(),
        policy_document(&TEST_VALUES, false).to_string().len()
    );
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn matching_and_rendering_follow_iam() {
    assert!(action_matches("s3:GetBucketPolicy", "s3:getbucketpolicy"));
    assert!(action_matches("s3:Get*", "s3:GetBucketPolicy"));
    assert!(action_matches("kms:*Key", "kms:DescribeKey"));
    assert!(action_matches("kms:?escribeKey", "kms:DescribeKey"));
    assert!(!action_matches("s3:Get*", "s3:PutBucketPolicy"));
    assert!(!action_matches("kms:DescribeKey", "kms:DescribeKeys"));
    assert!(resource_matches("arn:aws:iam::1:role/tfstate-*", "arn:aws:iam::1:role/tfstate-a/b"));
    assert!(!resource_matches("arn:aws:s3:::acme-*", "arn:aws:s3:::Acme-x"), "resources are case-sensitive");
    let stmt = |sid: &str, allow: bool, action: &str, condition: Value| Statement {
        sid: sid.into(),
        allow,
        actions: vec![action.into()],
        resources: vec!["arn:aws:s3:::acme-*".into()],
        condition,
    };
    let statements = vec![
        stmt("A", true, "s3:*", Value::Null),
        stmt("D", false, "s3:DeleteBucket", Value::Null),
        stmt("C", false, "s3:PutBucketPolicy", json!({"Bool": {"aws:SecureTransport": "false"}})),
        stmt("B", true, "s3:GetBucketPolicy", Value::Null),
    ];
    let bucket = "arn:aws:s3:::acme-state";
    assert_eq!(allowed_by(&statements, "s3:GetBucketPolicy", bucket).as_deref(), Some("A|B"));
    assert_eq!(allowed_by(&statements, "s3:DeleteBucket", bucket), None, "an unconditional Deny wins");
    assert_eq!(allowed_by(&statements, "s3:PutBucketPolicy", bucket).as_deref(), Some("A"), "a conditional Deny");
    assert_eq!(allowed_by(&statements, "s3:GetBucketPolicy", "arn:aws:s3:::other"), None, "outside the resources");
    assert_eq!(allowed_by(&statements, "kms:DescribeKey", bucket), None);
    assert_eq!(render("role<ROLE_PREFIX>*", &TEST_VALUES), "role/tfstate-*");
    assert_eq!(try_render("a<UNKNOWN>b", &TEST_VALUES), Err(BTreeSet::from(["<UNKNOWN>".to_string()])));
    assert!(is_write("kms:CreateGrant") && !is_write("iam:GetRolePolicy") && !is_write("dynamodb:DescribeTable"));
}
/// Polls `check` until it holds, at most [`REPAIR_TIMEOUT`].
async fn eventually(what: &str, check: impl AsyncFn() -> bool) {
    let deadline = tokio::time::Instant::now() + REPAIR_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            eprintln!("repaired: {what}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("not repaired within {REPAIR_TIMEOUT:?}: {what}");
}

async fn create(api: &Api<TerraformStateBackend>, name: &str, spec: Value) -> TerraformStateBackend {
    let obj = json!({"apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStateBackend",
        "metadata": {"name": name}, "spec": spec});
    create_backend(api, &obj.to_string()).await;
    wait_ready(api, name).await
}

/// The last segment of an ARN's resource (`role/x` -> `x`, `table/x` -> `x`).
fn arn_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or_default()
}

/// What the tag conditions rely on: the role, table and key of a ready backend carry
/// `tfstate.dev/managed-by = tfstate-operator` (CreateRole, CreateTable and CreateKey set it).
async fn assert_managed(aws: &AwsClients, obj: &TerraformStateBackend) {
    let name = obj.metadata.name.as_deref().unwrap_or_default();
    let status = obj.status.as_ref().expect("status");
    let managed = |what: &str, tags: &Tags| {
        assert_eq!(tags.get(MANAGED_BY_TAG).map(String::as_str), Some(MANAGED_BY), "{name}: {what} tags {tags:?}");
    };
    let role = status.role_arn.as_deref().expect("status.roleArn");
    managed(role, &iam::get_role(&aws.iam, arn_name(role)).await.expect("GetRole").expect("the role").tags);
    if let Some(table) = status.lock_table_arn.as_deref() {
        let settings = dynamodb::get_settings(&aws.dynamodb, arn_name(table), table).await.expect("table tags");
        managed(table, &settings.tags);
    }
    let created_key = obj.spec.encryption.kms_key.as_ref().is_none_or(|k| k.existing_key_arn.is_none());
    if let Some(key) = status.kms_key_arn.as_deref().filter(|_| created_key) {
        managed(key, &kms::get_tags(&aws.kms, arn_name(key)).await.expect("ListResourceTags"));
    }
}

/// One operator of its own, every mode, an update, drift, deletion: then every operation it called
/// must be in the table and every action the table gives for it allowed by the policy, rendered
/// for the ground's account and region, on the buckets, tables, roles, keys and aliases the run
/// used; and the keys, tables and roles it created must carry the tag the conditions rely on.
#[tokio::test]
async fn full_lifecycle_needs_only_the_documented_policy() {
    let ground = Ground::load();
    let client = ground.kube().await;
    install_crd(&client).await;
    let ns = test_namespace(&client, "iam-policy").await;
    let operator = start_operator(&ground, &ns, RESYNC).await;
    let api: Api<TerraformStateBackend> = Api::namespaced(client.clone(), &ns);
    let aws = inspector(&ground).await;

    // What two of the backends depend on, made first as their owners would: a log bucket that
    // lets the logging service write (another owner's, outside <NAME_PREFIX>), and an existing
    // KMS key.
    let logs = unique_bucket("iam-logs");
    let location = CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::EuWest1).build();
    aws.s3.create_bucket().bucket(&logs).create_bucket_configuration(location).send().await.expect("log bucket");
    let allow_logging = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject",
        "Principal": {"Service": "logging.s3.amazonaws.com"}, "Resource": format!("arn:aws:s3:::{logs}/*")}]});
    aws.s3.put_bucket_policy().bucket(&logs).policy(allow_logging.to_string()).send().await.expect("log policy");
    let create_key = aws.kms.create_key().key_spec(KeySpec::SymmetricDefault).key_usage(KeyUsageType::EncryptDecrypt);
    let existing = create_key.description("iam policy test key").send().await.expect("CreateKey");
    let existing_arn = existing.key_metadata().and_then(|m| m.arn()).expect("key ARN").to_string();

    // 1. Every mode: created key + DynamoDB + access logging + IRSA (deleted at the end);
    //    existing key + lock files + Pod Identity; AES256 + both locks + principals + boundary.
    //    Buckets (and so their default lock tables, `<bucket>-lock`) under the test's
    //    <NAME_PREFIX>; roles and aliases the derived defaults, under <ROLE_PREFIX> and
    //    <ALIAS_PREFIX>.
    let prefixed = |name: &str| unique_bucket(&format!("{}iam-{name}", TEST_VALUES.name_prefix));
    let (bucket_a, bucket_b, bucket_c) = (prefixed("alpha"), prefixed("beta"), prefixed("gamma"));
    let alpha = create(
        &api,
        "alpha",
        json!({"bucket": {"name": bucket_a, "accessLogging": {"targetBucket": logs, "targetPrefix": "tfstate/"}},
            "encryption": {"mode": "KMS", "kmsKey": {"create": {"deletionWindowDays": 7}}},
            "locking": {"mode": "DynamoDB"}, "deletionPolicy": "Delete", "tags": {"team": "a", "env": "dev"},
            "audit": {"cloudTrail": {"logBucket": logs, "logPrefix": "audit"}},
            "replication": {"region": TEST_VALUES.replica_region},
            "access": {"trust": {"oidcProviderArn": OIDC, "serviceAccounts": [{"namespace": "ci", "name": "runner"}]}}}),
    )
    .await;
    let beta = create(
        &api,
        "beta",
        json!({"bucket": {"name": bucket_b}, "encryption": {"mode": "KMS", "kmsKey": {"existingKeyArn": existing_arn}},
            "locking": {"mode": "Lockfile"},
            "access": {"trust": {"serviceAccounts": [{"namespace": "team", "name": "tf"}], "eksPodIdentity": true}}}),
    )
    .await;
    let gamma = create(
        &api,
        "gamma",
        json!({"bucket": {"name": bucket_c}, "encryption": {"mode": "AES256"},
            "locking": {"mode": "Both", "table": {"pointInTimeRecovery": false, "deletionProtection": false}},
            "access": {"trust": {"awsPrincipals": [ROOT]}, "permissionsBoundaryArn": BOUNDARY}}),
    )
    .await;
    for obj in [&alpha, &beta, &gamma] {
        assert_managed(&aws, obj).await;
    }
    // The resources the run uses, by kind, and the template rendered for the ground's account
    // and region (step 5).
    let status = |o: &TerraformStateBackend| o.status.clone().expect("status");
    let (sa, sb, sc) = (status(&alpha), status(&beta), status(&gamma));
    let account = sa.account_id.clone().expect("status.accountId");
    let region = ground.var("AWS_REGION").to_string();
    let values = Values { account: &account, region: &region, ..TEST_VALUES };
    let replica_region = TEST_VALUES.replica_region;
    let used: BTreeMap<Kind, Vec<String>> = BTreeMap::from([
        (Kind::Any, vec!["*".to_string()]),
        (
            Kind::Bucket,
            [&bucket_a, &bucket_b, &bucket_c]
                .map(|b| format!("arn:aws:s3:::{b}"))
                .into_iter()
                .chain([sa.replica_bucket_arn.clone().expect("status.replicaBucketArn")])
                .collect(),
        ),
        (Kind::Table, [&sa, &sc].iter().map(|s| s.lock_table_arn.clone().expect("status.lockTableArn")).collect()),
        (
            Kind::Role,
            [&sa, &sb, &sc]
                .iter()
                .map(|s| s.role_arn.clone().expect("status.roleArn"))
                .chain([sa.replication_role_arn.clone().expect("status.replicationRoleArn")])
                .collect(),
        ),
        (Kind::Key, vec![sa.kms_key_arn.clone().expect("status.kmsKeyArn"), existing_arn.clone()]),
        (Kind::Alias, vec![format!("arn:aws:kms:{region}:{account}:alias/tfstate-{ns}-alpha")]),
        (Kind::ReplicaKey, vec![sa.replica_kms_key_arn.clone().expect("status.replicaKmsKeyArn")]),
        (Kind::ReplicaAlias, vec![format!("arn:aws:kms:{replica_region}:{account}:alias/tfstate-{ns}-alpha-replica")]),
        (Kind::Trail, vec![sa.trail_arn.clone().expect("status.trailArn")]),
        // The lock files of the two lock-file backends (the default state key).
        (
            Kind::LockObject,
            [(&bucket_b, "beta"), (&bucket_c, "gamma")]
                .map(|(b, n)| format!("arn:aws:s3:::{b}/{ns}/{n}/terraform.tfstate.tflock"))
                .to_vec(),
        ),
    ]);

    // 2. Spec updates: tags changed, added and removed on every resource, a key administrator
    //    (key policy), another trusted principal, a longer session, a boundary, shorter lifecycle;
    //    and a boundary removed.
    patch_spec(
        &api,
        "alpha",
        json!({"tags": {"team": "b", "env": null, "extra": "x"}, "bucket": {"noncurrentVersionExpirationDays": 30},
            "encryption": {"kmsKey": {"create": {"admins": [KEY_ADMIN]}}},
            "access": {"trust": {"awsPrincipals": [ROOT]}, "maxSessionDurationSeconds": 7200,
                "permissionsBoundaryArn": BOUNDARY}}),
    )
    .await;
    let alpha_status = wait_ready(&api, "alpha").await.status.expect("status");
    patch_spec(&api, "gamma", json!({"access": {"permissionsBoundaryArn": null}})).await;
    wait_ready(&api, "gamma").await;

    // 3. Out-of-band drift on alpha, each repaired before the next.
    let key_arn = alpha_status.kms_key_arn.clone().expect("status.kmsKeyArn");
    let key_id = kms::describe_key(&aws.kms, &key_arn).await.expect("DescribeKey").expect("the key").key_id;
    let alias = format!("alias/tfstate-{ns}-alpha");
    let (k, b) = (&aws.kms, bucket_a.as_str());
    let key_state = async || kms::describe_key(k, &key_id).await.ok().flatten().map(|i| i.state).unwrap_or_default();

    k.disable_key_rotation().key_id(&key_id).send().await.expect("DisableKeyRotation");
    eventually("key rotation", async || {
        k.get_key_rotation_status().key_id(&key_id).send().await.is_ok_and(|o| o.key_rotation_enabled())
    })
    .await;
    aws.s3.delete_bucket_policy().bucket(b).send().await.expect("DeleteBucketPolicy");
    eventually("bucket policy", async || aws.s3.get_bucket_policy().bucket(b).send().await.is_ok()).await;
    let writer = OwnershipControlsRule::builder().object_ownership(ObjectOwnership::ObjectWriter).build().unwrap();
    let controls = OwnershipControls::builder().rules(writer).build().unwrap();
    aws.s3.put_bucket_ownership_controls().bucket(b).ownership_controls(controls).send().await.expect("ownership");
    eventually("object ownership", async || {
        s3::get_settings(&aws.s3, b, false)
            .await
            .is_ok_and(|s| s.object_ownership.as_deref() == Some("BucketOwnerEnforced"))
    })
    .await;
    k.disable_key().key_id(&key_id).send().await.expect("DisableKey");
    eventually("disabled key", async || key_state().await == "Enabled").await;
    k.schedule_key_deletion().key_id(&key_id).pending_window_in_days(7).send().await.expect("ScheduleKeyDeletion");
    eventually("key scheduled for deletion", async || key_state().await == "Enabled").await;
    k.delete_alias().alias_name(&alias).send().await.expect("DeleteAlias");
    eventually("key alias", async || kms::describe_key(k, &alias).await.is_ok_and(|i| i.is_some())).await;
    let trail = format!("tfstate-{ns}.alpha");
    let ct = &aws.cloudtrail;
    ct.stop_logging().name(&trail).send().await.expect("StopLogging");
    eventually("trail logging", async || {
        ct.get_trail_status().name(&trail).send().await.is_ok_and(|s| s.is_logging() == Some(true))
    })
    .await;
    ct.update_trail().name(&trail).enable_log_file_validation(false).send().await.expect("UpdateTrail");
    eventually("trail log file validation", async || {
        ct.get_trail()
            .name(&trail)
            .send()
            .await
            .is_ok_and(|t| t.trail().and_then(|t| t.log_file_validation_enabled()) == Some(true))
    })
    .await;
    // A user tag removed from the spec: RemoveTags on the trail (and untag on the others).
    patch_spec(&api, "alpha", json!({"tags": {"extra": null}})).await;
    wait_ready(&api, "alpha").await;

    // 4. Deletion: alpha (deletionPolicy Delete, empty bucket) takes everything with it; beta and
    //    gamma (Retain) leave AWS as it is.
    let role_a = alpha_status.role_arn.clone().expect("status.roleArn");
    for name in ["alpha", "beta", "gamma"] {
        api.delete(name, &DeleteParams::default()).await.expect("delete backend");
    }
    for name in ["alpha", "beta", "gamma"] {
        wait_gone(&api, name, Duration::from_secs(60)).await;
    }
    assert_eq!(s3::get_tags(&aws.s3, &bucket_a).await.expect("GetBucketTagging"), None, "alpha's bucket deleted");
    let role_name = role_a.rsplit('/').next().unwrap_or_default();
    assert!(iam::get_role(&aws.iam, role_name).await.expect("GetRole").is_none(), "alpha's role deleted");
    assert_eq!(key_state().await, "PendingDeletion", "alpha's key scheduled for deletion");
    let trail_gone = aws.cloudtrail.get_trail().name(&trail).send().await;
    assert!(format!("{trail_gone:?}").contains("TrailNotFoundException"), "alpha's trail deleted: {trail_gone:?}");
    assert!(s3::get_tags(&aws.s3, &bucket_b).await.expect("GetBucketTagging").is_some(), "beta's bucket kept");

    // 5. Every operation called -> its actions -> allowed by the policy on every resource of
    //    their kind the run used.
    let calls = operator.ctx.aws.calls().snapshot();
    drop(operator);
    delete_namespace(&client, &ns).await;
    let mut by_operation: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for (key, n) in &calls {
        let counts = by_operation.entry((key.service.clone(), key.operation.clone())).or_default();
        if key.outcome == Outcome::Ok { counts.0 += n } else { counts.1 += n }
    }
    let statements = statements_of(&full_policy(&values, false));
    let (mut problems, mut exercised) = (structural_problems(&statements, &values), BTreeSet::new());
    eprintln!("{} operations called (ok / failed calls, IAM actions -> statements):", by_operation.len());
    for ((service, operation), (ok, failed)) in &by_operation {
        let Some(actions) = actions_of(service, operation) else {
            eprintln!("  {service:<8} {operation:<32} {ok:>4} / {failed:<3} NOT IN THE TABLE");
            problems.push(format!(
                "{service} {operation} was called but is missing from OPERATIONS in this test: add its IAM action(s) \
                 there, to {POLICY_JSON} and to {POLICY_DOC}"
            ));
            continue;
        };
        let granted: Vec<String> = actions
            .iter()
            .map(|a| {
                exercised.insert(a.to_string());
                let mut sids = BTreeSet::new();
                for resource in kinds_of(a).iter().flat_map(|kind| &used[kind]) {
                    match allowed_by(&statements, a, resource) {
                        Some(sid) => {
                            sids.insert(sid);
                        }
                        None => {
                            problems.push(format!(
                                "{service} {operation} needs {a} on {resource}, which {POLICY_JSON} rendered with \
                                 {values:?} does not allow"
                            ));
                            sids.insert("NOT ALLOWED".to_string());
                        }
                    }
                }
                format!("{a} -> {}", sids.into_iter().collect::<Vec<_>>().join(", "))
            })
            .collect();
        eprintln!("  {service:<8} {operation:<32} {ok:>4} / {failed:<3} {}", granted.join(", "));
    }
    // The log bucket is not the operator's: no write of the policy reaches it.
    let log_bucket = format!("arn:aws:s3:::{logs}");
    for action in OPERATIONS.iter().flat_map(|(_, _, a)| a.iter()).filter(|a| a.starts_with("s3:") && is_write(a)) {
        if let Some(sid) = allowed_by(&statements, action, &log_bucket) {
            problems.push(format!("{sid} allows {action} on the log bucket {logs}, outside <NAME_PREFIX>"));
        }
    }
    let never: Vec<String> = statements
        .iter()
        .filter(|s| s.allow)
        .flat_map(|s| s.actions.iter().map(move |a| format!("{a} ({})", s.sid)))
        .filter(|a| !exercised.iter().any(|e| a.starts_with(&format!("{e} "))))
        .collect();
    eprintln!(
        "policy actions this run never needed ({}; see \"Rarely used actions\" in {POLICY_DOC}): {}",
        never.len(),
        if never.is_empty() { "none".to_string() } else { never.join(", ") }
    );
    assert!(!by_operation.is_empty(), "the operator's call counter saw nothing");
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}
