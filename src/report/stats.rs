//! Shares with sample sizes and Wilson score intervals.

use serde::Serialize;

/// z for a two-sided 95 % interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// `k` of `n` with its percentage and 95 % Wilson score interval.
///
/// `n` counts only the cases whose answer is known; `unknown` the others,
/// which never enter the percentage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Share {
    /// Cases with the property.
    pub k: usize,
    /// Cases with a known answer.
    pub n: usize,
    /// Cases whose answer is unknown (no path, no geolocated hop).
    pub unknown: usize,
    /// 100·k/n, rounded to 0.01 (`None` when n = 0).
    pub pct: Option<f64>,
    /// Lower end of the 95 % Wilson interval, percent.
    pub ci_low: Option<f64>,
    /// Upper end of the 95 % Wilson interval, percent.
    pub ci_high: Option<f64>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// 95 % Wilson score interval of k successes in n trials, as fractions.
pub fn wilson(k: usize, n: usize) -> Option<(f64, f64)> {
    if n == 0 || k > n {
        return None;
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

impl Share {
    /// Builds a share from the three counts.
    pub fn new(k: usize, n: usize, unknown: usize) -> Self {
        let ci = wilson(k, n);
        Share {
            k,
            n,
            unknown,
            pct: (n > 0).then(|| round2(100.0 * k as f64 / n as f64)),
            ci_low: ci.map(|c| round2(100.0 * c.0)),
            ci_high: ci.map(|c| round2(100.0 * c.1)),
        }
    }

    /// Counts a list of tri-state answers.
    pub fn of(answers: impl IntoIterator<Item = Option<bool>>) -> Self {
        let (mut k, mut n, mut u) = (0, 0, 0);
        for a in answers {
            match a {
                Some(true) => {
                    k += 1;
                    n += 1
                }
                Some(false) => n += 1,
                None => u += 1,
            }
        }
        Share::new(k, n, u)
    }

    /// Percentage as text, rounded to whole percent like the seed (`"33%"`, `"–"` when n = 0).
    pub fn pct_text(&self) -> String {
        match self.pct {
            Some(_) => format!("{:.0}%", 100.0 * self.k as f64 / self.n as f64),
            None => "–".into(),
        }
    }

    /// `"33% (1/3, CI 6–79%)"`-style text.
    pub fn long_text(&self) -> String {
        match (self.ci_low, self.ci_high) {
            (Some(l), Some(h)) => format!(
                "{} ({}/{}, CI {:.0}–{:.0}%)",
                self.pct_text(),
                self.k,
                self.n,
                l,
                h
            ),
            _ => "–".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_reference_values() {
        // Reference: k=1, n=3 → [0.0615, 0.7923] (Wilson 1927 formula, z=1.96).
        let (l, h) = wilson(1, 3).unwrap();
        assert!((l - 0.0615).abs() < 1e-3, "{l}");
        assert!((h - 0.7923).abs() < 1e-3, "{h}");
        let (l, h) = wilson(0, 120).unwrap();
        assert_eq!(l, 0.0);
        assert!((h - 0.0310).abs() < 1e-3, "{h}");
        let (l, h) = wilson(3, 3).unwrap();
        assert!((l - 0.4385).abs() < 1e-3, "{l}");
        assert!((h - 1.0).abs() < 1e-9);
        assert!(wilson(0, 0).is_none());
        assert!(wilson(4, 3).is_none());
    }

    #[test]
    fn share_text() {
        let s = Share::of([Some(true), Some(false), Some(false), None]);
        assert_eq!((s.k, s.n, s.unknown), (1, 3, 1));
        assert_eq!(s.pct_text(), "33%");
        assert_eq!(s.long_text(), "33% (1/3, CI 6–79%)");
        assert_eq!(Share::of([None]).pct_text(), "–");
    }
}
