//! `fieldsync admin`: operator commands on a server's data directory.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::Subcommand;
use fieldsync_core::import::Zone;
use fieldsync_core::model::DeviceRole;
use fieldsync_core::DeviceId;
use fieldsync_server::store::open_admin_store;

use crate::parse::parse_duration;

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
    /// Copies a server's data directory into PostgreSQL (and its
    /// attachments into a bucket with --to-blobs), then checks every
    /// report's heads and every blob's hash. Stop the server first; run it
    /// again after an interruption and it finishes the job.
    Migrate(crate::migrate::MigrateArgs),
}

#[derive(Subcommand)]
pub enum CaseCommand {
    /// Creates a case and prints its id.
    Create {
        name: String,
        /// The case's time zone: an IANA name (Asia/Almaty) or an offset
        /// (+06:00). Devices learn it when they enroll and sync; `import`
        /// reads times written without an offset in it when not given
        /// `--timezone`.
        #[arg(long, allow_hyphen_values = true)]
        timezone: Option<String>,
    },
    /// Sets a case's time zone, or removes it with --clear; devices learn
    /// it on their next sync.
    Timezone {
        name: String,
        /// An IANA name (Asia/Almaty) or an offset (+06:00).
        #[arg(allow_hyphen_values = true, required_unless_present = "clear")]
        zone: Option<String>,
        /// Remove the case's time zone: imports then need --timezone.
        #[arg(long, conflicts_with = "zone")]
        clear: bool,
    },
}

/// The zone as the case keeps it: IANA names as the database spells them,
/// offsets as `+06:00`. Refused here, before anything is written.
fn case_zone(text: &str) -> Result<String> {
    Ok(match text.parse::<Zone>()? {
        Zone::Named(tz) => tz.name().to_owned(),
        Zone::Fixed(offset) => offset.to_string(),
    })
}

pub fn run(data: &Path, database: Option<&str>, command: AdminCommand) -> Result<ExitCode> {
    // Warnings (a data directory found readable by others) go to stderr.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // Its own source and target, not --data and --database.
    let command = match command {
        AdminCommand::Migrate(args) => return crate::migrate::run(args),
        other => other,
    };
    let store = open_admin_store(data, database).with_context(|| match database {
        Some(_) => "cannot open the PostgreSQL database given by --database".to_owned(),
        None => format!("cannot open the data directory {}", data.display()),
    })?;
    match command {
        AdminCommand::Case(CaseCommand::Create { name, timezone }) => {
            let zone = timezone.as_deref().map(case_zone).transpose()?;
            let case = store.create_case_in_zone(&name, zone.as_deref())?;
            println!("{}", case.id);
        }
        AdminCommand::Case(CaseCommand::Timezone { name, zone, clear }) => {
            let zone = if clear {
                None
            } else {
                zone.as_deref().map(case_zone).transpose()?
            };
            store.set_case_timezone(&name, zone.as_deref())?;
            match zone {
                Some(zone) => {
                    println!("case {name}: time zone {zone}; devices learn it on their next sync")
                }
                None => println!(
                    "case {name}: no time zone; imports of times without an offset need --timezone"
                ),
            }
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
        AdminCommand::Migrate(_) => unreachable!("answered above"),
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
