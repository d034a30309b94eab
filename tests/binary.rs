//! Tests of the `kubedst` binary as a user runs it. The command line grows with the scenario
//! format; for now it reports its version.

use std::process::Command;

#[test]
fn the_binary_runs_and_names_its_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_kubedst")).output().expect("the kubedst binary runs");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text.trim(), format!("kubedst {}", env!("CARGO_PKG_VERSION")));
}
