//! The shipped rule data: known forged DNS answers, bogon ranges, constant
//! IP-IDs of known injectors and trigger keywords. The files live in
//! `data/` (sources documented there and in `docs/interference.md`) and are
//! embedded at build time, so a replay never depends on files on disk.

use super::InterferenceError;
use ipnetwork::IpNetwork;
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

/// `data/forged-answers.txt`.
pub const FORGED_ANSWERS: &str = include_str!("data/forged-answers.txt");
/// `data/bogons.txt`.
pub const BOGONS: &str = include_str!("data/bogons.txt");
/// `data/injector-ip-ids.txt`.
pub const INJECTOR_IP_IDS: &str = include_str!("data/injector-ip-ids.txt");
/// `data/keywords.txt`.
pub const KEYWORDS: &str = include_str!("data/keywords.txt");

/// Category of a bogon range, which sets how suspicious an answer in it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BogonKind {
    /// Loopback, unspecified, reserved, multicast or documentation: never a
    /// real server.
    Impossible,
    /// Private, shared (CGN) or link-local: split-horizon DNS and home
    /// routers use these for their own names, so less certain.
    Private,
}

/// A bogon range with its category name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bogon {
    /// The range.
    pub net: IpNetwork,
    /// Category as written in the file (`loopback`, `private`, …).
    pub category: String,
    /// How suspicious it is.
    pub kind: BogonKind,
}

/// All rule data, parsed.
#[derive(Debug, Clone, Default)]
pub struct RuleData {
    /// Known forged answers, with the note from the file.
    pub forged: BTreeMap<IpAddr, String>,
    /// Bogon ranges.
    pub bogons: Vec<Bogon>,
    /// Constant IP-IDs of known injectors, with the note from the file.
    pub injector_ip_ids: BTreeMap<u16, String>,
    /// Trigger keywords (lower case).
    pub keywords: HashSet<String>,
    /// Ranges the caller declares its own address space (never bogons),
    /// e.g. the virtual lab's; empty for the shipped data.
    pub exempt: Vec<IpNetwork>,
}

/// Splits `line` into its data part and its comment; `None` for blank or
/// comment-only lines.
fn content(line: &str) -> Option<(&str, &str)> {
    let (data, note) = match line.split_once('#') {
        Some((d, n)) => (d.trim(), n.trim()),
        None => (line.trim(), ""),
    };
    (!data.is_empty()).then_some((data, note))
}

impl RuleData {
    /// Parses the embedded files.
    pub fn shipped() -> Result<Self, InterferenceError> {
        let mut d = RuleData::default();
        d.add_forged("data/forged-answers.txt", FORGED_ANSWERS)?;
        d.add_bogons("data/bogons.txt", BOGONS)?;
        d.add_injector_ip_ids("data/injector-ip-ids.txt", INJECTOR_IP_IDS)?;
        d.add_keywords(KEYWORDS);
        Ok(d)
    }

    /// Adds known forged answers from a file in the `forged-answers.txt` format.
    pub fn add_forged(&mut self, file: &str, text: &str) -> Result<(), InterferenceError> {
        for (i, line) in text.lines().enumerate() {
            let Some((data, note)) = content(line) else {
                continue;
            };
            let ip: IpAddr = data.parse().map_err(|_| InterferenceError::Data {
                file: file.to_string(),
                line: i + 1,
                message: format!("`{data}` is not an IP address"),
            })?;
            self.forged.insert(ip, note.to_string());
        }
        Ok(())
    }

    /// Adds bogon ranges from a file in the `bogons.txt` format.
    pub fn add_bogons(&mut self, file: &str, text: &str) -> Result<(), InterferenceError> {
        for (i, line) in text.lines().enumerate() {
            let Some((data, _)) = content(line) else {
                continue;
            };
            let err = |message: String| InterferenceError::Data {
                file: file.to_string(),
                line: i + 1,
                message,
            };
            let mut parts = data.split_whitespace();
            let (Some(cidr), Some(category), None) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(err(format!("expected `CIDR category`, got `{data}`")));
            };
            let net: IpNetwork = cidr
                .parse()
                .map_err(|e| err(format!("`{cidr}` is not a CIDR range: {e}")))?;
            let kind = match category {
                "loopback" | "unspecified" | "reserved" | "multicast" | "documentation" => {
                    BogonKind::Impossible
                }
                "private" | "shared" | "link-local" | "benchmarking" => BogonKind::Private,
                other => return Err(err(format!("unknown bogon category `{other}`"))),
            };
            self.bogons.push(Bogon {
                net,
                category: category.to_string(),
                kind,
            });
        }
        Ok(())
    }

    /// Adds injector IP-IDs from a file in the `injector-ip-ids.txt` format.
    pub fn add_injector_ip_ids(&mut self, file: &str, text: &str) -> Result<(), InterferenceError> {
        for (i, line) in text.lines().enumerate() {
            let Some((data, note)) = content(line) else {
                continue;
            };
            let digits = data.trim_start_matches("0x").trim_start_matches("0X");
            let id = u16::from_str_radix(digits, 16).map_err(|_| InterferenceError::Data {
                file: file.to_string(),
                line: i + 1,
                message: format!("`{data}` is not a 16-bit hex value"),
            })?;
            self.injector_ip_ids.insert(id, note.to_string());
        }
        Ok(())
    }

    /// Adds trigger keywords (one per line, `#` comments).
    pub fn add_keywords(&mut self, text: &str) {
        for line in text.lines() {
            if let Some((data, _)) = content(line) {
                self.keywords.insert(data.to_ascii_lowercase());
            }
        }
    }

    /// The bogon range containing `ip`, if any (none inside [`Self::exempt`]).
    pub fn bogon(&self, ip: IpAddr) -> Option<&Bogon> {
        if self.exempt.iter().any(|n| n.contains(ip)) {
            return None;
        }
        self.bogons.iter().find(|b| b.net.contains(ip))
    }

    /// The first keyword contained in `text` (case-insensitive).
    pub fn keyword_in(&self, text: &str) -> Option<&str> {
        let lower = text.to_ascii_lowercase();
        let mut hits: Vec<&String> = self
            .keywords
            .iter()
            .filter(|k| lower.contains(k.as_str()))
            .collect();
        hits.sort();
        hits.first().map(|k| k.as_str())
    }
}

/// Suffixes of names that legitimately resolve to private addresses.
const LOCAL_SUFFIXES: &[&str] = &[
    "local",
    "lan",
    "home",
    "internal",
    "intranet",
    "corp",
    "private",
    "localdomain",
    "localhost",
    "arpa",
    "test",
    "invalid",
    "example",
];

/// True for a name that should resolve on the public Internet: at least
/// two labels, and not under a local-use suffix.
pub fn is_public_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let Some((_, tld)) = name.rsplit_once('.') else {
        return false;
    };
    !tld.is_empty() && !LOCAL_SUFFIXES.contains(&tld)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_data_parses() {
        let d = RuleData::shipped().unwrap();
        for ip in [
            "8.7.198.45",
            "78.16.49.15",
            "37.61.54.158",
            "93.46.8.89",
            "46.82.174.68",
            "159.106.121.75",
            "59.24.3.173",
            "203.98.7.65",
            "243.185.187.39",
        ] {
            assert!(d.forged.contains_key(&ip.parse().unwrap()), "{ip}");
        }
        assert_eq!(
            d.bogon("127.0.0.1".parse().unwrap()).unwrap().kind,
            BogonKind::Impossible
        );
        assert_eq!(
            d.bogon("192.168.1.1".parse().unwrap()).unwrap().kind,
            BogonKind::Private
        );
        // The lab's ranges are bogons unless the caller exempts them.
        assert_eq!(
            d.bogon("198.18.0.1".parse().unwrap()).unwrap().category,
            "benchmarking"
        );
        assert_eq!(
            d.bogon("fd00::1".parse().unwrap()).unwrap().kind,
            BogonKind::Private
        );
        let mut lab = d.clone();
        lab.exempt = vec![
            "198.18.0.0/15".parse().unwrap(),
            "fd00::/8".parse().unwrap(),
        ];
        assert!(lab.bogon("198.18.0.1".parse().unwrap()).is_none());
        assert!(lab.bogon("fd00::1".parse().unwrap()).is_none());
        assert!(lab.bogon("fc00::1".parse().unwrap()).is_some());
        assert!(d.bogon("8.8.8.8".parse().unwrap()).is_none());
        assert!(d.injector_ip_ids.contains_key(&0x3412));
        assert_eq!(d.keyword_in("Host: LINE.naver.jp"), Some("line.naver.jp"));
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let mut d = RuleData::default();
        let e = d
            .add_forged("f.txt", "# c\n1.2.3.4\nnope # x\n")
            .unwrap_err();
        assert_eq!(e.to_string(), "f.txt:3: `nope` is not an IP address");
        let e = d.add_bogons("b.txt", "10.0.0.0/8 weird\n").unwrap_err();
        assert!(e.to_string().starts_with("b.txt:1: unknown bogon category"));
        let e = d.add_injector_ip_ids("i.txt", "\n0xzz\n").unwrap_err();
        assert!(e.to_string().starts_with("i.txt:2:"));
    }

    #[test]
    fn public_names() {
        assert!(is_public_name("line.naver.jp."));
        assert!(!is_public_name("router.lan"));
        assert!(!is_public_name("localhost"));
        assert!(!is_public_name("1.0.0.127.in-addr.arpa"));
    }
}
