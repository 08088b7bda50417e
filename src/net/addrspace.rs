//! Address-space rules the product applies to test beds.
//!
//! A test bed (matador's virtual lab, or a real lab numbered the same way)
//! uses only networks that never hold a real server: IPv4 198.18.0.0/15,
//! reserved for benchmarking network devices (RFC 2544, section C.2.2;
//! RFC 6890 special-purpose registry), and IPv6 fd00::/8, the locally
//! assigned half of unique-local addresses (RFC 4193, section 3.1). Both are
//! bogons to the world (analysis/interference/data/bogons.txt), so whatever
//! analyses test-bed traffic must exempt them explicitly: the caller says
//! it is in a test bed (`--lab`, a scenario's `exempt_networks:`, a campaign
//! record holding the lab's topology), never a list of lab addresses kept in
//! product data.

use std::net::IpAddr;
use std::path::Path;

/// The test-bed networks: RFC 2544 benchmarking (IPv4) and RFC 4193 locally
/// assigned unique-local (IPv6).
pub const TESTBED_NETWORKS: [&str; 2] = ["198.18.0.0/15", "fd00::/8"];

/// [`TESTBED_NETWORKS`] parsed.
pub fn testbed_networks() -> Vec<ipnetwork::IpNetwork> {
    TESTBED_NETWORKS
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// Whether `ip` lies in a test-bed network ([`TESTBED_NETWORKS`]).
pub fn testbed_address(ip: IpAddr) -> bool {
    testbed_networks().iter().any(|n| n.contains(ip))
}

/// The exemption a campaign record declares: the test-bed networks when the
/// campaign ran in the virtual lab (its folder holds the lab's
/// `lab-topology.yaml`), plus the `exempt_networks` its recorded
/// `scenario.yaml` declares (a real lab in the benchmarking range), else
/// none.
pub fn recorded_exemption(campaign: &Path) -> Vec<ipnetwork::IpNetwork> {
    let mut out = if campaign.join("lab-topology.yaml").is_file() {
        testbed_networks()
    } else {
        Vec::new()
    };
    out.extend(scenario_exemption(campaign));
    out
}

/// `exempt_networks` of a campaign's recorded `scenario.yaml` (none when
/// the file or the key is absent; a campaign record's scenario was checked
/// when it ran).
fn scenario_exemption(campaign: &Path) -> Vec<ipnetwork::IpNetwork> {
    let Ok(text) = std::fs::read_to_string(campaign.join("scenario.yaml")) else {
        return Vec::new();
    };
    let Ok(v) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) else {
        return Vec::new();
    };
    v.get("exempt_networks")
        .and_then(|l| l.as_sequence())
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str()?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmarking_and_local_ula_only() {
        for a in ["198.18.0.1", "198.19.255.254", "fd00::1", "fd00:1ab::2"] {
            assert!(testbed_address(a.parse().unwrap()), "{a}");
        }
        // Neighbours of the ranges, the other ULA half, real addresses.
        for a in [
            "198.17.255.255",
            "198.20.0.0",
            "fc00::1",
            "8.8.8.8",
            "2001:db8::1",
        ] {
            assert!(!testbed_address(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn a_record_declares_its_exemption() {
        let d = tempfile::tempdir().unwrap();
        assert!(recorded_exemption(d.path()).is_empty());
        std::fs::write(
            d.path().join("scenario.yaml"),
            "exempt_networks: [\"10.9.0.0/16\"]\n",
        )
        .unwrap();
        assert_eq!(
            recorded_exemption(d.path()),
            vec!["10.9.0.0/16".parse::<ipnetwork::IpNetwork>().unwrap()]
        );
        std::fs::write(d.path().join("lab-topology.yaml"), "name: x\n").unwrap();
        let v = recorded_exemption(d.path());
        assert_eq!(v.len(), 3);
        assert_eq!(&v[..2], &testbed_networks()[..]);
    }
}
