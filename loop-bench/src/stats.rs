//! Percentiles of one sample, and the median and spread across repetitions.

use serde::{Deserialize, Serialize};

/// The `p`-th percentile (0–100) of `sorted` by the nearest-rank method,
/// or `None` if it is empty.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// p50 and p99 of a set of latencies (nanoseconds), sorting them in place.
pub fn p50_p99(latencies: &mut [u64]) -> (Option<u64>, Option<u64>) {
    latencies.sort_unstable();
    (percentile(latencies, 50.0), percentile(latencies, 99.0))
}

/// The median and range of one metric over the repetitions of a cell.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest repetition.
    pub min: f64,
    /// The largest repetition.
    pub max: f64,
    /// Half the range relative to the median, in percent: the "±" in the table.
    pub spread_pct: f64,
}

impl Summary {
    /// Summarises `values`; `None` if there are none.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        let (min, max) = (v[0], v[n - 1]);
        let spread_pct = if median != 0.0 {
            (max - min) / 2.0 / median.abs() * 100.0
        } else {
            0.0
        };
        Some(Summary {
            median,
            min,
            max,
            spread_pct,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn summary() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(s.spread_pct, 50.0);
        assert_eq!(Summary::of(&[1.0, 3.0]).unwrap().median, 2.0);
        assert!(Summary::of(&[]).is_none());
    }
}
