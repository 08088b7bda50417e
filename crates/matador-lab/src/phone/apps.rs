//! The seven simulated messaging apps: packages, versions, backend host names,
//! deep links and the resource ids of their two simulated versions.

/// Resource ids and labels that differ between an app's two versions.
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    /// `versionName` reported by `dumpsys package`.
    pub version_name: &'static str,
    /// `versionCode`.
    pub version_code: u32,
    /// Chat list row.
    pub row: &'static str,
    /// Contact name inside a row / toolbar title.
    pub name: &'static str,
    /// The message input field.
    pub entry: &'static str,
    /// The send button.
    pub send: &'static str,
    /// A message bubble's text.
    pub bubble: &'static str,
    /// The send button is a text button (`text=` label) rather than an icon.
    pub send_text: Option<&'static str>,
    /// The send button's content description.
    pub send_desc: &'static str,
    /// Send button left of the input field (layout change between versions).
    pub send_left: bool,
    /// The send button only appears once text was typed (mic button before).
    pub send_needs_text: bool,
}

/// A simulated app.
#[derive(Debug, Clone, Copy)]
pub struct AppDef {
    /// Profile id (`device-profiles/apps/<id>.yaml`).
    pub id: &'static str,
    /// Launcher label.
    pub label: &'static str,
    /// Android package.
    pub package: &'static str,
    /// Launcher activity (component).
    pub activity: &'static str,
    /// Backend host name the app connects to.
    pub host: &'static str,
    /// Backend port.
    pub port: u16,
    /// Deep link prefixes that open a chat; the account follows the prefix.
    pub links: &'static [&'static str],
    /// Notification channel id.
    pub channel: &'static str,
    /// Two versions.
    pub variants: [Variant; 2],
}

const fn v(
    version_name: &'static str,
    version_code: u32,
    ids: [&'static str; 5],
    send_text: Option<&'static str>,
    send_desc: &'static str,
    send_left: bool,
    send_needs_text: bool,
) -> Variant {
    Variant {
        version_name,
        version_code,
        row: ids[0],
        name: ids[1],
        entry: ids[2],
        send: ids[3],
        bubble: ids[4],
        send_text,
        send_desc,
        send_left,
        send_needs_text,
    }
}

/// All simulated apps.
pub const APPS: [AppDef; 7] = [
    AppDef {
        id: "whatsapp",
        label: "WhatsApp",
        package: "com.whatsapp",
        activity: "com.whatsapp/.Main",
        host: "g.whatsapp.net",
        port: 5222,
        links: &[
            "https://api.whatsapp.com/send?phone=",
            "whatsapp://send?phone=",
        ],
        channel: "individual_chat_defaults_3",
        variants: [
            v(
                "2.23.25.83",
                232583,
                [
                    "com.whatsapp:id/contact_row_container",
                    "com.whatsapp:id/conversations_row_contact_name",
                    "com.whatsapp:id/entry",
                    "com.whatsapp:id/send",
                    "com.whatsapp:id/message_text",
                ],
                None,
                "Send",
                false,
                true,
            ),
            v(
                "2.24.14.79",
                241479,
                [
                    "com.whatsapp:id/conversations_row",
                    "com.whatsapp:id/conversations_row_contact_name",
                    "com.whatsapp:id/conversation_entry",
                    "com.whatsapp:id/conversation_send",
                    "com.whatsapp:id/message_text",
                ],
                None,
                "Send",
                false,
                true,
            ),
        ],
    },
    AppDef {
        id: "wechat",
        label: "WeChat",
        package: "com.tencent.mm",
        activity: "com.tencent.mm/.ui.LauncherUI",
        host: "long.weixin.qq.com",
        port: 8080,
        links: &[],
        channel: "message_channel_new_id",
        variants: [
            v(
                "8.0.40",
                2420,
                [
                    "com.tencent.mm:id/cj1",
                    "com.tencent.mm:id/kbq",
                    "com.tencent.mm:id/b4a",
                    "com.tencent.mm:id/b8k",
                    "com.tencent.mm:id/b4b",
                ],
                Some("Send"),
                "",
                false,
                true,
            ),
            v(
                "8.0.47",
                2560,
                [
                    "com.tencent.mm:id/hbl",
                    "com.tencent.mm:id/ktv",
                    "com.tencent.mm:id/kii",
                    "com.tencent.mm:id/bql",
                    "com.tencent.mm:id/bkl",
                ],
                Some("Send"),
                "",
                false,
                true,
            ),
        ],
    },
    AppDef {
        id: "threema",
        label: "Threema",
        package: "ch.threema.app",
        activity: "ch.threema.app/.activities.HomeActivity",
        host: "g-33.0.threema.ch",
        port: 5222,
        links: &["threema://compose?id=", "https://threema.id/"],
        channel: "ch.threema.app.CHAT",
        variants: [
            v(
                "5.1.2",
                985,
                [
                    "ch.threema.app:id/list_item",
                    "ch.threema.app:id/name",
                    "ch.threema.app:id/embedded_text_editor",
                    "ch.threema.app:id/send_button",
                    "ch.threema.app:id/text_view",
                ],
                None,
                "Send",
                false,
                false,
            ),
            v(
                "5.3",
                1003,
                [
                    "ch.threema.app:id/conversation_list_item",
                    "ch.threema.app:id/name",
                    "ch.threema.app:id/compose_edit_text",
                    "ch.threema.app:id/send_button",
                    "ch.threema.app:id/text_view",
                ],
                None,
                "Send message",
                true,
                false,
            ),
        ],
    },
    AppDef {
        id: "signal",
        label: "Signal",
        package: "org.thoughtcrime.securesms",
        activity: "org.thoughtcrime.securesms/.RoutingActivity",
        host: "chat.signal.org",
        port: 443,
        links: &["sgnl://signal.me/#p/", "https://signal.me/#p/"],
        channel: "messages_1",
        variants: [
            v(
                "6.40.4",
                1357,
                [
                    "org.thoughtcrime.securesms:id/conversation_list_item",
                    "org.thoughtcrime.securesms:id/conversation_list_item_name",
                    "org.thoughtcrime.securesms:id/embedded_text_editor",
                    "org.thoughtcrime.securesms:id/send_button",
                    "org.thoughtcrime.securesms:id/conversation_item_body",
                ],
                None,
                "Send",
                false,
                true,
            ),
            v(
                "7.10.3",
                1450,
                [
                    "org.thoughtcrime.securesms:id/conversation_list_item",
                    "org.thoughtcrime.securesms:id/conversation_list_item_name",
                    "org.thoughtcrime.securesms:id/embedded_text_editor",
                    "org.thoughtcrime.securesms:id/send_button_stub",
                    "org.thoughtcrime.securesms:id/conversation_item_body",
                ],
                None,
                "Send message",
                false,
                true,
            ),
        ],
    },
    AppDef {
        id: "telegram",
        label: "Telegram",
        package: "org.telegram.messenger",
        activity: "org.telegram.messenger/org.telegram.ui.LaunchActivity",
        host: "venus.web.telegram.org",
        port: 443,
        links: &["tg://resolve?phone=", "https://t.me/+"],
        channel: "private_chats",
        // Telegram draws its own views: no resource ids at all.
        variants: [
            v(
                "10.2.6",
                40643,
                ["", "", "", "", ""],
                None,
                "Send",
                false,
                true,
            ),
            v(
                "10.14.5",
                49641,
                ["", "", "", "", ""],
                None,
                "Send",
                true,
                true,
            ),
        ],
    },
    AppDef {
        id: "line",
        label: "LINE",
        package: "jp.naver.line.android",
        activity: "jp.naver.line.android/.activity.SplashActivity",
        host: "legy-jp.line.naver.jp",
        port: 443,
        links: &[],
        channel: "jp.naver.line.android.notification.NewMessages",
        variants: [
            v(
                "13.21.0",
                132100,
                [
                    "jp.naver.line.android:id/chatlist_item",
                    "jp.naver.line.android:id/name",
                    "jp.naver.line.android:id/chathistory_message_edit",
                    "jp.naver.line.android:id/chathistory_send_button_image",
                    "jp.naver.line.android:id/chat_ui_message_text",
                ],
                None,
                "Send",
                false,
                true,
            ),
            v(
                "14.3.1",
                140301,
                [
                    "jp.naver.line.android:id/chat_list_row",
                    "jp.naver.line.android:id/chat_list_name",
                    "jp.naver.line.android:id/chat_ui_message_edit",
                    "jp.naver.line.android:id/chat_ui_send_button_image",
                    "jp.naver.line.android:id/chat_ui_message_text",
                ],
                None,
                "Send",
                false,
                true,
            ),
        ],
    },
    AppDef {
        id: "kakaotalk",
        label: "KakaoTalk",
        package: "com.kakao.talk",
        activity: "com.kakao.talk/.activity.SplashActivity",
        host: "loco.kakao.com",
        port: 443,
        links: &[],
        channel: "quiet_new_message",
        variants: [
            v(
                "10.4.3",
                1040300,
                [
                    "com.kakao.talk:id/chat_room_list_item",
                    "com.kakao.talk:id/title",
                    "com.kakao.talk:id/message_edit_text",
                    "com.kakao.talk:id/send",
                    "com.kakao.talk:id/message",
                ],
                None,
                "Send",
                false,
                true,
            ),
            v(
                "10.7.1",
                1070100,
                [
                    "com.kakao.talk:id/chat_list_item",
                    "com.kakao.talk:id/name",
                    "com.kakao.talk:id/message_edit_text",
                    "com.kakao.talk:id/send_button",
                    "com.kakao.talk:id/message",
                ],
                None,
                "Send",
                true,
                true,
            ),
        ],
    },
];

/// Looks an app up by profile id.
pub fn app_def(id: &str) -> Option<&'static AppDef> {
    APPS.iter().find(|a| a.id == id)
}

/// Looks an app up by Android package.
pub fn app_by_package(package: &str) -> Option<&'static AppDef> {
    APPS.iter().find(|a| a.package == package)
}
