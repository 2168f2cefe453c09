//! The `load` command line on its own (the end-to-end tests in `tests/` need it
//! built, and an integration test here is what makes `cargo test` build it).

use std::process::Command;

#[test]
fn help_lists_every_exit_status() {
    let output = Command::new(env!("CARGO_BIN_EXE_load"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for status in [
        "0   everything",
        "3   stored offsets",
        "4   the destination",
        "5   the Kafka",
        "75  the database file",
    ] {
        assert!(help.contains(status), "--help lacks {status:?}");
    }
}

#[test]
fn an_unknown_destination_is_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_load"))
        .args(["--dest", "oracle"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("oracle"));
}
