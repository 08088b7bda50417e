//! `uiautomator dump` XML: a small, forgiving parser (the format is flat
//! `<node …/>` elements with attributes) and selectors over its nodes.

use serde::{Deserialize, Serialize};

/// One UI element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct UiNode {
    /// `text`.
    pub text: String,
    /// `resource-id`.
    pub resource_id: String,
    /// `class`.
    pub class: String,
    /// `package`.
    pub package: String,
    /// `content-desc`.
    pub content_desc: String,
    /// `clickable`.
    pub clickable: bool,
    /// `focused`.
    pub focused: bool,
    /// `scrollable` (AOSP AccessibilityNodeInfoDumper writes
    /// `Boolean.toString(node.isScrollable())` for every node: true when
    /// the view can scroll now, e.g. a RecyclerView whose rows overflow).
    pub scrollable: bool,
    /// Bounds: left, top, right, bottom.
    pub bounds: [i32; 4],
}

impl UiNode {
    /// Centre of the bounds (where a tap goes).
    pub fn center(&self) -> (i32, i32) {
        (
            (self.bounds[0] + self.bounds[2]) / 2,
            (self.bounds[1] + self.bounds[3]) / 2,
        )
    }
}

/// Matches UI elements; every given field must match.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// Exact `resource-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Exact text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Exact `content-desc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_desc: Option<String>,
    /// `content-desc` starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_desc_prefix: Option<String>,
    /// Exact class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

impl Selector {
    /// Whether the node matches.
    pub fn matches(&self, n: &UiNode) -> bool {
        self.resource_id
            .as_ref()
            .is_none_or(|v| *v == n.resource_id)
            && self.text.as_ref().is_none_or(|v| *v == n.text)
            && self
                .content_desc
                .as_ref()
                .is_none_or(|v| *v == n.content_desc)
            && self
                .content_desc_prefix
                .as_ref()
                .is_none_or(|v| n.content_desc.starts_with(v.as_str()))
            && self.class.as_ref().is_none_or(|v| *v == n.class)
            && !self.is_empty()
    }

    /// No field given (matches nothing).
    pub fn is_empty(&self) -> bool {
        self.resource_id.is_none()
            && self.text.is_none()
            && self.content_desc.is_none()
            && self.content_desc_prefix.is_none()
            && self.class.is_none()
    }

    /// Replaces `{name}` placeholders in every field.
    pub fn fill(&self, vars: &[(&str, &str)]) -> Selector {
        let f = |o: &Option<String>| {
            o.as_ref().map(|s| {
                let mut s = s.clone();
                for (k, v) in vars {
                    s = s.replace(&format!("{{{k}}}"), v);
                }
                s
            })
        };
        Selector {
            resource_id: f(&self.resource_id),
            text: f(&self.text),
            content_desc: f(&self.content_desc),
            content_desc_prefix: f(&self.content_desc_prefix),
            class: f(&self.class),
        }
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (k, v) in [
            ("resource-id", &self.resource_id),
            ("text", &self.text),
            ("content-desc", &self.content_desc),
            ("content-desc^", &self.content_desc_prefix),
            ("class", &self.class),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}={v:?}"));
            }
        }
        write!(f, "[{}]", parts.join(" "))
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let ent = &rest[1..end];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn parse_bounds(s: &str) -> Option<[i32; 4]> {
    let nums: Vec<i32> = s
        .split(|c: char| !(c.is_ascii_digit() || c == '-'))
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect();
    (nums.len() == 4).then(|| [nums[0], nums[1], nums[2], nums[3]])
}

/// Parses a dump into its nodes (document order). Unknown input gives an
/// empty list rather than an error: the caller reports "not found" with the
/// dump saved.
pub fn parse(xml: &str) -> Vec<UiNode> {
    let mut nodes = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<node") {
        rest = &rest[i + 5..];
        let mut node = UiNode::default();
        // Attributes up to the end of the tag.
        loop {
            rest = rest.trim_start();
            if rest.starts_with('>') || rest.starts_with("/>") || rest.is_empty() {
                break;
            }
            let Some(eq) = rest.find('=') else {
                rest = "";
                break;
            };
            let key = rest[..eq].trim().to_string();
            rest = &rest[eq + 1..];
            let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                rest = "";
                break;
            };
            rest = &rest[1..];
            let Some(end) = rest.find(q) else {
                rest = "";
                break;
            };
            let val = unescape(&rest[..end]);
            rest = &rest[end + 1..];
            match key.as_str() {
                "text" => node.text = val,
                "resource-id" => node.resource_id = val,
                "class" => node.class = val,
                "package" => node.package = val,
                "content-desc" => node.content_desc = val,
                "clickable" => node.clickable = val == "true",
                "focused" => node.focused = val == "true",
                "scrollable" => node.scrollable = val == "true",
                "bounds" => node.bounds = parse_bounds(&val).unwrap_or_default(),
                _ => {}
            }
        }
        nodes.push(node);
    }
    nodes
}

/// The first node matching any of the selectors (tried in order).
pub fn find<'a>(nodes: &'a [UiNode], sels: &[Selector]) -> Option<&'a UiNode> {
    sels.iter()
        .find_map(|s| nodes.iter().find(|n| s.matches(n)))
}

/// The screen's main scrollable container of `package`: the largest node
/// with `scrollable="true"` (a chat list, not a horizontal strip of
/// stories above it), `None` when nothing of the package can scroll.
pub fn scroll_container<'a>(nodes: &'a [UiNode], package: &str) -> Option<&'a UiNode> {
    let area = |n: &UiNode| {
        i64::from((n.bounds[2] - n.bounds[0]).max(0))
            * i64::from((n.bounds[3] - n.bounds[1]).max(0))
    };
    nodes
        .iter()
        .filter(|n| n.scrollable && n.package == package && area(n) > 0)
        .max_by_key(|n| area(n))
}

/// What a dump shows inside `bounds` (text, description, id and position of
/// every node there): equal before and after a swipe when the container
/// did not move, i.e. its end was reached. Only the container's region
/// counts: the status bar's clock or a badge elsewhere may change between
/// two dumps.
pub fn region_content(
    nodes: &[UiNode],
    bounds: [i32; 4],
) -> Vec<(String, String, String, [i32; 4])> {
    nodes
        .iter()
        .filter(|n| {
            n.bounds[0] >= bounds[0]
                && n.bounds[1] >= bounds[1]
                && n.bounds[2] <= bounds[2]
                && n.bounds[3] <= bounds[3]
        })
        .map(|n| {
            (
                n.text.clone(),
                n.content_desc.clone(),
                n.resource_id.clone(),
                n.bounds,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_attributes_and_entities() {
        let xml = r#"<?xml version='1.0' encoding='UTF-8' standalone='yes' ?><hierarchy rotation="0"><node index="0" text="a &amp; b&#10;c" resource-id="x:id/e" class="android.widget.EditText" package="x" content-desc="Say &quot;hi&quot;" clickable="true" focused="false" bounds="[10,20][110,220]" /></hierarchy>"#;
        let n = parse(xml);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].text, "a & b\nc");
        assert_eq!(n[0].content_desc, "Say \"hi\"");
        assert_eq!(n[0].center(), (60, 120));
        let sel = Selector {
            resource_id: Some("x:id/e".into()),
            ..Default::default()
        };
        assert!(find(&n, &[Selector::default(), sel]).is_some());
        assert!(parse("<node text=\"unterminated").len() <= 1);
        assert!(!n[0].scrollable);
    }

    #[test]
    fn reads_scrollable_as_uiautomator_writes_it() {
        // Attribute order and set of AOSP AccessibilityNodeInfoDumper
        // (uiautomator dump on Android 13): a chat list's RecyclerView.
        let xml = r#"<?xml version='1.0' encoding='UTF-8' standalone='yes' ?><hierarchy rotation="0"><node index="1" text="" resource-id="com.tencent.mm:id/j8g" class="androidx.recyclerview.widget.RecyclerView" package="com.tencent.mm" content-desc="" checkable="false" checked="false" clickable="false" enabled="true" focusable="true" focused="false" scrollable="true" long-clickable="false" password="false" selected="false" bounds="[0,273][1080,2181]"><node index="0" text="Lab B" resource-id="" class="android.view.View" package="com.tencent.mm" content-desc="" checkable="false" checked="false" clickable="false" enabled="true" focusable="false" focused="false" scrollable="false" long-clickable="false" password="false" selected="false" bounds="[210,310][480,368]" /></node></hierarchy>"#;
        let n = parse(xml);
        assert_eq!(n.len(), 2);
        assert!(n[0].scrollable && !n[1].scrollable);
        assert_eq!(n[0].bounds, [0, 273, 1080, 2181]);
        assert_eq!(
            scroll_container(&n, "com.tencent.mm").map(|c| c.bounds),
            Some([0, 273, 1080, 2181])
        );
        assert!(scroll_container(&n, "com.whatsapp").is_none());
        let inside = region_content(&n, n[0].bounds);
        assert_eq!(inside.len(), 2);
        assert_eq!(inside[1].0, "Lab B");
        assert!(region_content(&n, [0, 0, 1080, 200]).is_empty());
        assert!(parse("garbage").is_empty());
    }
}
