//! HTTP/1.x request and response heads, parsed with `httparse`.

/// Longest request or response head we wait for.
pub const MAX_HEAD: usize = 16 * 1024;

const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"CONNECT ",
    b"PATCH ",
    b"TRACE ",
];

/// True when a TCP payload starts with an HTTP/1.x method and a space.
pub fn looks_like_request(payload: &[u8]) -> bool {
    METHODS.iter().any(|m| payload.starts_with(m))
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Method token.
    pub method: String,
    /// Request target as sent.
    pub path: String,
    /// Host header.
    pub host: Option<String>,
    /// Content-Length, when given.
    pub content_length: Option<usize>,
    /// Content-Type, when given.
    pub content_type: Option<String>,
    /// Length of the head including the blank line.
    pub head_len: usize,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Content-Length, when given.
    pub content_length: Option<usize>,
    /// Content-Encoding (lower case), when given.
    pub encoding: Option<String>,
    /// Transfer-Encoding: chunked.
    pub chunked: bool,
    /// Length of the head including the blank line.
    pub head_len: usize,
}

/// Outcome of parsing a head from the bytes collected so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head<T> {
    /// The head is not complete yet.
    NeedMore,
    /// A complete head.
    Done(T),
    /// Not HTTP, malformed, or longer than [`MAX_HEAD`].
    Invalid,
}

fn header_value(headers: &[httparse::Header<'_>], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
}

/// Parses a request head.
pub fn parse_request(buf: &[u8]) -> Head<RequestHead> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) => {
            let hs = &*req.headers;
            Head::Done(RequestHead {
                method: req.method.unwrap_or_default().to_string(),
                path: req.path.unwrap_or_default().to_string(),
                host: header_value(hs, "host"),
                content_length: header_value(hs, "content-length").and_then(|v| v.parse().ok()),
                content_type: header_value(hs, "content-type"),
                head_len,
            })
        }
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => Head::NeedMore,
        _ => Head::Invalid,
    }
}

/// Parses a response head.
pub fn parse_response(buf: &[u8]) -> Head<ResponseHead> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) => {
            let hs = &*resp.headers;
            Head::Done(ResponseHead {
                status: resp.code.unwrap_or_default(),
                content_length: header_value(hs, "content-length").and_then(|v| v.parse().ok()),
                encoding: header_value(hs, "content-encoding").map(|v| v.to_ascii_lowercase()),
                chunked: header_value(hs, "transfer-encoding")
                    .is_some_and(|v| v.to_ascii_lowercase().contains("chunked")),
                head_len,
            })
        }
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => Head::NeedMore,
        _ => Head::Invalid,
    }
}

/// Decodes a chunked body; `None` until the last (zero-size) chunk is there.
pub fn dechunk(mut body: &[u8], limit: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_str = std::str::from_utf8(&body[..line_end]).ok()?;
        let size_str = size_str.split(';').next()?.trim();
        let size = usize::from_str_radix(size_str, 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if out.len() + size > limit {
            return None;
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_head_with_host_and_body_length() {
        let r = b"POST /mmtls/7d44b6a2 HTTP/1.1\r\nHost: dns.weixin.qq.com\r\nContent-Length: 371\r\n\r\nBODY";
        assert!(looks_like_request(r));
        let Head::Done(h) = parse_request(r) else {
            panic!()
        };
        assert_eq!(h.method, "POST");
        assert_eq!(h.path, "/mmtls/7d44b6a2");
        assert_eq!(h.host.as_deref(), Some("dns.weixin.qq.com"));
        assert_eq!(h.content_length, Some(371));
        assert_eq!(&r[h.head_len..], b"BODY");
        for cut in 0..r.len() - 4 {
            assert_eq!(parse_request(&r[..cut]), Head::NeedMore, "cut {cut}");
        }
    }

    #[test]
    fn response_head_and_chunked_body() {
        let r =
            b"HTTP/1.1 200 OK\r\nContent-Encoding: Deflate\r\nTransfer-Encoding: chunked\r\n\r\n";
        let Head::Done(h) = parse_response(r) else {
            panic!()
        };
        assert_eq!(
            (h.status, h.chunked, h.encoding.as_deref()),
            (200, true, Some("deflate"))
        );
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n", 100).unwrap(),
            b"abcde"
        );
        assert_eq!(dechunk(b"3\r\nabc\r\n", 100), None);
        assert_eq!(dechunk(b"ffffffff\r\nabc", 100), None);
        assert_eq!(dechunk(b"zz\r\n", 100), None);
    }

    #[test]
    fn garbage_and_oversized_heads_are_invalid() {
        assert!(!looks_like_request(b"\x16\x03\x01"));
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\n\x00\x01: x\r\n\r\n"),
            Head::Invalid
        );
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        assert_eq!(parse_request(&long), Head::Invalid);
    }
}
