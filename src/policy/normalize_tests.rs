//! One test per normalisation rule, each in both directions: the spellings AWS treats alike
//! compare equal, and a real difference next to them still compares unequal.

use super::*;

fn doc(text: &str) -> PolicyDocument {
    PolicyDocument::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A document with one statement whose body is `statement` (JSON object members).
fn one(statement: &str) -> PolicyDocument {
    doc(&format!(r#"{{"Version":"2012-10-17","Statement":[{{{statement}}}]}}"#))
}

#[track_caller]
fn equal(a: &PolicyDocument, b: &PolicyDocument) {
    assert!(a.semantically_eq(b), "expected equal:\n{}\n{}", a.to_json(), b.to_json());
    assert!(b.semantically_eq(a), "equality must be symmetric");
}

#[track_caller]
fn unequal(a: &PolicyDocument, b: &PolicyDocument) {
    assert!(!a.semantically_eq(b), "expected unequal:\n{}\n{}", a.to_json(), b.to_json());
    assert!(!b.semantically_eq(a), "inequality must be symmetric");
}

const BASE: &str = concat!(
    r#""Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/r"},"#,
    r#""Action":"s3:GetObject","Resource":"arn:aws:s3:::b/k""#
);

#[test]
fn a_document_equals_itself() {
    equal(&one(BASE), &one(BASE));
}

#[test]
fn bare_value_is_a_one_element_array() {
    equal(&one(BASE), &one(&BASE.replace(r#""s3:GetObject""#, r#"["s3:GetObject"]"#)));
    equal(&one(BASE), &one(&BASE.replace(r#""arn:aws:s3:::b/k""#, r#"["arn:aws:s3:::b/k"]"#)));
    let statement = doc(&format!(r#"{{"Version":"2012-10-17","Statement":{{{BASE}}}}}"#));
    equal(&one(BASE), &statement);
    unequal(&one(BASE), &one(&BASE.replace(r#""s3:GetObject""#, r#"["s3:GetObject","s3:PutObject"]"#)));
}

#[test]
fn order_of_statements_does_not_count() {
    let a = r#"{"Effect":"Allow","Action":"a:A","Resource":"*"}"#;
    let b = r#"{"Effect":"Deny","Action":"b:B","Resource":"*"}"#;
    equal(&doc(&format!(r#"{{"Statement":[{a},{b}]}}"#)), &doc(&format!(r#"{{"Statement":[{b},{a}]}}"#)));
    let c = r#"{"Effect":"Deny","Action":"a:A","Resource":"*"}"#;
    unequal(&doc(&format!(r#"{{"Statement":[{a},{b}]}}"#)), &doc(&format!(r#"{{"Statement":[{c},{b}]}}"#)));
}

#[test]
fn order_of_actions_resources_and_principals_does_not_count() {
    equal(
        &one(r#""Effect":"Allow","Principal":{"AWS":["p1","p2"],"Service":["s1","s2"]},
            "Action":["a:X","a:Y"],"Resource":["r1","r2"]"#),
        &one(r#""Effect":"Allow","Principal":{"Service":["s2","s1"],"AWS":["p2","p1"]},
            "Action":["a:Y","a:X"],"Resource":["r2","r1"]"#),
    );
    unequal(
        &one(r#""Effect":"Allow","Principal":{"AWS":["p1","p2"]},"Action":"a:X","Resource":"r1""#),
        &one(r#""Effect":"Allow","Principal":{"AWS":["p1","p3"]},"Action":"a:X","Resource":"r1""#),
    );
}

#[test]
fn order_of_condition_values_does_not_count() {
    let a = one(r#""Effect":"Allow","Action":"a:X","Condition":{"StringLike":{"s3:prefix":["k","env:/","env:/*"]}}"#);
    let b = one(r#""Effect":"Allow","Action":"a:X","Condition":{"StringLike":{"s3:prefix":["env:/*","k","env:/"]}}"#);
    let c = one(r#""Effect":"Allow","Action":"a:X","Condition":{"StringLike":{"s3:prefix":["env:/*","k"]}}"#);
    equal(&a, &b);
    unequal(&a, &c);
}

#[test]
fn duplicates_do_not_count() {
    equal(&one(BASE), &one(&BASE.replace(r#""s3:GetObject""#, r#"["s3:GetObject","s3:GetObject"]"#)));
    equal(&one(BASE), &doc(&format!(r#"{{"Version":"2012-10-17","Statement":[{{{BASE}}},{{{BASE}}}]}}"#)));
    let values =
        |v: &str| one(&format!(r#""Effect":"Deny","Action":"a:X","Condition":{{"StringEquals":{{"k":{v}}}}}"#));
    equal(&values(r#"["a","a","b"]"#), &values(r#"["b","a"]"#));
    unequal(&values(r#"["a","a"]"#), &values(r#"["a","b"]"#));
}

#[test]
fn action_names_are_case_insensitive() {
    equal(&one(BASE), &one(&BASE.replace("s3:GetObject", "S3:getobject")));
    equal(&one(BASE), &one(&BASE.replace("s3:GetObject", "S3:GETOBJECT")));
    unequal(&one(BASE), &one(&BASE.replace("s3:GetObject", "s3:GetObjects")));
    let not_action = |a: &str| one(&format!(r#""Effect":"Deny","NotAction":"{a}","Resource":"*""#));
    equal(&not_action("iam:*"), &not_action("IAM:*"));
    unequal(&not_action("iam:*"), &not_action("iam:Get*"));
}

#[test]
fn resources_are_case_sensitive() {
    unequal(&one(BASE), &one(&BASE.replace("b/k", "b/K")));
}

#[test]
fn sid_and_id_are_ignored() {
    let with_sid = one(&format!(r#""Sid":"ReadState",{BASE}"#));
    let other_sid = one(&format!(r#""Sid":"Other",{BASE}"#));
    let empty_sid = one(&format!(r#""Sid":"",{BASE}"#));
    equal(&one(BASE), &with_sid);
    equal(&with_sid, &other_sid);
    equal(&with_sid, &empty_sid);
    equal(&one(BASE), &doc(&format!(r#"{{"Version":"2012-10-17","Id":"x","Statement":[{{{BASE}}}]}}"#)));
    unequal(&with_sid, &one(&format!(r#""Sid":"ReadState",{}"#, BASE.replace("Allow", "Deny"))));
}

#[test]
fn missing_version_is_2008() {
    let statement = format!(r#""Statement":[{{{BASE}}}]"#);
    let none = doc(&format!("{{{statement}}}"));
    let v2008 = doc(&format!(r#"{{"Version":"2008-10-17",{statement}}}"#));
    let v2012 = doc(&format!(r#"{{"Version":"2012-10-17",{statement}}}"#));
    equal(&none, &v2008);
    unequal(&none, &v2012);
    unequal(&v2008, &v2012);
}

#[test]
fn condition_values_compare_as_strings() {
    let value = |v: &str| {
        one(&format!(r#""Effect":"Deny","Action":"s3:*","Condition":{{"Bool":{{"aws:SecureTransport":{v}}}}}"#))
    };
    equal(&value("false"), &value(r#""false""#));
    equal(&value("[true]"), &value(r#""true""#));
    unequal(&value("false"), &value(r#""true""#));
    unequal(&value("false"), &value(r#""False""#));
    let number = |v: &str| {
        one(&format!(r#""Effect":"Deny","Action":"s3:*","Condition":{{"NumericLessThan":{{"s3:max-keys":{v}}}}}"#))
    };
    equal(&number("10"), &number(r#""10""#));
    equal(&number("2.5"), &number(r#""2.5""#));
    unequal(&number("10"), &number("11"));
    unequal(&number("10"), &number(r#""11""#));
}

#[test]
fn condition_operators_and_keys_are_case_insensitive() {
    let cond = |c: &str| one(&format!(r#""Effect":"Deny","Action":"s3:*","Condition":{c}"#));
    let base = cond(r#"{"Bool":{"aws:SecureTransport":"false"}}"#);
    equal(&base, &cond(r#"{"bool":{"AWS:securetransport":"false"}}"#));
    equal(&base, &cond(r#"{"BOOL":{"aws:SECURETRANSPORT":false}}"#));
    unequal(&base, &cond(r#"{"Null":{"aws:SecureTransport":"false"}}"#));
    unequal(&base, &cond(r#"{"Bool":{"aws:SecureTransports":"false"}}"#));
    unequal(&base, &cond(r#"{"Bool":{"aws:SecureTransport":"false","aws:ViaAWSService":"false"}}"#));
    // Values keep their case: StringEquals is case-sensitive.
    let se = |v: &str| cond(&format!(r#"{{"StringEquals":{{"aws:RequestTag/kubernetes-namespace":"{v}"}}}}"#));
    unequal(&se("ci"), &se("CI"));
}

#[test]
fn keys_differing_only_in_case_are_not_merged() {
    // {"k":"a","K":"b"} is k=a AND K=b; merging would make it k in {a,b}, an OR.
    let cond = |c: &str| one(&format!(r#""Effect":"Allow","Action":"s3:*","Condition":{{"StringEquals":{c}}}"#));
    let split = cond(r#"{"k":"a","K":"b"}"#);
    unequal(&split, &cond(r#"{"k":["a","b"]}"#));
    equal(&split, &cond(r#"{"K":"b","k":"a"}"#));
}

#[test]
fn bare_account_id_is_its_root_arn() {
    let p =
        |aws: &str| one(&format!(r#""Effect":"Allow","Principal":{{"AWS":{aws}}},"Action":"kms:*","Resource":"*""#));
    equal(&p(r#""123456789012""#), &p(r#""arn:aws:iam::123456789012:root""#));
    equal(&p(r#""123456789012""#), &p(r#"["arn:aws-cn:iam::123456789012:root","123456789012"]"#));
    unequal(&p(r#""123456789012""#), &p(r#""arn:aws:iam::210987654321:root""#));
    unequal(&p(r#""123456789012""#), &p(r#""arn:aws:iam::123456789012:user/root""#));
    unequal(&p(r#""123456789012""#), &p(r#""arn:aws:iam::123456789012:role/root""#));
    // Only AWS principals name accounts.
    let svc = |s: &str| one(&format!(r#""Effect":"Allow","Principal":{{"Service":"{s}"}},"Action":"a:X""#));
    unequal(&svc("123456789012"), &svc("arn:aws:iam::123456789012:root"));
}

#[test]
fn star_principal_is_aws_star() {
    let p =
        |principal: &str| one(&format!(r#""Effect":"Deny","Principal":{principal},"Action":"s3:*","Resource":"*""#));
    equal(&p(r#""*""#), &p(r#"{"AWS":"*"}"#));
    equal(&p(r#""*""#), &p(r#"{"AWS":["*"]}"#));
    unequal(&p(r#""*""#), &p(r#"{"AWS":"123456789012"}"#));
    unequal(&p(r#""*""#), &p(r#"{"Service":"*"}"#));
    let not = one(r#""Effect":"Deny","NotPrincipal":"*","Action":"s3:*","Resource":"*""#);
    unequal(&p(r#""*""#), &not);
}

#[test]
fn empty_condition_is_no_condition() {
    equal(&one(BASE), &one(&format!(r#"{BASE},"Condition":{{}}"#)));
    unequal(&one(BASE), &one(&format!(r#"{BASE},"Condition":{{"Bool":{{"aws:SecureTransport":[]}}}}"#)));
}

#[test]
fn whitespace_does_not_count() {
    let pretty = doc(&format!(
        "\n{{\n  \"Version\" : \"2012-10-17\",\n\t\"Statement\" : [ {{ {} }} ]\n}}\n",
        BASE.replace(',', " ,\n ")
    ));
    equal(&one(BASE), &pretty);
}

#[test]
fn a_different_effect_action_resource_or_element_is_a_change() {
    unequal(&one(BASE), &one(&BASE.replace("Allow", "Deny")));
    unequal(&one(BASE), &one(&BASE.replace("GetObject", "PutObject")));
    unequal(&one(BASE), &one(&BASE.replace("b/k", "b/other")));
    unequal(&one(BASE), &one(&BASE.replace("role/r", "role/s")));
    unequal(&one(BASE), &one(&BASE.replace("\"Action\"", "\"NotAction\"")));
    unequal(&one(BASE), &one(&BASE.replace("\"Resource\"", "\"NotResource\"")));
    unequal(&one(BASE), &one(&BASE.replace("\"Principal\"", "\"NotPrincipal\"")));
    unequal(&one(BASE), &one(&format!(r#"{BASE},"Condition":{{"Bool":{{"aws:SecureTransport":"true"}}}}"#)));
    // A statement more, even one that repeats another's effect.
    let extra = r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/k2"}"#;
    unequal(&one(BASE), &doc(&format!(r#"{{"Version":"2012-10-17","Statement":[{{{BASE}}},{extra}]}}"#)));
}

#[test]
fn normalized_form_is_canonical_and_idempotent() {
    let a = doc(r#"{"Statement":[{"Sid":"x","Effect":"Deny","Principal":"*","Action":["S3:PutObject","s3:putobject"],
        "Resource":["r2","r1"],"Condition":{"Null":{"S3:X-Amz-Server-Side-Encryption":true}}}]}"#);
    let n = a.normalized();
    let expected = concat!(
        r#"{"Version":"2008-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"*"},"#,
        r#""Action":"s3:putobject","Resource":["r1","r2"],"#,
        r#""Condition":{"null":{"s3:x-amz-server-side-encryption":"true"}}}]}"#
    );
    assert_eq!(n.to_json(), expected);
    assert_eq!(n.normalized(), n);
}
