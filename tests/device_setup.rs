//! What a phone needs set up, by Android release: a mock location
//! (`device::location`: Android 12+ through the shell's `cmd location`,
//! Android 9–11 through Appium Settings' `LocationService`, a clear error
//! when an Android 9 phone lacks the app) and the ADBKeyboard IME, which a
//! phone lacks until a lab installs it. Simulated phones reached directly
//! over ADB (no adb server).

#[path = "phone_sim_support.rs"]
mod support;

use matador::device::adb::Target;
use matador::device::phone::Device;
use matador_lab::phone::sim::PhoneSim;
use support::*;

async fn phone(name: char, release: &str, sdk: u32, appium: bool) -> (PhoneSim, Device) {
    let mut c = phone_config(name, None, 0, false);
    (c.android_release, c.sdk, c.appium_settings) = (release.into(), sdk, appium);
    let p = start_phone(c).await;
    let d = Device::open(Target::Direct(p.adb_addr)).await.unwrap();
    (p, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_location_by_release() {
    let (_p14, d14) = phone('a', "14", 34, false).await;
    d14.mock_location(52.52, 13.405).await.unwrap();
    let (_p11, d11) = phone('b', "11", 30, true).await;
    d11.mock_location(-33.8688, 151.2093).await.unwrap();
    let loc = d11.sh_ok("dumpsys location").await.unwrap();
    assert!(loc.contains("-33.868800,151.209300"), "{loc}");
    // The old road does not exist on Android 11.
    let r = d11
        .sh("cmd location providers add-test-provider gps")
        .await
        .unwrap();
    assert_ne!(r.rc, 0, "cmd location on Android 11: {r:?}");
    // Android 9 without Appium Settings: an error naming what to install.
    let (_p9, d9) = phone('c', "9", 28, false).await;
    let e = d9.mock_location(48.85, 2.35).await.unwrap_err().to_string();
    assert!(e.contains("io.appium.settings"), "{e}");
}

/// A phone out of the box has no ADBKeyboard: a text that is not printable
/// ASCII is refused with the reason, not typed as garbage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_ascii_text_needs_the_ime() {
    let mut c = phone_config('a', None, 0, false);
    c.adb_keyboard = false;
    let p = start_phone(c).await;
    let d = Device::open(Target::Direct(p.adb_addr)).await.unwrap();
    let ime = d.sh_ok("ime list -a -s").await.unwrap();
    assert!(!ime.contains("adbkeyboard"), "{ime}");
    let apps = load_app_profiles();
    let wa = apps.iter().find(|a| a.id == "whatsapp").unwrap();
    let e = d
        .send_message(wa, &account("whatsapp", 'b'), "Lab B", "grüße", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("ADBKeyboard"), "{e}");
}
