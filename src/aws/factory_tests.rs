use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::aws::calls::{CallKey, Outcome};

fn valid_session_name(s: &str) -> bool {
    (2..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

#[test]
fn session_name_is_namespace_dot_name_when_it_fits() {
    assert_eq!(session_name("team-payments", "payments-prod"), "team-payments.payments-prod");
    assert_eq!(session_name("a", "b.c"), "a.b.c");
    let ns = "n".repeat(20);
    let name = "x".repeat(64 - 21);
    assert_eq!(session_name(&ns, &name), format!("{ns}.{name}"), "exactly 64 characters");
}

#[test]
fn long_or_odd_names_are_shortened_with_a_hash() {
    let ns = "team-with-a-rather-long-namespace-name";
    let name = "and-an-object-name-that-is-long-too.example";
    let s = session_name(ns, name);
    assert!(valid_session_name(&s), "{s}");
    assert_eq!(s.len(), 64);
    assert!(s.starts_with("team-with-a-rather-long-namespace-name.and-an-obje+"), "{s}");
    assert_eq!(s.matches('+').count(), 1);
    // Deterministic, and pinned: the same in every process and release.
    assert_eq!(s, session_name(ns, name));
    assert_eq!(
        session_name(&"a".repeat(63), &"b".repeat(253)),
        format!("{}+{}", "a".repeat(50), base32(fnv(63, &"a".repeat(63), &"b".repeat(253))))
    );
    assert_eq!(base32(0), "aaaaaaaaaaaaa");
    assert_eq!(base32(u64::MAX), "p777777777777");
    assert_eq!(session_name("", ""), format!(".+{}", base32(fnv(0, "", ""))));
    assert_eq!(session_name("ns", "name"), "ns.name");
    assert_eq!(session_name("x", "y").len(), 3);

    // Characters a Kubernetes name cannot hold (defensive: the function is public).
    for (ns, name) in [("Team", "x"), ("a.b", "c"), ("ns", "ü/x"), ("ns", ""), ("", "x"), ("a+b", "c")] {
        let s = session_name(ns, name);
        assert!(valid_session_name(&s), "{ns:?}/{name:?} -> {s}");
        assert_eq!(s.matches('+').count(), 1, "{ns:?}/{name:?} -> {s}");
    }
}

fn fnv(len: u64, ns: &str, name: &str) -> u64 {
    let mut h = Fnv1a::default();
    h.write(&len.to_le_bytes());
    h.write(ns.as_bytes());
    h.write(name.as_bytes());
    h.0
}

#[test]
fn fnv1a_matches_the_reference_values() {
    // From the FNV reference test vectors (64-bit FNV-1a).
    let hash = |s: &str| {
        let mut h = Fnv1a::default();
        h.write(s.as_bytes());
        h.0
    };
    assert_eq!(hash(""), 0xcbf29ce484222325);
    assert_eq!(hash("a"), 0xaf63dc4c8601ec8c);
    assert_eq!(hash("foobar"), 0x85944171f73967e8);
}

#[test]
fn session_names_do_not_collide() {
    let mut seen = HashMap::new();
    let long = "x".repeat(60);
    // Pairs whose shortened prefixes are equal, and splits of the same characters.
    let pairs: Vec<(String, String)> = (0..2000)
        .map(|i| (format!("ns{}", i % 7), format!("{long}-{i}")))
        .chain((1..40).map(|i| ("n".repeat(i), "n".repeat(80 - i))))
        .chain([("a-b".into(), "c".into()), ("a".into(), "b-c".into()), ("a".into(), "b.c".into())])
        .collect();
    for (ns, name) in &pairs {
        let s = session_name(ns, name);
        assert!(valid_session_name(&s), "{s}");
        if let Some(prev) = seen.insert(s.clone(), (ns.clone(), name.clone())) {
            panic!("{prev:?} and {:?} both give {s}", (ns, name));
        }
    }
}

#[test]
fn bounded_cache_drops_idle_entries_then_the_least_recently_used() {
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let mut c: BoundedCache<&str, u32> = BoundedCache::new(3, Duration::from_secs(100));
    assert_eq!(c.get_or_insert_with("a", at(0), || 1), 1);
    assert_eq!(c.get_or_insert_with("b", at(1), || 2), 2);
    assert_eq!(c.get_or_insert_with("c", at(2), || 3), 3);
    // A hit returns the cached value and makes "a" the most recently used.
    assert_eq!(c.get_or_insert_with("a", at(3), || 99), 1);
    // Full: "b", the least recently used, goes.
    assert_eq!(c.get_or_insert_with("d", at(4), || 4), 4);
    assert_eq!(c.len(), 3);
    assert_eq!(c.get_or_insert_with("b", at(5), || 20), 20, "b was evicted and is made again");
    assert!(!c.entries.contains_key("c"), "c was then the least recently used");
    // Later, everything but "a" (used at 101) is idle and dropped on the next miss.
    assert_eq!(c.get_or_insert_with("a", at(101), || 99), 1);
    assert_eq!(c.get_or_insert_with("e", at(106), || 5), 5);
    let mut keys: Vec<_> = c.entries.keys().copied().collect();
    keys.sort();
    assert_eq!(keys, ["a", "e"]);
}

// --- A scripted STS on loopback: the real SDK path (signing, credentials cache, errors) ---

/// What the fake STS answers to one request: (HTTP status, XML body).
type Reply = (u16, String);

struct FakeSts {
    url: String,
    /// Every request: (action, the access key it was signed with).
    requests: Arc<Mutex<Vec<(String, String)>>>,
}

impl FakeSts {
    /// Answers AssumeRole number n (0-based) with `assume(n)` and GetCallerIdentity with the
    /// identity of the signing key.
    async fn start(assume: impl Fn(usize) -> Reply + Send + Sync + 'static) -> FakeSts {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let (log, assume, assumes) = (requests.clone(), Arc::new(assume), Arc::new(AtomicUsize::new(0)));
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else { return };
                let (log, assume, assumes) = (log.clone(), assume.clone(), assumes.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head, body) = loop {
                        let n = conn.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some((head, body)) = text.split_once("\r\n\r\n") {
                            let len = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                                })
                                .and_then(|v| v.parse::<usize>().ok())
                                .unwrap_or(0);
                            if body.len() >= len {
                                break (head.to_string(), body.to_string());
                            }
                        }
                    };
                    let action = body.split('&').find_map(|kv| kv.strip_prefix("Action=")).unwrap_or("?").to_string();
                    let key = head
                        .split("Credential=")
                        .nth(1)
                        .and_then(|c| c.split('/').next())
                        .unwrap_or_default()
                        .to_string();
                    log.lock().unwrap().push((action.clone(), key.clone()));
                    let (status, xml) = match action.as_str() {
                        "AssumeRole" => assume(assumes.fetch_add(1, Ordering::SeqCst)),
                        "GetCallerIdentity" => (200, caller_identity_xml(&key)),
                        _ => (400, error_xml("InvalidAction", "not scripted")),
                    };
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                        xml.len()
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        FakeSts { url, requests }
    }

    fn actions(&self) -> Vec<(String, String)> {
        self.requests.lock().unwrap().clone()
    }

    async fn factory(&self) -> AwsClientFactory {
        let settings = AwsSettings { endpoint_url: Some(self.url.clone()), ..Default::default() };
        let base = aws_config::defaults(BehaviorVersion::latest())
            .credentials_provider(Credentials::new("AKIDOPERATOR", "secret", None, None, "test"))
            .region(Region::new("eu-west-1"))
            .endpoint_url(&self.url)
            .load()
            .await;
        AwsClientFactory::with_base(base, settings)
    }
}

const SPOKE: &str = "arn:aws:iam::111111111111:role/tfstate-spoke";

fn error_xml(code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>"
    )
}

fn denied() -> Reply {
    (
        403,
        error_xml(
            "AccessDenied",
            &format!(
                "User: arn:aws:iam::123456789012:role/tfstate-operator is not authorized to perform: sts:AssumeRole \
                 on resource: {SPOKE}"
            ),
        ),
    )
}

fn granted(n: usize, expires_in: Duration) -> Reply {
    let expiration = aws_smithy_types::DateTime::from(SystemTime::now() + expires_in)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap();
    (
        200,
        format!(
            "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
             <AssumedRoleUser><AssumedRoleId>AROAFAKE:s</AssumedRoleId>\
             <Arn>arn:aws:sts::111111111111:assumed-role/tfstate-spoke/s</Arn></AssumedRoleUser>\
             <Credentials><AccessKeyId>ASIAFAKE{n}</AccessKeyId><SecretAccessKey>x</SecretAccessKey>\
             <SessionToken>t</SessionToken><Expiration>{expiration}</Expiration></Credentials>\
             </AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleResponse>"
        ),
    )
}

fn caller_identity_xml(key: &str) -> String {
    let (arn, account) = if key.starts_with("ASIAFAKE") {
        ("arn:aws:sts::111111111111:assumed-role/tfstate-spoke/s", "111111111111")
    } else {
        ("arn:aws:iam::123456789012:user/operator", "123456789012")
    };
    format!(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
         <Arn>{arn}</Arn><UserId>u</UserId><Account>{account}</Account></GetCallerIdentityResult>\
         <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
    )
}

fn assume(session: &str) -> AssumeAs {
    AssumeAs { role_arn: SPOKE.into(), session_name: session.into(), external_id: None }
}

fn count(factory: &AwsClientFactory, operation: &str, outcome: Outcome) -> u64 {
    let key = CallKey { service: "sts".into(), operation: operation.into(), outcome };
    factory.calls().snapshot().get(&key).copied().unwrap_or(0)
}

#[tokio::test]
async fn a_refused_assume_role_is_access_denied_naming_the_role_and_is_not_cached() {
    let sts = FakeSts::start(|_| denied()).await;
    let factory = sts.factory().await;
    let err = factory.clients_as("eu-west-1", Some(&assume("team-a.backend"))).await.unwrap_err();
    assert_eq!(err.kind, AwsErrorKind::AccessDenied, "{err}");
    assert_eq!((err.service, err.operation, err.code.as_str()), ("sts", "AssumeRole", "AccessDenied"));
    let text = err.to_string();
    assert!(text.contains(SPOKE) && text.contains("sts:AssumeRole") && text.contains("team-a.backend"), "{text}");
    assert!(text.contains("trust policy"), "says what to check: {text}");
    // Signed with the operator's own credentials, counted like every call.
    assert_eq!(sts.actions(), [("AssumeRole".to_string(), "AKIDOPERATOR".to_string())], "not retried");
    assert_eq!(count(&factory, "AssumeRole", Outcome::ClientError), 1);
    // A failure is not cached: the next reconcile asks again.
    factory.clients_as("eu-west-1", Some(&assume("team-a.backend"))).await.unwrap_err();
    assert_eq!(sts.actions().len(), 2);
}

#[tokio::test]
async fn assumed_clients_are_cached_per_region_role_and_session_and_use_the_assumed_credentials() {
    let sts = FakeSts::start(|n| granted(n, Duration::from_secs(3600))).await;
    let factory = sts.factory().await;
    let a = factory.clients_as("eu-west-1", Some(&assume("team-a.x"))).await.unwrap();
    assert_eq!(a.assumed_role.as_deref(), Some(SPOKE));
    assert_eq!(factory.clients_as("eu-west-1", None).await.unwrap().assumed_role, None);
    // The same key: the cached clients, no second AssumeRole.
    let again = factory.clients_as("eu-west-1", Some(&assume("team-a.x"))).await.unwrap();
    let out = again.sts.get_caller_identity().send().await.unwrap();
    assert_eq!(out.account(), Some("111111111111"));
    a.sts.get_caller_identity().send().await.unwrap();
    // Another session, another region: their own AssumeRole each.
    let b = factory.clients_as("eu-west-1", Some(&assume("team-b.y"))).await.unwrap();
    factory.clients_as("us-east-1", Some(&assume("team-a.x"))).await.unwrap();
    b.sts.get_caller_identity().send().await.unwrap();
    // The operator's own clients keep the operator's credentials.
    factory.clients("eu-west-1").sts.get_caller_identity().send().await.unwrap();
    let actions = sts.actions();
    let s = |a: &str, k: &str| (a.to_string(), k.to_string());
    assert_eq!(
        actions,
        [
            s("AssumeRole", "AKIDOPERATOR"),
            // The primed credentials: the SDK's cache did not assume the role again.
            s("GetCallerIdentity", "ASIAFAKE0"),
            s("GetCallerIdentity", "ASIAFAKE0"),
            s("AssumeRole", "AKIDOPERATOR"),
            s("AssumeRole", "AKIDOPERATOR"),
            s("GetCallerIdentity", "ASIAFAKE1"),
            s("GetCallerIdentity", "AKIDOPERATOR"),
        ]
    );
    assert_eq!(count(&factory, "AssumeRole", Outcome::Ok), 3);
    assert_eq!(factory.assumed_cached(), (3, 3));
}

#[tokio::test]
async fn evicted_client_sets_are_rebuilt_from_the_session_without_assuming_again() {
    let sts = FakeSts::start(|n| granted(n, Duration::from_secs(3600))).await;
    let mut factory = sts.factory().await;
    factory.assumed_clients = Mutex::new(BoundedCache::new(1, ASSUMED_IDLE));
    factory.sessions = Mutex::new(BoundedCache::new(2, ASSUMED_IDLE));
    let (a, b, c) = (assume("team-a.x"), assume("team-b.y"), assume("team-c.z"));
    factory.clients_as("eu-west-1", Some(&a)).await.unwrap();
    factory.clients_as("eu-west-1", Some(&b)).await.unwrap();
    assert_eq!(factory.assumed_cached(), (2, 1));
    // a's clients were evicted by b's; a's session was not: same credentials, no AssumeRole.
    let again = factory.clients_as("eu-west-1", Some(&a)).await.unwrap();
    again.sts.get_caller_identity().send().await.unwrap();
    // c's session evicts b's (the least recently used); b then assumes the role again.
    factory.clients_as("eu-west-1", Some(&c)).await.unwrap();
    factory.clients_as("eu-west-1", Some(&b)).await.unwrap();
    let actions: Vec<_> = sts.actions().into_iter().map(|(a, k)| format!("{a} {k}")).collect();
    assert_eq!(
        actions,
        [
            "AssumeRole AKIDOPERATOR",
            "AssumeRole AKIDOPERATOR",
            "GetCallerIdentity ASIAFAKE0",
            "AssumeRole AKIDOPERATOR",
            "AssumeRole AKIDOPERATOR",
        ]
    );
    assert_eq!(factory.assumed_cached(), (2, 1));
}

#[tokio::test]
async fn one_assume_role_serves_every_service_client_of_a_session() {
    let sts = FakeSts::start(|n| granted(n, Duration::from_secs(3600))).await;
    let factory = sts.factory().await;
    let a = factory.clients_as("eu-west-1", Some(&assume("team-a.x"))).await.unwrap();
    // The fake answers only STS; the others fail, but only after signing with the assumed key.
    let _ = a.s3.list_buckets().send().await;
    let _ = a.kms.list_keys().send().await;
    let _ = a.dynamodb.list_tables().send().await;
    let _ = a.iam.list_roles().send().await;
    let actions = sts.actions();
    assert_eq!(actions.iter().filter(|(a, _)| a == "AssumeRole").count(), 1, "{actions:?}");
    let others: Vec<_> = actions.iter().filter(|(a, _)| a != "AssumeRole").collect();
    assert!(others.len() >= 4 && others.iter().all(|(_, k)| k == "ASIAFAKE0"), "{actions:?}");
}

#[tokio::test]
async fn a_refused_refresh_is_reported_as_the_assume_role_that_failed() {
    // The first credentials are already inside the SDK's refresh window; the role then stops
    // trusting the operator.
    let sts = FakeSts::start(|n| if n == 0 { granted(n, Duration::from_secs(2)) } else { denied() }).await;
    let factory = sts.factory().await;
    let a = factory.clients_as("eu-west-1", Some(&assume("team-a.x"))).await.unwrap();
    a.sts.get_caller_identity().send().await.expect("the primed credentials");
    let err = a.sts.get_caller_identity().send().await.unwrap_err();
    let found = credentials_failure(&err).expect("the AssumeRole error in the source chain");
    assert_eq!((found.kind, found.operation), (AwsErrorKind::AccessDenied, "AssumeRole"));
    assert!(found.message.contains(SPOKE), "{found}");
    // The identity lookup of the context reports it so.
    let err = crate::context::caller_identity(&a).await.unwrap_err();
    assert_eq!((err.kind, err.service, err.operation), (AwsErrorKind::AccessDenied, "sts", "AssumeRole"), "{err}");
    // Without it, the generic mapping would call it a transport error.
    let generic =
        a.sts.get_caller_identity().send().await.map_err(|e| from_sdk("sts", "GetCallerIdentity", e)).unwrap_err();
    assert_eq!(generic.kind, AwsErrorKind::Transient, "{generic}");
    // Each failed call tried to refresh once (no SDK retry of a credentials failure).
    let assumes = sts.actions().iter().filter(|(a, _)| a == "AssumeRole").count();
    assert_eq!(assumes, 4, "{:?}", sts.actions());
}

/// A call whose endpoint accepts the connection and never answers costs its attempts'
/// deadlines (retried once here), then fails as a transient error naming the operation:
/// it never holds a worker.
#[tokio::test]
async fn a_call_that_never_answers_times_out_and_is_retried() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        let mut held = Vec::new(); // kept open, never written to
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    let limits = CallLimits {
        attempt_timeout: Duration::from_millis(300),
        operation_timeout: Duration::from_secs(3),
        max_attempts: 2,
    };
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .credentials_provider(Credentials::new("AKIDOPERATOR", "secret", None, None, "test"))
        .region(Region::new("eu-west-1"))
        .endpoint_url(&url);
    let settings = AwsSettings { endpoint_url: Some(url), limits, ..Default::default() };
    let factory = AwsClientFactory::with_base(with_limits(loader, limits).load().await, settings);
    let s3 = factory.clients("eu-west-1").s3;
    let answer = tokio::time::timeout(Duration::from_secs(30), crate::aws::s3::get_tags(&s3, "hung-bucket"))
        .await
        .expect("the call hung past every deadline");
    let err = answer.expect_err("nobody answered");
    assert_eq!((err.service, err.operation, err.kind), ("s3", "GetBucketTagging", AwsErrorKind::Transient), "{err}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "one retry after the first attempt timed out");
    server.abort();
}
