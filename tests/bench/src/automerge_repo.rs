//! Side by side with the reference Automerge sync server
//! (`@automerge/automerge-repo-sync-server`), on the workload shape of the
//! `sync` section: one Automerge document per report, each created and then
//! edited, pushed by one client process per device over WebSocket.
//!
//! The server and its peers come from npm, installed with `npm ci` from the
//! lock committed in `tests/bench/automerge-repo/` into a temporary folder.
//! The node scripts there make the documents (`gen.mjs`, before the clock),
//! play the devices (`client.mjs`) and read the server's storage
//! (`checker.mjs`). The server sends no acknowledgement that a document is
//! on disk, so the run counts as done when every document the server stored
//! has the clients' heads.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, ensure, Context, Result};

use crate::measure::{self, mib};
use crate::sync_throughput::{self, Workload};
use crate::table::Table;

/// Runs fieldsync's `sync` section and the reference server on the same
/// workload, and sets their figures side by side.
pub fn compare(table: &mut Table, work: &Workload) -> Result<()> {
    sync_throughput::concurrent(table, work)?;
    let fieldsync = Figures::from_sync_section(table, work)?;
    let reference = run_reference(work)?;
    let changes = work.devices * work.reports * (1 + work.edits);

    let section = format!(
        "vs automerge-repo {}×{}×{}",
        work.devices, work.reports, work.edits
    );
    let name = format!("automerge-repo {}", reference.versions.repo);
    table.row(
        &section,
        "automerge-repo: versions",
        reference.versions.describe(),
    );
    table.row(
        &section,
        "automerge-repo: workload (made before the clock)",
        format!(
            "{} documents, {changes} changes, {} client processes, made in {:.1} s",
            work.devices * work.reports,
            work.devices,
            reference.generated.as_secs_f64()
        ),
    );
    let stored = |figures: &Figures| format!("{:.2} s", figures.stored.as_secs_f64());
    table.row(
        &section,
        "fieldsync: time until every change is stored",
        stored(&fieldsync),
    );
    table.row(
        &section,
        &format!("{name}: time until every change is stored"),
        format!(
            "{} (verified at {:.2} s)",
            stored(&reference.figures),
            reference.verified.as_secs_f64()
        ),
    );
    let rate = |figures: &Figures| changes as f64 / figures.stored.as_secs_f64().max(1e-9);
    table.row(
        &section,
        "fieldsync: throughput",
        format!("{:.0} changes/s", rate(&fieldsync)),
    );
    table.row(
        &section,
        &format!("{name}: throughput"),
        format!("{:.0} changes/s", rate(&reference.figures)),
    );
    for (who, figures) in [
        ("fieldsync", &fieldsync),
        (name.as_str(), &reference.figures),
    ] {
        table.row(
            &section,
            &format!("{who}: server CPU"),
            format!("{:.2} CPU s", figures.cpu_seconds),
        );
    }
    for (who, figures) in [
        ("fieldsync", &fieldsync),
        (name.as_str(), &reference.figures),
    ] {
        table.row(
            &section,
            &format!("{who}: server peak RSS"),
            format!("{:.1} MiB", mib(figures.peak_rss)),
        );
    }
    table.row(
        &section,
        "fieldsync / automerge-repo: throughput",
        format!("{:.1}×", rate(&fieldsync) / rate(&reference.figures)),
    );
    Ok(())
}

/// One server's figures for the whole workload.
struct Figures {
    /// From the clock's start until every change is stored.
    stored: Duration,
    cpu_seconds: f64,
    /// In bytes.
    peak_rss: u64,
}

impl Figures {
    /// Reads fieldsync's figures back from the rows `concurrent` wrote,
    /// as it returns none.
    fn from_sync_section(table: &Table, work: &Workload) -> Result<Self> {
        let section = format!("sync {}×{}×{}", work.devices, work.reports, work.edits);
        let row = |what: &str| {
            table.value(&section, what).with_context(|| {
                format!("the {section:?} section has no row {what:?}; update automerge_repo.rs to its rows")
            })
        };
        let wall = row("end to end: wall time")?;
        let cpu_rss = row("end to end: server CPU, peak RSS")?;
        let unreadable = |what: &str, value: &str| {
            format!("cannot read {what:?} = {value:?} from the {section:?} section; update automerge_repo.rs to its format")
        };
        let seconds: f64 = wall
            .strip_suffix(" s")
            .and_then(|s| s.parse().ok())
            .with_context(|| unreadable("wall time", wall))?;
        // "15.10 CPU s, 108.7 MiB"
        let (cpu, rss) = cpu_rss
            .split_once(" CPU s, ")
            .and_then(|(cpu, rss)| {
                let mib: f64 = rss.strip_suffix(" MiB")?.parse().ok()?;
                Some((cpu.parse::<f64>().ok()?, mib))
            })
            .with_context(|| unreadable("server CPU, peak RSS", cpu_rss))?;
        Ok(Self {
            stored: Duration::from_secs_f64(seconds),
            cpu_seconds: cpu,
            peak_rss: (rss * 1024.0 * 1024.0) as u64,
        })
    }
}

struct Reference {
    versions: Versions,
    generated: Duration,
    figures: Figures,
    /// When the checker saw the last document complete (`figures.stored`
    /// is the last write to the server's storage, at or before this).
    verified: Duration,
}

/// What was installed from the lock, read back from `node_modules`.
struct Versions {
    server: String,
    repo: String,
    automerge: String,
    node: String,
}

impl Versions {
    fn read(dir: &Path) -> Result<Self> {
        let version = |package: &str| -> Result<String> {
            let path = dir.join("node_modules").join(package).join("package.json");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("npm ci did not install {package}"))?;
            let json: serde_json::Value = serde_json::from_str(&text)?;
            Ok(json["version"].as_str().unwrap_or("?").to_owned())
        };
        let node = Command::new("node")
            .arg("--version")
            .output()
            .context(NO_NODE)?;
        Ok(Self {
            server: version("@automerge/automerge-repo-sync-server")?,
            repo: version("@automerge/automerge-repo")?,
            automerge: version("@automerge/automerge")?,
            node: String::from_utf8_lossy(&node.stdout).trim().to_owned(),
        })
    }

    fn describe(&self) -> String {
        format!(
            "automerge-repo-sync-server {} on automerge-repo {}, automerge {}, node {}",
            self.server, self.repo, self.automerge, self.node
        )
    }
}

const NO_NODE: &str = "cannot run node: --compare-automerge-repo needs Node.js 20 and npm on PATH";

/// The harness's files, committed beside the lock.
const HARNESS: [&str; 5] = [
    "package.json",
    "package-lock.json",
    "gen.mjs",
    "client.mjs",
    "checker.mjs",
];

fn run_reference(work: &Workload) -> Result<Reference> {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    install(root)?;
    let versions = Versions::read(root)?;

    let docs = root.join("docs");
    let started = Instant::now();
    measure::run(Command::new("node").arg(root.join("gen.mjs")).args([
        docs.as_os_str(),
        work.devices.to_string().as_ref(),
        work.reports.to_string().as_ref(),
        work.edits.to_string().as_ref(),
    ]))
    .context("make the documents (gen.mjs)")?;
    let generated = started.elapsed();

    let storage = root.join("server-data");
    std::fs::create_dir(&storage)?;
    let port = free_port()?;
    let mut server = Node::spawn(
        "the automerge-repo sync server",
        Command::new("node")
            .arg(root.join("node_modules/@automerge/automerge-repo-sync-server/src/index.js"))
            .env("PORT", port.to_string())
            .env("DATA_DIR", &storage)
            .current_dir(root),
        &root.join("server.log"),
    )?;
    let ready = Instant::now() + Duration::from_secs(30);
    server.expect(|l| l.starts_with("Listening on port"), ready)?;

    let mut checker = Node::spawn(
        "the checker",
        Command::new("node")
            .arg(root.join("checker.mjs"))
            .arg(&storage)
            .arg(docs.join("expected.json")),
        &root.join("checker.log"),
    )?;
    let url = format!("ws://127.0.0.1:{port}");
    let mut clients = (0..work.devices)
        .map(|d| {
            Node::spawn(
                "a client",
                Command::new("node")
                    .arg(root.join("client.mjs"))
                    .arg(&url)
                    .arg(docs.join(d.to_string()))
                    .arg(format!("device-{d}")),
                &root.join(format!("client-{d}.log")),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    // Every client has started node and read its documents before the clock.
    let ready = Instant::now() + Duration::from_secs(120);
    checker.expect(|l| l == "ready", ready)?;
    for client in &mut clients {
        client.expect(|l| l == "ready", ready)?;
    }

    let changes = work.devices * work.reports * (1 + work.edits);
    let timeout = timeout(changes)?;
    let cpu_before = measure::cpu_seconds(server.pid())?;
    let clock = SystemTime::now();
    let started = Instant::now();
    for client in &mut clients {
        client.send("go")?;
    }
    let deadline = started + timeout;
    loop {
        checker.send("check")?;
        // A check under way at the deadline may finish, to say how far the
        // server got.
        let reply = checker
            .expect(
                |l| l.starts_with('{'),
                deadline.max(Instant::now()) + CHECK_GRACE,
            )
            .with_context(|| never_stored(timeout))?;
        let count: serde_json::Value = serde_json::from_str(&reply)?;
        let (stored, total) = (count["stored"].as_u64(), count["total"].as_u64());
        ensure!(
            total == Some((work.devices * work.reports) as u64),
            "the checker counts {total:?} documents, expected {}",
            work.devices * work.reports
        );
        if stored == total {
            break;
        }
        for node in std::iter::once(&mut server).chain(&mut clients) {
            node.ensure_running()?;
        }
        if Instant::now() >= deadline {
            bail!(
                "{}: it had stored {} of {} documents with the clients' heads",
                never_stored(timeout),
                stored.unwrap_or(0),
                total.unwrap_or(0)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let verified = started.elapsed();
    let cpu_seconds = measure::cpu_seconds(server.pid())? - cpu_before;
    let peak_rss = measure::peak_rss_of(server.pid())?;
    // The checker polls; the last write to the server's storage is when the
    // last document became complete there (or later, if the server
    // compacted afterwards), so it is the fairer end of the clock.
    let last_write = last_modified(&storage)?
        .duration_since(clock)
        .unwrap_or_default();
    Ok(Reference {
        versions,
        generated,
        figures: Figures {
            stored: last_write.min(verified),
            cpu_seconds,
            peak_rss,
        },
        verified,
    })
}

/// `npm ci` from the committed lock: the exact versions, no CDN at run time.
fn install(root: &Path) -> Result<()> {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("automerge-repo");
    for file in HARNESS {
        std::fs::copy(harness.join(file), root.join(file))
            .with_context(|| format!("copy {} into the temporary folder", file))?;
    }
    let npm = Command::new("npm")
        .arg("--version")
        .output()
        .context("cannot run npm: --compare-automerge-repo needs Node.js 20 and npm on PATH")?;
    ensure!(npm.status.success(), "npm --version failed");
    eprintln!("installing the automerge-repo sync server from npm (npm ci)…");
    // No install scripts: the one package that has one (cbor-extract) only
    // builds a native module from source when its prebuilt one is missing.
    measure::run(Command::new("npm").args([
        "ci",
        "--prefix",
        &root.to_string_lossy(),
        "--no-audit",
        "--no-fund",
        "--ignore-scripts",
        "--loglevel=error",
    ]))
    .context("npm ci of tests/bench/automerge-repo failed; is the npm registry reachable?")?;
    Ok(())
}

/// How long the server may take: generous, so only a server that never
/// gets there fails (`FIELDSYNC_AMREPO_TIMEOUT_SECS` overrides it).
fn timeout(changes: usize) -> Result<Duration> {
    let secs = match std::env::var("FIELDSYNC_AMREPO_TIMEOUT_SECS") {
        Ok(value) => value
            .parse()
            .context("FIELDSYNC_AMREPO_TIMEOUT_SECS must be a whole number of seconds")?,
        Err(_) => (changes as u64 / 100).max(120),
    };
    Ok(Duration::from_secs(secs))
}

/// How long one check may run past the deadline.
const CHECK_GRACE: Duration = Duration::from_secs(30);

fn never_stored(timeout: Duration) -> String {
    format!(
        "the automerge-repo sync server did not store every document with the clients' heads within {} s (FIELDSYNC_AMREPO_TIMEOUT_SECS sets the limit)",
        timeout.as_secs()
    )
}

/// A loopback port nobody listens on now. The server binds it itself a
/// moment later; it takes its port only from `PORT`.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The latest modification time of any file under `dir`.
fn last_modified(dir: &Path) -> Result<SystemTime> {
    let mut latest = SystemTime::UNIX_EPOCH;
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                dirs.push(entry.path());
            } else {
                latest = latest.max(meta.modified()?);
            }
        }
    }
    Ok(latest)
}

/// A node process spoken to by lines: commands on stdin, answers on stdout,
/// its stderr in a log file quoted when it fails. Killed when dropped.
struct Node {
    what: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    log: PathBuf,
}

impl Node {
    fn spawn(what: &'static str, command: &mut Command, log: &Path) -> Result<Self> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context(NO_NODE)?;
        let stdout = child.stdout.take().context("stdout")?;
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            what,
            stdin: child.stdin.take(),
            child,
            lines,
            log: log.to_owned(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn send(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("{} stopped listening{}", self.what, self.log_tail()))
    }

    /// The next stdout line that `want` accepts, before `deadline`.
    fn expect(&mut self, want: impl Fn(&str) -> bool, deadline: Instant) -> Result<String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if want(&line) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    bail!("{} did not answer in time{}", self.what, self.log_tail())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    bail!("{} exited early{}", self.what, self.log_tail())
                }
            }
        }
    }

    fn ensure_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}){}", self.what, self.log_tail());
        }
        Ok(())
    }

    /// The end of its stderr, to show with an error.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        if tail.is_empty() {
            String::new()
        } else {
            format!("; its stderr ends:\n{tail}")
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Closing stdin lets a client leave on its own; the kill covers
        // the server and anything stuck.
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
