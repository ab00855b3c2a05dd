//! Benchmark 7 (issue 13): the phone app in headless Chromium against a real
//! `fieldsync serve`: its transferred size, a cold start at a 4× CPU
//! throttle with many local reports, an offline save, and a sync of many
//! offline reports with photos. The browser side is
//! `tests/browser/bench-app.mjs` (playwright-core over Debian's chromium);
//! this starts the server and a coordinator with the CLI, mints the invite
//! links with `fieldsync admin invite --link`, runs the script, checks on
//! the coordinator that the synced reports arrived, and prints each figure
//! next to the aim.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};
use fieldsync_tests::{enrolled_device, fieldsync_ok, ServerProcess};
use serde_json::Value;

use crate::table::Table;

const SECTION: &str = "app";
/// The aims: a cold start under 2 s, a save under 100 ms, the
/// reports' changes in at most 2 rounds.
const AIM_COLD_S: f64 = 2.0;
const AIM_SAVE_MS: f64 = 100.0;
const AIM_ROUNDS: u64 = 2;

pub struct Workload {
    /// Local reports on the phone for the cold start and the saves.
    pub reports: u32,
    /// Offline saves through the form, unthrottled and at the throttle
    /// (where each one redraws "My reports" of all the local reports).
    pub saves: u32,
    pub throttled_saves: u32,
    /// Offline reports with a photo each, then synced.
    pub sync_reports: u32,
    pub photo_kib: u32,
    /// Cold starts of each kind (form, list); the median is shown.
    pub cold_runs: u32,
}

pub fn run(table: &mut Table, work: &Workload) -> Result<()> {
    if std::env::var_os("FIELDSYNC_SKIP_BROWSER").is_some_and(|v| v == "1") {
        table.row(SECTION, "skipped (FIELDSYNC_SKIP_BROWSER=1)", "-".into());
        return Ok(());
    }
    let script = browser_dir().join("bench-app.mjs");
    check_tools()?;

    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let server = ServerProcess::start(&data, "127.0.0.1:0");
    server.create_case("bench");
    let coordinator = enrolled_device(&server, "bench", "coordinator");
    coordinator.share_new_key("bench", &[]);
    // One link for the phone that measures start and saves, one for the
    // phone that syncs photos: each invite enrolls one device.
    let links: Vec<String> = (0..2)
        .map(|_| invite_link(&server))
        .collect::<Result<_>>()?;

    let out = Command::new("node")
        .arg(&script)
        .args(["--url", &server.url])
        .args(["--invite", &links[0], "--invite", &links[1]])
        .args(["--reports", &work.reports.to_string()])
        .args(["--saves", &work.saves.to_string()])
        .args(["--throttled-saves", &work.throttled_saves.to_string()])
        .args(["--sync-reports", &work.sync_reports.to_string()])
        .args(["--photo-kib", &work.photo_kib.to_string()])
        .args(["--cold-runs", &work.cold_runs.to_string()])
        .args(["--throttle", "4"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("run node tests/browser/bench-app.mjs")?;
    ensure!(
        out.status.success(),
        "tests/browser/bench-app.mjs failed ({}); the server log is in {}",
        out.status,
        server.log_path().display()
    );
    let stdout = String::from_utf8(out.stdout)?;
    let line = stdout
        .lines()
        .last()
        .context("bench-app.mjs printed nothing")?;
    let r: Value = serde_json::from_str(line).context("bench-app.mjs's JSON")?;
    // Every figure the script took (each run, load averages, chromium's
    // version), next to the bench binary, for a reader who wants more than
    // the table.
    let raw = std::env::current_exe()?.with_file_name("bench-app.json");
    std::fs::write(&raw, line).with_context(|| format!("write {}", raw.display()))?;

    rows(table, work, &r, &raw)?;
    check_coordinator(&coordinator, work)?;
    Ok(())
}

fn rows(table: &mut Table, work: &Workload, r: &Value, raw: &Path) -> Result<()> {
    let size = &r["size"];
    table.row(
        SECTION,
        &format!("app files, gzip as served ({} files)", u(&size["files"])?),
        format!(
            "{} ({} uncompressed)",
            mb(u(&size["gzip"])?),
            mb(u(&size["identity"])?)
        ),
    );
    for f in size["top"].as_array().context("top files")?.iter().take(5) {
        let path = f["path"].as_str().unwrap_or("?");
        table.row(
            SECTION,
            &format!("  {}", path.trim_start_matches("/app/")),
            format!(
                "{} gzip, {} uncompressed{}",
                kb(u(&f["gzip"])?),
                kb(u(&f["identity"])?),
                if f["gzipped"].as_bool() == Some(true) {
                    ""
                } else {
                    " (served as is)"
                }
            ),
        );
    }
    let fv = &size["first_visit"];
    table.row(
        SECTION,
        "first visit: bytes on the network (page + worker)",
        format!(
            "{} in {} requests (page {} in {}, service worker precache {} in {})",
            mb(u(&fv["bytes"])?),
            u(&fv["requests"])?,
            mb(u(&fv["page_bytes"])?),
            u(&fv["page_requests"])?,
            mb(u(&fv["worker_bytes"])?),
            u(&fv["worker_requests"])?
        ),
    );
    let throttle = f(&r["cold"]["throttle"])?;
    table.row(
        SECTION,
        &format!("first visit to a usable \"Join the case\", {throttle}x CPU"),
        secs(f(&r["first_visit"]["join_ms"])? / 1000.0),
    );

    let cold = &r["cold"];
    let reports = work.reports;
    for (key, what) in [
        (
            "title",
            format!("cold start to a usable \"Title\", {throttle}x CPU, {reports} reports"),
        ),
        (
            "list",
            format!("cold start to \"My reports\" listing {reports}, {throttle}x CPU"),
        ),
    ] {
        let median = f(&cold[key]["median"])? / 1000.0;
        let runs: Vec<String> = cold[format!("{key}_ms")]
            .as_array()
            .context("runs")?
            .iter()
            .map(|v| format!("{:.2}", v.as_f64().unwrap_or(0.0) / 1000.0))
            .collect();
        table.row(
            SECTION,
            &what,
            format!(
                "median {} of {} runs ({} s); aim < {AIM_COLD_S} s: {:.2}x the aim",
                secs(median),
                runs.len(),
                runs.join(", "),
                median / AIM_COLD_S
            ),
        );
    }
    ensure!(
        cold["from_service_worker"].as_bool() == Some(true),
        "a cold start was not served by the service worker"
    );

    let save = &r["save"];
    for rate in ["1", &format!("{throttle}")] {
        let ui = &save[format!("ui_{rate}x")];
        for (key, what) in [
            ("saved_ms", "click -> saved"),
            ("listed_ms", "click -> shown in My reports"),
        ] {
            let s = &ui[key];
            let median = f(&s["median"])?;
            table.row(
                SECTION,
                &format!("offline save via the form, {what}, {rate}x CPU"),
                format!(
                    "median {median:.0} ms, p95 {:.0} ms ({} saves); aim < {AIM_SAVE_MS:.0} ms: {:.2}x the aim",
                    f(&s["p95"])?,
                    u(&s["n"])?,
                    median / AIM_SAVE_MS
                ),
            );
        }
    }
    let device = &save["device_save_report_ms"];
    table.row(
        SECTION,
        "device.saveReport() alone, 1x CPU (filling the store)",
        format!(
            "median {:.0} ms, p95 {:.0} ms ({} saves)",
            f(&device["median"])?,
            f(&device["p95"])?,
            u(&device["n"])?
        ),
    );
    let local = &r["local_sync"];
    table.row(
        SECTION,
        &format!("the app sends its {reports} local reports on reconnect"),
        format!(
            "{} sync requests, {} (started by the {}; ~0.5 s polling)",
            u(&local["sync_posts"])?,
            secs(f(&local["seconds"])?),
            local["started_by"].as_str().unwrap_or("?")
        ),
    );

    let sync = &r["sync"];
    let label = format!(
        "sync {} offline reports x {} KiB photo",
        work.sync_reports, work.photo_kib
    );
    let rounds = u(&sync["rounds"])?;
    table.row(
        SECTION,
        &format!("{label}: rounds"),
        format!(
            "{rounds} (/v1/sync POSTs seen: {}); aim <= {AIM_ROUNDS}: {}",
            u(&sync["sync_posts"])?,
            if rounds <= AIM_ROUNDS {
                "met"
            } else {
                "missed"
            }
        ),
    );
    let kinds = sync["requests_by_kind"]
        .as_object()
        .context("requests by kind")?
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    table.row(
        SECTION,
        &format!("{label}: requests"),
        format!("{} ({kinds})", u(&sync["requests_seen"])?),
    );
    let sent = u(&sync["bytes_sent"])?;
    let payload = u64::from(work.sync_reports) * u64::from(work.photo_kib) * 1024;
    table.row(
        SECTION,
        &format!("{label}: bytes sent (request bodies)"),
        format!(
            "{} ({:.3}x the photos' {})",
            mb(sent),
            sent as f64 / payload as f64,
            mb(payload)
        ),
    );
    let seconds = f(&sync["seconds"])?;
    table.row(
        SECTION,
        &format!("{label}: time"),
        format!(
            "{} ({:.1} MB/s)",
            secs(seconds),
            sent as f64 / 1e6 / seconds.max(1e-9)
        ),
    );
    let seal = &sync["seal_photo_ms"];
    table.row(
        SECTION,
        &format!(
            "seal one {} KiB photo (device.addFile), 1x CPU",
            work.photo_kib
        ),
        format!(
            "median {:.0} ms, p95 {:.0} ms",
            f(&seal["median"])?,
            f(&seal["p95"])?
        ),
    );
    table.row(
        SECTION,
        "machine load average at start / end (1, 5, 15 min)",
        format!(
            "{} / {}",
            load(&r["loadavg_start"]),
            load(&r["loadavg_end"])
        ),
    );
    table.row(SECTION, "raw figures (JSON)", raw.display().to_string());
    let errors = r["errors"].as_array().map(Vec::len).unwrap_or(0);
    ensure!(errors == 0, "the pages threw errors: {}", r["errors"]);
    Ok(())
}

/// The coordinator syncs: every report the phones made is on the server,
/// each photo report with its one attachment.
fn check_coordinator(coordinator: &fieldsync_tests::DeviceHome, work: &Workload) -> Result<()> {
    coordinator.ok(&["sync"]);
    let listed: Value =
        serde_json::from_str(&coordinator.ok(&["timeline", "--case", "bench", "--json"]))?;
    let listed = listed.as_array().context("timeline")?;
    let photo: Vec<&Value> = listed
        .iter()
        .filter(|x| {
            x["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("Photo report "))
        })
        .collect();
    ensure!(
        photo.len() == work.sync_reports as usize,
        "the coordinator sees {} photo reports, not {}",
        photo.len(),
        work.sync_reports
    );
    ensure!(
        photo
            .iter()
            .all(|x| x["attachments"].as_array().map(Vec::len) == Some(1)),
        "a photo report reached the coordinator without its attachment"
    );
    // The offline saves through the form stay on their phone (it is closed
    // offline); the local reports went with the app's own sync.
    let local = listed
        .iter()
        .filter(|x| {
            x["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("Report "))
        })
        .count();
    ensure!(
        local == work.reports as usize,
        "the coordinator sees {local} of the phone's {} local reports",
        work.reports
    );
    Ok(())
}

fn invite_link(server: &ServerProcess) -> Result<String> {
    let data = server.data.to_str().context("utf-8 data path")?;
    let printed = fieldsync_ok(&[
        "admin",
        "--data",
        data,
        "invite",
        "--case",
        "bench",
        "--role",
        "reporter",
        "--link",
        &server.url,
    ]);
    let link = printed.lines().next().unwrap_or("").trim().to_owned();
    ensure!(
        link.contains("/app/#invite=") && link.contains("&fp="),
        "admin invite --link printed {printed:?}, not a link with the case key fingerprint"
    );
    Ok(link)
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../browser")
}

/// Node, playwright-core and chromium, or what to install.
fn check_tools() -> Result<()> {
    let help = "the app benchmark needs node (>= 20), Debian's chromium (apt-get install chromium, \
                or FIELDSYNC_CHROMIUM=/path) and the browser test packages (cd tests/browser && npm ci); \
                FIELDSYNC_SKIP_BROWSER=1 skips it";
    let node = Command::new("node").arg("--version").output();
    if !node.as_ref().is_ok_and(|o| o.status.success()) {
        bail!("no node: {help}");
    }
    let chromium = std::env::var_os("FIELDSYNC_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !chromium.exists() {
        bail!("no chromium at {}: {help}", chromium.display());
    }
    let pw = browser_dir().join("node_modules/playwright-core/package.json");
    if !pw.exists() {
        bail!("no {}: {help}", pw.display());
    }
    Ok(())
}

fn u(v: &Value) -> Result<u64> {
    v.as_u64()
        .or_else(|| v.as_f64().map(|x| x as u64))
        .with_context(|| format!("not a number: {v}"))
}

fn f(v: &Value) -> Result<f64> {
    v.as_f64().with_context(|| format!("not a number: {v}"))
}

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

fn kb(bytes: u64) -> String {
    format!("{:.1} kB", bytes as f64 / 1e3)
}

/// The first three fields of /proc/loadavg.
fn load(v: &Value) -> String {
    let text = v.as_str().unwrap_or("?");
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn secs(s: f64) -> String {
    format!("{s:.2} s")
}
