//! `matador probe` without a lab: the safety warning in --help, usage
//! errors, and refusal to probe anything not named.

use assert_cmd::Command;

fn matador() -> Command {
    Command::cargo_bin("matador").unwrap()
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
    let out = matador()
        .args([
            "probe",
            "--app",
            "nosuchapp",
            "--vantage",
            "a",
            "--control",
            "b",
        ])
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("unknown app \"nosuchapp\""), "{err}");
    let out = matador()
        .args([
            "probe",
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
        ])
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("--endpoint needs exactly one --app"), "{err}");
    let out = matador()
        .args([
            "probe",
            "--app",
            "line",
            "--endpoint",
            "bad host:443",
            "--vantage",
            "a",
            "--control",
            "b",
        ])
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("bad host name"), "{err}");
    // No lab.json and no namespace: the vantage cannot be reached.
    let out = matador()
        .args(["probe", "--app", "line", "--vantage", "a", "--control", "b"])
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("vantage a: no network namespace"), "{err}");
    let out = matador()
        .args([
            "probe",
            "--app",
            "line",
            "--vantage",
            "a",
            "--control",
            "b",
            "--rate",
            "0",
        ])
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("--rate"), "{err}");
    let out = matador()
        .args([
            "probe",
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
        ])
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("--interval"), "{err}");
}
