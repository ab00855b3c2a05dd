//! The `fieldsync` command: argument parsing and printing only. Every
//! command calls `fieldsync-core` or `fieldsync-server`.

mod app_link;
mod attachments;
mod bundle;
mod client;
mod commands;
mod export;
mod import;
mod keys;
mod passphrase;
mod transfer;
mod transport;
mod web_login;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    },
    /// Operator commands on a server's data directory (work while it runs).
    Admin {
        #[arg(long, default_value = "./fieldsync-data")]
        data: PathBuf,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// This device's identity and enrollment.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Records a new report on this device; needs no network. Prints its id.
    Record(commands::RecordArgs),
    /// Changes a report on this device; needs no network.
    Edit(commands::EditArgs),
    /// Sends what this device recorded and receives what it lacks.
    Sync {
        #[arg(long)]
        json: bool,
        /// Bound on each request; a device with more makes several rounds.
        #[arg(long, default_value_t = fieldsync_core::protocol::DEFAULT_MAX_REQUEST_BYTES)]
        max_request_bytes: usize,
    },
    /// The reports on this device, in the order they happened.
    Timeline(commands::TimelineArgs),
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

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Cases.
    #[command(subcommand)]
    Case(CaseCommand),
    /// Issues a one-time enrollment token for a case and a role.
    Invite {
        #[arg(long)]
        case: String,
        #[arg(long)]
        role: String,
        /// How long the token is valid: 90s, 30m, 24h, 7d.
        #[arg(long, default_value = "24h")]
        expires: String,
        /// Print {token, case, role, case_keys: [{epoch, fingerprint}]} (and link).
        #[arg(long)]
        json: bool,
        /// The server's address as phones reach it: print the phone app's
        /// invite link, URL/app/#invite=TOKEN, instead of the bare token.
        #[arg(long, value_name = "URL")]
        link: Option<String>,
        /// Also draw the link (or the token) as a QR code.
        #[arg(long)]
        qr: bool,
    },
    /// Lists enrolled devices.
    Devices {
        #[arg(long)]
        case: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revokes a device (a seized phone): refused from its next request on.
    Revoke { device_id: String },
}

#[derive(Subcommand)]
pub enum CaseCommand {
    /// Creates a case and prints its id.
    Create { name: String },
}

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Makes this device's key pair and prints its device id.
    Init,
    /// Enrolls this device with a server using a one-time token.
    Enroll {
        #[arg(long)]
        server: String,
        /// Tokens may begin with "-".
        #[arg(long, allow_hyphen_values = true)]
        token: String,
        /// Allow a plain http:// server that is not this machine (a lab
        /// network you control); serve over TLS instead.
        #[arg(long)]
        insecure_http: bool,
        /// The case key fingerprint the invite carries: the server's case
        /// public key is taken only if it matches. Without it the key is
        /// taken on trust, with a warning.
        #[arg(long, allow_hyphen_values = true)]
        case_key_fingerprint: Option<String>,
    },
    /// Protects this device's keys with a passphrase (for coordinators'
    /// laptops): set, change, remove, status.
    #[command(subcommand)]
    Passphrase(passphrase::PassphraseCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        end_quietly_when_the_reader_goes_away();
    }
    if let Some(secs) = cli.simulate_clock_skew {
        client::simulate_clock_skew(secs);
    }
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
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
