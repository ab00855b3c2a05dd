//! `fieldsync export`: the reports this device holds of its case, in one
//! of the formats of `fieldsync_core::export`, to a file or stdout, and
//! optionally every attachment decrypted into a directory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{SubsecRound, Utc};
use clap::{Args, ValueEnum};
use fieldsync_core::device::Device;
use fieldsync_core::export::{self, Export, Filters, TimeBound};
use fieldsync_core::model::ReviewStatus;

use crate::attachments::fetch_to_path;
use crate::home::{check_case, enrollment, open, warn_unreadable, Enrollment};

#[derive(Args)]
pub struct ExportArgs {
    #[arg(long, allow_hyphen_values = true)]
    case: String,
    #[arg(long, value_enum)]
    format: Format,
    /// Only reports that occurred at or after: RFC 3339 with offset, or a
    /// date (YYYY-MM-DD, the day in each report's own offset).
    #[arg(long, allow_hyphen_values = true)]
    from: Option<String>,
    /// Only reports that occurred at or before (same forms as --from).
    #[arg(long, allow_hyphen_values = true)]
    to: Option<String>,
    /// Only reports with this review status: unverified, verified, disputed.
    #[arg(long, allow_hyphen_values = true)]
    status: Option<String>,
    /// Write here (replaced once complete) instead of stdout.
    #[arg(long, allow_hyphen_values = true)]
    out: Option<PathBuf>,
    /// CSV only: one row per timeline entry instead of one per report.
    #[arg(long)]
    timeline_rows: bool,
    /// Also decrypt every attachment of the exported reports into DIR, as
    /// `<attachment id>-<file name>`; needs the case key.
    #[arg(long, value_name = "DIR", allow_hyphen_values = true)]
    with_attachments: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Csv,
    Geojson,
    Timelinejs,
    Markdown,
}

pub fn run(home: &Path, args: ExportArgs) -> Result<ExitCode> {
    if args.timeline_rows && !matches!(args.format, Format::Csv) {
        bail!("--timeline-rows is for --format csv");
    }
    let replica = open(home)?;
    let enrollment = enrollment(&replica)?;
    check_case(&enrollment, &args.case)?;
    let filters = Filters {
        from: bound("--from", args.from.as_deref())?,
        to: bound("--to", args.to.as_deref())?,
        status: args
            .status
            .as_deref()
            .map(str::parse::<ReviewStatus>)
            .transpose()
            .map_err(|e| anyhow!("--status: {e}"))?,
    };
    let device = replica
        .device_key()?
        .context("this device has no identity")?
        .device_id();
    let (reports, unreadable) = export::collect(&replica, &enrollment.case_id, &filters)?;
    warn_unreadable(&unreadable);
    let keys = replica.case_keys(&enrollment.case_name)?;
    let attachments = export::attachment_meta(&reports, &keys);
    if args.with_attachments.is_some() {
        // Refuse before writing anything when a name cannot be read: the
        // files could not be decrypted either.
        let missing = reports
            .iter()
            .flat_map(|r| &r.report.attachments)
            .filter(|a| !attachments.contains_key(&a.id))
            .count();
        if missing > 0 {
            bail!(
                "{} cannot be opened on this device: it lacks the case key (or an older epoch of it); add it with `fieldsync key add --case {} CODE`",
                count(missing, "attachment", "attachments"),
                enrollment.case_name
            );
        }
    }
    let export = Export {
        case: enrollment.case_name.clone(),
        case_id: enrollment.case_id.to_string(),
        exported_at: Utc::now().trunc_subsecs(0).fixed_offset(),
        exported_by: device.to_string(),
        filters,
        reports,
        attachments,
    };
    match &args.out {
        Some(path) => write_file(path, |out| {
            write(args.format, args.timeline_rows, &export, out)
        })?,
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            write(args.format, args.timeline_rows, &export, &mut out)?;
            out.flush().context("cannot write to stdout")?;
        }
    }
    eprintln!(
        "exported {} of case {}",
        count(export.reports.len(), "report", "reports"),
        export.case
    );
    match &args.with_attachments {
        Some(dir) => save_attachments(
            &mut Device::new(replica),
            home,
            &enrollment,
            &keys,
            &export,
            dir,
        ),
        None => Ok(ExitCode::SUCCESS),
    }
}

fn bound(flag: &str, text: Option<&str>) -> Result<Option<TimeBound>> {
    text.map(|t| t.parse().map_err(|e| anyhow!("{flag} {e}")))
        .transpose()
}

fn write(format: Format, timeline_rows: bool, export: &Export, out: &mut dyn Write) -> Result<()> {
    match format {
        Format::Json => export::json::write(out, export)?,
        Format::Csv if timeline_rows => export::csv::write_timeline_rows(out, export)?,
        Format::Csv => export::csv::write_reports(out, export)?,
        Format::Geojson => {
            let written = export::geojson::write(out, export)?;
            if written.without_coordinates > 0 {
                eprintln!(
                    "{} without coordinates left out of the map",
                    count(written.without_coordinates, "report", "reports")
                );
            }
            if written.invalid_coordinates > 0 {
                eprintln!(
                    "{} with coordinates outside latitude ±90 / longitude ±180 left out of the map",
                    count(written.invalid_coordinates, "report", "reports")
                );
            }
        }
        Format::Timelinejs => {
            let written = export::timelinejs::write(out, export)?;
            if written.undated > 0 {
                eprintln!(
                    "{} without a time left out of the timeline",
                    count(written.undated, "report", "reports")
                );
            }
        }
        Format::Markdown => export::markdown::write(out, export)?,
    }
    Ok(())
}

/// Writes through a temporary file beside `path`, renamed into place only
/// once complete: an interrupted export never looks like a finished one.
fn write_file(path: &Path, body: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("--out {}: not a file name", path.display()))?;
    let mut partial_name = name.to_owned();
    partial_name.push(".partial");
    let partial = path.with_file_name(partial_name);
    let result = (|| {
        let file = File::create(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let mut out = BufWriter::new(file);
        body(&mut out)?;
        let file = out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", partial.display()))?;
        file.sync_all()
            .with_context(|| format!("cannot write {}", partial.display()))?;
        std::fs::rename(&partial, path)
            .with_context(|| format!("cannot move the export into place at {}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Decrypts every attachment of the exported reports into `dir`. One that
/// fails does not stop the others; the command then fails, naming each.
fn save_attachments(
    device: &mut Device,
    home: &Path,
    enrollment: &Enrollment,
    keys: &[fieldsync_core::case_key::CaseSecret],
    export: &Export,
    dir: &Path,
) -> Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut saved = 0;
    let mut failed = Vec::new();
    for exported in &export.reports {
        let report = &exported.report.id;
        for attachment in &exported.report.attachments {
            let name = export
                .attachments
                .get(&attachment.id)
                .map(|meta| meta.name.as_str())
                .unwrap_or_default();
            let target = dir.join(format!("{}-{}", attachment.id, sanitise(name)));
            match fetch_to_path(device, home, enrollment, keys, report, attachment, &target) {
                Ok(_) => saved += 1,
                Err(e) => failed.push(format!("{e:#}")),
            }
        }
    }
    eprintln!(
        "{} decrypted into {}",
        count(saved, "attachment", "attachments"),
        dir.display()
    );
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    bail!(
        "{} could not be saved:\n{}",
        count(failed.len(), "attachment", "attachments"),
        failed.join("\n")
    )
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A file name from a name the reporter's device recorded: letters and
/// digits of any script, `.`, `-`, `_` kept, anything else (separators,
/// control characters, spaces) `_`; no leading dot; at most 100
/// characters; never empty.
fn sanitise(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = clean.trim_start_matches('.');
    let clean: String = clean.chars().take(100).collect();
    if clean.is_empty() {
        "attachment".to_owned()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::sanitise;

    #[test]
    fn attachment_names_cannot_leave_the_directory() {
        assert_eq!(sanitise("photo.jpg"), "photo.jpg");
        assert_eq!(sanitise("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(sanitise("..\\x"), "_x");
        assert_eq!(sanitise(".hidden"), "hidden");
        assert_eq!(
            sanitise("показания свидетеля.m4a"),
            "показания_свидетеля.m4a"
        );
        assert_eq!(sanitise(""), "attachment");
        assert_eq!(sanitise("a\nb\0c"), "a_b_c");
        assert_eq!(sanitise(&"x".repeat(300)).len(), 100);
    }
}
