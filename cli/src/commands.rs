//! One function per command: parse what the user typed into library types,
//! call the library, print the result.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, FixedOffset, Utc};
use clap::Args;
use fieldsync_core::document::rfc3339;
use fieldsync_core::export::{self, UnreadableReport};
use fieldsync_core::model::{Edit, Person, Place, Report, ReviewStatus, Role, TimelineEntry};
use fieldsync_core::replica::{Replica, SyncFailure};
use fieldsync_core::request_auth::describe_offset;
use fieldsync_core::signed_change::attribute;
use fieldsync_core::sync::policy::DeviceRole;
use fieldsync_core::{CaseId, DeviceId, NewReport, ReportId};
use fieldsync_server::store::Store;

use crate::attachments::{discard, seal_files, upload_outbox};
use crate::client::Client;
use crate::{AdminCommand, CaseCommand, Cli, Command, DeviceCommand};

#[derive(Args)]
pub struct RecordArgs {
    #[arg(long, allow_hyphen_values = true)]
    case: String,
    #[arg(long, allow_hyphen_values = true)]
    title: String,
    /// When it happened, RFC 3339 with offset: 2016-05-21T10:40:00+06:00.
    #[arg(long, allow_hyphen_values = true)]
    at: String,
    /// The time is an estimate ("around 10:40").
    #[arg(long)]
    approximate: bool,
    #[arg(long, allow_hyphen_values = true)]
    place: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    lat: Option<f64>,
    #[arg(long, allow_hyphen_values = true)]
    lon: Option<f64>,
    /// The description.
    #[arg(long, allow_hyphen_values = true)]
    text: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    tag: Vec<String>,
    /// NAME:ROLE[:NOTE], role one of officer, detainee, witness, victim, other.
    #[arg(long, allow_hyphen_values = true)]
    person: Vec<String>,
    /// A photo, video, recording or document; encrypted at once with the
    /// case key, uploaded on the next sync. Repeat for several.
    #[arg(long, allow_hyphen_values = true)]
    attach: Vec<PathBuf>,
}

#[derive(Args)]
pub struct EditArgs {
    report_id: String,
    #[arg(long, allow_hyphen_values = true)]
    title: Option<String>,
    /// Replaces the description (merged with concurrent edits elsewhere in it).
    #[arg(long, allow_hyphen_values = true)]
    text: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    append_text: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    add_tag: Vec<String>,
    #[arg(long, allow_hyphen_values = true)]
    remove_tag: Vec<String>,
    /// NAME:ROLE[:NOTE]
    #[arg(long, allow_hyphen_values = true)]
    person: Vec<String>,
    /// "RFC3339 TEXT": a sub-event inside the report.
    #[arg(long, allow_hyphen_values = true)]
    timeline: Vec<String>,
    /// Review status (coordinators only): unverified, verified, disputed.
    #[arg(long, allow_hyphen_values = true)]
    status: Option<String>,
    #[arg(long, requires = "status", allow_hyphen_values = true)]
    note: Option<String>,
    /// Attaches a file, encrypted at once; repeat for several.
    #[arg(long, allow_hyphen_values = true)]
    attach: Vec<PathBuf>,
}

#[derive(Args)]
pub struct TimelineArgs {
    #[arg(long, allow_hyphen_values = true)]
    case: String,
    #[arg(long, allow_hyphen_values = true)]
    from: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    to: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    tag: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    status: Option<String>,
    #[arg(long)]
    json: bool,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve {
            data,
            listen,
            max_request_bytes,
            max_blob_bytes,
            device_quota_bytes,
            upload_expiry_secs,
            trust_proxy,
            audit_retention_days,
        } => {
            let mut config = fieldsync_server::Config::new(data);
            config.max_request_bytes = max_request_bytes;
            config.max_blob_bytes = max_blob_bytes;
            config.device_quota_bytes = device_quota_bytes;
            config.upload_expiry_secs = upload_expiry_secs;
            config.trust_proxy = trust_proxy;
            config.audit_retention_days = audit_retention_days;
            serve(config, &listen)
        }
        Command::Admin { data, command } => admin(&data, command),
        Command::Device(command) => device(&home(cli.home)?, command),
        Command::Record(args) => record(&home(cli.home)?, args),
        Command::Edit(args) => edit(&home(cli.home)?, args),
        Command::Sync {
            json,
            max_request_bytes,
        } => sync(&home(cli.home)?, json, max_request_bytes),
        Command::Timeline(args) => timeline(&home(cli.home)?, args),
        Command::Show { report_id, json } => show(&home(cli.home)?, &report_id, json),
        Command::Key(command) => crate::keys::run(&home(cli.home)?, command),
        Command::Attachment(command) => crate::attachments::run(&home(cli.home)?, command),
        Command::Bundle(command) => crate::bundle::run(&home(cli.home)?, command),
        Command::Import(args) => crate::import::run(&home(cli.home)?, args),
        Command::Export(args) => crate::export::run(&home(cli.home)?, args),
        Command::WebLogin(args) => crate::web_login::run(&home(cli.home)?, args),
        Command::Invite(args) => crate::keys::invite(&home(cli.home)?, args),
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

fn serve(config: fieldsync_server::Config, listen: &str) -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let listener = std::net::TcpListener::bind(listen).with_context(|| {
        format!("cannot listen on {listen}; is another server using that port?")
    })?;
    let addr = listener.local_addr()?;
    let data = config.data_dir.clone();
    actix_web::rt::System::new().block_on(async move {
        let server = fieldsync_server::run(listener, config)
            .with_context(|| format!("cannot open the data directory {}", data.display()))?;
        println!(
            "fieldsync listening on http://{addr} (data in {})",
            data.display()
        );
        std::io::stdout().flush().ok();
        server.await.context("the server stopped with an error")
    })?;
    Ok(ExitCode::SUCCESS)
}

fn admin(data: &Path, command: AdminCommand) -> Result<ExitCode> {
    // Warnings (a data directory found readable by others) go to stderr.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let store = Store::open(data)
        .with_context(|| format!("cannot open the data directory {}", data.display()))?;
    match command {
        AdminCommand::Case(CaseCommand::Create { name }) => {
            let case = store.create_case(&name)?;
            println!("{}", case.id);
        }
        AdminCommand::Invite {
            case,
            role,
            expires,
            json,
            link,
            qr,
        } => {
            let role: DeviceRole = role.parse().map_err(|e: String| anyhow!(e))?;
            let ttl = parse_duration(&expires)?;
            // Checked before the token is made, so a typo wastes no invite.
            if let Some(base) = &link {
                crate::app_link::invite_link(base, "", None)?;
            }
            let token = store.create_invite(&case, role, ttl)?;
            // The fingerprints of the keys as this server holds them: a
            // check against substitution only if read from a coordinator's
            // device (`fieldsync invite` or `key show`), not from here.
            let keys: Vec<serde_json::Value> = store
                .case_public_keys_by_name(&case)?
                .iter()
                .filter_map(|k| {
                    let bytes: [u8; 32] = hex::decode(&k.public_key).ok()?.try_into().ok()?;
                    let fp = fieldsync_core::case_key::CasePublicKey::from_bytes(k.epoch, bytes)
                        .fingerprint();
                    Some(serde_json::json!({"epoch": k.epoch, "fingerprint": fp}))
                })
                .collect();
            let newest = keys.last().and_then(|k| k["fingerprint"].as_str());
            // The server's own view of the key goes in the link too: it
            // cannot catch this server lying, but it does catch a key
            // swapped between now and the phone's enrollment.
            let link = link
                .map(|base| crate::app_link::invite_link(&base, &token, newest))
                .transpose()?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "token": token,
                        "case": case,
                        "role": role.as_str(),
                        "case_keys": keys,
                        "link": link,
                    }))?
                );
            } else {
                // The token (or the link) alone on stdout: scripts read it.
                println!("{}", link.as_deref().unwrap_or(&token));
                if qr {
                    println!(
                        "{}",
                        crate::app_link::qr(link.as_deref().unwrap_or(&token))?
                    );
                }
                match newest {
                    Some(fp) => eprintln!(
                        "case key fingerprint (as this server holds it): {fp} (epoch {}); compare it with a coordinator's `fieldsync key show` before giving it with --case-key-fingerprint",
                        keys.last().map(|k| k["epoch"].clone()).unwrap_or_default()
                    ),
                    None => eprintln!("the case has no published case key yet; a coordinator makes one with `fieldsync key new`"),
                }
                if let Some(base) = link
                    .as_deref()
                    .filter(|l| crate::app_link::insecure_for_phones(l))
                {
                    eprintln!("note: {base} is plain http to another machine; phones run the app only over https (or on this machine). Serve fieldsync behind TLS (README, \"Serving over TLS\")");
                }
            }
        }
        AdminCommand::Devices { case, json } => {
            let devices = store.devices(case.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&devices)?);
            } else {
                println!(
                    "{:<32}  {:<11}  {:<20}  {:<25}  revoked",
                    "device", "role", "case", "enrolled"
                );
                for d in devices {
                    println!(
                        "{:<32}  {:<11}  {:<20}  {:<25}  {}",
                        d.device_id,
                        d.role.as_str(),
                        d.case_name,
                        d.enrolled_at,
                        d.revoked_at.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        AdminCommand::Revoke { device_id } => {
            let id: DeviceId = device_id.parse()?;
            let device = store.revoke(&id)?;
            println!(
                "revoked {} ({} of case {}) at {}",
                device.device_id,
                device.role.as_str(),
                device.case_name,
                device.revoked_at.as_deref().unwrap_or("?")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses 90s, 30m, 24h, 7d.
pub(crate) fn parse_duration(text: &str) -> Result<Duration> {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = number.parse().map_err(|_| {
        anyhow!("--expires {text:?}: expected a number and a unit, like 30m, 24h or 7d")
    })?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("--expires {text:?}: the unit must be s, m, h or d"),
    };
    Ok(Duration::from_secs(secs))
}

/// Opens the device home: says what of it others could read (it is then
/// made owner-only), and asks for its passphrase when a key is first needed.
pub(crate) fn open(home: &Path) -> Result<Replica> {
    let mut replica = Replica::open(home)
        .with_context(|| format!("cannot open the device home {}", home.display()))?;
    for tightened in replica.tightened() {
        eprintln!("warning: {tightened}");
    }
    replica.set_passphrase_source(crate::passphrase::source(home));
    Ok(replica)
}

fn device(home: &Path, command: DeviceCommand) -> Result<ExitCode> {
    let mut replica = open(home)?;
    match command {
        DeviceCommand::Init => {
            // Asked before the write, so no transaction waits on a person.
            replica.unlock()?;
            println!("{}", replica.init_identity()?)
        }
        DeviceCommand::Passphrase(command) => {
            return crate::passphrase::run(home, &mut replica, command)
        }
        DeviceCommand::Enroll {
            server,
            token,
            insecure_http,
            case_key_fingerprint,
        } => {
            crate::transport::check_server_url(&server, insecure_http, "enroll")?;
            let key = replica
                .device_key()?
                .context("this device has no identity yet; run `fieldsync device init` first")?;
            if let Some(case) = replica.meta("case_name")? {
                bail!("this device is already enrolled in case {case}; a device belongs to one case, use another --home for another");
            }
            let pin = case_key_fingerprint
                .as_deref()
                .map(crate::keys::parse_fingerprint)
                .transpose()?;
            let client = client_for(&replica, &server)?;
            let enrolled = client.enroll(&key, token.trim())?;
            keep_clock_offset(&mut replica, &client)?;
            replica.set_meta("server", &server)?;
            replica.set_meta("case_id", &enrolled.case_id)?;
            replica.set_meta("case_name", &enrolled.case_name)?;
            replica.set_meta("role", enrolled.role.as_str())?;
            if let Some(salt) = &enrolled.import_salt {
                replica.set_meta(crate::import::IMPORT_SALT, salt)?;
            }
            if let Some(pin) = &pin {
                replica.set_meta(crate::keys::PINNED_FINGERPRINT, pin)?;
            }
            println!(
                "enrolled device {} as {} of case {}",
                enrolled.device_id,
                enrolled.role.as_str(),
                enrolled.case_name
            );
            if enrolled.role == DeviceRole::Reporter {
                return take_enrollment_keys(&mut replica, &enrolled, pin.as_deref());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A reporter's device takes the case public key it enrolled with: the one
/// its invite's fingerprint names, or, without one, what the server gave,
/// on trust. A fingerprint no offered key matches fails the command (the
/// device stays enrolled and takes the right key when it arrives).
fn take_enrollment_keys(
    replica: &mut Replica,
    enrolled: &fieldsync_core::protocol::EnrollResponse,
    pin: Option<&str>,
) -> Result<ExitCode> {
    let enrollment = enrollment(replica)?;
    let mut report = crate::keys::KeyRefresh::default();
    crate::keys::take(replica, &enrollment, &enrolled.case_keys, &mut report)?;
    let trusted = !replica.case_public_keys(&enrollment.case_name)?.is_empty();
    match pin {
        Some(pin) if !trusted => {
            if enrolled.case_keys.is_empty() {
                eprintln!("the server has no case key yet: this device will take the one with fingerprint {pin} when it syncs, and cannot seal attachments until then");
            } else {
                bail!("the server's case key does not match the fingerprint your invite gives ({pin}): the server may be substituting its own key. This device is enrolled but takes no key and cannot seal attachments until a key with that fingerprint arrives on a later `fieldsync sync`. Tell your coordinator, and check the fingerprint was copied whole");
            }
        }
        Some(pin) => eprintln!("the case key matches your invite's fingerprint {pin}"),
        None if !trusted => eprintln!("warning: the case has no published key yet; this device takes the first one the server gives on a later sync, on trust. Next time enroll with --case-key-fingerprint from your invite"),
        None => eprintln!("warning: enrolled without --case-key-fingerprint: the case key above was taken on trust from the server. Check its fingerprint with your coordinator"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the device home keeps the clock offset learned from the server.
const CLOCK_OFFSET: &str = "clock_offset_secs";

/// A client for `server` that signs with the clock offset this device
/// home learned from the server, if any.
pub(crate) fn client_for(replica: &Replica, server: &str) -> Result<Client> {
    let offset = match replica.meta(CLOCK_OFFSET)? {
        Some(text) => text.parse().unwrap_or(0),
        None => 0,
    };
    Ok(Client::new(server).with_clock_offset(offset))
}

/// Keeps a clock offset the client learned in the device home and tells
/// the user their clock is off. The times a user records are never
/// changed by it; only request signatures use it.
pub(crate) fn keep_clock_offset(replica: &mut Replica, client: &Client) -> Result<()> {
    let kept: i64 = replica
        .meta(CLOCK_OFFSET)?
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let offset = client.clock_offset();
    if offset == kept {
        return Ok(());
    }
    replica.set_meta(CLOCK_OFFSET, &offset.to_string())?;
    if offset == 0 {
        eprintln!("this device's clock now agrees with the server's");
    } else {
        eprintln!(
            "warning: this device's clock is {} the server's; fieldsync signs its requests with the server's time from now on. \
             Times you record (--at, --timeline) are kept exactly as you give them, but set this device's clock: times it stamps by itself are off by as much",
            describe_offset(offset)
        );
    }
    Ok(())
}

pub(crate) struct Enrollment {
    pub server: String,
    pub case_id: CaseId,
    pub case_name: String,
    pub role: DeviceRole,
}

pub(crate) fn enrollment(replica: &Replica) -> Result<Enrollment> {
    let get = |k: &str| -> Result<String> {
        replica.meta(k)?.context(
            "this device is not enrolled in a case; run `fieldsync device enroll --server URL --token TOKEN` with a token from your coordinator",
        )
    };
    Ok(Enrollment {
        server: get("server")?,
        case_id: get("case_id")?.parse()?,
        case_name: get("case_name")?,
        role: get("role")?.parse().map_err(|e: String| anyhow!(e))?,
    })
}

pub(crate) fn check_case(enrollment: &Enrollment, name: &str) -> Result<()> {
    if enrollment.case_name != name {
        bail!(
            "this device is enrolled in case {:?}, not {name:?}",
            enrollment.case_name
        );
    }
    Ok(())
}

fn parse_time(flag: &str, text: &str) -> Result<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text).map_err(|e| {
        anyhow!("{flag} {text:?} is not an RFC 3339 time with offset ({e}); write it like 2016-05-21T10:40:00+06:00")
    })
}

fn parse_person(text: &str) -> Result<Person> {
    let mut parts = text.splitn(3, ':');
    let name = parts.next().unwrap_or_default().trim();
    let role = parts
        .next()
        .ok_or_else(|| anyhow!("--person {text:?}: write NAME:ROLE[:NOTE]"))?;
    let role: Role = role
        .trim()
        .parse()
        .map_err(|e: String| anyhow!("--person {text:?}: {e}"))?;
    Ok(Person {
        name: name.to_owned(),
        role,
        note: parts.next().unwrap_or_default().trim().to_owned(),
    })
}

fn record(home: &Path, args: RecordArgs) -> Result<ExitCode> {
    let mut replica = open(home)?;
    let enrollment = enrollment(&replica)?;
    check_case(&enrollment, &args.case)?;
    let new = NewReport {
        id: ReportId::random()?,
        case: enrollment.case_id,
        title: args.title,
        occurred_at: parse_time("--at", &args.at)?,
        approximate: args.approximate,
        place: Place {
            name: args.place.unwrap_or_default(),
            lat: args.lat,
            lon: args.lon,
        },
        description: args.text.unwrap_or_default(),
        people: args
            .person
            .iter()
            .map(|p| parse_person(p))
            .collect::<Result<_>>()?,
        tags: args.tag,
        timeline: vec![],
    };
    let attachments = seal_files(&replica, &enrollment.case_name, &args.attach)?;
    let created = replica.create_report_with(&new, &attachments);
    println!(
        "{}",
        created.inspect_err(|_| discard(&replica, &attachments))?
    );
    Ok(ExitCode::SUCCESS)
}

fn edit(home: &Path, args: EditArgs) -> Result<ExitCode> {
    let mut replica = open(home)?;
    let enrollment = enrollment(&replica)?;
    let id: ReportId = args.report_id.parse()?;
    let mut edits = Vec::new();
    if let Some(title) = args.title {
        edits.push(Edit::SetTitle(title));
    }
    if let Some(text) = args.text {
        edits.push(Edit::SetDescription(text));
    }
    if let Some(text) = args.append_text {
        edits.push(Edit::AppendDescription(text));
    }
    edits.extend(args.add_tag.into_iter().map(Edit::AddTag));
    edits.extend(args.remove_tag.into_iter().map(Edit::RemoveTag));
    for p in &args.person {
        edits.push(Edit::AddPerson(parse_person(p)?));
    }
    for entry in &args.timeline {
        let (at, text) = entry
            .split_once(' ')
            .ok_or_else(|| anyhow!("--timeline {entry:?}: write \"RFC3339 TEXT\""))?;
        edits.push(Edit::AddTimelineEntry(TimelineEntry {
            at: parse_time("--timeline", at)?,
            text: text.trim().to_owned(),
            approximate: false,
        }));
    }
    if let Some(status) = args.status {
        if enrollment.role != DeviceRole::Coordinator {
            bail!("review status is set by coordinators; this device is a reporter");
        }
        let status: ReviewStatus = status.parse().map_err(|e: String| anyhow!(e))?;
        let key = replica
            .device_key()?
            .context("this device has no identity")?;
        edits.push(Edit::SetReview {
            status,
            note: args.note.unwrap_or_default(),
            reviewer: key.device_id().to_string(),
            at: Utc::now().fixed_offset(),
        });
    }
    if edits.is_empty() && args.attach.is_empty() {
        bail!("nothing to change; give at least one of --title, --text, --append-text, --add-tag, --remove-tag, --person, --timeline, --status, --attach");
    }
    // The report must be here before its files are sealed for it.
    replica.report(&id)?;
    let attachments = seal_files(&replica, &enrollment.case_name, &args.attach)?;
    edits.extend(attachments.iter().cloned().map(Edit::AddAttachment));
    let edited = replica.edit_report(&id, &edits);
    match edited.inspect_err(|_| discard(&replica, &attachments))? {
        Some(hash) => println!("{hash}"),
        None => println!("no change"),
    }
    Ok(ExitCode::SUCCESS)
}

fn sync(home: &Path, json: bool, max_request_bytes: usize) -> Result<ExitCode> {
    let mut replica = open(home)?;
    let enrollment = enrollment(&replica)?;
    let key = replica
        .device_key()?
        .context("this device has no identity")?;
    let client = client_for(&replica, &enrollment.server)?;
    let pending = replica.pending_change_count()?;
    let result = replica.sync(
        max_request_bytes,
        |request| client.sync(&key, request),
        |round| {
            if !json {
                eprintln!(
                    "  round: sent {}, received {}, new reports {}",
                    round.sent, round.received, round.new_reports
                );
            }
        },
    );
    keep_clock_offset(&mut replica, &client)?;
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            let left = replica.pending_change_count().unwrap_or(pending);
            let why = match e {
                SyncFailure::Transport(e) => e.to_string(),
                other => other.to_string(),
            };
            bail!("sync failed: {why}\nnothing was lost: {left} changes stay on this device and go out on the next `fieldsync sync`")
        }
    };
    // After the changes: the server accepts a blob only once it holds the
    // report that references it.
    let uploads = upload_outbox(&mut replica, &client, &key, json)?;
    keep_clock_offset(&mut replica, &client)?;
    if enrollment.role == DeviceRole::Coordinator {
        // Kept for checking bundles offline; a failure here loses nothing.
        match client.roster(&key) {
            Ok(roster) => replica.set_roster(&roster)?,
            Err(e) => eprintln!("warning: could not refresh the case's device list: {e}"),
        }
        // A device enrolled before cases had an import salt gets it here.
        match client.case_info(&key) {
            Ok(case) if case.case_id == enrollment.case_id.as_str() => {
                replica.set_meta(crate::import::IMPORT_SALT, &case.import_salt)?
            }
            Ok(_) => eprintln!("warning: the server answered with another case's details"),
            Err(e) => eprintln!("warning: could not fetch the case's import salt: {e}"),
        }
    }
    // After the changes, so a sync stays one round trip for them: publish
    // this coordinator's keys, or take the case's newest public key.
    let case_keys = crate::keys::refresh(&mut replica, &client, &key, &enrollment)?;
    if json {
        let mut out = serde_json::to_value(&summary)?;
        out["attachments"] = serde_json::to_value(&uploads)?;
        out["case_keys"] = serde_json::to_value(&case_keys)?;
        out["http"] = serde_json::to_value(client.traffic.get())?;
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "synced with {}: sent {} changes, received {} ({} new reports) in {} rounds",
            enrollment.server, summary.sent, summary.received, summary.new_reports, summary.rounds
        );
        for r in &summary.refused {
            println!(
                "refused change {} of report {}: {}",
                r.change, r.report, r.message
            );
        }
        if uploads.uploaded > 0 {
            println!(
                "uploaded {} attachments ({} bytes, encrypted)",
                uploads.uploaded, uploads.bytes
            );
        }
        for f in &uploads.failed {
            let next = if f.will_retry {
                "it stays on this device; the next `fieldsync sync` resumes it"
            } else {
                "it stays on this device, but sync will not get it through until the cause above is dealt with"
            };
            println!(
                "attachment {} of report {} not uploaded: {}\n  {next}",
                f.attachment, f.report, f.error
            );
        }
    }
    Ok(if !summary.refused.is_empty() {
        ExitCode::from(3)
    } else if !uploads.failed.is_empty() {
        ExitCode::from(4)
    } else {
        ExitCode::SUCCESS
    })
}

/// Says on stderr which reports this device holds but cannot read, so a
/// listing or an export that goes on without them does not hide them.
pub(crate) fn warn_unreadable(unreadable: &[UnreadableReport]) {
    for u in unreadable {
        eprintln!(
            "warning: report {} cannot be read on this device and is left out: {}; update fieldsync, or ask a coordinator to correct the report",
            u.id, u.reason
        );
    }
}

fn timeline(home: &Path, args: TimelineArgs) -> Result<ExitCode> {
    let replica = open(home)?;
    let enrollment = enrollment(&replica)?;
    check_case(&enrollment, &args.case)?;
    let from = args
        .from
        .as_deref()
        .map(|t| parse_time("--from", t))
        .transpose()?;
    let to = args
        .to
        .as_deref()
        .map(|t| parse_time("--to", t))
        .transpose()?;
    let status: Option<ReviewStatus> = args
        .status
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: String| anyhow!(e))?;
    let (reports, unreadable) = export::case_reports(&replica, &enrollment.case_id)?;
    warn_unreadable(&unreadable);
    let reports: Vec<Report> = reports
        .into_iter()
        .filter(|r| from.is_none_or(|f| r.occurred_at.is_some_and(|t| t >= f)))
        .filter(|r| to.is_none_or(|f| r.occurred_at.is_some_and(|t| t <= f)))
        .filter(|r| args.tag.as_ref().is_none_or(|tag| r.tags.contains(tag)))
        .filter(|r| status.is_none_or(|s| r.review.status == s))
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
        return Ok(ExitCode::SUCCESS);
    }
    for r in &reports {
        let when = r
            .occurred_at
            .as_ref()
            .map(rfc3339)
            .unwrap_or_else(|| "(no time)".into());
        println!(
            "{}{}  {}  {}  [{}]  {}",
            if r.approximate { "~" } else { " " },
            when,
            r.id,
            r.title,
            r.review.status,
            r.place.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(serde::Serialize)]
struct HistoryEntry {
    hash: String,
    author: String,
    via_web_session: bool,
    time: Option<String>,
    signature_verified: bool,
}

#[derive(serde::Serialize)]
struct ShowOutput {
    report: Report,
    history: Vec<HistoryEntry>,
}

fn show(home: &Path, report_id: &str, json: bool) -> Result<ExitCode> {
    let replica = open(home)?;
    let id: ReportId = report_id.parse()?;
    let report = replica.report(&id)?;
    let mut doc = replica.document(&id)?;
    let mut history = Vec::new();
    for change in doc.get_changes(&[]) {
        let signature = replica.signature(&id, &change.hash())?.unwrap_or_default();
        let who = attribute(&change, &signature);
        history.push(HistoryEntry {
            hash: change.hash().to_string(),
            author: match who.device {
                Some(key) => key.device_id().to_string(),
                None => format!("unknown actor {}", change.actor_id()),
            },
            via_web_session: who.via_web_session,
            time: DateTime::from_timestamp_millis(change.timestamp()).map(|t| t.to_rfc3339()),
            signature_verified: who.signature_verified,
        });
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&ShowOutput { report, history })?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let r = &report;
    println!("report    {}", r.id);
    println!("title     {}", r.title);
    println!(
        "when      {}{}",
        r.occurred_at.as_ref().map(rfc3339).unwrap_or_default(),
        if r.approximate { " (approximate)" } else { "" }
    );
    println!("place     {}", r.place.name);
    if let (Some(lat), Some(lon)) = (r.place.lat, r.place.lon) {
        println!("          {lat}, {lon}");
    }
    println!(
        "status    {}{}",
        r.review.status,
        if r.review.note.is_empty() {
            String::new()
        } else {
            format!(" — {}", r.review.note)
        }
    );
    println!(
        "tags      {}",
        r.tags.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    for p in &r.people {
        println!("person    {} ({}) {}", p.name, p.role, p.note);
    }
    for e in &r.timeline {
        println!("timeline  {}  {}", rfc3339(&e.at), e.text);
    }
    println!(
        "created   by {} at {}",
        r.created_by,
        r.created_at.as_ref().map(rfc3339).unwrap_or_default()
    );
    println!("\n{}\n", r.description);
    for h in &history {
        println!(
            "change {}… by {}{} at {} — signature {}",
            &h.hash[..12],
            h.author,
            if h.via_web_session {
                " (web session)"
            } else {
                ""
            },
            h.time.as_deref().unwrap_or("?"),
            if h.signature_verified {
                "verified"
            } else {
                "NOT VERIFIED"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
