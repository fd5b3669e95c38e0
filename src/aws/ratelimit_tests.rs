use std::sync::Mutex as StdMutex;

use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::http::http_client_fn;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

use super::*;

#[test]
fn limits_parse_and_refuse_nonsense() {
    let l: RateLimits = "s3=50, kms=20,IAM=2.5".parse().unwrap();
    assert_eq!((l.get("s3"), l.get("kms"), l.get("iam"), l.get("sts")), (Some(50.0), Some(20.0), Some(2.5), None));
    assert!("".parse::<RateLimits>().unwrap().is_empty());
    assert_eq!("s3".parse::<RateLimits>(), Err(RateLimitError::Syntax("s3".into())));
    assert_eq!("ec2=5".parse::<RateLimits>(), Err(RateLimitError::Service("ec2".into())));
    for bad in ["s3=0", "s3=-1", "s3=fast", "s3=inf"] {
        assert!(matches!(bad.parse::<RateLimits>(), Err(RateLimitError::Rate { .. })), "{bad}");
    }
    assert_eq!((burst_for(50.0), burst_for(2.5), burst_for(0.1)), (5.0, 1.0, 1.0));
}

#[tokio::test(start_paused = true)]
async fn the_bucket_lets_a_burst_through_then_spaces_requests_at_the_rate() {
    let bucket = TokenBucket::new(10.0, 2.0);
    let t0 = Instant::now();
    let waits: Vec<Duration> = (0..5).map(|_| bucket.reserve(t0)).collect();
    let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [0, 0, 100, 200, 300], "a burst of 2, then one every 100 ms in arrival order");
    // Tokens refill at the rate, never above the burst.
    let later = t0 + Duration::from_secs(10);
    let ms: Vec<u128> = (0..3).map(|_| bucket.reserve(later).as_millis()).collect();
    assert_eq!(ms, [0, 0, 100]);
    // acquire() sleeps for the reservation (paused time advances only by the sleeps).
    let start = Instant::now();
    let fresh = TokenBucket::new(4.0, 1.0);
    for _ in 0..5 {
        fresh.acquire().await;
    }
    assert_eq!(start.elapsed(), Duration::from_secs(1), "1 free, then 4 at 250 ms each");
}

/// A limited S3 client's calls reach the HTTP layer spread at the rate, even when issued
/// all at once.
#[tokio::test(start_paused = true)]
async fn a_limited_clients_calls_are_spread() {
    let sent: Arc<StdMutex<Vec<Instant>>> = Arc::default();
    let record = sent.clone();
    let stub = http_client_fn(move |_, _| {
        let record = record.clone();
        aws_smithy_runtime_api::client::http::SharedHttpConnector::new(Answer200(record))
    });
    let bucket = Arc::new(TokenBucket::new(5.0, 1.0));
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("eu-west-1"))
        .credentials_provider(Credentials::new("AKID", "secret", None, None, "test"))
        .endpoint_url("http://127.0.0.1:9")
        .force_path_style(true)
        .http_client(RateLimitedClient::shared(stub, bucket))
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(conf);
    let start = Instant::now();
    let calls = (0..10).map(|i| {
        let s3 = s3.clone();
        async move { s3.head_bucket().bucket(format!("b-{i}")).send().await }
    });
    for r in futures::future::join_all(calls).await {
        r.expect("the stub answers 200");
    }
    let mut at: Vec<u128> = sent.lock().unwrap().iter().map(|t| t.duration_since(start).as_millis()).collect();
    at.sort();
    assert_eq!(at, [0, 200, 400, 600, 800, 1000, 1200, 1400, 1600, 1800], "one every 200 ms at 5/s");
}

#[derive(Debug)]
struct Answer200(Arc<StdMutex<Vec<Instant>>>);

impl HttpConnector for Answer200 {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        self.0.lock().unwrap().push(Instant::now());
        let status = StatusCode::try_from(200).expect("200 is a status");
        HttpConnectorFuture::ready(Ok(HttpResponse::new(status, SdkBody::empty())))
    }
}
