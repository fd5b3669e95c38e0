//! DynamoDB: thin typed wrappers for the lock table.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PointInTimeRecoverySpecification,
    ScalarAttributeType, SseSpecification, SseStatus, SseType, Tag,
};

use super::error::{AwsError, Context, build_error, optional};
use super::{ConditionalDelete, Tags, tag_diff};

const DDB: &str = "dynamodb";

/// The lock table as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableInfo {
    /// Table ARN.
    pub arn: String,
    /// TableStatus (`CREATING`, `ACTIVE`, ...).
    pub status: String,
    /// Hash key name and type, e.g. (`LockID`, `S`).
    pub hash_key: Option<(String, String)>,
    /// Whether the table has a range key too.
    pub has_range_key: bool,
    /// Billing mode (`PAY_PER_REQUEST`, `PROVISIONED`).
    pub billing_mode: String,
    /// KMS key of SSE with a customer managed key; `None` with AWS owned keys.
    pub sse_kms_key_arn: Option<String>,
    /// Deletion protection.
    pub deletion_protection: bool,
}

/// Settings read with separate calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSettings {
    /// Point-in-time recovery.
    pub pitr: bool,
    /// Tags.
    pub tags: Tags,
}

/// DescribeTable; `None` when the table does not exist.
pub async fn describe(c: &Client, name: &str) -> Result<Option<TableInfo>, AwsError> {
    let out = optional(c.describe_table().table_name(name).send().await.ctx(DDB, "DescribeTable"))?;
    Ok(out.and_then(|o| o.table().cloned()).map(|t| {
        let attr_type = |n: &str| {
            t.attribute_definitions()
                .iter()
                .find(|a| a.attribute_name() == n)
                .map(|a| a.attribute_type().as_str().to_string())
                .unwrap_or_default()
        };
        let hash_key = t
            .key_schema()
            .iter()
            .find(|k| k.key_type() == &KeyType::Hash)
            .map(|k| (k.attribute_name().to_string(), attr_type(k.attribute_name())));
        let sse = t.sse_description();
        let sse_on = sse.is_some_and(|s| {
            matches!(s.status(), Some(SseStatus::Enabled | SseStatus::Enabling | SseStatus::Updating))
        });
        TableInfo {
            arn: t.table_arn().unwrap_or_default().to_string(),
            status: t.table_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            hash_key,
            has_range_key: t.key_schema().iter().any(|k| k.key_type() == &KeyType::Range),
            // DescribeTable omits BillingModeSummary for tables created as PROVISIONED long ago.
            billing_mode: t
                .billing_mode_summary()
                .and_then(|b| b.billing_mode())
                .map(|b| b.as_str().to_string())
                .unwrap_or_else(|| "PROVISIONED".into()),
            sse_kms_key_arn: if sse_on { sse.and_then(|s| s.kms_master_key_arn()).map(str::to_string) } else { None },
            deletion_protection: t.deletion_protection_enabled().unwrap_or(false),
        }
    }))
}

/// Reads PITR and tags concurrently (2 reads).
pub async fn get_settings(c: &Client, name: &str, arn: &str) -> Result<TableSettings, AwsError> {
    let (backups, tags) = tokio::try_join!(
        async { c.describe_continuous_backups().table_name(name).send().await.ctx(DDB, "DescribeContinuousBackups") },
        get_tags(c, arn),
    )?;
    let pitr = backups
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description())
        .and_then(|p| p.point_in_time_recovery_status())
        .is_some_and(|s| s.as_str() == "ENABLED");
    Ok(TableSettings { pitr, tags })
}

/// The table's tags (ListTagsOfResource, 1 read).
pub async fn get_tags(c: &Client, arn: &str) -> Result<Tags, AwsError> {
    let out = c.list_tags_of_resource().resource_arn(arn).send().await.ctx(DDB, "ListTagsOfResource")?;
    Ok(out.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect())
}

/// Creates the lock table: hash key `LockID` (S), on-demand, SSE with `kms_key_arn`
/// (AWS owned key when `None`), deletion protection as asked, tagged.
pub async fn create(
    c: &Client,
    name: &str,
    kms_key_arn: Option<&str>,
    deletion_protection: bool,
    tags: &Tags,
) -> Result<String, AwsError> {
    let op = "CreateTable";
    let out = c
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("LockID")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| build_error(DDB, op, e))?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("LockID")
                .key_type(KeyType::Hash)
                .build()
                .map_err(|e| build_error(DDB, op, e))?,
        )
        .billing_mode(BillingMode::PayPerRequest)
        .sse_specification(sse(kms_key_arn))
        .deletion_protection_enabled(deletion_protection)
        .set_tags(Some(sdk_tags(tags)?))
        .send()
        .await
        .ctx(DDB, op)?;
    Ok(out.table_description().and_then(|t| t.table_arn()).unwrap_or_default().to_string())
}

fn sse(kms_key_arn: Option<&str>) -> SseSpecification {
    match kms_key_arn {
        Some(arn) => SseSpecification::builder().enabled(true).sse_type(SseType::Kms).kms_master_key_id(arn).build(),
        // Disabled here means "AWS owned key", DynamoDB's always-on default encryption.
        None => SseSpecification::builder().enabled(false).build(),
    }
}

/// Changes deletion protection, SSE key and billing mode in one UpdateTable.
pub async fn update(
    c: &Client,
    name: &str,
    deletion_protection: Option<bool>,
    sse_key: Option<Option<&str>>,
    on_demand: bool,
) -> Result<(), AwsError> {
    let mut req = c.update_table().table_name(name).set_deletion_protection_enabled(deletion_protection);
    if let Some(key) = sse_key {
        req = req.sse_specification(sse(key));
    }
    if on_demand {
        req = req.billing_mode(BillingMode::PayPerRequest);
    }
    req.send().await.ctx(DDB, "UpdateTable").map(|_| ())
}

/// Turns point-in-time recovery on or off.
pub async fn set_pitr(c: &Client, name: &str, enabled: bool) -> Result<(), AwsError> {
    let spec = PointInTimeRecoverySpecification::builder()
        .point_in_time_recovery_enabled(enabled)
        .build()
        .map_err(|e| build_error(DDB, "UpdateContinuousBackups", e))?;
    c.update_continuous_backups()
        .table_name(name)
        .point_in_time_recovery_specification(spec)
        .send()
        .await
        .ctx(DDB, "UpdateContinuousBackups")
        .map(|_| ())
}

/// Makes the table's tags exactly `desired`.
pub async fn sync_tags(c: &Client, arn: &str, current: &Tags, desired: &Tags) -> Result<(), AwsError> {
    let diff = tag_diff(current, desired);
    if !diff.set.is_empty() {
        c.tag_resource().resource_arn(arn).set_tags(Some(sdk_tags(&diff.set)?)).send().await.ctx(DDB, "TagResource")?;
    }
    if !diff.remove.is_empty() {
        c.untag_resource().resource_arn(arn).set_tag_keys(Some(diff.remove)).send().await.ctx(DDB, "UntagResource")?;
    }
    Ok(())
}

/// Deletes the table (not found is fine).
pub async fn delete(c: &Client, name: &str) -> Result<(), AwsError> {
    optional(c.delete_table().table_name(name).send().await.ctx(DDB, "DeleteTable")).map(|_| ())
}

fn sdk_tags(tags: &Tags) -> Result<Vec<Tag>, AwsError> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| build_error(DDB, "TagResource", e))
}

/// A Terraform lock item as read: the item exists, with its `Info` attribute (`None` when
/// it has none, or not as a string).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockItem {
    /// The `Info` attribute: Terraform's lock info JSON.
    pub info: Option<String>,
}

/// GetItem of the lock item `lock_id` (`<bucket>/<key>`), strongly consistent, projecting
/// only `LockID` and `Info` (what Terraform itself reads); `None` when no lock is held.
pub async fn get_lock(c: &Client, table: &str, lock_id: &str) -> Result<Option<LockItem>, AwsError> {
    let out = c
        .get_item()
        .table_name(table)
        .key("LockID", AttributeValue::S(lock_id.to_string()))
        .projection_expression("LockID, Info")
        .consistent_read(true)
        .send()
        .await
        .ctx(DDB, "GetItem")?;
    Ok(out
        .item()
        .filter(|i| !i.is_empty())
        .map(|item| LockItem { info: item.get("Info").and_then(|v| v.as_s().ok()).cloned() }))
}

/// DeleteItem of the lock item `lock_id`, only if its `Info` is still exactly `info` (as
/// `terraform force-unlock` does): a lock taken by someone else in between is never removed.
pub async fn delete_lock_if(c: &Client, table: &str, lock_id: &str, info: &str) -> Result<ConditionalDelete, AwsError> {
    delete_item_if(c, table, lock_id, "Info", info).await
}

/// DeleteItem of `lock_id`, only if its string attribute `attribute` is still `value`.
async fn delete_item_if(
    c: &Client,
    table: &str,
    lock_id: &str,
    attribute: &str,
    value: &str,
) -> Result<ConditionalDelete, AwsError> {
    let out = c
        .delete_item()
        .table_name(table)
        .key("LockID", AttributeValue::S(lock_id.to_string()))
        .condition_expression("#attribute = :value")
        .expression_attribute_names("#attribute", attribute)
        .expression_attribute_values(":value", AttributeValue::S(value.to_string()))
        .send()
        .await
        .ctx(DDB, "DeleteItem");
    match out {
        Ok(_) => Ok(ConditionalDelete::Deleted),
        Err(e) if e.code == "ConditionalCheckFailedException" => Ok(ConditionalDelete::Changed),
        Err(e) => Err(e),
    }
}

/// Most Scan pages read for digest items: a lock table holds one lock and one digest per
/// workspace, far less than a page (1 MB).
const MAX_DIGEST_PAGES: usize = 10;

/// Terraform's state digest items of `bucket` in the lock table, `<bucket>/<key>-md5` (one
/// per workspace), as (`LockID`, `Digest`): a Scan projecting only those two attributes.
pub async fn digest_items(c: &Client, table: &str, bucket: &str) -> Result<Vec<(String, String)>, AwsError> {
    let (mut items, mut start) = (Vec::new(), None);
    for _ in 0..MAX_DIGEST_PAGES {
        let out = c
            .scan()
            .table_name(table)
            .projection_expression("LockID, Digest")
            .filter_expression("begins_with(LockID, :bucket) AND attribute_exists(Digest)")
            .expression_attribute_values(":bucket", AttributeValue::S(format!("{bucket}/")))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .ctx(DDB, "Scan")?;
        for item in out.items() {
            let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
            if let (Some(id), Some(digest)) = (text("LockID"), text("Digest"))
                && id.ends_with("-md5")
            {
                items.push((id, digest));
            }
        }
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    Ok(items)
}

/// DeleteItem of the digest item `lock_id`, only if its `Digest` is still `digest`: a digest a
/// runner wrote in between is current and stays.
pub async fn delete_digest_if(
    c: &Client,
    table: &str,
    lock_id: &str,
    digest: &str,
) -> Result<ConditionalDelete, AwsError> {
    delete_item_if(c, table, lock_id, "Digest", digest).await
}
