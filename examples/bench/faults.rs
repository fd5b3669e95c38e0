//! The test ground's fault-injecting AWS endpoint, driven through its control API
//! (`TESTGROUND_FAULTS_CONTROL_URL`, plain HTTP and JSON): a rule set that fails a share of
//! every call, and the proxy's request counters. A tiny HTTP/1.1 client over
//! `std::net::TcpStream`: the API is local, small and answers at once.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::{Ctx, Result};

/// The fault kinds of `--faults`: what AWS does when it is overloaded or flaky.
pub const KINDS: [&str; 4] = ["throttle", "error500", "unavailable", "reset"];

/// The control API at `host:port`.
#[derive(Clone, Debug)]
pub struct Control {
    authority: String,
}

/// The proxy's counters (`GET /faults/stats`).
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Requests forwarded or failed, by `service:Operation`.
    pub requests: BTreeMap<String, u64>,
    /// Every request it received.
    pub total_requests: u64,
    /// Requests it failed on purpose.
    pub total_injected: u64,
}

impl Control {
    /// From `http://127.0.0.1:PORT` (the form the ground's env file holds).
    pub fn new(url: &str) -> Result<Control> {
        let authority = url
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|a| !a.is_empty() && !a.contains('/'))
            .ok_or_else(|| format!("TESTGROUND_FAULTS_CONTROL_URL must be http://HOST:PORT, got {url:?}"))?;
        Ok(Control { authority: authority.to_string() })
    }

    /// Fails each call with probability `rate`, by a kind chosen uniformly from [`KINDS`]
    /// (seeded: the same run fails the same calls).
    pub fn inject(&self, rate: f64) -> Result<()> {
        let rules = serde_json::json!({"seed": 1, "rules": [{"fault": KINDS, "probability": rate}]});
        self.call("PUT", "/faults/rules", Some(&rules)).map(drop)
    }

    /// No faults, counters cleared.
    pub fn reset(&self) -> Result<()> {
        self.call("POST", "/faults/reset", None).map(drop)
    }

    /// The counters now.
    pub fn stats(&self) -> Result<Stats> {
        let v = self.call("GET", "/faults/stats", None)?;
        let count = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        let requests = v
            .get("requests")
            .and_then(serde_json::Value::as_object)
            .map(|m| m.iter().map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0))).collect())
            .unwrap_or_default();
        Ok(Stats { requests, total_requests: count("total_requests"), total_injected: count("total_injected") })
    }

    /// One request; the JSON answer of a 200, an error naming the answer otherwise.
    fn call(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> Result<serde_json::Value> {
        let what = format!("{method} {path} on the fault endpoint's control API ({})", self.authority);
        let mut stream = TcpStream::connect(&self.authority).ctx(&what)?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).ctx(&what)?;
        let body = body.map(serde_json::Value::to_string).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            self.authority,
            body.len()
        );
        stream.write_all(request.as_bytes()).ctx(&what)?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).ctx(&what)?;
        let (status, body) = parse_response(&answer).map_err(|e| format!("{what}: {e}"))?;
        if status != 200 {
            return Err(format!("{what}: HTTP {status}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("{what}: the answer is not JSON ({e}): {body}"))
    }
}

/// Status and body of an HTTP/1.1 answer read to the end (`Connection: close`): with a
/// `Content-Length` or chunked.
fn parse_response(raw: &[u8]) -> std::result::Result<(u16, String), String> {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text.split_once("\r\n\r\n").ok_or("no end of the headers")?;
    let mut lines = head.lines();
    let status =
        lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).ok_or("no status line")?;
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        rest.get(..len).ok_or("the body is shorter than its Content-Length")?.to_string()
    } else {
        rest.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut rest: &str) -> std::result::Result<String, String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").ok_or("a chunk without its size line")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size:?}"))?;
        if size == 0 {
            return Ok(body);
        }
        body.push_str(after.get(..size).ok_or("a chunk shorter than its size")?);
        rest = after.get(size..).and_then(|r| r.strip_prefix("\r\n")).ok_or("a chunk without its CRLF")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_with_a_length_or_chunked_are_read() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";
        assert_eq!(parse_response(plain).unwrap(), (200, "{\"ok\":true}".to_string()));
        let chunked =
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"err\r\n6\r\nor\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (400, "{\"error\":1}".to_string()));
        assert!(parse_response(b"garbage").is_err());
    }

    /// A stub of the control API (the contract of /tmp/runs/faults-api.md): the rule set
    /// arrives as the contract says, and the stats are parsed.
    #[test]
    fn rules_and_stats_follow_the_contract() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for answer in [
                r#"{}"#,
                r#"{"requests":{"s3:HeadBucket":7},"injected":{},"total_requests":9,"total_injected":2,"in_flight":0,"hanging":0}"#,
            ] {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                // Read the head and the body announced by Content-Length.
                loop {
                    let n = s.read(&mut buf).unwrap();
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= len {
                            seen.push(text);
                            break;
                        }
                    }
                }
                write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}", answer.len()).unwrap();
            }
            seen
        });
        let control = Control::new(&url).unwrap();
        control.inject(0.1).unwrap();
        let stats = control.stats().unwrap();
        assert_eq!((stats.total_requests, stats.total_injected, stats.requests["s3:HeadBucket"]), (9, 2, 7));
        let seen = server.join().unwrap();
        assert!(seen[0].starts_with("PUT /faults/rules HTTP/1.1\r\n"), "{}", seen[0]);
        let body: serde_json::Value = serde_json::from_str(seen[0].split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"seed": 1, "rules": [{"fault": ["throttle", "error500", "unavailable", "reset"], "probability": 0.1}]})
        );
        assert!(seen[1].starts_with("GET /faults/stats HTTP/1.1\r\n"));
        assert!(Control::new("https://x:1").is_err());
    }
}
