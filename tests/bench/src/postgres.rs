//! The `postgres` section: the sync workload and the timeline on
//! PostgreSQL, with one server process and with three on one database,
//! beside SQLite in the same run, and `admin migrate` of the timeline's
//! data directory. It starts a throwaway cluster itself
//! (`tests/services/postgres.sh`, which installs Debian's postgresql if
//! missing) and stops it at the end.
//!
//! The workload is made once, on SQLite, and moved into each database by
//! `admin migrate`: every run starts from the same case, devices and
//! replicas (copies of them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use fieldsync_tests::{enrolled_device, fieldsync_bin, DeviceHome, ServerProcess};

use crate::measure::{self, mib};
use crate::sync_throughput::{copy_dir, fill, Workload};
use crate::table::Table;
use crate::timeline;

/// A throwaway cluster, stopped when dropped.
struct Cluster {
    url: String,
    dir: String,
}

impl Cluster {
    fn start() -> Result<Cluster> {
        let out = Command::new(script())
            .arg("start")
            .stderr(Stdio::inherit())
            .output()
            .context("run tests/services/postgres.sh")?;
        ensure!(
            out.status.success(),
            "tests/services/postgres.sh start failed"
        );
        let text = String::from_utf8(out.stdout)?;
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .map(str::to_owned)
                .with_context(|| format!("postgres.sh printed no {name}"))
        };
        Ok(Cluster {
            url: value("FIELDSYNC_TEST_POSTGRES")?,
            dir: value("FIELDSYNC_TEST_POSTGRES_DIR")?,
        })
    }

    fn fresh_database(&self) -> String {
        fieldsync_tests::stores::fresh_database(&self.url)
    }

    /// CPU seconds the cluster's processes have used so far.
    fn cpu_seconds(&self) -> Result<f64> {
        let pid_file = Path::new(&self.dir).join("data/postmaster.pid");
        let text = std::fs::read_to_string(&pid_file)
            .with_context(|| format!("read {}", pid_file.display()))?;
        let postmaster: u32 = text
            .lines()
            .next()
            .context("an empty postmaster.pid")?
            .trim()
            .parse()?;
        measure::tree_cpu_seconds(postmaster)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["stop", &self.dir]).status();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../services/postgres.sh")
}

/// `admin migrate` of `data` into `url`; returns its wall time and summary.
fn migrate(data: &Path, url: &str) -> Result<(f64, serde_json::Value)> {
    let started = Instant::now();
    let out = Command::new(fieldsync_bin())
        .args(["admin", "migrate", "--json", "--from-data"])
        .arg(data)
        .args(["--to-database", url])
        .env_remove("FIELDSYNC_DATABASE")
        .output()?;
    ensure!(
        out.status.success(),
        "admin migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((
        started.elapsed().as_secs_f64(),
        serde_json::from_slice(&out.stdout)?,
    ))
}

/// What one end-to-end sync run measured.
struct SyncRun {
    wall: f64,
    cpu: f64,
    /// The PostgreSQL cluster's CPU seconds, when the servers use it.
    database_cpu: Option<f64>,
    peak_rss: u64,
}

/// Every home syncs at once, home `i` with `servers[i % n]`, whose
/// database is `cluster`'s if they use one.
fn sync_all(
    homes: &[PathBuf],
    servers: &[ServerProcess],
    cluster: Option<&Cluster>,
) -> Result<SyncRun> {
    for (i, home) in homes.iter().enumerate() {
        fieldsync_core::replica::Replica::open(home)?.set_meta(
            fieldsync_core::device::meta_keys::SERVER,
            &servers[i % servers.len()].url,
        )?;
    }
    let cpu_before: f64 = servers
        .iter()
        .map(|s| measure::cpu_seconds(s.child.id()))
        .sum::<Result<f64>>()?;
    let database_before = cluster.map(Cluster::cpu_seconds).transpose()?;
    let started = Instant::now();
    let children: Vec<Child> = homes
        .iter()
        .map(|home| {
            Command::new(fieldsync_bin())
                .arg("--home")
                .arg(home)
                .args(["sync", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("start fieldsync sync")
        })
        .collect::<Result<_>>()?;
    for child in children {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "a device's sync failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu: f64 = servers
        .iter()
        .map(|s| measure::cpu_seconds(s.child.id()))
        .sum::<Result<f64>>()?
        - cpu_before;
    let database_cpu = match (cluster, database_before) {
        (Some(cluster), Some(before)) => Some(cluster.cpu_seconds()? - before),
        _ => None,
    };
    let peak_rss = servers
        .iter()
        .map(|s| measure::peak_rss_of(s.child.id()))
        .sum::<Result<u64>>()?;
    Ok(SyncRun {
        wall,
        cpu,
        database_cpu,
        peak_rss,
    })
}

/// The section: the sync workload on SQLite, on PostgreSQL with one
/// process and with three; the timeline of `timeline_reports` on
/// PostgreSQL; `admin migrate` of that case.
pub fn run(table: &mut Table, work: &Workload, timeline_reports: usize) -> Result<()> {
    let cluster = Cluster::start()?;
    let dir = tempfile::tempdir()?;

    // The sync workload, made once on SQLite.
    let data = dir.path().join("server");
    let mut server = ServerProcess::start_with_prefix(&data, "127.0.0.1:0", &[], None);
    server.create_case("bench");
    let homes: Vec<DeviceHome> = (0..work.devices)
        .map(|_| enrolled_device(&server, "bench", "reporter"))
        .collect();
    for home in &homes {
        fill(home.dir.path(), work.reports, work.edits)?;
    }
    server.kill();
    let changes = (work.devices * work.reports * (1 + work.edits)) as f64;
    let section = format!(
        "postgres: sync {}×{}×{}",
        work.devices, work.reports, work.edits
    );
    let copies = |run: &str| -> Result<Vec<PathBuf>> {
        homes
            .iter()
            .enumerate()
            .map(|(i, home)| {
                let to = dir.path().join(run).join(i.to_string());
                copy_dir(home.dir.path(), &to)?;
                Ok(to)
            })
            .collect()
    };
    let mut row = |what: &str, run: &SyncRun, base: Option<f64>| {
        let rate = changes / run.wall;
        let ratio = base
            .map(|b| format!(", {:.2}× SQLite", rate / b))
            .unwrap_or_default();
        let database = run
            .database_cpu
            .map(|cpu| format!(", PostgreSQL CPU {cpu:.2} s"))
            .unwrap_or_default();
        table.row(
            &section,
            what,
            format!(
                "{:.2} s, {:.0} changes/s{ratio}; server CPU {:.2} s{database}, peak RSS {:.1} MiB",
                run.wall,
                rate,
                run.cpu,
                mib(run.peak_rss)
            ),
        );
        rate
    };

    // SQLite, one process: the same run's reference.
    let sqlite_data = dir.path().join("sqlite");
    copy_dir(&data, &sqlite_data)?;
    let sqlite = ServerProcess::start_with_prefix(&sqlite_data, "127.0.0.1:0", &[], None);
    let base = row(
        "SQLite, 1 process",
        &sync_all(&copies("sqlite-homes")?, &[sqlite], None)?,
        None,
    );

    for processes in [1usize, 3] {
        let url = cluster.fresh_database();
        migrate(&data, &url)?;
        let servers: Vec<ServerProcess> = (0..processes)
            .map(|p| {
                let own = dir.path().join(format!("pg{processes}-{p}"));
                copy_dir(&data, &own)?;
                Ok(ServerProcess::start_with_prefix(
                    &own,
                    "127.0.0.1:0",
                    &["--database", &url],
                    None,
                ))
            })
            .collect::<Result<_>>()?;
        let run = sync_all(
            &copies(&format!("pg{processes}-homes"))?,
            &servers,
            Some(&cluster),
        )?;
        row(
            &format!(
                "PostgreSQL, {processes} process{}",
                if processes == 1 { "" } else { "es" }
            ),
            &run,
            Some(base),
        );
    }

    // The timeline of a large case, and moving it.
    let section = format!("postgres: timeline {timeline_reports} reports");
    let tl_data = dir.path().join("timeline");
    let case = timeline::generate(&tl_data, timeline_reports)?;
    timeline::generated_row(table, &section, &case, &tl_data)?;
    let url = cluster.fresh_database();
    let (seconds, summary) = migrate(&tl_data, &url)?;
    let rows: u64 = summary["tables"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["rows"].as_u64()).sum())
        .unwrap_or(0);
    table.row(
        &section,
        "admin migrate into PostgreSQL (copy, then every report's heads checked)",
        format!(
            "{seconds:.1} s for {rows} rows, {} reports checked",
            summary["reports_checked"]
        ),
    );
    let server =
        ServerProcess::start_with_prefix(&tl_data, "127.0.0.1:0", &["--database", &url], None);
    timeline::http_queries(table, &section, &server.url, &case, ", PostgreSQL")?;
    drop(server);
    let server = ServerProcess::start_with_prefix(&tl_data, "127.0.0.1:0", &[], None);
    timeline::http_queries(table, &section, &server.url, &case, ", SQLite")?;
    Ok(())
}
