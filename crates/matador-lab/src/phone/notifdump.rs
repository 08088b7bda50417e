//! `dumpsys notification [--noredact]` as the simulated phone's Android
//! release prints it, after AOSP's `NotificationRecord.dump` /
//! `dumpNotification`
//! (services/core/java/com/android/server/notification/NotificationRecord.java):
//! Android 9 (SDK 28) prints the notification's fields inline and no
//! `when=`; Android 10–12 (SDK 29–32) add `opPkg=`, `when=` inline and
//! `mInterruptionTimeMs`; Android 13+ (SDK 33+) nest them under
//! `notification=` with a `publicNotification=` block and redact as
//! ` [length=N]` (earlier releases print the class name alone).
//!
//! The simulated apps post MessagingStyle (`android.messages`), one
//! notification per chat, updated for every new message: `mCreationTimeMs`
//! stays at the first message, `mUpdateTimeMs` moves; `when` is the
//! message's time in whole seconds, as messengers set it.

use super::state::Notification;
use std::fmt::Write;

/// The dump format families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Pie,
    Eleven,
    Fourteen,
}

fn family(sdk: u32) -> Family {
    match sdk {
        0..=28 => Family::Pie,
        29..=32 => Family::Eleven,
        _ => Family::Fourteen,
    }
}

/// A CharSequence extra: `Class (value)`, or redacted.
fn cs(class: &str, v: &str, redact: bool, f: Family) -> String {
    match (redact, f) {
        (false, _) => format!("{class} ({v})"),
        (true, Family::Fourteen) => format!("{class} [length={}]", v.encode_utf16().count()),
        (true, _) => class.to_string(),
    }
}

fn extras(out: &mut String, q: &str, n: &Notification, redact: bool, f: Family) {
    let _ = writeln!(out, "{q}extras={{");
    let k = format!("{q}    ");
    let _ = writeln!(
        out,
        "{k}android.title={}",
        cs("String", &n.title, redact, f)
    );
    let _ = writeln!(
        out,
        "{k}android.template=String (android.app.Notification$MessagingStyle)"
    );
    let _ = writeln!(
        out,
        "{k}android.text={}",
        cs("SpannableString", &n.text, redact, f)
    );
    let _ = writeln!(out, "{k}android.conversationTitle=null");
    let _ = write!(
        out,
        "{k}android.messages=Parcelable[] ({})",
        n.messages.len()
    );
    if !redact {
        for (j, (text, time)) in n.messages.iter().enumerate() {
            let _ = write!(
                out,
                "\n{q}      [{j}] Bundle[{{sender={}, text={text}, time={time}}}]",
                n.title
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{k}android.showWhen=Boolean (true)");
    let _ = writeln!(out, "{q}}}");
}

fn record(out: &mut String, n: &Notification, redact: bool, f: Family) {
    let key = format!("0|{}|{}|null|{}", n.package, n.id, n.uid);
    let hash = 0x1000_0000u32.wrapping_add(n.id as u32 * 7919);
    let notif = format!(
        "Notification(channel={} shortcut=null contentView=null vibrate=null sound=default defaults=0x0 flags=0x10 color=0xff075e54 category=msg actions=2 vis=PRIVATE)",
        n.channel
    );
    let locked = if f == Family::Pie {
        "appImportanceLocked=false"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "    NotificationRecord(0x{hash:08x}: pkg={} user=UserHandle{{0}} id={} tag=null importance=4 key={key}{locked}: {notif})",
        n.package, n.id
    );
    let p = "      ";
    let _ = writeln!(out, "{p}uid={} userId=0", n.uid);
    if f != Family::Pie {
        let _ = writeln!(out, "{p}opPkg={}", n.package);
    }
    let _ = writeln!(
        out,
        "{p}icon=Icon(typ=RESOURCE pkg={} id=0x7f080a4d)\n{p}flags=0x10",
        n.package
    );
    if f == Family::Fourteen {
        let _ = writeln!(out, "{p}originalFlags=0x10");
    }
    let _ = writeln!(
        out,
        "{p}pri=1\n{p}key={key}\n{p}seen=false\n{p}groupKey=0|{}|g:messages",
        n.package
    );
    let q = if f == Family::Fourteen {
        let _ = writeln!(out, "{p}notification=");
        "            "
    } else {
        p
    };
    let _ = writeln!(
        out,
        "{q}fullscreenIntent=null\n{q}contentIntent=PendingIntent{{a1b2c3: PendingIntentRecord{{d4e5f6 {} startActivity}}}}\n{q}deleteIntent=null",
        n.package
    );
    if f != Family::Pie {
        let _ = writeln!(
            out,
            "{q}number=0\n{q}groupAlertBehavior=0\n{q}when={}",
            n.when_ms
        );
    }
    let _ = writeln!(
        out,
        "{q}tickerText=null\n{q}contentView=null\n{q}bigContentView=null\n{q}headsUpContentView=null"
    );
    // Android 9–12 print color= without a newline before timeout=.
    if f == Family::Fourteen {
        let _ = writeln!(out, "{q}color=0xff075e54\n{q}timeout=null");
    } else {
        let _ = writeln!(out, "{q}color=0xff075e54{q}timeout=null");
    }
    extras(out, q, n, redact, f);
    if f == Family::Fourteen {
        let _ = writeln!(
            out,
            "{p}publicNotification=\n{q}when={}\n{q}extras={{\n{q}    android.title=String (1 new message)\n{q}}}",
            n.when_ms
        );
    }
    let _ = writeln!(
        out,
        "{p}stats=SingleNotificationStats{{posttimeElapsedMs=0}}\n{p}mRankingTimeMs={}\n{p}mCreationTimeMs={}\n{p}mVisibleSinceMs=0\n{p}mUpdateTimeMs={}",
        n.when_ms, n.created_ms, n.updated_ms
    );
    if f != Family::Pie {
        let _ = writeln!(out, "{p}mInterruptionTimeMs={}", n.updated_ms);
    }
    let _ = writeln!(out, "{p}mSuppressedVisualEffects= 0\n{p}mAdjustments=[]");
}

/// The whole `dumpsys notification` output for an SDK level.
pub fn render(sdk: u32, notifications: &[Notification], noredact: bool) -> String {
    let f = family(sdk);
    let mut out = String::from("Current Notification Manager state:\n  Notification List:\n");
    for n in notifications {
        record(&mut out, n, !noredact, f);
    }
    let _ = writeln!(out, "\n  mNotificationList size: {}", notifications.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// The simulator's dumps of every release family read back through the
    /// device layer's parser (which is itself tested on fixtures written
    /// from the AOSP sources): text, update time, redaction.
    #[test]
    fn every_family_parses_with_the_device_parser() {
        let n = Notification {
            package: "com.whatsapp".into(),
            id: 3,
            uid: 10123,
            title: "Lab B".into(),
            text: "second (2) [m0001-3]".into(),
            when_ms: 1_765_000_001_000,
            created_ms: 1_765_000_000_100,
            updated_ms: 1_765_000_001_234,
            messages: vec![
                ("first [m0001-1]".into(), 1_765_000_000_000),
                ("second (2) [m0001-3]".into(), 1_765_000_001_000),
            ],
            shown: Instant::now(),
            channel: "msg",
        };
        for sdk in [28, 30, 34] {
            let parsed =
                matador::device::notif::parse(&render(sdk, std::slice::from_ref(&n), true));
            assert_eq!(parsed.len(), 1, "sdk {sdk}");
            let p = &parsed[0];
            assert!(
                p.shows("second (2) [m0001-3]") && p.shows("first [m0001-1]"),
                "sdk {sdk}: {p:?}"
            );
            assert_eq!(p.posted_ms(), Some(1_765_000_001_234), "sdk {sdk}");
            assert_eq!(
                p.when_ms,
                (sdk > 28).then_some(1_765_000_001_000),
                "sdk {sdk}"
            );
            let redacted =
                matador::device::notif::parse(&render(sdk, std::slice::from_ref(&n), false));
            assert!(
                redacted[0].redacted && !redacted[0].shows("second (2) [m0001-3]"),
                "sdk {sdk}"
            );
        }
    }
}
