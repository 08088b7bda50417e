//! What the simulator's `screenrecord` writes: an ISO base media file
//! (`.mp4`, brand `isom`) with one video track whose codec is PNG (sample
//! entry `png `, as QuickTime and ffmpeg write it), one sample per frame,
//! each sample a complete PNG image. A frame is a schematic rendering of the
//! screen at 1/8 scale: the UI tree's node outlines (clickable ones blue,
//! the focused one filled), a dark bar where a node shows text. Frames are
//! taken once a second while recording, with their real durations.
//!
//! This is not the H.264 stream of a real phone, but every byte is what
//! the format says: ffmpeg 5.1 probes and decodes it (`codec_name=png`),
//! and [`parse_mp4`] (used by the tests) checks its structure.

use super::ui::Node;
use std::io::Write;

/// Scale of a frame relative to the screen.
pub const SCALE: i32 = 8;

/// One rendered frame (RGB, 8 bits per channel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Row-major RGB bytes.
    pub rgb: Vec<u8>,
}

impl Frame {
    fn blank(width: u32, height: u32, rgb: [u8; 3]) -> Frame {
        let mut v = Vec::with_capacity((width * height * 3) as usize);
        for _ in 0..width * height {
            v.extend_from_slice(&rgb);
        }
        Frame {
            width,
            height,
            rgb: v,
        }
    }

    fn put(&mut self, x: i32, y: i32, c: [u8; 3]) {
        if x < 0 || y < 0 || x >= self.width as i32 || y >= self.height as i32 {
            return;
        }
        let i = ((y as u32 * self.width + x as u32) * 3) as usize;
        self.rgb[i..i + 3].copy_from_slice(&c);
    }

    fn rect(&mut self, [x0, y0, x1, y1]: [i32; 4], c: [u8; 3], fill: bool) {
        for y in y0..=y1 {
            for x in x0..=x1 {
                if fill || y == y0 || y == y1 || x == x0 || x == x1 {
                    self.put(x, y, c);
                }
            }
        }
    }
}

/// Renders a screen (a UI tree, or nothing: screen off) at 1/[`SCALE`].
pub fn render(tree: Option<&Node>, width: u32, height: u32) -> Frame {
    let (w, h) = (
        (width / SCALE as u32).max(1),
        (height / SCALE as u32).max(1),
    );
    let Some(root) = tree else {
        return Frame::blank(w, h, [0, 0, 0]);
    };
    let mut f = Frame::blank(w, h, [250, 250, 250]);
    root.walk(&mut |n: &Node| {
        let b = n.bounds.map(|v| v / SCALE);
        if n.focused {
            f.rect(b, [200, 220, 255], true);
        }
        let c = if n.clickable {
            [30, 90, 200]
        } else {
            [150, 150, 150]
        };
        f.rect(b, c, false);
        if !n.text.is_empty() {
            let len = (n.text.chars().count() as i32 * 2).min(b[2] - b[0] - 4);
            let y = (b[1] + b[3]) / 2;
            if len > 0 {
                f.rect([b[0] + 2, y, b[0] + 2 + len, y + 1], [40, 40, 40], true);
            }
        }
    });
    f
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// A frame as a PNG file (8-bit RGB, no interlace, filter 0, zlib).
pub fn png(f: &Frame) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&f.width.to_be_bytes());
    ihdr.extend_from_slice(&f.height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let row = (f.width * 3) as usize;
    for r in f.rgb.chunks(row) {
        // Writes into a Vec cannot fail.
        let _ = z.write_all(&[0]);
        let _ = z.write_all(r);
    }
    let idat = z.finish().unwrap_or_default();
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(kind);
    v.extend_from_slice(body);
    v
}

fn full(kind: &[u8; 4], version_flags: u32, body: &[u8]) -> Vec<u8> {
    let mut b = version_flags.to_be_bytes().to_vec();
    b.extend_from_slice(body);
    bx(kind, &b)
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

fn u32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

fn moov(
    durations_ms: &[u32],
    sizes: &[u32],
    width: u32,
    height: u32,
    mdat_data_offset: u32,
) -> Vec<u8> {
    let total: u32 = durations_ms.iter().sum();
    let mut mvhd = u32s(&[0, 0, 1000, total, 0x0001_0000]);
    mvhd.extend_from_slice(&0x0100u16.to_be_bytes());
    mvhd.extend_from_slice(&[0u8; 10]);
    mvhd.extend_from_slice(&u32s(&MATRIX));
    mvhd.extend_from_slice(&[0u8; 24]);
    mvhd.extend_from_slice(&2u32.to_be_bytes());
    let mut tkhd = u32s(&[0, 0, 1, 0, total, 0, 0]);
    tkhd.extend_from_slice(&[0u8; 8]); // layer, alternate group, volume, reserved
    tkhd.extend_from_slice(&u32s(&MATRIX));
    tkhd.extend_from_slice(&u32s(&[width << 16, height << 16]));
    let mut mdhd = u32s(&[0, 0, 1000, total]);
    mdhd.extend_from_slice(&0x55c4u16.to_be_bytes()); // "und"
    mdhd.extend_from_slice(&0u16.to_be_bytes());
    let mut hdlr = u32s(&[0]);
    hdlr.extend_from_slice(b"vide");
    hdlr.extend_from_slice(&[0u8; 12]);
    hdlr.extend_from_slice(b"matador screen\0");
    let vmhd = [0u8; 8];
    let dref = {
        let mut b = 1u32.to_be_bytes().to_vec();
        b.extend_from_slice(&full(b"url ", 1, &[]));
        full(b"dref", 0, &b)
    };
    let mut entry = vec![0u8; 6];
    entry.extend_from_slice(&1u16.to_be_bytes()); // data reference index
    entry.extend_from_slice(&[0u8; 16]);
    entry.extend_from_slice(&(width as u16).to_be_bytes());
    entry.extend_from_slice(&(height as u16).to_be_bytes());
    entry.extend_from_slice(&u32s(&[0x0048_0000, 0x0048_0000, 0]));
    entry.extend_from_slice(&1u16.to_be_bytes()); // frames per sample
    let mut name = [0u8; 32];
    name[0] = 3;
    name[1..4].copy_from_slice(b"PNG");
    entry.extend_from_slice(&name);
    entry.extend_from_slice(&0x0018u16.to_be_bytes());
    entry.extend_from_slice(&(-1i16).to_be_bytes());
    let mut stsd = 1u32.to_be_bytes().to_vec();
    stsd.extend_from_slice(&bx(b"png ", &entry));
    let mut stts = (durations_ms.len() as u32).to_be_bytes().to_vec();
    for d in durations_ms {
        stts.extend_from_slice(&u32s(&[1, *d]));
    }
    let stsc = u32s(&[1, 1, sizes.len() as u32, 1]);
    let mut stsz = u32s(&[0, sizes.len() as u32]);
    stsz.extend_from_slice(&u32s(sizes));
    let stco = u32s(&[1, mdat_data_offset]);
    let stbl = [
        full(b"stsd", 0, &stsd),
        full(b"stts", 0, &stts),
        full(b"stsc", 0, &stsc),
        full(b"stsz", 0, &stsz),
        full(b"stco", 0, &stco),
    ]
    .concat();
    let minf = [
        full(b"vmhd", 1, &vmhd),
        bx(b"dinf", &dref),
        bx(b"stbl", &stbl),
    ]
    .concat();
    let mdia = [
        full(b"mdhd", 0, &mdhd),
        full(b"hdlr", 0, &hdlr),
        bx(b"minf", &minf),
    ]
    .concat();
    let trak = [full(b"tkhd", 3, &tkhd), bx(b"mdia", &mdia)].concat();
    bx(
        b"moov",
        &[full(b"mvhd", 0, &mvhd), bx(b"trak", &trak)].concat(),
    )
}

/// The `.mp4` file of a recording: frames with their durations (ms).
/// With no frame at all, one black frame of 1 ms.
pub fn mp4(frames: &[(Frame, u32)], width: u32, height: u32) -> Vec<u8> {
    let black;
    let frames: &[(Frame, u32)] = if frames.is_empty() {
        black = [(render(None, width, height), 1)];
        &black
    } else {
        frames
    };
    let (w, h) = (frames[0].0.width, frames[0].0.height);
    let pngs: Vec<Vec<u8>> = frames.iter().map(|(f, _)| png(f)).collect();
    let sizes: Vec<u32> = pngs.iter().map(|p| p.len() as u32).collect();
    let durations: Vec<u32> = frames.iter().map(|(_, d)| (*d).max(1)).collect();
    let mut ftyp = b"isom".to_vec();
    ftyp.extend_from_slice(&512u32.to_be_bytes());
    ftyp.extend_from_slice(b"isomiso2mp41");
    let ftyp = bx(b"ftyp", &ftyp);
    // The chunk offset does not change moov's size: measure, then fill in.
    let len = moov(&durations, &sizes, w, h, 0).len();
    let offset = (ftyp.len() + len + 8) as u32;
    let mut out = ftyp;
    out.extend_from_slice(&moov(&durations, &sizes, w, h, offset));
    out.extend_from_slice(&bx(b"mdat", &pngs.concat()));
    out
}

/// What [`parse_mp4`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mp4Info {
    /// Codec of the (first) sample entry.
    pub codec: String,
    /// Track width and height from the sample entry.
    pub size: (u16, u16),
    /// Duration in ms (mvhd, timescale 1000).
    pub duration_ms: u32,
    /// The samples' bytes (located through stco/stsc/stsz).
    pub samples: Vec<Vec<u8>>,
}

/// Reads the box tree of a single-track file like [`mp4`]'s: the sample
/// entry, the duration and every sample. `None` when a box is missing or
/// a size or offset is out of range.
pub fn parse_mp4(b: &[u8]) -> Option<Mp4Info> {
    fn boxes(b: &[u8]) -> Option<Vec<([u8; 4], &[u8])>> {
        let mut v = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let size = u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?) as usize;
            let kind: [u8; 4] = b.get(i + 4..i + 8)?.try_into().ok()?;
            if size < 8 {
                return None;
            }
            v.push((kind, b.get(i + 8..i + size)?));
            i += size;
        }
        Some(v)
    }
    fn find<'a>(b: &'a [u8], path: &[&[u8; 4]]) -> Option<&'a [u8]> {
        let mut cur = b;
        for k in path {
            cur = boxes(cur)?.into_iter().find(|(kind, _)| kind == *k)?.1;
        }
        Some(cur)
    }
    let u32at = |b: &[u8], i: usize| -> Option<u32> {
        Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
    };
    let top = boxes(b)?;
    if top.first()?.0 != *b"ftyp" {
        return None;
    }
    let mvhd = find(b, &[b"moov", b"mvhd"])?;
    let duration_ms = u32at(mvhd, 16)?;
    let stbl = find(b, &[b"moov", b"trak", b"mdia", b"minf", b"stbl"])?;
    let stsd = find(stbl, &[b"stsd"])?;
    let entry = boxes(stsd.get(8..)?)?.into_iter().next()?;
    let codec = String::from_utf8_lossy(&entry.0).into_owned();
    let e = entry.1;
    let size = (
        u16::from_be_bytes(e.get(24..26)?.try_into().ok()?),
        u16::from_be_bytes(e.get(26..28)?.try_into().ok()?),
    );
    let stsz = find(stbl, &[b"stsz"])?;
    let n = u32at(stsz, 8)? as usize;
    let sizes: Vec<usize> = (0..n)
        .map(|k| u32at(stsz, 12 + 4 * k).map(|s| s as usize))
        .collect::<Option<_>>()?;
    let stco = find(stbl, &[b"stco"])?;
    if u32at(stco, 4)? != 1 {
        return None;
    }
    let mut off = u32at(stco, 8)? as usize;
    let mut samples = Vec::new();
    for s in sizes {
        samples.push(b.get(off..off + s)?.to_vec());
        off += s;
    }
    Some(Mp4Info {
        codec,
        size,
        duration_ms,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Checks a PNG: signature, chunk CRCs, IHDR size, and that IDAT
    /// inflates to exactly the image's rows.
    fn check_png(p: &[u8]) -> (u32, u32) {
        assert_eq!(&p[..8], b"\x89PNG\r\n\x1a\n");
        let mut i = 8;
        let (mut w, mut h, mut idat) = (0, 0, Vec::new());
        while i < p.len() {
            let len = u32::from_be_bytes(p[i..i + 4].try_into().unwrap()) as usize;
            let kind = &p[i + 4..i + 8];
            let data = &p[i + 8..i + 8 + len];
            let mut crc = flate2::Crc::new();
            crc.update(kind);
            crc.update(data);
            let want = u32::from_be_bytes(p[i + 8 + len..i + 12 + len].try_into().unwrap());
            assert_eq!(crc.sum(), want, "CRC of {}", String::from_utf8_lossy(kind));
            match kind {
                b"IHDR" => {
                    w = u32::from_be_bytes(data[0..4].try_into().unwrap());
                    h = u32::from_be_bytes(data[4..8].try_into().unwrap());
                    assert_eq!(&data[8..], &[8, 2, 0, 0, 0]);
                }
                b"IDAT" => idat.extend_from_slice(data),
                _ => {}
            }
            i += 12 + len;
        }
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&idat[..])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(raw.len() as u32, h * (1 + 3 * w));
        (w, h)
    }

    #[test]
    fn recording_is_an_mp4_of_png_frames() {
        let node = Node {
            class: "android.widget.Button",
            rid: String::new(),
            text: "Send".into(),
            desc: String::new(),
            pkg: "x".into(),
            clickable: true,
            focused: true,
            scrollable: false,
            bounds: [80, 80, 400, 240],
            action: crate::phone::ui::Action::None,
            children: Vec::new(),
        };
        let frames = vec![
            (render(Some(&node), 1080, 2400), 1000),
            (render(None, 1080, 2400), 400),
        ];
        assert_ne!(frames[0].0, frames[1].0, "frames show the screen");
        let file = mp4(&frames, 1080, 2400);
        let info = parse_mp4(&file).expect("well-formed");
        assert_eq!(info.codec, "png ");
        assert_eq!(info.size, (135, 300));
        assert_eq!(info.duration_ms, 1400);
        assert_eq!(info.samples.len(), 2);
        for s in &info.samples {
            assert_eq!(check_png(s), (135, 300));
        }
        // The mdat box ends the file exactly at the last sample.
        assert!(parse_mp4(&file[..file.len() - 1]).is_none());
        let empty = parse_mp4(&mp4(&[], 1080, 2400)).unwrap();
        assert_eq!(empty.samples.len(), 1);
    }
}
