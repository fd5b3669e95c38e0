//! CloudTrail: thin typed wrappers for the backend's audit trail (S3 data events on the
//! state bucket's objects, delivered to a log bucket of the user's).

use aws_sdk_cloudtrail::Client;
use aws_sdk_cloudtrail::types::{AdvancedEventSelector, AdvancedFieldSelector, Tag};

use super::error::{AwsError, Context, build_error, optional};
use super::{Tags, tag_diff};

const CT: &str = "cloudtrail";

/// The settings of a trail that the operator manages, as CreateTrail and UpdateTrail take
/// them (and GetTrail returns them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrailConfig {
    /// Trail name (unique per account and region).
    pub name: String,
    /// Bucket that receives the log files.
    pub log_bucket: String,
    /// Prefix of the log files in that bucket (`None`: none).
    pub log_prefix: Option<String>,
    /// Whether the trail records every region (shadow trails elsewhere).
    pub multi_region: bool,
    /// Whether global services' events (IAM, STS...: management events) are included.
    pub global_service_events: bool,
    /// Whether CloudTrail writes signed digest files (log file integrity validation).
    pub log_file_validation: bool,
}

/// A trail as GetTrail shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrailInfo {
    /// Trail ARN.
    pub arn: String,
    /// Region the trail was created in.
    pub home_region: Option<String>,
    /// Whether it is an AWS Organizations trail (those are the management account's).
    pub organization: bool,
    /// The managed settings, as they are now.
    pub config: TrailConfig,
}

/// One field condition of an advanced event selector. Values are kept sorted, so that two
/// selectors that mean the same compare equal.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldSelector {
    /// The field, e.g. `eventCategory`, `resources.type`, `resources.ARN`, `readOnly`.
    pub field: String,
    /// `Equals` values.
    pub equals: Vec<String>,
    /// `StartsWith` values.
    pub starts_with: Vec<String>,
    /// `EndsWith` values.
    pub ends_with: Vec<String>,
    /// `NotEquals` values.
    pub not_equals: Vec<String>,
    /// `NotStartsWith` values.
    pub not_starts_with: Vec<String>,
    /// `NotEndsWith` values.
    pub not_ends_with: Vec<String>,
}

/// An advanced event selector: every field condition must hold for an event to be logged.
/// Field conditions are kept sorted by field (their order does not matter to CloudTrail).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventSelector {
    /// A descriptive name (CloudTrail stores it, it selects nothing).
    pub name: Option<String>,
    /// The field conditions.
    pub fields: Vec<FieldSelector>,
}

impl EventSelector {
    /// The selector in its canonical form: values and fields sorted.
    pub fn normalized(mut self) -> Self {
        for f in &mut self.fields {
            for values in [
                &mut f.equals,
                &mut f.starts_with,
                &mut f.ends_with,
                &mut f.not_equals,
                &mut f.not_starts_with,
                &mut f.not_ends_with,
            ] {
                values.sort();
                values.dedup();
            }
        }
        self.fields.sort();
        self
    }
}

/// What a trail records and whether it runs: GetTrailStatus, GetEventSelectors, ListTags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrailSettings {
    /// Whether the trail is logging (StartLogging / StopLogging).
    pub is_logging: bool,
    /// How many basic (non-advanced) event selectors it has: a trail uses either kind.
    pub basic_selectors: usize,
    /// Its advanced event selectors, each normalized, sorted.
    pub advanced_selectors: Vec<EventSelector>,
}

/// GetTrail by name or ARN; `None` when there is no such trail in this region.
pub async fn get_trail(c: &Client, name_or_arn: &str) -> Result<Option<TrailInfo>, AwsError> {
    let out = optional(c.get_trail().name(name_or_arn).send().await.ctx(CT, "GetTrail"))?;
    Ok(out.and_then(|o| o.trail().cloned()).map(|t| TrailInfo {
        arn: t.trail_arn().unwrap_or_default().to_string(),
        home_region: t.home_region().map(str::to_string),
        organization: t.is_organization_trail().unwrap_or(false),
        config: TrailConfig {
            name: t.name().unwrap_or_default().to_string(),
            log_bucket: t.s3_bucket_name().unwrap_or_default().to_string(),
            log_prefix: t.s3_key_prefix().filter(|p| !p.is_empty()).map(str::to_string),
            multi_region: t.is_multi_region_trail().unwrap_or(false),
            global_service_events: t.include_global_service_events().unwrap_or(false),
            log_file_validation: t.log_file_validation_enabled().unwrap_or(false),
        },
    }))
}

/// ListTags of one trail.
pub async fn get_tags(c: &Client, arn: &str) -> Result<Tags, AwsError> {
    let out = c.list_tags().resource_id_list(arn).send().await.ctx(CT, "ListTags")?;
    Ok(out
        .resource_tag_list()
        .iter()
        .filter(|r| r.resource_id() == Some(arn))
        .flat_map(|r| r.tags_list())
        .map(|t| (t.key().to_string(), t.value().unwrap_or_default().to_string()))
        .collect())
}

/// Reads whether the trail logs and what it selects, concurrently (2 reads).
pub async fn get_settings(c: &Client, name: &str) -> Result<TrailSettings, AwsError> {
    let (status, selectors) =
        tokio::try_join!(async { c.get_trail_status().name(name).send().await.ctx(CT, "GetTrailStatus") }, async {
            c.get_event_selectors().trail_name(name).send().await.ctx(CT, "GetEventSelectors")
        },)?;
    let mut advanced: Vec<EventSelector> = selectors.advanced_event_selectors().iter().map(from_sdk).collect();
    advanced.sort();
    Ok(TrailSettings {
        is_logging: status.is_logging().unwrap_or(false),
        basic_selectors: selectors.event_selectors().len(),
        advanced_selectors: advanced,
    })
}

fn from_sdk(s: &AdvancedEventSelector) -> EventSelector {
    EventSelector {
        name: s.name().filter(|n| !n.is_empty()).map(str::to_string),
        fields: s
            .field_selectors()
            .iter()
            .map(|f| FieldSelector {
                field: f.field().to_string(),
                equals: f.equals().to_vec(),
                starts_with: f.starts_with().to_vec(),
                ends_with: f.ends_with().to_vec(),
                not_equals: f.not_equals().to_vec(),
                not_starts_with: f.not_starts_with().to_vec(),
                not_ends_with: f.not_ends_with().to_vec(),
            })
            .collect(),
    }
    .normalized()
}

/// CreateTrail, tagged in the same call. Returns the trail's ARN. The new trail does not log
/// yet (see [`start_logging`]) and records CloudTrail's default selection (management
/// events) until [`put_selectors`] replaces it.
pub async fn create_trail(c: &Client, config: &TrailConfig, tags: &Tags) -> Result<String, AwsError> {
    let out = c
        .create_trail()
        .name(&config.name)
        .s3_bucket_name(&config.log_bucket)
        .set_s3_key_prefix(config.log_prefix.clone())
        .is_multi_region_trail(config.multi_region)
        .include_global_service_events(config.global_service_events)
        .enable_log_file_validation(config.log_file_validation)
        .set_tags_list(Some(sdk_tags(tags)))
        .send()
        .await
        .ctx(CT, "CreateTrail")?;
    Ok(out.trail_arn().unwrap_or_default().to_string())
}

/// UpdateTrail with every managed setting (an empty prefix removes the prefix).
pub async fn update_trail(c: &Client, config: &TrailConfig) -> Result<(), AwsError> {
    c.update_trail()
        .name(&config.name)
        .s3_bucket_name(&config.log_bucket)
        .s3_key_prefix(config.log_prefix.clone().unwrap_or_default())
        .is_multi_region_trail(config.multi_region)
        .include_global_service_events(config.global_service_events)
        .enable_log_file_validation(config.log_file_validation)
        .send()
        .await
        .ctx(CT, "UpdateTrail")
        .map(|_| ())
}

/// PutEventSelectors with exactly these advanced event selectors (basic ones are dropped:
/// a trail has one kind or the other).
pub async fn put_selectors(c: &Client, name: &str, selectors: &[EventSelector]) -> Result<(), AwsError> {
    let op = "PutEventSelectors";
    let mut sdk = Vec::with_capacity(selectors.len());
    for s in selectors {
        let mut b = AdvancedEventSelector::builder().set_name(s.name.clone());
        for f in &s.fields {
            let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
            let field = AdvancedFieldSelector::builder()
                .field(&f.field)
                .set_equals(some(&f.equals))
                .set_starts_with(some(&f.starts_with))
                .set_ends_with(some(&f.ends_with))
                .set_not_equals(some(&f.not_equals))
                .set_not_starts_with(some(&f.not_starts_with))
                .set_not_ends_with(some(&f.not_ends_with))
                .build()
                .map_err(|e| build_error(CT, op, e))?;
            b = b.field_selectors(field);
        }
        sdk.push(b.build().map_err(|e| build_error(CT, op, e))?);
    }
    c.put_event_selectors()
        .trail_name(name)
        .set_advanced_event_selectors(Some(sdk))
        .send()
        .await
        .ctx(CT, op)
        .map(|_| ())
}

/// StartLogging.
pub async fn start_logging(c: &Client, name: &str) -> Result<(), AwsError> {
    c.start_logging().name(name).send().await.ctx(CT, "StartLogging").map(|_| ())
}

/// StopLogging.
pub async fn stop_logging(c: &Client, name: &str) -> Result<(), AwsError> {
    c.stop_logging().name(name).send().await.ctx(CT, "StopLogging").map(|_| ())
}

/// Makes the trail's tags exactly `desired` (AddTags, RemoveTags).
pub async fn sync_tags(c: &Client, arn: &str, current: &Tags, desired: &Tags) -> Result<(), AwsError> {
    let diff = tag_diff(current, desired);
    if !diff.set.is_empty() {
        c.add_tags().resource_id(arn).set_tags_list(Some(sdk_tags(&diff.set))).send().await.ctx(CT, "AddTags")?;
    }
    if !diff.remove.is_empty() {
        let keys = diff.remove.iter().map(|k| Tag::builder().key(k).build()).collect::<Result<Vec<_>, _>>();
        let keys = keys.map_err(|e| build_error(CT, "RemoveTags", e))?;
        c.remove_tags().resource_id(arn).set_tags_list(Some(keys)).send().await.ctx(CT, "RemoveTags")?;
    }
    Ok(())
}

/// DeleteTrail by name or ARN (not found is fine). The log files already delivered stay in
/// the log bucket: CloudTrail never deletes them, and neither does the operator.
pub async fn delete_trail(c: &Client, name_or_arn: &str) -> Result<(), AwsError> {
    optional(c.delete_trail().name(name_or_arn).send().await.ctx(CT, "DeleteTrail")).map(|_| ())
}

fn sdk_tags(tags: &Tags) -> Vec<Tag> {
    // Tag::build fails only without a key, which a map entry always has.
    tags.iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect()
}
