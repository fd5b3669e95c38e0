//! `spec.access`: the runner role's name, trust and limits.

use std::collections::BTreeSet;

use super::{
    DNS_LABEL, DNS_SUBDOMAIN, OIDC_ARN, ObjectRef, POLICY_ARN, Problems, ROLE, Role, TerraformStateBackendSpec,
    check_derived, check_principals, sorted_unique,
};

/// `spec.access`: the role name (derived from the object if unset), who may assume it, its
/// permissions boundary and session length.
pub(super) fn resolve_role(p: &mut Problems, obj: ObjectRef<'_>, spec: &TerraformStateBackendSpec) -> Role {
    let a = &spec.access;
    let name = a.role_name.clone().unwrap_or_else(|| format!("tfstate-{}-{}", obj.namespace, obj.name));
    if p.literal("spec.access.roleName", &name) {
        check_derived(
            p,
            "spec.access.roleName",
            a.role_name.is_none(),
            &name,
            64,
            ROLE.is_match(&name),
            "an IAM role name (letters, digits and +=,.@_-)",
        );
    }

    let t = &a.trust;
    if t.service_accounts.is_empty() && t.aws_principals.is_empty() {
        p.add("spec.access.trust", "trust at least one principal: add serviceAccounts (with oidcProviderArn or eksPodIdentity) or awsPrincipals");
    }
    if !t.service_accounts.is_empty() && t.oidc_provider_arn.is_none() && !t.eks_pod_identity {
        p.add("spec.access.trust.serviceAccounts", "service accounts can only assume the role through IRSA or EKS Pod Identity: set oidcProviderArn or eksPodIdentity: true");
    }
    if t.service_accounts.is_empty() && (t.oidc_provider_arn.is_some() || t.eks_pod_identity) {
        p.add(
            "spec.access.trust.serviceAccounts",
            "oidcProviderArn and eksPodIdentity trust service accounts: list at least one in serviceAccounts",
        );
    }
    let mut seen = BTreeSet::new();
    for (i, sa) in t.service_accounts.iter().enumerate() {
        let path = format!("spec.access.trust.serviceAccounts[{i}]");
        if p.literal(format!("{path}.namespace"), &sa.namespace)
            && (sa.namespace.len() > 63 || !DNS_LABEL.is_match(&sa.namespace))
        {
            p.add(format!("{path}.namespace"), format!("{:?} is not a Kubernetes namespace name", sa.namespace));
        }
        if p.literal(format!("{path}.name"), &sa.name) && (sa.name.len() > 253 || !DNS_SUBDOMAIN.is_match(&sa.name)) {
            p.add(format!("{path}.name"), format!("{:?} is not a Kubernetes service account name", sa.name));
        }
        if !seen.insert(sa) {
            p.add(path, format!("{}/{} is listed twice; remove the duplicate", sa.namespace, sa.name));
        }
    }
    if let Some(arn) = &t.oidc_provider_arn
        && p.literal("spec.access.trust.oidcProviderArn", arn)
        && !OIDC_ARN.is_match(arn)
    {
        p.add(
            "spec.access.trust.oidcProviderArn",
            format!(
                "{arn:?} is not an IAM OIDC provider ARN (arn:aws:iam::ACCOUNT:oidc-provider/HOST/PATH: host name, then path segments of letters, digits and ._~-)"
            ),
        );
    }
    check_principals(p, "spec.access.trust.awsPrincipals", &t.aws_principals);
    if let Some(arn) = &a.permissions_boundary_arn
        && p.literal("spec.access.permissionsBoundaryArn", arn)
        && !POLICY_ARN.is_match(arn)
    {
        p.add(
            "spec.access.permissionsBoundaryArn",
            format!(
                "{arn:?} is not an IAM policy ARN (arn:aws:iam::ACCOUNT:policy/NAME, NAME and any path segments of letters, digits and +=,.@_-)"
            ),
        );
    }
    if !(3600..=43200).contains(&a.max_session_duration_seconds) {
        p.add("spec.access.maxSessionDurationSeconds", "must be between 3600 (1 hour) and 43200 (12 hours)");
    }
    let mut service_accounts = t.service_accounts.clone();
    service_accounts.sort();
    service_accounts.dedup();
    Role {
        name,
        service_accounts,
        oidc_provider_arn: t.oidc_provider_arn.clone(),
        eks_pod_identity: t.eks_pod_identity,
        aws_principals: sorted_unique(&t.aws_principals),
        permissions_boundary_arn: a.permissions_boundary_arn.clone(),
        path: "/".into(),
        principal_org_id: None,
        max_session_duration_seconds: a.max_session_duration_seconds,
    }
}
