//! Finds where a key or value sits in a YAML text, for errors found after
//! parsing (serde does not keep positions). Handles the block style and
//! flow sequences scenario files use; when a path cannot be followed to the
//! end, the deepest key found is returned, so an error always points near
//! its cause.

/// One step of a path: a mapping key or a sequence index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    /// A mapping key.
    Key(&'a str),
    /// A sequence index (0-based).
    Index(usize),
}

/// 1-based (line, column) of the node at `path`, or of the closest ancestor
/// found; (1, 1) when nothing matches.
pub fn locate(text: &str, path: &[Seg<'_>]) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    // Current region: lines [start, end) and the indentation its keys must exceed.
    let mut start = 0usize;
    let mut end = lines.len();
    let mut min_indent: isize = -1;
    let mut found = (1usize, 1usize);
    // A flow sequence found on a key's line: (line, column of '[').
    let mut flow: Option<(usize, usize)> = None;
    for seg in path {
        match *seg {
            Seg::Key(k) => {
                let Some((ln, col, indent)) = find_key(&lines[start..end], k, min_indent) else {
                    return found;
                };
                let ln = start + ln;
                found = (ln + 1, col + 1);
                let after = &lines[ln][col + k.len()..];
                let after = after
                    .trim_start_matches(['"', '\''])
                    .trim_start_matches(':');
                flow = after
                    .find('[')
                    .filter(|_| after.trim_start().starts_with('['))
                    .map(|i| (ln, lines[ln].len() - after.len() + i));
                start = ln + 1;
                end = region_end(&lines, start, indent);
                min_indent = indent as isize;
                // An inline value (`key: value`): point at it.
                if flow.is_none() && !after.trim().is_empty() && !after.trim().starts_with('#') {
                    let off =
                        lines[ln].len() - after.len() + (after.len() - after.trim_start().len());
                    found = (ln + 1, off + 1);
                }
            }
            Seg::Index(i) => {
                if let Some((ln, open)) = flow.take() {
                    if let Some(c) = flow_item(lines[ln], open, i) {
                        found = (ln + 1, c + 1);
                    }
                    return found;
                }
                let mut n = 0;
                let mut hit = None;
                for (j, l) in lines[start..end].iter().enumerate() {
                    let ind = indent_of(l);
                    let t = l.trim_start();
                    if t.starts_with("- ") || t == "-" {
                        if n == i {
                            hit = Some((start + j, ind));
                            break;
                        }
                        n += 1;
                    }
                }
                let Some((ln, ind)) = hit else { return found };
                found = (ln + 1, ind + 3);
                let rest = lines[ln][ind + 1..].trim_start();
                if rest.starts_with('[') {
                    flow = Some((ln, lines[ln].len() - rest.len()));
                }
                // Keys of a mapping item start on the dash line.
                start = ln;
                end = region_end(&lines, ln + 1, ind);
                min_indent = ind as isize;
            }
        }
    }
    found
}

fn indent_of(l: &str) -> usize {
    l.len() - l.trim_start_matches(' ').len()
}

/// End (exclusive) of the block whose items are indented more than `indent`.
fn region_end(lines: &[&str], from: usize, indent: usize) -> usize {
    for (j, l) in lines.iter().enumerate().skip(from) {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if indent_of(l) <= indent && !t.starts_with("- ") {
            return j;
        }
        if indent_of(l) < indent {
            return j;
        }
    }
    lines.len()
}

/// Line index, column of the key and the key's indentation.
fn find_key(lines: &[&str], key: &str, min_indent: isize) -> Option<(usize, usize, usize)> {
    let mut best: Option<(usize, usize, usize)> = None;
    for (j, l) in lines.iter().enumerate() {
        let ind = indent_of(l);
        let mut t = &l[ind..];
        let mut col = ind;
        // `- key:` starts a mapping inside a sequence item.
        while let Some(r) = t.strip_prefix("- ") {
            let r2 = r.trim_start();
            col += t.len() - r2.len();
            t = r2;
        }
        if (col as isize) <= min_indent && !(j == 0 && min_indent >= 0) {
            continue;
        }
        for q in ["", "\"", "'"] {
            if let Some(r) = t.strip_prefix(q)
                && let Some(r) = r.strip_prefix(key)
                && let Some(r) = r.strip_prefix(q)
                && r.starts_with(':')
            {
                // Prefer the shallowest match (the nearest level of the path).
                if best.is_none_or(|b| col < b.2) {
                    best = Some((j, col + q.len(), col));
                }
            }
        }
    }
    best
}

/// Column of item `i` of the flow sequence opening at `open` on `line`.
fn flow_item(line: &str, open: usize, i: usize) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut depth = 0;
    let mut item = 0;
    let mut start_of_item = true;
    let mut quote: Option<u8> = None;
    for (c, &b) in bytes.iter().enumerate().skip(open) {
        if let Some(q) = quote {
            if b == q {
                quote = None;
            }
            continue;
        }
        match b {
            b'[' | b'{' => {
                depth += 1;
                if depth == 1 {
                    start_of_item = true;
                    continue;
                }
            }
            b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return None;
                }
            }
            b',' if depth == 1 => {
                item += 1;
                start_of_item = true;
                continue;
            }
            b'"' | b'\'' => quote = Some(b),
            _ => {}
        }
        if start_of_item && b != b' ' {
            if item == i {
                return Some(c);
            }
            start_of_item = false;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use Seg::{Index, Key};

    const Y: &str = "name: x\napps: [whatsapp, bogus]\ncountries:\n  DE: [de-1]\n  BR:\n    - br-1\n    - br-2\nphones:\n  - id: a\n  - id: b\n    profile: p.yaml\n";

    #[test]
    fn keys_values_and_items() {
        assert_eq!(locate(Y, &[Key("name")]), (1, 7));
        assert_eq!(locate(Y, &[Key("apps"), Index(1)]), (2, 18));
        assert_eq!(locate(Y, &[Key("countries"), Key("BR"), Index(1)]), (7, 7));
        assert_eq!(locate(Y, &[Key("countries"), Key("DE"), Index(0)]), (4, 8));
        assert_eq!(
            locate(Y, &[Key("phones"), Index(1), Key("profile")]),
            (11, 14)
        );
        assert_eq!(locate(Y, &[Key("phones"), Index(1)]), (10, 5));
        // Missing tail: nearest ancestor.
        assert_eq!(locate(Y, &[Key("countries"), Key("US")]), (3, 1));
        assert_eq!(locate(Y, &[Key("nope")]), (1, 1));
    }
}
