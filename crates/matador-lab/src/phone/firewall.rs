//! A small iptables model: rules kept in `iptables -S` form and evaluated for
//! the phone's outgoing app and background traffic (owner match by uid), so a
//! per-UID allow-list really cuts the simulated background noise.

use std::net::IpAddr;

/// One rule: table, chain and its specification words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Table (`filter`, `nat`, `mangle`, `raw`).
    pub table: String,
    /// Chain.
    pub chain: String,
    /// Match and target words (`-m owner --uid-owner 10123 -j ACCEPT`).
    pub spec: Vec<String>,
}

/// The rule set (IPv4 and IPv6 share it: the lab only uses IPv4 for apps).
#[derive(Debug, Clone, Default)]
pub struct Firewall {
    /// Rules in order.
    pub rules: Vec<Rule>,
    /// User-defined chains: (table, chain).
    pub chains: Vec<(String, String)>,
    /// Policies of built-in chains: (table, chain) → target.
    pub policies: Vec<((String, String), String)>,
}

const BUILTIN: &[&str] = &["INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"];

/// What an `iptables` invocation prints and returns: (stdout, stderr, status).
pub type Reply = (String, String, i32);

/// Success, silent.
fn done() -> Reply {
    (String::new(), String::new(), 0)
}

/// A usage error, as iptables 1.8.7 words it.
fn usage(m: &str) -> Reply {
    (
        String::new(),
        format!(
            "iptables v1.8.7 (legacy): {m}\nTry `iptables -h' or 'iptables --help' for more information.\n"
        ),
        2,
    )
}

/// The table an invocation names (`-t`, default `filter`) and its other
/// words, without the options that change nothing here (`-w`, `-n`, `-v`,
/// `--line-numbers`).
fn split_table(args: &[String]) -> (String, Vec<String>) {
    let mut table = "filter".to_string();
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-t" | "--table" => {
                i += 1;
                table = args.get(i).cloned().unwrap_or_default();
            }
            "-w" | "--wait" | "-n" | "-v" | "--line-numbers" => {}
            a => rest.push(a.to_string()),
        }
        i += 1;
    }
    (table, rest)
}

/// An outgoing packet's properties that rules can match.
#[derive(Debug, Clone, Copy)]
pub struct Packet {
    /// Owner uid.
    pub uid: u32,
    /// `tcp` or `udp`.
    pub proto: &'static str,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port.
    pub dport: u16,
}

impl Firewall {
    fn chain_exists(&self, table: &str, chain: &str) -> bool {
        BUILTIN.contains(&chain) || self.chains.iter().any(|(t, c)| t == table && c == chain)
    }

    fn policy(&self, table: &str, chain: &str) -> String {
        self.policies
            .iter()
            .find(|((t, c), _)| t == table && c == chain)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| "ACCEPT".into())
    }

    /// Runs one `iptables` invocation; returns (stdout, stderr, status).
    pub fn command(&mut self, args: &[String], root: bool) -> Reply {
        if !root {
            return (
                String::new(),
                "iptables v1.8.7 (legacy): can't initialize iptables table `filter': Permission denied (you must be root)\nPerhaps iptables or your kernel needs to be upgraded.\n".into(),
                4,
            );
        }
        let (table, rest) = split_table(args);
        if !["filter", "nat", "mangle", "raw"].contains(&table.as_str()) {
            return (
                String::new(),
                format!(
                    "iptables v1.8.7 (legacy): can't initialize iptables table `{table}': Table does not exist (do you need to insmod?)\n"
                ),
                3,
            );
        }
        let Some(op) = rest.first().cloned() else {
            return usage("no command specified");
        };
        let chain = rest.get(1).cloned().filter(|c| !c.starts_with('-'));
        match op.as_str() {
            "-A" | "--append" | "-I" | "--insert" | "-D" | "--delete" => {
                let Some(chain) = chain else {
                    return usage("option requires a chain");
                };
                self.edit_rule(&op, table, chain, rest[2..].to_vec())
            }
            "-F" | "--flush" => {
                self.rules
                    .retain(|r| r.table != table || chain.as_ref().is_some_and(|c| &r.chain != c));
                done()
            }
            "-N" | "--new-chain" => {
                let Some(c) = chain else {
                    return usage("option requires a chain");
                };
                self.new_chain(table, c)
            }
            "-X" | "--delete-chain" => self.delete_chain(&table, chain),
            "-P" | "--policy" => {
                let (Some(c), Some(target)) = (chain, rest.get(2).cloned()) else {
                    return usage("-P requires a chain and a policy");
                };
                self.set_policy(table, c, target)
            }
            "-S" | "--list-rules" | "-L" | "--list" => {
                let list = op == "-L" || op == "--list";
                (
                    self.listing(&table, chain.as_deref(), list),
                    String::new(),
                    0,
                )
            }
            o => usage(&format!("unknown option \"{o}\"")),
        }
    }

    /// `-A`/`-I [N]`/`-D CHAIN SPEC…`: appends, inserts (at rule N of the
    /// chain, 1-based) or deletes the first equal rule.
    fn edit_rule(
        &mut self,
        op: &str,
        table: String,
        chain: String,
        mut spec: Vec<String>,
    ) -> Reply {
        if !self.chain_exists(&table, &chain) {
            return (
                String::new(),
                "iptables: No chain/target/match by that name.\n".into(),
                1,
            );
        }
        let mut pos = None;
        if (op.starts_with("-I") || op == "--insert")
            && let Some(n) = spec.first().and_then(|s| s.parse::<usize>().ok())
        {
            pos = Some(n.max(1) - 1);
            spec.remove(0);
        }
        if let Err(m) = validate(&spec, self, &table) {
            return usage(&m);
        }
        let rule = Rule { table, chain, spec };
        match op {
            "-A" | "--append" => self.rules.push(rule),
            "-I" | "--insert" => {
                let in_chain = |r: &Rule| r.table == rule.table && r.chain == rule.chain;
                let idx = self
                    .rules
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| in_chain(r))
                    .map(|(i, _)| i)
                    .nth(pos.unwrap_or(0))
                    .unwrap_or_else(|| {
                        self.rules
                            .iter()
                            .position(in_chain)
                            .unwrap_or(self.rules.len())
                    });
                self.rules.insert(idx.min(self.rules.len()), rule);
            }
            _ => match self.rules.iter().position(|r| *r == rule) {
                Some(i) => {
                    self.rules.remove(i);
                }
                None => {
                    return (
                        String::new(),
                        "iptables: Bad rule (does a matching rule exist in that chain?).\n".into(),
                        1,
                    );
                }
            },
        }
        done()
    }

    /// `-N CHAIN`.
    fn new_chain(&mut self, table: String, c: String) -> Reply {
        if self.chain_exists(&table, &c) {
            return (String::new(), "iptables: Chain already exists.\n".into(), 1);
        }
        self.chains.push((table, c));
        done()
    }

    /// `-X [CHAIN]`: one unreferenced chain, or every user chain of the table.
    fn delete_chain(&mut self, table: &str, chain: Option<String>) -> Reply {
        let Some(c) = chain else {
            self.chains.retain(|(t, _)| *t != table);
            return done();
        };
        if self
            .rules
            .iter()
            .any(|r| r.spec.windows(2).any(|w| w[0] == "-j" && w[1] == c))
        {
            return (String::new(), "iptables: Too many links.\n".into(), 1);
        }
        self.chains.retain(|(t, ch)| !(*t == table && *ch == c));
        done()
    }

    /// `-P CHAIN ACCEPT|DROP` (built-in chains only).
    fn set_policy(&mut self, table: String, c: String, target: String) -> Reply {
        if !BUILTIN.contains(&c.as_str()) || !["ACCEPT", "DROP"].contains(&target.as_str()) {
            return (
                String::new(),
                "iptables: Bad built-in chain name.\n".into(),
                1,
            );
        }
        self.policies
            .retain(|((t, ch), _)| !(*t == table && *ch == c));
        self.policies.push(((table, c), target));
        done()
    }

    /// `-S` (rule form) or, with `list`, `-L` (table form) of a table's
    /// chains, or of `only`.
    fn listing(&self, table: &str, only: Option<&str>, list: bool) -> String {
        let mut out = String::new();
        let mut chains: Vec<String> = ["INPUT", "FORWARD", "OUTPUT"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        chains.extend(
            self.chains
                .iter()
                .filter(|(t, _)| *t == table)
                .map(|(_, c)| c.clone()),
        );
        for c in chains.iter().filter(|c| only.is_none_or(|o| o == *c)) {
            let builtin = BUILTIN.contains(&c.as_str());
            if list {
                if builtin {
                    out.push_str(&format!("Chain {c} (policy {})\n", self.policy(table, c)));
                } else {
                    out.push_str(&format!("Chain {c} (0 references)\n"));
                }
                out.push_str("target     prot opt source               destination\n");
            } else if builtin {
                out.push_str(&format!("-P {c} {}\n", self.policy(table, c)));
            } else {
                out.push_str(&format!("-N {c}\n"));
            }
            for r in self
                .rules
                .iter()
                .filter(|r| r.table == table && &r.chain == c)
            {
                if list {
                    let target = r
                        .spec
                        .windows(2)
                        .find(|w| w[0] == "-j")
                        .map(|w| w[1].clone())
                        .unwrap_or_default();
                    out.push_str(&format!(
                        "{target:<10} all  --  0.0.0.0/0            0.0.0.0/0            {}\n",
                        r.spec.join(" ")
                    ));
                } else {
                    out.push_str(&format!("-A {c} {}\n", r.spec.join(" ")));
                }
            }
            if list {
                out.push('\n');
            }
        }
        out
    }

    /// Whether an outgoing packet passes the filter table's OUTPUT chain.
    pub fn allows(&self, p: &Packet) -> bool {
        self.verdict("OUTPUT", p, 0)
            .unwrap_or_else(|| self.policy("filter", "OUTPUT") == "ACCEPT")
    }

    fn verdict(&self, chain: &str, p: &Packet, depth: usize) -> Option<bool> {
        if depth > 8 {
            return None;
        }
        for r in self
            .rules
            .iter()
            .filter(|r| r.table == "filter" && r.chain == chain)
        {
            if !matches(&r.spec, p) {
                continue;
            }
            let target = r
                .spec
                .windows(2)
                .find(|w| w[0] == "-j" || w[0] == "--jump")
                .map(|w| w[1].as_str());
            match target {
                Some("ACCEPT") => return Some(true),
                Some("DROP" | "REJECT") => return Some(false),
                Some("RETURN") => return None,
                Some(c) => {
                    if let Some(v) = self.verdict(c, p, depth + 1) {
                        return Some(v);
                    }
                }
                None => {}
            }
        }
        None
    }
}

fn validate(spec: &[String], fw: &Firewall, table: &str) -> Result<(), String> {
    let mut i = 0;
    while i < spec.len() {
        let s = spec[i].as_str();
        let needs_value = [
            "-j",
            "--jump",
            "-m",
            "--match",
            "--uid-owner",
            "--gid-owner",
            "-p",
            "--protocol",
            "--dport",
            "--sport",
            "-d",
            "-s",
            "-o",
            "-i",
            "--reject-with",
            "--state",
            "--ctstate",
        ];
        if needs_value.contains(&s) {
            let Some(v) = spec.get(i + 1) else {
                return Err(format!("option \"{s}\" requires an argument"));
            };
            if (s == "-j" || s == "--jump")
                && !["ACCEPT", "DROP", "REJECT", "RETURN", "LOG"].contains(&v.as_str())
                && !fw.chain_exists(table, v)
            {
                return Err(format!(
                    "Couldn't load target `{v}':No such file or directory"
                ));
            }
            if s == "--uid-owner"
                && v.split('-').any(|p| p.parse::<u32>().is_err())
                && !["root", "shell", "system"].contains(&v.as_str())
            {
                return Err(format!("Bad user \"{v}\""));
            }
            i += 2;
        } else if s == "!" {
            i += 1;
        } else {
            return Err(format!("Bad argument `{s}'"));
        }
    }
    Ok(())
}

fn matches(spec: &[String], p: &Packet) -> bool {
    let mut i = 0;
    let mut negate = false;
    while i < spec.len() {
        let key = spec[i].as_str();
        if key == "!" {
            negate = true;
            i += 1;
            continue;
        }
        let val = spec.get(i + 1).map(String::as_str).unwrap_or("");
        let ok = match key {
            "--uid-owner" => uid_matches(val, p.uid),
            "-p" | "--protocol" => val == "all" || val == p.proto,
            "--dport" => val.parse::<u16>().is_ok_and(|d| d == p.dport),
            "-o" => val == "wlan0" || val == "wlan+",
            "-d" => cidr_matches(val, p.dst),
            _ => {
                i += 2;
                negate = false;
                continue;
            }
        };
        if ok == negate {
            return false;
        }
        negate = false;
        i += 2;
    }
    true
}

fn uid_matches(v: &str, uid: u32) -> bool {
    let named = match v {
        "root" => Some(0),
        "system" => Some(1000),
        "shell" => Some(2000),
        _ => None,
    };
    if let Some(n) = named {
        return n == uid;
    }
    match v.split_once('-') {
        Some((a, b)) => {
            matches!((a.parse::<u32>(), b.parse::<u32>()), (Ok(a), Ok(b)) if (a..=b).contains(&uid))
        }
        None => v.parse::<u32>().is_ok_and(|n| n == uid),
    }
}

fn cidr_matches(v: &str, ip: IpAddr) -> bool {
    let (addr, len) = v.split_once('/').unwrap_or((v, "32"));
    match (addr.parse::<IpAddr>(), ip, len.parse::<u32>()) {
        (Ok(IpAddr::V4(a)), IpAddr::V4(b), Ok(len)) if len <= 32 => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (Ok(a), b, _) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(fw: &mut Firewall, line: &str) -> i32 {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        fw.command(&args, true).2
    }

    #[test]
    fn uid_allow_list() {
        let mut fw = Firewall::default();
        assert_eq!(fw.command(&["-S".into()], false).2, 4);
        assert_eq!(run(&mut fw, "-N matador"), 0);
        assert_eq!(
            run(&mut fw, "-A matador -m owner --uid-owner 10123 -j ACCEPT"),
            0
        );
        assert_eq!(run(&mut fw, "-A matador -p udp --dport 53 -j ACCEPT"), 0);
        assert_eq!(run(&mut fw, "-A matador -j REJECT"), 0);
        assert_eq!(run(&mut fw, "-I OUTPUT -j matador"), 0);
        assert_eq!(run(&mut fw, "-A OUTPUT -j NOPE"), 2);
        let pkt = |uid, proto, dport| Packet {
            uid,
            proto,
            dst: "198.18.1.1".parse().unwrap(),
            dport,
        };
        assert!(fw.allows(&pkt(10123, "tcp", 443)));
        assert!(fw.allows(&pkt(10050, "udp", 53)));
        assert!(!fw.allows(&pkt(10050, "tcp", 5228)));
        let (s, _, _) = fw.command(&["-S".into()], true);
        assert!(
            s.contains("-A matador -m owner --uid-owner 10123 -j ACCEPT"),
            "{s}"
        );
        assert_eq!(run(&mut fw, "-D OUTPUT -j matador"), 0);
        assert!(fw.allows(&pkt(10050, "tcp", 5228)));
        assert_eq!(run(&mut fw, "-F matador"), 0);
        assert_eq!(run(&mut fw, "-X matador"), 0);
    }

    #[test]
    fn table_and_ignored_options() {
        let args: Vec<String> = "-w -t nat -n -A OUTPUT -j ACCEPT"
            .split_whitespace()
            .map(String::from)
            .collect();
        let (t, rest) = split_table(&args);
        assert_eq!(t, "nat");
        assert_eq!(rest, ["-A", "OUTPUT", "-j", "ACCEPT"]);
        assert_eq!(split_table(&[]).0, "filter");
    }

    #[test]
    fn insert_positions_policies_and_listings() {
        let mut fw = Firewall::default();
        assert_eq!(run(&mut fw, "-A OUTPUT -p tcp -j ACCEPT"), 0);
        assert_eq!(run(&mut fw, "-A OUTPUT -p udp -j ACCEPT"), 0);
        // -I 2 goes before the second rule of the chain; -I alone first.
        assert_eq!(run(&mut fw, "-I OUTPUT 2 -j DROP"), 0);
        assert_eq!(run(&mut fw, "-I OUTPUT -j REJECT"), 0);
        assert_eq!(run(&mut fw, "-P OUTPUT DROP"), 0);
        assert_eq!(run(&mut fw, "-P matador DROP"), 1);
        assert_eq!(run(&mut fw, "-P OUTPUT"), 2);
        let (s, _, _) = fw.command(&["-S".into(), "OUTPUT".into()], true);
        assert_eq!(
            s,
            "-P OUTPUT DROP\n-A OUTPUT -j REJECT\n-A OUTPUT -p tcp -j ACCEPT\n-A OUTPUT -j DROP\n-A OUTPUT -p udp -j ACCEPT\n"
        );
        let (l, _, _) = fw.command(&["-L".into(), "OUTPUT".into()], true);
        assert!(l.starts_with("Chain OUTPUT (policy DROP)\ntarget "), "{l}");
        assert_eq!(l.lines().filter(|x| x.starts_with("ACCEPT ")).count(), 2);
        assert_eq!(run(&mut fw, "-D OUTPUT -j NOTHERE"), 2);
        assert_eq!(run(&mut fw, "-D OUTPUT -p icmp -j ACCEPT"), 1);
    }

    #[test]
    fn chains_and_errors() {
        let mut fw = Firewall::default();
        assert_eq!(run(&mut fw, "-t bogus -S"), 3);
        assert_eq!(run(&mut fw, ""), 2);
        assert_eq!(run(&mut fw, "-Z"), 2);
        assert_eq!(run(&mut fw, "-A"), 2);
        assert_eq!(run(&mut fw, "-A nochain -j ACCEPT"), 1);
        assert_eq!(run(&mut fw, "-N c1"), 0);
        assert_eq!(run(&mut fw, "-N c1"), 1);
        assert_eq!(run(&mut fw, "-A OUTPUT -j c1"), 0);
        // A referenced chain stays; -X without a chain removes every one.
        assert_eq!(run(&mut fw, "-X c1"), 1);
        assert_eq!(run(&mut fw, "-X"), 0);
        assert!(fw.chains.is_empty());
        // -F CHAIN empties that chain only, -F the whole table.
        assert_eq!(run(&mut fw, "-A INPUT -j ACCEPT"), 0);
        assert_eq!(run(&mut fw, "-F INPUT"), 0);
        assert_eq!(fw.rules.len(), 1);
        assert_eq!(run(&mut fw, "-F"), 0);
        assert!(fw.rules.is_empty());
    }
}
