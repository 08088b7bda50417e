//! The set of IP addresses seen in stored captures, for tools that work on
//! addresses rather than flows (`matador geo diff` over a capture or a
//! campaign folder).

use crate::analysis::decode::decode;
use crate::capture::CaptureError;
use crate::capture::CaptureReader;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

/// Addresses found in one capture, with how far the reading got.
#[derive(Debug, Default)]
pub struct CaptureAddresses {
    /// Every source and destination address of an IP packet (canonical form:
    /// IPv4-mapped IPv6 addresses become IPv4).
    pub addresses: BTreeSet<IpAddr>,
    /// Frames read.
    pub frames: u64,
    /// The error that stopped the reading early, if any. Addresses read
    /// before it are kept: a truncated capture still tells what it saw.
    pub error: Option<CaptureError>,
}

/// Reads a capture file and collects the addresses of its IP packets.
///
/// An unreadable or unrecognised file is an error; damage later in the file
/// ends the reading and is reported in [`CaptureAddresses::error`].
pub fn capture_addresses(path: &Path) -> Result<CaptureAddresses, CaptureError> {
    let mut reader = CaptureReader::open(path)?;
    let mut out = CaptureAddresses::default();
    loop {
        match reader.next_frame() {
            Ok(Some(raw)) => {
                out.frames += 1;
                if let Some(ip) = decode(&raw).ip {
                    out.addresses.insert(ip.src.to_canonical());
                    out.addresses.insert(ip.dst.to_canonical());
                }
            }
            Ok(None) => break,
            Err(e) => {
                out.error = Some(e);
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A classic pcap (raw IPv4 link type) with the given IP packets.
    fn raw_ip_pcap(packets: &[Vec<u8>], truncate_last: bool) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let mut buf = Vec::new();
        buf.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        buf.extend_from_slice(&2u16.to_le_bytes());
        buf.extend_from_slice(&4u16.to_le_bytes());
        buf.extend_from_slice(&[0; 8]);
        buf.extend_from_slice(&65535u32.to_le_bytes());
        buf.extend_from_slice(&101u32.to_le_bytes()); // LINKTYPE_RAW
        for (i, p) in packets.iter().enumerate() {
            buf.extend_from_slice(&(i as u32 + 1).to_le_bytes());
            buf.extend_from_slice(&0u32.to_le_bytes());
            buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
            buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
            buf.extend_from_slice(p);
        }
        if truncate_last {
            buf.truncate(buf.len() - 5);
        }
        f.write_all(&buf).unwrap();
        f
    }

    fn udp(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ipv4(src, dst, 64).udp(1000, 53);
        let mut v = Vec::new();
        b.write(&mut v, b"x").unwrap();
        v
    }

    #[test]
    fn collects_both_ends_of_every_packet() {
        let f = raw_ip_pcap(
            &[
                udp([198, 18, 0, 1], [198, 19, 0, 2]),
                udp([198, 19, 0, 2], [198, 18, 0, 1]),
                udp([198, 18, 0, 3], [198, 19, 0, 2]),
            ],
            false,
        );
        let got = capture_addresses(f.path()).unwrap();
        assert_eq!(got.frames, 3);
        assert!(got.error.is_none());
        let want: BTreeSet<IpAddr> = ["198.18.0.1", "198.19.0.2", "198.18.0.3"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(got.addresses, want);
    }

    #[test]
    fn truncated_capture_keeps_what_was_read() {
        let f = raw_ip_pcap(
            &[
                udp([198, 18, 0, 1], [198, 19, 0, 2]),
                udp([198, 18, 0, 7], [198, 19, 0, 8]),
            ],
            true,
        );
        let got = capture_addresses(f.path()).unwrap();
        assert_eq!(got.frames, 1);
        assert!(got.error.is_some(), "the cut last record must be reported");
        assert_eq!(got.addresses.len(), 2);
    }

    #[test]
    fn non_capture_is_an_error() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"198.18.0.1\n").unwrap();
        assert!(capture_addresses(f.path()).is_err());
    }
}
