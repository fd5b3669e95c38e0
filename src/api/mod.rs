//! The `TerraformStateBackend` API (group `tfstate.dev`, version `v1alpha1`).

pub mod conditions;
pub mod patterns;
pub mod spec;
pub mod status;

pub use conditions::{ConditionType, Reason};
pub use spec::*;
pub use status::TerraformStateBackendStatus;

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
