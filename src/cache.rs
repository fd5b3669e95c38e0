//! What the in-memory caches keep of each object, applied before a reflector stores it
//! (`WatchStreamExt::modify`). `metadata.managedFields` and kubectl's last-applied
//! annotation are often larger than the rest of an object together, and nothing in the
//! operator reads them: with thousands of backends they were most of the cache.

use k8s_openapi::api::core::v1::Namespace;
use kube::Resource;
use kube::api::ObjectMeta;

/// The annotation `kubectl apply` (client-side) writes: a copy of the whole object.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops `managedFields` and the last-applied annotation.
pub fn strip<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// Keeps of a namespace only what admission reads: its name and labels.
pub fn namespace_labels_only(ns: &mut Namespace) {
    let meta = std::mem::take(&mut ns.metadata);
    ns.metadata = ObjectMeta { name: meta.name, labels: meta.labels, ..Default::default() };
    ns.spec = None;
    ns.status = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::TerraformStateBackend;
    use kube::ResourceExt;

    fn json_size<K: serde::Serialize>(obj: &K) -> usize {
        serde_json::to_vec(obj).map(|v| v.len()).unwrap_or(0)
    }

    const BACKEND: &str = r#"{
      "apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStateBackend",
      "metadata": {"name": "tf", "namespace": "team", "uid": "u-1", "generation": 2,
        "finalizers": ["tfstate.dev/cleanup"],
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"a\":1}", "keep": "me"},
        "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "tfstate.dev/v1alpha1",
          "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:bucket": {}}}}]},
      "spec": {"bucket": {"name": "b-1"}, "access": {"trust": {"awsPrincipals": ["arn:aws:iam::123456789012:root"]}}}
    }"#;

    #[test]
    fn strip_drops_managed_fields_and_last_applied_only() {
        let mut obj: TerraformStateBackend = serde_json::from_str(BACKEND).unwrap();
        let before = json_size(&obj);
        let spec = serde_json::to_value(&obj.spec).unwrap();
        strip(&mut obj);
        assert!(obj.metadata.managed_fields.is_none());
        assert_eq!(obj.annotations().len(), 1);
        assert_eq!(obj.annotations().get("keep").map(String::as_str), Some("me"));
        assert_eq!(obj.finalizers(), ["tfstate.dev/cleanup"]);
        assert_eq!((obj.metadata.generation, obj.uid().as_deref()), (Some(2), Some("u-1")));
        assert_eq!(serde_json::to_value(&obj.spec).unwrap(), spec);
        assert!(json_size(&obj) < before);
        // Only the last-applied annotation: no empty map is left.
        let mut cm = k8s_openapi::api::core::v1::ConfigMap::default();
        cm.metadata.annotations = Some([(LAST_APPLIED.to_string(), "{}".to_string())].into());
        strip(&mut cm);
        assert!(cm.metadata.annotations.is_none());
    }

    #[test]
    fn namespaces_keep_name_and_labels() {
        let mut ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "team", "labels": {"env": "prod"}, "uid": "x", "annotations": {"a": "b"},
                "managedFields": [{"manager": "m"}]},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}
        }))
        .unwrap();
        namespace_labels_only(&mut ns);
        assert_eq!(
            serde_json::to_value(&ns).unwrap(),
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team", "labels": {"env": "prod"}}})
        );
    }
}
