//! The timeline query on PostgreSQL: the SQLite store's query
//! (`store/timeline.rs`, whose filters, cursors and limits it shares),
//! with PostgreSQL's placeholders and functions.

use fieldsync_core::CaseId;
use postgres::types::ToSql;
use postgres::GenericClient;

use super::PgStore;
use crate::store::error::StoreError;
use crate::store::sql::{non_empty, sql_count};
use crate::store::timeline::{
    decode_cursor, encode_cursor, TimelineFilter, DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT,
    TIMELINE_SELECT,
};
use crate::store::web::StoredReport;
use crate::store::{StoredChange, TimelinePage, TimelineQuery, TimelineRow};
use fieldsync_core::ReportId;

/// A query's text and its arguments, numbered as they are pushed.
struct Query {
    sql: String,
    args: Vec<Box<dyn ToSql + Sync>>,
}

impl Query {
    fn new(sql: String) -> Self {
        Self {
            sql,
            args: Vec::new(),
        }
    }

    /// Appends `clause`, numbering its `?`s for `values`, one each, in
    /// order.
    fn push(&mut self, clause: &str, values: Vec<Box<dyn ToSql + Sync>>) {
        let mut values = values.into_iter();
        let mut parts = clause.split('?');
        self.sql.push_str(parts.next().unwrap_or_default());
        for part in parts {
            if let Some(value) = values.next() {
                self.args.push(value);
            }
            self.sql.push_str(&format!("${}", self.args.len()));
            self.sql.push_str(part);
        }
    }

    fn filter(&mut self, f: &TimelineFilter, k: &str) {
        if let Some(tag) = &f.tag {
            // Folded as `timeline_tags` holds them (ASCII only).
            self.push(" AND k.tag = ?", vec![Box::new(tag.to_ascii_lowercase())]);
        }
        if let Some(from) = &f.from {
            self.push(
                &format!(" AND {k}.occurred_utc >= ?"),
                vec![Box::new(from.clone())],
            );
        }
        if let Some(to) = &f.to {
            self.push(
                &format!(" AND {k}.occurred_utc <= ?"),
                vec![Box::new(to.clone())],
            );
        }
        if let Some(status) = &f.status {
            self.push(" AND t.status = ?", vec![Box::new(status.clone())]);
        }
        if let Some(reporter) = &f.reporter {
            self.push(" AND t.reporter = ?", vec![Box::new(reporter.clone())]);
        }
        if let Some(text) = &f.text {
            self.push(
                " AND strpos(t.search_text, ?) > 0",
                vec![Box::new(text.clone())],
            );
        }
    }

    fn rows(
        &self,
        conn: &mut impl GenericClient,
    ) -> Result<Vec<(TimelineRow, Option<String>)>, StoreError> {
        let args: Vec<&(dyn ToSql + Sync)> = self.args.iter().map(|a| a.as_ref()).collect();
        conn.query(&self.sql, &args)?
            .iter()
            .map(|r| {
                let report_id: String = r.get(0);
                let tags: String = r.get(6);
                let entries: String = r.get(12);
                let row = TimelineRow {
                    occurred_at: r.get(1),
                    approximate: r.get(2),
                    place: r.get(3),
                    title: r.get(4),
                    status: r.get(5),
                    tags: serde_json::from_str(&tags).map_err(|_| {
                        StoreError::Corrupt(format!("timeline tags of report {report_id}"))
                    })?,
                    reporter: r.get(7),
                    updated_at: r.get(8),
                    lat: r.get(10),
                    lon: r.get(11),
                    entries: serde_json::from_str(&entries).map_err(|_| {
                        StoreError::Corrupt(format!("timeline entries of report {report_id}"))
                    })?,
                    report_id,
                };
                Ok((row, r.get::<_, Option<String>>(9)))
            })
            .collect()
    }
}

impl PgStore {
    /// See [`crate::store::Store::timeline`]: the same order, filters and
    /// pages.
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
        let mut conn = self.conn()?;
        let (from, k) = if filter.tag.is_some() {
            (
                "timeline_tags k JOIN timeline t ON t.report_id = k.report_id AND t.case_id = k.case_id",
                "k",
            )
        } else {
            ("timeline t", "t")
        };
        let mut rows = Vec::new();
        let past_dated = matches!(&after, Some((None, _)));
        if !past_dated {
            let mut q = Query::new(format!("{TIMELINE_SELECT} FROM {from} WHERE"));
            q.push(
                &format!(" {k}.case_id = ? AND {k}.occurred_utc IS NOT NULL"),
                vec![case_arg(case_id)],
            );
            q.filter(&filter, k);
            if let Some((Some(utc), id)) = &after {
                q.push(
                    &format!(
                        " AND ({k}.occurred_utc > ? OR ({k}.occurred_utc = ? AND {k}.report_id > ?))"
                    ),
                    vec![Box::new(utc.clone()), Box::new(utc.clone()), Box::new(id.clone())],
                );
            }
            q.push(
                &format!(" ORDER BY {k}.occurred_utc, {k}.report_id LIMIT ?"),
                vec![Box::new(sql_count(want))],
            );
            rows.extend(q.rows(&mut *conn)?);
        }
        if rows.len() < want && !filter.has_range() {
            let mut q = Query::new(format!("{TIMELINE_SELECT} FROM {from} WHERE"));
            q.push(
                &format!(" {k}.case_id = ? AND {k}.occurred_utc IS NULL"),
                vec![case_arg(case_id)],
            );
            q.filter(&filter, k);
            if let Some((None, id)) = &after {
                q.push(
                    &format!(" AND {k}.report_id > ?"),
                    vec![Box::new(id.clone())],
                );
            }
            q.push(
                &format!(" ORDER BY {k}.report_id LIMIT ?"),
                vec![Box::new(sql_count(want - rows.len()))],
            );
            rows.extend(q.rows(&mut *conn)?);
        }
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last()
                .map(|(row, utc)| encode_cursor(utc.as_deref(), &row.report_id))
        } else {
            None
        };
        Ok(TimelinePage {
            reports: rows.into_iter().map(|(row, _)| row).collect(),
            next,
        })
    }

    /// A report of `case` with its changes as received, for the review app.
    pub fn report_with_history(
        &self,
        case: &CaseId,
        id: &ReportId,
    ) -> Result<Option<StoredReport>, StoreError> {
        let mut conn = self.conn()?;
        let Some(doc) = conn.query_opt(
            "SELECT snapshot, creator FROM documents WHERE id = $1 AND case_id = $2",
            &[&id.as_str(), &case.as_str()],
        )?
        else {
            return Ok(None);
        };
        let changes = conn
            .query(
                "SELECT bytes, signature, received_at FROM changes
                 WHERE doc_id = $1 AND case_id = $2 ORDER BY seq",
                &[&id.as_str(), &case.as_str()],
            )?
            .iter()
            .map(|r| StoredChange {
                bytes: r.get(0),
                signature: r.get(1),
                received_at: r.get(2),
            })
            .collect();
        Ok(Some(StoredReport {
            snapshot: doc.get(0),
            creator: doc.get(1),
            changes,
        }))
    }
}

fn case_arg(case_id: &CaseId) -> Box<dyn ToSql + Sync> {
    Box::new(case_id.as_str().to_owned())
}
