//! A client of the fault proxy's control API (`scripts/faults/README.md`): which AWS calls
//! made through `TESTGROUND_FAULTS_ENDPOINT_URL` fail, and how.
//!
//! Plain HTTP/1.1 over `std::net::TcpStream`, one `Connection: close` request per call: the
//! control API is on loopback, and a dependency-free blocking client cannot be starved by the
//! very runtime whose tests it steers (calls are short and never hang).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use super::Ground;

/// The fault proxy of a test ground.
#[derive(Clone, Debug)]
pub struct Faults {
    /// `host:port` of the control API.
    addr: String,
}

impl Faults {
    /// The fault proxy of `ground` (`TESTGROUND_FAULTS_CONTROL_URL`).
    pub fn from_ground(ground: &Ground) -> Faults {
        let url = ground.var("TESTGROUND_FAULTS_CONTROL_URL");
        let addr = url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("TESTGROUND_FAULTS_CONTROL_URL must be http://HOST:PORT, not {url}"))
            .trim_end_matches('/')
            .to_string();
        Faults { addr }
    }

    /// Replaces the rule set: `rules` is `{"seed": N, "rules": [RULE, ...]}`, or a bare
    /// array of rules (seed 0).
    pub fn set_rules(&self, rules: Value) -> Value {
        let body = if rules.is_array() { serde_json::json!({"seed": 0, "rules": rules}) } else { rules };
        self.call("PUT", "/faults/rules", Some(&body))
    }

    /// No faults from now on; calls that hang are released (their connection is reset).
    pub fn clear_rules(&self) -> Value {
        self.call("DELETE", "/faults/rules", None)
    }

    /// Sets the eventual-consistency knobs (`bucket_missing_after_create_s`,
    /// `operation_aborted_hold_ms`, `kms_role_propagation_s`; absent ones are off).
    pub fn set_consistency(&self, knobs: Value) -> Value {
        self.call("PUT", "/faults/consistency", Some(&knobs))
    }

    /// Every consistency knob off.
    pub fn clear_consistency(&self) -> Value {
        self.call("DELETE", "/faults/consistency", None)
    }

    /// Rules, consistency and statistics cleared.
    pub fn reset(&self) -> Value {
        self.call("POST", "/faults/reset", None)
    }

    /// `{"requests": {"s3:PutBucketPolicy": 3, ...}, "injected": {"s3:PutBucketPolicy:throttle": 1, ...},
    /// "total_requests": N, "total_injected": M, "in_flight": K, "hanging": H}`.
    pub fn stats(&self) -> Value {
        self.call("GET", "/faults/stats", None)
    }

    /// One request; panics (with the API's error) on anything but 200.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(&self.addr)
            .unwrap_or_else(|e| panic!("fault control API at {} unreachable: {e}", self.addr));
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{payload}",
            self.addr,
            payload.len()
        );
        stream.write_all(request.as_bytes()).expect("send to the fault control API");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read the fault control API's answer");
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("malformed answer: {text}"));
        let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let json: Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{method} {path}: answer is not JSON ({e}): {body}"));
        assert_eq!(status, 200, "{method} {path} refused: {json}");
        json
    }
}
