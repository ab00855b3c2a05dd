//! `fieldsync bundle export` and the bundle half of `fieldsync import`:
//! handing a device's work over by USB or SD card when there is no
//! network, to a coordinator device that relays it on its next sync.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use fieldsync_core::bundle::{self, BundleManifest, BundleReader};
use fieldsync_core::model::DeviceRole;

use crate::home::{enrollment, open};

#[derive(Subcommand)]
pub enum BundleCommand {
    /// Writes everything the server has not acknowledged from this device
    /// (reports' changes and sealed attachments) into one signed file.
    Export {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(home: &Path, command: BundleCommand) -> Result<ExitCode> {
    match command {
        BundleCommand::Export { out, json } => export(home, &out, json),
    }
}

fn export(home: &Path, out: &Path, json: bool) -> Result<ExitCode> {
    let replica = open(home)?;
    let enrollment = enrollment(&replica)?;
    let key = replica
        .device_key()?
        .context("this device has no identity")?;
    let (docs, attachments) = replica.bundle_contents()?;
    if docs.is_empty() && attachments.is_empty() {
        bail!("nothing to carry: the server has acknowledged everything on this device");
    }
    let manifest = BundleManifest {
        version: 1,
        device: key.device_id(),
        public_key: hex::encode(key.public_key().as_bytes()),
        case_id: enrollment.case_id.clone(),
        case_name: enrollment.case_name.clone(),
        created_at: chrono::Utc::now().to_rfc3339(),
        docs,
        attachments,
    };
    let outbox = replica.outbox_dir()?;
    let partial = out.with_extension("fieldsync-partial");
    let written = (|| -> Result<()> {
        let mut file = BufWriter::new(
            File::create(&partial).with_context(|| format!("cannot write {}", out.display()))?,
        );
        bundle::write(
            &key,
            &manifest,
            &mut |a| Ok(Box::new(BufReader::new(File::open(outbox.join(&a.blob))?))),
            &mut file,
        )?;
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&partial, out)?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e.context(format!("writing the bundle {}", out.display())));
    }
    let changes: usize = manifest.docs.iter().map(|d| d.changes.len()).sum();
    let bytes: u64 = manifest.attachments.iter().map(|a| a.size).sum();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "out": out.display().to_string(),
                "reports": manifest.docs.len(),
                "changes": changes,
                "attachments": manifest.attachments.len(),
                "attachment_bytes": bytes,
            })
        );
    } else {
        println!(
            "wrote {}: {} reports ({} signed changes), {} attachments ({} bytes, encrypted)\ngive it to a coordinator, who runs `fieldsync import {}` and then `fieldsync sync`",
            out.display(),
            manifest.docs.len(),
            changes,
            manifest.attachments.len(),
            bytes,
            out.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `path` is a bundle (by its magic), for `fieldsync import`.
pub fn is_bundle(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && &magic == bundle::MAGIC
}

/// Verifies a bundle against the case's device list and applies it.
pub fn import(home: &Path, path: &Path, dry_run: bool, json: bool) -> Result<ExitCode> {
    let mut replica = open(home)?;
    let enrollment = enrollment(&replica)?;
    if enrollment.role != DeviceRole::Coordinator {
        bail!("bundles are imported on a coordinator's device, which relays them to the server");
    }
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let mut file = BufReader::new(
        File::open(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let refuse = |why: String| anyhow::anyhow!("bundle {} refused: {why}", path.display());
    let mut reader = BundleReader::open(&mut file, len).map_err(|e| refuse(e.to_string()))?;
    let manifest = reader.manifest.clone();
    if manifest.case_id != enrollment.case_id {
        return Err(refuse(format!(
            "it belongs to case {:?}, this device to {:?}",
            manifest.case_name, enrollment.case_name
        )));
    }
    let Some(signer) = replica.roster_entry(manifest.device.as_str())? else {
        return Err(refuse(match replica.roster_fetched_at()? {
            None => "this device does not know the case's devices yet; sync it once with the server while connected, then import again".into(),
            Some(at) => format!("device {} is not enrolled in this case (device list as of {at}; if it was enrolled since, sync this device first)", manifest.device),
        }));
    };
    if signer.public_key != manifest.public_key {
        return Err(refuse(format!(
            "it claims to come from device {} but is signed with another key",
            manifest.device
        )));
    }
    if let Some(at) = &signer.revoked_at {
        return Err(refuse(format!(
            "device {} was revoked at {at}; its bundles are not accepted",
            manifest.device
        )));
    }
    // Attachments are checked against their ids into a staging directory;
    // nothing is applied before the signature over the whole file verifies.
    let staging = home.join("incoming");
    fieldsync_core::private_fs::create_dir_all(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let mut staged = Vec::new();
    let read = (|| -> Result<()> {
        for i in 0..manifest.attachments.len() {
            let target = staging.join(format!("{}.part", manifest.attachments[i].blob));
            staged.push(target.clone());
            let mut out = BufWriter::new(fieldsync_core::private_fs::create(&target)?);
            reader.copy_attachment(i, &mut out)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        reader.finish()?;
        Ok(())
    })();
    if let Err(e) = read {
        for f in &staged {
            let _ = std::fs::remove_file(f);
        }
        return Err(refuse(format!("{e:#}")));
    }
    let changes: usize = manifest.docs.iter().map(|d| d.changes.len()).sum();
    if dry_run {
        for f in &staged {
            let _ = std::fs::remove_file(f);
        }
        println!(
            "bundle from device {} ({}, case {}) verifies: {} reports, {} signed changes, {} attachments; nothing written (--dry-run)",
            manifest.device, signer.role, manifest.case_name, manifest.docs.len(), changes, manifest.attachments.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let applied = replica.apply_bundle(&manifest.docs)?;
    let mut queued = 0;
    for (attachment, file) in manifest.attachments.iter().zip(&staged) {
        if replica.receive_attachment(attachment, file)? {
            queued += 1;
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({
                "bundle": true,
                "device": manifest.device.to_string(),
                "reports": applied.reports,
                "new_reports": applied.new_reports,
                "new_changes": applied.new_changes,
                "attachments_queued": queued,
            })
        );
    } else {
        println!(
            "bundle from device {} ({}): {} reports ({} new), {} new changes, {} attachments queued; run `fieldsync sync` to relay them to the server",
            manifest.device, signer.role, applied.reports, applied.new_reports, applied.new_changes, queued
        );
    }
    std::io::stdout().flush()?;
    Ok(ExitCode::SUCCESS)
}
