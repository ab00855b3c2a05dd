//! The commands on reports that need no network: `record`, `edit`,
//! `timeline` and `show`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use clap::Args;
use fieldsync_core::document::rfc3339;
use fieldsync_core::export;
use fieldsync_core::model::{DeviceRole, Edit, Place, Report, ReviewStatus, TimelineEntry};
use fieldsync_core::signed_change::attribute;
use fieldsync_core::{NewReport, ReportId};

use crate::attachments::{discard, seal_files};
use crate::home::{check_case, enrollment, open, warn_unreadable};
use crate::parse::{parse_person, parse_time};

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

pub fn record(home: &Path, args: RecordArgs) -> Result<ExitCode> {
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

pub fn edit(home: &Path, args: EditArgs) -> Result<ExitCode> {
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

pub fn timeline(home: &Path, args: TimelineArgs) -> Result<ExitCode> {
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

pub fn show(home: &Path, report_id: &str, json: bool) -> Result<ExitCode> {
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
