//! Reading and writing policy documents: both JSON shapes AWS allows, IAM's URL-encoding,
//! errors with context, and lossless round trips.

use serde_json::json;

use super::*;
use crate::policy::test_support::url_encode;
use crate::policy::{TrustPolicyInput, trust_policy};

/// A trust policy as IAM `GetRole` returns it: URL-encoded (RFC 3986), with an empty `Sid`.
const IAM_TRUST_POLICY: &str = "\
    %7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Sid%22%3A%22%22%2C%22Effect%22%\
    3A%22Allow%22%2C%22Principal%22%3A%7B%22Federated%22%3A%22arn%3Aaws%3Aiam%3A%3A123456789012%3Aoi\
    dc-provider%2Foidc.eks.eu-west-1.amazonaws.com%2Fid%2FABCDEF0123%22%7D%2C%22Action%22%3A%22sts%3\
    AAssumeRoleWithWebIdentity%22%2C%22Condition%22%3A%7B%22StringEquals%22%3A%7B%22oidc.eks.eu-west\
    -1.amazonaws.com%2Fid%2FABCDEF0123%3Asub%22%3A%22system%3Aserviceaccount%3Aci%3Arunner%22%2C%22o\
    idc.eks.eu-west-1.amazonaws.com%2Fid%2FABCDEF0123%3Aaud%22%3A%22sts.amazonaws.com%22%7D%7D%7D%2C\
    %7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22AWS%22%3A%22arn%3Aaws%3Aiam%3A%3A1234567\
    89012%3Aroot%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D";

fn parse(text: &str) -> PolicyDocument {
    PolicyDocument::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn parses_single_statement_and_bare_values() {
    let doc = parse(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Principal":"*","Action":"s3:*",
        "Resource":"arn:aws:s3:::b","Condition":{"Bool":{"aws:SecureTransport":false}}}}"#,
    );
    assert_eq!(doc.version.as_deref(), Some(VERSION_2012_10_17));
    let s = &doc.statements[..];
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].effect, Effect::Deny);
    assert_eq!(s[0].principal, Some(Principal::Any));
    assert_eq!(s[0].action, Some(vec!["s3:*".to_owned()]));
    assert_eq!(s[0].resource, Some(vec!["arn:aws:s3:::b".to_owned()]));
    let cond = s[0].condition.as_ref().expect("condition");
    assert_eq!(cond["Bool"]["aws:SecureTransport"], [ConditionValue::Bool(false)]);
}

#[test]
fn parses_every_element() {
    let doc = parse(
        r#"{"Id":"x","Statement":[{"Sid":"a","Effect":"Allow",
        "NotPrincipal":{"AWS":["1","2"],"Service":"s.amazonaws.com"},
        "NotAction":["iam:*"],"NotResource":"*","Condition":{"NumericLessThan":{"s3:max-keys":[10, 2.5]}}}]}"#,
    );
    assert_eq!(doc.version, None);
    assert_eq!(doc.id.as_deref(), Some("x"));
    let s = &doc.statements[0];
    assert_eq!(
        s.not_principal,
        Some(Principal::Typed(
            [("AWS".to_owned(), vec!["1".into(), "2".into()]), ("Service".to_owned(), vec!["s.amazonaws.com".into()])]
                .into()
        ))
    );
    assert_eq!(s.not_action, Some(vec!["iam:*".into()]));
    assert_eq!(s.not_resource, Some(vec!["*".into()]));
    let values = &s.condition.as_ref().expect("condition")["NumericLessThan"]["s3:max-keys"];
    assert_eq!(values.iter().map(ConditionValue::as_aws_string).collect::<Vec<_>>(), ["10", "2.5"]);
}

#[test]
fn parses_iam_url_encoded_trust_policy() {
    let doc = parse(IAM_TRUST_POLICY);
    assert_eq!(doc.statements.len(), 2);
    assert_eq!(doc.statements[0].sid.as_deref(), Some(""));
    // It is what the trust builder makes for this input, with the root principal given as a
    // bare account id (which IAM stores as the root ARN).
    let sas = [("ci".to_owned(), "runner".to_owned())];
    let principals = ["123456789012".to_owned()];
    let built = trust_policy(&TrustPolicyInput {
        partition: "aws",
        account_id: "123456789012",
        service_accounts: &sas,
        oidc_provider_arn: Some(
            "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123",
        ),
        eks_pod_identity: false,
        aws_principals: &principals,
        principal_org_id: None,
    });
    assert!(built.semantically_eq(&doc), "{}\n{}", built.to_json(), doc.to_json());
}

#[test]
fn url_encoded_and_plain_parse_the_same() {
    let text =
        "\n  {\"Version\": \"2012-10-17\",\n \"Statement\": [{\"Effect\": \"Allow\", \"Action\": \"s3:Get*\"}]}  ";
    assert_eq!(parse(text), parse(&url_encode(text)));
    assert_eq!(parse(text), parse(&format!("  {}\n", url_encode(text))));
}

#[test]
fn plus_is_not_a_space() {
    let doc = parse(&url_encode(r#"{"Statement":{"Effect":"Allow","Resource":"arn:aws:s3:::b/a+b"}}"#));
    assert_eq!(doc.statements[0].resource, Some(vec!["arn:aws:s3:::b/a+b".into()]));
}

#[test]
fn invalid_json_has_context() {
    let err = PolicyDocument::parse(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",}]}"#).unwrap_err();
    let PolicyError::InvalidJson { url_encoded: false, excerpt, .. } = &err else { panic!("{err:?}") };
    assert!(excerpt.contains(r#""Effect":"Allow",}"#), "{excerpt}");
    let msg = err.to_string();
    assert!(msg.starts_with("JSON policy document is invalid") && msg.contains("column"), "{msg}");

    let err = PolicyDocument::parse(&url_encode("{\"Statement\": 3}")).unwrap_err();
    assert!(matches!(err, PolicyError::InvalidJson { url_encoded: true, .. }), "{err:?}");
    assert!(err.to_string().starts_with("URL-encoded policy document is invalid"), "{err}");
}

#[test]
fn refuses_what_aws_would_refuse() {
    for (text, needle) in [
        (r#"{"Version":"2012-10-17"}"#, "missing field `Statement`"),
        (r#"{"Statement":[{"Effect":"allow"}]}"#, "unknown variant `allow`"),
        (r#"{"Statement":[{"Effect":"Allow","Principal":"someone"}]}"#, r#""*" or an object"#),
        (r#"{"Statement":[{"Effect":"Allow","Actions":"s3:*"}]}"#, "unknown field `Actions`"),
        (r#"{"Statement":[{"Effect":"Allow","Action":[1]}]}"#, "expected a string"),
        (r#"{"Statement":[{"Effect":"Allow","Condition":{"Null":{"k":null}}}]}"#, "a value or an array"),
        (r#"{"Statement":[{"Effect":"Allow","Condition":{"Null":{"k":[{}]}}}]}"#, "a string, a boolean or a number"),
        (r#"{"Statement":[],"Extra":1}"#, "unknown field `Extra`"),
        ("", "EOF"),
    ] {
        let err = PolicyDocument::parse(text).expect_err(text).to_string();
        assert!(err.contains(needle), "{text}: {err}");
    }
}

#[test]
fn invalid_percent_encoding() {
    for (text, offset) in [("%7B%2", 3), ("%7B%zz%7D", 3), ("abc%", 3)] {
        let err = PolicyDocument::parse(text).unwrap_err();
        assert!(matches!(err, PolicyError::InvalidPercentEncoding { offset: o } if o == offset), "{text}: {err:?}");
    }
    let err = PolicyDocument::parse("%7B%FF%FE%7D").unwrap_err();
    assert!(matches!(err, PolicyError::InvalidUtf8 { .. }), "{err:?}");
    assert!(err.to_string().contains("UTF-8"), "{err}");
}

#[test]
fn to_json_is_compact_and_deterministic() {
    let doc = PolicyDocument::new(vec![
        Statement::new("A", Effect::Allow)
            .principal(Principal::aws(["arn:aws:iam::1:role/r"]))
            .actions(["s3:GetObject", "s3:PutObject"])
            .resources(["arn:aws:s3:::b/*"])
            .condition("StringEquals", "z", ["1"])
            .condition("Bool", "aws:SecureTransport", ["true"]),
    ]);
    let expected = concat!(
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","#,
        r#""Principal":{"AWS":"arn:aws:iam::1:role/r"},"#,
        r#""Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::b/*","#,
        r#""Condition":{"Bool":{"aws:SecureTransport":"true"},"StringEquals":{"z":"1"}}}]}"#
    );
    assert_eq!(doc.to_json(), expected);
    assert_eq!(doc.clone().to_json(), doc.to_json());
}

#[test]
fn to_json_keeps_value_types() {
    let text = r#"{"Statement":[{"Effect":"Deny","Principal":"*","Condition":{"Bool":{"k":[true,"x",1,2.5]}}}]}"#;
    assert_eq!(parse(text).to_json(), text);
    let value: serde_json::Value = serde_json::from_str(&parse(text).to_json()).expect("JSON");
    assert_eq!(value["Statement"][0]["Condition"]["Bool"]["k"], json!([true, "x", 1, 2.5]));
}

#[test]
fn round_trip_is_lossless() {
    for text in [
        IAM_TRUST_POLICY,
        r#"{"Id":"i","Statement":[{"Sid":"s","Effect":"Allow","NotPrincipal":{"AWS":["1","2"]},"NotAction":"a:*",
            "NotResource":["x","y"],"Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8"]}}}]}"#,
    ] {
        let doc = parse(text);
        let back = parse(&doc.to_json());
        assert_eq!(back, doc);
        assert!(back.semantically_eq(&doc));
        assert_eq!(back.to_json(), doc.to_json());
    }
}
