//! Packet timestamps with the capture's own precision.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A point in time as stored in a capture: unix seconds plus nanoseconds,
/// remembering how many fractional digits the capture really had
/// (6 for classic microsecond pcap, 9 for nanosecond pcap, any for pcapng).
///
/// It serialises as a decimal string (`"1405545681.123456"`) so JSON keeps the
/// capture's full precision, which an `f64` cannot for nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Whole seconds since the unix epoch (may be negative for odd captures).
    pub secs: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub nanos: u32,
    /// Number of meaningful fractional digits (0..=9).
    pub digits: u8,
}

impl Timestamp {
    /// Builds a timestamp; `nanos` is normalised into the second.
    pub fn new(secs: i64, nanos: u64, digits: u8) -> Self {
        let carry = (nanos / 1_000_000_000) as i64;
        Timestamp {
            secs: secs + carry,
            nanos: (nanos % 1_000_000_000) as u32,
            digits: digits.min(9),
        }
    }

    /// Seconds as `f64` (loses precision below ~0.1 µs; fine for windows and
    /// plots, not for output).
    pub fn as_f64(&self) -> f64 {
        self.secs as f64 + f64::from(self.nanos) / 1e9
    }

    /// Builds a timestamp from float seconds (e.g. `events.jsonl`), microsecond digits.
    pub fn from_f64(t: f64) -> Self {
        let secs = t.floor();
        let nanos = ((t - secs) * 1e9).round() as u64;
        Timestamp::new(secs as i64, nanos, 6)
    }

    /// Signed difference `self - earlier` in seconds.
    pub fn since(&self, earlier: &Timestamp) -> f64 {
        (self.secs - earlier.secs) as f64 + (f64::from(self.nanos) - f64::from(earlier.nanos)) / 1e9
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.format_into(&mut [0; 32]))
    }
}

impl Timestamp {
    /// Writes the decimal form (what `Display` prints) into `buf` and
    /// returns it: no formatter machinery, as every record carries
    /// timestamps and replay writes millions of them.
    pub fn format_into<'a>(&self, buf: &'a mut [u8; 32]) -> &'a str {
        // Filled from the end: fraction, point, whole seconds, sign.
        let mut i = buf.len();
        if self.digits > 0 {
            let digits = u32::from(self.digits.min(9));
            let mut frac = self.nanos / 10u32.pow(9 - digits);
            for _ in 0..digits {
                i -= 1;
                buf[i] = b'0' + (frac % 10) as u8;
                frac /= 10;
            }
            i -= 1;
            buf[i] = b'.';
        }
        let mut secs = self.secs.unsigned_abs();
        loop {
            i -= 1;
            buf[i] = b'0' + (secs % 10) as u8;
            secs /= 10;
            if secs == 0 {
                break;
            }
        }
        if self.secs < 0 {
            i -= 1;
            buf[i] = b'-';
        }
        // Only ASCII digits, '.' and '-' were written.
        std::str::from_utf8(&buf[i..]).unwrap_or_default()
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.format_into(&mut [0; 32]))
    }
}

impl std::str::FromStr for Timestamp {
    type Err = String;

    /// Parses `"secs"` or `"secs.fraction"` (up to 9 fractional digits).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("not a decimal timestamp: {s:?}");
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let secs: i64 = int.parse().map_err(|_| bad())?;
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let digits = frac.len() as u8;
        let nanos = if frac.is_empty() {
            0
        } else {
            frac.parse::<u64>().map_err(|_| bad())? * 10u64.pow(9 - u32::from(digits))
        };
        Ok(Timestamp::new(secs, nanos, digits))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    /// Accepts the decimal string this type writes, or a JSON number.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Number(f64),
        }
        match Repr::deserialize(d)? {
            Repr::Text(s) => s.parse().map_err(serde::de::Error::custom),
            Repr::Number(n) => Ok(Timestamp::from_f64(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_capture_precision() {
        assert_eq!(Timestamp::new(1, 5_000, 6).to_string(), "1.000005");
        assert_eq!(Timestamp::new(1, 5, 9).to_string(), "1.000000005");
        assert_eq!(Timestamp::new(1, 1_500_000_000, 3).to_string(), "2.500");
        assert_eq!(Timestamp::new(7, 0, 0).to_string(), "7");
    }

    #[test]
    fn parses_what_it_writes() {
        for t in ["1.000005", "1.000000005", "2.500", "7", "-3.25"] {
            assert_eq!(t.parse::<Timestamp>().unwrap().to_string(), t);
        }
        assert!("1.x".parse::<Timestamp>().is_err());
        assert!("1.0000000001".parse::<Timestamp>().is_err());
    }

    #[test]
    fn serialises_as_the_decimal_string() {
        // (the strings the formatter-based Display wrote before)
        let cases = [
            (Timestamp::new(1, 5_000, 6), "1.000005"),
            (
                Timestamp::new(1_405_545_681, 123_456_789, 9),
                "1405545681.123456789",
            ),
            (Timestamp::new(0, 0, 0), "0"),
            (Timestamp::new(0, 7, 9), "0.000000007"),
            (Timestamp::new(-3, 250_000_000, 2), "-3.25"),
            (
                Timestamp::new(i64::MIN, 999_999_999, 9),
                "-9223372036854775808.999999999",
            ),
            (Timestamp::new(i64::MAX, 0, 1), "9223372036854775807.0"),
        ];
        for (t, want) in cases {
            assert_eq!(t.format_into(&mut [0; 32]), want);
            assert_eq!(t.to_string(), want);
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{want}\""));
        }
    }

    #[test]
    fn differences() {
        let a = Timestamp::new(10, 900_000_000, 6);
        let b = Timestamp::new(11, 100_000_000, 6);
        assert!((b.since(&a) - 0.2).abs() < 1e-9);
    }
}
