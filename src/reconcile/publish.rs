//! Step 6: publish the backend configuration as a ConfigMap owned by the object (so it
//! is garbage-collected with it), by server-side apply, skipped when unchanged.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::api::TerraformStateBackend;

use super::status::FIELD_MANAGER;

/// Label on every ConfigMap the operator publishes (the controller watches only these).
pub const MANAGED_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "tfstate-operator");
/// Label naming the backend a ConfigMap belongs to.
pub const BACKEND_LABEL: &str = "tfstate.dev/backend";

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A ConfigMap of that name exists and belongs to something else.
    #[error(
        "ConfigMap {0} exists and is not owned by this TerraformStateBackend: choose another spec.output.configMapName"
    )]
    NotOurs(String),
    /// The object lacks the name or UID an owner reference needs (never true of an object
    /// read from the API server).
    #[error("the TerraformStateBackend has no name or UID to own ConfigMap {0}")]
    OwnerIncomplete(String),
    /// The API call failed.
    #[error("publishing ConfigMap {name}: {source}")]
    Kube {
        /// ConfigMap name.
        name: String,
        /// Error.
        source: kube::Error,
    },
}

/// What publishing did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Published {
    /// The ConfigMap already held exactly this.
    Unchanged,
    /// The ConfigMap was created.
    Created,
    /// The ConfigMap was changed.
    Updated,
}

/// Makes ConfigMap `name` hold exactly `data`. `watched`: the ConfigMap watch, complete
/// and unbroken, shows it holding exactly that, owned by `owner` alone
/// ([`crate::config_maps`]); then it is neither read nor written.
pub async fn publish(
    api: &Api<ConfigMap>,
    owner: &TerraformStateBackend,
    name: &str,
    data: &BTreeMap<String, String>,
    watched: bool,
) -> Result<Published, PublishError> {
    let kube_err = |source| PublishError::Kube { name: name.to_string(), source };
    let owner_ref = owner.controller_owner_ref(&()).ok_or_else(|| PublishError::OwnerIncomplete(name.to_string()))?;
    if watched {
        return Ok(Published::Unchanged);
    }
    let existing = api.get_opt(name).await.map_err(kube_err)?;
    let created = existing.is_none();
    if let Some(existing) = existing {
        let ours = existing.owner_references().iter().any(|r| r.uid == owner_ref.uid);
        if !ours {
            return Err(PublishError::NotOurs(name.to_string()));
        }
        if existing.data.as_ref() == Some(data)
            && existing.labels().get(MANAGED_LABEL.0).map(String::as_str) == Some(MANAGED_LABEL.1)
        {
            return Ok(Published::Unchanged);
        }
    }
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "labels": { MANAGED_LABEL.0: MANAGED_LABEL.1, BACKEND_LABEL: owner.name_any() },
            "ownerReferences": [owner_ref],
        },
        "data": data,
    });
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&cm)).await.map_err(kube_err)?;
    Ok(if created { Published::Created } else { Published::Updated })
}
