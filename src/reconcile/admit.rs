//! Step 1b, pure: admission by the cluster policy. The `TerraformStatePolicy` that applies
//! to the object's namespace (or the built-in default) judges the validated spec before
//! anything reaches AWS, and imposes what every runner role of that namespace gets (IAM
//! path, permissions boundary). A violation is reported, never worked around.

use crate::tenancy::{EffectivePolicy, Rule, Target, Violation, check};

use super::validate::{Encryption, ValidSpec};

/// Why a spec was not admitted: every violation, with the policy's name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .violations.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("; "))]
pub struct NotAdmitted {
    /// The policy (or `built-in default`) that refused the spec.
    pub policy: String,
    /// What breaks it, each naming the field, what is allowed and the policy.
    pub violations: Vec<Violation>,
}

/// The tenancy check's view of a validated spec.
pub fn target_of<'a>(valid: &'a ValidSpec, operator_account_id: &'a str) -> Target<'a> {
    let (kms_alias, kms_key_admins, existing_key_arn) = match &valid.encryption {
        Encryption::CreateKey { alias, admins, .. } => (Some(alias.as_str()), admins.as_slice(), None),
        Encryption::ExistingKey { arn } => (None, &[][..], Some(arn.as_str())),
        Encryption::Aes256 => (None, &[][..], None),
    };
    Target {
        operator_account_id,
        bucket: &valid.bucket,
        lock_table: valid.lock_table.as_ref().map(|t| t.name.as_str()),
        role_name: &valid.role.name,
        kms_alias,
        kms_key_admins,
        existing_key_arn,
        adopt_existing: valid.adopt_existing,
        service_accounts: &valid.role.service_accounts,
        oidc_provider_arn: valid.role.oidc_provider_arn.as_deref(),
        aws_principals: &valid.role.aws_principals,
        permissions_boundary_arn: valid.role.permissions_boundary_arn.as_deref(),
        trail_name: valid.audit.as_ref().map(|a| a.trail_name.as_str()),
    }
}

/// The replica's names and key judged by the same rules as the primary's (bucket names,
/// role names, aliases, existing keys, key admins), each violation naming the replica's field.
fn replica_violations(valid: &ValidSpec, policy: &EffectivePolicy, operator_account_id: &str) -> Vec<Violation> {
    let Some(r) = &valid.replication else { return Vec::new() };
    let (kms_alias, kms_key_admins, existing_key_arn) = match &r.encryption {
        Encryption::CreateKey { alias, admins, .. } => (Some(alias.as_str()), admins.as_slice(), None),
        Encryption::ExistingKey { arn } => (None, &[][..], Some(arn.as_str())),
        Encryption::Aes256 => (None, &[][..], None),
    };
    let target = Target {
        bucket: &r.bucket,
        lock_table: None,
        role_name: &r.role_name,
        kms_alias,
        kms_key_admins,
        existing_key_arn,
        adopt_existing: false,
        service_accounts: &[],
        oidc_provider_arn: None,
        aws_principals: &[],
        permissions_boundary_arn: None,
        ..target_of(valid, operator_account_id)
    };
    let Err(found) = check(policy, &target) else { return Vec::new() };
    found
        .into_iter()
        .filter_map(|mut v| {
            v.path = match v.rule {
                Rule::BucketName => "spec.replication.bucketName",
                // Derived from the runner role's name, which the same rule judges.
                Rule::RoleName => "spec.replication (its role, named after spec.access.roleName)",
                Rule::KmsAlias => "spec.replication.kmsKey.create.alias",
                Rule::ExistingKey => "spec.replication.kmsKey.existingKeyArn",
                Rule::KeyAdminAccount => "spec.replication.kmsKey.create.admins",
                // Reported once, by the primary's check.
                _ => return None,
            }
            .to_string();
            Some(v)
        })
        .collect()
}

/// Admits `valid` under `policy`: every rule checked, then the policy's IAM path,
/// permissions boundary and organisation condition given to the runner role (and key). `previous_account` is the account
/// the backend was built in (`status.accountId`): a policy that now places it in another
/// account (its `operatorRoleArn` changed) is refused, so that no second backend is built
/// elsewhere while the first, and its state, stay behind.
pub fn admit(
    mut valid: ValidSpec,
    policy: &EffectivePolicy,
    operator_account_id: &str,
    previous_account: Option<&str>,
) -> Result<ValidSpec, NotAdmitted> {
    let mut violations = match check(policy, &target_of(&valid, operator_account_id)) {
        Ok(()) => Vec::new(),
        Err(v) => v,
    };
    violations.extend(replica_violations(&valid, policy, operator_account_id));
    let account = policy.backend_account_id(operator_account_id);
    if let Some(before) = previous_account.filter(|before| *before != account) {
        violations.push(Violation {
            rule: crate::tenancy::Rule::InvalidPolicy,
            path: "status.accountId".into(),
            value: before.to_string(),
            allowed: format!(
                "account {account} only, where the policy now places this backend; the operator does not move a \
                 backend between accounts: restore the policy's operatorRoleArn, or move the state yourself and \
                 recreate the object"
            ),
            policy: policy.policy_name().to_string(),
            namespace: policy.namespace.clone(),
        });
    }
    if !violations.is_empty() {
        return Err(NotAdmitted { policy: policy.policy_name().to_string(), violations });
    }
    let boundary = policy.effective_permissions_boundary(valid.role.permissions_boundary_arn.as_deref());
    valid.role.permissions_boundary_arn = boundary.map(str::to_string);
    valid.role.path = policy.role_path().to_string();
    valid.role.principal_org_id.clone_from(&policy.principal_org_id);
    Ok(valid)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::{TerraformStateBackendSpec, TerraformStatePolicy};
    use crate::reconcile::validate::{ObjectRef, OperatorDefaults, validate};
    use crate::tenancy::resolve;

    const ACCOUNT: &str = "123456789012";

    fn valid(spec: serde_json::Value) -> ValidSpec {
        let spec: TerraformStateBackendSpec = serde_json::from_value(spec).expect("spec");
        validate(
            ObjectRef { namespace: "team-a", name: "app" },
            &spec,
            &OperatorDefaults { region: Some("eu-west-1".into()) },
        )
        .expect("valid")
    }

    fn policy(spec: serde_json::Value) -> EffectivePolicy {
        let obj: TerraformStatePolicy = serde_json::from_value(serde_json::json!({
            "apiVersion": "tfstate.dev/v1alpha1", "kind": "TerraformStatePolicy",
            "metadata": {"name": "tenants"}, "spec": spec
        }))
        .expect("policy");
        resolve(&[obj], "team-a", &BTreeMap::new())
    }

    fn base() -> serde_json::Value {
        serde_json::json!({"bucket": {"name": "acme-tfstate-team-a"},
            "access": {"trust": {"eksPodIdentity": true, "serviceAccounts": [{"namespace": "team-a", "name": "runner"}]}}})
    }

    /// With no policy object the built-in default admits an ordinary spec unchanged.
    #[test]
    fn built_in_default_admits_an_own_namespace_backend() {
        let v = valid(base());
        let admitted = admit(v.clone(), &resolve(&[], "team-a", &BTreeMap::new()), ACCOUNT, None).expect("admitted");
        assert_eq!(admitted, v);
    }

    /// Another namespace's service account and adoption are refused by the default, each
    /// violation naming the field and the policy.
    #[test]
    fn abuse_is_refused_naming_field_and_policy() {
        let mut spec = base();
        spec["access"]["trust"]["serviceAccounts"][0]["namespace"] = "team-b".into();
        spec["adoptExisting"] = true.into();
        let err = admit(valid(spec), &resolve(&[], "team-a", &BTreeMap::new()), ACCOUNT, None).expect_err("refused");
        assert_eq!(err.policy, "built-in default");
        let text = err.to_string();
        assert!(text.contains("spec.access.trust.serviceAccounts") && text.contains("team-b"), "{text}");
        assert!(text.contains("spec.adoptExisting"), "{text}");
    }

    /// The policy's path and boundary are given to the role; a spec boundary other than
    /// the policy's is a violation.
    #[test]
    fn path_and_boundary_are_imposed() {
        let boundary = "arn:aws:iam::123456789012:policy/tenant-boundary";
        let p = policy(serde_json::json!({"namespaceSelector": {},
            "role": {"iamPath": "/tenants/team-a/", "permissionsBoundaryArn": boundary}}));
        let admitted = admit(valid(base()), &p, ACCOUNT, None).expect("admitted");
        assert_eq!(admitted.role.path, "/tenants/team-a/");
        assert_eq!(admitted.role.permissions_boundary_arn.as_deref(), Some(boundary));
        let mut spec = base();
        spec["access"]["permissionsBoundaryArn"] = "arn:aws:iam::123456789012:policy/wide-open".into();
        let err = admit(valid(spec), &p, ACCOUNT, None).expect_err("refused");
        assert!(err.to_string().contains("permissionsBoundaryArn"), "{err}");
    }

    /// The policy's organisation id reaches the role (the trust and key policies render it).
    #[test]
    fn principal_org_id_is_carried_to_the_role() {
        let p = policy(serde_json::json!({"namespaceSelector": {}, "trust": {"principalOrgId": "o-a1b2c3d4e5"}}));
        let admitted = admit(valid(base()), &p, ACCOUNT, None).expect("admitted");
        assert_eq!(admitted.role.principal_org_id.as_deref(), Some("o-a1b2c3d4e5"));
    }

    /// Hub and spoke: the policy's operator role places the backend in its account; a
    /// backend built in one account is never rebuilt in another when the policy changes.
    #[test]
    fn a_backend_never_moves_between_accounts() {
        let spoke = policy(serde_json::json!({"namespaceSelector": {},
            "operatorRoleArn": "arn:aws:iam::111111111111:role/tfstate-spoke"}));
        assert!(admit(valid(base()), &spoke, ACCOUNT, None).is_ok());
        assert!(admit(valid(base()), &spoke, ACCOUNT, Some("111111111111")).is_ok());
        let err = admit(valid(base()), &spoke, ACCOUNT, Some(ACCOUNT)).expect_err("moved");
        assert!(err.to_string().contains("status.accountId") && err.to_string().contains("111111111111"), "{err}");
        let home = resolve(&[], "team-a", &BTreeMap::new());
        assert!(admit(valid(base()), &home, ACCOUNT, Some("111111111111")).is_err());
    }

    /// The replica's bucket name and existing key are judged by the policy like the
    /// primary's, each violation naming the replica's field.
    #[test]
    fn replica_names_and_keys_follow_the_policy() {
        let p = policy(serde_json::json!({"namespaceSelector": {},
            "allowedNames": {"buckets": ["acme-tfstate-{namespace}*"]}}));
        let mut spec = base();
        spec["replication"] = serde_json::json!({"region": "eu-central-1"});
        assert!(admit(valid(spec.clone()), &p, ACCOUNT, None).is_ok(), "the default replica name matches");
        spec["replication"]["bucketName"] = "someone-elses-bucket".into();
        let err = admit(valid(spec.clone()), &p, ACCOUNT, None).expect_err("refused");
        assert!(err.to_string().contains("spec.replication.bucketName"), "{err}");
        spec["replication"] = serde_json::json!({"region": "eu-central-1",
            "kmsKey": {"existingKeyArn": "arn:aws:kms:eu-central-1:210987654321:key/1234abcd-12ab-34cd-56ef-1234567890ab"}});
        let home = resolve(&[], "team-a", &BTreeMap::new());
        let err = admit(valid(spec), &home, ACCOUNT, None).expect_err("another account's key");
        assert!(err.to_string().contains("spec.replication.kmsKey.existingKeyArn"), "{err}");
    }
}
