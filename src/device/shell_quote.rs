//! Quoting one word for the phone's shell (toybox `sh` on Android, any POSIX
//! shell): the one quoting rule the device code uses to build `adb shell`
//! command lines, and that the virtual lab's shell simulator also uses.

/// Quotes `s` so that a POSIX shell reads it back as exactly one word with
/// exactly this text: single quotes, with `'` written as `'\''`
/// (POSIX.1-2017, Shell Command Language, 2.2.3 Single-Quotes: nothing is
/// special inside single quotes, and a single quote cannot occur there).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hostile words: quotes, expansions, substitutions, globs, separators,
    /// newlines, backslashes, leading dashes, non-ASCII.
    const WORDS: [&str; 14] = [
        "",
        "a b",
        "it's",
        "'''",
        "$(touch /x)",
        "`id`",
        "$HOME ${PATH}",
        "*.txt ?",
        "a; b && c | d &",
        "a\nb",
        "\\",
        "\\'\"",
        "-n",
        "héllo ✓",
    ];

    #[test]
    fn literal_text_in_single_quotes() {
        assert_eq!(quote("abc"), "'abc'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    /// The system's own POSIX shell (not our simulator) reads each quoted
    /// word back as one argument with the original text.
    #[test]
    fn the_system_shell_reads_back_the_word() {
        for w in WORDS {
            // printf's own format is the first word; `%s` prints the
            // argument verbatim, `|` marks where each argument ends.
            let line = format!("printf '%s|' {}", quote(w));
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&line)
                .output()
                .expect("sh runs");
            assert!(out.status.success(), "{line}");
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                format!("{w}|"),
                "{line}"
            );
        }
    }
}
