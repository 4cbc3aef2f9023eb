//! `tests/total`, which ends `tests/run` with one line summing every test
//! binary's result, run over canned `cargo test` output.

use std::process::Command;

/// Runs `tests/total` over a command printing `output` and exiting `status`:
/// its exit status and the lines it printed.
fn total(output: &str, status: i32) -> (Option<i32>, Vec<String>) {
    let script = format!("printf '%s' \"$0\"; exit {status}");
    let o = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/total"))
        .args(["sh", "-c", &script, output])
        .output()
        .unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    (o.status.code(), text.lines().map(String::from).collect())
}

#[test]
fn sums_every_result_line_and_keeps_the_status() {
    let cargo = "running 4 tests\n\
        test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
        \n\
        test a::b ... FAILED\n\
        test result: FAILED. 10 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 2.50s\n";
    let (status, lines) = total(cargo, 101);
    assert_eq!(status, Some(101));
    assert_eq!(lines.last().unwrap(), "13 passed, 2 failed");
    assert!(
        lines.contains(&"test a::b ... FAILED".to_string()),
        "{lines:?}"
    );

    let (status, lines) = total(&cargo.replace("2 failed", "0 failed"), 0);
    assert_eq!(status, Some(0));
    assert_eq!(lines.last().unwrap(), "13 passed, 0 failed");
}

#[test]
fn a_failure_without_a_failed_test_is_explained() {
    let (status, lines) = total("error[E0425]: cannot find value `x`\n", 101);
    assert_eq!(status, Some(101));
    assert_eq!(lines.last().unwrap(), "0 passed, 0 failed");
    assert!(
        lines[lines.len() - 2].contains("without a failed test"),
        "{lines:?}"
    );
}
