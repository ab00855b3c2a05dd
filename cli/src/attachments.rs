//! Attachments on the command line: sealing files the moment they are
//! attached (`record`/`edit --attach`), uploading the outbox on `sync`, and
//! `fieldsync attachment list/get`. Plaintext exists only in the file the
//! user named and in the file `get` writes; everything else is ciphertext.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::Subcommand;
use fieldsync_core::case_key::CaseSecret;
use fieldsync_core::device::{self, Device, OutboxProgress};
use fieldsync_core::envelope::{self, AttachmentMeta};
use fieldsync_core::model::AttachmentRef;
use fieldsync_core::replica::Replica;
use fieldsync_core::{BlobId, ReportId};
use serde::Serialize;

use crate::client::{client_of, keep_clock_offset};
use crate::home::{enrollment, open, Enrollment};
use crate::progress::Bar;

#[derive(Subcommand)]
pub enum AttachmentCommand {
    /// Lists a report's attachments, with names and types where this device
    /// holds the case key.
    List {
        report_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Fetches an attachment (resuming an interrupted download), decrypts it
    /// and checks it against the SHA-256 its header records.
    Get {
        /// The attachment id, or a unique prefix of at least 8 characters.
        attachment_id: String,
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing file at --out.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(home: &Path, command: AttachmentCommand) -> Result<ExitCode> {
    match command {
        AttachmentCommand::List { report_id, json } => list(home, &report_id, json),
        AttachmentCommand::Get {
            attachment_id,
            out,
            force,
        } => get(home, &attachment_id, &out, force),
    }
}

/// Seals each file into the outbox with the case's current key. If one
/// fails, those sealed before it are removed again: nothing half-attached.
pub fn seal_files(replica: &Replica, case: &str, files: &[PathBuf]) -> Result<Vec<AttachmentRef>> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    // Sealing needs only the case's public key, but the change that lists
    // the files is signed with the device key: ask for the passphrase
    // first, so a wrong one leaves nothing sealed in the outbox.
    replica.unlock()?;
    let mut sealed: Vec<AttachmentRef> = Vec::new();
    let outcome = (|| {
        for file in files {
            if !file.is_file() {
                bail!("--attach {}: no such file", file.display());
            }
            let media_type = mime_guess::from_path(file)
                .first_or_octet_stream()
                .essence_str()
                .to_owned();
            let captured_at = std::fs::metadata(file)
                .and_then(|m| m.modified())
                .ok()
                .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339());
            let attachment = replica
                .seal_attachment(case, file, &media_type, captured_at)
                .with_context(|| format!("--attach {}", file.display()))?;
            sealed.push(attachment);
        }
        Ok(())
    })();
    if let Err(e) = outcome {
        discard(replica, &sealed);
        return Err(e);
    }
    Ok(sealed)
}

/// Removes sealed files whose report was not saved after all.
pub fn discard(replica: &Replica, sealed: &[AttachmentRef]) {
    if let Ok(dir) = replica.outbox_dir() {
        for attachment in sealed {
            let _ = std::fs::remove_file(dir.join(attachment.blob.as_str()));
        }
    }
}

#[derive(Serialize)]
struct Listed {
    id: String,
    blob: BlobId,
    /// Ciphertext bytes (what travels and what the server stores).
    ciphertext_size: u64,
    key_epoch: u64,
    /// True while the blob waits on this device for upload (false says
    /// nothing about whether its author has uploaded it yet).
    waiting_for_upload: bool,
    #[serde(flatten)]
    meta: Option<AttachmentMeta>,
    /// Why the name and type cannot be shown, when they cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    unreadable: Option<String>,
}

fn list(home: &Path, report_id: &str, json: bool) -> Result<ExitCode> {
    let replica = open(home)?;
    let case = enrollment(&replica)?.case_name;
    let id: ReportId = report_id.parse()?;
    let report = replica.report(&id)?;
    let keys = replica.case_keys(&case)?;
    let mut listed = Vec::new();
    for attachment in report.attachments {
        let (meta, unreadable) = match header_meta(&attachment, &keys) {
            Ok(meta) => (Some(meta), None),
            Err(e) => (None, Some(e.to_string())),
        };
        listed.push(Listed {
            waiting_for_upload: replica.outbox_file(attachment.blob.as_str())?.is_some(),
            id: attachment.id,
            blob: attachment.blob,
            ciphertext_size: attachment.size,
            key_epoch: attachment.key_epoch,
            meta,
            unreadable,
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(ExitCode::SUCCESS);
    }
    if listed.is_empty() {
        println!("report {id} has no attachments");
    }
    for item in &listed {
        let state = if item.waiting_for_upload {
            "waiting on this device for upload"
        } else {
            "fetch with `attachment get`"
        };
        match &item.meta {
            Some(meta) => println!(
                "{}  {}  {}  {} bytes  {}",
                item.id, meta.name, meta.media_type, meta.size, state
            ),
            None => println!(
                "{}  (unreadable: {})  {} bytes sealed  {}",
                item.id,
                item.unreadable.as_deref().unwrap_or(""),
                item.ciphertext_size,
                state
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn get(home: &Path, attachment_id: &str, out: &Path, force: bool) -> Result<ExitCode> {
    let replica = open(home)?;
    let enrollment = enrollment(&replica)?;
    let (report, attachment) = find(&replica, attachment_id)?;
    if out.is_dir() {
        bail!("{} is a directory; give --out a file name", out.display());
    }
    if out.exists() && !force {
        bail!(
            "{} already exists; choose another --out or pass --force to replace it",
            out.display()
        );
    }
    let keys = replica.case_keys(&enrollment.case_name)?;
    let meta = fetch_to_path(
        &mut Device::new(replica),
        home,
        &enrollment,
        &keys,
        &report,
        &attachment,
        out,
    )?;
    println!(
        "{}: {} ({}, {} bytes, sha256 {}) written to {}",
        attachment.id,
        meta.name,
        meta.media_type,
        meta.size,
        meta.sha256,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Decrypts `attachment` of `report` into `out`, from the sealed copy in
/// the outbox while it waits there, else downloaded from the server
/// (resuming an interrupted download into `<home>/downloads`) and checked
/// against its blob id; downloaded ciphertext is deleted afterwards. Fails
/// before downloading anything when `keys` lack the attachment's epoch.
/// `out` is written only when everything authenticated.
pub(crate) fn fetch_to_path(
    device: &mut Device,
    home: &Path,
    enrollment: &Enrollment,
    keys: &[CaseSecret],
    report: &ReportId,
    attachment: &AttachmentRef,
    out: &Path,
) -> Result<AttachmentMeta> {
    // The blob id names files and URLs here; it comes from a report that
    // another device wrote, and reading the report checked its form.
    // Fail before downloading anything when the key is missing.
    header_meta(attachment, keys)?;
    let downloading = || {
        format!(
            "downloading attachment {} of report {report}",
            attachment.id
        )
    };
    let undecryptable = |e: envelope::EnvelopeError| {
        anyhow!(
            "attachment {} of report {report} cannot be decrypted: {e}\nno file was written to {}",
            attachment.id,
            out.display()
        )
    };
    if let Some(local) = device.replica().outbox_file(attachment.blob.as_str())? {
        let file = std::fs::File::open(&local)
            .with_context(|| format!("cannot read {}", local.display()))?;
        return envelope::open_to_path(&lookup(keys), &mut BufReader::new(file), out)
            .map_err(undecryptable);
    }
    let client = client_of(device.replica(), &enrollment.server)?;
    let dir = home.join("downloads");
    fieldsync_core::private_fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let partial = dir.join(format!("{}.part", attachment.blob));
    let progress = Bar::with_total(attachment.size, false, "downloading");
    // Fetched, checked against the blob id and decrypted in one pass; the
    // ciphertext is kept in `partial` only for a later run to resume from.
    let mut stream = device::Download::start(
        &client,
        attachment.blob.as_str(),
        attachment.size,
        &partial,
        &progress,
    )
    .with_context(downloading)?;
    let opened = envelope::open_to_path_as(&lookup(keys), &mut stream, out, &attachment.blob);
    let mut failure = stream.failure();
    let not_the_blob = match &opened {
        Ok(_) => false,
        Err(_) if failure.is_some() => false,
        // Writing the file failed (a full disk): say so, without fetching
        // the rest.
        Err(envelope::EnvelopeError::Io(_)) => false,
        // Bytes that are not the blob fail to decrypt before their hash is
        // known: fetch the rest to tell that from a blob its key does not
        // open, and say which.
        Err(_) => {
            let rest = std::io::copy(&mut stream, &mut std::io::sink());
            failure = rest.err().and(stream.failure());
            failure.is_none() && !matches_id(&partial, attachment)
        }
    };
    progress.finish();
    // As `sync` does: a clock the server corrected stays corrected.
    keep_clock_offset(device, &client)?;
    if let Some(failure) = failure {
        // Only a network that failed for good leaves bytes worth resuming
        // from; a blob shorter than its size would only be met again.
        let empty = std::fs::metadata(&partial).is_ok_and(|m| m.len() == 0);
        if empty || matches!(failure, device::TransferError::Mismatch) {
            let _ = std::fs::remove_file(&partial);
        }
        return Err(anyhow!(failure)).with_context(downloading);
    }
    // Ciphertext is not kept: it was fetched for this one decryption.
    let _ = std::fs::remove_file(&partial);
    if not_the_blob {
        return Err(anyhow!(device::TransferError::Mismatch)).with_context(downloading);
    }
    opened.map_err(undecryptable)
}

/// Whether the file at `path` is the attachment's blob: its size and the
/// SHA-256 its id names.
fn matches_id(path: &Path, attachment: &AttachmentRef) -> bool {
    fieldsync_core::hashing::sha256_file(path)
        .is_ok_and(|(len, hash)| len == attachment.size && hash == attachment.blob.as_str())
}

/// The report and attachment with this id, or the one whose id starts with
/// this prefix.
fn find(replica: &Replica, wanted: &str) -> Result<(ReportId, AttachmentRef)> {
    if wanted.len() < 8 {
        bail!("give at least 8 characters of the attachment id (see `fieldsync attachment list REPORT_ID`)");
    }
    let mut found = Vec::new();
    for id in replica.report_ids()? {
        for attachment in replica.report(&id)?.attachments {
            if attachment.id == wanted {
                return Ok((id, attachment));
            }
            if attachment.id.starts_with(wanted) {
                found.push((id.clone(), attachment));
            }
        }
    }
    match found.len() {
        0 => bail!("no attachment {wanted} on this device; sync first, or list a report's attachments with `fieldsync attachment list REPORT_ID`"),
        1 => Ok(found.remove(0)),
        n => bail!("{n} attachments start with {wanted}; give more of the id"),
    }
}

fn header_meta(attachment: &AttachmentRef, keys: &[CaseSecret]) -> Result<AttachmentMeta> {
    let head = STANDARD
        .decode(&attachment.header)
        .map_err(|_| anyhow!("the report's copy of the attachment header is not base64"))?;
    Ok(envelope::read_meta(&lookup(keys), &mut head.as_slice())?)
}

fn lookup(keys: &[CaseSecret]) -> impl Fn(u32) -> Option<CaseSecret> + '_ {
    move |epoch| keys.iter().find(|k| k.epoch() == epoch).cloned()
}
