//! Keyword isolation: which substrings of a string trigger a censor that
//! matches keywords as substrings (GFW-style `Host` header filtering)?
//!
//! For the remaining suffix `s[start..]` that still triggers:
//! 1. binary search the shortest triggering prefix `s[start..e]`: the
//!    earliest-ending keyword occurrence ends at `e`;
//! 2. binary search the shortest triggering suffix `s[b..e]` of it: since
//!    nothing ends before `e`, the occurrence starts at `b`, so `s[b..e]` is
//!    exactly a keyword;
//! 3. continue with `s[b+1..]` (occurrences overlapping this one but
//!    starting later are found next; occurrences containing it cannot be
//!    told apart by substring tests at all).
//!
//! Each keyword costs at most `2·⌈log2 n⌉ + 1` requests, and one more
//! request ends the search.

use serde::{Deserialize, Serialize};

/// The outcome of an isolation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Isolation {
    /// The string searched.
    pub input: String,
    /// Keywords found (each exactly a triggering substring, in order of
    /// their end position).
    pub keywords: Vec<String>,
    /// Requests sent.
    pub requests: u32,
    /// The search ran to its end (no inconclusive request, budget left).
    pub complete: bool,
    /// Why it stopped early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Upper bound of requests for `k` keywords in a string of `n` bytes.
pub fn request_bound(n: usize, k: usize) -> u32 {
    let log = usize::BITS - n.max(1).saturating_sub(1).leading_zeros();
    (k as u32) * (2 * log + 1) + 1
}

/// Isolates the triggering keywords of `s` (ASCII). `triggers(x)` sends
/// one request carrying `x` and answers whether it drew the censor's
/// reaction; `Err` (timeout, budget) ends the search as incomplete.
pub fn isolate(s: &str, mut triggers: impl FnMut(&str) -> Result<bool, String>) -> Isolation {
    let mut out = Isolation {
        input: s.to_string(),
        keywords: Vec::new(),
        requests: 0,
        complete: false,
        note: None,
    };
    if !s.is_ascii() {
        out.note = Some("not ASCII".into());
        return out;
    }
    let n = s.len();
    let mut q = |x: &str, out: &mut Isolation| {
        out.requests += 1;
        triggers(x)
    };
    let mut start = 0;
    let r = (|| -> Result<(), String> {
        while start < n {
            if !q(&s[start..], &mut out)? {
                break;
            }
            // Shortest triggering prefix of s[start..]: (lo, hi] holds it.
            let (mut lo, mut hi) = (start, n);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if q(&s[start..mid], &mut out)? {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            let e = hi;
            // Shortest triggering suffix of s[start..e].
            let (mut lo, mut hi) = (start, e);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if q(&s[mid..e], &mut out)? {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let kw = s[lo..e].to_string();
            if !out.keywords.contains(&kw) {
                out.keywords.push(kw);
            }
            start = lo + 1;
        }
        Ok(())
    })();
    match r {
        Ok(()) => out.complete = true,
        Err(e) => out.note = Some(e),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn censor<'a>(kws: &'a [&'a str]) -> impl FnMut(&str) -> Result<bool, String> + 'a {
        move |x| Ok(kws.iter().any(|k| x.contains(k)))
    }

    #[test]
    fn single_keyword_inside_a_host() {
        let s = "dl.stickershop.line.naver.jp";
        let r = isolate(s, censor(&["line.naver.jp"]));
        assert_eq!(r.keywords, vec!["line.naver.jp"]);
        assert!(r.complete);
        assert!(r.requests <= request_bound(s.len(), 1), "{}", r.requests);
    }

    #[test]
    fn overlapping_keywords_are_both_found() {
        let s = "dl.stickershop.line.naver.jp";
        let r = isolate(s, censor(&["naver.jp", "line.naver"]));
        assert_eq!(r.keywords, vec!["line.naver", "naver.jp"]);
        assert!(r.requests <= request_bound(s.len(), 2), "{}", r.requests);
        let r = isolate("dn-m.talk.kakao.com", censor(&["kakao.com", "talk.kakao"]));
        assert_eq!(r.keywords, vec!["talk.kakao", "kakao.com"]);
        // A keyword repeated and one nested in another (the longer one can
        // never be told apart: whenever it is present, so is the shorter).
        let r = isolate("abcabc", censor(&["bc", "abc"]));
        assert_eq!(r.keywords, vec!["bc"]);
    }

    #[test]
    fn clean_strings_cost_one_request_and_errors_stop() {
        let r = isolate("chat.signal.org", censor(&["kakao"]));
        assert_eq!((r.keywords.len(), r.requests, r.complete), (0, 1, true));
        let mut n = 0;
        let r = isolate("line.naver.jp", |_| {
            n += 1;
            if n > 3 {
                Err("timeout".into())
            } else {
                Ok(true)
            }
        });
        assert!(!r.complete);
        assert_eq!(r.note.as_deref(), Some("timeout"));
    }

    #[test]
    fn requests_grow_logarithmically() {
        let long = format!("{}line.naver.jp{}", "a".repeat(500), "b".repeat(500));
        let r = isolate(&long, censor(&["line.naver.jp"]));
        assert_eq!(r.keywords, vec!["line.naver.jp"]);
        // ⌈log2 1013⌉ = 10: at most 2·10+1 per keyword and one more.
        assert!(r.requests <= 22, "{}", r.requests);
        assert_eq!(request_bound(1013, 1), 22);
    }
}
