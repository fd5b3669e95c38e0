//! The backend role's trust policy: who may assume the role.

use super::document::{Effect, PolicyDocument, Principal, Statement};

/// What the trust policy depends on. The validate step guarantees at least one way in.
#[derive(Clone, Copy, Debug)]
pub struct TrustPolicyInput<'a> {
    /// AWS partition, e.g. `aws`.
    pub partition: &'a str,
    /// The account that owns the role.
    pub account_id: &'a str,
    /// Kubernetes service accounts as `(namespace, name)`, sorted.
    pub service_accounts: &'a [(String, String)],
    /// IRSA: the cluster's IAM OIDC provider ARN.
    pub oidc_provider_arn: Option<&'a str>,
    /// EKS Pod Identity.
    pub eks_pod_identity: bool,
    /// IAM principals allowed to assume the role directly.
    pub aws_principals: &'a [String],
    /// When set (the cluster policy's `trust.principalOrgId`), only principals of this AWS
    /// Organization may assume the role through `AllowAwsPrincipals`.
    pub principal_org_id: Option<&'a str>,
}

/// The trust policy: `AllowServiceAccountsWebIdentity` (IRSA), `AllowPodIdentity0..N` (EKS Pod
/// Identity, one per service account) and `AllowAwsPrincipals`, each only when it applies.
pub fn trust_policy(input: &TrustPolicyInput<'_>) -> PolicyDocument {
    let mut statements = Vec::new();
    let accounts = input.service_accounts;

    if let (Some(provider), false) = (input.oidc_provider_arn, accounts.is_empty()) {
        // The condition keys are named after the issuer, which is the provider ARN's resource
        // part (validate guarantees `...:oidc-provider/<issuer>`).
        let issuer = provider.split_once(":oidc-provider/").map_or(provider, |(_, issuer)| issuer);
        let subjects = accounts.iter().map(|(ns, name)| format!("system:serviceaccount:{ns}:{name}"));
        statements.push(
            Statement::new("AllowServiceAccountsWebIdentity", Effect::Allow)
                .principal(Principal::federated([provider]))
                .actions(["sts:AssumeRoleWithWebIdentity"])
                .condition("StringEquals", &format!("{issuer}:aud"), ["sts.amazonaws.com"])
                .condition("StringEquals", &format!("{issuer}:sub"), subjects),
        );
    }

    if input.eks_pod_identity {
        // EKS Pod Identity assumes the role as pods.eks.amazonaws.com and sets session tags
        // naming the pod's namespace and service account (hence sts:TagSession). Conditions in
        // one statement are ANDed, so a namespace and a name listed together would also admit
        // every cross pair (ns-a/sa-b); one statement per service account admits exactly the
        // listed pairs. aws:SourceAccount keeps clusters of other accounts out.
        for (i, (ns, name)) in accounts.iter().enumerate() {
            statements.push(
                Statement::new(&format!("AllowPodIdentity{i}"), Effect::Allow)
                    .principal(Principal::service(["pods.eks.amazonaws.com"]))
                    .actions(["sts:AssumeRole", "sts:TagSession"])
                    .condition("StringEquals", "aws:SourceAccount", [input.account_id])
                    .condition("StringEquals", "aws:RequestTag/kubernetes-namespace", [ns.as_str()])
                    .condition("StringEquals", "aws:RequestTag/kubernetes-service-account", [name.as_str()]),
            );
        }
    }

    if !input.aws_principals.is_empty() {
        let mut statement = Statement::new("AllowAwsPrincipals", Effect::Allow)
            .principal(Principal::aws(input.aws_principals.iter().map(String::as_str)))
            .actions(["sts:AssumeRole"]);
        if let Some(org) = input.principal_org_id {
            statement = statement.condition("StringEquals", "aws:PrincipalOrgID", [org]);
        }
        statements.push(statement);
    }

    PolicyDocument::new(statements)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::policy::test_support::{assert_json, assert_survives_aws_rewrite};

    const PROVIDER: &str = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123";
    const ISSUER: &str = "oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123";

    fn accounts() -> Vec<(String, String)> {
        vec![("ci".into(), "runner".into()), ("team-payments".into(), "terraform".into())]
    }

    fn input<'a>(sas: &'a [(String, String)], principals: &'a [String]) -> TrustPolicyInput<'a> {
        TrustPolicyInput {
            partition: "aws",
            account_id: "123456789012",
            service_accounts: sas,
            oidc_provider_arn: None,
            eks_pod_identity: false,
            aws_principals: principals,
            principal_org_id: None,
        }
    }

    /// With the cluster policy's organisation id, the principals' statement carries it.
    #[test]
    fn principal_org_id_binds_the_principals_statement() {
        let principals = vec!["arn:aws:iam::210987654321:role/ci".to_owned()];
        let doc = trust_policy(&TrustPolicyInput { principal_org_id: Some("o-a1b2c3d4e5"), ..input(&[], &principals) });
        assert_json(
            &doc,
            vec![json!({"Sid": "AllowAwsPrincipals", "Effect": "Allow", "Principal": {"AWS": principals[0]},
                        "Action": "sts:AssumeRole",
                        "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}})],
        );
        assert_survives_aws_rewrite(&doc);
        assert!(!doc.semantically_eq(&trust_policy(&input(&[], &principals))));
    }

    fn irsa(subjects: Value) -> Value {
        json!({
            "Sid": "AllowServiceAccountsWebIdentity", "Effect": "Allow", "Principal": {"Federated": PROVIDER},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                format!("{ISSUER}:aud"): "sts.amazonaws.com",
                format!("{ISSUER}:sub"): subjects
            }}
        })
    }

    fn pod_identity(i: usize, ns: &str, name: &str) -> Value {
        json!({
            "Sid": format!("AllowPodIdentity{i}"), "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": {
                "aws:SourceAccount": "123456789012",
                "aws:RequestTag/kubernetes-namespace": ns,
                "aws:RequestTag/kubernetes-service-account": name
            }}
        })
    }

    #[test]
    fn irsa_lists_every_subject() {
        let sas = accounts();
        let doc = trust_policy(&TrustPolicyInput { oidc_provider_arn: Some(PROVIDER), ..input(&sas, &[]) });
        assert_json(
            &doc,
            vec![irsa(json!(["system:serviceaccount:ci:runner", "system:serviceaccount:team-payments:terraform"]))],
        );
        let one = &sas[..1];
        let doc = trust_policy(&TrustPolicyInput { oidc_provider_arn: Some(PROVIDER), ..input(one, &[]) });
        assert_json(&doc, vec![irsa(json!("system:serviceaccount:ci:runner"))]);
    }

    #[test]
    fn pod_identity_has_one_statement_per_account() {
        let sas = accounts();
        let doc = trust_policy(&TrustPolicyInput { eks_pod_identity: true, ..input(&sas, &[]) });
        assert_json(&doc, vec![pod_identity(0, "ci", "runner"), pod_identity(1, "team-payments", "terraform")]);
    }

    #[test]
    fn aws_principals_only() {
        let principals = vec!["arn:aws:iam::123456789012:role/ci".to_owned()];
        let doc = trust_policy(&input(&[], &principals));
        assert_json(
            &doc,
            vec![json!({"Sid": "AllowAwsPrincipals", "Effect": "Allow",
                        "Principal": {"AWS": "arn:aws:iam::123456789012:role/ci"}, "Action": "sts:AssumeRole"})],
        );
    }

    #[test]
    fn all_three_together_in_order() {
        let sas = accounts();
        let principals = vec!["arn:aws:iam::123456789012:role/ci".to_owned(), "arn:aws:iam::210987654321:root".into()];
        let doc = trust_policy(&TrustPolicyInput {
            oidc_provider_arn: Some(PROVIDER),
            eks_pod_identity: true,
            ..input(&sas, &principals)
        });
        assert_json(
            &doc,
            vec![
                irsa(json!(["system:serviceaccount:ci:runner", "system:serviceaccount:team-payments:terraform"])),
                pod_identity(0, "ci", "runner"),
                pod_identity(1, "team-payments", "terraform"),
                json!({"Sid": "AllowAwsPrincipals", "Effect": "Allow", "Principal": {"AWS": principals},
                       "Action": "sts:AssumeRole"}),
            ],
        );
        assert_survives_aws_rewrite(&doc);
        // IAM stores a root ARN given as a bare account id: still equal.
        let bare = doc.to_json().replace("arn:aws:iam::210987654321:root", "210987654321");
        assert!(doc.semantically_eq(&PolicyDocument::parse(&bare).expect("parses")));
    }

    #[test]
    fn no_service_accounts_means_no_federated_or_pod_statement() {
        let principals = vec!["arn:aws:iam::123456789012:role/ci".to_owned()];
        let doc = trust_policy(&TrustPolicyInput {
            oidc_provider_arn: Some(PROVIDER),
            eks_pod_identity: true,
            ..input(&[], &principals)
        });
        assert_eq!(doc.statements.len(), 1);
        assert_eq!(doc.statements[0].sid.as_deref(), Some("AllowAwsPrincipals"));
    }

    #[test]
    fn a_changed_subject_is_a_change() {
        let sas = accounts();
        let mut other = accounts();
        other[1].1 = "terraform-2".into();
        let a = trust_policy(&TrustPolicyInput { oidc_provider_arn: Some(PROVIDER), ..input(&sas, &[]) });
        let b = trust_policy(&TrustPolicyInput { oidc_provider_arn: Some(PROVIDER), ..input(&other, &[]) });
        assert!(!a.semantically_eq(&b));
        let a = trust_policy(&TrustPolicyInput { eks_pod_identity: true, ..input(&sas, &[]) });
        let b = trust_policy(&TrustPolicyInput { eks_pod_identity: true, ..input(&other, &[]) });
        assert!(!a.semantically_eq(&b));
    }
}
