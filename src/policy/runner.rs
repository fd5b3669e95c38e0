//! The backend role's inline policy: what Terraform's S3 backend documents as its minimum,
//! and nothing more. Above all no `s3:DeleteObject` on state: plan and apply only read and
//! overwrite it, so a runner (or a mistaken script) can never make the current state vanish.
//! The one Terraform command this refuses is `terraform workspace delete`, deliberately.

use super::document::{Effect, PolicyDocument, Statement};

/// What the runner policy depends on.
#[derive(Clone, Copy, Debug)]
pub struct RunnerPolicyInput<'a> {
    /// AWS partition, e.g. `aws`.
    pub partition: &'a str,
    /// The backend's region: the key may be used only through S3 and DynamoDB there.
    pub region: &'a str,
    /// The state bucket, when this object owns it now; `None` grants nothing in S3 (no
    /// state, no lock files): a bucket in Conflict contributes no statement.
    pub bucket: Option<&'a str>,
    /// Terraform's `key`.
    pub state_key: &'a str,
    /// The effective `workspace_key_prefix` (Terraform's default is `env:`).
    pub workspace_key_prefix: &'a str,
    /// S3 native locking (`use_lockfile`): lock mode Lockfile or Both.
    pub lockfile: bool,
    /// The DynamoDB lock table (lock mode DynamoDB or Both), when this object owns it now.
    pub table_arn: Option<&'a str>,
    /// The KMS key of the state (KMS encryption), when this object owns it now or may use it.
    pub kms_key_arn: Option<&'a str>,
    /// OpenTofu's client-side state encryption (`output.openTofuEncryption`): its `aws_kms`
    /// key provider calls KMS itself, so the key is used directly too.
    pub open_tofu_encryption: bool,
}

/// The runner policy: with the bucket `ListStatePrefixes`, `ReadWriteState` and (lock
/// files) `ManageLockFiles`; with the table `UseLockTable`; with the key `UseStateKey` (and,
/// with OpenTofu's client-side encryption, `OpenTofuStateEncryption`).
/// Parts not given contribute nothing, so the document may have no statement at all.
pub fn runner_policy(input: &RunnerPolicyInput<'_>) -> PolicyDocument {
    let mut statements = Vec::new();
    if let Some(bucket) = input.bucket {
        let bucket_arn = format!("arn:{}:s3:::{bucket}", input.partition);
        let (key, wkp) = (input.state_key, input.workspace_key_prefix);
        // The default workspace's object and every other workspace's `<wkp>/<workspace>/<key>`.
        let objects =
            |suffix: &str| [format!("{bucket_arn}/{key}{suffix}"), format!("{bucket_arn}/{wkp}/*/{key}{suffix}")];
        // Terraform lists `<wkp>/` to enumerate workspaces, and the key itself to find state.
        statements.push(
            Statement::new("ListStatePrefixes", Effect::Allow)
                .actions(["s3:ListBucket"])
                .resources([bucket_arn.as_str()])
                .condition("StringLike", "s3:prefix", [key.to_owned(), format!("{wkp}/"), format!("{wkp}/*")]),
        );
        statements.push(
            Statement::new("ReadWriteState", Effect::Allow)
                .actions(["s3:GetObject", "s3:PutObject"])
                .resources(objects("")),
        );
        if input.lockfile {
            // The lock file is created and deleted on every run, unlike the state.
            statements.push(
                Statement::new("ManageLockFiles", Effect::Allow)
                    .actions(["s3:GetObject", "s3:PutObject", "s3:DeleteObject"])
                    .resources(objects(".tflock")),
            );
        }
    }
    if let Some(table) = input.table_arn {
        statements.push(
            Statement::new("UseLockTable", Effect::Allow)
                .actions(["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"])
                .resources([table]),
        );
    }
    if let Some(kms_key) = input.kms_key_arn {
        // Terraform never calls KMS itself: S3 (SSE-KMS) and DynamoDB (the table's SSE) do,
        // on its behalf. Anything else, a direct Decrypt above all, is refused, unless
        // OpenTofu's client-side encryption asks for direct use (below, and only that).
        let suffix = super::key::dns_suffix(input.partition);
        let mut via = vec![format!("s3.{}.{suffix}", input.region)];
        if input.table_arn.is_some() {
            via.push(format!("dynamodb.{}.{suffix}", input.region));
        }
        statements.push(
            Statement::new("UseStateKey", Effect::Allow)
                .actions(["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"])
                .resources([kms_key])
                .condition("StringEquals", "kms:ViaService", via),
        );
        if input.open_tofu_encryption {
            statements.push(open_tofu_statement(kms_key));
        }
    }
    PolicyDocument::new(statements)
}

/// What OpenTofu's `aws_kms` key provider calls, on the backend's key only: `GenerateDataKey`
/// for each state or plan it writes, `Decrypt` for each it reads. No `kms:ViaService`: the
/// client calls KMS itself. It never passes an encryption context, while S3 and DynamoDB
/// always do (`aws:s3:arn`, the table's): requiring none (`Null` on
/// `kms:EncryptionContextKeys`) keeps this direct grant from opening data keys those services
/// made, which stay usable through the services only.
pub(crate) fn open_tofu_statement(kms_key: &str) -> Statement {
    Statement::new("OpenTofuStateEncryption", Effect::Allow).actions(OPEN_TOFU_ACTIONS).resources([kms_key]).condition(
        "Null",
        "kms:EncryptionContextKeys",
        ["true"],
    )
}

/// The actions of OpenTofu's `aws_kms` key provider.
pub(crate) const OPEN_TOFU_ACTIONS: [&str; 2] = ["kms:GenerateDataKey", "kms:Decrypt"];

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;
