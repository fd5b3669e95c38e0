//! The operator under test, as a subprocess: started with the test ground's settings, its
//! `/metrics` scraped and parsed, its peak RSS read from `/proc`, and always stopped.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tfstate_operator::aws::calls::{CallKey, Outcome};

use crate::{Ctx, Env, Result};

/// What the subprocess is started with.
pub struct Launch<'a> {
    /// The `tfstate-operator` binary.
    pub bin: &'a Path,
    /// The test ground.
    pub env: &'a Env,
    /// The namespace it watches.
    pub namespace: &'a str,
    /// Its `--resync-interval`.
    pub resync: Duration,
    /// Its `--concurrency`.
    pub concurrency: u16,
    /// Where its log goes.
    pub log: PathBuf,
    /// The AWS endpoint instead of the emulator's (the fault-injecting one).
    pub endpoint: Option<&'a str>,
}

/// A running operator process; killed when dropped (also on error and panic).
pub struct Operator {
    child: Child,
    metrics_addr: SocketAddr,
    log: PathBuf,
}

impl Operator {
    /// Starts the operator and waits until its `/metrics` answers.
    pub async fn start(l: Launch<'_>) -> Result<Operator> {
        let metrics_addr = free_port()?;
        let log = std::fs::File::create(&l.log).ctx(&format!("creating {}", l.log.display()))?;
        let log_err = log.try_clone().ctx("duplicating the log file handle")?;
        let resync = format!("{}s", l.resync.as_secs().max(1));
        let child = Command::new(l.bin)
            .args(["run", "--namespace", l.namespace, "--resync-interval", &resync])
            .args(["--default-region", &l.env.region, "--aws-endpoint-url", l.endpoint.unwrap_or(&l.env.endpoint)])
            .arg("--aws-ca-bundle")
            .arg(&l.env.ca_bundle)
            .args(["--concurrency", &l.concurrency.to_string()])
            // One listener for /metrics, /healthz and /readyz.
            .args(["--metrics-addr", &metrics_addr.to_string(), "--health-addr", &metrics_addr.to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .ctx(&format!("starting {}", l.bin.display()))?;
        let mut op = Operator { child, metrics_addr, log: l.log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = op.child.try_wait().ctx("checking the operator process")? {
                return Err(format!("the operator exited at start-up ({status}); {}", op.log_tail()));
            }
            if op.scrape().await.is_ok() {
                return Ok(op);
            }
            if Instant::now() > deadline {
                return Err(format!("the operator's /metrics did not answer in 30 s; {}", op.log_tail()));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Scrapes and parses `/metrics`; fails if the process has died.
    pub async fn scrape(&mut self) -> Result<Scrape> {
        if let Some(status) = self.child.try_wait().ctx("checking the operator process")? {
            return Err(format!("the operator exited ({status}); {}", self.log_tail()));
        }
        let addr = self.metrics_addr;
        let text = tokio::task::spawn_blocking(move || http_get(addr, "/metrics")).await.ctx("scrape task")??;
        Scrape::parse(&text)
    }

    /// Peak resident set size in bytes (`VmHWM` of `/proc/<pid>/status`).
    pub fn peak_rss(&self) -> Result<u64> {
        self.proc_status("VmHWM:")
    }

    /// Resident set size now, in bytes (`VmRSS`).
    pub fn rss(&self) -> Result<u64> {
        self.proc_status("VmRSS:")
    }

    fn proc_status(&self, field: &str) -> Result<u64> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).ctx(&format!("reading {path}"))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .ok_or_else(|| format!("no {field} line in {path}"))?;
        Ok(kib * 1024)
    }

    /// Waits until `/readyz` answers 200 (its watches have listed), at most `timeout`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.scrape().await?;
            let addr = self.metrics_addr;
            if tokio::task::spawn_blocking(move || http_get(addr, "/readyz")).await.ctx("readyz task")?.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("the operator's /readyz was not 200 within {timeout:?}; {}", self.log_tail()));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the process (SIGKILL: nothing of its state matters any more) and reaps it.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("its log is {}; last lines:\n{tail}", self.log.display())
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP port on 127.0.0.1 that nobody listens on right now.
fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").ctx("finding a free port")?;
    listener.local_addr().ctx("finding a free port")
}

/// A minimal HTTP/1.0 GET (the endpoint is local and tiny): the body of a 200 answer.
fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ctx("connecting to /metrics")?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ctx("setting a read timeout")?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ctx("sending the request")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ctx("reading the answer")?;
    let (head, body) = answer.split_once("\r\n\r\n").ok_or("malformed HTTP answer")?;
    if !head.lines().next().is_some_and(|l| l.contains(" 200 ")) {
        return Err(format!("GET {path}: {}", head.lines().next().unwrap_or_default()));
    }
    Ok(body.to_string())
}

/// The counters of one scrape that the benchmark needs.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    /// `tfstate_aws_calls_total` by service, operation and outcome.
    pub aws: BTreeMap<CallKey, u64>,
    /// `tfstate_reconciles_total` by result.
    pub reconciles: BTreeMap<String, u64>,
}

impl Scrape {
    /// Parses the Prometheus/OpenMetrics text exposition.
    pub fn parse(text: &str) -> Result<Scrape> {
        let mut scrape = Scrape::default();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let Some((name, labels, value)) = split_sample(line) else { continue };
            let value = value.parse::<f64>().map_err(|e| format!("metric value in {line:?}: {e}"))? as u64;
            match name {
                "tfstate_aws_calls_total" => {
                    let get = |k: &str| labels.get(k).cloned().ok_or_else(|| format!("no label {k} in {line:?}"));
                    let outcome = match get("outcome")?.as_str() {
                        "ok" => Outcome::Ok,
                        "client_error" => Outcome::ClientError,
                        "server_error" => Outcome::ServerError,
                        "transport_error" => Outcome::TransportError,
                        other => return Err(format!("unknown outcome {other:?} in {line:?}")),
                    };
                    let key = CallKey { service: get("service")?, operation: get("operation")?, outcome };
                    scrape.aws.insert(key, value);
                }
                "tfstate_reconciles_total" => {
                    scrape.reconciles.insert(labels.get("result").cloned().unwrap_or_default(), value);
                }
                _ => {}
            }
        }
        Ok(scrape)
    }

    /// AWS calls by service.
    pub fn by_service(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (k, v) in &self.aws {
            *out.entry(k.service.clone()).or_default() += v;
        }
        out
    }

    /// Reconciles of any result.
    pub fn reconciles_total(&self) -> u64 {
        self.reconciles.values().sum()
    }

    /// What happened between `before` and `self`.
    pub fn since(&self, before: &Scrape) -> Scrape {
        let sub = |a: u64, b: Option<&u64>| a.saturating_sub(b.copied().unwrap_or(0));
        Scrape {
            aws: tfstate_operator::aws::calls::difference(&before.aws, &self.aws),
            reconciles: self
                .reconciles
                .iter()
                .map(|(k, v)| (k.clone(), sub(*v, before.reconciles.get(k))))
                .filter(|(_, v)| *v > 0)
                .collect(),
        }
    }
}

/// `name{k="v",...} value` (or `name value`) into its parts.
pub fn split_sample(line: &str) -> Option<(&str, BTreeMap<String, String>, &str)> {
    let (series, value) = line.rsplit_once(' ')?;
    let Some((name, rest)) = series.split_once('{') else { return Some((series, BTreeMap::new(), value)) };
    let mut labels = BTreeMap::new();
    let mut rest = rest.strip_suffix('}')?;
    while let Some((key, after)) = rest.split_once("=\"") {
        let end = after.find('"')?;
        labels.insert(key.trim_start_matches(',').to_string(), after[..end].to_string());
        rest = &after[end + 1..];
    }
    Some((name, labels, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counters() {
        let text = "# TYPE tfstate_aws_calls counter\n\
            tfstate_aws_calls_total{service=\"s3\",operation=\"GetBucketPolicy\",outcome=\"ok\"} 12\n\
            tfstate_reconciles_total{result=\"ok\"} 3\n# EOF\n";
        let s = Scrape::parse(text).unwrap();
        assert_eq!(s.reconciles_total(), 3);
        assert_eq!(s.aws.values().sum::<u64>(), 12);
    }
}
