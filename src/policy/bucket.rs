//! The state bucket's policy: TLS only, and no upload that asks for an encryption other than
//! the backend's.
//!
//! The encryption denials judge only requests that STATE an encryption. A request without SSE
//! headers is encrypted by the bucket's default encryption (the backend's key, or SSE-S3), so
//! it is let through: that is how Terraform's multipart uploader (states above 5 MiB) works,
//! whose UploadPart and CompleteMultipartUpload requests carry no SSE header although S3
//! authorises them, like CreateMultipartUpload, as `s3:PutObject`. A request that asks for
//! weaker or foreign encryption fails loudly instead of being silently re-encrypted.
//!
//! Every denial is presence-guarded with `Null: {key: "false"}` ("the key is present"), ANDed
//! with the comparison (all operators of one statement must match for it to apply).
//! `StringNotEqualsIfExists` alone would NOT guard a Deny: `...IfExists` makes a condition on a
//! missing key true, so it would deny every header-less part.

use super::document::{Effect, PolicyDocument, Principal, Statement};

/// Condition key of the `x-amz-server-side-encryption` header (`AES256`, `aws:kms`, ...).
const SSE: &str = "s3:x-amz-server-side-encryption";
/// Condition key of the `x-amz-server-side-encryption-aws-kms-key-id` header.
const SSE_KMS_KEY_ID: &str = "s3:x-amz-server-side-encryption-aws-kms-key-id";
/// Condition key of the `x-amz-server-side-encryption-customer-algorithm` header (SSE-C).
const SSE_CUSTOMER_ALGORITHM: &str = "s3:x-amz-server-side-encryption-customer-algorithm";

/// What the bucket policy depends on.
#[derive(Clone, Copy, Debug)]
pub struct BucketPolicyInput<'a> {
    /// AWS partition, e.g. `aws`, `aws-cn`, `aws-us-gov`.
    pub partition: &'a str,
    /// Bucket name.
    pub bucket: &'a str,
    /// The encryption uploads must ask for.
    pub encryption: BucketPolicyEncryption<'a>,
}

/// The server-side encryption the bucket policy enforces on uploads that state one.
#[derive(Clone, Copy, Debug)]
pub enum BucketPolicyEncryption<'a> {
    /// SSE-KMS with this key (its ARN, as Terraform's `kms_key_id` sends it).
    Kms {
        /// The key ARN.
        key_arn: &'a str,
    },
    /// SSE-S3.
    Aes256,
}

/// The bucket policy, `Sid`s:
/// - `DenyInsecureTransport`: any request without TLS;
/// - `DenyIncorrectEncryptionHeader`: a stated algorithm other than the backend's (`aws:kms`
///   or `AES256`);
/// - with KMS, `DenyKmsWithoutKeyId`: `aws:kms` stated without a key id, which S3 would
///   encrypt with the AWS managed `aws/s3` key instead of the backend's;
/// - with KMS, `DenyWrongKmsKey`: a stated key id other than the backend's key ARN;
/// - `DenySseC`: customer-provided keys (SSE-C), which the operator cannot manage or rotate.
pub fn bucket_policy(input: &BucketPolicyInput<'_>) -> PolicyDocument {
    let bucket_arn = format!("arn:{}:s3:::{}", input.partition, input.bucket);
    let objects_arn = format!("{bucket_arn}/*");
    let deny_put = |sid: &str| {
        Statement::new(sid, Effect::Deny).principal(Principal::Any).actions(["s3:PutObject"]).resources([&*objects_arn])
    };
    let stated = |statement: Statement, key: &str| statement.condition("Null", key, ["false"]);
    let algorithm = match input.encryption {
        BucketPolicyEncryption::Kms { .. } => "aws:kms",
        BucketPolicyEncryption::Aes256 => "AES256",
    };

    let mut statements = vec![
        Statement::new("DenyInsecureTransport", Effect::Deny)
            .principal(Principal::Any)
            .actions(["s3:*"])
            .resources([bucket_arn.as_str(), &objects_arn])
            .condition("Bool", "aws:SecureTransport", ["false"]),
        stated(deny_put("DenyIncorrectEncryptionHeader"), SSE).condition("StringNotEquals", SSE, [algorithm]),
    ];
    if let BucketPolicyEncryption::Kms { key_arn } = input.encryption {
        // S3 encrypts an `aws:kms` upload that names no key with the AWS managed `aws/s3` key.
        let without_key_id = deny_put("DenyKmsWithoutKeyId").condition("StringEquals", SSE, ["aws:kms"]);
        let wrong_key = stated(deny_put("DenyWrongKmsKey"), SSE_KMS_KEY_ID);
        statements.extend([
            without_key_id.condition("Null", SSE_KMS_KEY_ID, ["true"]),
            wrong_key.condition("StringNotEquals", SSE_KMS_KEY_ID, [key_arn]),
        ]);
    }
    statements.push(stated(deny_put("DenySseC"), SSE_CUSTOMER_ALGORITHM));
    PolicyDocument::new(statements)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::policy::test_support::{assert_json, assert_survives_aws_rewrite};

    const KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-aaaa-bbbb-cccc-123456789abc";
    const OTHER_KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/99999999-aaaa-bbbb-cccc-123456789abc";
    const OBJECTS: &str = "arn:aws:s3:::acme-tfstate/*";

    fn input(encryption: BucketPolicyEncryption<'_>) -> BucketPolicyInput<'_> {
        BucketPolicyInput { partition: "aws", bucket: "acme-tfstate", encryption }
    }

    fn kms() -> PolicyDocument {
        bucket_policy(&input(BucketPolicyEncryption::Kms { key_arn: KEY }))
    }

    fn aes256() -> PolicyDocument {
        bucket_policy(&input(BucketPolicyEncryption::Aes256))
    }

    fn tls_only() -> Value {
        json!({
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": ["arn:aws:s3:::acme-tfstate", OBJECTS],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        })
    }

    fn deny_put(sid: &str, condition: Value) -> Value {
        json!({"Sid": sid, "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": OBJECTS,
               "Condition": condition})
    }

    fn incorrect_header(algorithm: &str) -> Value {
        deny_put("DenyIncorrectEncryptionHeader", json!({"Null": {SSE: "false"}, "StringNotEquals": {SSE: algorithm}}))
    }

    fn sse_c() -> Value {
        deny_put("DenySseC", json!({"Null": {SSE_CUSTOMER_ALGORITHM: "false"}}))
    }

    /// One request's condition context: (key, value) of each header it states, plus TLS.
    struct Request {
        tls: bool,
        headers: Vec<(&'static str, &'static str)>,
    }

    fn tls(headers: &[(&'static str, &'static str)]) -> Request {
        Request { tls: true, headers: headers.to_vec() }
    }

    /// Whether `statement` applies to a `s3:PutObject` of an object, by AWS's condition
    /// semantics for the operators the builder uses: `Null` tests presence; on a missing key
    /// `StringEquals`/`Bool` are false and `StringNotEquals` true; all operators are ANDed,
    /// values of one key ORed.
    fn applies(statement: &Statement, request: &Request) -> bool {
        let secure = if request.tls { "true" } else { "false" };
        let value = |key: &str| match key {
            "aws:SecureTransport" => Some(secure),
            _ => request.headers.iter().find(|(k, _)| *k == key).map(|(_, v)| *v),
        };
        statement.condition.iter().flatten().all(|(operator, keys)| {
            keys.iter().all(|(key, values)| {
                let values: Vec<String> = values.iter().map(|v| v.as_aws_string()).collect();
                let actual = value(key);
                match (operator.as_str(), actual) {
                    ("Null", _) => values.iter().any(|v| (v == "true") == actual.is_none()),
                    ("StringEquals" | "Bool", None) => false,
                    ("StringEquals" | "Bool", Some(a)) => values.iter().any(|v| v == a),
                    ("StringNotEquals", None) => true,
                    ("StringNotEquals", Some(a)) => !values.iter().any(|v| v == a),
                    (other, _) => panic!("operator {other} not modelled by this test"),
                }
            })
        })
    }

    fn statement<'a>(doc: &'a PolicyDocument, sid: &str) -> &'a Statement {
        doc.statements.iter().find(|s| s.sid.as_deref() == Some(sid)).unwrap_or_else(|| panic!("no {sid}"))
    }

    /// Asserts which `requests` the statement `sid` of `doc` applies to (denies).
    #[track_caller]
    fn assert_denies(doc: &PolicyDocument, sid: &str, cases: &[(&str, Request, bool)]) {
        let s = statement(doc, sid);
        for (what, request, denied) in cases {
            assert_eq!(applies(s, request), *denied, "{sid} on {what}");
        }
    }

    /// What Terraform's multipart uploader sends without any SSE header: UploadPart and
    /// CompleteMultipartUpload (and a client that relies on default encryption).
    fn header_less() -> (&'static str, Request, bool) {
        ("a request without SSE headers (UploadPart, CompleteMultipartUpload)", tls(&[]), false)
    }

    #[test]
    fn kms_mode_has_every_denial_in_order() {
        let statements = vec![
            tls_only(),
            incorrect_header("aws:kms"),
            deny_put(
                "DenyKmsWithoutKeyId",
                json!({"StringEquals": {SSE: "aws:kms"}, "Null": {SSE_KMS_KEY_ID: "true"}}),
            ),
            deny_put(
                "DenyWrongKmsKey",
                json!({"Null": {SSE_KMS_KEY_ID: "false"}, "StringNotEquals": {SSE_KMS_KEY_ID: KEY}}),
            ),
            sse_c(),
        ];
        assert_json(&kms(), statements);
    }

    #[test]
    fn aes256_mode_has_no_key_statements() {
        assert_json(&aes256(), vec![tls_only(), incorrect_header("AES256"), sse_c()]);
    }

    #[test]
    fn deny_insecure_transport_refuses_plain_http_only() {
        let terraform = [(SSE, "aws:kms"), (SSE_KMS_KEY_ID, KEY)];
        for doc in [kms(), aes256()] {
            assert_eq!(statement(&doc, "DenyInsecureTransport").action, Some(vec!["s3:*".to_string()]));
            assert_denies(
                &doc,
                "DenyInsecureTransport",
                &[
                    ("plain HTTP", Request { tls: false, headers: terraform.to_vec() }, true),
                    ("plain HTTP without headers", Request { tls: false, headers: vec![] }, true),
                    ("TLS", tls(&terraform), false),
                    header_less(),
                ],
            );
        }
    }

    #[test]
    fn deny_incorrect_encryption_header_judges_only_a_stated_algorithm() {
        assert_denies(
            &kms(),
            "DenyIncorrectEncryptionHeader",
            &[
                ("AES256", tls(&[(SSE, "AES256")]), true),
                ("DSSE-KMS", tls(&[(SSE, "aws:kms:dsse"), (SSE_KMS_KEY_ID, KEY)]), true),
                ("aws:kms", tls(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, KEY)]), false),
                header_less(),
            ],
        );
        assert_denies(
            &aes256(),
            "DenyIncorrectEncryptionHeader",
            &[
                ("aws:kms", tls(&[(SSE, "aws:kms")]), true),
                ("aws:kms with a key", tls(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, KEY)]), true),
                ("DSSE-KMS", tls(&[(SSE, "aws:kms:dsse")]), true),
                ("AES256", tls(&[(SSE, "AES256")]), false),
                header_less(),
            ],
        );
    }

    #[test]
    fn deny_kms_without_key_id_refuses_what_s3_would_encrypt_with_aws_s3() {
        assert_denies(
            &kms(),
            "DenyKmsWithoutKeyId",
            &[
                ("aws:kms without a key id", tls(&[(SSE, "aws:kms")]), true),
                ("aws:kms with the key", tls(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, KEY)]), false),
                ("AES256", tls(&[(SSE, "AES256")]), false), // DenyIncorrectEncryptionHeader's job
                header_less(),
            ],
        );
    }

    #[test]
    fn deny_wrong_kms_key_judges_only_a_stated_key_id() {
        assert_denies(
            &kms(),
            "DenyWrongKmsKey",
            &[
                ("another key", tls(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, OTHER_KEY)]), true),
                ("the key's id instead of its ARN", tls(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, "0f1e2d3c")]), true),
                ("the backend's key ARN", tls(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, KEY)]), false),
                ("aws:kms without a key id", tls(&[(SSE, "aws:kms")]), false), // DenyKmsWithoutKeyId's job
                header_less(),
            ],
        );
    }

    #[test]
    fn deny_sse_c_refuses_customer_provided_keys() {
        for doc in [kms(), aes256()] {
            assert_denies(
                &doc,
                "DenySseC",
                &[
                    ("SSE-C", tls(&[(SSE_CUSTOMER_ALGORITHM, "AES256")]), true),
                    ("SSE-C with aws:kms", tls(&[(SSE, "aws:kms"), (SSE_CUSTOMER_ALGORITHM, "AES256")]), true),
                    ("aws:kms", tls(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, KEY)]), false),
                    header_less(),
                ],
            );
        }
    }

    /// Terraform's requests pass every statement; each weaker or foreign one hits at least one.
    #[test]
    fn the_whole_policy_lets_terraform_and_header_less_parts_through() {
        let denied = |doc: &PolicyDocument, r: &Request| doc.statements.iter().any(|s| applies(s, r));
        let (kms, aes) = (kms(), aes256());
        let kms_terraform = tls(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, KEY)]);
        for (doc, ok) in
            [(&kms, &kms_terraform), (&kms, &tls(&[])), (&aes, &tls(&[(SSE, "AES256")])), (&aes, &tls(&[]))]
        {
            assert!(!denied(doc, ok), "{:?} must pass", ok.headers);
        }
        let refused = [
            tls(&[(SSE, "AES256")]),
            tls(&[(SSE, "aws:kms")]),
            tls(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, OTHER_KEY)]),
            tls(&[(SSE_CUSTOMER_ALGORITHM, "AES256")]),
            Request { tls: false, headers: vec![(SSE, "aws:kms"), (SSE_KMS_KEY_ID, KEY)] },
        ];
        for r in &refused {
            assert!(denied(&kms, r), "KMS backend must refuse {:?} (tls {})", r.headers, r.tls);
        }
        for r in [tls(&[(SSE, "aws:kms"), (SSE_KMS_KEY_ID, KEY)]), tls(&[(SSE_CUSTOMER_ALGORITHM, "AES256")])] {
            assert!(denied(&aes, &r), "AES256 backend must refuse {:?}", r.headers);
        }
    }

    #[test]
    fn arns_use_the_partition() {
        let doc = bucket_policy(&BucketPolicyInput {
            partition: "aws-cn",
            bucket: "b",
            encryption: BucketPolicyEncryption::Aes256,
        });
        assert_eq!(doc.statements[0].resource, Some(vec!["arn:aws-cn:s3:::b".into(), "arn:aws-cn:s3:::b/*".into()]));
        assert!(doc.statements[1..].iter().all(|s| s.resource == Some(vec!["arn:aws-cn:s3:::b/*".into()])));
    }

    #[test]
    fn modes_differ_semantically() {
        let other_key = bucket_policy(&input(BucketPolicyEncryption::Kms { key_arn: OTHER_KEY }));
        assert!(!kms().semantically_eq(&aes256()));
        assert!(!kms().semantically_eq(&other_key));
    }

    #[test]
    fn survives_aws_rewrites() {
        assert_survives_aws_rewrite(&kms());
        assert_survives_aws_rewrite(&aes256());
    }
}
