//! QUIC Initial packets: the ClientHello inside them, as tshark and nDPI
//! read it.
//!
//! Initial packets are encrypted with keys anyone can derive from the
//! client's first Destination Connection ID (RFC 9001 §5.2, RFC 9369 §3.3.1
//! for QUIC v2). We derive them with `ring`'s HKDF, remove header protection
//! with `ring::aead::quic`, open the payload with AES-128-GCM, collect the
//! CRYPTO frames (clients such as Chrome split and reorder the ClientHello
//! across frames and packets) and hand the reassembled handshake message to
//! [`super::tls`]. Google QUIC (`Q0xx`) carries its CHLO in clear; its SNI
//! tag is read directly.
//!
//! State is per client→server direction, bounded in bytes and packets, and
//! dropped as soon as the ClientHello is parsed.

use super::stream::{DirKey, FastMap};
use super::tls::{self, HelloInfo, MAX_HELLO, Progress};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, quic as hp};
use ring::hkdf;
use std::collections::BTreeMap;

/// QUIC version 1 (RFC 9000).
pub const V1: u32 = 0x0000_0001;
/// QUIC version 2 (RFC 9369).
pub const V2: u32 = 0x6b33_43cf;

const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];
/// Drafts 29–32, still seen in older captures.
const SALT_DRAFT29: [u8; 20] = [
    0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0,
    0x43, 0x90, 0xa8, 0x99,
];
/// Draft 22 (draft-ietf-quic-tls-22 §5.2), also Facebook mvfst `0xfaceb001`.
const SALT_DRAFT22: [u8; 20] = [
    0x7f, 0xbc, 0xdb, 0x0e, 0x7c, 0x66, 0xbb, 0xe9, 0x19, 0x3a, 0x96, 0xcd, 0x21, 0x51, 0x9e, 0xbd,
    0x7a, 0x02, 0x64, 0x4a,
];
/// Drafts 23–28 (draft-ietf-quic-tls-23 §5.2), also mvfst `0xfaceb002`/`0xfaceb00e`.
const SALT_DRAFT23: [u8; 20] = [
    0xc3, 0xee, 0xf7, 0x12, 0xc7, 0x2e, 0xbb, 0x5a, 0x11, 0xa7, 0xd2, 0x43, 0x2b, 0xb4, 0x63, 0x65,
    0xbe, 0xf9, 0xf5, 0x02,
];
/// Google QUIC Q050 Initial protection (Chromium `quic_crypto_stream`
/// salts, as Wireshark's packet-quic.c lists them).
const SALT_Q050: [u8; 20] = [
    0x50, 0x45, 0x74, 0xef, 0xd0, 0x66, 0xfe, 0x2f, 0x9d, 0x94, 0x5c, 0xfc, 0xdb, 0xd3, 0xa7, 0xf0,
    0xd3, 0xb5, 0x6b, 0x45,
];
/// Google QUIC T050 (TLS handshake over Google's QUIC).
const SALT_T050: [u8; 20] = [
    0x7f, 0xf5, 0x79, 0xe5, 0xac, 0xd0, 0x72, 0x91, 0x55, 0x80, 0x30, 0x4c, 0x43, 0xa2, 0x36, 0x7c,
    0x60, 0x48, 0x83, 0x10,
];
/// Google QUIC T051.
const SALT_T051: [u8; 20] = [
    0x7a, 0x4e, 0xde, 0xf4, 0xe7, 0xcc, 0xee, 0x5f, 0xa4, 0x50, 0x6c, 0x19, 0x12, 0x4f, 0xc8, 0xcc,
    0xda, 0x6e, 0x03, 0x3d,
];

/// Give up on a connection after this many client Initial packets.
const MAX_INITIALS: u8 = 8;
/// Connections tracked at once (a flood of junk Initials cannot grow memory further).
const MAX_CONNS: usize = 16_384;

/// Salt, label prefix and Initial packet type of a version, and whether
/// its handshake is Google's QUIC crypto (`CHLO`) instead of TLS.
struct VersionParams {
    salt: &'static [u8; 20],
    v2_labels: bool,
    initial_type: u8,
    gquic_chlo: bool,
    /// Type of the CRYPTO frame: 0x06 (RFC 9000), 0x08 in Google's own
    /// frame numbering (Q050, T050, T051: tshark `quic_t51.pcap`).
    crypto_type: u64,
}

/// Versions whose Initials we open. Every version but v2 uses the v1
/// labels and packet type 0; drafts 33 and 34 already use the v1 salt.
fn version_params(version: u32) -> Option<VersionParams> {
    let salt: &'static [u8; 20] = match version {
        V1 | 0xff00_0021..=0xff00_0022 => &SALT_V1,
        V2 => &SALT_V2,
        0xff00_001d..=0xff00_0020 => &SALT_DRAFT29,
        0xff00_0017..=0xff00_001c | 0xface_b002 | 0xface_b00e => &SALT_DRAFT23,
        0xff00_0016 | 0xface_b001 => &SALT_DRAFT22,
        0x5130_3530 => &SALT_Q050,
        0x5430_3530 => &SALT_T050,
        0x5430_3531 => &SALT_T051,
        _ => return None,
    };
    Some(VersionParams {
        salt,
        v2_labels: version == V2,
        initial_type: if version == V2 { 1 } else { 0 },
        gquic_chlo: version == 0x5130_3530,
        crypto_type: if matches!(version, 0x5130_3530 | 0x5430_3530 | 0x5430_3531) {
            0x08
        } else {
            0x06
        },
    })
}

/// Output length for `ring`'s HKDF-Expand.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
fn expand_label(prk: &hkdf::Prk, label: &[u8], len: usize) -> Option<Vec<u8>> {
    let full_len = [6 + label.len() as u8];
    let out_len = (len as u16).to_be_bytes();
    let info: [&[u8]; 5] = [&out_len, &full_len, b"tls13 ", label, &[0]];
    let okm = prk.expand(&info, Len(len)).ok()?;
    let mut out = vec![0; len];
    okm.fill(&mut out).ok()?;
    Some(out)
}

/// Raw client Initial secrets (exposed for the RFC test vectors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialSecrets {
    /// AEAD key (16 bytes).
    pub key: Vec<u8>,
    /// AEAD IV (12 bytes).
    pub iv: Vec<u8>,
    /// Header protection key (16 bytes).
    pub hp: Vec<u8>,
}

/// Derives the client's Initial key, IV and header-protection key for `version` from `dcid`.
pub fn client_initial_secrets(version: u32, dcid: &[u8]) -> Option<InitialSecrets> {
    let params = version_params(version)?;
    let initial = hkdf::Salt::new(hkdf::HKDF_SHA256, params.salt).extract(dcid);
    let client = expand_label(&initial, b"client in", 32)?;
    let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &client);
    let (k, i, h): (&[u8], &[u8], &[u8]) = if params.v2_labels {
        (b"quicv2 key", b"quicv2 iv", b"quicv2 hp")
    } else {
        (b"quic key", b"quic iv", b"quic hp")
    };
    Some(InitialSecrets {
        key: expand_label(&prk, k, 16)?,
        iv: expand_label(&prk, i, 12)?,
        hp: expand_label(&prk, h, 16)?,
    })
}

/// Ready-to-use client Initial keys.
struct Keys {
    aead: LessSafeKey,
    iv: [u8; 12],
    hp: hp::HeaderProtectionKey,
}

impl Keys {
    fn new(version: u32, dcid: &[u8]) -> Option<Keys> {
        let s = client_initial_secrets(version, dcid)?;
        Some(Keys {
            aead: LessSafeKey::new(UnboundKey::new(&aead::AES_128_GCM, &s.key).ok()?),
            iv: s.iv.try_into().ok()?,
            hp: hp::HeaderProtectionKey::new(&hp::AES_128, &s.hp).ok()?,
        })
    }
}

/// Reads a QUIC variable-length integer.
fn varint(d: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *d.get(*pos)?;
    let len = 1usize << (first >> 6);
    let bytes = d.get(*pos..*pos + len)?;
    let mut v = u64::from(first & 0x3f);
    for b in &bytes[1..] {
        v = (v << 8) | u64::from(*b);
    }
    *pos += len;
    Some(v)
}

/// The parts of a long-header packet we need.
#[derive(Debug, Clone, Copy)]
struct LongHeader<'a> {
    version: u32,
    ptype: u8,
    dcid: &'a [u8],
    /// Offset of the (protected) packet number.
    pn_offset: usize,
    /// End of this packet within the datagram.
    end: usize,
}

fn long_header(d: &[u8]) -> Option<LongHeader<'_>> {
    let first = *d.first()?;
    if first & 0x80 == 0 {
        return None;
    }
    let version = u32::from_be_bytes(d.get(1..5)?.try_into().ok()?);
    let params = version_params(version)?;
    let ptype = (first >> 4) & 0x03;
    let mut pos = 5;
    let dcid_len = usize::from(*d.get(pos)?);
    if dcid_len > 20 {
        return None;
    }
    let dcid = d.get(pos + 1..pos + 1 + dcid_len)?;
    pos += 1 + dcid_len;
    let scid_len = usize::from(*d.get(pos)?);
    if scid_len > 20 {
        return None;
    }
    pos += 1 + scid_len;
    if ptype == params.initial_type {
        let token_len = usize::try_from(varint(d, &mut pos)?).ok()?;
        pos = pos.checked_add(token_len)?;
    } else if ptype == 3 {
        return None; // Retry: no length field, never a ClientHello
    }
    let length = usize::try_from(varint(d, &mut pos)?).ok()?;
    let end = pos.checked_add(length)?;
    if end > d.len() {
        return None;
    }
    Some(LongHeader {
        version,
        ptype,
        dcid,
        pn_offset: pos,
        end,
    })
}

/// RFC 9000 §A.3 packet number decoding.
fn decode_pn(largest: Option<u64>, truncated: u64, nbits: u32) -> u64 {
    let expected = largest.map_or(0, |l| l + 1);
    let win = 1u64 << nbits;
    let hwin = win / 2;
    let candidate = (expected & !(win - 1)) | truncated;
    if candidate + hwin <= expected && candidate < (1u64 << 62) - win {
        candidate + win
    } else if candidate > expected + hwin && candidate >= win {
        candidate - win
    } else {
        candidate
    }
}

/// Removes header protection and decrypts one Initial packet (`pkt` is the
/// packet's own bytes, header included). Returns the packet number and the
/// plaintext frames.
fn open(pkt: &[u8], pn_offset: usize, keys: &Keys, largest: Option<u64>) -> Option<(u64, Vec<u8>)> {
    let sample = pkt.get(pn_offset + 4..pn_offset + 20)?;
    let mask = keys.hp.new_mask(sample).ok()?;
    let mut buf = pkt.to_vec();
    buf[0] ^= mask[0] & 0x0f;
    let pn_len = usize::from(buf[0] & 0x03) + 1;
    let mut truncated = 0u64;
    for i in 0..pn_len {
        buf[pn_offset + i] ^= mask[1 + i];
        truncated = (truncated << 8) | u64::from(buf[pn_offset + i]);
    }
    let pn = decode_pn(largest, truncated, 8 * pn_len as u32);
    let mut nonce = keys.iv;
    for (n, p) in nonce[4..].iter_mut().zip(pn.to_be_bytes()) {
        *n ^= p;
    }
    let (header, body) = buf.split_at_mut(pn_offset + pn_len);
    if body.len() < 16 {
        return None;
    }
    let plain = keys
        .aead
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&header[..]),
            body,
        )
        .ok()?;
    Some((pn, plain.to_vec()))
}

/// Appends the CRYPTO frames of a decrypted Initial payload to `out`
/// (`(offset, data)`); stops at the first frame it cannot skip.
fn crypto_frames(plain: &[u8], crypto_type: u64, out: &mut Vec<(u64, Vec<u8>)>) {
    let mut pos = 0;
    while pos < plain.len() {
        let Some(ftype) = varint(plain, &mut pos) else {
            return;
        };
        let ok = match ftype {
            0x00 | 0x01 => Some(()), // PADDING, PING
            0x02 | 0x03 => (|| {
                // ACK: largest, delay, range count, first range, ranges, [ECN]
                varint(plain, &mut pos)?;
                varint(plain, &mut pos)?;
                let count = varint(plain, &mut pos)?;
                varint(plain, &mut pos)?;
                if count > plain.len() as u64 {
                    return None;
                }
                for _ in 0..count * 2 {
                    varint(plain, &mut pos)?;
                }
                if ftype == 0x03 {
                    for _ in 0..3 {
                        varint(plain, &mut pos)?;
                    }
                }
                Some(())
            })(),
            t if t == crypto_type => (|| {
                let offset = varint(plain, &mut pos)?;
                let len = usize::try_from(varint(plain, &mut pos)?).ok()?;
                let data = plain.get(pos..pos.checked_add(len)?)?;
                pos += len;
                out.push((offset, data.to_vec()));
                Some(())
            })(),
            0x1c => (|| {
                varint(plain, &mut pos)?;
                varint(plain, &mut pos)?;
                let len = usize::try_from(varint(plain, &mut pos)?).ok()?;
                pos = pos.checked_add(len)?;
                Some(())
            })(),
            _ => None,
        };
        if ok.is_none() {
            return;
        }
    }
}

/// CRYPTO stream bytes received so far, by offset.
#[derive(Debug, Default)]
struct CryptoStream {
    chunks: BTreeMap<u64, Vec<u8>>,
    bytes: usize,
}

impl CryptoStream {
    /// Adds a chunk; false once the stream would exceed [`MAX_HELLO`].
    fn add(&mut self, offset: u64, data: Vec<u8>) -> bool {
        if offset > MAX_HELLO as u64 || self.bytes + data.len() > 2 * MAX_HELLO {
            return false;
        }
        self.bytes += data.len();
        let keep = self
            .chunks
            .get(&offset)
            .is_none_or(|old| old.len() < data.len());
        if keep {
            self.chunks.insert(offset, data);
        }
        true
    }

    /// The contiguous bytes from offset 0.
    fn contiguous(&self) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::new();
        for (&off, data) in &self.chunks {
            let Ok(off) = usize::try_from(off) else {
                break;
            };
            if off > out.len() {
                break;
            }
            let skip = out.len() - off;
            if skip < data.len() {
                out.extend_from_slice(&data[skip..]);
            }
        }
        out
    }
}

#[derive(Default)]
struct Conn {
    keys: Option<Keys>,
    /// Q050: the CRYPTO data is a Google QUIC `CHLO`, not a TLS ClientHello.
    gquic_chlo: bool,
    /// The version's CRYPTO frame type (see [`VersionParams::crypto_type`]).
    crypto_type: u64,
    crypto: CryptoStream,
    largest_pn: Option<u64>,
    initials: u8,
    done: bool,
}

/// Finds ClientHellos in QUIC Initial packets, per client→server direction.
#[derive(Default)]
pub(crate) struct QuicTracker {
    conns: FastMap<DirKey, Conn>,
}

impl QuicTracker {
    /// Looks at one UDP datagram; returns the ClientHello once complete.
    pub fn datagram(&mut self, dir: DirKey, d: &[u8]) -> Option<HelloInfo> {
        if d.len() < 7 {
            return None;
        }
        if let Some(c) = self.conns.get(&dir)
            && c.done
        {
            return None;
        }
        if self.conns.contains_key(&dir.reversed()) {
            return None; // the server's side of a tracked connection
        }
        let version = u32::from_be_bytes([d[1], d[2], d[3], d[4]]);
        if d[0] & 0x80 == 0 || version_params(version).is_none() {
            // IETF short header (nothing for us) or Google QUIC, whose old
            // public header has the top bit clear.
            if dir.dport != 443 && dir.dport != 80 {
                return None;
            }
            // Every CHLO is reported (a client sends an inchoate and a full
            // one), as tshark does; no state is kept for Google QUIC.
            let sni = gquic_chlo_sni(d)?;
            return Some(HelloInfo {
                sni: Some(sni),
                alpn: Vec::new(),
            });
        }
        let mut pos = 0;
        let mut result = None;
        // Coalesced packets: an Initial may be followed by 0-RTT/Handshake ones.
        while pos < d.len() && result.is_none() {
            let Some(h) = long_header(&d[pos..]) else {
                break;
            };
            let params = version_params(h.version)?;
            if h.ptype == params.initial_type {
                result = self.initial(dir, h, &d[pos..pos + h.end]);
            }
            pos += h.end;
        }
        result
    }

    fn initial(&mut self, dir: DirKey, h: LongHeader<'_>, pkt: &[u8]) -> Option<HelloInfo> {
        if !self.conns.contains_key(&dir) {
            // Only a packet that opens with keys from its own DCID starts a
            // connection: that is a client's first Initial.
            let keys = Keys::new(h.version, h.dcid)?;
            let (pn, plain) = open(pkt, h.pn_offset, &keys, None)?;
            self.make_room();
            let conn = self.conns.entry(dir).or_default();
            conn.keys = Some(keys);
            let params = version_params(h.version)?;
            conn.gquic_chlo = params.gquic_chlo;
            conn.crypto_type = params.crypto_type;
            return Self::absorb(conn, pn, &plain);
        }
        let conn = self.conns.get_mut(&dir)?;
        conn.initials = conn.initials.saturating_add(1);
        if conn.initials > MAX_INITIALS {
            conn.done = true;
            conn.crypto = CryptoStream::default();
            return None;
        }
        let opened = conn
            .keys
            .as_ref()
            .and_then(|k| open(pkt, h.pn_offset, k, conn.largest_pn));
        let (pn, plain) = match opened {
            Some(x) => x,
            None => {
                // After a Retry the client starts over with keys from the new DCID.
                let keys = Keys::new(h.version, h.dcid)?;
                let x = open(pkt, h.pn_offset, &keys, None)?;
                conn.keys = Some(keys);
                conn.crypto = CryptoStream::default();
                x
            }
        };
        Self::absorb(conn, pn, &plain)
    }

    /// Forgets finished connections (called periodically by capture time).
    pub fn sweep(&mut self) {
        self.conns.retain(|_, c| !c.done);
    }

    /// Bounds the table: forget finished connections first, then everything.
    fn make_room(&mut self) {
        if self.conns.len() >= MAX_CONNS {
            self.conns.retain(|_, c| !c.done);
            if self.conns.len() >= MAX_CONNS {
                self.conns.clear();
            }
        }
    }

    fn absorb(conn: &mut Conn, pn: u64, plain: &[u8]) -> Option<HelloInfo> {
        conn.largest_pn = Some(conn.largest_pn.map_or(pn, |l| l.max(pn)));
        // Q050 may frame its handshake the Google way: a whole CHLO in
        // one packet is read wherever it sits.
        if conn.gquic_chlo
            && let Some(sni) = chlo_sni(plain)
        {
            Self::finish(conn);
            return Some(HelloInfo {
                sni: Some(sni),
                alpn: Vec::new(),
            });
        }
        let mut frames = Vec::new();
        crypto_frames(plain, conn.crypto_type, &mut frames);
        for (off, data) in frames {
            if !conn.crypto.add(off, data) {
                conn.done = true;
            }
        }
        let progress = if conn.done {
            Progress::NotClientHello
        } else if conn.gquic_chlo {
            chlo_progress(&conn.crypto.contiguous())
        } else {
            tls::client_hello_from_handshake(&conn.crypto.contiguous())
        };
        match progress {
            Progress::NeedMore => None,
            Progress::Done(info) => {
                Self::finish(conn);
                Some(info)
            }
            Progress::NotClientHello => {
                Self::finish(conn);
                None
            }
        }
    }

    /// Keeps only a small tombstone so later packets are skipped cheaply.
    fn finish(conn: &mut Conn) {
        conn.done = true;
        conn.keys = None;
        conn.crypto = CryptoStream::default();
    }
}

/// SNI from a Google QUIC (`Q0xx`) client hello, which travels in clear:
/// a `CHLO` message with a tag table (tag, little-endian end offset) followed
/// by the values.
pub fn gquic_chlo_sni(d: &[u8]) -> Option<String> {
    // Version "Q0xx" appears right after the flags (+ 8-byte CID in the old header)
    let head = d.get(..16)?;
    if !head.windows(2).any(|w| w == b"Q0") {
        return None;
    }
    chlo_sni(&d[..d.len().min(1500)])
}

/// A Q050 CRYPTO stream so far: the CHLO's SNI once its tag table and
/// values are all there.
fn chlo_progress(stream: &[u8]) -> Progress {
    let Some(start) = stream.windows(4).position(|w| w == b"CHLO") else {
        return if stream.len() > MAX_HELLO {
            Progress::NotClientHello
        } else {
            Progress::NeedMore
        };
    };
    match chlo_sni(&stream[start..]) {
        Some(sni) => Progress::Done(HelloInfo {
            sni: Some(sni),
            alpn: Vec::new(),
        }),
        None if stream.len() > MAX_HELLO => Progress::NotClientHello,
        None => Progress::NeedMore,
    }
}

/// The `SNI` value of the first `CHLO` message in `window`: tag count
/// (u16le), 2 bytes padding, a table of (tag, u32le end offset), values.
fn chlo_sni(window: &[u8]) -> Option<String> {
    let start = window.windows(4).position(|w| w == b"CHLO")?;
    let msg = &window[start..];
    let n = usize::from(u16::from_le_bytes([*msg.get(4)?, *msg.get(5)?]));
    let table = msg.get(8..8 + n * 8)?;
    let values = &msg[8 + n * 8..];
    let mut prev_end = 0usize;
    for entry in table.chunks_exact(8) {
        let end = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]) as usize;
        if end < prev_end {
            return None;
        }
        if &entry[..4] == b"SNI\0" {
            let v = values.get(prev_end..end)?;
            return Some(String::from_utf8_lossy(v).into_owned());
        }
        prev_end = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn dir() -> DirKey {
        DirKey {
            proto: 17,
            src: "192.0.2.1".parse().unwrap(),
            sport: 50000,
            dst: "192.0.2.2".parse().unwrap(),
            dport: 443,
        }
    }

    /// RFC 9001 §A.1 and RFC 9369 §A.1 key derivation vectors.
    #[test]
    fn initial_secrets_match_the_rfcs() {
        let dcid = hex("8394c8f03e515708");
        let v1 = client_initial_secrets(V1, &dcid).unwrap();
        assert_eq!(v1.key, hex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(v1.iv, hex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(v1.hp, hex("9f50449e04a0e810283a1e9933adedd2"));
        let v2 = client_initial_secrets(V2, &dcid).unwrap();
        assert_eq!(v2.key, hex("8b1a0bc121284290a29e0971b5cd045d"));
        assert_eq!(v2.iv, hex("91f73e2351d8fa91660e909f"));
        assert_eq!(v2.hp, hex("45b95e15235d6f45a6b19cbcb0294ba9"));
        assert!(client_initial_secrets(0x5130_3436, &dcid).is_none());
    }

    /// RFC 9001 §A.2: the protected 1200-byte client Initial carries a
    /// ClientHello for example.com with ALPN "alpn".
    #[test]
    fn rfc9001_client_initial_decrypts() {
        let pkt = hex(include_str!("testdata/rfc9001-a2-client-initial.hex"));
        assert_eq!(pkt.len(), 1200);
        let mut t = QuicTracker::default();
        let info = t.datagram(dir(), &pkt).expect("ClientHello");
        assert_eq!(info.sni.as_deref(), Some("example.com"));
        assert_eq!(info.alpn, ["alpn"]);
        // the connection is finished: a repeat yields nothing and keeps no buffers
        assert!(t.datagram(dir(), &pkt).is_none());
        // the same bytes from the other direction (server side) start nothing new
        let mut t2 = QuicTracker::default();
        let mut bad = pkt.clone();
        bad[100] ^= 1;
        assert!(
            t2.datagram(dir(), &bad).is_none(),
            "tampered ciphertext must not open"
        );
        assert!(t2.conns.is_empty());
    }

    /// RFC 9369 §A.2: the same ClientHello in a QUIC v2 Initial (packet type bits 01, v2 salt and labels).
    #[test]
    fn rfc9369_v2_client_initial_decrypts() {
        let pkt = hex(include_str!("testdata/rfc9369-a2-client-initial.hex"));
        assert_eq!(pkt.len(), 1200);
        let info = QuicTracker::default()
            .datagram(dir(), &pkt)
            .expect("ClientHello");
        assert_eq!(info.sni.as_deref(), Some("example.com"));
        assert_eq!(info.alpn, ["alpn"]);
    }

    /// Builds a protected client Initial (2-byte packet number) carrying `frames`, padded.
    fn seal_initial(version: u32, dcid: &[u8], pn: u16, frames: &[u8]) -> Vec<u8> {
        let s = client_initial_secrets(version, dcid).unwrap();
        let first = if version == V2 { 0xd1 } else { 0xc1 }; // long, fixed, Initial, pn_len 2
        let mut payload = frames.to_vec();
        payload.resize(payload.len().max(1100), 0); // PADDING
        let mut h = vec![first];
        h.extend_from_slice(&version.to_be_bytes());
        h.push(dcid.len() as u8);
        h.extend_from_slice(dcid);
        h.extend_from_slice(&[0, 0]); // no SCID, no token
        let len = (2 + payload.len() + 16) as u16 | 0x4000;
        h.extend_from_slice(&len.to_be_bytes());
        let pn_offset = h.len();
        h.extend_from_slice(&pn.to_be_bytes());
        let key = LessSafeKey::new(UnboundKey::new(&aead::AES_128_GCM, &s.key).unwrap());
        let mut nonce: [u8; 12] = s.iv.clone().try_into().unwrap();
        for (n, p) in nonce[4..].iter_mut().zip(u64::from(pn).to_be_bytes()) {
            *n ^= p;
        }
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&h[..]),
            &mut payload,
        )
        .unwrap();
        let mut pkt = h;
        pkt.extend(payload);
        let hpk = hp::HeaderProtectionKey::new(&hp::AES_128, &s.hp).unwrap();
        let mask = hpk.new_mask(&pkt[pn_offset + 4..pn_offset + 20]).unwrap();
        pkt[0] ^= mask[0] & 0x0f;
        pkt[pn_offset] ^= mask[1];
        pkt[pn_offset + 1] ^= mask[2];
        pkt
    }

    fn crypto_frame(offset: usize, data: &[u8]) -> Vec<u8> {
        let mut f = vec![0x06, 0x80];
        f.extend_from_slice(&(offset as u32).to_be_bytes()[1..]); // 4-byte varint
        f.extend_from_slice(&(0x4000u16 | data.len() as u16).to_be_bytes());
        f.extend_from_slice(data);
        f
    }

    /// A large ClientHello in CRYPTO frames spread over three Initial
    /// packets, sent out of order, with PING/ACK frames and a coalesced
    /// packet after the Initial, as Chrome's "chaos protection" does.
    #[test]
    fn client_hello_across_initial_packets_out_of_order() {
        for version in [V1, V2] {
            let hs = tls::build::client_hello(Some("chat.signal.org"), &["h3"], 2600);
            let dcid = [0x5a; 8];
            let parts = [&hs[..1000], &hs[1000..2000], &hs[2000..]];
            let mut p2 = vec![0x01];
            p2.extend(crypto_frame(2000, parts[2]));
            let mut p0 = crypto_frame(0, parts[0]);
            p0.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, 0x00]); // ACK
            let p1 = crypto_frame(1000, parts[1]);
            let mut t = QuicTracker::default();
            let d2 = seal_initial(version, &dcid, 2, &p2);
            let mut d0 = seal_initial(version, &dcid, 0, &p0);
            d0.extend_from_slice(&[0xe1, 0, 0, 0, 1, 0]); // a short trailing long-header fragment
            let d1 = seal_initial(version, &dcid, 1, &p1);
            assert!(t.datagram(dir(), &d2).is_none());
            assert!(t.datagram(dir(), &d0).is_none());
            let info = t
                .datagram(dir(), &d1)
                .expect("complete after the third packet");
            assert_eq!(
                info.sni.as_deref(),
                Some("chat.signal.org"),
                "version {version:#x}"
            );
            assert_eq!(info.alpn, ["h3"]);
            assert!(t.conns.values().all(|c| c.done && c.keys.is_none()));
        }
    }

    #[test]
    fn packet_number_decoding_follows_rfc9000_a3() {
        assert_eq!(decode_pn(Some(0xa82f30ea), 0x9b32, 16), 0xa82f9b32);
        assert_eq!(decode_pn(None, 0, 8), 0);
        assert_eq!(decode_pn(Some(255), 1, 8), 257);
    }

    #[test]
    fn crypto_stream_reassembles_out_of_order_and_overlapping() {
        let mut c = CryptoStream::default();
        assert!(c.add(5, b"fghij".to_vec()));
        assert_eq!(c.contiguous(), b"");
        assert!(c.add(0, b"abcdefg".to_vec()));
        assert!(c.add(3, b"de".to_vec()));
        assert_eq!(c.contiguous(), b"abcdefghij");
        assert!(
            !c.add(1 << 40, b"x".to_vec()),
            "offset far beyond any ClientHello"
        );
    }

    #[test]
    fn hostile_headers_and_frames_do_not_panic() {
        let pkt = hex(include_str!("testdata/rfc9001-a2-client-initial.hex"));
        let mut t = QuicTracker::default();
        for cut in [0, 1, 5, 6, 7, 17, 18, 20, 22, 40, 600, 1199] {
            assert!(t.datagram(dir(), &pkt[..cut]).is_none());
        }
        for i in 0..30 {
            for v in [0u8, 0x3f, 0x40, 0xff] {
                let mut p = pkt.clone();
                p[i] = v;
                let _ = t.datagram(dir(), &p);
            }
        }
        let mut out = Vec::new();
        crypto_frames(
            &[0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            0x06,
            &mut out,
        );
        crypto_frames(&[0x06, 0x00, 0x7f, 0xff, 1, 2], 0x06, &mut out);
        crypto_frames(&[0x03, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0], 0x06, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn gquic_chlo_sni_tag() {
        // flags, CID, version Q043, pn, 12-byte hash, stream frame, then CHLO
        let mut p = vec![0x0d];
        p.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        p.extend_from_slice(b"Q043");
        p.push(1);
        p.extend_from_slice(&[0; 12]);
        p.extend_from_slice(&[0xa0, 0x01, 0x00, 0x00]);
        p.extend_from_slice(b"CHLO");
        p.extend_from_slice(&2u16.to_le_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(b"PAD\0");
        p.extend_from_slice(&3u32.to_le_bytes());
        p.extend_from_slice(b"SNI\0");
        p.extend_from_slice(&17u32.to_le_bytes());
        p.extend_from_slice(b"---www.google.com");
        assert_eq!(gquic_chlo_sni(&p).as_deref(), Some("www.google.com"));
        p.truncate(p.len() - 3);
        assert_eq!(gquic_chlo_sni(&p), None);
    }
}
