//! Interruptions: what real phones put in front of the chat while matador
//! waits for an element — the app's own sheets ("what's new", backup
//! reminders, update prompts), Android's permission and "isn't responding"
//! dialogs, another app's window. The simulator's screens never had them;
//! real apps show them after updates and on first start.
//!
//! While a wait has not found its element, each UI dump is also checked
//! here ([`next`]); the action found is carried out and the wait goes on.
//! Bounded by a [`Budget`] so a dialog that comes back forever ends in the
//! usual "selector not found" error with the dump saved, not in a loop.

use super::profile::AppProfile;
use super::uidump::{Selector, UiNode};

/// System dialogs matched by resource id whatever the app, the language or
/// the vendor's wording. Sources (AOSP):
/// - `permission_allow_button`: PermissionController's
///   `res/layout/grant_permissions.xml` (package
///   `com.android.permissioncontroller` from Android 10, before that
///   `com.android.packageinstaller` with the same id). Allowed, not denied:
///   Android 13+ asks for `POST_NOTIFICATIONS` on first start, and the
///   receipt detector reads the app's notifications.
/// - `android:id/aerr_wait`: the "Wait" button of
///   `AppNotRespondingDialog` (`core/res/res/layout/app_anr_dialog.xml`);
///   waiting keeps the app and its state, "Close app" would kill it.
pub const SYSTEM_DISMISS: [&str; 3] = [
    "com.android.permissioncontroller:id/permission_allow_button",
    "com.android.packageinstaller:id/permission_allow_button",
    "android:id/aerr_wait",
];

/// What to do about the screen in front.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Tap this node (a dismiss button); `by` names the selector.
    Tap {
        /// The button.
        node: UiNode,
        /// The selector that matched (for the record).
        by: String,
    },
    /// Press BACK: another app's window is in front (`package`).
    Back {
        /// The package in front.
        package: String,
    },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Tap { by, .. } => write!(f, "dismissed {by}"),
            Action::Back { package } => write!(f, "back key ({package} in front)"),
        }
    }
}

/// How many interruptions one wait may handle.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Taps on dismiss buttons left.
    pub taps: u32,
    /// BACK presses left.
    pub backs: u32,
    /// Consecutive dumps that showed a foreign window (BACK only after
    /// two: an app being launched shows the previous window for a moment).
    foreign_seen: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            taps: 5,
            backs: 2,
            foreign_seen: 0,
        }
    }
}

/// The action for the current dump, if any (and counts it against
/// `budget`). Dismiss buttons first: the app's own selectors (profile
/// `ui.dismiss`, localized alternatives side by side), then the system
/// dialogs of [`SYSTEM_DISMISS`]; then BACK when two dumps in a row show no
/// node of the app at all (another app or the launcher on top).
pub fn next(nodes: &[UiNode], app: &AppProfile, budget: &mut Budget) -> Option<Action> {
    if nodes.is_empty() {
        return None;
    }
    if budget.taps > 0
        && let Some(a) = dismiss_button(nodes, &app.ui.dismiss)
    {
        budget.taps -= 1;
        budget.foreign_seen = 0;
        return Some(a);
    }
    let front = nodes.iter().find(|n| !n.package.is_empty());
    let foreign = front.is_some() && !nodes.iter().any(|n| n.package == app.package);
    if !foreign {
        budget.foreign_seen = 0;
        return None;
    }
    budget.foreign_seen += 1;
    if budget.foreign_seen < 2 || budget.backs == 0 {
        return None;
    }
    budget.backs -= 1;
    budget.foreign_seen = 0;
    front.map(|n| Action::Back {
        package: n.package.clone(),
    })
}

/// The first dismiss button on screen: the app's selectors in their order,
/// then the system dialogs'.
fn dismiss_button(nodes: &[UiNode], app: &[Selector]) -> Option<Action> {
    let system = SYSTEM_DISMISS.iter().map(|id| Selector {
        resource_id: Some((*id).to_string()),
        ..Selector::default()
    });
    app.iter().cloned().chain(system).find_map(|s| {
        nodes.iter().find(|n| s.matches(n)).map(|n| Action::Tap {
            node: n.clone(),
            by: s.to_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::uidump::parse;

    fn app() -> AppProfile {
        AppProfile::parse(
            "id: signal\npackage: org.thoughtcrime.securesms\nui:\n  text_field: [{resource_id: x}]\n  send_button: [{resource_id: y}]\n  dismiss: [{text: \"Not now\"}, {text: \"Jetzt nicht\"}]\n",
            std::path::Path::new("signal.yaml"),
        )
        .unwrap()
    }

    /// A dump in the shape `uiautomator dump` writes (AOSP
    /// `AccessibilityNodeInfoDumper`: `<hierarchy rotation=…>` of `<node>`s
    /// with index, text, resource-id, class, package, content-desc, …,
    /// bounds).
    fn dump(nodes: &[(&str, &str, &str)]) -> Vec<UiNode> {
        let mut x = String::from(
            "<?xml version='1.0' encoding='UTF-8' standalone='yes' ?><hierarchy rotation=\"0\">",
        );
        for (i, (text, id, pkg)) in nodes.iter().enumerate() {
            x.push_str(&format!(
                "<node index=\"{i}\" text=\"{text}\" resource-id=\"{id}\" class=\"android.widget.Button\" package=\"{pkg}\" content-desc=\"\" checkable=\"false\" checked=\"false\" clickable=\"true\" enabled=\"true\" focusable=\"true\" focused=\"false\" scrollable=\"false\" long-clickable=\"false\" password=\"false\" selected=\"false\" bounds=\"[100,{y}][980,{y2}]\" />",
                y = 1000 + i * 100,
                y2 = 1080 + i * 100
            ));
        }
        x.push_str("</hierarchy>");
        parse(&x)
    }

    #[test]
    fn the_apps_localized_dismiss_button_is_tapped() {
        let mut b = Budget::default();
        let n = dump(&[
            ("Neu in Signal", "", "org.thoughtcrime.securesms"),
            ("Jetzt nicht", "", "org.thoughtcrime.securesms"),
        ]);
        match next(&n, &app(), &mut b) {
            Some(Action::Tap { node, by }) => {
                assert_eq!(node.text, "Jetzt nicht");
                assert!(by.contains("Jetzt nicht"), "{by}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(b.taps, 4);
    }

    #[test]
    fn the_notification_permission_is_allowed_by_resource_id() {
        // Android 13+ asks on first start, in the phone's language.
        let n = dump(&[
            (
                "Signal erlauben, dir Benachrichtigungen zu senden?",
                "com.android.permissioncontroller:id/permission_message",
                "com.google.android.permissioncontroller",
            ),
            (
                "Zulassen",
                "com.android.permissioncontroller:id/permission_allow_button",
                "com.google.android.permissioncontroller",
            ),
            (
                "Nicht zulassen",
                "com.android.permissioncontroller:id/permission_deny_button",
                "com.google.android.permissioncontroller",
            ),
        ]);
        match next(&n, &app(), &mut Budget::default()) {
            Some(Action::Tap { node, .. }) => assert_eq!(node.text, "Zulassen"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_anr_dialog_is_waited_on_not_closed() {
        let n = dump(&[
            ("Close app", "android:id/aerr_close", "android"),
            ("Wait", "android:id/aerr_wait", "android"),
        ]);
        match next(&n, &app(), &mut Budget::default()) {
            Some(Action::Tap { node, .. }) => assert_eq!(node.resource_id, "android:id/aerr_wait"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn back_only_after_a_foreign_window_stays_and_within_budget() {
        let mut b = Budget::default();
        let store = dump(&[("Update", "", "com.android.vending")]);
        // First sight: maybe the app is still starting.
        assert_eq!(next(&store, &app(), &mut b), None);
        assert_eq!(
            next(&store, &app(), &mut b),
            Some(Action::Back {
                package: "com.android.vending".into()
            })
        );
        assert_eq!(next(&store, &app(), &mut b), None);
        assert!(matches!(
            next(&store, &app(), &mut b),
            Some(Action::Back { .. })
        ));
        // Budget spent: the wait ends in its usual error instead.
        for _ in 0..4 {
            assert_eq!(next(&store, &app(), &mut b), None);
        }
    }

    #[test]
    fn the_apps_own_screen_is_left_alone() {
        let mut b = Budget::default();
        let chat = dump(&[("Alice", "", "org.thoughtcrime.securesms")]);
        for _ in 0..3 {
            assert_eq!(next(&chat, &app(), &mut b), None);
        }
        assert_eq!(next(&[], &app(), &mut b), None);
        assert_eq!((b.taps, b.backs), (5, 2));
    }

    #[test]
    fn the_tap_budget_ends_a_dialog_that_always_comes_back() {
        let mut b = Budget::default();
        let n = dump(&[("Not now", "", "org.thoughtcrime.securesms")]);
        let taps = (0..10)
            .filter(|_| next(&n, &app(), &mut b).is_some())
            .count();
        assert_eq!(taps, 5);
    }
}
