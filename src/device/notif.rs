//! Parsing `dumpsys notification --noredact`: one record per posted
//! notification with package, post time and the title/text extras.

use serde::Serialize;

/// A posted notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostedNotification {
    /// Package.
    pub package: String,
    /// `when=` (phone clock, unix ms).
    pub when_ms: Option<i64>,
    /// `android.title`.
    pub title: Option<String>,
    /// `android.text` (`None` if redacted).
    pub text: Option<String>,
}

fn extra(block: &str, key: &str) -> Option<String> {
    let tag = format!("{key}=String (");
    let start = block.find(&tag)? + tag.len();
    let rest = &block[start..];
    // The value ends at ")" followed by a newline and the next key or the
    // end of the extras; values may contain newlines and parentheses.
    let mut search = 0;
    while let Some(i) = rest[search..].find(")\n") {
        let end = search + i;
        let after = rest[end + 2..].trim_start_matches([' ', '\t']);
        if after.starts_with("android.") || after.starts_with('}') || after.is_empty() {
            return Some(rest[..end].to_string());
        }
        search = end + 2;
    }
    None
}

/// Parses the dump.
pub fn parse(dump: &str) -> Vec<PostedNotification> {
    let mut out = Vec::new();
    for block in dump.split("NotificationRecord(").skip(1) {
        let Some(pkg) = block
            .split("pkg=")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
        else {
            continue;
        };
        let when_ms = block
            .lines()
            .find_map(|l| l.trim().strip_prefix("when="))
            .and_then(|v| v.trim().parse().ok());
        out.push(PostedNotification {
            package: pkg.to_string(),
            when_ms,
            title: extra(block, "android.title"),
            text: extra(block, "android.text"),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_text_and_redaction() {
        let d = "  NotificationRecord(0x1: pkg=com.whatsapp user=UserHandle{0} id=1\n        when=1700000000123\n        extras={\n          android.title=String (Bob)\n          android.text=String (a (b)\nline 2)\n          android.subText=null\n        }\n    NotificationRecord(0x2: pkg=org.x user=UserHandle{0} id=2\n        when=5\n        extras={\n          android.title=String [length=3]\n          android.text=String [length=4]\n        }\n";
        let n = parse(d);
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].package, "com.whatsapp");
        assert_eq!(n[0].when_ms, Some(1_700_000_000_123));
        assert_eq!(n[0].title.as_deref(), Some("Bob"));
        assert_eq!(n[0].text.as_deref(), Some("a (b)\nline 2"));
        assert_eq!(n[1].text, None);
    }
}
