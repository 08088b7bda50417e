//! How a phone is given a mock location, by Android release.
//!
//! - Android 12+ (SDK 31+): the shell itself, `cmd location providers …`
//!   (AOSP `LocationShellCommand`, added in Android 12), with the shell
//!   allowed the `MOCK_LOCATION` app op.
//! - Android 9–11 (SDK 28–30): no shell command exists, so a test provider
//!   must be set by an app. matador uses Appium Settings
//!   (`io.appium.settings`, github.com/appium/io.appium.settings, the app
//!   Appium itself installs for this): the app is allowed the
//!   `MOCK_LOCATION` op and its `LocationService` started with the
//!   coordinates as string extras — the call appium-adb makes
//!   (`am start-foreground-service` on Android 8+).
//!
//! Either way the result is checked in `dumpsys location`, where AOSP's
//! `Location.toString` prints coordinates as `%.6f,%.6f`.

/// The Appium Settings package (Android 9–11 mock locations).
pub const APPIUM_SETTINGS: &str = "io.appium.settings";

/// The way a release takes a mock location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockMethod {
    /// `cmd location providers …` (Android 12+).
    LocationCommand,
    /// Appium Settings' `LocationService` (Android 9–11).
    AppiumSettings,
}

impl MockMethod {
    /// The method for an SDK level; `None` below Android 9 (unsupported).
    pub fn for_sdk(sdk: u32) -> Option<MockMethod> {
        match sdk {
            31.. => Some(MockMethod::LocationCommand),
            28..=30 => Some(MockMethod::AppiumSettings),
            _ => None,
        }
    }

    /// The package that must hold the `MOCK_LOCATION` app op.
    pub fn package(self) -> &'static str {
        match self {
            MockMethod::LocationCommand => "com.android.shell",
            MockMethod::AppiumSettings => APPIUM_SETTINGS,
        }
    }

    /// The shell commands that set `lat`, `lon`, in order.
    pub fn commands(self, lat: f64, lon: f64) -> Vec<String> {
        let allow = format!("appops set {} android:mock_location allow", self.package());
        match self {
            MockMethod::LocationCommand => vec![
                allow,
                "cmd location set-location-enabled true".into(),
                "cmd location providers add-test-provider gps".into(),
                "cmd location providers set-test-provider-enabled gps true".into(),
                format!(
                    "cmd location providers set-test-provider-location gps --location {}",
                    coordinates(lat, lon)
                ),
            ],
            MockMethod::AppiumSettings => vec![
                allow,
                format!(
                    "am start-foreground-service --user 0 -n {APPIUM_SETTINGS}/.LocationService --es latitude {lat:.6} --es longitude {lon:.6}"
                ),
            ],
        }
    }
}

/// Coordinates as `Location.toString` prints them.
pub fn coordinates(lat: f64, lon: f64) -> String {
    format!("{lat:.6},{lon:.6}")
}

/// Whether `dumpsys location` shows the mock location.
pub fn active(dumpsys_location: &str, lat: f64, lon: f64) -> bool {
    dumpsys_location.contains(&coordinates(lat, lon))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_by_release() {
        assert_eq!(MockMethod::for_sdk(34), Some(MockMethod::LocationCommand));
        assert_eq!(MockMethod::for_sdk(31), Some(MockMethod::LocationCommand));
        assert_eq!(MockMethod::for_sdk(30), Some(MockMethod::AppiumSettings));
        assert_eq!(MockMethod::for_sdk(28), Some(MockMethod::AppiumSettings));
        assert_eq!(MockMethod::for_sdk(27), None);
    }

    #[test]
    fn appium_commands_carry_the_coordinates_as_string_extras() {
        let c = MockMethod::AppiumSettings.commands(-33.8688, 151.2093);
        assert_eq!(
            c[0],
            "appops set io.appium.settings android:mock_location allow"
        );
        assert!(c[1].contains("-n io.appium.settings/.LocationService"));
        assert!(c[1].contains("--es latitude -33.868800 --es longitude 151.209300"));
        assert!(active(
            "  gps: Location[gps -33.868800,151.209300 hAcc=1.0 et=+1s alt=0.0]",
            -33.8688,
            151.2093
        ));
    }
}
