//! Getting a message text into the focused field. This is a security
//! boundary: the text passes through the phone's shell and must never be
//! interpreted by it. Printable ASCII without `%` goes through `input text`
//! inside single quotes (spaces as `%s`, which Android turns back into
//! spaces); everything else (non-ASCII, newlines, tabs, `%`) goes through the
//! ADBKeyboard input method as base64, which has no shell metacharacters.

use super::shell_quote::quote;
use base64::Engine;

/// The ADBKeyboard input method id.
pub const ADB_KEYBOARD: &str = "com.android.adbkeyboard/.AdbIME";

/// How a text is typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typing {
    /// One `input text` command line.
    InputText(String),
    /// An ADBKeyboard broadcast command line (the IME must be selected).
    AdbKeyboard(String),
}

/// Plans the command that types `text`.
pub fn plan(text: &str) -> Typing {
    let simple =
        !text.is_empty() && text.chars().all(|c| (' '..='~').contains(&c)) && !text.contains('%');
    if simple {
        Typing::InputText(format!("input text {}", quote(&text.replace(' ', "%s"))))
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        Typing::AdbKeyboard(format!(
            "am broadcast -a ADB_INPUT_B64 --es msg {}",
            quote(&b64)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_content() {
        assert_eq!(
            plan("hi there"),
            Typing::InputText("input text 'hi%sthere'".into())
        );
        assert_eq!(
            plan("it's"),
            Typing::InputText("input text 'it'\\''s'".into())
        );
        assert!(matches!(plan("50% off"), Typing::AdbKeyboard(_)));
        assert!(matches!(plan("grüße"), Typing::AdbKeyboard(_)));
        assert!(matches!(plan("a\nb"), Typing::AdbKeyboard(_)));
        if let Typing::AdbKeyboard(c) = plan("$(x) `y`") {
            assert!(!c.contains('$') && !c.contains('`'));
        }
    }
}
