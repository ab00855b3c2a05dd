//! Exports of a case for the people who use the evidence: lawyers,
//! journalists, researchers. The device exports what its replica holds.
//!
//! [`collect`] reads the reports of a case from an [`ExportSource`] (the
//! device's replica implements it), filters and
//! orders them and attaches each report's signed change history
//! ([`exported_report`]); an [`Export`] is plain data from then on. Each
//! format is a plain function over an [`Export`] that streams to an
//! [`std::io::Write`]:
//!
//! - [`json`]: lossless, the report as `timeline --json` gives it plus its
//!   history (raw change bytes and signatures), for archives and importers.
//! - [`csv`]: one row per report, or one per timeline entry, for
//!   spreadsheets; formula injection guarded.
//! - [`geojson`]: an RFC 7946 FeatureCollection of the reports that have
//!   coordinates, for maps.
//! - [`timelinejs`]: Knight Lab TimelineJS's JSON, every text HTML-escaped.
//! - [`markdown`]: a chronology for a legal brief.
//!
//! ```
//! use fieldsync_core::export::{self, Export, Filters};
//! let export = Export {
//!     case: "almaty".into(),
//!     case_id: "00112233445566778899aabbccddeeff".into(),
//!     exported_at: "2024-01-01T00:00:00+00:00".parse().unwrap(),
//!     exported_by: "ffeeddccbbaa99887766554433221100".into(),
//!     filters: Filters::default(),
//!     reports: vec![],
//!     attachments: Default::default(),
//! };
//! let mut out = Vec::new();
//! export::markdown::write(&mut out, &export).unwrap();
//! assert!(String::from_utf8(out).unwrap().starts_with("# almaty"));
//! ```

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use automerge::{AutoCommit, Change, ChangeHash};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

use crate::case_key::CaseSecret;
use crate::document::{rfc3339, ViewError};
use crate::envelope::{self, AttachmentMeta};
use crate::ids::{CaseId, ReportId};
use crate::model::{AttachmentRef, Report, ReviewStatus};
use crate::signed_change::attribute;

pub mod csv;
pub mod geojson;
pub mod json;
pub mod markdown;
pub mod timelinejs;

/// Everything a format writer needs: the reports and who exported what.
#[derive(Clone, Debug, PartialEq)]
pub struct Export {
    /// The case's name.
    pub case: String,
    pub case_id: String,
    pub exported_at: DateTime<FixedOffset>,
    /// Device id of the exporting device.
    pub exported_by: String,
    pub filters: Filters,
    /// In [`report_order`].
    pub reports: Vec<ExportedReport>,
    /// What this device could read of attachments' sealed headers, by
    /// attachment id (see [`attachment_meta`]). An attachment missing here
    /// is shown by its id.
    pub attachments: BTreeMap<String, AttachmentMeta>,
}

/// A report and the signed changes that made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportedReport {
    #[serde(flatten)]
    pub report: Report,
    /// Every change of the report, dependencies first; among changes free to
    /// go in either order, earlier time first, then lower hash, so that
    /// every device holding the same changes lists them the same way.
    pub history: Vec<HistoryEntry>,
}

/// One change of a report's history, with what is needed to check it
/// without fieldsync: the raw Automerge change and its Ed25519 signature
/// over the change hash (domain-tagged, see `identity.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The Automerge change hash, hex.
    pub hash: String,
    /// Device id of the author (`unknown actor …` for an actor that is not
    /// a device key, which no verified change has). For a change made in a
    /// web session, the device that authorised the session.
    pub author: String,
    /// The change's Automerge actor, hex: the author's Ed25519 public key,
    /// or the web session's key.
    pub author_key: String,
    /// Made in the review web app, under a session the author's device
    /// signed for (the certificate is part of `signature`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub via_web_session: bool,
    /// The time the author's device recorded with the change, RFC 3339 in
    /// UTC; `null` only for a timestamp no calendar can hold.
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The stored signature, base64; empty when none is stored.
    pub signature: String,
    pub signature_verified: bool,
    /// The raw Automerge change, base64.
    pub change: String,
}

impl ExportedReport {
    /// Changes whose signature did not verify.
    pub fn unverified(&self) -> impl Iterator<Item = &HistoryEntry> {
        self.history.iter().filter(|h| !h.signature_verified)
    }
}

/// Which reports an export holds. Bounds are inclusive and apply to
/// `occurred_at`; a report without a time passes only when neither bound
/// is given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Filters {
    pub from: Option<TimeBound>,
    pub to: Option<TimeBound>,
    pub status: Option<ReviewStatus>,
}

/// A bound on `occurred_at`: an instant (RFC 3339 with offset), or a
/// calendar day, compared with the day in each report's own offset (the
/// reporter's wall clock), so `--from 2016-05-21` keeps what happened on
/// the 21st where it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeBound {
    At(DateTime<FixedOffset>),
    Day(NaiveDate),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is neither an RFC 3339 time with offset (2016-05-21T10:40:00+06:00) nor a date (2016-05-21)")]
pub struct TimeBoundError(String);

impl FromStr for TimeBound {
    type Err = TimeBoundError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(TimeBound::At(t));
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(TimeBound::Day)
            .map_err(|_| TimeBoundError(s.chars().take(80).collect()))
    }
}

impl fmt::Display for TimeBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeBound::At(t) => f.write_str(&rfc3339(t)),
            TimeBound::Day(d) => write!(f, "{}", d.format("%Y-%m-%d")),
        }
    }
}

impl Serialize for TimeBound {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        self.from.is_none() && self.to.is_none() && self.status.is_none()
    }

    pub fn matches(&self, report: &Report) -> bool {
        let after_from = |t: &DateTime<FixedOffset>| match self.from {
            None => true,
            Some(TimeBound::At(from)) => *t >= from,
            Some(TimeBound::Day(day)) => t.date_naive() >= day,
        };
        let before_to = |t: &DateTime<FixedOffset>| match self.to {
            None => true,
            Some(TimeBound::At(to)) => *t <= to,
            Some(TimeBound::Day(day)) => t.date_naive() <= day,
        };
        let in_time = match &report.occurred_at {
            Some(t) => after_from(t) && before_to(t),
            None => self.from.is_none() && self.to.is_none(),
        };
        in_time && self.status.is_none_or(|s| report.review.status == s)
    }

    /// "from 2016-05-21, status verified", or "none".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(from) = &self.from {
            parts.push(format!("from {from}"));
        }
        if let Some(to) = &self.to {
            parts.push(format!("to {to}"));
        }
        if let Some(status) = self.status {
            parts.push(format!("status {status}"));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

/// What an export reads: the reports a device holds and their signed
/// histories. The device's replica implements it (`replica/export_source.rs`);
/// the export does not know how they are stored.
pub trait ExportSource {
    type Error: From<ViewError>;
    /// Every report held, in id order.
    fn report_ids(&self) -> Result<Vec<ReportId>, Self::Error>;
    /// A report's typed view, or why it cannot be read (`Ok(Err(_))`): a
    /// report held but unreadable is listed, not an error of the source.
    fn read_report(&self, id: &ReportId) -> Result<Result<Report, ViewError>, Self::Error>;
    /// A report's document, with every change.
    fn report_document(&self, id: &ReportId) -> Result<AutoCommit, Self::Error>;
    /// The stored signature of a change, if any.
    fn change_signature(
        &self,
        id: &ReportId,
        hash: &ChangeHash,
    ) -> Result<Option<Vec<u8>>, Self::Error>;
}

/// A format writer failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("writing the export failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing the export failed: {0}")]
    Json(#[from] serde_json::Error),
    #[error("writing the export failed: {0}")]
    Csv(#[from] ::csv::Error),
}

/// Reports in the order of every export: by the instant they occurred,
/// ties by id; reports without a time last.
pub fn report_order(a: &Report, b: &Report) -> Ordering {
    let key = |r: &Report| r.occurred_at.map(|t| t.with_timezone(&Utc));
    match (key(a), key(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
    .then_with(|| a.id.cmp(&b.id))
}

/// A report this device holds but cannot read: a field of the wrong type
/// or form (a server from before it checked, or a newer schema). Listings
/// and exports name it and go on without it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnreadableReport {
    pub id: ReportId,
    pub reason: String,
}

/// The reports of `case` on this device in [`report_order`], and those it
/// cannot read, in id order. A replica holds one case's reports; an
/// unreadable one, whose case field cannot be trusted, is listed with it.
pub fn case_reports<S: ExportSource>(
    source: &S,
    case: &CaseId,
) -> Result<(Vec<Report>, Vec<UnreadableReport>), S::Error> {
    let (reports, unreadable) = read_case(source, case)?;
    Ok((reports.into_iter().map(|(_, r)| r).collect(), unreadable))
}

/// The reports of `case` on this device that pass `filters`, in
/// [`report_order`], each with its history; and those it cannot read.
pub fn collect<S: ExportSource>(
    source: &S,
    case: &CaseId,
    filters: &Filters,
) -> Result<(Vec<ExportedReport>, Vec<UnreadableReport>), S::Error> {
    let (reports, unreadable) = read_case(source, case)?;
    let mut out = Vec::with_capacity(reports.len());
    for (id, report) in reports.into_iter().filter(|(_, r)| filters.matches(r)) {
        out.push(exported_report_with(source, &id, report)?);
    }
    Ok((out, unreadable))
}

type ReadCase = (Vec<(ReportId, Report)>, Vec<UnreadableReport>);

fn read_case<S: ExportSource>(source: &S, case: &CaseId) -> Result<ReadCase, S::Error> {
    let mut reports = Vec::new();
    let mut unreadable = Vec::new();
    for id in source.report_ids()? {
        match source.read_report(&id)? {
            Ok(report) if report.case == case.as_str() => reports.push((id, report)),
            Ok(_) => {}
            Err(e) => unreadable.push(UnreadableReport {
                id,
                reason: e.to_string(),
            }),
        }
    }
    reports.sort_by(|a, b| report_order(&a.1, &b.1));
    Ok((reports, unreadable))
}

/// One report with its signed change history, each signature checked.
pub fn exported_report<S: ExportSource>(
    source: &S,
    id: &ReportId,
) -> Result<ExportedReport, S::Error> {
    let report = source.read_report(id)??;
    exported_report_with(source, id, report)
}

fn exported_report_with<S: ExportSource>(
    source: &S,
    id: &ReportId,
    report: Report,
) -> Result<ExportedReport, S::Error> {
    let mut doc = source.report_document(id)?;
    let mut history = Vec::new();
    for change in history_order(doc.get_changes(&[])) {
        let signature = source
            .change_signature(id, &change.hash())?
            .unwrap_or_default();
        history.push(history_entry(&change, signature));
    }
    Ok(ExportedReport { report, history })
}

fn history_entry(change: &Change, signature: Vec<u8>) -> HistoryEntry {
    let actor = change.actor_id().to_bytes();
    let who = attribute(change, &signature);
    HistoryEntry {
        hash: change.hash().to_string(),
        author: match who.device {
            Some(key) => key.device_id().to_string(),
            None => format!("unknown actor {}", change.actor_id()),
        },
        author_key: hex::encode(actor),
        via_web_session: who.via_web_session,
        time: DateTime::from_timestamp_millis(change.timestamp())
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        message: change.message().map(str::to_owned),
        signature_verified: who.signature_verified,
        signature: STANDARD.encode(&signature),
        change: STANDARD.encode(change.raw_bytes()),
    }
}

/// Dependencies first; among changes whose dependencies are all placed,
/// the earliest timestamp, then the lowest hash. The order depends only on
/// the set of changes, not on the order a device received them in.
fn history_order(changes: Vec<Change>) -> Vec<Change> {
    let hashes: BTreeSet<ChangeHash> = changes.iter().map(Change::hash).collect();
    let mut waiting_on: HashMap<ChangeHash, usize> = HashMap::new();
    let mut dependents: HashMap<ChangeHash, Vec<usize>> = HashMap::new();
    let mut ready = BTreeSet::new();
    for (i, change) in changes.iter().enumerate() {
        let deps: Vec<&ChangeHash> = change
            .deps()
            .iter()
            .filter(|d| hashes.contains(d))
            .collect();
        for dep in &deps {
            dependents.entry(**dep).or_default().push(i);
        }
        if deps.is_empty() {
            ready.insert((change.timestamp(), change.hash(), i));
        } else {
            waiting_on.insert(change.hash(), deps.len());
        }
    }
    let mut order = Vec::with_capacity(changes.len());
    while let Some(next) = ready.pop_first() {
        let (_, hash, i) = next;
        order.push(i);
        for &j in dependents.get(&hash).map(Vec::as_slice).unwrap_or_default() {
            let c = &changes[j];
            if let Some(n) = waiting_on.get_mut(&c.hash()) {
                *n -= 1;
                if *n == 0 {
                    ready.insert((c.timestamp(), c.hash(), j));
                }
            }
        }
    }
    // A dependency cycle cannot occur between hashes; keep anything left
    // over anyway, in the order given, rather than drop a change.
    let placed: BTreeSet<usize> = order.iter().copied().collect();
    order.extend((0..changes.len()).filter(|i| !placed.contains(i)));
    let mut slots: Vec<Option<Change>> = changes.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Opens the sealed header of each attachment of `reports` that `keys`
/// can open; the others are left out (shown by id).
pub fn attachment_meta(
    reports: &[ExportedReport],
    keys: &[CaseSecret],
) -> BTreeMap<String, AttachmentMeta> {
    reports
        .iter()
        .flat_map(|r| &r.report.attachments)
        .filter_map(|a| Some((a.id.clone(), read_header(a, keys)?)))
        .collect()
}

fn read_header(attachment: &AttachmentRef, keys: &[CaseSecret]) -> Option<AttachmentMeta> {
    let head = STANDARD.decode(&attachment.header).ok()?;
    let lookup = |epoch: u32| keys.iter().find(|k| k.epoch() == epoch).cloned();
    envelope::read_meta(&lookup, &mut head.as_slice()).ok()
}

/// A report's timeline entries by time, entries at the same instant in the
/// order the report holds them.
pub(crate) fn timeline_in_order(report: &Report) -> Vec<&crate::model::TimelineEntry> {
    let mut entries: Vec<_> = report.timeline.iter().collect();
    entries.sort_by_key(|e| e.at.with_timezone(&Utc));
    entries
}

#[cfg(test)]
pub(crate) mod tests;
