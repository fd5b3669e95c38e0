//! The `TerraformStateBackend` API (group `tfstate.dev`, version `v1alpha1`), and the
//! cluster-scoped `TerraformStatePolicy` that restricts backends per namespace.

pub mod conditions;
pub mod patterns;
pub mod policy;
pub mod spec;
pub mod status;

pub use conditions::{ConditionType, Reason};
pub use policy::{TerraformStatePolicy, TerraformStatePolicySpec};
pub use spec::*;
pub use status::{LockModeChange, LockSource, LockStatus, StateObjectStatus, TerraformStateBackendStatus};

/// The finalizer that guards the AWS resources of a backend.
pub const FINALIZER: &str = "tfstate.dev/cleanup";

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{CustomResourceDefinition, JSONSchemaProps};

/// The CustomResourceDefinition, as installed.
///
/// Optional fields are generated `nullable: true`, but API servers before 1.29 publish
/// nullable fields into OpenAPI v2 without their type, so `kubectl explain` would show
/// them as `<>` and hide the fields of optional objects. We never write `null`, and the
/// API server prunes `null` from non-nullable fields, so the flag is dropped.
pub fn crd() -> CustomResourceDefinition {
    use kube::CustomResourceExt;
    let mut crd = TerraformStateBackend::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            drop_nullable(schema);
        }
    }
    crd
}

fn drop_nullable(schema: &mut JSONSchemaProps) {
    schema.nullable = None;
    for sub in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        drop_nullable(sub);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(
        items,
    )) = schema.items.as_mut()
    {
        drop_nullable(items);
    }
}

/// Prints the CustomResourceDefinition as YAML, exactly as `crds/` holds it.
pub fn crd_yaml() -> Result<String, serde_yaml_ng::Error> {
    serde_yaml_ng::to_string(&crd())
}

/// The `TerraformStatePolicy` CustomResourceDefinition, as installed (`nullable` dropped as
/// for [`crd`]).
///
/// One rule an OpenAPI schema can state but schemars cannot derive is added here: a label
/// requirement with `In`/`NotIn` needs values, one with `Exists`/`DoesNotExist` takes none
/// (what Kubernetes' own `LabelSelector` validation says). The tenancy module still refuses
/// such a selector at run time, should one ever be stored.
pub fn policy_crd() -> CustomResourceDefinition {
    use kube::CustomResourceExt;
    let mut crd = TerraformStatePolicy::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            drop_nullable(schema);
            if let Some(requirement) = label_requirement_schema(schema) {
                requirement.any_of = Some(label_requirement_rules());
            }
        }
    }
    crd
}

/// `spec.namespaceSelector.matchExpressions[]` of the policy schema.
fn label_requirement_schema(schema: &mut JSONSchemaProps) -> Option<&mut JSONSchemaProps> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray;
    let selector = schema.properties.as_mut()?.get_mut("spec")?.properties.as_mut()?.get_mut("namespaceSelector")?;
    match selector.properties.as_mut()?.get_mut("matchExpressions")?.items.as_mut()? {
        JSONSchemaPropsOrArray::Schema(items) => Some(items),
        JSONSchemaPropsOrArray::Schemas(_) => None,
    }
}

/// Structural `anyOf` branches: no type or description of their own, only fields that the
/// requirement's schema declares.
fn label_requirement_rules() -> Vec<JSONSchemaProps> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSON;
    let branch = |operators: &[&str], values: JSONSchemaProps, required: bool| JSONSchemaProps {
        properties: Some(
            [
                (
                    "operator".to_string(),
                    JSONSchemaProps {
                        enum_: Some(operators.iter().map(|o| JSON(serde_json::json!(o))).collect()),
                        ..Default::default()
                    },
                ),
                ("values".to_string(), values),
            ]
            .into(),
        ),
        required: required.then(|| vec!["values".to_string()]),
        ..Default::default()
    };
    vec![
        branch(&["In", "NotIn"], JSONSchemaProps { min_items: Some(1), ..Default::default() }, true),
        branch(&["Exists", "DoesNotExist"], JSONSchemaProps { max_items: Some(0), ..Default::default() }, false),
    ]
}

/// Prints the `TerraformStatePolicy` CustomResourceDefinition as YAML, exactly as `crds/`
/// holds it.
pub fn policy_crd_yaml() -> Result<String, serde_yaml_ng::Error> {
    serde_yaml_ng::to_string(&policy_crd())
}
