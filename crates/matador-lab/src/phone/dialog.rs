//! Interruptions: the windows real phones put in front of an app, which a
//! simulator without them would make kinder than the world. On a cold
//! start an app may show a "what's new" sheet, Android 13+ asks for the
//! notification permission once, another app (the Play Store's update page)
//! may come to the front, and an app may stop answering ("isn't
//! responding"). While one is up, `uiautomator dump` shows only its window
//! (the dump reads the active window: AOSP `UiAutomation.getRootInActiveWindow`),
//! taps outside its buttons do nothing and typed text goes nowhere; BACK
//! closes it (for the permission prompt: denied).
//!
//! Resource ids and package names as on real phones (AOSP
//! PermissionController `grant_permissions.xml`, framework
//! `app_anr_dialog.xml`); the texts follow the phone's locale (`en`, `de`,
//! `zh`), as the dismiss selectors of the app profiles must.

use super::state::{Foreground, Phone};
use super::ui::{Action, Node};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// When the simulated phone interrupts (phone config `interruptions:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct InterruptionConfig {
    /// Android 13+ (SDK ≥ 33): an app's first start asks for the
    /// notification permission; until it is allowed the app posts no
    /// notification (as `POST_NOTIFICATIONS` works on a real phone).
    #[serde(default)]
    pub notification_prompt: bool,
    /// Chance (0–1) that a cold start shows one of the other
    /// interruptions: a "what's new" sheet, the store's update page in
    /// front, or an "isn't responding" dialog.
    #[serde(default)]
    pub rate: f64,
}

/// One interruption on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialog {
    /// The notification permission prompt for app `usize`.
    Permission(usize),
    /// The app's own "what's new" sheet.
    WhatsNew(usize),
    /// The store's page for the app, in front of it (another package).
    StoreUpdate(usize),
    /// "<app> isn't responding" (Wait / Close app).
    NotResponding(usize),
}

impl Dialog {
    /// The app it is about.
    pub fn app(self) -> usize {
        match self {
            Dialog::Permission(i)
            | Dialog::WhatsNew(i)
            | Dialog::StoreUpdate(i)
            | Dialog::NotResponding(i) => i,
        }
    }
}

/// What tapping a dialog's button does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Allow / not now / wait: the dialog goes, the app stays.
    Dismiss,
    /// Don't allow (permission denied).
    Deny,
    /// Close app (the app is stopped).
    Close,
}

/// Chooses the interruption, if any, for a cold start of app `idx`
/// (called by [`Phone::launch`]); it shows once the splash screen ends.
pub fn on_cold_start(phone: &mut Phone, idx: usize) {
    let cfg = phone.cfg.interruptions.clone();
    let asks = cfg.notification_prompt
        && phone.cfg.sdk >= 33
        && phone.notifications_allowed(idx).is_none();
    let dialog = if asks {
        Some(Dialog::Permission(idx))
    } else if cfg.rate > 0.0 && phone.random() < cfg.rate {
        let pick = phone.random();
        Some(if pick < 0.6 {
            Dialog::WhatsNew(idx)
        } else if pick < 0.85 {
            Dialog::StoreUpdate(idx)
        } else {
            Dialog::NotResponding(idx)
        })
    } else {
        None
    };
    phone.dialog = dialog;
}

/// The dialog on screen now (its app in front, past its splash screen).
pub fn visible(phone: &Phone) -> Option<Dialog> {
    let d = phone.dialog?;
    let up = phone.fg == Foreground::App(d.app())
        && !matches!(
            phone.apps[d.app()].screen,
            super::state::AppScreen::Splash(until) if until > Instant::now()
        );
    up.then_some(d)
}

/// Texts in the phone's locale: (title, first button, second button).
fn texts(phone: &Phone, d: Dialog) -> (String, &'static str, &'static str) {
    let lang = phone.cfg.locale.split(['-', '_']).next().unwrap_or("en");
    let name = phone.apps[d.app()].def.label;
    match (d, lang) {
        (Dialog::Permission(_), "de") => (
            format!("{name} erlauben, dir Benachrichtigungen zu senden?"),
            "Zulassen",
            "Nicht zulassen",
        ),
        (Dialog::Permission(_), "zh") => (format!("要允许“{name}”发送通知吗？"), "允许", "不允许"),
        (Dialog::Permission(_), _) => (
            format!("Allow {name} to send you notifications?"),
            "Allow",
            "Don\u{2019}t allow",
        ),
        (Dialog::WhatsNew(_), "de") => (format!("Neu in {name}"), "Jetzt nicht", "Ansehen"),
        (Dialog::WhatsNew(_), "zh") => (format!("{name} 新功能"), "以后再说", "查看"),
        (Dialog::WhatsNew(_), _) => (format!("What's new in {name}"), "Not now", "Take a look"),
        (Dialog::StoreUpdate(_), "de") => (name.to_string(), "Aktualisieren", ""),
        (Dialog::StoreUpdate(_), "zh") => (name.to_string(), "更新", ""),
        (Dialog::StoreUpdate(_), _) => (name.to_string(), "Update", ""),
        (Dialog::NotResponding(_), "de") => {
            (format!("{name} reagiert nicht"), "Warten", "App schließen")
        }
        (Dialog::NotResponding(_), "zh") => (format!("“{name}”没有响应"), "等待", "关闭应用"),
        (Dialog::NotResponding(_), _) => (format!("{name} isn't responding"), "Wait", "Close app"),
    }
}

/// The dialog's window, as the dump shows it (only this window).
pub fn screen(phone: &Phone, d: Dialog, w: i32, h: i32) -> Node {
    let (title, first, second) = texts(phone, d);
    let (pkg, ids): (&str, [&str; 3]) = match d {
        Dialog::Permission(_) => (
            "com.google.android.permissioncontroller",
            [
                "com.android.permissioncontroller:id/permission_message",
                "com.android.permissioncontroller:id/permission_allow_button",
                "com.android.permissioncontroller:id/permission_deny_button",
            ],
        ),
        Dialog::WhatsNew(i) => (phone.apps[i].def.package, ["", "", ""]),
        Dialog::StoreUpdate(_) => (
            "com.android.vending",
            ["com.android.vending:id/title", "", ""],
        ),
        Dialog::NotResponding(_) => (
            "android",
            [
                "android:id/alertTitle",
                "android:id/aerr_wait",
                "android:id/aerr_close",
            ],
        ),
    };
    let (first_choice, second_choice) = match d {
        Dialog::Permission(_) => (Choice::Dismiss, Choice::Deny),
        Dialog::NotResponding(_) => (Choice::Dismiss, Choice::Close),
        // The store's "Update" button starts a download, not a way back.
        Dialog::StoreUpdate(_) => (Choice::Deny, Choice::Deny),
        Dialog::WhatsNew(_) => (Choice::Dismiss, Choice::Dismiss),
    };
    let full = matches!(d, Dialog::StoreUpdate(_));
    let (top, bottom) = if full { (0, h) } else { (h / 3, h * 2 / 3) };
    let mut window = Node::new("android.widget.FrameLayout", pkg, [0, top, w, bottom]).child(
        Node::new(
            "android.widget.TextView",
            pkg,
            [40, top + 40, w - 40, top + 200],
        )
        .rid(ids[0])
        .text(&title),
    );
    let button = |text: &str, rid: &str, x0: i32, choice: Choice| {
        Node::new(
            "android.widget.Button",
            pkg,
            [x0, bottom - 200, x0 + w / 2 - 60, bottom - 60],
        )
        .rid(rid)
        .text(text)
        .click(Action::Dialog(choice))
    };
    window = window.child(button(first, ids[1], 40, first_choice));
    if !second.is_empty() {
        window = window.child(button(second, ids[2], w / 2 + 20, second_choice));
    }
    window
}

/// The dialog closes with `choice`.
pub fn close(phone: &mut Phone, choice: Choice) {
    let Some(d) = phone.dialog else { return };
    phone.ui_changed = Instant::now();
    // The store's page: its button opens the download, the dialog stays.
    if matches!((d, choice), (Dialog::StoreUpdate(_), Choice::Deny)) {
        return;
    }
    phone.dialog = None;
    match (d, choice) {
        (Dialog::Permission(i), c) => phone.set_notifications_allowed(i, c == Choice::Dismiss),
        (Dialog::NotResponding(i), Choice::Close) => phone.force_stop(i),
        _ => {}
    }
}

/// BACK while a dialog is up: it closes (the prompt counts as denied, the
/// store's page goes back to the app).
pub fn back(phone: &mut Phone) {
    if let Some(d) = phone.dialog.take() {
        phone.ui_changed = Instant::now();
        if let Dialog::Permission(i) = d {
            phone.set_notifications_allowed(i, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::PhoneSimConfig;
    use super::*;

    fn phone(yaml: &str) -> Phone {
        let cfg: PhoneSimConfig = serde_yaml_ng::from_str(&format!(
            "name: t\ncold_start_ms: 0\napps: {{signal: {{account: '+4915100000001'}}}}\n{yaml}"
        ))
        .unwrap();
        Phone::new(cfg)
    }

    #[test]
    fn first_start_on_android_13_asks_once_and_deny_stops_notifications() {
        let mut p = phone("sdk: 33\ninterruptions: {notification_prompt: true}\n");
        p.launch(0);
        p.tick();
        assert_eq!(visible(&p), Some(Dialog::Permission(0)));
        back(&mut p);
        assert_eq!(p.notifications_allowed(0), Some(false));
        // As the app op too (what `devices prepare` reads with appops get).
        let op = (
            "org.thoughtcrime.securesms".to_string(),
            "POST_NOTIFICATION".to_string(),
        );
        assert_eq!(p.appops.get(&op).map(String::as_str), Some("ignore"));
        p.force_stop(0);
        p.launch(0);
        assert_eq!(p.dialog, None, "asked once");
    }

    #[test]
    fn older_android_never_asks() {
        let mut p =
            phone("sdk: 30\nandroid_release: '11'\ninterruptions: {notification_prompt: true}\n");
        p.launch(0);
        assert_eq!(p.dialog, None);
    }

    #[test]
    fn the_rate_decides_how_often_and_the_texts_follow_the_locale() {
        let mut p = phone("locale: de-DE\ninterruptions: {rate: 0.5}\n");
        let mut shown = 0;
        for _ in 0..400 {
            p.force_stop(0);
            p.launch(0);
            if let Some(d) = p.dialog {
                shown += 1;
                let n = screen(&p, d, 1080, 2400);
                let mut texts = Vec::new();
                n.walk(&mut |x| texts.push(x.text.clone()));
                assert!(
                    texts
                        .iter()
                        .any(|t| ["Jetzt nicht", "Aktualisieren", "Warten"].contains(&t.as_str())),
                    "{texts:?}"
                );
            }
        }
        assert!((150..250).contains(&shown), "{shown} of 400");
    }
}
