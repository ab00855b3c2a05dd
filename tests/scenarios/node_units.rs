//! The JavaScript tests, run from the workspace's test command so that
//! `cargo nextest run --workspace` runs every test: node's unit tests of the
//! review page and the phone app (`tests/browser/unit/`, against the shared
//! vectors, with the real CLI where a test round-trips through it), and the
//! phone app's device modules end to end against a real server
//! (`tests/browser/app-e2e-node.mjs`: enroll from an invite link, sync both
//! ways, a concurrent description merge, uploads, a bundle, delete after
//! sync, each checked by a CLI coordinator).
//!
//! They need node 20 and `npm ci` in `tests/browser` (`.ci/run` does it);
//! `FIELDSYNC_SKIP_BROWSER=1` skips them knowingly.

use std::path::{Path, PathBuf};
use std::process::Command;

fn browser_dir() -> Option<PathBuf> {
    if std::env::var_os("FIELDSYNC_SKIP_BROWSER").is_some() {
        eprintln!("SKIPPED: FIELDSYNC_SKIP_BROWSER is set");
        return None;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        dir.join("node_modules/fake-indexeddb").exists(),
        "the JavaScript tests need node 20 and their packages: `npm ci` in tests/browser (.ci/run does it), or set FIELDSYNC_SKIP_BROWSER=1"
    );
    Some(dir)
}

fn run_node(dir: &Path, args: &[&str]) {
    let bin = fieldsync_tests::fieldsync_bin();
    let out = Command::new("node")
        .args(args)
        .current_dir(dir)
        .env("FIELDSYNC_BIN", &bin)
        .env("FIELDSYNC_REQUIRE_BIN", "1")
        .output()
        .expect("run node (install Node.js 20 or later)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "node {} failed:\n{stdout}\n{stderr}",
        args.join(" ")
    );
    print!("{stdout}");
}

#[test]
fn the_browser_code_passes_its_node_unit_tests() {
    let Some(dir) = browser_dir() else { return };
    run_node(&dir, &["--test", "--test-reporter=tap", "unit/"]);
}

#[test]
fn the_phone_apps_device_modules_enroll_sync_and_merge_against_a_real_server() {
    let Some(dir) = browser_dir() else { return };
    let bin = fieldsync_tests::fieldsync_bin();
    run_node(&dir, &["app-e2e-node.mjs", bin.to_str().unwrap()]);
}
