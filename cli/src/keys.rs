//! `fieldsync key …` and `fieldsync invite`: case keys for attachments.
//!
//! A coordinator's device makes each epoch's X25519 key pair, hands the
//! private key to other coordinators in person as a share code, and
//! publishes the public key to the server, signed by its device key. Every
//! device takes what it trusts of the published keys on enrollment and on
//! each sync ([`refresh`]; the rules are in `fieldsync_core::case_key_trust`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use fieldsync_core::case_key::{CasePublicKey, CaseSecret};
use fieldsync_core::case_key_trust::{PublishedCaseKey, RefusedCaseKey};
use fieldsync_core::model::DeviceRole;
use fieldsync_core::protocol::InviteRequest;
use fieldsync_core::replica::{KeyAdded, Replica};
use serde::Serialize;

use fieldsync_core::device::TransportError;

use crate::client::{client_for, Client};
use crate::home::{check_case, enrollment, open, Enrollment};

/// Where a reporter's device keeps the fingerprint its invite gave.
pub(crate) const PINNED_FINGERPRINT: &str = "case_key_fingerprint";

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Makes the case's first key pair on this (coordinator's) device,
    /// publishes its public key (now, or on the next sync if offline) and
    /// prints the private key's share code, for other coordinators only.
    New {
        #[arg(long, allow_hyphen_values = true)]
        case: String,
        /// Also print the share code as a QR code in the terminal.
        #[arg(long)]
        qr: bool,
    },
    /// Stores a key received as a share code (a coordinator's device).
    Add {
        #[arg(long, allow_hyphen_values = true)]
        case: String,
        /// The share code (base64url; may begin with "-").
        #[arg(allow_hyphen_values = true)]
        code: String,
    },
    /// Makes the key pair of a new epoch: new attachments are sealed to it,
    /// old keys stay to open old attachments. Share the printed code with
    /// the other coordinators.
    Rotate {
        #[arg(long, allow_hyphen_values = true)]
        case: String,
        #[arg(long)]
        qr: bool,
    },
    /// Prints the share codes this device holds for a case, oldest first,
    /// to hand to a new coordinator device (it needs every epoch), and on
    /// stderr the fingerprint of each epoch's public key.
    Show {
        #[arg(long, allow_hyphen_values = true)]
        case: String,
        #[arg(long)]
        qr: bool,
    },
}

/// `fieldsync invite`: a one-time token minted by this coordinator's device.
#[derive(Args)]
pub struct InviteArgs {
    /// reporter or coordinator.
    #[arg(long, default_value = "reporter")]
    role: String,
    /// How long the token is valid: 90s, 30m, 24h, 7d (at most 30d).
    #[arg(long, default_value = "24h")]
    expires: String,
    #[arg(long)]
    json: bool,
    /// The server's address as phones reach it: print the phone app's
    /// invite link, URL/app/#invite=TOKEN&fp=FINGERPRINT, instead of the
    /// token and fingerprint.
    #[arg(long, value_name = "URL")]
    link: Option<String>,
    /// Also draw the link (or the token) as a QR code.
    #[arg(long)]
    qr: bool,
}

pub fn run(home: &Path, command: KeyCommand) -> Result<ExitCode> {
    let mut replica = open(home)?;
    // Every key command needs the keys: ask for a passphrase now, before
    // any write transaction would wait on a person typing.
    replica.unlock()?;
    match command {
        KeyCommand::New { case, qr } => {
            same_case(&replica, &case)?;
            coordinator_only(&replica, "key new")?;
            let key = replica.new_case_key(&case)?;
            let secret = CaseSecret::Private(key);
            print_code(&case, &secret, qr)?;
            eprintln!("hand this code only to the case's other coordinators, in person: it opens every attachment of the case. Reporters receive the public key from the server and check it against the fingerprint on their invite");
            publish_now(&mut replica)?;
        }
        KeyCommand::Add { case, code } => {
            same_case(&replica, &case)?;
            let key = CaseSecret::from_share_code(&code)?;
            match replica.add_case_key(&case, &key)? {
                KeyAdded::Added => println!("added key epoch {} for case {case}", key.epoch()),
                KeyAdded::AlreadyPresent => {
                    println!(
                        "this device already holds key epoch {} for case {case}",
                        key.epoch()
                    )
                }
            }
            if let CaseSecret::Private(private) = &key {
                eprintln!("{}", describe(&private.public()));
                publish_now(&mut replica)?;
            }
        }
        KeyCommand::Rotate { case, qr } => {
            same_case(&replica, &case)?;
            coordinator_only(&replica, "key rotate")?;
            let key = replica.rotate_case_key(&case)?;
            let epoch = key.epoch;
            print_code(&case, &CaseSecret::Private(key), qr)?;
            eprintln!(
                "new attachments use epoch {epoch}; hand this code to the case's other coordinators in person"
            );
            publish_now(&mut replica)?;
        }
        KeyCommand::Show { case, qr } => {
            let keys = replica.case_keys(&case)?;
            let public = replica.case_public_keys(&case)?;
            if keys.is_empty() && public.is_empty() {
                bail!("this device holds no key for case {case:?}");
            }
            for key in &keys {
                print_code(&case, key, qr)?;
            }
            for p in &public {
                eprintln!("{}", describe(&p.key));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(key: &CasePublicKey) -> String {
    format!(
        "case key epoch {}: public key fingerprint {}",
        key.epoch,
        key.fingerprint()
    )
}

/// Keys are filed under the case name; a device enrolled in another case
/// would never use them, so a mismatch is a mistake worth stopping.
fn same_case(replica: &Replica, case: &str) -> Result<()> {
    if replica.meta("case_name")?.is_some() {
        check_case(&enrollment(replica)?, case)?;
    }
    Ok(())
}

/// A reporter never makes a case key: it would seal attachments nobody
/// else can read, and hold a key that opens them.
fn coordinator_only(replica: &Replica, command: &str) -> Result<()> {
    if replica.meta("role")?.as_deref() == Some("reporter") {
        bail!("`{command}` is for a coordinator's device; a reporter's device receives the case's public key when it enrolls or syncs");
    }
    Ok(())
}

fn print_code(case: &str, key: &CaseSecret, qr: bool) -> Result<()> {
    let code = key.share_code();
    println!("{code}");
    if qr {
        let picture = crate::app_link::qr(&code)?;
        println!("case {case}, key epoch {}:\n{picture}", key.epoch());
    }
    if let CaseSecret::Private(private) = key {
        eprintln!("{}", describe(&private.public()));
    }
    Ok(())
}

/// Publishes this device's new key right away when it is enrolled and
/// online; otherwise the next sync does.
fn publish_now(replica: &mut Replica) -> Result<()> {
    if replica.meta("case_name")?.is_none() {
        eprintln!("this device is not enrolled yet: the public key is published when it enrolls and syncs");
        return Ok(());
    }
    let enrollment = enrollment(replica)?;
    let device = replica
        .device_key()?
        .context("this device has no identity")?;
    let client = client_for(replica, &enrollment.server, device)?;
    match publish_own(replica, &client, &enrollment) {
        Ok(published) => {
            for epoch in published {
                eprintln!(
                    "published the public key of epoch {epoch} to {}",
                    enrollment.server
                );
            }
        }
        Err(e) => eprintln!(
            "the public key is not published yet ({e:#}); the next `fieldsync sync` publishes it"
        ),
    }
    Ok(())
}

/// Publishes the public keys of this coordinator device's key pairs that
/// the server lacks. Returns the epochs published.
fn publish_own(replica: &Replica, client: &Client, enrollment: &Enrollment) -> Result<Vec<u32>> {
    let mine = replica.case_key_publications(&enrollment.case_name, &enrollment.case_id)?;
    if mine.is_empty() {
        return Ok(vec![]);
    }
    let held = fieldsync_core::device::case_keys(client)?;
    let mut published = Vec::new();
    for key in mine {
        match held.iter().find(|h| h.epoch == key.epoch) {
            Some(h) if h.public_key == key.public_key => {}
            Some(_) => eprintln!(
                "warning: the server holds a different public key for epoch {}: another coordinator device published one first. Ask them for its code (`fieldsync key show`), or rotate with `fieldsync key rotate`",
                key.epoch
            ),
            None => {
                fieldsync_core::device::publish_case_key(client, &key)?;
                published.push(key.epoch);
            }
        }
    }
    Ok(published)
}

/// What a refresh of the case keys did, for `sync --json` (`case_keys`).
#[derive(Debug, Default, Serialize)]
pub(crate) struct KeyRefresh {
    /// Keys newly trusted: `{epoch, fingerprint}`.
    pub accepted: Vec<serde_json::Value>,
    pub refused: Vec<RefusedCaseKey>,
    /// Epochs this (coordinator's) device published.
    pub published: Vec<u32>,
    /// Set when the keys could not be fetched; nothing changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Publishes what a coordinator's device must, then takes what this device
/// trusts of the case's published keys, telling the user on stderr.
pub(crate) fn refresh(
    replica: &mut Replica,
    client: &Client,
    enrollment: &Enrollment,
) -> Result<KeyRefresh> {
    let mut report = KeyRefresh::default();
    if enrollment.role == DeviceRole::Coordinator {
        // A coordinator's keys come from its own hand (made or added in
        // person), never from the server.
        match publish_own(replica, client, enrollment) {
            Ok(published) => report.published = published,
            Err(e) => {
                eprintln!("warning: could not publish this device's case keys: {e:#}; the next sync tries again");
                report.error = Some(format!("{e:#}"));
            }
        }
        return Ok(report);
    }
    match fieldsync_core::device::case_keys(client) {
        Ok(offered) => take(replica, enrollment, &offered, &mut report)?,
        Err(e) => report.error = Some(e.to_string()),
    }
    if let Some(error) = &report.error {
        eprintln!("warning: could not refresh the case's public keys: {error}");
    }
    Ok(report)
}

/// Takes what this (reporter's) device trusts of `offered`.
pub(crate) fn take(
    replica: &mut Replica,
    enrollment: &Enrollment,
    offered: &[PublishedCaseKey],
    report: &mut KeyRefresh,
) -> Result<()> {
    let pin = replica.meta(PINNED_FINGERPRINT)?;
    let taken = replica.take_published_keys(
        &enrollment.case_name,
        &enrollment.case_id,
        pin.as_deref(),
        offered,
    )?;
    for key in &taken.decision.accepted {
        let fp = key.key.fingerprint();
        if taken.decision.on_trust {
            eprintln!("warning: this device took case key epoch {} (fingerprint {fp}) from the server on trust: no invite fingerprint to check it against. A server that substituted its own key could read what this device attaches; check the fingerprint with your coordinator (`fieldsync key show` on their device)", key.key.epoch);
        } else {
            eprintln!(
                "new attachments are sealed to case key epoch {} (fingerprint {fp})",
                key.key.epoch
            );
        }
        report
            .accepted
            .push(serde_json::json!({"epoch": key.key.epoch, "fingerprint": fp}));
    }
    for refused in &taken.decision.refused {
        eprintln!("warning: {}", refused.message());
    }
    report.refused = taken.decision.refused;
    if taken.removed_symmetric > 0 {
        eprintln!("removed {} old symmetric case key(s) from this device: it now seals to the case's public key and holds nothing that opens an attachment", taken.removed_symmetric);
    }
    Ok(())
}

/// Reads `--case-key-fingerprint`: 22 base64url characters.
pub(crate) fn parse_fingerprint(text: &str) -> Result<String> {
    let fp = text.trim();
    let ok = fp.len() == 22
        && fp
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        bail!("--case-key-fingerprint {text:?} is not a case key fingerprint (22 letters, digits, - and _); copy it again from the invite");
    }
    Ok(fp.to_owned())
}

/// `fieldsync invite`: publishes this device's keys if needed, asks the
/// server for a token, and prints it with the fingerprint of this device's
/// newest case key, which the new device checks the server's key against.
pub fn invite(home: &Path, args: InviteArgs) -> Result<ExitCode> {
    let replica = open(home)?;
    let enrolled = enrollment(&replica)?;
    if enrolled.role != DeviceRole::Coordinator {
        bail!(
            "`fieldsync invite` is for a coordinator's device; ask your coordinator for an invite"
        );
    }
    let role: DeviceRole = args.role.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    let ttl = crate::parse::parse_duration(&args.expires)?;
    if let Some(base) = &args.link {
        crate::app_link::invite_link(base, "", None)?;
    }
    let newest = replica
        .case_keys(&enrolled.case_name)?
        .into_iter()
        .rev()
        .find_map(|k| match k {
            CaseSecret::Private(p) => Some(p.public()),
            CaseSecret::Symmetric(_) => None,
        })
        .with_context(|| {
            format!(
                "this device holds no case key pair for {0}; make one first with `fieldsync key new --case {0}` (or rotate an old symmetric key with `fieldsync key rotate --case {0}`)",
                enrolled.case_name
            )
        })?;
    let device = replica
        .device_key()?
        .context("this device has no identity")?;
    let client = client_for(&replica, &enrolled.server, device)?;
    publish_own(&replica, &client, &enrolled)
        .context("cannot publish this device's case key before inviting")?;
    let minted = fieldsync_core::device::invite(
        &client,
        &InviteRequest {
            role,
            expires_secs: ttl.as_secs(),
        },
    )
        .map_err(|e| match e {
            TransportError::Refused { status: 404, .. } => anyhow::anyhow!(
                "the server at {} does not mint invites for devices; update it, or use `fieldsync admin invite` on the server",
                enrolled.server
            ),
            other => other.into(),
        })?;
    let fingerprint = newest.fingerprint();
    let link = args
        .link
        .as_deref()
        .map(|base| crate::app_link::invite_link(base, &minted.token, Some(&fingerprint)))
        .transpose()?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "token": minted.token,
                "role": minted.role.as_str(),
                "expires_at": minted.expires_at,
                "server": enrolled.server,
                "case": enrolled.case_name,
                "case_key_epoch": newest.epoch,
                "case_key_fingerprint": fingerprint,
                "link": link,
            }))?
        );
    } else if let Some(link) = link {
        // The link carries the fingerprint: the phone checks the key itself.
        println!("{link}");
        if args.qr {
            println!("{}", crate::app_link::qr(&link)?);
        }
        eprintln!(
            "one-time {} invite for case {}, valid until {}; the link carries the case key fingerprint {fingerprint} (epoch {}).\nshow it to the reporter in person (or scan the QR code); it opens the app on their phone and enrolls it",
            minted.role.as_str(),
            enrolled.case_name,
            minted.expires_at,
            newest.epoch,
        );
    } else {
        println!("{}", minted.token);
        println!("{fingerprint}");
        if args.qr {
            println!("{}", crate::app_link::qr(&minted.token)?);
        }
        eprintln!(
            "one-time {} invite for case {}, valid until {}; case key epoch {} fingerprint {fingerprint}.\nhand both to the new device's owner in person; they enroll with:\n  fieldsync device enroll --server {} --token {} --case-key-fingerprint {fingerprint}",
            minted.role.as_str(),
            enrolled.case_name,
            minted.expires_at,
            newest.epoch,
            enrolled.server,
            minted.token,
        );
    }
    Ok(ExitCode::SUCCESS)
}
