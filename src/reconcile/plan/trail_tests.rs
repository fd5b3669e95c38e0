//! The trail's plan: created in the order that never logs anything but the state objects,
//! nothing planned when converged (whatever order AWS returns fields and values in), each
//! drift repaired by exactly its write, and what is not ours never touched.

use super::*;
use crate::aws::cloudtrail::{FieldSelector, TrailInfo, TrailSettings};
use crate::reconcile::desired::{Identity, desired_trail, ownership_tags};
use crate::reconcile::validate::{ObjectRef, OperatorDefaults, validate};

const OBJ: ObjectRef<'static> = ObjectRef { namespace: "team-payments", name: "payments-prod" };

fn owner() -> Owner {
    Owner { namespace: "team-payments".into(), name: "payments-prod".into(), uid: "uid-1".into() }
}

fn desired() -> DesiredTrail {
    let spec = serde_yaml_ng::from_str(
        "region: eu-west-1\nbucket: {name: acme-tfstate}\naccess: {trust: {awsPrincipals: ['arn:aws:iam::123456789012:role/ci']}}\naudit: {cloudTrail: {logBucket: acme-audit-logs, logPrefix: tfstate}}",
    )
    .unwrap();
    let valid = validate(OBJ, &spec, &OperatorDefaults::default()).expect("valid");
    let id = Identity { account_id: "123456789012".into(), partition: "aws".into(), operator_arn: "arn:x".into() };
    desired_trail(&valid, &id).expect("a trail")
}

fn tags() -> Tags {
    ownership_tags(&owner())
}

/// The trail as AWS shows it once converged, with `tags`.
fn observed(d: &DesiredTrail, tags: Tags) -> ObservedTrail {
    ObservedTrail {
        info: TrailInfo {
            arn: d.arn.clone(),
            home_region: Some("eu-west-1".into()),
            organization: false,
            config: d.config.clone(),
        },
        tags,
        settings: Some(TrailSettings { is_logging: true, basic_selectors: 0, advanced_selectors: d.selectors.clone() }),
    }
}

fn plan(o: Option<&ObservedTrail>) -> PartPlan<TrailChange> {
    plan_trail(&desired(), o, &tags(), &owner(), false, true)
}

#[test]
fn a_new_trail_gets_its_selectors_before_it_logs() {
    use TrailChange::*;
    assert_eq!(plan(None), Ok(vec![Create, PutSelectors, StartLogging]));
}

#[test]
fn a_converged_trail_plans_nothing_whatever_the_order_aws_answers_in() {
    let d = desired();
    assert_eq!(plan(Some(&observed(&d, tags()))), Ok(vec![]));
    let mut shuffled = observed(&d, tags());
    let settings = shuffled.settings.as_mut().unwrap();
    settings.advanced_selectors[0].fields.reverse();
    assert_eq!(plan(Some(&shuffled)), Ok(vec![]), "field order does not matter");
    // AWS's own tags are not ours to manage.
    let mut with_aws = tags();
    with_aws.insert("aws:cloudformation:stack-name".into(), "x".into());
    assert_eq!(plan(Some(&observed(&d, with_aws))), Ok(vec![]));
}

#[test]
fn each_drift_plans_exactly_its_repair() {
    use TrailChange::*;
    let d = desired();
    let damaged = |f: &dyn Fn(&mut ObservedTrail)| {
        let mut o = observed(&d, tags());
        f(&mut o);
        plan(Some(&o))
    };
    assert_eq!(damaged(&|o| o.settings.as_mut().unwrap().is_logging = false), Ok(vec![StartLogging]));
    assert_eq!(damaged(&|o| o.info.config.log_file_validation = false), Ok(vec![Update]));
    assert_eq!(damaged(&|o| o.info.config.multi_region = true), Ok(vec![Update]));
    assert_eq!(damaged(&|o| o.info.config.global_service_events = true), Ok(vec![Update]));
    assert_eq!(damaged(&|o| o.info.config.log_bucket = "elsewhere".into()), Ok(vec![Update]));
    assert_eq!(damaged(&|o| o.info.config.log_prefix = None), Ok(vec![Update]));
    // Basic selectors (management events), even beside the right advanced one.
    assert_eq!(damaged(&|o| o.settings.as_mut().unwrap().basic_selectors = 1), Ok(vec![PutSelectors]));
    // A wider selector: every bucket's objects.
    assert_eq!(
        damaged(&|o| o.settings.as_mut().unwrap().advanced_selectors[0].fields.retain(|f| f.field != "resources.ARN")),
        Ok(vec![PutSelectors])
    );
    // Reads only, or a second selector (management events).
    assert_eq!(
        damaged(&|o| o.settings.as_mut().unwrap().advanced_selectors[0].fields.push(FieldSelector {
            field: "readOnly".into(),
            equals: vec!["true".into()],
            ..Default::default()
        })),
        Ok(vec![PutSelectors])
    );
    let management = EventSelector {
        name: None,
        fields: vec![FieldSelector {
            field: "eventCategory".into(),
            equals: vec!["Management".into()],
            ..Default::default()
        }],
    };
    assert_eq!(
        damaged(&|o| o.settings.as_mut().unwrap().advanced_selectors.push(management.clone())),
        Ok(vec![PutSelectors])
    );
    assert_eq!(damaged(&|o| o.settings.as_mut().unwrap().advanced_selectors.clear()), Ok(vec![PutSelectors]));
    assert_eq!(
        damaged(&|o| {
            o.tags.remove("tfstate.dev/owner");
        }),
        Ok(vec![SyncTags])
    );
    // Several at once, in the order that never logs the wrong thing.
    assert_eq!(
        damaged(&|o| {
            o.settings.as_mut().unwrap().is_logging = false;
            o.settings.as_mut().unwrap().basic_selectors = 1;
            o.info.config.log_file_validation = false;
        }),
        Ok(vec![Update, PutSelectors, StartLogging])
    );
}

#[test]
fn what_is_not_ours_is_never_touched() {
    let d = desired();
    let mut other = tags();
    other.insert("tfstate.dev/owner-uid".into(), "uid-2".into());
    let blocked = plan(Some(&ObservedTrail { settings: None, ..observed(&d, other) })).unwrap_err();
    assert_eq!(blocked.reason, Reason::Conflict);
    assert!(blocked.message.contains("another TerraformStateBackend") && !blocked.message.contains("uid-2"));
    assert!(!blocked.message.contains("team-payments/"), "names the owner: {}", blocked.message);

    let untagged = ObservedTrail { settings: None, ..observed(&d, Tags::new()) };
    let blocked = plan(Some(&untagged)).unwrap_err();
    assert_eq!(blocked.reason, Reason::Conflict);
    assert!(blocked.message.contains("adoptExisting"));
    // Adopted (when allowed): tagged, then converged like ours.
    let adoptable = observed(&d, Tags::new());
    assert_eq!(plan_trail(&d, Some(&adoptable), &tags(), &owner(), true, true), Ok(vec![TrailChange::SyncTags]));

    // Same name, another region's (multi-region) or an organization trail.
    let mut elsewhere = observed(&d, tags());
    elsewhere.info.arn = d.arn.replace("eu-west-1", "us-east-1");
    assert_eq!(plan(Some(&elsewhere)).unwrap_err().reason, Reason::Conflict);
    let mut org = observed(&d, tags());
    org.info.organization = true;
    assert_eq!(plan(Some(&org)).unwrap_err().reason, Reason::Conflict);

    assert!(plan_stale_trail(Some(&observed(&d, tags())), &owner()));
    assert!(!plan_stale_trail(Some(&observed(&d, Tags::new())), &owner()), "an untagged stale trail stays");
    assert!(!plan_stale_trail(None, &owner()));
}

#[test]
fn a_trail_records_only_a_bucket_its_backend_owns() {
    let d = desired();
    let not_owned = |o: Option<&ObservedTrail>| plan_trail(&d, o, &tags(), &owner(), false, false);
    let blocked = not_owned(None).unwrap_err();
    assert_eq!(blocked.reason, Reason::DependencyNotReady);
    assert!(blocked.message.contains("state bucket"));
    assert_eq!(not_owned(Some(&observed(&d, tags()))), Ok(vec![TrailChange::StopLogging]));
    let mut stopped = observed(&d, tags());
    stopped.settings.as_mut().unwrap().is_logging = false;
    assert_eq!(not_owned(Some(&stopped)).unwrap_err().reason, Reason::DependencyNotReady);
}
