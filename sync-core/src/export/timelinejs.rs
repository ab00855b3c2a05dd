//! Knight Lab TimelineJS 3 (its "JSON data format"): load the file with
//! `new TL.Timeline(element, "export.json")` or host it for the embed.
//!
//! ```text
//! {"title": {"text": {"headline": CASE, "text": SUMMARY}},
//!  "events": [{"start_date": {"year", "month", "day", "hour", "minute", "display_date"},
//!              "text": {"headline": TITLE, "text": HTML},
//!              "group": STATUS, "unique_id": REPORT_ID}, ...]}
//! ```
//!
//! - `start_date` holds numbers (the format's `year` is "a number"), the
//!   wall-clock time in the reporter's offset; `display_date` spells the
//!   offset out (`2016-05-21 10:40 UTC+06:00`, `around` before an
//!   approximate time), because TimelineJS itself has no time zones.
//! - One event per report, `unique_id` the report id, `group` its review
//!   status (TimelineJS puts each group on its own row), `text.text` the
//!   description, then place, tags and people.
//! - Each timeline entry inside a report is an event of its own, so the
//!   sub-events show on the time axis: `unique_id` `<report id>-<n>` (n
//!   from 1, the report's entries by time), headline the entry's text, the
//!   same group as its report, and a line naming the report.
//! - Reports without a time cannot be placed (`start_date.year` is
//!   required); they are left out and counted in [`Written`].
//!
//! TimelineJS renders headlines and texts as HTML, so every text from a
//! report is HTML-escaped (`<script>` arrives as `&lt;script&gt;`); the
//! only markup is what this module writes around it. (TimelineJS's
//! default `autolink` still makes bare URLs in a text clickable, showing
//! the address itself.)

use std::io::Write;

use chrono::{DateTime, Datelike, FixedOffset, Timelike};
use serde::Serialize;

use super::{timeline_in_order, Export, ExportError};
use crate::document::rfc3339;
use crate::model::Report;

/// What [`write`] wrote and left out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Events, reports and their timeline entries together.
    pub events: usize,
    /// Reports without `occurred_at`, left out.
    pub undated: usize,
}

#[derive(Serialize)]
struct Timeline {
    title: TitleSlide,
    events: Vec<Event>,
}

#[derive(Serialize)]
struct TitleSlide {
    text: Text,
}

#[derive(Serialize)]
struct Event {
    start_date: Date,
    text: Text,
    group: &'static str,
    unique_id: String,
}

#[derive(Serialize)]
struct Date {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    display_date: String,
}

#[derive(Serialize)]
struct Text {
    headline: String,
    text: String,
}

/// Writes the timeline, pretty-printed, ending with a newline.
pub fn write<W: Write>(mut out: W, export: &Export) -> Result<Written, ExportError> {
    let mut written = Written::default();
    let mut events = Vec::new();
    for exported in &export.reports {
        let r = &exported.report;
        let Some(at) = &r.occurred_at else {
            written.undated += 1;
            continue;
        };
        let group = r.review.status.as_str();
        events.push(Event {
            start_date: date(at, r.approximate),
            text: Text {
                headline: escape(&r.title),
                text: report_text(r),
            },
            group,
            unique_id: r.id.to_string(),
        });
        for (n, entry) in timeline_in_order(r).into_iter().enumerate() {
            events.push(Event {
                start_date: date(&entry.at, entry.approximate),
                text: Text {
                    headline: escape(&entry.text),
                    text: format!(
                        "<p>Part of report <em>{}</em> ({})</p>",
                        escape(&r.title),
                        escape(r.id.as_str())
                    ),
                },
                group,
                unique_id: format!("{}-{}", r.id, n + 1),
            });
        }
    }
    written.events = events.len();
    let reports = export.reports.len() - written.undated;
    let timeline = Timeline {
        title: TitleSlide {
            text: Text {
                headline: escape(&export.case),
                text: format!(
                    "<p>{reports} {}, exported {} by device {}.</p><p>Filters: {}.</p>",
                    if reports == 1 { "report" } else { "reports" },
                    escape(&rfc3339(&export.exported_at)),
                    escape(&export.exported_by),
                    escape(&export.filters.describe()),
                ),
            },
        },
        events,
    };
    serde_json::to_writer_pretty(&mut out, &timeline)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(written)
}

fn date(at: &DateTime<FixedOffset>, approximate: bool) -> Date {
    let offset = at.format("%:z");
    Date {
        year: at.year(),
        month: at.month(),
        day: at.day(),
        hour: at.hour(),
        minute: at.minute(),
        display_date: format!(
            "{}{} UTC{offset}",
            if approximate { "around " } else { "" },
            at.format("%Y-%m-%d %H:%M")
        ),
    }
}

fn report_text(r: &Report) -> String {
    let mut html = String::new();
    for paragraph in r.description.split("\n\n").filter(|p| !p.trim().is_empty()) {
        let lines: Vec<String> = paragraph.trim().lines().map(escape).collect();
        html.push_str(&format!("<p>{}</p>", lines.join("<br>")));
    }
    if !r.place.name.is_empty() || r.place.lat.is_some() {
        let mut place = escape(&r.place.name);
        if let (Some(lat), Some(lon)) = (r.place.lat, r.place.lon) {
            place.push_str(&format!(" ({lat}, {lon})"));
        }
        html.push_str(&format!("<p><strong>Place:</strong> {}</p>", place.trim()));
    }
    if !r.tags.is_empty() {
        let tags: Vec<String> = r.tags.iter().map(|t| escape(t)).collect();
        html.push_str(&format!(
            "<p><strong>Tags:</strong> {}</p>",
            tags.join(", ")
        ));
    }
    if !r.people.is_empty() {
        let people: Vec<String> = r
            .people
            .iter()
            .map(|p| {
                let mut person = format!("{} ({})", escape(&p.name), p.role);
                if !p.note.is_empty() {
                    person.push_str(&format!(": {}", escape(&p.note)));
                }
                person
            })
            .collect();
        html.push_str(&format!(
            "<p><strong>People:</strong> {}</p>",
            people.join("; ")
        ));
    }
    html
}

/// Text as HTML text: the five characters that can start or end markup or
/// an attribute become entities.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::export::tests::{hostile, sample};

    fn timeline(export: &Export) -> (Value, Written) {
        let mut out = Vec::new();
        let written = write(&mut out, export).unwrap();
        (serde_json::from_slice(&out).unwrap(), written)
    }

    /// What TimelineJS requires and how it types it: `events` a list;
    /// each `start_date.year` a number; month, day, hour, minute numbers in
    /// range; `text.headline` and `text.text` strings; `unique_id` unique.
    fn check_schema(doc: &Value) {
        assert!(doc["title"]["text"]["headline"].is_string());
        assert!(doc["title"]["text"]["text"].is_string());
        assert!(doc["title"].get("start_date").is_none());
        let events = doc["events"].as_array().unwrap();
        let mut ids = std::collections::HashSet::new();
        for e in events {
            let d = &e["start_date"];
            assert!(d["year"].is_i64(), "year is a number: {d}");
            assert!((1..=12).contains(&d["month"].as_u64().unwrap()));
            assert!((1..=31).contains(&d["day"].as_u64().unwrap()));
            assert!(d["hour"].as_u64().unwrap() < 24);
            assert!(d["minute"].as_u64().unwrap() < 60);
            assert!(d["display_date"].is_string());
            assert!(e["text"]["headline"].is_string());
            assert!(e["text"]["text"].is_string());
            assert!(e["group"].is_string());
            assert!(ids.insert(e["unique_id"].as_str().unwrap().to_owned()));
        }
    }

    #[test]
    fn reports_and_their_timeline_entries_become_events() {
        let (doc, written) = timeline(&sample());
        check_schema(&doc);
        assert_eq!(
            written,
            Written {
                events: 5,
                undated: 0
            }
        );
        assert_eq!(doc["title"]["text"]["headline"], "almaty");
        let events = doc["events"].as_array().unwrap();
        let first = &events[0];
        assert_eq!(
            first["start_date"],
            serde_json::json!({"year": 2016, "month": 5, "day": 21, "hour": 10, "minute": 40,
                "display_date": "around 2016-05-21 10:40 UTC+06:00"})
        );
        assert_eq!(first["text"]["headline"], "Arrest at the bus stop");
        assert_eq!(
            first["text"]["text"],
            "<p>Aleksey was arrested.<br>Two officers took him away.</p>\
             <p><strong>Place:</strong> Bus stop, Abay avenue (43.25, 76.95)</p>\
             <p><strong>Tags:</strong> arrest, police</p>\
             <p><strong>People:</strong> Tulegen Shakirov (officer): car kz380KP02; Aleksey Ivanov (detainee)</p>"
        );
        assert_eq!(first["group"], "verified");
        assert_eq!(first["unique_id"], "11111111111111111111111111111111");
        // The entries follow, by time, numbered from 1.
        assert_eq!(events[1]["unique_id"], "11111111111111111111111111111111-1");
        assert_eq!(events[1]["text"]["headline"], "taken to the station");
        assert_eq!(events[1]["start_date"]["hour"], 11);
        assert_eq!(events[1]["group"], "verified");
        assert_eq!(events[2]["unique_id"], "11111111111111111111111111111111-2");
        assert_eq!(events[2]["text"]["headline"], "released");
        // Wall-clock time where it happened, not UTC.
        assert_eq!(events[3]["start_date"]["day"], 21);
        assert_eq!(events[3]["start_date"]["hour"], 23);
        assert_eq!(
            events[3]["start_date"]["display_date"],
            "2016-05-21 23:30 UTC-03:00"
        );
        assert_eq!(events[3]["group"], "unverified");
    }

    #[test]
    fn every_text_is_escaped() {
        let (doc, _) = timeline(&hostile());
        check_schema(&doc);
        let text = doc.to_string();
        for raw in ["<img", "<script", "<b>"] {
            assert!(!text.contains(raw), "{raw} reached the timeline as markup");
        }
        assert_eq!(doc["title"]["text"]["headline"], "&lt;b&gt;case&lt;/b&gt;");
        let event = &doc["events"][0];
        assert_eq!(
            event["text"]["headline"],
            "&lt;img src=x onerror=alert(1)&gt;"
        );
        let body = event["text"]["text"].as_str().unwrap();
        assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp;amp;"));
        assert!(body.contains("=HYPERLINK(&quot;http://evil.example&quot;"));
        assert!(body.contains("Алексей задержан 🙂"));
        assert!(body.contains("+cmd|&#39; /C calc&#39;!A0 (-12.5, -77)"));
        assert_eq!(
            doc["events"][1]["text"]["headline"],
            "=1+1 &lt;b&gt;bold&lt;/b&gt;"
        );
    }

    #[test]
    fn undated_reports_are_left_out_and_counted() {
        let mut export = sample();
        export.reports[1].report.occurred_at = None;
        let (doc, written) = timeline(&export);
        check_schema(&doc);
        assert_eq!(
            written,
            Written {
                events: 4,
                undated: 1
            }
        );
    }

    #[test]
    fn output_is_deterministic() {
        let bytes = |e: &Export| {
            let mut out = Vec::new();
            write(&mut out, e).unwrap();
            out
        };
        assert_eq!(bytes(&sample()), bytes(&sample()));
    }
}
