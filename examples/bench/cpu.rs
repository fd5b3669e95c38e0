//! Where the machine's CPU went during a phase: the CPU time of each process of the test
//! ground (from `$TESTGROUND_DIR/pids`), of the operator and of the benchmark itself, read
//! from `/proc` before and after, with the machine's busy time from `/proc/stat`.
//!
//! Why: on a small machine the emulator, the API server, etcd and the operator share the
//! cores, so the time to Ready against the floor (the emulator alone) says as much about
//! the sharing as about the operator. With these figures the report shows whether the
//! emulator was busy the whole time (the operator kept it fed; what else ran slowed it) or
//! idle part of it (the operator did not ask fast enough).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The processes to account for, by name.
#[derive(Clone, Debug, Default)]
pub struct Processes {
    pids: BTreeMap<String, u32>,
}

impl Processes {
    /// The test ground's processes (its `pids` file: `NAME PID` lines) and the benchmark
    /// itself; none when `TESTGROUND_DIR` is not set.
    pub fn of_ground() -> Processes {
        let mut pids = BTreeMap::new();
        if let Ok(dir) = std::env::var("TESTGROUND_DIR") {
            let listed = std::fs::read_to_string(Path::new(&dir).join("pids")).unwrap_or_default();
            for line in listed.lines() {
                if let Some((name, pid)) = line.split_once(' ')
                    && let Ok(pid) = pid.trim().parse()
                {
                    pids.insert(name.to_owned(), pid);
                }
            }
        }
        pids.insert("bench".into(), std::process::id());
        Processes { pids }
    }

    /// The same, with one more process (the operator, whose pid changes at each restart).
    pub fn with(&self, name: &str, pid: u32) -> Processes {
        let mut pids = self.pids.clone();
        pids.insert(name.into(), pid);
        Processes { pids }
    }

    /// CPU time of each process and its descendants so far (a descendant that is itself
    /// one of the processes counts for itself only: the operator is the benchmark's child),
    /// and the machine's.
    pub fn sample(&self) -> Sample {
        let parents = parents();
        let names: BTreeMap<u32, &String> = self.pids.iter().map(|(name, pid)| (*pid, name)).collect();
        let mut ticks: BTreeMap<String, u64> = self.pids.keys().map(|name| (name.clone(), 0)).collect();
        for &pid in parents.keys() {
            if let Some(name) = nearest_named(pid, &names, &parents)
                && let Some(t) = process_ticks(pid)
            {
                *ticks.entry(name.clone()).or_default() += t;
            }
        }
        Sample { at: Instant::now(), ticks, machine: machine_ticks() }
    }
}

/// CPU times at one moment.
#[derive(Clone, Debug)]
pub struct Sample {
    at: Instant,
    ticks: BTreeMap<String, u64>,
    /// (busy, total) ticks of the whole machine, all cores.
    machine: Option<(u64, u64)>,
}

/// CPU used between two samples, in cores (CPU seconds per second of wall time).
#[derive(Clone, Debug, Default)]
pub struct Usage {
    /// Wall time between the samples, seconds.
    pub wall: f64,
    /// Cores used by each process (with its descendants).
    pub cores: BTreeMap<String, f64>,
    /// Cores the whole machine was busy, and how many it has.
    pub machine: Option<(f64, usize)>,
}

impl Sample {
    /// What was used from `before` to this sample. A process that exited in between counts
    /// only what it used before it exited.
    pub fn since(&self, before: &Sample) -> Usage {
        let wall = self.at.duration_since(before.at).as_secs_f64().max(1e-9);
        let cores = self
            .ticks
            .iter()
            .map(|(name, t)| {
                let used = t.saturating_sub(before.ticks.get(name).copied().unwrap_or(0));
                (name.clone(), used as f64 / TICKS_PER_SECOND / wall)
            })
            .collect();
        let machine = self.machine.zip(before.machine).map(|((busy, total), (busy0, total0))| {
            let share = busy.saturating_sub(busy0) as f64 / total.saturating_sub(total0).max(1) as f64;
            let n = std::thread::available_parallelism().map_or(1, usize::from);
            (share * n as f64, n)
        });
        Usage { wall, cores, machine }
    }
}

impl Usage {
    /// One line: `moto 0.97, kube-apiserver 0.41, ... of 2 cores (machine busy 1.93)`.
    pub fn line(&self) -> String {
        let mut by_use: Vec<(&String, &f64)> = self.cores.iter().collect();
        by_use.sort_by(|a, b| b.1.total_cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let parts: Vec<String> = by_use.iter().map(|(name, c)| format!("{name} {c:.2}")).collect();
        match self.machine {
            Some((busy, n)) => format!("{} (machine busy {busy:.2} of {n} cores)", parts.join(", ")),
            None => parts.join(", "),
        }
    }

    /// Cores used by one process, 0 when it was not sampled.
    pub fn of(&self, name: &str) -> f64 {
        self.cores.get(name).copied().unwrap_or(0.0)
    }
}

/// pid -> parent pid of every process.
fn parents() -> BTreeMap<u32, u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return BTreeMap::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat_fields(pid)?.get(1)?.parse().ok()?)))
        .collect()
}

/// The name of the process itself, or of its nearest ancestor that has one.
fn nearest_named<'a>(
    mut pid: u32,
    names: &BTreeMap<u32, &'a String>,
    parents: &BTreeMap<u32, u32>,
) -> Option<&'a String> {
    // Bounded: a pid reused while the table was read could make a cycle.
    for _ in 0..64 {
        if let Some(name) = names.get(&pid) {
            return Some(name);
        }
        match parents.get(&pid) {
            Some(&parent) if parent != 0 && parent != pid => pid = parent,
            _ => return None,
        }
    }
    None
}

/// utime + stime of a process (all its threads).
fn process_ticks(pid: u32) -> Option<u64> {
    let fields = stat_fields(pid)?;
    // After the command: state(0) ppid(1) ... utime(11) stime(12).
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// (busy, total) ticks of all cores from the first line of `/proc/stat`.
fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let values: Vec<u64> = text.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: u64 = values.iter().take(8).sum();
    // idle and iowait are not busy.
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_counts_for_its_nearest_named_ancestor() {
        let (bench, op) = ("bench".to_owned(), "operator".to_owned());
        let names = BTreeMap::from([(10, &bench), (11, &op)]);
        let parents = BTreeMap::from([(10, 1), (11, 10), (12, 11), (13, 10), (20, 1)]);
        assert_eq!(nearest_named(12, &names, &parents), Some(&op));
        assert_eq!(nearest_named(11, &names, &parents), Some(&op));
        assert_eq!(nearest_named(13, &names, &parents), Some(&bench));
        assert_eq!(nearest_named(20, &names, &parents), None);
        let cycle = BTreeMap::from([(5, 6), (6, 5)]);
        assert_eq!(nearest_named(5, &names, &cycle), None);
    }

    #[test]
    fn this_process_uses_some_cpu() {
        let p = Processes::of_ground();
        let before = p.sample();
        let mut x = 0u64;
        let start = Instant::now();
        while start.elapsed().as_millis() < 200 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let used = p.sample().since(&before);
        assert!(used.of("bench") > 0.0, "{}", used.line());
    }
}
