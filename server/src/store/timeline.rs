//! The timeline projection coordinators browse: the row a report
//! projects to ([`Projection`]), and the filtered, paged query over it.

use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::DateTime;
use fieldsync_core::document::rfc3339;
use fieldsync_core::model::{Report, ReviewStatus};
use fieldsync_core::{CaseId, DeviceId, ReportId};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

use super::error::StoreError;
use super::pool::Store;
use super::sql::{non_empty, shorten, sortable_utc, sql_count};

/// Timeline rows per page when the query does not say.
pub(super) const DEFAULT_TIMELINE_LIMIT: usize = 100;

/// Most timeline rows one page may hold.
pub(super) const MAX_TIMELINE_LIMIT: usize = 1000;

/// Which timeline rows to return. Empty strings mean "no filter", so a
/// query string like `?tag=&text=` behaves like no query at all.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct TimelineQuery {
    /// RFC 3339; reports that occurred at or after this instant.
    pub from: Option<String>,
    /// RFC 3339; reports that occurred at or before this instant.
    pub to: Option<String>,
    /// A tag the report carries (ASCII case-insensitive).
    pub tag: Option<String>,
    /// Review status: unverified, verified or disputed.
    pub status: Option<String>,
    /// The creating device's id.
    pub reporter: Option<String>,
    /// Case-insensitive substring of title, place or description.
    pub text: Option<String>,
    /// Opaque cursor from a previous page's `next`.
    pub after: Option<String>,
    /// Rows per page: default 100, at most 1000.
    pub limit: Option<usize>,
}

/// One report in the timeline.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TimelineRow {
    pub report_id: String,
    /// As recorded, with the reporter's offset.
    pub occurred_at: Option<String>,
    pub approximate: bool,
    pub place: String,
    pub title: String,
    pub status: String,
    pub tags: Vec<String>,
    /// The creating device's id.
    pub reporter: String,
    /// When the server last changed this report (RFC 3339, UTC).
    pub updated_at: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// The report's own timeline entries, in its order.
    pub entries: Vec<TimelineEntryRow>,
}

/// A timeline entry inside a report, as the timeline shows it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TimelineEntryRow {
    /// RFC 3339 with the recorded offset.
    pub at: String,
    pub approximate: bool,
    pub text: String,
}

impl TimelineEntryRow {
    pub(super) fn of(entry: &fieldsync_core::model::TimelineEntry) -> Self {
        Self {
            at: rfc3339(&entry.at),
            approximate: entry.approximate,
            text: entry.text.clone(),
        }
    }
}

/// One page of the timeline; `next` is the `after` of the following page.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TimelinePage {
    pub reports: Vec<TimelineRow>,
    pub next: Option<String>,
}

impl Store {
    /// The case's reports in the order they occurred (UTC, then report id;
    /// reports with no time last), filtered and paged.
    pub fn timeline(
        &self,
        case_id: &CaseId,
        query: &TimelineQuery,
    ) -> Result<TimelinePage, StoreError> {
        let filter = TimelineFilter::parse(query)?;
        let after = match non_empty(&query.after) {
            None => None,
            Some(text) => Some(decode_cursor(text)?),
        };
        let limit = query
            .limit
            .unwrap_or(DEFAULT_TIMELINE_LIMIT)
            .clamp(1, MAX_TIMELINE_LIMIT);
        let want = limit + 1;
        let conn = self.conn()?;
        // A tag filter reads the tag's entries in `timeline_tags` (indexed
        // in timeline order) and the rows they name, not every row of the
        // case. `k` is the table a query orders and pages by; `t` the rows.
        let (from, k) = if filter.tag.is_some() {
            (
                "timeline_tags k CROSS JOIN timeline t ON t.report_id = k.report_id",
                "k",
            )
        } else {
            ("timeline t", "t")
        };
        let mut rows: Vec<RawTimelineRow> = Vec::new();
        let past_dated = matches!(&after, Some((None, _)));
        if !past_dated {
            let mut sql = format!(
                "{TIMELINE_SELECT} FROM {from} WHERE {k}.case_id = ? AND {k}.occurred_utc IS NOT NULL"
            );
            let mut args: Vec<Value> = vec![Value::from(case_id.as_str().to_owned())];
            filter.push(&mut sql, &mut args, k);
            if let Some((Some(utc), id)) = &after {
                sql.push_str(&format!(
                    " AND ({k}.occurred_utc > ? OR ({k}.occurred_utc = ? AND {k}.report_id > ?))"
                ));
                args.extend([
                    Value::from(utc.clone()),
                    Value::from(utc.clone()),
                    Value::from(id.clone()),
                ]);
            }
            sql.push_str(&format!(
                " ORDER BY {k}.occurred_utc, {k}.report_id LIMIT ?"
            ));
            args.push(Value::from(sql_count(want)));
            rows.extend(timeline_rows(&conn, &sql, &args)?);
        }
        // A time range leaves out reports with no time.
        if rows.len() < want && !filter.has_range() {
            let mut sql = format!(
                "{TIMELINE_SELECT} FROM {from} WHERE {k}.case_id = ? AND {k}.occurred_utc IS NULL"
            );
            let mut args: Vec<Value> = vec![Value::from(case_id.as_str().to_owned())];
            filter.push(&mut sql, &mut args, k);
            if let Some((None, id)) = &after {
                sql.push_str(&format!(" AND {k}.report_id > ?"));
                args.push(Value::from(id.clone()));
            }
            sql.push_str(&format!(" ORDER BY {k}.report_id LIMIT ?"));
            args.push(Value::from(sql_count(want - rows.len())));
            rows.extend(timeline_rows(&conn, &sql, &args)?);
        }
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last()
                .map(|r| encode_cursor(r.occurred_utc.as_deref(), &r.row.report_id))
        } else {
            None
        };
        Ok(TimelinePage {
            reports: rows.into_iter().map(|r| r.row).collect(),
            next,
        })
    }
}

/// The timeline row's values, read from a report.
pub(super) struct Projection {
    pub(super) occurred_utc: Option<String>,
    pub(super) occurred_at: Option<String>,
    pub(super) approximate: bool,
    pub(super) place: String,
    pub(super) title: String,
    pub(super) search_text: String,
    pub(super) status: String,
    pub(super) tags: String,
    pub(super) lat: Option<f64>,
    pub(super) lon: Option<f64>,
    /// The report's own timeline entries, JSON.
    pub(super) entries: String,
}

impl Projection {
    pub(super) fn of(report: &Report) -> Result<Projection, StoreError> {
        let tags: Vec<&String> = report.tags.iter().collect();
        Ok(Projection {
            occurred_utc: report.occurred_at.map(|t| sortable_utc(&t)),
            occurred_at: report.occurred_at.as_ref().map(rfc3339),
            approximate: report.approximate,
            place: report.place.name.clone(),
            title: report.title.clone(),
            search_text: [&report.title, &report.place.name, &report.description]
                .map(|s| s.to_lowercase())
                .join("\n"),
            status: report.review.status.as_str().to_owned(),
            tags: serde_json::to_string(&tags)
                .map_err(|e| StoreError::Corrupt(format!("tags do not encode: {e}")))?,
            lat: report.place.lat,
            lon: report.place.lon,
            entries: serde_json::to_string(
                &report
                    .timeline
                    .iter()
                    .map(TimelineEntryRow::of)
                    .collect::<Vec<_>>(),
            )
            .map_err(|e| StoreError::Corrupt(format!("timeline entries do not encode: {e}")))?,
        })
    }

    /// The row of a document a sync round saves: of `report`, its read
    /// (read here when the caller has none), or empty if it does not read
    /// (it was stored unreadable before), with a warning naming the field.
    pub(super) fn of_document(
        id: &ReportId,
        doc: &automerge::Automerge,
        report: Option<&Report>,
    ) -> Result<Projection, StoreError> {
        let read;
        let report = match report {
            Some(report) => Ok(report),
            None => {
                read = fieldsync_core::document::read_report(doc);
                read.as_ref()
            }
        };
        match report {
            Ok(report) => Projection::of(report),
            Err(e) => {
                // The field name only: values would be report contents.
                let field = e.field();
                tracing::warn!(report = %id, field, "report does not read; its timeline row is left empty");
                Ok(Projection::empty())
            }
        }
    }

    pub(super) fn empty() -> Projection {
        Projection {
            occurred_utc: None,
            occurred_at: None,
            approximate: false,
            place: String::new(),
            title: String::new(),
            search_text: String::new(),
            status: String::new(),
            tags: "[]".into(),
            lat: None,
            lon: None,
            entries: "[]".into(),
        }
    }
}

/// A timeline query's filters, validated.
pub(super) struct TimelineFilter {
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
    pub(super) tag: Option<String>,
    pub(super) status: Option<String>,
    pub(super) reporter: Option<String>,
    pub(super) text: Option<String>,
}

impl TimelineFilter {
    pub(super) fn parse(query: &TimelineQuery) -> Result<TimelineFilter, StoreError> {
        let time = |field: &str, value: &Option<String>| -> Result<Option<String>, StoreError> {
            non_empty(value)
                .map(|text| {
                    DateTime::parse_from_rfc3339(text)
                        .map(|t| sortable_utc(&t))
                        .map_err(|_| {
                            StoreError::BadQuery(format!(
                                "`{field}` must be an RFC 3339 time such as 2024-05-01T10:40:00+02:00, got {:?}",
                                shorten(text)
                            ))
                        })
                })
                .transpose()
        };
        let status = non_empty(&query.status)
            .map(|s| {
                ReviewStatus::from_str(s)
                    .map(|s| s.as_str().to_owned())
                    .map_err(|_| {
                        StoreError::BadQuery(format!(
                            "`status` must be unverified, verified or disputed, got {:?}",
                            shorten(s)
                        ))
                    })
            })
            .transpose()?;
        let reporter = non_empty(&query.reporter)
            .map(|r| {
                DeviceId::from_str(r)
                    .map(String::from)
                    .map_err(|e| StoreError::BadQuery(format!("`reporter`: {e}")))
            })
            .transpose()?;
        Ok(TimelineFilter {
            from: time("from", &query.from)?,
            to: time("to", &query.to)?,
            tag: non_empty(&query.tag).map(|t| t.trim().to_owned()),
            status,
            reporter,
            text: non_empty(&query.text).map(str::to_lowercase),
        })
    }

    pub(super) fn has_range(&self) -> bool {
        self.from.is_some() || self.to.is_some()
    }

    /// Appends this filter's conditions and their arguments, for the rows
    /// `t` of the query's `FROM`, ordered by the table `k` (`t` itself,
    /// or a tag's entries in `timeline_tags`).
    pub(super) fn push(&self, sql: &mut String, args: &mut Vec<Value>, k: &str) {
        if let Some(tag) = &self.tag {
            // The same ASCII case folding as the trigger that fills
            // timeline_tags.
            sql.push_str(" AND k.tag = lower(?)");
            args.push(Value::from(tag.clone()));
        }
        if let Some(from) = &self.from {
            sql.push_str(&format!(" AND {k}.occurred_utc >= ?"));
            args.push(Value::from(from.clone()));
        }
        if let Some(to) = &self.to {
            sql.push_str(&format!(" AND {k}.occurred_utc <= ?"));
            args.push(Value::from(to.clone()));
        }
        if let Some(status) = &self.status {
            sql.push_str(" AND t.status = ?");
            args.push(Value::from(status.clone()));
        }
        if let Some(reporter) = &self.reporter {
            sql.push_str(" AND t.reporter = ?");
            args.push(Value::from(reporter.clone()));
        }
        if let Some(text) = &self.text {
            sql.push_str(" AND instr(t.search_text, ?) > 0");
            args.push(Value::from(text.clone()));
        }
    }
}

/// The columns of a timeline row `t` (its FROM follows).
pub(super) const TIMELINE_SELECT: &str = "SELECT t.report_id, t.occurred_at, t.approximate, t.place, t.title, t.status, t.tags, t.reporter, t.updated_at, t.occurred_utc, t.lat, t.lon, t.entries";

struct RawTimelineRow {
    row: TimelineRow,
    occurred_utc: Option<String>,
}

fn timeline_rows(
    conn: &Connection,
    sql: &str,
    args: &[Value],
) -> Result<Vec<RawTimelineRow>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let raw = stmt
        .query_map(params_from_iter(args.iter()), |r| {
            Ok((
                TimelineRow {
                    report_id: r.get(0)?,
                    occurred_at: r.get(1)?,
                    approximate: r.get(2)?,
                    place: r.get(3)?,
                    title: r.get(4)?,
                    status: r.get(5)?,
                    tags: Vec::new(),
                    reporter: r.get(7)?,
                    updated_at: r.get(8)?,
                    lat: r.get(10)?,
                    lon: r.get(11)?,
                    entries: Vec::new(),
                },
                r.get::<_, String>(6)?,
                r.get::<_, Option<String>>(9)?,
                r.get::<_, String>(12)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    raw.into_iter()
        .map(|(mut row, tags, occurred_utc, entries)| {
            row.tags = serde_json::from_str(&tags).map_err(|_| {
                StoreError::Corrupt(format!("timeline tags of report {}", row.report_id))
            })?;
            row.entries = serde_json::from_str(&entries).map_err(|_| {
                StoreError::Corrupt(format!("timeline entries of report {}", row.report_id))
            })?;
            Ok(RawTimelineRow { row, occurred_utc })
        })
        .collect()
}

/// A page cursor: base64url of `occurred_utc|report_id`, the time empty for
/// reports with no time.
pub(super) fn encode_cursor(occurred_utc: Option<&str>, report_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{report_id}", occurred_utc.unwrap_or("")))
}

pub(super) fn decode_cursor(text: &str) -> Result<(Option<String>, String), StoreError> {
    let bad = || {
        StoreError::BadQuery(
            "`after` is not a cursor this server gave out; start again from the first page".into(),
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (utc, id) = text.split_once('|').ok_or_else(bad)?;
    let id = ReportId::from_str(id).map_err(|_| bad())?;
    let utc = if utc.is_empty() {
        None
    } else {
        let t = DateTime::parse_from_rfc3339(utc).map_err(|_| bad())?;
        Some(sortable_utc(&t))
    };
    Ok((utc, id.as_str().to_owned()))
}
