//! S3 replication configuration: thin typed wrappers (V2 schema, one rule).

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{
    DeleteMarkerReplication, DeleteMarkerReplicationStatus, Destination, EncryptionConfiguration, Metrics,
    MetricsStatus, ReplicationConfiguration, ReplicationRule, ReplicationRuleFilter, ReplicationRuleStatus,
    ReplicationTime, ReplicationTimeStatus, ReplicationTimeValue, SourceSelectionCriteria, SseKmsEncryptedObjects,
    SseKmsEncryptedObjectsStatus,
};

use super::super::error::{AwsError, Context, build_error, optional};

const S3: &str = "s3";

/// Replication Time Control's (and its metrics') threshold: S3 supports 15 minutes only.
pub const RTC_MINUTES: i32 = 15;

/// One replication rule, reduced to what the operator manages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationRuleSettings {
    /// Rule ID.
    pub id: String,
    /// Priority (V2 schema).
    pub priority: Option<i32>,
    /// Status Enabled.
    pub enabled: bool,
    /// V2 `Filter.Prefix` (`None`: no Filter, the V1 schema, or a tag filter).
    pub filter_prefix: Option<String>,
    /// DeleteMarkerReplication Enabled.
    pub delete_markers: bool,
    /// SourceSelectionCriteria.SseKmsEncryptedObjects Enabled.
    pub sse_kms_objects: bool,
    /// Destination bucket ARN.
    pub destination_bucket_arn: String,
    /// Destination `EncryptionConfiguration.ReplicaKmsKeyID`.
    pub replica_kms_key_id: Option<String>,
    /// ReplicationTime Enabled with [`RTC_MINUTES`].
    pub replication_time: bool,
    /// Metrics Enabled with an event threshold of [`RTC_MINUTES`].
    pub metrics: bool,
}

/// A bucket's replication configuration, as the operator manages it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationSettings {
    /// The IAM role S3 assumes.
    pub role_arn: String,
    /// The rules, sorted by ID.
    pub rules: Vec<ReplicationRuleSettings>,
}

/// GetBucketReplication; `None` when the bucket has no replication configuration.
pub async fn get_replication(c: &Client, bucket: &str) -> Result<Option<ReplicationSettings>, AwsError> {
    let out = optional(c.get_bucket_replication().bucket(bucket).send().await.ctx(S3, "GetBucketReplication"))?;
    let Some(conf) = out.and_then(|o| o.replication_configuration().cloned()) else { return Ok(None) };
    let mut rules: Vec<ReplicationRuleSettings> = conf.rules().iter().map(rule_from_sdk).collect();
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Some(ReplicationSettings { role_arn: conf.role().to_string(), rules }))
}

fn rule_from_sdk(r: &ReplicationRule) -> ReplicationRuleSettings {
    let d = r.destination();
    let rtc = d.and_then(|d| d.replication_time());
    let metrics = d.and_then(|d| d.metrics());
    ReplicationRuleSettings {
        id: r.id().unwrap_or_default().to_string(),
        priority: r.priority(),
        enabled: r.status() == &ReplicationRuleStatus::Enabled,
        filter_prefix: r
            .filter()
            .filter(|f| f.tag().is_none() && f.and().is_none())
            .map(|f| f.prefix().unwrap_or_default().to_string()),
        delete_markers: r
            .delete_marker_replication()
            .is_some_and(|m| m.status() == Some(&DeleteMarkerReplicationStatus::Enabled)),
        sse_kms_objects: r
            .source_selection_criteria()
            .and_then(|c| c.sse_kms_encrypted_objects())
            .is_some_and(|o| o.status() == &SseKmsEncryptedObjectsStatus::Enabled),
        destination_bucket_arn: d.map(|d| d.bucket().to_string()).unwrap_or_default(),
        replica_kms_key_id: d
            .and_then(|d| d.encryption_configuration())
            .and_then(|e| e.replica_kms_key_id())
            .map(str::to_string),
        replication_time: rtc.is_some_and(|t| {
            t.status() == &ReplicationTimeStatus::Enabled && t.time().and_then(|v| v.minutes()) == Some(RTC_MINUTES)
        }),
        metrics: metrics.is_some_and(|m| {
            m.status() == &MetricsStatus::Enabled && m.event_threshold().and_then(|v| v.minutes()) == Some(RTC_MINUTES)
        }),
    }
}

/// PutBucketReplication with exactly `settings` (the source bucket must be versioned).
pub async fn put_replication(c: &Client, bucket: &str, settings: &ReplicationSettings) -> Result<(), AwsError> {
    let op = "PutBucketReplication";
    let err = |e| build_error(S3, op, e);
    let mut rules = Vec::new();
    for r in &settings.rules {
        let minutes = || ReplicationTimeValue::builder().minutes(RTC_MINUTES).build();
        let mut dest = Destination::builder().bucket(&r.destination_bucket_arn);
        if let Some(key) = &r.replica_kms_key_id {
            dest = dest.encryption_configuration(EncryptionConfiguration::builder().replica_kms_key_id(key).build());
        }
        if r.replication_time {
            dest = dest.replication_time(
                ReplicationTime::builder()
                    .status(ReplicationTimeStatus::Enabled)
                    .time(minutes())
                    .build()
                    .map_err(err)?,
            );
        }
        if r.metrics {
            dest = dest.metrics(
                Metrics::builder().status(MetricsStatus::Enabled).event_threshold(minutes()).build().map_err(err)?,
            );
        }
        let marker = if r.delete_markers {
            DeleteMarkerReplicationStatus::Enabled
        } else {
            DeleteMarkerReplicationStatus::Disabled
        };
        let sse = if r.sse_kms_objects {
            SseKmsEncryptedObjectsStatus::Enabled
        } else {
            SseKmsEncryptedObjectsStatus::Disabled
        };
        let mut rule = ReplicationRule::builder()
            .id(&r.id)
            .set_priority(r.priority)
            .status(if r.enabled { ReplicationRuleStatus::Enabled } else { ReplicationRuleStatus::Disabled })
            .delete_marker_replication(DeleteMarkerReplication::builder().status(marker).build())
            .source_selection_criteria(
                SourceSelectionCriteria::builder()
                    .sse_kms_encrypted_objects(SseKmsEncryptedObjects::builder().status(sse).build().map_err(err)?)
                    .build(),
            )
            .destination(dest.build().map_err(err)?);
        if let Some(prefix) = &r.filter_prefix {
            rule = rule.filter(ReplicationRuleFilter::builder().prefix(prefix).build());
        }
        rules.push(rule.build().map_err(err)?);
    }
    let conf =
        ReplicationConfiguration::builder().role(&settings.role_arn).set_rules(Some(rules)).build().map_err(err)?;
    c.put_bucket_replication().bucket(bucket).replication_configuration(conf).send().await.ctx(S3, op)?;
    Ok(())
}

/// DeleteBucketReplication (none is fine).
pub async fn delete_replication(c: &Client, bucket: &str) -> Result<(), AwsError> {
    optional(c.delete_bucket_replication().bucket(bucket).send().await.ctx(S3, "DeleteBucketReplication")).map(|_| ())
}
