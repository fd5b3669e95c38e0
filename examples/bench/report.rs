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
/// DESIGN.md's 16 reads, the lock item and the listing of the state's versions.
const MAX_READS_PER_RESYNC: f64 = 18.0;
const MAX_RSS_MIB: f64 = 64.0;

/// Targets of issue 9 (steady state at scale), each defined at a given N.
const MAX_RATIO_AT_1000: f64 = 1.1;
const MAX_GROWTH_KIB_PER_BACKEND: f64 = 8.0;
const MAX_RSS_MIB_AT_5000: f64 = 96.0;
const MAX_PEAK_TO_MEAN: f64 = 1.5;
const MAX_AMPLIFICATION: f64 = 1.3;

/// The creation of N more backends through the fault-injecting endpoint.
pub struct FaultRun {
    /// Share of AWS calls failed.
    pub rate: f64,
    /// First create to all Ready.
    pub time_to_ready: Duration,
    /// Operator counters over that creation (operations, as the SDK returned them: its
    /// retries inside one operation are not counted there).
    pub calls: Scrape,
    /// The proxy's counters: every HTTP request, retries included.
    pub proxy: crate::faults::Stats,
}

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
    /// Where the CPU went from the first create to all Ready, and to the end of the
    /// creation phase's counts (its verify passes included).
    pub create_cpu: (crate::cpu::Usage, crate::cpu::Usage),
    /// The API server's requests over the creation phase (to settled), by verb and
    /// resource: the operator's, the benchmark's creates and watch, the ground's own.
    pub create_api: BTreeMap<String, u64>,
    /// Operator counters over the steady-state window.
    pub steady: Scrape,
    /// Length of the steady-state window.
    pub steady_window: Duration,
    /// Kubernetes objects written in the steady-state window, by kind.
    pub k8s_writes: BTreeMap<String, u64>,
    /// The API server's requests over the steady-state window, by verb and resource (the
    /// restarted operator's lists and watches and the benchmark's own listings included).
    pub steady_api: BTreeMap<String, u64>,
    /// Peak RSS of the two operator processes, bytes.
    pub rss: (u64, u64),
    /// RSS of the creation phase's operator once its watches listed, before any backend.
    pub rss_empty: u64,
    /// RSS of the steady-state operator at the end of its window.
    pub rss_steady_now: u64,
    /// `--rss-baseline`: (N, steady RSS) of an earlier run.
    pub rss_baseline: Option<(usize, u64)>,
    /// AWS calls by service sampled over the steady-state window.
    pub rates: crate::rates::Sampler,
    /// Phase 4, with `--faults`.
    pub faulty: Option<FaultRun>,
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
        &format!("<= {MAX_READS_PER_RESYNC} / 0"),
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
    print_api_requests("create", &r.create_api, n);
    println!("steady state ({:.0} s window after the restart, startup pass included):", r.steady_window.as_secs_f64());
    println!("  reconciles: {} = {resyncs:.2} resyncs per backend", results(&r.steady));
    println!("  AWS calls: {} reads + {} writes; per backend per resync by operation:", steady.reads, steady.writes);
    print_ops(&r.steady.aws, reconciles);
    let kinds: Vec<String> = r.k8s_writes.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!(
        "  Kubernetes objects created or changed: {}",
        if kinds.is_empty() { "none".into() } else { kinds.join(", ") }
    );
    print_api_requests("resync, the restart's lists and watches included,", &r.steady_api, reconciles);
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
        println!("         CPU, cores: {}", p.cpu.line());
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
    print_cpu(r);
    println!(
        "peak RSS: creation {:.1} MiB, steady state {:.1} MiB",
        r.rss.0 as f64 / 1048576.0,
        r.rss.1 as f64 / 1048576.0
    );
    let scale_ok = print_scale(r, ratio, (create.reads + create.writes) as f64 / n);
    println!("machine: {} CPUs, load average {} at the start, {} at the end", cpus(), r.load.0, r.load.1);
    println!("operator logs: {}", r.log_dir);
    let all = ratio_ok && aws_ok && k8s_ok && rss_ok && scale_ok;
    println!("\nresult: {}", if all { "all targets met" } else { "some targets missed (FAIL above)" });
    all
}

/// Issue 9's figures and targets; returns whether every target that this run can judge
/// is met (those defined at another N are printed, marked, and not judged).
fn print_scale(r: &Results, ratio: f64, calls_per_create: f64) -> bool {
    let n = r.count as f64;
    let mib = |b: f64| b / 1048576.0;
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let mut all = true;
    println!();
    println!("steady state at scale (issue 9):");
    let row = |name: &str, value: String, target: &str, result: String| {
        println!("  {name:<44} {value:>22}   {target:<22} {result}");
    };
    let at_1000 = r.count == 1000;
    all &= !at_1000 || ratio <= MAX_RATIO_AT_1000;
    row(
        "time to all Ready / floor",
        format!("{ratio:.2}x ({:.1} s)", r.time_to_ready.as_secs_f64()),
        "<= 1.1x at N=1000",
        if at_1000 { verdict(ratio <= MAX_RATIO_AT_1000).into() } else { format!("(N={}: not judged)", r.count) },
    );
    let growth_from_empty = (r.rss_steady_now as f64 - r.rss_empty as f64) / n;
    row("operator RSS before any backend", format!("{:.1} MiB", mib(r.rss_empty as f64)), "", String::new());
    row(
        "operator RSS in steady state (VmRSS)",
        format!("{:.1} MiB = {} B", mib(r.rss_steady_now as f64), r.rss_steady_now),
        "",
        String::new(),
    );
    row("  per backend, from the empty operator", format!("{:.1} KiB", growth_from_empty / 1024.0), "", String::new());
    // The growth between two N excludes what the process costs before its first backend
    // (SDK clients, pools, runtime): the from-empty figure overstates it.
    let mut growth = (growth_from_empty, "from the empty operator: fixed costs included, an upper bound");
    match r.rss_baseline {
        Some((base_n, base_rss)) if base_n != r.count => {
            let g = (r.rss_steady_now as f64 - base_rss as f64) / (r.count as f64 - base_n as f64);
            growth = (g, "from the growth between the two N");
            let ok = g / 1024.0 <= MAX_GROWTH_KIB_PER_BACKEND;
            all &= ok;
            row(
                &format!("  growth per backend, N={base_n} -> {}", r.count),
                format!("{:.1} KiB", g / 1024.0),
                "<= 8 KiB (200 -> 1000)",
                verdict(ok).into(),
            );
        }
        _ => row(
            "  growth per backend between two N",
            "-".into(),
            "<= 8 KiB (200 -> 1000)",
            format!("(pass --rss-baseline {}:{} to the next run)", r.count, r.rss_steady_now),
        ),
    }
    if r.count >= 5000 {
        let ok = mib(r.rss_steady_now as f64) < MAX_RSS_MIB_AT_5000;
        all &= ok;
        row("RSS at N=5000", format!("{:.1} MiB", mib(r.rss_steady_now as f64)), "< 96 MiB", verdict(ok).into());
    } else {
        let at_5000 = mib(r.rss_steady_now as f64 + growth.0 * (5000.0 - n));
        row(
            "RSS at N=5000, projected linearly",
            format!("{at_5000:.1} MiB"),
            "< 96 MiB",
            format!("({}, projected {})", verdict(at_5000 < MAX_RSS_MIB_AT_5000), growth.1),
        );
    }
    let rates = r.rates.rates();
    println!(
        "  AWS request rate per service over {:.0} s of periodic resyncs (from half an interval after the restart's pass), calls/s:",
        r.rates.window().as_secs_f64()
    );
    // Peaks mean something only with headroom: a saturated emulator serves resyncs as fast
    // as it can, whatever their spreading.
    let demand: f64 = rates.values().map(|rate| rate.mean).sum();
    let supply = r.floor.planned as f64 / r.floor.elapsed.as_secs_f64().max(1e-9);
    row(
        "  steady-state load / floor throughput",
        format!("{demand:.0} / {supply:.0} calls/s = {:.0}%", 100.0 * demand / supply.max(1e-9)),
        "(headroom: < 100%)",
        String::new(),
    );
    for (service, rate) in &rates {
        let ratio = rate.peak / rate.mean.max(1e-9);
        let ok = ratio <= MAX_PEAK_TO_MEAN;
        all &= ok;
        row(
            &format!("    {service}: peak / mean"),
            format!("{:.1} / {:.1} = {ratio:.2}x", rate.peak, rate.mean),
            "peak <= 1.5x mean",
            verdict(ok).into(),
        );
    }
    if rates.is_empty() {
        println!("    no AWS call in the window");
    }
    match &r.faulty {
        None => row("amplification under 10% faults", "-".into(), "<= 1.3x", "(run with --faults 0.1)".into()),
        Some(f) => {
            let ops = totals(&f.calls.aws);
            let ops_per_create = (ops.reads + ops.writes) as f64 / n;
            let requests_per_create = f.proxy.total_requests as f64 / n;
            let amplification = requests_per_create / calls_per_create.max(1e-9);
            let judged = (f.rate - 0.1).abs() < 1e-9;
            let ok = amplification <= MAX_AMPLIFICATION;
            all &= !judged || ok;
            row(
                &format!("time to all Ready, {:.0}% faults", f.rate * 100.0),
                format!("{:.1} s", f.time_to_ready.as_secs_f64()),
                "",
                String::new(),
            );
            row("AWS operations per create, faults", format!("{ops_per_create:.1}"), "", String::new());
            row(
                "AWS requests per create, faults (proxy)",
                format!("{requests_per_create:.1} ({} injected)", f.proxy.total_injected),
                "",
                String::new(),
            );
            row(
                "amplification (requests / fault-free)",
                format!("{amplification:.2}x (vs {calls_per_create:.1})"),
                "<= 1.3x at 10% faults",
                if judged { verdict(ok).into() } else { format!("({:.0}%: not judged)", f.rate * 100.0) },
            );
            println!("  reconciles under faults: {}", results(&f.calls));
            let mut by_service: BTreeMap<&str, u64> = BTreeMap::new();
            for (op, count) in &f.proxy.requests {
                *by_service.entry(op.split(':').next().unwrap_or(op)).or_default() += count;
            }
            let parts: Vec<String> = by_service.iter().map(|(s, c)| format!("{s} {:.1}", *c as f64 / n)).collect();
            println!("  requests per create under faults by service (proxy): {}", parts.join(", "));
        }
    }
    all
}

/// Where the CPU went while creating, against the fastest replay: the emulator's CPU
/// seconds per call tell whether it did more work per call while sharing the machine, and
/// its busy share whether the operator kept it fed.
fn print_cpu(r: &Results) {
    let (to_ready, to_settled) = &r.create_cpu;
    println!("  CPU while creating (to all Ready), cores: {}", to_ready.line());
    let Some(fastest) = r.floor.replays.iter().min_by_key(|p| p.elapsed) else { return };
    let per_call = |u: &crate::cpu::Usage, calls: u64| 1e3 * u.of("moto") * u.wall / calls.max(1) as f64;
    let created = totals(&r.create.aws);
    println!(
        "  emulator (moto) used {:.2} cores while creating, {:.2} ms CPU per call; {:.2} cores in the fastest replay, {:.2} ms per call",
        to_ready.of("moto"),
        per_call(to_settled, created.reads + created.writes),
        fastest.cpu.of("moto"),
        per_call(&fastest.cpu, r.floor.planned)
    );
}

/// The API server's requests per `what` (a create, a resync), by verb and resource (lists
/// and watches too: a write costs the API server its watchers' events as well, and the
/// writes come first).
fn print_api_requests(what: &str, requests: &BTreeMap<String, u64>, n: f64) {
    let is_write = |k: &str| ["POST ", "PUT ", "PATCH ", "APPLY ", "DELETE "].iter().any(|v| k.starts_with(v));
    let (writes, reads): (Vec<_>, Vec<_>) = requests.iter().partition(|(k, _)| is_write(k));
    let total = |v: &[(&String, &u64)]| v.iter().map(|(_, c)| **c).sum::<u64>() as f64 / n;
    println!(
        "  Kubernetes API requests per {what} (every client): {:.2} writes, {:.2} other",
        total(&writes),
        total(&reads)
    );
    for (k, c) in writes.iter().chain(&reads).filter(|(_, c)| **c as f64 / n >= 0.01) {
        println!("    {k:<44} {:>7.2}", **c as f64 / n);
    }
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
