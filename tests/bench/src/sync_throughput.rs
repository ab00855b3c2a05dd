//! Benchmarks 1–3: many offline devices syncing at once through a real
//! server over loopback; the same work applied in one process with no HTTP
//! (the in-process limit, and the ratio we steer by); one device catching
//! up after a week offline.
//!
//! Device replicas are generated directly with the core (one transaction
//! per device) to save time; the syncs themselves are real `fieldsync sync`
//! processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use fieldsync_core::replica::Replica;
use fieldsync_core::sync::server::ServerLimits;
use fieldsync_server::Store;
use fieldsync_tests::{
    enrolled_device, fieldsync_bin, fill_sync_workload, DeviceHome, ServerProcess,
};

use crate::measure::{self, mib};
use crate::table::Table;

pub struct Workload {
    pub devices: usize,
    pub reports: usize,
    pub edits: usize,
}

/// Benchmarks 1 and 2.
pub fn concurrent(table: &mut Table, work: &Workload) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let mut server = ServerProcess::start(&data, "127.0.0.1:0");
    server.create_case("bench");
    let homes: Vec<DeviceHome> = (0..work.devices)
        .map(|_| enrolled_device(&server, "bench", "reporter"))
        .collect();
    let generated = Instant::now();
    for home in &homes {
        fill(home.dir.path(), work.reports, work.edits)?;
    }
    let changes = work.devices * work.reports * (1 + work.edits);
    let reports = work.devices * work.reports;
    let section = format!("sync {}×{}×{}", work.devices, work.reports, work.edits);
    table.row(
        &section,
        "workload (generated in-process)",
        format!(
            "{reports} reports, {changes} changes, generated in {:.1} s",
            generated.elapsed().as_secs_f64()
        ),
    );
    // The in-process run gets its own copies of the same replicas.
    let copies = dir.path().join("copies");
    for (i, home) in homes.iter().enumerate() {
        copy_dir(home.dir.path(), &copies.join(i.to_string()))?;
    }

    // And its own copy of the server's data: the same case and devices.
    server.kill();
    copy_dir(&data, &dir.path().join("in-process"))?;
    server.restart();

    let cpu_before = measure::cpu_seconds(server.child.id())?;
    let started = Instant::now();
    let children: Vec<Child> = homes
        .iter()
        .map(|home| {
            Command::new(fieldsync_bin())
                .args(["--home", home.path(), "sync", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("start fieldsync sync")
        })
        .collect::<Result<_>>()?;
    let mut sent = 0u64;
    let mut received = 0u64;
    let mut requests = 0u64;
    for child in children {
        let out = child.wait_with_output()?;
        ensure!(
            out.status.success(),
            "a device's sync failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        sent += summary["http"]["bytes_sent"].as_u64().unwrap_or(0);
        received += summary["http"]["bytes_received"].as_u64().unwrap_or(0);
        requests += summary["http"]["requests"].as_u64().unwrap_or(0);
    }
    let wall = started.elapsed();
    let cpu = measure::cpu_seconds(server.child.id())? - cpu_before;
    let peak = measure::peak_rss_of(server.child.id())?;
    server.kill();
    let e2e_rate = changes as f64 / wall.as_secs_f64();
    table.row(
        &section,
        "end to end: wall time",
        format!("{:.2} s", wall.as_secs_f64()),
    );
    table.row(
        &section,
        "end to end: reports/s, changes/s",
        format!(
            "{:.0} reports/s, {:.0} changes/s",
            reports as f64 / wall.as_secs_f64(),
            e2e_rate
        ),
    );
    table.row(
        &section,
        "end to end: bytes on the wire per change",
        format!(
            "{:.0} B sent + {:.0} B received ({requests} requests)",
            sent as f64 / changes as f64,
            received as f64 / changes as f64
        ),
    );
    table.row(
        &section,
        "end to end: server CPU, peak RSS",
        format!("{cpu:.2} CPU s, {:.1} MiB", mib(peak)),
    );

    let reference = ed25519_verifications_per_second()?;
    table.row(
        &section,
        "reference: raw Ed25519 verifications/s, one core",
        format!("{reference:.0}/s"),
    );
    table.row(
        &section,
        "end to end changes/s as a multiple of the reference",
        format!("{:.2}", e2e_rate / reference),
    );

    let cpu_before = measure::cpu_seconds(std::process::id())?;
    let limit = in_process(&copies, work.devices, dir.path())?;
    let limit_cpu = measure::cpu_seconds(std::process::id())? - cpu_before;
    let limit_rate = changes as f64 / limit.as_secs_f64();
    table.row(
        &section,
        "in-process limit (core apply + SQLite commit)",
        format!("{:.2} s, {:.0} changes/s", limit.as_secs_f64(), limit_rate),
    );
    // How much of the machine the in-process run kept busy: what is left
    // between its rate and the cores' is waiting, not work.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    table.row(
        &section,
        "in-process: CPU, share of the cores busy",
        format!(
            "{limit_cpu:.2} CPU s, {:.0}% of {cores} cores",
            100.0 * limit_cpu / (limit.as_secs_f64() * cores as f64)
        ),
    );
    table.row(
        &section,
        "ratio end to end / in-process",
        format!("{:.2}", e2e_rate / limit_rate),
    );
    Ok(())
}

/// Benchmark 3: one device back after a week offline.
pub fn week_offline(table: &mut Table, reports: usize, edits: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = ServerProcess::start(&dir.path().join("server"), "127.0.0.1:0");
    server.create_case("bench");
    let home = enrolled_device(&server, "bench", "reporter");
    fill(home.dir.path(), reports, edits)?;
    let changes = reports * (1 + edits);
    let run = measure::run(Command::new(fieldsync_bin()).args([
        "--home",
        home.path(),
        "sync",
        "--json",
    ]))?;
    server.kill();
    let summary: serde_json::Value = serde_json::from_str(&run.stdout)?;
    let section = format!("week offline {reports}×{edits}");
    table.row(
        &section,
        "catch-up: HTTP requests, rounds",
        format!(
            "{} requests, {} rounds",
            summary["http"]["requests"], summary["rounds"]
        ),
    );
    table.row(
        &section,
        "catch-up: bytes sent / received",
        format!(
            "{:.1} MiB / {:.1} MiB ({changes} changes)",
            mib(summary["http"]["bytes_sent"].as_u64().unwrap_or(0)),
            mib(summary["http"]["bytes_received"].as_u64().unwrap_or(0))
        ),
    );
    table.row(
        &section,
        "catch-up: time, client peak RSS",
        format!(
            "{:.2} s, {:.1} MiB",
            run.wall.as_secs_f64(),
            mib(run.peak_rss)
        ),
    );
    Ok(())
}

/// The workload for the enrolled device at `home`.
pub(crate) fn fill(home: &Path, reports: usize, edits: usize) -> Result<()> {
    let mut replica = Replica::open(home)?;
    let case: fieldsync_core::CaseId = replica
        .meta("case_id")?
        .context("device not enrolled")?
        .parse()?;
    fill_sync_workload(&mut replica, &case, reports, edits);
    Ok(())
}

/// The same syncs with no HTTP: each copied replica against a copy of the
/// store in this process, on as many threads as the machine has cores (as
/// the server runs its requests), each thread taking the next device.
fn in_process(copies: &Path, devices: usize, dir: &Path) -> Result<Duration> {
    let store = Store::open(&dir.join("in-process"))?;
    let mut replicas = Vec::new();
    for i in 0..devices {
        let replica = Replica::open(&copies.join(i.to_string()))?;
        let key = replica.device_key()?.context("identity")?;
        let device = store
            .device(&key.device_id())?
            .context("device not in the copied store")?;
        replicas.push((replica, device));
    }
    let limits = ServerLimits {
        max_response_bytes: fieldsync_core::protocol::DEFAULT_MAX_RESPONSE_BYTES,
        ..ServerLimits::default()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let queue = std::sync::Mutex::new(replicas);
    let started = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let next = queue.lock().expect("queue").pop();
                        let Some((mut replica, device)) = next else {
                            return Ok(());
                        };
                        replica.sync(
                            fieldsync_core::protocol::DEFAULT_MAX_REQUEST_BYTES,
                            |request| store.sync(&device, request, limits),
                            |_| {},
                        )?;
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("an in-process sync thread panicked")?;
        }
        Ok(())
    })?;
    Ok(started.elapsed())
}

/// Ed25519 verifications of one 32-byte change hash per second, on this
/// thread, for a second: what one core could check if checking signatures
/// were all a server did.
fn ed25519_verifications_per_second() -> Result<f64> {
    use fieldsync_core::identity::Domain;
    let key = fieldsync_core::DeviceKey::generate()?;
    let public = key.public_key();
    let hash = [7u8; 32];
    let signature = key.sign(Domain::Change, &hash);
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        for _ in 0..100 {
            public.verify(Domain::Change, std::hint::black_box(&hash), &signature)?;
        }
        done += 100;
    }
    Ok(done as f64 / started.elapsed().as_secs_f64())
}

pub(crate) fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
