//! A latency histogram over a time window, made from the difference of two
//! cumulative Prometheus histograms, so windows from several instances merge
//! by adding bucket counts and percentiles stay exact to the bucket.

use prometheus::proto::Histogram as HistogramProto;
use serde::{Deserialize, Serialize};

use crate::metrics::LATENCY_BUCKETS;

/// Cumulative counts of one histogram series at one instant: one per finite
/// bucket bound, then the total (the +Inf bucket).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cumulative(pub Vec<u64>);

impl Cumulative {
    pub fn from_proto(h: &HistogramProto) -> Self {
        let mut counts: Vec<u64> = h.get_bucket().iter().map(|b| b.cumulative_count()).collect();
        counts.push(h.get_sample_count());
        Cumulative(counts)
    }
}

/// Per-bucket (not cumulative) counts in a window; the last bucket is +Inf.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    pub buckets: Vec<u64>,
}

impl Distribution {
    /// What was observed between `older` and `newer`. A reset counter (the
    /// series was missing earlier) counts from zero.
    pub fn between(older: Option<&Cumulative>, newer: &Cumulative) -> Self {
        let at = |c: &Cumulative, i: usize| c.0.get(i).copied().unwrap_or(0);
        let mut buckets = Vec::with_capacity(newer.0.len());
        let mut prev_new = 0u64;
        let mut prev_old = 0u64;
        for i in 0..newer.0.len() {
            let n = at(newer, i);
            let o = older.map(|c| at(c, i)).unwrap_or(0);
            let in_bucket_new = n.saturating_sub(prev_new);
            let in_bucket_old = o.saturating_sub(prev_old);
            buckets.push(in_bucket_new.saturating_sub(in_bucket_old));
            prev_new = n;
            prev_old = o;
        }
        Distribution { buckets }
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    pub fn merge(&mut self, other: &Distribution) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
    }

    /// The q-quantile in seconds, interpolated linearly inside its bucket as
    /// Prometheus' `histogram_quantile` does; `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        // Tolerance so that 0.99 * 100 (= 99.00000000000001) is rank 99, not 100.
        let rank = q.clamp(0.0, 1.0) * total as f64 - 1e-9;
        let mut seen = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if (seen + n) as f64 >= rank {
                let Some(&upper) = LATENCY_BUCKETS.get(i) else {
                    // +Inf: the best statement is "at least the largest bound".
                    return LATENCY_BUCKETS.last().copied();
                };
                let lower = if i == 0 { 0.0 } else { LATENCY_BUCKETS[i - 1] };
                let within = ((rank + 1e-9 - seen as f64) / n as f64).clamp(0.0, 1.0);
                return Some(lower + (upper - lower) * within);
            }
            seen += n;
        }
        LATENCY_BUCKETS.last().copied()
    }

    /// The quantile in milliseconds to the microsecond; None when empty.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        self.quantile(q).map(|s| (s * 1e6).round() / 1e3)
    }

    /// `{count, p50_ms, p95_ms, p99_ms}`, percentiles null when empty.
    pub fn summary(&self) -> serde_json::Value {
        let ms = |q| self.quantile_ms(q);
        serde_json::json!({
            "count": self.count(),
            "p50_ms": ms(0.50),
            "p95_ms": ms(0.95),
            "p99_ms": ms(0.99),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cumulative_of(observations: &[f64]) -> Cumulative {
        let mut c: Vec<u64> = LATENCY_BUCKETS.iter().map(|b| observations.iter().filter(|o| *o <= b).count() as u64).collect();
        c.push(observations.len() as u64);
        Cumulative(c)
    }

    #[test]
    fn window_is_the_difference_of_two_snapshots() {
        let before = cumulative_of(&[0.0002, 0.003]);
        let after = cumulative_of(&[0.0002, 0.003, 0.003, 0.04, 9.0]);
        let d = Distribution::between(Some(&before), &after);
        assert_eq!(d.count(), 3);
        assert_eq!(d.buckets.iter().next_back(), Some(&1), "the 9 s observation lands in +Inf");
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket() {
        // 100 observations, all in the (1 ms, 2.5 ms] bucket.
        let d = Distribution::between(None, &cumulative_of(&[0.002; 100]));
        let p50 = d.quantile(0.5).expect("observations");
        assert!((p50 - 0.00175).abs() < 1e-9, "{p50}");
        assert!(d.quantile(0.99).expect("observations") <= 0.0025);
        assert_eq!(Distribution::default().quantile(0.5), None);
    }

    #[test]
    fn merged_windows_answer_for_the_union() {
        let mut fast = Distribution::between(None, &cumulative_of(&[0.0003; 90]));
        let slow = Distribution::between(None, &cumulative_of(&[0.3; 10]));
        fast.merge(&slow);
        assert_eq!(fast.count(), 100);
        assert!(fast.quantile(0.5).expect("observations") < 0.0005);
        assert!(fast.quantile(0.95).expect("observations") > 0.25);
    }
}
