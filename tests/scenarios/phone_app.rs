//! The reporters' phone app (issue 13, "What must be shown" 1–8) in a real
//! browser: headless Debian chromium at 390×844 with touch, driven by
//! `tests/browser/phone/run.mjs`, against a real `fieldsync serve` serving
//! the app at `/app/`, with the coordinator as a CLI device process.
//!
//! This test makes the server, the case, the coordinator's device and the
//! case key pair (`key new`, key model v2: the phone takes the public key
//! with enrollment and checks it against the fingerprint in its invite
//! link); the script mints an invite per phone with the coordinator's
//! `fieldsync invite --link`, drives the phones and the coordinator's CLI,
//! and checks what each scenario promises. Afterwards this test checks, on
//! its own, what every scenario must leave: each report at the coordinator
//! once, every change signature-verified.
//!
//! `.ci/run` installs chromium and runs `npm ci` in `tests/browser`; without
//! them this test fails and says what to install (set
//! `FIELDSYNC_SKIP_BROWSER=1` to skip it knowingly on a machine without).
//! Screenshots of the Russian and Kazakh screens go to a directory outside
//! the repository, printed at the end.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use fieldsync_tests::{enrolled_device, fieldsync_bin, ServerProcess};
use serde_json::Value;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

#[test]
fn the_reporters_phone_app_end_to_end() {
    if std::env::var_os("FIELDSYNC_SKIP_BROWSER").is_some() {
        eprintln!("SKIPPED: FIELDSYNC_SKIP_BROWSER is set");
        return;
    }
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/playwright-core").exists() && Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Debian's chromium and playwright-core: `apt-get install chromium` and `npm ci` in tests/browser (.ci/run does both), or set FIELDSYNC_SKIP_BROWSER=1"
    );
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let shots = tempfile::Builder::new()
        .prefix("fieldsync-phone-shots-")
        .tempdir()
        .unwrap()
        .keep();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    // The case key pair: the public key is published, and the phones'
    // invite links carry its fingerprint.
    coordinator.ok(&["key", "new", "--case", "almaty"]);

    let out = Command::new("node")
        .arg(dir.join("phone/run.mjs"))
        .env("FIELDSYNC_URL", &server.url)
        .env("FIELDSYNC_BIN", fieldsync_bin())
        .env("FIELDSYNC_DATA", data.path())
        .env("FIELDSYNC_COORDINATOR_HOME", coordinator.path())
        .env("FIELDSYNC_CASE", "almaty")
        .env(
            "FIELDSYNC_FIXTURES",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"),
        )
        .env("FIELDSYNC_WORK", work.path())
        .env("FIELDSYNC_SHOTS", &shots)
        .output()
        .expect("run node (install Node.js 20 or later)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    let result: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("phone/run.mjs printed no result ({e}):\n{stdout}\n{stderr}"));
    eprintln!("screenshots of the phone's screens: {}", shots.display());
    let scenarios = result["scenarios"].as_object().expect("scenarios");
    let failed: Vec<String> = scenarios
        .iter()
        .filter(|(_, s)| s["ok"] != true)
        .map(|(name, s)| {
            format!(
                "{name}:\n  {}",
                s["failures"]
                    .as_array()
                    .map(|f| f
                        .iter()
                        .map(|x| x.as_str().unwrap_or_default().to_owned())
                        .collect::<Vec<_>>()
                        .join("\n  "))
                    .unwrap_or_default()
            )
        })
        .collect();
    for (name, s) in scenarios {
        eprintln!(
            "{name}: {} in {} ms",
            if s["ok"] == true { "ok" } else { "FAILED" },
            s["ms"]
        );
    }
    assert!(
        out.status.success() && result["ok"] == true && failed.is_empty(),
        "phone scenarios failed:\n{}",
        failed.join("\n")
    );
    let only = std::env::var("FIELDSYNC_PHONE_ONLY").unwrap_or_default();
    if only.is_empty() {
        assert_eq!(
            scenarios.len(),
            5,
            "every scenario ran: {:?}",
            scenarios.keys()
        );
    }

    // What every scenario leaves at the coordinator, checked apart from the
    // script: each report once, every change signed and verified.
    coordinator.ok(&["sync"]);
    let timeline = coordinator.timeline("almaty");
    let ids: Vec<&str> = timeline.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a report appears twice: {ids:?}");
    assert!(!ids.is_empty(), "the phones sent no report at all");
    for id in ids {
        let shown: Value = serde_json::from_str(&coordinator.ok(&["show", id, "--json"])).unwrap();
        for change in shown["history"].as_array().unwrap() {
            assert_eq!(change["signature_verified"], true, "report {id}: {change}");
        }
    }
}
