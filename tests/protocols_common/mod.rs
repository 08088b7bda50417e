//! Shared helpers of the protocol tests: real capture paths and tshark as the reference.
#![allow(dead_code)]

use matador::analysis::model::DnsRecord;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Path of a capture in ../shared/captures/real.
pub fn real(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/captures/real")
        .join(name)
}

/// Runs tshark with `args` on `file`, one Vec of fields per output line.
pub fn tshark(file: &Path, args: &[&str]) -> Vec<Vec<String>> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("tshark is required for this test (apt-get install tshark): {e}")
        });
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// (frame, query, sorted A/AAAA answers of the answer section) of every DNS
/// response on port 53, per tshark. tshark lists the A/AAAA data of all
/// sections in order, so the answer section's are the first ones, as many
/// as there are A/AAAA types among the first `dns.count.answers` records.
pub fn tshark_dns(file: &Path) -> BTreeSet<(u64, String, Vec<String>)> {
    tshark(
        file,
        &[
            "-Y",
            "dns.flags.response==1 && (udp.port==53 || tcp.port==53) && !icmp && !icmpv6",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-e",
            "frame.number",
            "-e",
            "dns.qry.name",
            "-e",
            "dns.count.answers",
            "-e",
            "dns.resp.type",
            "-e",
            "dns.a",
            "-e",
            "dns.aaaa",
        ],
    )
    .into_iter()
    .map(|f| {
        let list = |i: usize| -> Vec<String> {
            f.get(i).map_or(vec![], |s| {
                s.split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            })
        };
        let n: usize = f[2].split(',').next().unwrap_or("0").parse().unwrap_or(0);
        let types = list(3);
        let n_a = types.iter().take(n).filter(|t| *t == "1").count();
        let n_aaaa = types.iter().take(n).filter(|t| *t == "28").count();
        let mut ans: Vec<String> = list(4).into_iter().take(n_a).collect();
        ans.extend(list(5).into_iter().take(n_aaaa));
        ans.sort();
        (
            f[0].parse().unwrap(),
            f[1].split(',').next().unwrap_or("").to_string(),
            ans,
        )
    })
    .collect()
}

/// The same view of our records (plain DNS responses only).
pub fn ours_dns(dns: &[DnsRecord]) -> BTreeSet<(u64, String, Vec<String>)> {
    dns.iter()
        .filter(|d| d.rcode.is_some() && (d.transport == "udp" || d.transport == "tcp"))
        .map(|d| {
            let mut ans: Vec<String> = d
                .answers
                .iter()
                .filter(|a| a.rtype == "A" || a.rtype == "AAAA")
                .map(|a| a.data.clone())
                .collect();
            ans.sort();
            (d.frame, d.query.clone(), ans)
        })
        .collect()
}

/// (frame, SNI) of every TLS/gQUIC ClientHello, per tshark.
pub fn tshark_sni(file: &Path) -> BTreeSet<(u64, String)> {
    tshark(
        file,
        &[
            "-Y",
            "(tls.handshake.type==1 || gquic.tag.sni) && !icmp && !icmpv6",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "tls.handshake.extensions_server_name",
            "-e",
            "gquic.tag.sni",
        ],
    )
    .into_iter()
    .map(|f| {
        (
            f[0].parse().unwrap(),
            format!("{}{}", f[1], f.get(2).map_or("", |s| s.as_str())),
        )
    })
    .collect()
}
