//! The simulated screen: a view tree per foreground window, its
//! `uiautomator dump` XML, and what a tap at (x, y) does. Layouts scale with the
//! screen size and move when the keyboard is shown, so only selectors (not
//! remembered coordinates) find the elements reliably.

use super::state::{AppScreen, AppState, Foreground, Phone};

/// What tapping a node does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing (decorative or not clickable).
    None,
    /// Launch an app (launcher icon).
    Launch(usize),
    /// Open a conversation.
    OpenChat(usize, String),
    /// Focus the input field (shows the keyboard).
    Focus(usize),
    /// Send the draft.
    Send(usize),
    /// Back to the chat list.
    Back(usize),
    /// A button of the interruption on screen ([`super::dialog`]).
    Dialog(super::dialog::Choice),
}

/// One view in the tree.
#[derive(Debug, Clone)]
pub struct Node {
    /// Widget class.
    pub class: &'static str,
    /// `resource-id` (may be empty).
    pub rid: String,
    /// Text.
    pub text: String,
    /// `content-desc`.
    pub desc: String,
    /// Package.
    pub pkg: String,
    /// Clickable.
    pub clickable: bool,
    /// Focused.
    pub focused: bool,
    /// Scrollable: as Android reports it for a RecyclerView, true only
    /// while its content overflows (it can scroll in some direction).
    pub scrollable: bool,
    /// Bounds: left, top, right, bottom.
    pub bounds: [i32; 4],
    /// Tap effect.
    pub action: Action,
    /// Children.
    pub children: Vec<Node>,
}

impl Node {
    pub(crate) fn new(class: &'static str, pkg: &str, bounds: [i32; 4]) -> Self {
        Node {
            class,
            rid: String::new(),
            text: String::new(),
            desc: String::new(),
            pkg: pkg.to_string(),
            clickable: false,
            focused: false,
            scrollable: false,
            bounds,
            action: Action::None,
            children: Vec::new(),
        }
    }

    pub(crate) fn rid(mut self, rid: &str) -> Self {
        self.rid = rid.to_string();
        self
    }

    pub(crate) fn text(mut self, t: &str) -> Self {
        self.text = t.to_string();
        self
    }

    pub(crate) fn desc(mut self, d: &str) -> Self {
        self.desc = d.to_string();
        self
    }

    pub(crate) fn click(mut self, a: Action) -> Self {
        self.clickable = true;
        self.action = a;
        self
    }

    pub(crate) fn child(mut self, c: Node) -> Self {
        self.children.push(c);
        self
    }

    /// Whether (x, y) lies inside the bounds.
    pub fn contains(&self, x: i32, y: i32) -> bool {
        x >= self.bounds[0] && x < self.bounds[2] && y >= self.bounds[1] && y < self.bounds[3]
    }

    /// The deepest clickable node containing the point.
    pub fn hit(&self, x: i32, y: i32) -> Option<&Node> {
        if !self.contains(x, y) {
            return None;
        }
        for c in self.children.iter().rev() {
            if let Some(n) = c.hit(x, y) {
                return Some(n);
            }
        }
        self.clickable.then_some(self)
    }

    /// Centre of the bounds.
    pub fn center(&self) -> (i32, i32) {
        (
            (self.bounds[0] + self.bounds[2]) / 2,
            (self.bounds[1] + self.bounds[3]) / 2,
        )
    }

    /// Visits every node depth first.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Node)) {
        f(self);
        for c in &self.children {
            c.walk(f);
        }
    }
}

/// XML-escapes an attribute value like uiautomator does.
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\n' => o.push_str("&#10;"),
            '\r' => o.push_str("&#13;"),
            c => o.push(c),
        }
    }
    o
}

fn write_node(n: &Node, index: usize, out: &mut String) {
    let b = n.bounds;
    let editable = n.class == "android.widget.EditText";
    out.push_str(&format!(
        "<node index=\"{index}\" text=\"{}\" resource-id=\"{}\" class=\"{}\" package=\"{}\" content-desc=\"{}\" checkable=\"false\" checked=\"false\" clickable=\"{}\" enabled=\"true\" focusable=\"{}\" focused=\"{}\" scrollable=\"{}\" long-clickable=\"{}\" password=\"false\" selected=\"false\" bounds=\"[{},{}][{},{}]\"",
        xml_escape(&n.text),
        xml_escape(&n.rid),
        n.class,
        xml_escape(&n.pkg),
        xml_escape(&n.desc),
        n.clickable,
        n.clickable || editable,
        n.focused,
        n.scrollable,
        n.clickable && !editable,
        b[0], b[1], b[2], b[3]
    ));
    if n.children.is_empty() {
        out.push_str(" />");
    } else {
        out.push('>');
        for (i, c) in n.children.iter().enumerate() {
            write_node(c, i, out);
        }
        out.push_str("</node>");
    }
}

/// The `uiautomator dump` document for a tree.
pub fn to_xml(root: &Node) -> String {
    let mut out = String::from(
        "<?xml version='1.0' encoding='UTF-8' standalone='yes' ?><hierarchy rotation=\"0\">",
    );
    write_node(root, 0, &mut out);
    out.push_str("</hierarchy>");
    out
}

fn sc(v: f64, s: f64) -> i32 {
    (v * s).round() as i32
}

/// Builds the view tree of what is on screen now; `None` with the screen off.
pub fn screen(phone: &Phone) -> Option<Node> {
    if !phone.awake {
        return None;
    }
    let (w, h) = (phone.cfg.width as i32, phone.cfg.height as i32);
    let s = f64::from(w) / 1080.0;
    let status_h = sc(63.0, s);
    if phone.locked {
        let ui = "com.android.systemui";
        return Some(
            Node::new("android.widget.FrameLayout", ui, [0, 0, w, h])
                .child(
                    Node::new(
                        "android.widget.TextView",
                        ui,
                        [0, sc(300.0, s), w, sc(520.0, s)],
                    )
                    .rid("com.android.systemui:id/lock_screen_clock")
                    .text(&clock_text(phone)),
                )
                .child(
                    Node::new(
                        "android.widget.TextView",
                        ui,
                        [0, h - sc(300.0, s), w, h - sc(240.0, s)],
                    )
                    .rid("com.android.systemui:id/keyguard_indication_text")
                    .text("Swipe up to open"),
                ),
        );
    }
    if let Some(d) = super::dialog::visible(phone) {
        // The dump reads the active window: the interruption's alone.
        return Some(super::dialog::screen(phone, d, w, h));
    }
    let status = Node::new(
        "android.widget.FrameLayout",
        "com.android.systemui",
        [0, 0, w, status_h],
    )
    .rid("com.android.systemui:id/status_bar");
    let root = match phone.fg {
        Foreground::Launcher => launcher(phone, w, h, s, status_h),
        Foreground::App(idx) => app_screen(phone, idx, w, h, s, status_h),
    };
    Some(
        Node::new("android.widget.FrameLayout", &root.pkg, [0, 0, w, h])
            .child(root)
            .child(status),
    )
}

fn clock_text(phone: &Phone) -> String {
    let secs = phone.clock.now_ms() / 1000;
    format!("{:02}:{:02}", (secs / 3600) % 24, (secs / 60) % 60)
}

fn launcher(phone: &Phone, w: i32, h: i32, s: f64, top: i32) -> Node {
    let pkg = "com.google.android.apps.nexuslauncher";
    let mut grid = Node::new("android.view.ViewGroup", pkg, [0, top, w, h])
        .rid("com.google.android.apps.nexuslauncher:id/workspace");
    let cell_w = w / 4;
    let cell_h = sc(300.0, s);
    for (i, app) in phone.apps.iter().enumerate() {
        let (col, row) = ((i % 4) as i32, (i / 4) as i32);
        let b = [
            col * cell_w,
            top + sc(200.0, s) + row * cell_h,
            (col + 1) * cell_w,
            top + sc(200.0, s) + (row + 1) * cell_h,
        ];
        grid = grid.child(
            Node::new("android.widget.TextView", pkg, b)
                .text(app.def.label)
                .desc(app.def.label)
                .click(Action::Launch(i)),
        );
    }
    grid
}

/// Screen geometry: width, height, scale (1.0 = 1080 px wide) and the
/// status bar's height.
#[derive(Debug, Clone, Copy)]
struct Geom {
    w: i32,
    h: i32,
    s: f64,
    top: i32,
}

/// The foreground app's screen: splash, chat list or chat.
fn app_screen(phone: &Phone, idx: usize, w: i32, h: i32, s: f64, top: i32) -> Node {
    let app = &phone.apps[idx];
    let pkg = app.def.package;
    let frame =
        Node::new("android.widget.FrameLayout", pkg, [0, top, w, h]).rid("android:id/content");
    let g = Geom { w, h, s, top };
    match &app.screen {
        AppScreen::Splash(_) => frame.child(
            Node::new(
                "android.widget.ImageView",
                pkg,
                [
                    w / 2 - sc(120.0, s),
                    h / 2 - sc(120.0, s),
                    w / 2 + sc(120.0, s),
                    h / 2 + sc(120.0, s),
                ],
            )
            .desc(app.def.label),
        ),
        AppScreen::List => chat_list(app, idx, frame, g),
        AppScreen::Chat(account) => chat(app, idx, account, frame, g),
    }
}

/// The chat list: a toolbar and one row per contact or chat.
fn chat_list(app: &AppState, idx: usize, frame: Node, g: Geom) -> Node {
    let Geom { w, h, s, top } = g;
    let pkg = app.def.package;
    let var = app.var();
    let bar_h = sc(147.0, s);
    let toolbar = Node::new("android.view.ViewGroup", pkg, [0, top, w, top + bar_h]).child(
        Node::new(
            "android.widget.TextView",
            pkg,
            [
                sc(42.0, s),
                top + sc(30.0, s),
                w / 2,
                top + bar_h - sc(30.0, s),
            ],
        )
        .text(app.def.label),
    );
    let mut list = Node::new(
        "androidx.recyclerview.widget.RecyclerView",
        pkg,
        [0, top + bar_h, w, h],
    );
    if !var.row.is_empty() {
        list = list.rid(&format!("{pkg}:id/list"));
    }
    let accounts = list_accounts(app);
    let row_h = sc(LIST_ROW_H, s);
    let list_top = top + bar_h;
    let max = max_list_scroll(accounts.len(), row_h, h - list_top);
    list.scrollable = max > 0;
    let offset = app.list_scroll.clamp(0, max);
    // Like a RecyclerView, only the rows laid out on screen exist in the
    // dump: those wholly inside the list's bounds at the scroll offset.
    for (i, (name, account)) in accounts.iter().enumerate() {
        let y = list_top + i as i32 * row_h - offset;
        if y < list_top {
            continue;
        }
        if y + row_h > h {
            break;
        }
        list = list.child(list_row(app, idx, name, account, y, row_h, w, s));
    }
    frame.child(toolbar).child(list)
}

/// How far (px) a list of `rows` rows of `row_h` can scroll in a viewport
/// `view_h` high: until its last row ends at the viewport's bottom.
fn max_list_scroll(rows: usize, row_h: i32, view_h: i32) -> i32 {
    (rows as i32 * row_h - view_h.max(0)).max(0)
}

/// Height of a chat-list row on a 1080 px wide screen (scaled with [`sc`]).
const LIST_ROW_H: f64 = 198.0;

/// The chat list's rows of `app` as (name, account): its contacts, then
/// chats with strangers (named by their account).
fn list_accounts(app: &AppState) -> Vec<(String, String)> {
    let mut accounts: Vec<(String, String)> = app.contacts.clone();
    for acc in app.chats.keys() {
        if !accounts.iter().any(|(_, a)| a == acc) {
            accounts.push((acc.clone(), acc.clone()));
        }
    }
    accounts
}

/// One row of the chat list: picture, name and last message (Telegram's
/// custom-drawn rows carry only a content description).
#[allow(clippy::too_many_arguments)]
fn list_row(
    app: &AppState,
    idx: usize,
    name: &str,
    account: &str,
    y: i32,
    row_h: i32,
    w: i32,
    s: f64,
) -> Node {
    let pkg = app.def.package;
    let var = app.var();
    let last = app
        .chats
        .get(account)
        .and_then(|m| m.last())
        .map(|m| m.text.clone())
        .unwrap_or_default();
    let mut row = Node::new("android.widget.LinearLayout", pkg, [0, y, w, y + row_h])
        .rid(var.row)
        .click(Action::OpenChat(idx, account.to_string()));
    let mut name_n = Node::new(
        "android.widget.TextView",
        pkg,
        [
            sc(220.0, s),
            y + sc(30.0, s),
            w - sc(200.0, s),
            y + sc(100.0, s),
        ],
    )
    .rid(var.name)
    .text(name);
    if var.name.is_empty() {
        // Telegram: custom-drawn rows, only a content description.
        row = row.desc(&format!("{name}, {last}"));
        name_n = name_n.text("");
    }
    row = row
        .child(
            Node::new(
                "android.widget.ImageView",
                pkg,
                [
                    sc(42.0, s),
                    y + sc(30.0, s),
                    sc(180.0, s),
                    y + row_h - sc(30.0, s),
                ],
            )
            .desc("Profile picture"),
        )
        .child(name_n)
        .child(
            Node::new(
                "android.widget.TextView",
                pkg,
                [
                    sc(220.0, s),
                    y + sc(110.0, s),
                    w - sc(42.0, s),
                    y + row_h - sc(20.0, s),
                ],
            )
            .text(&last),
        );
    row
}

/// A chat: toolbar, the messages that fit, and the compose bar (above the
/// keyboard when the field is focused).
fn chat(app: &AppState, idx: usize, account: &str, frame: Node, g: Geom) -> Node {
    let Geom { w, h, s, top } = g;
    let pkg = app.def.package;
    let var = app.var();
    let bar_h = sc(147.0, s);
    let name = app.name_of(account);
    let up = Node::new(
        "android.widget.ImageButton",
        pkg,
        [0, top, sc(147.0, s), top + bar_h],
    )
    .desc("Navigate up")
    .click(Action::Back(idx));
    let title = Node::new(
        "android.widget.TextView",
        pkg,
        [
            sc(160.0, s),
            top + sc(20.0, s),
            w - sc(300.0, s),
            top + bar_h - sc(20.0, s),
        ],
    )
    .rid(var.name)
    .text(&name);
    let toolbar = Node::new("android.view.ViewGroup", pkg, [0, top, w, top + bar_h])
        .child(up)
        .child(title);
    // The keyboard takes the lower 40 % when the field is focused.
    let bottom = if app.focused { h - (h * 2 / 5) } else { h };
    let compose_h = sc(150.0, s);
    let cy = bottom - compose_h;
    let mut msgs = Node::new(
        "androidx.recyclerview.widget.RecyclerView",
        pkg,
        [0, top + bar_h, w, cy],
    );
    if !var.row.is_empty() {
        msgs = msgs.rid(&format!("{pkg}:id/conversation_list"));
    }
    let bubble_h = sc(120.0, s);
    let history = app.chats.get(account).map(Vec::as_slice).unwrap_or(&[]);
    let fit = ((cy - top - bar_h) / bubble_h).max(0) as usize;
    let shown = &history[history.len().saturating_sub(fit)..];
    msgs.scrollable = history.len() > fit;
    for (i, m) in shown.iter().enumerate() {
        let y = top + bar_h + i as i32 * bubble_h;
        let (x1, x2) = if m.outgoing {
            (w / 3, w - sc(30.0, s))
        } else {
            (sc(30.0, s), w * 2 / 3)
        };
        let mut t = Node::new(
            "android.widget.TextView",
            pkg,
            [x1, y + sc(10.0, s), x2, y + bubble_h - sc(10.0, s)],
        )
        .rid(var.bubble)
        .text(&m.text);
        if var.bubble.is_empty() {
            t = t.desc(&m.text);
        }
        msgs = msgs.child(t);
    }
    let compose = compose_bar(app, idx, cy, bottom, w, s);
    frame.child(toolbar).child(msgs).child(compose)
}

/// The compose bar between `cy` and `bottom`: the entry field and the
/// send button (a voice button while the variant needs text to send).
fn compose_bar(app: &AppState, idx: usize, cy: i32, bottom: i32, w: i32, s: f64) -> Node {
    let pkg = app.def.package;
    let var = app.var();
    let btn_w = sc(147.0, s);
    let (entry_b, send_b) = if var.send_left {
        (
            [
                btn_w + sc(20.0, s),
                cy + sc(15.0, s),
                w - sc(20.0, s),
                bottom - sc(15.0, s),
            ],
            [sc(10.0, s), cy + sc(10.0, s), btn_w, bottom - sc(10.0, s)],
        )
    } else {
        (
            [
                sc(20.0, s),
                cy + sc(15.0, s),
                w - btn_w - sc(20.0, s),
                bottom - sc(15.0, s),
            ],
            [
                w - btn_w,
                cy + sc(10.0, s),
                w - sc(10.0, s),
                bottom - sc(10.0, s),
            ],
        )
    };
    let mut entry = Node::new("android.widget.EditText", pkg, entry_b)
        .rid(var.entry)
        .click(Action::Focus(idx));
    entry.text = if app.draft.is_empty() {
        "Message".into()
    } else {
        app.draft.clone()
    };
    entry.focused = app.focused;
    let send = if var.send_needs_text && app.draft.is_empty() {
        Node::new("android.widget.ImageButton", pkg, send_b)
            .rid(if var.row.is_empty() { "" } else { "voice_note" })
            .desc("Voice message")
    } else if let Some(label) = var.send_text {
        Node::new("android.widget.Button", pkg, send_b)
            .rid(var.send)
            .text(label)
            .click(Action::Send(idx))
    } else if var.send.is_empty() {
        Node::new("android.view.View", pkg, send_b)
            .desc(var.send_desc)
            .click(Action::Send(idx))
    } else {
        Node::new("android.widget.ImageButton", pkg, send_b)
            .rid(var.send)
            .desc(var.send_desc)
            .click(Action::Send(idx))
    };
    // Voice button ids are package-qualified like the real ones.
    let send = if send.rid == "voice_note" {
        send.rid(&format!("{pkg}:id/voice_note_btn"))
    } else {
        send
    };
    Node::new("android.widget.LinearLayout", pkg, [0, cy, w, bottom])
        .child(entry)
        .child(send)
}

/// Applies a tap at (x, y); returns whether something was hit.
pub fn tap(phone: &mut Phone, x: i32, y: i32) -> bool {
    phone.tick();
    let Some(root) = screen(phone) else {
        return false;
    };
    let Some(node) = root.hit(x, y) else {
        return false;
    };
    let action = node.action.clone();
    let fg_app = match phone.fg {
        Foreground::App(i) => Some(i),
        Foreground::Launcher => None,
    };
    match action {
        Action::None => {}
        Action::Launch(i) => phone.launch(i),
        Action::OpenChat(i, acc) => phone.open_chat(i, &acc),
        Action::Focus(i) => phone.apps[i].focused = true,
        Action::Send(i) => {
            phone.send_draft(i);
        }
        Action::Back(i) => {
            phone.apps[i].screen = AppScreen::List;
            phone.apps[i].focused = false;
        }
        Action::Dialog(choice) => super::dialog::close(phone, choice),
    }
    let _ = fg_app;
    true
}

/// Applies `input swipe x1 y1 x2 y2` to an unlocked screen: a mostly
/// vertical swipe that starts inside the foreground app's chat list
/// scrolls it by the swipe's distance (up = towards later rows), bounded
/// at both ends. Returns whether the list moved. No fling: the list stops
/// where the finger does (a phone would glide a little further).
pub fn swipe(phone: &mut Phone, from: (i32, i32), to: (i32, i32)) -> bool {
    phone.tick();
    let Foreground::App(idx) = phone.fg else {
        return false;
    };
    if !matches!(phone.apps[idx].screen, AppScreen::List)
        || (to.1 - from.1).abs() <= (to.0 - from.0).abs()
    {
        return false;
    }
    let Some(root) = screen(phone) else {
        return false;
    };
    let mut list = None;
    root.walk(&mut |n| {
        if n.scrollable && n.contains(from.0, from.1) && n.pkg == phone.apps[idx].def.package {
            list = Some(n.bounds);
        }
    });
    let Some(b) = list else {
        return false;
    };
    let s = f64::from(phone.cfg.width as i32) / 1080.0;
    let rows = list_accounts(&phone.apps[idx]).len();
    let max = max_list_scroll(rows, sc(LIST_ROW_H, s), b[3] - b[1]);
    let app = &mut phone.apps[idx];
    let before = app.list_scroll.clamp(0, max);
    app.list_scroll = (before + from.1 - to.1).clamp(0, max);
    let moved = app.list_scroll != before;
    if moved {
        phone.ui_changed = std::time::Instant::now();
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::config::{PhoneSimConfig, SimAppConfig, SimContact};
    use crate::phone::state::ChatMessage;

    /// A phone showing `app`'s screen `screen` (no clock involved).
    fn phone_on(app: &str, screen: AppScreen) -> (Phone, usize) {
        let mut cfg = PhoneSimConfig::new("t");
        cfg.apps.insert(
            app.into(),
            SimAppConfig {
                variant: 0,
                account: "+490".into(),
                contacts: vec![SimContact {
                    name: "Bob".into(),
                    account: "+491".into(),
                }],
                server: None,
            },
        );
        let mut ph = Phone::new(cfg);
        ph.awake = true;
        ph.locked = false;
        let idx = ph.apps.iter().position(|a| a.def.id == app).unwrap();
        ph.fg = Foreground::App(idx);
        ph.apps[idx].screen = screen;
        (ph, idx)
    }

    fn nodes(root: &Node) -> Vec<&Node> {
        let mut v = Vec::new();
        root.walk(&mut |n| v.push(n));
        v
    }

    #[test]
    fn chat_list_has_a_row_per_contact_and_chat() {
        let (mut ph, idx) = phone_on("whatsapp", AppScreen::List);
        ph.apps[idx].chats.insert(
            "+492".into(),
            vec![ChatMessage {
                outgoing: false,
                text: "hi there".into(),
                status: "sent",
                id: 1,
                host_s: 0.0,
            }],
        );
        let root = screen(&ph).unwrap();
        let rows: Vec<&Node> = nodes(&root)
            .into_iter()
            .filter(|n| matches!(n.action, Action::OpenChat(..)))
            .collect();
        assert_eq!(rows.len(), 2);
        assert!(matches!(&rows[0].action, Action::OpenChat(i, a) if *i == idx && a == "+491"));
        // A chat without a contact shows its account and last message.
        let texts: Vec<&str> = nodes(rows[1]).iter().map(|n| n.text.as_str()).collect();
        assert!(
            texts.contains(&"+492") && texts.contains(&"hi there"),
            "{texts:?}"
        );
    }

    /// Names of the chat list's rows on screen, and whether the list says
    /// it can scroll.
    fn list_names(ph: &Phone) -> (Vec<String>, bool) {
        let root = screen(ph).unwrap();
        let all = nodes(&root);
        let list = all
            .iter()
            .find(|n| n.class == "androidx.recyclerview.widget.RecyclerView")
            .unwrap();
        let names = all
            .iter()
            .filter(|n| matches!(n.action, Action::OpenChat(..)))
            .map(|row| match &row.action {
                Action::OpenChat(_, acc) => ph.apps.iter().find_map(|a| {
                    a.contacts
                        .iter()
                        .find(|(_, c)| c == acc)
                        .map(|(n, _)| n.clone())
                }),
                _ => None,
            })
            .map(Option::unwrap)
            .collect();
        (names, list.scrollable)
    }

    #[test]
    fn swipe_scrolls_an_overflowing_chat_list_within_its_ends() {
        let (mut ph, idx) = phone_on("wechat", AppScreen::List);
        let (w, h) = (ph.cfg.width as i32, ph.cfg.height as i32);
        ph.apps[idx].running = true;
        ph.apps[idx].contacts = (0..15)
            .map(|i| (format!("c{i:02}"), format!("+49{i:02}")))
            .collect();
        let (names, scrollable) = list_names(&ph);
        assert!(scrollable);
        assert_eq!(names.first().map(String::as_str), Some("c00"));
        assert!(!names.contains(&"c14".to_string()), "{names:?}");
        let fit = names.len();
        // Horizontal, or starting on the toolbar: nothing moves.
        assert!(!swipe(&mut ph, (w / 10, h / 2), (w * 9 / 10, h / 2 + 10)));
        assert!(!swipe(&mut ph, (w / 2, 5), (w / 2, h / 2)));
        // Up by one row's height: the list moves by exactly one row.
        let row = (LIST_ROW_H * f64::from(w) / 1080.0).round() as i32;
        assert!(swipe(&mut ph, (w / 2, h * 3 / 4), (w / 2, h * 3 / 4 - row)));
        let (names, _) = list_names(&ph);
        assert_eq!(names.first().map(String::as_str), Some("c01"), "{names:?}");
        assert_eq!(names.len(), fit);
        // A long swipe stops at the end: the last row ends at the bottom,
        // and swiping further changes nothing.
        assert!(swipe(&mut ph, (w / 2, h - 10), (w / 2, -5 * h)));
        let (names, _) = list_names(&ph);
        assert_eq!(names.last().map(String::as_str), Some("c14"), "{names:?}");
        assert!(!swipe(&mut ph, (w / 2, h * 3 / 4), (w / 2, h / 4)));
        // Down again to the top, bounded there too.
        assert!(swipe(&mut ph, (w / 2, h / 4), (w / 2, 9 * h)));
        assert_eq!(ph.apps[idx].list_scroll, 0);
        assert_eq!(list_names(&ph).0.first().map(String::as_str), Some("c00"));
        // Leaving a chat keeps the position; a cold start resets it.
        assert!(swipe(&mut ph, (w / 2, h * 3 / 4), (w / 2, h / 4)));
        let kept = ph.apps[idx].list_scroll;
        assert!(kept > 0);
        ph.open_chat(idx, "+4914");
        tap_up(&mut ph);
        assert_eq!(ph.apps[idx].list_scroll, kept);
        ph.force_stop(idx);
        ph.launch(idx);
        assert_eq!(ph.apps[idx].list_scroll, 0);
    }

    /// Taps the chat's "Navigate up".
    fn tap_up(ph: &mut Phone) {
        let root = screen(ph).unwrap();
        let up = nodes(&root)
            .into_iter()
            .find(|n| n.desc == "Navigate up")
            .map(Node::center)
            .unwrap();
        assert!(tap(ph, up.0, up.1));
        assert!(matches!(
            ph.apps
                .iter()
                .find(|a| a.def.id == "wechat")
                .unwrap()
                .screen,
            AppScreen::List
        ));
    }

    #[test]
    fn a_list_that_fits_is_not_scrollable_and_does_not_move() {
        let (mut ph, idx) = phone_on("wechat", AppScreen::List);
        let (w, h) = (ph.cfg.width as i32, ph.cfg.height as i32);
        assert!(!list_names(&ph).1);
        assert!(!swipe(&mut ph, (w / 2, h * 3 / 4), (w / 2, h / 4)));
        assert_eq!(ph.apps[idx].list_scroll, 0);
    }

    #[test]
    fn chat_shows_messages_and_a_compose_bar_above_the_keyboard() {
        let (mut ph, idx) = phone_on("whatsapp", AppScreen::Chat("+491".into()));
        let h = ph.cfg.height as i32;
        let entry_of = |ph: &Phone| {
            let root = screen(ph).unwrap();
            nodes(&root)
                .into_iter()
                .find(|n| n.class == "android.widget.EditText")
                .map(|n| (n.text.clone(), n.bounds, n.focused))
                .unwrap()
        };
        let (text, b, focused) = entry_of(&ph);
        assert_eq!(text, "Message");
        assert!(!focused && b[3] > h * 9 / 10);
        ph.apps[idx].focused = true;
        ph.apps[idx].draft = "typed".into();
        let (text, b, focused) = entry_of(&ph);
        assert_eq!(text, "typed");
        assert!(focused && b[3] < h * 7 / 10, "{b:?}");
        let root = screen(&ph).unwrap();
        assert!(
            nodes(&root)
                .iter()
                .any(|n| matches!(n.action, Action::Send(i) if i == idx))
        );
    }
}
