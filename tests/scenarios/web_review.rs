//! The coordinator's review in a real browser (headless Debian chromium
//! driven by `tests/browser/review.mjs`): log in with a `web-login` link,
//! see the synced timeline, filter it, open a report, see its photo
//! decrypted in the page, set it verified, and find the review on the
//! reporter's phone after its next sync. The script also captures every
//! request the page makes and checks none carries the case key or the
//! session key, and that a hostile report renders as text.
//!
//! `.ci/run` installs chromium and runs `npm ci` in `tests/browser`; without
//! them this test fails and says what to install (set
//! `FIELDSYNC_SKIP_BROWSER=1` to skip it knowingly on a machine without).

use std::path::{Path, PathBuf};
use std::process::Command;

use fieldsync_tests::{enrolled_device, ServerProcess};
use serde_json::{json, Value};

const HOSTILE: &str = "<img src=x onerror=alert(1)>";
const SCRIPT: &str = "<script>alert(2)</script>";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

fn sha256_hex(bytes: &[u8]) -> String {
    fieldsync_core::hashing::sha256_stream(&mut &bytes[..])
        .unwrap()
        .1
}

#[test]
fn a_coordinator_reviews_in_the_browser_and_the_reporter_sees_it() {
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
    let files = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    let reporter = enrolled_device(&server, "almaty", "reporter");
    let code = coordinator.share_new_key("almaty", &[&reporter]);

    let photo_bytes =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bus-stop-photo.png"))
            .unwrap();
    let photo = files.path().join("bus-stop.png");
    std::fs::write(&photo, &photo_bytes).unwrap();
    let hostile_file = files.path().join(format!("{HOSTILE}.png"));
    std::fs::write(&hostile_file, &photo_bytes).unwrap();

    let report = reporter
        .ok(&[
            fieldsync_tests::BUS_STOP_ARREST,
            &["--attach", photo.to_str().unwrap()],
        ]
        .concat())
        .trim()
        .to_owned();
    reporter.ok(&[
        "record",
        "--case",
        "almaty",
        "--title",
        "Rally dispersed",
        "--at",
        "2016-05-22T18:00:00+06:00",
        "--place",
        "Republic Square",
        "--tag",
        "rally",
    ]);
    let hostile = reporter
        .ok(&[
            "record",
            "--case",
            "almaty",
            "--title",
            HOSTILE,
            "--at",
            "2016-05-23T09:00:00+06:00",
            "--place",
            SCRIPT,
            "--text",
            &format!("{SCRIPT} {HOSTILE}"),
            "--tag",
            HOSTILE,
            "--person",
            &format!("{HOSTILE}:officer:{SCRIPT}"),
            "--attach",
            hostile_file.to_str().unwrap(),
        ])
        .trim()
        .to_owned();
    reporter.ok(&["sync"]);

    let expect = json!({
        "titles": ["Arrest at the bus stop", "Rally dispersed", HOSTILE],
        "filter": {
            "query": {"tag": "arrest"},
            "includes": ["Arrest at the bus stop"],
            "excludes": ["Rally dispersed"],
            "every_row_has_tag": "arrest",
        },
        "report_id": report,
        "report_title": "Arrest at the bus stop",
        "image_sha256": sha256_hex(&photo_bytes),
        "image_name": "bus-stop.png",
        "secrets": [code],
        "hostile": {"report_id": hostile, "title": HOSTILE, "strings": [HOSTILE, SCRIPT]},
        "set_status": {"status": "verified", "note": "two witnesses (browser)"},
        "tamper": {"status": "disputed", "note": "planted by the server"},
    });
    let expect_path = files.path().join("expect.json");
    std::fs::write(&expect_path, expect.to_string()).unwrap();
    let login: Value = serde_json::from_str(&coordinator.ok(&["web-login", "--json"])).unwrap();

    let out = Command::new("node")
        .arg(dir.join("review.mjs"))
        .env("FIELDSYNC_URL", &server.url)
        .env("FIELDSYNC_LOGIN_LINK", login["link"].as_str().unwrap())
        .env("FIELDSYNC_EXPECT", &expect_path)
        .output()
        .expect("run node (install Node.js 20 or later)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "review.mjs printed no result ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.success() && result["ok"] == true,
        "the browser scenario failed: {}",
        serde_json::to_string_pretty(&result["failures"]).unwrap()
    );
    eprintln!(
        "browser: {} requests captured, steps {}",
        result["requests"]["count"], result["steps"]
    );

    // A prepared change that is not the edit asked for (another edit's, or
    // altered bytes) was refused in the page: nothing was committed.
    for kind in ["another edit", "altered bytes"] {
        let seen = &result["steps"]["tampered"][kind];
        assert_eq!(seen["commits"], 0, "{kind}: {seen}");
        assert!(
            seen["message"]
                .as_str()
                .is_some_and(|m| m.contains("nothing was signed")),
            "{kind}: {seen}"
        );
    }

    // The review reaches the reporter's phone, attributed to the
    // coordinator's device and verified.
    reporter.ok(&["sync"]);
    let shown: Value = serde_json::from_str(&reporter.ok(&["show", &report, "--json"])).unwrap();
    assert_eq!(shown["report"]["review"]["status"], "verified");
    assert_eq!(shown["report"]["review"]["note"], "two witnesses (browser)");
    let last = shown["history"].as_array().unwrap().last().unwrap();
    assert_eq!(last["author"], coordinator.id.as_str());
    assert_eq!(last["via_web_session"], true);
    assert_eq!(last["signature_verified"], true);
    let by_web = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["via_web_session"] == true)
        .count();
    assert_eq!(by_web, 1, "only the coordinator's own edit was signed");

    // Nothing the server wrote holds the case key.
    let log = std::fs::read_to_string(server.log_path()).unwrap_or_default();
    assert!(!log.contains(&code), "the case key is in the server's log");
}
