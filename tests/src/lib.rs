//! Support for fieldsync's cross-crate scenarios (`scenarios/`): helpers
//! that start processes and make test data. Never used by the product.

pub mod blobs;
pub mod busy;
pub mod http;
pub mod proxy;
pub mod stores;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// A small random number generator for fault timing. Seeded from the OS
/// per run; the seed is printed by the tests that use it, so a failure can
/// be replayed with `FIELDSYNC_SEED`.
pub struct Rng(u64);

impl Rng {
    pub fn from_env_or_random() -> Self {
        let seed = std::env::var("FIELDSYNC_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| RandomState::new().build_hasher().finish());
        println!("random seed: {seed} (replay with FIELDSYNC_SEED={seed})");
        Self(seed | 1)
    }

    /// A generator derived from another's draw, so one printed seed
    /// replays a whole test.
    pub fn seeded(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
}

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The `fieldsync` binary of this workspace. Under cargo it is rebuilt
/// first (a no-op when up to date), because `cargo test -p fieldsync-tests`
/// alone would not rebuild another package's binary and the tests would run
/// a stale one. `FIELDSYNC_BIN` names another binary (the benchmarks
/// use a release build).
pub fn fieldsync_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("FIELDSYNC_BIN") {
            return PathBuf::from(bin);
        }
        let exe = std::env::current_exe().expect("test executable path");
        // target/debug/deps/scenarios-HASH -> target/debug/fieldsync
        let dir = exe.parent().and_then(Path::parent).expect("target dir");
        if let Ok(cargo) = std::env::var("CARGO") {
            let status = Command::new(cargo)
                .args(["build", "--quiet", "-p", "fieldsync"])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build -p fieldsync failed");
        }
        dir.join("fieldsync")
    })
    .clone()
}

/// A `fieldsync serve` process on a loopback port.
pub struct ServerProcess {
    pub child: Child,
    pub url: String,
    pub addr: String,
    pub data: PathBuf,
    /// Further `serve` arguments, kept for [`ServerProcess::restart`].
    pub extra_args: Vec<String>,
    /// `http://ADDR/metrics`, when started with `--metrics-listen`: the
    /// second line the server prints.
    pub metrics_url: Option<String>,
    /// With `FIELDSYNC_TEST_S3_ENDPOINT` set: this server's prefix of the
    /// test bucket (`--blobs s3://fieldsync-test/PREFIX`), kept across
    /// restarts.
    pub blobs_prefix: Option<String>,
}

impl ServerProcess {
    /// Starts a server on `listen` (use `127.0.0.1:0` for any free port)
    /// and waits until it says where it listens.
    pub fn start(data: &Path, listen: &str) -> Self {
        Self::start_with(data, listen, &[])
    }

    /// Starts a server with further `serve` arguments (`--max-blob-bytes
    /// 1000`, ...). With `FIELDSYNC_TEST_S3_ENDPOINT` set, its blobs go to
    /// a fresh prefix of the test bucket on that S3 server.
    pub fn start_with(data: &Path, listen: &str, extra_args: &[&str]) -> Self {
        let prefix = blobs::s3_endpoint().map(|_| blobs::fresh_prefix());
        Self::spawn(data, listen, extra_args, prefix)
    }

    /// Starts a server whose blobs are in `prefix` of the test bucket when
    /// there is an S3 server, or in its data directory with `None`,
    /// whatever the environment says (`admin migrate`'s source and
    /// target).
    pub fn start_with_prefix(
        data: &Path,
        listen: &str,
        extra_args: &[&str],
        prefix: Option<String>,
    ) -> Self {
        Self::spawn(data, listen, extra_args, prefix)
    }

    fn spawn(data: &Path, listen: &str, extra_args: &[&str], prefix: Option<String>) -> Self {
        let mut command = Command::new(fieldsync_bin());
        // On PostgreSQL (FIELDSYNC_TEST_STORE), this data directory's
        // own database.
        match stores::database_for(data) {
            Some(url) => command.env("FIELDSYNC_DATABASE", url),
            None => command.env_remove("FIELDSYNC_DATABASE"),
        };
        command
            .args(["serve", "--data"])
            .arg(data)
            .args(["--listen", listen])
            .args(extra_args);
        if let (Some(prefix), Some(endpoint)) = (&prefix, blobs::s3_endpoint()) {
            blobs::ensure_test_bucket(&endpoint);
            command
                .arg("--blobs")
                .arg(format!("s3://{}/{prefix}", blobs::TEST_BUCKET))
                .env_remove("AWS_PROFILE")
                .env_remove("AWS_SESSION_TOKEN")
                .envs(blobs::aws_env(&endpoint));
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(log_file(data))
            .spawn()
            .expect("start fieldsync serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut read_url = |what: &str| {
            let mut line = String::new();
            stdout
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("read the server's {what}: {e}"));
            line.split_whitespace()
                .find(|w| w.starts_with("http://"))
                .unwrap_or_else(|| panic!("server did not start: {what} {line:?}"))
                .to_owned()
        };
        let url = read_url("banner");
        let metrics_url = extra_args
            .contains(&"--metrics-listen")
            .then(|| read_url("metrics address"));
        let addr = url.trim_start_matches("http://").to_owned();
        Self {
            child,
            url,
            addr,
            data: data.to_owned(),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            metrics_url,
            blobs_prefix: prefix,
        }
    }

    /// Where this server keeps attachment ciphertext: its data directory,
    /// or its prefix of the test bucket.
    pub fn blobs(&self) -> blobs::BlobPlace {
        blobs::BlobPlace::of(&self.data, self.blobs_prefix.as_deref())
    }

    /// The server's log (its stderr), kept in the data directory so tests
    /// can read it and it goes when the directory goes; appended across
    /// restarts.
    pub fn log_path(&self) -> PathBuf {
        log_path(&self.data)
    }

    /// Creates a case with `fieldsync admin case create`; returns its id.
    pub fn create_case(&self, name: &str) -> String {
        let data = self.data.to_str().expect("utf-8 data path");
        let mut args = vec!["admin", "--data", data];
        // `admin` takes the server's --blobs too (it touches no blob yet).
        let blobs = self
            .blobs_prefix
            .as_ref()
            .map(|p| format!("s3://{}/{p}", blobs::TEST_BUCKET));
        if let Some(blobs) = &blobs {
            args.extend(["--blobs", blobs]);
        }
        args.extend(["case", "create", name]);
        fieldsync_ok(&args).trim().to_owned()
    }

    /// Issues a one-time enrollment token with `fieldsync admin invite`.
    pub fn invite(&self, case: &str, role: &str) -> String {
        let data = self.data.to_str().expect("utf-8 data path");
        fieldsync_ok(&[
            "admin", "--data", data, "invite", "--case", case, "--role", role,
        ])
        .trim()
        .to_owned()
    }

    /// Kills the server with SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same address and data directory
    /// (and bucket prefix).
    pub fn restart(&mut self) {
        let data = self.data.clone();
        self.restart_in(&data);
    }

    /// Starts the server again on the same address and bucket prefix, with
    /// `data` as its data directory.
    pub fn restart_in(&mut self, data: &Path) {
        self.kill();
        let args: Vec<&str> = self.extra_args.iter().map(String::as_str).collect();
        let again = Self::spawn(data, &self.addr, &args, self.blobs_prefix.take());
        *self = again;
    }
}

fn log_path(data: &Path) -> PathBuf {
    data.join("server.log")
}

fn log_file(data: &Path) -> Stdio {
    std::fs::create_dir_all(data).expect("create the data directory");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(data))
        .map(Stdio::from)
        .expect("open the server log")
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `fieldsync` with `args`; returns its output whatever the exit code.
pub fn fieldsync(args: &[&str]) -> Output {
    fieldsync_with_passphrase(args, None)
}

/// Runs `fieldsync` with `args` and `FIELDSYNC_PASSPHRASE_FILE` set to
/// `passphrase_file` (unset when `None`). Stdin is never a terminal here, so
/// without the file a command that needs a key fails instead of asking.
pub fn fieldsync_with_passphrase(args: &[&str], passphrase_file: Option<&Path>) -> Output {
    let mut command = Command::new(fieldsync_bin());
    command
        .args(args)
        .env_remove("FIELDSYNC_HOME")
        .env_remove("FIELDSYNC_PASSPHRASE_FILE")
        .env_remove("FIELDSYNC_NEW_PASSPHRASE_FILE")
        .env_remove("FIELDSYNC_DATABASE");
    // An operator's command on a data directory works on that directory's
    // database, as its server does.
    if args.first() == Some(&"admin") {
        let data = args
            .iter()
            .position(|a| *a == "--data")
            .and_then(|i| args.get(i + 1));
        if let Some(url) = data.and_then(|d| stores::known_database(Path::new(d))) {
            command.env("FIELDSYNC_DATABASE", url);
        }
    }
    if let Some(file) = passphrase_file {
        command.env("FIELDSYNC_PASSPHRASE_FILE", file);
    }
    command.output().expect("run fieldsync")
}

/// Runs `fieldsync` and returns its stdout, failing the test on a non-zero exit.
pub fn fieldsync_ok(args: &[&str]) -> String {
    let out = fieldsync(args);
    assert!(
        out.status.success(),
        "fieldsync {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`, …), in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc status"))
}

/// A device home with an enrolled identity.
pub struct DeviceHome {
    pub dir: tempfile::TempDir,
    pub id: String,
    /// Given to every command as `FIELDSYNC_PASSPHRASE_FILE`, once the home
    /// has a passphrase.
    pub passphrase_file: Option<PathBuf>,
}

impl Default for DeviceHome {
    fn default() -> Self {
        Self::new()
    }
}

impl DeviceHome {
    /// A new device home with an identity, not yet enrolled.
    pub fn new() -> Self {
        let mut home = DeviceHome {
            dir: tempfile::tempdir().expect("temp dir"),
            id: String::new(),
            passphrase_file: None,
        };
        home.id = home.ok(&["device", "init"]).trim().to_owned();
        home
    }

    /// Runs `fieldsync device enroll`; returns its output whatever the exit code.
    pub fn enroll(&self, server: &ServerProcess, token: &str) -> Output {
        self.run(&[
            "device",
            "enroll",
            "--server",
            &server.url,
            "--token",
            token,
        ])
    }

    pub fn path(&self) -> &str {
        self.dir.path().to_str().expect("utf-8 temp path")
    }

    /// The home opened as the core's [`Device`], as the CLI opens it (no
    /// passphrase source: for homes without one).
    ///
    /// [`Device`]: fieldsync_core::device::Device
    pub fn device(&self) -> fieldsync_core::device::Device {
        let replica =
            fieldsync_core::replica::Replica::open(self.dir.path()).expect("open the device home");
        fieldsync_core::device::Device::new(replica)
    }

    /// Points this enrolled device at another server address (a proxy, a
    /// server that lies), as its enrollment keeps it.
    pub fn set_server(&self, url: &str) {
        self.device()
            .replica_mut()
            .set_meta(fieldsync_core::device::meta_keys::SERVER, url)
            .expect("keep the server address");
    }

    /// The clock offset this home keeps (0 when none).
    pub fn clock_offset(&self) -> i64 {
        self.device().clock_offset().expect("read the clock offset")
    }

    /// Runs a device command: `fieldsync --home H ARGS`.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut all = vec!["--home", self.path()];
        all.extend_from_slice(args);
        fieldsync_with_passphrase(&all, self.passphrase_file.as_deref())
    }

    /// Records a report in `case` at 10:40 on 21 May 2016 (Almaty) with
    /// `title` and any `extra` arguments; returns its id.
    pub fn record(&self, case: &str, title: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "record",
            "--case",
            case,
            "--title",
            title,
            "--at",
            "2016-05-21T10:40:00+06:00",
        ];
        args.extend_from_slice(extra);
        self.ok(&args).trim().to_owned()
    }

    /// `attachment list REPORT --json`, parsed.
    pub fn attachments(&self, report: &str) -> Vec<serde_json::Value> {
        let listed: serde_json::Value =
            serde_json::from_str(&self.ok(&["attachment", "list", report, "--json"]))
                .expect("attachment list --json prints JSON");
        listed.as_array().cloned().unwrap_or_default()
    }

    /// `attachment get ID --out OUT`, failing the test if it fails.
    pub fn fetch_attachment(&self, id: &str, out: &Path) {
        let out = out.to_str().expect("utf-8 path");
        self.ok(&["attachment", "get", id, "--out", out]);
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "fieldsync {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// `timeline --case CASE --json`, parsed: the reports this device holds.
    pub fn timeline(&self, case: &str) -> Vec<serde_json::Value> {
        let listed: serde_json::Value =
            serde_json::from_str(&self.ok(&["timeline", "--case", case, "--json"]))
                .expect("timeline --json prints JSON");
        listed.as_array().cloned().unwrap_or_default()
    }

    /// `key new --case CASE` on this (coordinator) device, which publishes
    /// the case public key, then a sync on each of `others` (reporters), by
    /// which they take it; returns the private key's share code.
    pub fn share_new_key(&self, case: &str, reporters: &[&DeviceHome]) -> String {
        let printed = self.ok(&["key", "new", "--case", case]);
        let code = printed.lines().next().expect("key new prints the code");
        for reporter in reporters {
            reporter.ok(&["sync"]);
        }
        code.to_owned()
    }

    /// The fingerprint of the newest case public key this device holds, as
    /// `key show` prints it on stderr.
    pub fn case_key_fingerprint(&self, case: &str) -> String {
        let out = self.run(&["key", "show", "--case", case]);
        assert!(out.status.success(), "key show failed");
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter_map(|l| l.split("fingerprint ").nth(1))
            .next_back()
            .expect("key show prints a fingerprint")
            .trim()
            .to_owned()
    }
}

/// `fieldsync record` of the arrest at the bus stop from the Almaty sample,
/// with every kind of field; several scenarios record it.
pub const BUS_STOP_ARREST: &[&str] = &[
    "record",
    "--case",
    "almaty",
    "--title",
    "Arrest at the bus stop",
    "--at",
    "2016-05-21T10:40:00+06:00",
    "--approximate",
    "--place",
    "Bus stop",
    "--lat",
    "43.25",
    "--lon",
    "76.95",
    "--text",
    "Aleksey was arrested.",
    "--tag",
    "arrest",
    "--person",
    "Tulegen Shakirov:officer:car kz380KP02",
];

/// Makes a device, invites it into `case` with `role` and enrolls it.
pub fn enrolled_device(server: &ServerProcess, case: &str, role: &str) -> DeviceHome {
    let home = DeviceHome::new();
    let out = home.enroll(server, &server.invite(case, role));
    assert!(
        out.status.success(),
        "enroll failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    home
}

/// REPORTS and EDITS from a profiling example's arguments; 250 and 10
/// unless both are given.
pub fn reports_and_edits_from_args() -> Result<(usize, usize), String> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse()
                .map_err(|_| "REPORTS EDITS are numbers".to_owned())
        })
        .collect::<Result<_, _>>()?;
    Ok(match args[..] {
        [r, e] => (r, e),
        _ => (250, 10),
    })
}

/// A device replica at `dir`, with its identity, in a case of a fixed id,
/// holding [`fill_sync_workload`]: where the profiling examples start.
/// Returns it and its number of changes.
pub fn workload_replica(
    dir: &Path,
    reports: usize,
    edits: usize,
) -> (fieldsync_core::replica::Replica, usize) {
    let mut replica = fieldsync_core::replica::Replica::open(dir).expect("open the replica");
    replica.init_identity().expect("a device identity");
    let case: fieldsync_core::CaseId = "0123456789abcdef0123456789abcdef"
        .parse()
        .expect("a case id");
    replica
        .set_meta("case_id", case.as_str())
        .expect("the replica's case");
    let changes = fill_sync_workload(&mut replica, &case, reports, edits);
    (replica, changes)
}

/// The benchmarks' sync workload for one device: `reports` new reports
/// (a title and a description) with `edits` appends to the description
/// each, written in one transaction. Returns the number of changes.
pub fn fill_sync_workload(
    replica: &mut fieldsync_core::replica::Replica,
    case: &fieldsync_core::CaseId,
    reports: usize,
    edits: usize,
) -> usize {
    use fieldsync_core::model::Edit;
    use fieldsync_core::{NewReport, ReportId};
    let at = chrono::DateTime::parse_from_rfc3339("2016-05-21T10:40:00+06:00").expect("a time");
    let mut creates = Vec::with_capacity(reports);
    let mut changes = Vec::with_capacity(reports * edits);
    for r in 0..reports {
        let id = ReportId::random().expect("randomness");
        let mut new = NewReport::new(id.clone(), case.clone(), format!("Report {r}"), at);
        new.description = "Detained at the bus stop near the library.".into();
        creates.push(new);
        for e in 0..edits {
            changes.push((
                id.clone(),
                vec![Edit::AppendDescription(format!(" Update {e}."))],
            ));
        }
    }
    replica
        .write_batch(&creates, &changes)
        .expect("the workload is written");
    reports * (1 + edits)
}
