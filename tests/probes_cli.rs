//! `matador probe` without a lab: the safety warning in --help, usage
//! errors, and refusal to probe anything not named.

use assert_cmd::Command;

fn matador() -> Command {
    Command::cargo_bin("matador").unwrap()
}

/// `matador probe ARGS` exits 1 with `needle` in its error output.
fn fails_with(args: &[&str], needle: &str) {
    let out = matador().arg("probe").args(args).assert().code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains(needle), "{args:?}: {err}");
}

#[test]
fn help_warns_about_operator_risk() {
    let out = matador().args(["probe", "--help"]).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains("put the operator at risk"), "{text}");
    assert!(text.contains("informed-consent"), "{text}");
    assert!(text.contains("--max-requests"), "{text}");
    let top = matador().arg("--help").assert().success();
    let top = String::from_utf8_lossy(&top.get_output().stdout).into_owned();
    assert!(top.contains("probe"), "{top}");
}

#[test]
fn usage_errors_name_the_problem() {
    // Nothing to probe without --app, --vantage and --control.
    matador()
        .args(["probe", "--vantage", "a", "--control", "b"])
        .assert()
        .code(2);
    fails_with(
        &["--app", "nosuchapp", "--vantage", "a", "--control", "b"],
        "unknown app \"nosuchapp\"",
    );
    fails_with(
        &[
            "--app",
            "line",
            "--app",
            "signal",
            "--endpoint",
            "a.example:443",
            "--vantage",
            "a",
            "--control",
            "b",
        ],
        "--endpoint needs exactly one --app",
    );
    fails_with(
        &[
            "--app",
            "line",
            "--endpoint",
            "bad host:443",
            "--vantage",
            "a",
            "--control",
            "b",
        ],
        "bad host name",
    );
    // No lab.json and no namespace: the vantage cannot be reached.
    fails_with(
        &["--app", "line", "--vantage", "a", "--control", "b"],
        "vantage a: no network namespace",
    );
    fails_with(
        &[
            "--app",
            "line",
            "--vantage",
            "a",
            "--control",
            "b",
            "--rate",
            "0",
        ],
        "--rate",
    );
    fails_with(
        &[
            "--app",
            "line",
            "--vantage",
            "a",
            "--control",
            "b",
            "--repeat",
            "2",
            "--interval",
            "1e30",
        ],
        "--interval",
    );
}
