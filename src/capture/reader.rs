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

/// A pcapng block whose framing (length, trailer, byte order) was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    /// File offset of the block.
    offset: u64,
    /// Block type.
    btype: u32,
    /// Where the block starts in the reader's buffer.
    start: usize,
    /// Total block length (header and trailer included).
    len: usize,
    /// Byte order of the block's section.
    big_endian: bool,
}

impl Block {
    /// Index just past the block in the reader's buffer.
    fn end(&self) -> usize {
        self.start + self.len
    }
}

/// Streaming reader of one capture file. Call [`CaptureReader::next_frame`]
/// until it returns `Ok(None)` (end of file) or an error (after which it
/// returns `Ok(None)`).
pub struct CaptureReader<R: Read> {
    file: String,
    src: R,
    buf: Vec<u8>,
    /// Next unread byte in `buf`.
    pos: usize,
    /// End of the valid bytes in `buf`.
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

    /// The next packet of a pcapng file, handling the metadata blocks
    /// before it on the way.
    fn next_pcapng(&mut self) -> Result<Option<Found>, CaptureError> {
        while let Some(b) = self.next_block()? {
            self.pos = b.end();
            if let Some(found) = self.pcapng_block(b)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Frames the next pcapng block: its byte order (a Section Header Block
    /// declares a new one), length and trailer checked, all of it in view.
    /// `Ok(None)` at a clean end of file.
    fn next_block(&mut self) -> Result<Option<Block>, CaptureError> {
        if !self.fill(12)? {
            if self.end == self.pos {
                return Ok(None);
            }
            return Err(self.truncated(12));
        }
        let offset = self.offset();
        let current = match self.kind {
            Kind::PcapNg { big_endian } => big_endian,
            Kind::Pcap { .. } => false,
        };
        let head = &self.buf[self.pos..self.pos + 12];
        let (btype, len, big_endian) =
            block_header(head, current).map_err(|reason| self.corrupt(offset, reason))?;
        if !self.fill(len)? {
            return Err(self.truncated(len));
        }
        let start = self.pos;
        let trailer = read_u32(&self.buf[start + len - 4..start + len], big_endian) as usize;
        if trailer != len {
            return Err(self.corrupt(
                offset,
                format!("block length {len} does not match trailing length {trailer}"),
            ));
        }
        Ok(Some(Block {
            offset,
            btype,
            start,
            len,
            big_endian,
        }))
    }

    /// Handles one framed pcapng block: a packet to yield, or metadata.
    fn pcapng_block(&mut self, b: Block) -> Result<Option<Found>, CaptureError> {
        match b.btype {
            SHB_MAGIC => self.section_header(b)?,
            IDB_MAGIC => self.interface_description(b)?,
            EPB_MAGIC => return self.enhanced_packet(b).map(Some),
            SPB_MAGIC => return self.simple_packet(b).map(Some),
            OPB_MAGIC => return self.obsolete_packet(b).map(Some),
            // Wireshark turns custom and systemd-journal blocks into
            // records of their own and numbers them as frames: count
            // them too, so frame numbers match Wireshark's.
            CB_MAGIC | DCB_MAGIC | SJE_MAGIC => self.frames += 1,
            // NRB, ISB, DSB, … are metadata, not frames.
            _ => {}
        }
        Ok(None)
    }

    /// The bytes of a framed block.
    fn block_bytes(&self, b: Block) -> &[u8] {
        &self.buf[b.start..b.end()]
    }

    /// A Section Header Block: a new section, its interfaces to come.
    fn section_header(&mut self, b: Block) -> Result<(), CaptureError> {
        if let Err(e) = parse_sectionheaderblock(self.block_bytes(b)) {
            return Err(self.corrupt(b.offset, format!("bad section header: {e:?}")));
        }
        if b.offset > 0 {
            self.section += 1;
        }
        self.current.clear();
        self.kind = Kind::PcapNg {
            big_endian: b.big_endian,
        };
        Ok(())
    }

    /// An Interface Description Block: the next interface of the section.
    fn interface_description(&mut self, b: Block) -> Result<(), CaptureError> {
        let parsed = if b.big_endian {
            parse_interfacedescriptionblock_be(self.block_bytes(b))
        } else {
            parse_interfacedescriptionblock_le(self.block_bytes(b))
        };
        let idb = match parsed {
            Ok((_, idb)) => idb,
            Err(e) => {
                return Err(self.corrupt(b.offset, format!("bad interface description: {e:?}")));
            }
        };
        if pcap_parser::build_ts_resolution(idb.if_tsresol).is_none() {
            return Err(self.corrupt(
                b.offset,
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
        Ok(())
    }

    /// An Enhanced Packet Block.
    fn enhanced_packet(&self, b: Block) -> Result<Found, CaptureError> {
        let parsed = if b.big_endian {
            parse_enhancedpacketblock_be(self.block_bytes(b))
        } else {
            parse_enhancedpacketblock_le(self.block_bytes(b))
        };
        let (if_id, ticks, caplen, orig_len) = match parsed {
            Ok((_, p)) => (
                p.if_id,
                (u64::from(p.ts_high) << 32) | u64::from(p.ts_low),
                p.caplen as usize,
                p.origlen,
            ),
            Err(e) => {
                return Err(self.corrupt(b.offset, format!("bad enhanced packet block: {e:?}")));
            }
        };
        // Packet data starts 28 bytes into the block; pcap-parser
        // checked that `caplen` (padded) fits inside it.
        self.packet(b.offset, if_id, Some(ticks), b.start + 28, caplen, orig_len)
    }

    /// A Simple Packet Block (no interface number, no timestamp).
    fn simple_packet(&self, b: Block) -> Result<Found, CaptureError> {
        let parsed = if b.big_endian {
            parse_simplepacketblock_be(self.block_bytes(b))
        } else {
            parse_simplepacketblock_le(self.block_bytes(b))
        };
        let (orig_len, data_len) = match parsed {
            Ok((_, p)) => (p.origlen, p.data.len()),
            Err(e) => {
                return Err(self.corrupt(b.offset, format!("bad simple packet block: {e:?}")));
            }
        };
        let snap = self.current.first().map(|i| i.snaplen).unwrap_or(0);
        let caplen = simple_packet_caplen(orig_len, data_len, snap);
        self.packet(b.offset, 0, None, b.start + 12, caplen, orig_len)
    }

    /// An obsolete Packet Block.
    fn obsolete_packet(&self, b: Block) -> Result<Found, CaptureError> {
        let (if_id, ticks, caplen, orig_len) =
            obsolete_packet_fields(self.block_bytes(b), b.big_endian)
                .map_err(|reason| self.corrupt(b.offset, reason))?;
        self.packet(b.offset, if_id, Some(ticks), b.start + 28, caplen, orig_len)
    }

    fn packet(
        &self,
        offset: u64,
        if_id: u32,
        ticks: Option<u64>,
        start: usize,
        caplen: usize,
        orig_len: u32,
    ) -> Result<Found, CaptureError> {
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
        Ok(Found {
            start,
            len: caplen,
            ts,
            link_type: iface.link_type,
            interface: if_id,
            orig_len,
        })
    }
}

/// Reads a pcapng block's first 12 bytes: its type, total length and byte
/// order. `current` is the byte order of the section being read; a Section
/// Header Block brings its own (its byte-order magic decides). The length
/// must be a multiple of 4, hold the 12 bytes of framing and stay within
/// [`MAX_BLOCK`].
fn block_header(head: &[u8], current: bool) -> Result<(u32, usize, bool), String> {
    let mut big_endian = current;
    if u32::from_le_bytes(head[0..4].try_into().unwrap_or_default()) == SHB_MAGIC {
        big_endian = match &head[8..12] {
            [0x4d, 0x3c, 0x2b, 0x1a] => false,
            [0x1a, 0x2b, 0x3c, 0x4d] => true,
            other => return Err(format!("bad byte-order magic {}", hex(other))),
        };
    }
    let btype = read_u32(&head[0..4], big_endian);
    let len = read_u32(&head[4..8], big_endian) as usize;
    if len < 12 || !len.is_multiple_of(4) || len > MAX_BLOCK {
        return Err(format!("block type {btype:#x} has invalid length {len}"));
    }
    Ok((btype, len, big_endian))
}

/// Bytes captured in a Simple Packet Block: the original length, cut to the
/// data present and to the first interface's snap length (0 = none).
fn simple_packet_caplen(orig_len: u32, data_len: usize, snap: u32) -> usize {
    let caplen = (orig_len as usize).min(data_len);
    if snap > 0 {
        caplen.min(snap as usize)
    } else {
        caplen
    }
}

/// The fields of an obsolete Packet Block (`b`: the whole block): interface
/// (a u16 there), timestamp ticks, captured and original lengths.
fn obsolete_packet_fields(b: &[u8], big_endian: bool) -> Result<(u32, u64, usize, u32), String> {
    if b.len() < 32 {
        return Err("packet block too short".to_string());
    }
    let if_id = if big_endian {
        u16::from_be_bytes([b[8], b[9]])
    } else {
        u16::from_le_bytes([b[8], b[9]])
    };
    let ticks = (u64::from(read_u32(&b[12..16], big_endian)) << 32)
        | u64::from(read_u32(&b[16..20], big_endian));
    let caplen = read_u32(&b[20..24], big_endian) as usize;
    let orig_len = read_u32(&b[24..28], big_endian);
    if caplen > b.len() - 32 {
        return Err(format!("captured length {caplen} exceeds the block"));
    }
    Ok((u32::from(if_id), ticks, caplen, orig_len))
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

    /// A pcapng block: type, body (padded to 4 bytes here), both lengths.
    fn block(be: bool, btype: u32, body: &[u8]) -> Vec<u8> {
        let w32 = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
        let mut body = body.to_vec();
        body.resize(body.len().next_multiple_of(4), 0);
        let len = body.len() as u32 + 12;
        let mut v = Vec::new();
        v.extend_from_slice(&w32(btype));
        v.extend_from_slice(&w32(len));
        v.extend_from_slice(&body);
        v.extend_from_slice(&w32(len));
        v
    }

    /// Concatenates `u32` fields in the given byte order.
    fn fields(be: bool, xs: &[u32]) -> Vec<u8> {
        xs.iter()
            .flat_map(|x| if be { x.to_be_bytes() } else { x.to_le_bytes() })
            .collect()
    }

    fn shb(be: bool) -> Vec<u8> {
        let mut body = fields(be, &[0x1a2b_3c4d]);
        let version: [u16; 2] = [1, 0];
        for x in version {
            body.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
        }
        body.extend_from_slice(&[0xff; 8]); // section length: unknown
        block(be, SHB_MAGIC, &body)
    }

    fn idb(be: bool, link: u16, snaplen: u32) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&if be {
            link.to_be_bytes()
        } else {
            link.to_le_bytes()
        });
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&fields(be, &[snaplen]));
        block(be, IDB_MAGIC, &body)
    }

    fn epb(be: bool, if_id: u32, ticks: u64, data: &[u8]) -> Vec<u8> {
        let n = data.len() as u32;
        let mut body = fields(be, &[if_id, (ticks >> 32) as u32, ticks as u32, n, n + 10]);
        body.extend_from_slice(data);
        block(be, EPB_MAGIC, &body)
    }

    fn spb(be: bool, orig_len: u32, data: &[u8]) -> Vec<u8> {
        let mut body = fields(be, &[orig_len]);
        body.extend_from_slice(data);
        block(be, SPB_MAGIC, &body)
    }

    fn opb(be: bool, if_id: u16, ticks: u64, data: &[u8]) -> Vec<u8> {
        let n = data.len() as u32;
        let mut body = Vec::new();
        body.extend_from_slice(&if be {
            if_id.to_be_bytes()
        } else {
            if_id.to_le_bytes()
        });
        body.extend_from_slice(&[0, 0]); // drops
        body.extend_from_slice(&fields(be, &[(ticks >> 32) as u32, ticks as u32, n, n]));
        body.extend_from_slice(data);
        block(be, OPB_MAGIC, &body)
    }

    #[test]
    fn block_header_reads_order_type_and_length() {
        let le = shb(false);
        assert_eq!(block_header(&le[..12], true), Ok((SHB_MAGIC, 28, false)));
        let be = shb(true);
        assert_eq!(block_header(&be[..12], false), Ok((SHB_MAGIC, 28, true)));
        // Other blocks keep the section's order.
        let e = epb(true, 0, 0, b"abcd");
        assert_eq!(block_header(&e[..12], true), Ok((EPB_MAGIC, 36, true)));
        let mut bad = le.clone();
        bad[8..12].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(
            block_header(&bad[..12], false).unwrap_err(),
            "bad byte-order magic 01020304"
        );
        for len in [8u32, 30, (MAX_BLOCK + 4) as u32] {
            let mut h = e[..12].to_vec();
            h[4..8].copy_from_slice(&len.to_be_bytes());
            let err = block_header(&h, true).unwrap_err();
            assert_eq!(err, format!("block type 0x6 has invalid length {len}"));
        }
    }

    #[test]
    fn simple_packet_caplen_is_cut_to_data_and_snap() {
        assert_eq!(simple_packet_caplen(100, 60, 0), 60);
        assert_eq!(simple_packet_caplen(50, 60, 0), 50);
        assert_eq!(simple_packet_caplen(100, 60, 40), 40);
        assert_eq!(simple_packet_caplen(100, 60, 80), 60);
    }

    #[test]
    fn obsolete_packet_fields_in_both_orders() {
        for be in [false, true] {
            let b = opb(be, 3, (7 << 32) | 9, b"hello");
            assert_eq!(obsolete_packet_fields(&b, be), Ok((3, (7 << 32) | 9, 5, 5)));
        }
        let mut b = opb(false, 0, 0, b"hi");
        b[20..24].copy_from_slice(&9u32.to_le_bytes());
        assert_eq!(
            obsolete_packet_fields(&b, false).unwrap_err(),
            "captured length 9 exceeds the block"
        );
        assert_eq!(
            obsolete_packet_fields(&b[..28], false).unwrap_err(),
            "packet block too short"
        );
    }

    /// A little-endian section with every packet block kind and a custom
    /// block, then a big-endian section.
    fn two_sections() -> Vec<u8> {
        let mut v = shb(false);
        v.extend(idb(false, 101, 0));
        v.extend(idb(false, 1, 3));
        v.extend(epb(false, 0, 1_500_000, b"first"));
        v.extend(block(false, CB_MAGIC, &fields(false, &[32473, 0])));
        v.extend(spb(false, 9, b"simple!!!"));
        v.extend(opb(false, 1, 2_000_000, b"old"));
        v.extend(block(false, 0x0000_0005, &[0; 8])); // ISB: not a frame
        v.extend(shb(true));
        v.extend(idb(true, 228, 0));
        v.extend(epb(true, 0, 3_000_001, b"second section"));
        v
    }

    #[test]
    fn pcapng_blocks_in_two_sections() {
        let bytes = two_sections();
        let mut r = CaptureReader::new(&bytes[..], "t").unwrap();
        assert_eq!(r.format(), CaptureFormat::PcapNg);
        let mut got = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            got.push((
                f.frame,
                f.ts.to_string(),
                f.link_type.0,
                f.interface,
                f.data.to_vec(),
            ));
        }
        let want: Vec<(u64, String, u16, u32, Vec<u8>)> = vec![
            (1, "1.500000".into(), 101, 0, b"first".to_vec()),
            // Frame 2 is the custom block; the SPB keeps the previous time.
            (3, "1.500000".into(), 101, 0, b"simple!!!".to_vec()),
            (4, "2.000000".into(), 1, 1, b"old".to_vec()),
            (5, "3.000001".into(), 228, 0, b"second section".to_vec()),
        ];
        assert_eq!(got, want);
        let sections: Vec<_> = r
            .interfaces()
            .iter()
            .map(|i| (i.section, i.index))
            .collect();
        assert_eq!(sections, [(0, 0), (0, 1), (1, 0)]);
        assert_eq!(r.offset(), bytes.len() as u64);
    }

    #[test]
    fn pcapng_framing_errors_name_offset_and_frame() {
        let mut bytes = shb(false);
        bytes.extend(idb(false, 101, 0));
        let at = bytes.len();
        bytes.extend(epb(false, 0, 0, b"abcd"));
        let end = bytes.len();
        // Trailing length differs from the leading one.
        let mut bad = bytes.clone();
        bad[end - 4..end].copy_from_slice(&40u32.to_le_bytes());
        let mut r = CaptureReader::new(&bad[..], "t").unwrap();
        let e = r.next_frame().unwrap_err();
        assert_eq!((e.offset(), e.frame()), (Some(at as u64), Some(1)));
        assert!(
            e.to_string().contains("does not match trailing length 40"),
            "{e}"
        );
        // A packet naming an interface the section does not declare.
        let mut bad = bytes.clone();
        bad[at + 8..at + 12].copy_from_slice(&2u32.to_le_bytes());
        let mut r = CaptureReader::new(&bad[..], "t").unwrap();
        let e = r.next_frame().unwrap_err();
        assert!(
            e.to_string()
                .contains("interface 2 but the section declares 1"),
            "{e}"
        );
        // Cut inside the packet block.
        let mut r = CaptureReader::new(&bytes[..end - 6], "t").unwrap();
        match r.next_frame() {
            Err(CaptureError::Truncated {
                offset,
                needed,
                available,
                ..
            }) => assert_eq!((offset, needed, available), (at as u64, 36, 30)),
            other => panic!("{other:?}"),
        }
    }

    /// A frame as compared in tests: number, time, interface and bytes.
    type Seen = (u64, String, u32, Vec<u8>);

    /// Every frame of a reader, then the error that ended it (as text), if any.
    fn all_frames<R: Read>(mut r: CaptureReader<R>) -> (Vec<Seen>, Option<String>) {
        let mut got = Vec::new();
        loop {
            match r.next_frame() {
                Ok(Some(f)) => got.push((f.frame, f.ts.to_string(), f.interface, f.data.to_vec())),
                Ok(None) => return (got, None),
                Err(e) => return (got, Some(e.to_string())),
            }
        }
    }

    /// A source that hands out at most `step` bytes per read, so records
    /// straddle every refill of the reader's buffer.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.bytes.len().min(buf.len()).min(self.step);
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    #[test]
    fn chunked_reading_equals_reading_at_once() {
        // Records of many sizes, several buffers' worth, so records straddle
        // refills, and one block larger than the initial buffer (it grows).
        let frames: Vec<(u32, u32, Vec<u8>)> = (0..1500u32)
            .map(|i| (i, i * 7, vec![i as u8; (i as usize * 37) % 4000]))
            .collect();
        let refs: Vec<(u32, u32, &[u8])> =
            frames.iter().map(|(s, f, d)| (*s, *f, &d[..])).collect();
        let pcap = pcap_bytes(false, true, &refs);
        let mut ng = shb(false);
        ng.extend(idb(false, 1, 0));
        let big = vec![0x5a; INITIAL_BUFFER + 4096];
        for (i, (_, _, d)) in frames.iter().enumerate() {
            ng.extend(epb(false, 0, i as u64, d));
            if i == 700 {
                ng.extend(epb(false, 0, 0, &big));
            }
        }
        assert!(pcap.len() > 2 * INITIAL_BUFFER && ng.len() > 3 * INITIAL_BUFFER);
        let last = &frames[1499].2;
        let last_record = [16 + last.len(), epb(false, 0, 0, last).len()];
        for (bytes, last_record) in [pcap, ng].into_iter().zip(last_record) {
            let (want, none) = all_frames(CaptureReader::new(&bytes[..], "x").unwrap());
            assert_eq!(none, None);
            let big_too = bytes.starts_with(&SHB_MAGIC.to_le_bytes()) as usize;
            assert_eq!(want.len(), 1500 + big_too);
            assert_eq!(&want[700].3, &frames[700].2);
            assert_eq!(&want[1499 + big_too].3, last);
            for step in [1 << 16, 4093] {
                let r = CaptureReader::new(
                    Trickle {
                        bytes: &bytes,
                        step,
                    },
                    "x",
                )
                .unwrap();
                assert_eq!(all_frames(r), (want.clone(), None));
            }
            // Cut in the last record: the same frames, then the same error.
            let cut = &bytes[..bytes.len() - 3];
            let (want, err) = all_frames(CaptureReader::new(cut, "x").unwrap());
            // The offset is the last record's, counted independently.
            let at = format!("truncated at byte {}:", bytes.len() - last_record);
            assert!(err.as_deref().is_some_and(|e| e.contains(&at)), "{err:?}");
            let r = CaptureReader::new(
                Trickle {
                    bytes: cut,
                    step: 4093,
                },
                "x",
            )
            .unwrap();
            assert_eq!(all_frames(r), (want, err));
        }
    }
}
