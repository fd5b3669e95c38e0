//! The printed report: the summary table with the targets, then the details that explain
//! the figures (calls by operation, reconciles, Kubernetes writes, the floor's replay).

use std::collections::BTreeMap;
use std::time::Duration;

use tfstate_operator::aws::calls::{CallKey, Outcome, totals};

use crate::floor::Floor;
use crate::k8s::Mode;
use crate::operator::Scrape;

/// Targets of the issue.
const MAX_RATIO: f64 = 1.5;
const MAX_READS_PER_RESYNC: f64 = 17.0;
const MAX_RSS_MIB: f64 = 64.0;

/// Everything measured.
pub struct Results {
    /// Backends created.
    pub count: usize,
    /// Operator `--concurrency`.
    pub concurrency: u16,
    /// Resync interval of the creation phase and of the steady-state phase.
    pub resyncs: (Duration, Duration),
    /// First create to all Ready.
    pub time_to_ready: Duration,
    /// Operator counters over the creation phase (until it settled).
    pub create: Scrape,
    /// Operator counters over the steady-state window.
    pub steady: Scrape,
    /// Length of the steady-state window.
    pub steady_window: Duration,
    /// Kubernetes objects written in the steady-state window, by kind.
    pub k8s_writes: BTreeMap<String, u64>,
    /// Peak RSS of the two operator processes, bytes.
    pub rss: (u64, u64),
    /// The emulator floor.
    pub floor: Floor,
    /// Where the operator logs are.
    pub log_dir: String,
    /// 1-minute load average of the machine at the start and at the end (other work on
    /// the machine makes every timing noisy).
    pub load: (String, String),
}

/// Prints the report; returns whether every target is met.
pub fn print(r: &Results) -> bool {
    let n = r.count as f64;
    let mut modes: BTreeMap<Mode, usize> = BTreeMap::new();
    (0..r.count).for_each(|i| *modes.entry(Mode::of(i)).or_default() += 1);
    let mix: Vec<String> = modes.iter().map(|(m, k)| format!("{k} {}", m.label())).collect();
    let create = totals(&r.create.aws);
    let steady = totals(&r.steady.aws);
    let reconciles = r.steady.reconciles_total().max(1) as f64;
    let resyncs = reconciles / n;
    let k8s_writes: u64 = r.k8s_writes.values().sum();
    let floor = r.floor.elapsed.as_secs_f64();
    let ratio = r.time_to_ready.as_secs_f64() / floor.max(1e-9);
    let rss_mib = r.rss.0.max(r.rss.1) as f64 / (1024.0 * 1024.0);
    let reads_per_resync = steady.reads as f64 / reconciles;
    let writes_per_resync = steady.writes as f64 / reconciles;

    println!();
    println!("tfstate-operator benchmark: {} backends ({})", r.count, mix.join(", "));
    println!(
        "operator --concurrency {}; creation with --resync-interval {}, steady state with {} (operator restarted)",
        r.concurrency,
        humantime::format_duration(r.resyncs.0),
        humantime::format_duration(r.resyncs.1)
    );
    println!();
    let (ratio_ok, aws_ok, k8s_ok, rss_ok) = (
        ratio <= MAX_RATIO,
        reads_per_resync <= MAX_READS_PER_RESYNC && steady.writes == 0,
        k8s_writes == 0,
        rss_mib < MAX_RSS_MIB,
    );
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let row = |name: &str, value: String, target: &str, result: &str| {
        println!("  {name:<44} {value:>22}   {target:<16} {result}");
    };
    row("metric", "value".into(), "target", "result");
    row("backends (N)", r.count.to_string(), "", "");
    row("time to all Ready", format!("{:.1} s", r.time_to_ready.as_secs_f64()), "", "");
    row(&format!("emulator floor ({} calls)", r.floor.planned), format!("{floor:.1} s"), "", "");
    row("ratio time to Ready / floor", format!("{ratio:.2}x"), "<= 1.5x", verdict(ratio_ok));
    row(
        "AWS calls per create (reads / writes)",
        format!("{:.1} / {:.1}", create.reads as f64 / n, create.writes as f64 / n),
        "",
        "",
    );
    row(
        "AWS calls per resync per backend (r / w)",
        format!("{reads_per_resync:.2} / {writes_per_resync:.2}"),
        "<= 17 / 0",
        verdict(aws_ok),
    );
    row("Kubernetes writes per resync", format!("{:.2}", k8s_writes as f64 / resyncs.max(1e-9)), "0", verdict(k8s_ok));
    row("operator peak RSS (VmHWM)", format!("{rss_mib:.1} MiB"), "< 64 MiB", verdict(rss_ok));
    println!();

    println!("creation phase:");
    println!("  reconciles: {} ({:.2} per backend)", results(&r.create), r.create.reconciles_total() as f64 / n);
    println!(
        "  AWS calls: {} reads + {} writes; per backend by operation (not-found/errors in brackets):",
        create.reads, create.writes
    );
    print_ops(&r.create.aws, n);
    println!("steady state ({:.0} s window after the restart, startup pass included):", r.steady_window.as_secs_f64());
    println!("  reconciles: {} = {resyncs:.2} resyncs per backend", results(&r.steady));
    println!("  AWS calls: {} reads + {} writes; per backend per resync by operation:", steady.reads, steady.writes);
    print_ops(&r.steady.aws, reconciles);
    let kinds: Vec<String> = r.k8s_writes.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!(
        "  Kubernetes objects created or changed: {}",
        if kinds.is_empty() { "none".into() } else { kinds.join(", ") }
    );
    println!("emulator floor ({} calls per replay, the fastest replay counts):", r.floor.planned);
    for p in &r.floor.replays {
        println!(
            "  {:>4} in flight: {:>6.1} s = {:>4.0} calls/s; {} made ({} reads + {} writes), {} unexpected errors",
            p.concurrency,
            p.elapsed.as_secs_f64(),
            r.floor.planned as f64 / p.elapsed.as_secs_f64().max(1e-9),
            p.made.reads + p.made.writes,
            p.made.reads,
            p.made.writes,
            p.unexpected_errors
        );
    }
    for e in &r.floor.first_errors {
        println!("    error: {e}");
    }
    if !r.floor.unmapped.is_empty() {
        let names: Vec<&str> = r.floor.unmapped.iter().map(String::as_str).collect();
        println!("  WARNING: replayed by a cheap call of the same service: {}", names.join(", "));
    }
    println!(
        "  operator throughput while creating {:.0} calls/s vs floor {:.0} calls/s",
        (create.reads + create.writes) as f64 / r.time_to_ready.as_secs_f64().max(1e-9),
        r.floor.planned as f64 / floor.max(1e-9)
    );
    println!(
        "peak RSS: creation {:.1} MiB, steady state {:.1} MiB",
        r.rss.0 as f64 / 1048576.0,
        r.rss.1 as f64 / 1048576.0
    );
    println!("machine: {} CPUs, load average {} at the start, {} at the end", cpus(), r.load.0, r.load.1);
    println!("operator logs: {}", r.log_dir);
    let all = ratio_ok && aws_ok && k8s_ok && rss_ok;
    println!("\nresult: {}", if all { "all targets met" } else { "some targets missed (FAIL above)" });
    all
}

/// The 1-minute load average.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().unwrap_or("?").to_string()
}

fn cpus() -> String {
    std::thread::available_parallelism().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

fn results(s: &Scrape) -> String {
    let parts: Vec<String> = s.reconciles.iter().map(|(k, v)| format!("{v} {k}")).collect();
    format!("{} ({})", s.reconciles_total(), parts.join(", "))
}

/// Calls by service/operation divided by `per`, with the not-ok share in brackets.
fn print_ops(calls: &BTreeMap<CallKey, u64>, per: f64) {
    let mut by_op: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    for (k, v) in calls {
        let e = by_op.entry((k.service.as_str(), k.operation.as_str())).or_default();
        if k.outcome == Outcome::Ok { e.0 += v } else { e.1 += v }
    }
    for ((service, op), (ok, bad)) in by_op {
        let errors = if bad > 0 { format!(" [{:.2}]", bad as f64 / per) } else { String::new() };
        println!("    {:<44} {:>7.2}{errors}", format!("{service}:{op}"), (ok + bad) as f64 / per);
    }
}
