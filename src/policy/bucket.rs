//! The state bucket's policy: TLS only, and every object written with the backend's
//! encryption. Default bucket encryption already encrypts objects uploaded without a header;
//! these denials make a client that asks for weaker or foreign encryption fail loudly instead.

use super::document::{Effect, PolicyDocument, Principal, Statement};

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

/// The server-side encryption the bucket policy enforces on uploads.
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

/// The bucket policy, `Sid`s `DenyInsecureTransport`, `DenyUnencryptedObjectUploads`,
/// `DenyIncorrectEncryptionHeader` and, with KMS, `DenyWrongKmsKey`.
pub fn bucket_policy(input: &BucketPolicyInput<'_>) -> PolicyDocument {
    let bucket_arn = format!("arn:{}:s3:::{}", input.partition, input.bucket);
    let objects_arn = format!("{bucket_arn}/*");
    let deny_put = |sid: &str| {
        Statement::new(sid, Effect::Deny).principal(Principal::Any).actions(["s3:PutObject"]).resources([&*objects_arn])
    };
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
        deny_put("DenyUnencryptedObjectUploads").condition("Null", "s3:x-amz-server-side-encryption", ["true"]),
        deny_put("DenyIncorrectEncryptionHeader").condition(
            "StringNotEquals",
            "s3:x-amz-server-side-encryption",
            [algorithm],
        ),
    ];
    if let BucketPolicyEncryption::Kms { key_arn } = input.encryption {
        // Not IfExists: S3 encrypts an `aws:kms` upload that names no key with the AWS
        // managed `aws/s3` key, not the bucket's, so the key id header is required. Terraform
        // sends it whenever `kms_key_id` is set, which the published configuration does.
        statements.push(deny_put("DenyWrongKmsKey").condition(
            "StringNotEquals",
            "s3:x-amz-server-side-encryption-aws-kms-key-id",
            [key_arn],
        ));
    }
    PolicyDocument::new(statements)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::policy::test_support::{assert_json, assert_survives_aws_rewrite};

    const KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-aaaa-bbbb-cccc-123456789abc";

    fn input(encryption: BucketPolicyEncryption<'_>) -> BucketPolicyInput<'_> {
        BucketPolicyInput { partition: "aws", bucket: "acme-tfstate", encryption }
    }

    fn common(algorithm: &str) -> Vec<serde_json::Value> {
        vec![
            json!({
                "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                "Resource": ["arn:aws:s3:::acme-tfstate", "arn:aws:s3:::acme-tfstate/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}}
            }),
            json!({
                "Sid": "DenyUnencryptedObjectUploads", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::acme-tfstate/*",
                "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}}
            }),
            json!({
                "Sid": "DenyIncorrectEncryptionHeader", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::acme-tfstate/*",
                "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": algorithm}}
            }),
        ]
    }

    #[test]
    fn kms_mode_enforces_the_key() {
        let mut statements = common("aws:kms");
        statements.push(json!({
            "Sid": "DenyWrongKmsKey", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::acme-tfstate/*",
            "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": KEY}}
        }));
        assert_json(&bucket_policy(&input(BucketPolicyEncryption::Kms { key_arn: KEY })), statements);
    }

    #[test]
    fn aes256_mode_has_no_key_statement() {
        assert_json(&bucket_policy(&input(BucketPolicyEncryption::Aes256)), common("AES256"));
    }

    #[test]
    fn arns_use_the_partition() {
        let doc = bucket_policy(&BucketPolicyInput {
            partition: "aws-cn",
            bucket: "b",
            encryption: BucketPolicyEncryption::Aes256,
        });
        assert_eq!(doc.statements[0].resource, Some(vec!["arn:aws-cn:s3:::b".into(), "arn:aws-cn:s3:::b/*".into()]));
    }

    #[test]
    fn modes_differ_semantically() {
        let kms = bucket_policy(&input(BucketPolicyEncryption::Kms { key_arn: KEY }));
        let other_key = bucket_policy(&input(BucketPolicyEncryption::Kms { key_arn: "arn:aws:kms:eu-west-1:1:key/x" }));
        let aes = bucket_policy(&input(BucketPolicyEncryption::Aes256));
        assert!(!kms.semantically_eq(&aes));
        assert!(!kms.semantically_eq(&other_key));
    }

    #[test]
    fn survives_aws_rewrites() {
        assert_survives_aws_rewrite(&bucket_policy(&input(BucketPolicyEncryption::Kms { key_arn: KEY })));
        assert_survives_aws_rewrite(&bucket_policy(&input(BucketPolicyEncryption::Aes256)));
    }
}
