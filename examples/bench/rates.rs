//! The AWS request rate per service over the steady-state window: the operator's call
//! counters sampled about once a second, each interval's rate, their peak and the mean.
//! Resyncs that all fall due at once show as a peak far above the mean.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Samples of the calls by service.
#[derive(Default)]
pub struct Sampler {
    samples: Vec<(Instant, BTreeMap<String, u64>)>,
}

/// One service's rate over the window, calls per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Calls over the whole window divided by its length.
    pub mean: f64,
    /// The highest rate of one sampling interval.
    pub peak: f64,
}

impl Sampler {
    /// Records the counters `calls` read at `at`.
    pub fn push(&mut self, at: Instant, calls: BTreeMap<String, u64>) {
        self.samples.push((at, calls));
    }

    /// From the first sample to the last.
    pub fn window(&self) -> Duration {
        match (self.samples.first(), self.samples.last()) {
            (Some((a, _)), Some((b, _))) => b.saturating_duration_since(*a),
            _ => Duration::ZERO,
        }
    }

    /// Mean and peak rate of every service that made calls in the window.
    pub fn rates(&self) -> BTreeMap<String, Rate> {
        let window = self.window().as_secs_f64();
        let services: BTreeSet<&String> = self.samples.iter().flat_map(|(_, m)| m.keys()).collect();
        let count = |m: &BTreeMap<String, u64>, s: &str| m.get(s).copied().unwrap_or(0);
        let mut out = BTreeMap::new();
        for s in services {
            let (Some(first), Some(last)) = (self.samples.first(), self.samples.last()) else { break };
            let total = count(&last.1, s).saturating_sub(count(&first.1, s));
            if total == 0 || window <= 0.0 {
                continue;
            }
            let peak = self
                .samples
                .windows(2)
                .map(|w| {
                    let dt = w[1].0.saturating_duration_since(w[0].0).as_secs_f64().max(1e-3);
                    count(&w[1].1, s).saturating_sub(count(&w[0].1, s)) as f64 / dt
                })
                .fold(0.0, f64::max);
            out.insert(s.clone(), Rate { mean: total as f64 / window, peak });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_and_mean_per_service() {
        let t0 = Instant::now();
        let mut s = Sampler::default();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let calls = |s3: u64, kms: u64| BTreeMap::from([("s3".to_string(), s3), ("kms".to_string(), kms)]);
        s.push(at(0), calls(100, 7));
        s.push(at(1), calls(110, 7));
        s.push(at(2), calls(140, 7));
        s.push(at(4), calls(160, 7));
        let r = s.rates();
        assert_eq!(s.window(), Duration::from_secs(4));
        assert_eq!(r["s3"], Rate { mean: 15.0, peak: 30.0 });
        assert!(!r.contains_key("kms"), "no call in the window: no rate");
    }
}
