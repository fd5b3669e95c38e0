//! `output.openTofuEncryption` on the real test ground: the ConfigMap holds `encryption.tf` and
//! `TF_ENCRYPTION` naming the backend's key, the runner role and the key policy gain the direct
//! key use OpenTofu's `aws_kms` key provider needs, and turning the flag off withdraws all of
//! it. The key then serves OpenTofu's two calls (GenerateDataKey AES_256, Decrypt of the blob,
//! no encryption context) as the key provider makes them.

mod common;

use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use common::operator::{patch_spec, ready_backend, wait_for};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use tfstate_operator::api::TerraformStateBackend;
use tfstate_operator::aws::{iam, kms};
use tfstate_operator::policy::PolicyDocument;

fn sids(doc: &PolicyDocument) -> Vec<String> {
    doc.statements.iter().filter_map(|s| s.sid.clone()).collect()
}

#[tokio::test]
async fn encryption_config_and_direct_key_use_follow_the_flag() {
    let b = ready_backend("tofu-enc", "  output: {openTofuEncryption: true}").await;
    let key = b.status.kms_key_arn.clone().expect("kmsKeyArn");
    let role_arn = b.status.role_arn.clone().expect("roleArn");
    let role = role_arn.rsplit('/').next().expect("role name").to_owned();

    // The ConfigMap: both forms, parsed back, naming this backend's key, region and role.
    let file: hcl::Body = hcl::parse(&b.data["encryption.tf"]).expect("encryption.tf is HCL");
    let env: hcl::Body = hcl::parse(&b.data["TF_ENCRYPTION"]).expect("TF_ENCRYPTION is HCL");
    let terraform = file.blocks().next().expect("terraform block");
    let encryption = terraform.body.blocks().next().expect("encryption block");
    assert_eq!((terraform.identifier(), encryption.identifier()), ("terraform", "encryption"));
    assert_eq!(encryption.body, env, "TF_ENCRYPTION is the encryption block's body");
    let provider = env.blocks().find(|b| b.identifier() == "key_provider").expect("key_provider");
    let value = |name: &str| provider.body.attributes().find(|a| a.key() == name).map(|a| a.expr().clone());
    assert_eq!(value("kms_key_id"), Some(hcl::Expression::String(key.clone())));
    assert_eq!(value("region"), Some(hcl::Expression::String("eu-west-1".into())));
    assert!(b.data["encryption.tf"].contains(&format!("role_arn = \"{role_arn}\"")));

    let aws = common::operator::inspector(&b.ground).await;
    let inline = |doc: Option<String>| PolicyDocument::parse(&doc.expect("inline policy")).expect("parses");
    let runner = inline(iam::get_inline_policy(&aws.iam, &role, "tfstate-backend").await.expect("GetRolePolicy"));
    let direct = runner.statements.iter().find(|s| s.sid.as_deref() == Some("OpenTofuStateEncryption")).expect("grant");
    assert_eq!(direct.resource.as_deref(), Some(&[key.clone()][..]), "the backend's key only");
    assert_eq!(direct.action.as_deref(), Some(&["kms:GenerateDataKey".to_owned(), "kms:Decrypt".to_owned()][..]));
    let key_policy = |s: kms::KeySettings| PolicyDocument::parse(&s.policy.expect("key policy")).expect("parses");
    let kp = key_policy(kms::get_settings(&aws.kms, &key).await.expect("key settings"));
    assert!(sids(&kp).contains(&"AllowBackendRoleOpenTofuEncryption".to_owned()), "{}", kp.to_json());

    // OpenTofu's calls, as its aws_kms key provider makes them.
    let data_key =
        aws.kms.generate_data_key().key_id(&key).key_spec(DataKeySpec::Aes256).send().await.expect("GenerateDataKey");
    let plain = data_key.plaintext().expect("plaintext").as_ref().to_vec();
    assert_eq!(plain.len(), 32, "aes_gcm gets a 32-byte key");
    let blob = Blob::new(data_key.ciphertext_blob().expect("ciphertext").as_ref().to_vec());
    let opened = aws.kms.decrypt().key_id(&key).ciphertext_blob(blob).send().await.expect("Decrypt");
    assert_eq!(opened.plaintext().expect("plaintext").as_ref(), &plain[..]);

    // Off again: the keys leave the ConfigMap and both grants are withdrawn.
    let client = b.ground.kube().await;
    let ns = b.namespace.clone();
    let api: Api<TerraformStateBackend> = Api::namespaced(client.clone(), &ns);
    patch_spec(&api, "tf", serde_json::json!({"output": {"openTofuEncryption": false}})).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let data = cms.get("tf-backend").await.expect("ConfigMap").data.unwrap_or_default();
        let runner = inline(iam::get_inline_policy(&aws.iam, &role, "tfstate-backend").await.expect("GetRolePolicy"));
        let kp = key_policy(kms::get_settings(&aws.kms, &key).await.expect("key settings"));
        let gone = !data.contains_key("encryption.tf")
            && !data.contains_key("TF_ENCRYPTION")
            && !sids(&runner).contains(&"OpenTofuStateEncryption".to_owned())
            && !sids(&kp).contains(&"AllowBackendRoleOpenTofuEncryption".to_owned());
        if gone {
            assert!(sids(&runner).contains(&"UseStateKey".to_owned()), "the S3 use stays");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "encryption not withdrawn: {data:?} {}", runner.to_json());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    wait_for(&api, "tf", Duration::from_secs(60), "Ready", common::operator::is_ready).await;
}
