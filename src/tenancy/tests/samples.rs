//! How the reconciler builds a [`Target`] from a validated spec, and the repository's samples
//! under the built-in default (a single-tenant install without any policy object).

use super::*;
use crate::api::{TerraformStateBackend, TerraformStatePolicy};
use crate::reconcile::admit::target_of;
use crate::reconcile::validate::{ObjectRef, OperatorDefaults, ValidSpec, validate};

/// The checkout the test runs in, read at run time: checkouts sharing a target directory
/// reuse each other's test binaries, and `env!` would point at another checkout.
fn checkout() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}

fn sample(file: &str, namespace: &str) -> (TerraformStateBackend, ValidSpec) {
    let path = checkout().join("samples").join(file);
    let yaml = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let obj: TerraformStateBackend = serde_yaml_ng::from_str(&yaml).expect("sample parses");
    let name = obj.metadata.name.clone().unwrap_or_default();
    let valid = validate(ObjectRef { namespace, name: &name }, &obj.spec, &OperatorDefaults::default())
        .unwrap_or_else(|e| panic!("{file} is valid: {e}"));
    (obj, valid)
}

fn violations(file: &str, namespace: &str, policy: &EffectivePolicy) -> Vec<Rule> {
    let (_, valid) = sample(file, namespace);
    match check(policy, &target_of(&valid, ACCOUNT)) {
        Ok(()) => Vec::new(),
        Err(v) => v.into_iter().map(|v| v.rule).collect(),
    }
}

#[test]
fn every_sample_keeps_to_the_built_in_default_in_its_namespace() {
    let table = [
        ("minimal.yaml", "default"),
        ("both-locks.yaml", "default"),
        ("lockfile.yaml", "default"),
        ("irsa.yaml", "team-payments"),
        ("pod-identity.yaml", "flux-system"), // it trusts flux-system/tf-runner
        ("kms-existing-key.yaml", "platform"),
        ("audit.yaml", "default"),
    ];
    for (file, namespace) in table {
        assert_eq!(violations(file, namespace, &resolve(&[], namespace, &labels(&[]))), [], "{file} in {namespace}");
    }
}

#[test]
fn samples_in_another_namespace_or_under_a_catch_all_policy() {
    let default = resolve(&[], "team-x", &labels(&[]));
    // A tenant cannot trust another namespace's service account.
    assert_eq!(violations("pod-identity.yaml", "team-x", &default), [Rule::ServiceAccountNamespace]);
    assert_eq!(violations("irsa.yaml", "team-x", &default), [Rule::ServiceAccountNamespace]);
    // A policy object that names no key allows no existing key.
    let catch_all = resolve(&[policy("catch-all", "namespaceSelector: {}")], "platform", &labels(&[]));
    assert_eq!(violations("kms-existing-key.yaml", "platform", &catch_all), [Rule::ExistingKey]);
}

#[test]
fn derived_default_names_are_judged_too() {
    let p = resolve(
        &[policy(
            "names",
            r#"{namespaceSelector: {}, allowedNames: {roles: ["tfstate-{namespace}-*"], kmsAliases: ["alias/tfstate-{namespace}-*"], lockTables: ["acme-tfstate-*-lock"]}}"#,
        )],
        "default",
        &labels(&[]),
    );
    // minimal.yaml leaves role, alias and table to their defaults, which fit these patterns.
    assert_eq!(violations("minimal.yaml", "default", &p), []);
    // audit.yaml's derived trail name fits the default of a policy that omits trails; another
    // namespace's does not make it another's.
    assert_eq!(violations("audit.yaml", "default", &p), []);
    let (_, valid) = sample("audit.yaml", "default");
    assert_eq!(valid.audit.map(|a| a.trail_name).as_deref(), Some("tfstate-default.audited"));
    let strict =
        resolve(&[policy("none", "{namespaceSelector: {}, allowedNames: {trails: []}}")], "default", &labels(&[]));
    assert_eq!(violations("audit.yaml", "default", &strict), [Rule::TrailName]);
    let (_, valid) = sample("minimal.yaml", "default");
    assert_eq!(valid.role.name, "tfstate-default-minimal");
}

/// The `TerraformStatePolicy` examples of docs/tenancy.md, in order.
fn documented_policies() -> Vec<TerraformStatePolicy> {
    let path = checkout().join("docs/tenancy.md");
    let text = std::fs::read_to_string(&path).expect("docs/tenancy.md");
    text.split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split_once("```").map(|(yaml, _)| yaml))
        .filter(|yaml| yaml.contains("kind: TerraformStatePolicy"))
        .map(|yaml| serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("documented policy parses: {e}\n{yaml}")))
        .collect()
}

#[test]
fn the_documented_examples_resolve_as_documented() {
    let policies = documented_policies();
    let names: Vec<_> = policies.iter().map(|p| p.metadata.name.as_deref().unwrap()).collect();
    assert_eq!(names, ["baseline", "tenants", "platform", "payments-account"]);

    let tenant = resolve(&policies, "team-a", &labels(&[("tfstate.dev/tenant", "true"), ("environment", "prod")]));
    assert_eq!((tenant.policy_name(), tenant.also_selected_by.as_slice()), ("tenants", &["baseline".to_string()][..]));
    let dev = resolve(&policies, "team-a", &labels(&[("tfstate.dev/tenant", "true"), ("environment", "dev")]));
    assert_eq!(dev.policy_name(), "baseline");
    let platform = resolve(&policies, "platform", &labels(&[("kubernetes.io/metadata.name", "platform")]));
    assert_eq!((platform.policy_name(), platform.aws_accounts.clone()), ("platform", Allowed::Any));
    let payments = resolve(&policies, "pay", &labels(&[("acme.example/aws-account", "payments")]));
    assert_eq!(payments.policy_name(), "payments-account");
    assert_eq!(payments.backend_account_id(ACCOUNT), "210987654321");

    // The baseline: explicit collision-free names pass, the derived defaults do not, and
    // namespace `a` cannot take the default table of namespace `a-b`.
    let baseline = resolve(&policies, "a", &labels(&[]));
    let mut backend = Backend::in_namespace("a");
    (backend.bucket, backend.lock_table, backend.role, backend.alias) = (
        "acme-tfstate-a".into(),
        Some("acme-tfstate-a-lock".into()),
        "tfstate_a_app".into(),
        Some("alias/tfstate/a/app".into()),
    );
    assert_eq!(broken(&baseline, &backend), []);
    backend.bucket = "acme-tfstate-a.app".into();
    backend.lock_table = Some("acme-tfstate-a.app-lock".into());
    assert_eq!(broken(&baseline, &backend), []);
    backend.lock_table = Some("acme-tfstate-a-b-lock".into());
    backend.role = "tfstate-a-app".into();
    backend.alias = Some("alias/tfstate-a-app".into());
    let rules: Vec<_> = broken(&baseline, &backend).into_iter().map(|(r, _)| r).collect();
    assert_eq!(rules, [Rule::LockTableName, Rule::RoleName, Rule::KmsAlias]);
}
