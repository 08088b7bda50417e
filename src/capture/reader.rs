//! Streaming pcap / pcapng reader over `pcap-parser`'s record parsers.
//!
//! The reader owns a bounded buffer: it reads the file in large chunks, finds
//! the length of the next record from its header, makes sure the whole
//! record is buffered (growing the buffer only up to [`MAX_BLOCK`]) and hands
//! the exact record bytes to `pcap-parser`. Doing the framing here, rather
//! than through `pcap-parser`'s own reader loop, is what lets every error
//! name the byte offset and the frame number, and keeps memory independent
//! of the file size.

use super::{CaptureError, LinkType, Timestamp};
use pcap_parser::pcapng::{
    CB_MAGIC, DCB_MAGIC, EPB_MAGIC, IDB_MAGIC, SHB_MAGIC, SJE_MAGIC, SPB_MAGIC,
    parse_enhancedpacketblock_be, parse_enhancedpacketblock_le, parse_interfacedescriptionblock_be,
    parse_interfacedescriptionblock_le, parse_sectionheaderblock, parse_simplepacketblock_be,
    parse_simplepacketblock_le,
};
use pcap_parser::{parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Initial buffer size; records are read in chunks of about this size.
const INITIAL_BUFFER: usize = 1 << 20;
/// Largest pcapng block accepted (Wireshark's limit too); larger means corrupt.
const MAX_BLOCK: usize = 16 << 20;
/// Largest classic-pcap record accepted (libpcap's maximum snap length).
const MAX_PCAP_CAPLEN: u32 = 262_144;
/// Obsolete pcapng Packet Block.
const OPB_MAGIC: u32 = 0x0000_0002;

/// Container format of a capture file, detected by magic number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Classic libpcap format (either byte order, µs or ns timestamps).
    Pcap,
    /// pcapng.
    PcapNg,
}

impl CaptureFormat {
    /// `"pcap"` or `"pcapng"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureFormat::Pcap => "pcap",
            CaptureFormat::PcapNg => "pcapng",
        }
    }
}

/// True when the first four bytes of a file are a pcap or pcapng magic number.
pub fn is_capture_magic(first: [u8; 4]) -> bool {
    matches!(
        u32::from_le_bytes(first),
        0xa1b2_c3d4
            | 0xd4c3_b2a1
            | 0xa1b2_3c4d
            | 0x4d3c_b2a1
            | 0xa1b2_cd34
            | 0x34cd_b2a1
            | SHB_MAGIC
    )
}

/// One capture interface: the pcap file header, or a pcapng IDB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// pcapng section (0-based; always 0 for pcap).
    pub section: u32,
    /// Interface index within its section.
    pub index: u32,
    /// Link type of its frames.
    pub link_type: LinkType,
    /// Snap length (0 = not limited).
    pub snaplen: u32,
    /// Timestamp resolution byte (`if_tsresol`: 6 = µs, 9 = ns, 0x80|n = 2^-n s).
    pub tsresol: u8,
    /// Seconds added to every timestamp (`if_tsoffset`).
    pub tsoffset: i64,
}

/// One captured frame, borrowing the reader's buffer until the next call.
#[derive(Debug, Clone, Copy)]
pub struct RawFrame<'a> {
    /// 1-based frame number within the file, as Wireshark numbers them.
    pub frame: u64,
    /// Capture timestamp.
    pub ts: Timestamp,
    /// Link type of `data`.
    pub link_type: LinkType,
    /// Interface index (within its pcapng section; 0 for pcap).
    pub interface: u32,
    /// Bytes captured.
    pub cap_len: u32,
    /// Length on the wire.
    pub orig_len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Pcap {
        big_endian: bool,
        nanos: bool,
        modified: bool,
    },
    PcapNg {
        big_endian: bool,
    },
}

/// Where the frame to yield sits in the buffer, found before borrowing it.
struct Found {
    start: usize,
    len: usize,
    ts: Timestamp,
    link_type: LinkType,
    interface: u32,
    orig_len: u32,
}

/// Streaming reader of one capture file. Call [`CaptureReader::next_frame`]
/// until it returns `Ok(None)` (end of file) or an error (after which it
/// returns `Ok(None)`).
pub struct CaptureReader<R: Read> {
    file: String,
    src: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
    done: bool,
    kind: Kind,
    frames: u64,
    section: u32,
    /// Interfaces of the current pcapng section (or the one pcap interface).
    current: Vec<InterfaceInfo>,
    /// Every interface seen in the file.
    all: Vec<InterfaceInfo>,
    last_ts: Timestamp,
}

impl CaptureReader<File> {
    /// Opens a file and reads its header.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let name = path.display().to_string();
        let f = File::open(path).map_err(|source| CaptureError::Open {
            file: name.clone(),
            source,
        })?;
        CaptureReader::new(f, name)
    }
}

impl<R: Read> CaptureReader<R> {
    /// Wraps any byte source; `file` names it in errors.
    pub fn new(src: R, file: impl Into<String>) -> Result<Self, CaptureError> {
        let mut r = CaptureReader {
            file: file.into(),
            src,
            buf: vec![0; INITIAL_BUFFER],
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            done: false,
            kind: Kind::PcapNg { big_endian: false },
            frames: 0,
            section: 0,
            current: Vec::new(),
            all: Vec::new(),
            last_ts: Timestamp::default(),
        };
        r.read_header()?;
        Ok(r)
    }

    /// The container format.
    pub fn format(&self) -> CaptureFormat {
        match self.kind {
            Kind::Pcap { .. } => CaptureFormat::Pcap,
            Kind::PcapNg { .. } => CaptureFormat::PcapNg,
        }
    }

    /// Every interface declared so far (all sections), with its snap length.
    pub fn interfaces(&self) -> &[InterfaceInfo] {
        &self.all
    }

    /// Frame numbers used so far (packets yielded plus the custom blocks
    /// Wireshark also numbers).
    pub fn frames_read(&self) -> u64 {
        self.frames
    }

    /// Byte offset of the next unread record.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// The file name used in errors.
    pub fn file(&self) -> &str {
        &self.file
    }

    fn corrupt(&self, offset: u64, reason: impl Into<String>) -> CaptureError {
        CaptureError::Corrupt {
            file: self.file.clone(),
            offset,
            frame: self.frames + 1,
            reason: reason.into(),
        }
    }

    /// Makes at least `need` bytes available from `pos`; false at end of file.
    fn fill(&mut self, need: usize) -> Result<bool, CaptureError> {
        if self.end - self.pos >= need {
            return Ok(true);
        }
        if need > self.buf.len() {
            // Only records up to MAX_BLOCK get here (callers check lengths).
            let mut grown = vec![0; need.next_power_of_two()];
            grown[..self.end - self.pos].copy_from_slice(&self.buf[self.pos..self.end]);
            self.buf = grown;
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        } else if self.pos + need > self.buf.len() {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        while self.end - self.pos < need {
            if self.eof {
                return Ok(false);
            }
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CaptureError::Io {
                        file: self.file.clone(),
                        offset: self.base + self.end as u64,
                        frame: self.frames + 1,
                        source,
                    });
                }
            }
        }
        Ok(true)
    }

    fn truncated(&self, needed: usize) -> CaptureError {
        CaptureError::Truncated {
            file: self.file.clone(),
            offset: self.offset(),
            frame: self.frames + 1,
            needed: needed as u64,
            available: (self.end - self.pos) as u64,
        }
    }

    fn read_header(&mut self) -> Result<(), CaptureError> {
        self.fill(4)?;
        let avail = self.end - self.pos;
        if avail < 4 {
            return Err(CaptureError::NotACapture {
                file: self.file.clone(),
                magic: hex(&self.buf[..avail]),
            });
        }
        let magic = u32::from_le_bytes(self.buf[0..4].try_into().unwrap_or_default());
        let (big_endian, nanos, modified) = match magic {
            0xa1b2_c3d4 => (false, false, false),
            0xd4c3_b2a1 => (true, false, false),
            0xa1b2_3c4d => (false, true, false),
            0x4d3c_b2a1 => (true, true, false),
            0xa1b2_cd34 => (false, false, true),
            0x34cd_b2a1 => (true, false, true),
            SHB_MAGIC => {
                // The SHB is parsed as the first block by next_frame.
                self.kind = Kind::PcapNg { big_endian: false };
                return Ok(());
            }
            _ => {
                return Err(CaptureError::NotACapture {
                    file: self.file.clone(),
                    magic: hex(&self.buf[..4]),
                });
            }
        };
        if !self.fill(24)? {
            return Err(self.truncated(24));
        }
        let h = &self.buf[self.pos..self.pos + 24];
        let rd = |o: usize| read_u32(&h[o..o + 4], big_endian);
        let major = if big_endian {
            u16::from_be_bytes([h[4], h[5]])
        } else {
            u16::from_le_bytes([h[4], h[5]])
        };
        if major != 2 {
            return Err(self.corrupt(4, format!("unsupported pcap version {major}")));
        }
        let snaplen = rd(16);
        // The upper bits of the link-type field carry FCS information.
        let link_type = LinkType((rd(20) & 0xffff) as u16);
        let info = InterfaceInfo {
            section: 0,
            index: 0,
            link_type,
            snaplen,
            tsresol: if nanos { 9 } else { 6 },
            tsoffset: 0,
        };
        self.current.push(info.clone());
        self.all.push(info);
        self.kind = Kind::Pcap {
            big_endian,
            nanos,
            modified,
        };
        self.pos += 24;
        Ok(())
    }

    /// The next frame, `Ok(None)` at the end of the file. After an error
    /// every further call returns `Ok(None)`.
    pub fn next_frame(&mut self) -> Result<Option<RawFrame<'_>>, CaptureError> {
        if self.done {
            return Ok(None);
        }
        let found = match self.kind {
            Kind::Pcap {
                big_endian,
                nanos,
                modified,
            } => self.next_pcap(big_endian, nanos, modified),
            Kind::PcapNg { .. } => self.next_pcapng(),
        };
        let found = match found {
            Ok(Some(f)) => f,
            Ok(None) => {
                self.done = true;
                return Ok(None);
            }
            Err(e) => {
                self.done = true;
                return Err(e);
            }
        };
        self.frames += 1;
        self.last_ts = found.ts;
        let data = &self.buf[found.start..found.start + found.len];
        Ok(Some(RawFrame {
            frame: self.frames,
            ts: found.ts,
            link_type: found.link_type,
            interface: found.interface,
            cap_len: found.len as u32,
            orig_len: found.orig_len,
            data,
        }))
    }

    fn next_pcap(
        &mut self,
        big_endian: bool,
        nanos: bool,
        modified: bool,
    ) -> Result<Option<Found>, CaptureError> {
        let hdr = if modified { 24 } else { 16 };
        if !self.fill(hdr)? {
            if self.end == self.pos {
                return Ok(None);
            }
            return Err(self.truncated(hdr));
        }
        let offset = self.offset();
        let caplen = read_u32(&self.buf[self.pos + 8..self.pos + 12], big_endian);
        if caplen > MAX_PCAP_CAPLEN {
            return Err(self.corrupt(
                offset,
                format!(
                    "record claims {caplen} captured bytes, more than the maximum {MAX_PCAP_CAPLEN}"
                ),
            ));
        }
        let total = hdr + caplen as usize;
        if !self.fill(total)? {
            return Err(self.truncated(total));
        }
        let rec = &self.buf[self.pos..self.pos + total];
        let parsed = if modified {
            parse_pcap_frame_modified(rec)
        } else if big_endian {
            parse_pcap_frame_be(rec)
        } else {
            parse_pcap_frame(rec)
        };
        let (ts_sec, ts_frac, orig_len) = match parsed {
            Ok((_, b)) => (b.ts_sec, b.ts_usec, b.origlen),
            Err(e) => return Err(self.corrupt(offset, format!("bad record header: {e:?}"))),
        };
        let ts = if nanos {
            Timestamp::new(i64::from(ts_sec), u64::from(ts_frac), 9)
        } else {
            Timestamp::new(i64::from(ts_sec), u64::from(ts_frac) * 1000, 6)
        };
        let start = self.pos + hdr;
        self.pos += total;
        Ok(Some(Found {
            start,
            len: caplen as usize,
            ts,
            link_type: self.current[0].link_type,
            interface: 0,
            orig_len,
        }))
    }

    fn next_pcapng(&mut self) -> Result<Option<Found>, CaptureError> {
        loop {
            if !self.fill(12)? {
                if self.end == self.pos {
                    return Ok(None);
                }
                return Err(self.truncated(12));
            }
            let offset = self.offset();
            let p = self.pos;
            let mut big_endian = match self.kind {
                Kind::PcapNg { big_endian } => big_endian,
                Kind::Pcap { .. } => false,
            };
            let raw_type = u32::from_le_bytes(self.buf[p..p + 4].try_into().unwrap_or_default());
            if raw_type == SHB_MAGIC {
                // A new section may switch byte order: its BOM decides.
                big_endian = match &self.buf[p + 8..p + 12] {
                    [0x4d, 0x3c, 0x2b, 0x1a] => false,
                    [0x1a, 0x2b, 0x3c, 0x4d] => true,
                    other => {
                        return Err(
                            self.corrupt(offset, format!("bad byte-order magic {}", hex(other)))
                        );
                    }
                };
            }
            let btype = read_u32(&self.buf[p..p + 4], big_endian);
            let blen = read_u32(&self.buf[p + 4..p + 8], big_endian) as usize;
            if blen < 12 || !blen.is_multiple_of(4) || blen > MAX_BLOCK {
                return Err(self.corrupt(
                    offset,
                    format!("block type {btype:#x} has invalid length {blen}"),
                ));
            }
            if !self.fill(blen)? {
                return Err(self.truncated(blen));
            }
            let p = self.pos;
            let block_end = p + blen;
            let trailer = read_u32(&self.buf[block_end - 4..block_end], big_endian) as usize;
            if trailer != blen {
                return Err(self.corrupt(
                    offset,
                    format!("block length {blen} does not match trailing length {trailer}"),
                ));
            }
            self.pos = block_end;
            match btype {
                SHB_MAGIC => {
                    if let Err(e) = parse_sectionheaderblock(&self.buf[p..block_end]) {
                        return Err(self.corrupt(offset, format!("bad section header: {e:?}")));
                    }
                    if offset > 0 {
                        self.section += 1;
                    }
                    self.current.clear();
                    self.kind = Kind::PcapNg { big_endian };
                }
                IDB_MAGIC => {
                    let parsed = if big_endian {
                        parse_interfacedescriptionblock_be(&self.buf[p..block_end])
                    } else {
                        parse_interfacedescriptionblock_le(&self.buf[p..block_end])
                    };
                    let idb = match parsed {
                        Ok((_, idb)) => idb,
                        Err(e) => {
                            return Err(
                                self.corrupt(offset, format!("bad interface description: {e:?}"))
                            );
                        }
                    };
                    if pcap_parser::build_ts_resolution(idb.if_tsresol).is_none() {
                        return Err(self.corrupt(
                            offset,
                            format!("invalid timestamp resolution {:#x}", idb.if_tsresol),
                        ));
                    }
                    let info = InterfaceInfo {
                        section: self.section,
                        index: self.current.len() as u32,
                        link_type: LinkType((idb.linktype.0 & 0xffff) as u16),
                        snaplen: idb.snaplen,
                        tsresol: idb.if_tsresol,
                        tsoffset: idb.if_tsoffset,
                    };
                    self.current.push(info.clone());
                    self.all.push(info);
                }
                EPB_MAGIC => {
                    let parsed = if big_endian {
                        parse_enhancedpacketblock_be(&self.buf[p..block_end])
                    } else {
                        parse_enhancedpacketblock_le(&self.buf[p..block_end])
                    };
                    let (if_id, ticks, caplen, orig_len) = match parsed {
                        Ok((_, b)) => (
                            b.if_id,
                            (u64::from(b.ts_high) << 32) | u64::from(b.ts_low),
                            b.caplen as usize,
                            b.origlen,
                        ),
                        Err(e) => {
                            return Err(
                                self.corrupt(offset, format!("bad enhanced packet block: {e:?}"))
                            );
                        }
                    };
                    // Packet data starts 28 bytes into the block; pcap-parser
                    // checked that `caplen` (padded) fits inside it.
                    return self.packet(offset, if_id, Some(ticks), p + 28, caplen, orig_len);
                }
                SPB_MAGIC => {
                    let parsed = if big_endian {
                        parse_simplepacketblock_be(&self.buf[p..block_end])
                    } else {
                        parse_simplepacketblock_le(&self.buf[p..block_end])
                    };
                    let (orig_len, data_len) = match parsed {
                        Ok((_, b)) => (b.origlen, b.data.len()),
                        Err(e) => {
                            return Err(
                                self.corrupt(offset, format!("bad simple packet block: {e:?}"))
                            );
                        }
                    };
                    let snap = self.current.first().map(|i| i.snaplen).unwrap_or(0);
                    let mut caplen = (orig_len as usize).min(data_len);
                    if snap > 0 {
                        caplen = caplen.min(snap as usize);
                    }
                    return self.packet(offset, 0, None, p + 12, caplen, orig_len);
                }
                OPB_MAGIC => {
                    // Obsolete Packet Block: u16 interface, u16 drops, ts, caplen, len.
                    if blen < 32 {
                        return Err(self.corrupt(offset, "packet block too short"));
                    }
                    let b = &self.buf[p..block_end];
                    let if_id = if big_endian {
                        u16::from_be_bytes([b[8], b[9]])
                    } else {
                        u16::from_le_bytes([b[8], b[9]])
                    };
                    let ticks = (u64::from(read_u32(&b[12..16], big_endian)) << 32)
                        | u64::from(read_u32(&b[16..20], big_endian));
                    let caplen = read_u32(&b[20..24], big_endian) as usize;
                    let orig_len = read_u32(&b[24..28], big_endian);
                    if caplen > blen - 32 {
                        return Err(self.corrupt(
                            offset,
                            format!("captured length {caplen} exceeds the block"),
                        ));
                    }
                    return self.packet(
                        offset,
                        u32::from(if_id),
                        Some(ticks),
                        p + 28,
                        caplen,
                        orig_len,
                    );
                }
                // Wireshark turns custom and systemd-journal blocks into
                // records of their own and numbers them as frames: count
                // them too, so frame numbers match Wireshark's.
                CB_MAGIC | DCB_MAGIC | SJE_MAGIC => self.frames += 1,
                // NRB, ISB, DSB, … are metadata, not frames.
                _ => {}
            }
        }
    }

    fn packet(
        &self,
        offset: u64,
        if_id: u32,
        ticks: Option<u64>,
        start: usize,
        caplen: usize,
        orig_len: u32,
    ) -> Result<Option<Found>, CaptureError> {
        let Some(iface) = self.current.get(if_id as usize) else {
            return Err(self.corrupt(
                offset,
                format!(
                    "packet refers to interface {if_id} but the section declares {}",
                    self.current.len()
                ),
            ));
        };
        let ts = match ticks {
            Some(t) => pcapng_ts(t, iface.tsresol, iface.tsoffset),
            // Simple Packet Blocks carry no timestamp: keep the previous one.
            None => self.last_ts,
        };
        Ok(Some(Found {
            start,
            len: caplen,
            ts,
            link_type: iface.link_type,
            interface: if_id,
            orig_len,
        }))
    }
}

/// Converts a pcapng tick count to a timestamp, keeping the resolution's digits.
fn pcapng_ts(ticks: u64, tsresol: u8, tsoffset: i64) -> Timestamp {
    if tsresol & 0x80 == 0 {
        let p = u32::from(tsresol.min(19));
        let units = 10u64.pow(p);
        let secs = ticks / units;
        let frac = ticks % units;
        let nanos = if p <= 9 {
            frac * 10u64.pow(9 - p)
        } else {
            frac / 10u64.pow(p - 9)
        };
        Timestamp::new(
            (secs as i64).saturating_add(tsoffset),
            nanos,
            p.min(9) as u8,
        )
    } else {
        let k = u32::from(tsresol & 0x7f).min(63);
        let secs = ticks >> k;
        let frac = ticks & ((1u64 << k) - 1);
        let nanos = ((u128::from(frac) * 1_000_000_000) >> k) as u64;
        // Decimal digits needed to show one tick: ceil(k · log10 2).
        let digits = ((f64::from(k) * std::f64::consts::LOG10_2).ceil() as u8).min(9);
        Timestamp::new((secs as i64).saturating_add(tsoffset), nanos, digits)
    }
}

fn read_u32(b: &[u8], big_endian: bool) -> u32 {
    let a: [u8; 4] = b[..4].try_into().unwrap_or_default();
    if big_endian {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcapng_resolutions() {
        assert_eq!(pcapng_ts(1_500_000, 6, 0).to_string(), "1.500000");
        assert_eq!(pcapng_ts(1_000_000_007, 9, 0).to_string(), "1.000000007");
        assert_eq!(pcapng_ts(12_345, 3, 10).to_string(), "22.345");
        // 2^-10 s ticks: 1024 ticks = 1 s, 512 = 0.5 s.
        assert_eq!(pcapng_ts(1536, 0x8a, 0).to_string(), "1.5000");
        assert_eq!(pcapng_ts(5, 0, 0).to_string(), "5");
    }

    #[test]
    fn rejects_garbage() {
        let e = CaptureReader::new(&b"hello world, not a capture"[..], "x").err();
        assert!(matches!(e, Some(CaptureError::NotACapture { .. })), "{e:?}");
        let e = CaptureReader::new(&b"ab"[..], "x").err();
        assert!(matches!(e, Some(CaptureError::NotACapture { .. })), "{e:?}");
    }

    fn pcap_bytes(be: bool, nanos: bool, frames: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let w32 = |v: &mut Vec<u8>, x: u32| {
            v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() })
        };
        let mut v = Vec::new();
        w32(&mut v, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
        let (maj, min) = (2u16, 4u16);
        v.extend_from_slice(&if be {
            maj.to_be_bytes()
        } else {
            maj.to_le_bytes()
        });
        v.extend_from_slice(&if be {
            min.to_be_bytes()
        } else {
            min.to_le_bytes()
        });
        w32(&mut v, 0);
        w32(&mut v, 0);
        w32(&mut v, 65535);
        w32(&mut v, 101);
        for (s, f, d) in frames {
            w32(&mut v, *s);
            w32(&mut v, *f);
            w32(&mut v, d.len() as u32);
            w32(&mut v, d.len() as u32 + 4);
            v.extend_from_slice(d);
        }
        v
    }

    #[test]
    fn pcap_both_orders_and_precisions() {
        for be in [false, true] {
            for nanos in [false, true] {
                let bytes = pcap_bytes(be, nanos, &[(10, 5, b"abc"), (11, 7, b"defg")]);
                let mut r = CaptureReader::new(&bytes[..], "t").unwrap();
                assert_eq!(r.format(), CaptureFormat::Pcap);
                let f = r.next_frame().unwrap().unwrap();
                assert_eq!((f.frame, f.data, f.orig_len), (1, &b"abc"[..], 7));
                assert_eq!(f.link_type, LinkType::RAW);
                let want = if nanos { "10.000000005" } else { "10.000005" };
                assert_eq!(f.ts.to_string(), want);
                let f = r.next_frame().unwrap().unwrap();
                assert_eq!((f.frame, f.data), (2, &b"defg"[..]));
                assert!(r.next_frame().unwrap().is_none());
            }
        }
    }

    #[test]
    fn truncated_pcap_names_offset_and_frame() {
        let bytes = pcap_bytes(false, false, &[(1, 0, b"abcd"), (2, 0, b"efgh")]);
        let cut = &bytes[..bytes.len() - 2];
        let mut r = CaptureReader::new(cut, "cut.pcap").unwrap();
        assert!(r.next_frame().unwrap().is_some());
        match r.next_frame() {
            Err(CaptureError::Truncated {
                offset,
                frame,
                needed,
                available,
                ..
            }) => {
                assert_eq!((offset, frame, needed, available), (44, 2, 20, 18));
            }
            other => panic!("{other:?}"),
        }
        assert!(r.next_frame().unwrap().is_none());
    }

    #[test]
    fn oversized_record_is_corrupt() {
        let mut bytes = pcap_bytes(false, false, &[(1, 0, b"abcd")]);
        bytes[24 + 8..24 + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        let mut r = CaptureReader::new(&bytes[..], "big.pcap").unwrap();
        let e = r.next_frame().unwrap_err();
        assert_eq!((e.offset(), e.frame()), (Some(24), Some(1)));
    }
}
