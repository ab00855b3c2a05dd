//! The `fieldsync` command: argument parsing, printing, prompting, and the
//! `ureq` transport. What a device does (enrollment, the order of a sync,
//! resumable transfers, import ids) is `fieldsync_core::device`; the server
//! is `fieldsync-server`. This file parses and dispatches only; each
//! command's module holds its arguments and its printing.

mod admin;
mod app_link;
mod attachments;
mod bundle;
mod client;
mod device;
mod export;
mod hints;
mod home;
mod import;
mod keys;
mod migrate;
mod parse;
mod passphrase;
mod progress;
mod reports;
mod serve;
mod sync;
mod transport;
mod web_login;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use fieldsync_server::blob_store::BlobLocation;

/// See `Cargo.toml`: why this allocator, for the server and the device.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (mimalloc 3),
/// which `libmimalloc-sys` does not name: the slot just before
/// `use_numa_nodes` (16), which it does. Until 2026-12-03 this said 16, so
/// the delay was never set (issue 16).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long mimalloc keeps freed memory before it hands it back to the
/// system, in milliseconds. Its default (a second for its arenas) held the
/// server's peak RSS at 105–137 MiB under the sync bench; 0 gave 73 MiB
/// at more CPU, 10 gave 80 MiB, 100 gave 85 MiB (BENCHMARKS.md).
const PURGE_DELAY_MS: std::ffi::c_long = 10;

#[derive(Parser)]
#[command(
    name = "fieldsync",
    version,
    about = "Record events offline and sync them to a fieldsync server"
)]
pub struct Cli {
    /// The device home (replica and identity). Defaults to $FIELDSYNC_HOME,
    /// else the platform data directory.
    #[arg(long, global = true, env = "FIELDSYNC_HOME")]
    home: Option<PathBuf>,
    /// Tests only: sign requests as if this device's clock were SECS off.
    #[arg(long, global = true, hide = true, allow_hyphen_values = true)]
    simulate_clock_skew: Option<i64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Runs the server.
    Serve {
        /// Data directory (SQLite database and blobs); created if missing.
        #[arg(long, default_value = "./fieldsync-data")]
        data: PathBuf,
        /// PostgreSQL instead of SQLite: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE
        /// (or the FIELDSYNC_DATABASE variable, which keeps a password out of
        /// the process list). Blobs stay in --data.
        #[arg(long, env = "FIELDSYNC_DATABASE", value_name = "URL")]
        database: Option<String>,
        /// Keep attachments (complete and partial uploads) in an
        /// S3-compatible bucket instead of the data directory:
        /// s3://BUCKET/PREFIX, reached with the AWS_* environment variables
        /// (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, ...).
        #[arg(long, value_name = "s3://BUCKET/PREFIX")]
        blobs: Option<BlobLocation>,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Largest sync request body accepted.
        #[arg(long, default_value_t = fieldsync_core::protocol::DEFAULT_MAX_REQUEST_BYTES)]
        max_request_bytes: usize,
        /// Largest attachment (ciphertext) accepted, in bytes.
        #[arg(long, default_value_t = fieldsync_server::DEFAULT_MAX_BLOB_BYTES)]
        max_blob_bytes: u64,
        /// Most bytes of attachments one device may upload (complete and in progress).
        #[arg(long, default_value_t = fieldsync_server::DEFAULT_DEVICE_QUOTA_BYTES)]
        device_quota_bytes: u64,
        /// An unfinished upload untouched this many seconds is deleted.
        #[arg(long, default_value_t = fieldsync_server::DEFAULT_UPLOAD_EXPIRY_SECS)]
        upload_expiry_secs: u64,
        /// Believe X-Forwarded-Proto/-Host and Forwarded (the public scheme
        /// and host) from a reverse proxy in front; without it they are ignored.
        #[arg(long)]
        trust_proxy: bool,
        /// Audit log rows older than this many days are deleted (at start
        /// and hourly).
        #[arg(long, default_value_t = fieldsync_server::DEFAULT_AUDIT_RETENTION_DAYS,
              value_parser = clap::value_parser!(u32).range(1..))]
        audit_retention_days: u32,
        /// Serve the operators' metrics (Prometheus text, `GET /metrics`
        /// only) on this second address, e.g. 127.0.0.1:9464; keep it off
        /// the public network. Without it no metrics are served.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<String>,
    },
    /// Operator commands on a server's data directory (work while it runs).
    Admin {
        #[arg(long, default_value = "./fieldsync-data")]
        data: PathBuf,
        /// PostgreSQL instead of SQLite: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE
        /// (or the FIELDSYNC_DATABASE variable, which keeps a password out of
        /// the process list). Blobs stay in --data.
        #[arg(long, env = "FIELDSYNC_DATABASE", value_name = "URL")]
        database: Option<String>,
        /// The server's --blobs, accepted (and checked) for symmetry with
        /// `serve`: no admin command touches attachments today.
        #[arg(long, value_name = "s3://BUCKET/PREFIX")]
        blobs: Option<BlobLocation>,
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// This device's identity and enrollment.
    #[command(subcommand)]
    Device(device::DeviceCommand),
    /// Records a new report on this device; needs no network. Prints its id.
    Record(reports::RecordArgs),
    /// Changes a report on this device; needs no network.
    Edit(reports::EditArgs),
    /// Sends what this device recorded and receives what it lacks.
    Sync {
        #[arg(long)]
        json: bool,
        /// Bound on each request; a device with more makes several rounds.
        #[arg(long, default_value_t = fieldsync_core::protocol::DEFAULT_MAX_REQUEST_BYTES)]
        max_request_bytes: usize,
    },
    /// The reports on this device, in the order they happened.
    Timeline(reports::TimelineArgs),
    /// Case keys that seal attachments; kept on devices, never sent.
    #[command(subcommand)]
    Key(keys::KeyCommand),
    /// A report's attachments: list them, fetch and decrypt one.
    #[command(subcommand)]
    Attachment(attachments::AttachmentCommand),
    /// Sync bundles: this device's work in one signed file, for when there
    /// is no network at all.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Brings reports from JSON, CSV or narrative text into a case, or
    /// applies a sync bundle from another device.
    Import(import::ImportArgs),
    /// The case's reports on this device, as JSON, CSV, GeoJSON, TimelineJS
    /// or Markdown, optionally with every attachment decrypted.
    Export(export::ExportArgs),
    /// Mints a one-time enrollment token on this coordinator's device and
    /// prints it with the fingerprint of the case key (first line token,
    /// second line fingerprint).
    Invite(keys::InviteArgs),
    /// Prints a one-time link that opens the review web app in a browser
    /// as this coordinator device (keys travel in the link's fragment only).
    WebLogin(web_login::WebLoginArgs),
    /// One report, every field and its signed change history.
    Show {
        report_id: String,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // Freed memory goes back to the system within 10 ms rather than a
    // second, to keep the server's peak RSS down under sync load.
    // SAFETY: sets a plain integer option; mimalloc reads it on each purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        end_quietly_when_the_reader_goes_away();
    }
    if let Some(secs) = cli.simulate_clock_skew {
        client::simulate_clock_skew(secs);
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", hints::with_hint(&e));
            ExitCode::FAILURE
        }
    }
}

/// Runs a parsed command line.
fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve {
            data,
            database,
            blobs,
            listen,
            max_request_bytes,
            max_blob_bytes,
            device_quota_bytes,
            upload_expiry_secs,
            trust_proxy,
            audit_retention_days,
            metrics_listen,
        } => {
            let mut config = fieldsync_server::Config::new(data);
            config.database = database;
            config.blobs = blobs.unwrap_or_default();
            config.max_request_bytes = max_request_bytes;
            config.max_blob_bytes = max_blob_bytes;
            config.device_quota_bytes = device_quota_bytes;
            config.upload_expiry_secs = upload_expiry_secs;
            config.trust_proxy = trust_proxy;
            config.audit_retention_days = audit_retention_days;
            serve::serve(config, &listen, metrics_listen.as_deref())
        }
        Command::Admin {
            data,
            database,
            blobs: _,
            command,
        } => admin::run(&data, database.as_deref(), command),
        Command::Device(command) => device::run(&home(cli.home)?, command),
        Command::Record(args) => reports::record(&home(cli.home)?, args),
        Command::Edit(args) => reports::edit(&home(cli.home)?, args),
        Command::Sync {
            json,
            max_request_bytes,
        } => sync::sync(&home(cli.home)?, json, max_request_bytes),
        Command::Timeline(args) => reports::timeline(&home(cli.home)?, args),
        Command::Show { report_id, json } => reports::show(&home(cli.home)?, &report_id, json),
        Command::Key(command) => keys::run(&home(cli.home)?, command),
        Command::Attachment(command) => attachments::run(&home(cli.home)?, command),
        Command::Bundle(command) => bundle::run(&home(cli.home)?, command),
        Command::Import(args) => import::run(&home(cli.home)?, args),
        Command::Export(args) => export::run(&home(cli.home)?, args),
        Command::WebLogin(args) => web_login::run(&home(cli.home)?, args),
        Command::Invite(args) => keys::invite(&home(cli.home)?, args),
    }
}

fn home(flag: Option<PathBuf>) -> Result<PathBuf> {
    match flag {
        Some(home) => Ok(home),
        None => Ok(dirs::data_dir()
            .context("no --home given, FIELDSYNC_HOME is not set and this platform has no data directory; pass --home DIR")?
            .join("fieldsync")),
    }
}

/// `fieldsync timeline --json | head` must end quietly, as any Unix tool
/// does, when the reader closes the pipe. Rust ignores SIGPIPE, which turns
/// the next `println!` into a panic. The server keeps ignoring it: its
/// sockets must never kill it (they write with MSG_NOSIGNAL anyway).
#[cfg(unix)]
fn end_quietly_when_the_reader_goes_away() {
    // SAFETY: called first thing in main, before any thread exists, and
    // SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn end_quietly_when_the_reader_goes_away() {}

#[cfg(test)]
mod tests {
    use super::*;

    /// mimalloc's option numbers are an enum's order, not names: check the
    /// slot against its named neighbour, and that the setting sticks.
    #[test]
    fn the_purge_delay_is_the_option_set() {
        assert_eq!(
            MI_OPTION_PURGE_DELAY + 1,
            libmimalloc_sys::mi_option_use_numa_nodes
        );
        // SAFETY: plain integer options, as in `main`.
        let set = unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
            libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY)
        };
        assert_eq!(set, PURGE_DELAY_MS);
    }
}
