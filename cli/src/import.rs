//! `fieldsync import`: reports that arrive some other way (JSON, CSV,
//! narrative text) become ordinary reports of the case; images, audio and
//! video become encrypted attachments of `--report`; a sync bundle is
//! recognised by its magic and relayed (see `bundle.rs`).
//!
//! Imports repeat safely: the ids come from
//! [`fieldsync_core::device::ImportIds`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use fieldsync_core::device::{Device, ImportIds};
use fieldsync_core::import::{
    self, Candidates, Format, ImportOptions, ImportedReport, ParsedFile, Zone,
};
use fieldsync_core::model::Edit;
use fieldsync_core::replica::{ImportOutcome, Replica};
use fieldsync_core::ReportId;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::home::{check_case, enrollment, open, Enrollment};

/// Reports written per transaction: a 100,000-row file costs ten commits,
/// and the progress bar still moves every fraction of a second. Report ids
/// are hashes, so each batch touches index pages all over the replica and
/// each commit writes every page it touched: at 1,000 per batch the
/// commits took 2.9 s of a 100,000-row import's 8.6 s.
const BATCH: usize = 10_000;

#[derive(Args)]
pub struct ImportArgs {
    /// The case the reports go into (not needed for bundles).
    #[arg(long, allow_hyphen_values = true)]
    pub case: Option<String>,
    /// auto (by extension and content), json, csv or text.
    #[arg(long, default_value = "auto")]
    pub format: String,
    /// Print the summary without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// CSV: COLUMN=FIELD for a header the importer does not know
    /// (FIELD may be `ignore`). Repeat for several.
    #[arg(long = "map", allow_hyphen_values = true)]
    pub map: Vec<String>,
    /// Time zone for times written without one: an IANA name
    /// (Asia/Almaty) or an offset (+06:00).
    #[arg(long, allow_hyphen_values = true)]
    pub timezone: Option<String>,
    /// The year of dates written without one ("21 May").
    #[arg(long, allow_hyphen_values = true)]
    pub year: Option<i32>,
    /// Images, audio and video named among FILE become encrypted
    /// attachments of this report.
    #[arg(long)]
    pub report: Option<String>,
    #[arg(long)]
    pub json: bool,
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Default, Serialize)]
struct FileSummary {
    file: String,
    format: Option<String>,
    created: usize,
    updated: usize,
    unchanged: usize,
    refused: Vec<Refused>,
    /// Names, plates and places noticed in a narrative, for the coordinator
    /// to confirm; never put into fields.
    candidates: CandidatesOut,
    /// The whole file was refused: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Attachments sealed onto --report.
    attached: usize,
    /// The zone times written without an offset are read in, and where it
    /// came from; absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    timezone: Option<ZoneUsed>,
}

#[derive(Clone, Serialize)]
struct ZoneUsed {
    zone: String,
    /// `option` (`--timezone`) or `case` (the case's time zone, as the
    /// server last gave it to this device).
    from: &'static str,
}

#[derive(Serialize)]
struct Refused {
    line: usize,
    reason: String,
}

#[derive(Default, Serialize)]
struct CandidatesOut {
    people: Vec<String>,
    plates: Vec<String>,
    places: Vec<String>,
}

impl From<Candidates> for CandidatesOut {
    fn from(c: Candidates) -> Self {
        Self {
            people: c.people,
            plates: c.plates,
            places: c.places,
        }
    }
}

pub fn run(home: &Path, args: ImportArgs) -> Result<ExitCode> {
    let (bundles, others): (Vec<&PathBuf>, Vec<&PathBuf>) =
        args.files.iter().partition(|f| crate::bundle::is_bundle(f));
    for file in &bundles {
        crate::bundle::import(home, file, args.dry_run, args.json)?;
    }
    if others.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let case = args.case.as_deref().ok_or_else(|| {
        anyhow!("give the case the reports go into with --case NAME (bundles need none)")
    })?;
    let mut device = Device::new(open(home)?);
    let enrollment = enrollment(device.replica())?;
    check_case(&enrollment, case)?;
    let (options, zone_used) = options(&args, device.case_timezone()?)?;
    let (media, documents): (Vec<&PathBuf>, Vec<&PathBuf>) =
        others.into_iter().partition(|f| is_media(f));

    let mut summaries = Vec::new();
    if !media.is_empty() {
        summaries.push(attach_media(
            device.replica_mut(),
            &enrollment,
            &args,
            &media,
        )?);
    }
    if !documents.is_empty() {
        device.import_salt()?;
    }
    for file in documents {
        let mut summary = import_file(&mut device, &enrollment, &options, &args, file)?;
        summary.timezone = zone_used.clone();
        summaries.push(summary);
    }
    let troubled = summaries
        .iter()
        .any(|s| s.error.is_some() || !s.refused.is_empty());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
    } else {
        print_summaries(&summaries, args.dry_run);
    }
    Ok(if troubled {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// How to read the files. Times written without an offset are read in
/// `--timezone`, else in the case's time zone the server gave this device.
fn options(
    args: &ImportArgs,
    case_zone: Option<String>,
) -> Result<(ImportOptions, Option<ZoneUsed>)> {
    let format: Format = args.format.parse()?;
    let (timezone, used) = match (&args.timezone, case_zone) {
        (Some(text), _) => (
            Some(text.parse::<Zone>()?),
            Some(ZoneUsed {
                zone: text.trim().to_owned(),
                from: "option",
            }),
        ),
        (None, Some(text)) => {
            let zone = text.parse::<Zone>().map_err(|_| {
                anyhow!("the case's time zone {text:?}, as the server gave it, is not one this fieldsync knows; give --timezone")
            })?;
            (
                Some(zone),
                Some(ZoneUsed {
                    zone: text,
                    from: "case",
                }),
            )
        }
        (None, None) => (None, None),
    };
    let map = args
        .map
        .iter()
        .map(|entry| {
            entry
                .split_once('=')
                .map(|(c, f)| (c.trim().to_owned(), f.trim().to_owned()))
                .ok_or_else(|| anyhow!("--map {entry:?}: write COLUMN=FIELD"))
        })
        .collect::<Result<_>>()?;
    let options = ImportOptions {
        format,
        file_name: String::new(),
        map,
        timezone,
        default_date: None,
        year: args.year,
    };
    Ok((options, used))
}

fn import_file(
    device: &mut Device,
    enrollment: &Enrollment,
    options: &ImportOptions,
    args: &ImportArgs,
    path: &Path,
) -> Result<FileSummary> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut summary = FileSummary {
        file: path.display().to_string(),
        ..FileSummary::default()
    };
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let parsed: ParsedFile = match import::parse(
        &bytes,
        &ImportOptions {
            file_name: name.clone(),
            ..options.clone()
        },
    ) {
        Ok(parsed) => parsed,
        Err(e) => {
            summary.error = Some(e.to_string());
            return Ok(summary);
        }
    };
    summary.format = Some(parsed.format.as_str().to_owned());
    summary.candidates = parsed.candidates.into();
    summary.refused = parsed
        .refused
        .into_iter()
        .map(|r| Refused {
            line: r.line,
            reason: if r.needs_year {
                format!("{}{}", r.reason, crate::hints::YEAR)
            } else {
                r.reason
            },
        })
        .collect();

    let progress = if args.json || parsed.reports.len() < 2 * BATCH {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(
            Some(parsed.reports.len() as u64),
            ProgressDrawTarget::stderr(),
        );
        bar.set_style(
            ProgressStyle::with_template(
                "importing {msg} [{bar:30}] {pos}/{len} reports, eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(name.clone());
        bar
    };
    let ids = ImportIds::for_file(device, enrollment, &name, &parsed.reports)?;
    for chunk in parsed.reports.chunks(BATCH) {
        let rows: Vec<(ReportId, &ImportedReport)> = chunk
            .iter()
            .map(|imported| (ids.id(imported), imported))
            .collect();
        let outcomes =
            device
                .replica_mut()
                .import_reports(&enrollment.case_id, &rows, args.dry_run)?;
        for outcome in outcomes {
            match outcome {
                ImportOutcome::Created => summary.created += 1,
                ImportOutcome::Updated => summary.updated += 1,
                ImportOutcome::Unchanged => summary.unchanged += 1,
            }
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish_and_clear();
    Ok(summary)
}

/// Files named beside the documents that are photos, recordings or video.
fn is_media(path: &Path) -> bool {
    let kind = mime_guess::from_path(path).first_or_octet_stream();
    matches!(kind.type_().as_str(), "image" | "audio" | "video")
}

fn attach_media(
    replica: &mut Replica,
    enrollment: &Enrollment,
    args: &ImportArgs,
    media: &[&PathBuf],
) -> Result<FileSummary> {
    let Some(report) = &args.report else {
        bail!(
            "{} is a photo, recording or video; name the report it belongs to with --report REPORT_ID",
            media[0].display()
        );
    };
    let id: ReportId = report.parse()?;
    replica.report(&id)?;
    let mut summary = FileSummary {
        file: media
            .iter()
            .map(|m| m.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        format: Some("attachments".into()),
        ..FileSummary::default()
    };
    if args.dry_run {
        summary.attached = media.len();
        return Ok(summary);
    }
    let files: Vec<PathBuf> = media.iter().map(|m| (*m).clone()).collect();
    let sealed = crate::attachments::seal_files(replica, &enrollment.case_name, &files)?;
    let edits: Vec<Edit> = sealed.iter().cloned().map(Edit::AddAttachment).collect();
    replica
        .edit_report(&id, &edits)
        .inspect_err(|_| crate::attachments::discard(replica, &sealed))?;
    summary.attached = sealed.len();
    Ok(summary)
}

fn print_summaries(summaries: &[FileSummary], dry_run: bool) {
    let verb = if dry_run { "would be " } else { "" };
    for s in summaries {
        if let Some(error) = &s.error {
            println!("{}: refused, nothing imported: {error}", s.file);
            continue;
        }
        if s.attached > 0 {
            println!(
                "{}: {} attachments {verb}encrypted and attached",
                s.file, s.attached
            );
            continue;
        }
        println!(
            "{} ({}): {} {verb}created, {} {verb}updated, {} unchanged, {} refused",
            s.file,
            s.format.as_deref().unwrap_or("?"),
            s.created,
            s.updated,
            s.unchanged,
            s.refused.len()
        );
        for r in &s.refused {
            println!("  line {}: {}", r.line, r.reason);
        }
        if let Some(ZoneUsed { zone, from: "case" }) = &s.timezone {
            println!("  times without an offset read in {zone}, the case's time zone (--timezone to read them in another)");
        }
        let c = &s.candidates;
        if !c.places.is_empty() {
            println!("  place offered from the title: {}", c.places.join("; "));
        }
        if !c.people.is_empty() {
            println!(
                "  people named in the text (confirm and add with `fieldsync edit ID --person`): {}",
                c.people.join("; ")
            );
        }
        if !c.plates.is_empty() {
            println!("  plate numbers in the text: {}", c.plates.join("; "));
        }
    }
}
