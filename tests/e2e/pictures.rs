//! The README's pictures come from the real TUI through
//! `assets/pictures/make.py`: the script must keep working as the UI
//! changes, and each picture must show what its caption promises.

use std::process::Command;

#[test]
fn the_picture_script_draws_the_dashboard_the_replication_view_and_a_run() {
    let out = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/pictures/make.py");
    let status = Command::new("python3")
        .arg(script)
        .arg("--ferry")
        .arg(env!("CARGO_BIN_EXE_ferry"))
        .arg("--out")
        .arg(out.path())
        .status()
        .expect("python3 is installed (.ci/run installs it)");
    assert!(status.success(), "make.py failed: {status}");
    for (name, shows) in [
        ("dashboard", "Recent alarms"),
        ("replication", "db-01"),
        ("run", "test of Three-tier"),
    ] {
        let svg = std::fs::read_to_string(out.path().join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{name}.svg is not an SVG");
        assert!(
            svg.contains(shows),
            "{name}.svg does not show {shows:?}:\n{svg}"
        );
        assert!(
            svg.matches("<text").count() > 20,
            "{name}.svg is nearly empty"
        );
    }
}
