//! A chronology in Markdown (CommonMark) for a legal brief: read as it is,
//! or converted (pandoc) to a document.
//!
//! ```text
//! # CASE
//! Exported … by device …. Filters: …. N reports.
//! ## 2016-05-21 (UTC+06:00)          one per day, in the reports' own offset
//! ### 10:40 (approx.) — TITLE         one per report
//! - Report, Place (coordinates), Reported by, Status (reviewer: note), Tags
//! DESCRIPTION, as paragraphs
//! People: / Timeline: / Attachments: bullet lists
//! Change history: N signed changes, all signatures verified.
//! ```
//!
//! Day headings group consecutive reports (in export order) that share a
//! calendar day and offset; reports without a time come last under
//! "Undated". A timeline entry shows its time alone when it falls on its
//! report's day and offset, else with date and offset. Attachments show
//! their name, type, size and SHA-256 where this device could open the
//! sealed header, else their id.
//!
//! Every text from a report is escaped ([`escape_line`]) so that it reads
//! as the text it is: no title or description can make a link, an image,
//! HTML, a heading, a list or emphasis. (GitHub-flavoured renderers make
//! bare `https://…` and `www.…` clickable whatever the escaping; such a
//! link shows its own address, so it cannot pass for other text.)

use std::io::Write;

use chrono::{DateTime, FixedOffset, SecondsFormat};

use super::{timeline_in_order, Export, ExportError, ExportedReport};
use crate::document::rfc3339;

/// Writes the chronology.
pub fn write<W: Write>(mut out: W, export: &Export) -> Result<(), ExportError> {
    writeln!(out, "# {}", inline(&export.case))?;
    writeln!(out)?;
    writeln!(
        out,
        "Exported {} by device {}. Filters: {}. {}.",
        rfc3339(&export.exported_at),
        inline(&export.exported_by),
        inline(&export.filters.describe()),
        plural(export.reports.len(), "report", "reports"),
    )?;
    let mut day: Option<String> = None;
    for exported in &export.reports {
        let heading = match &exported.report.occurred_at {
            Some(at) => format!("{} (UTC{})", at.format("%Y-%m-%d"), at.format("%:z")),
            None => "Undated".to_owned(),
        };
        if day.as_ref() != Some(&heading) {
            writeln!(out)?;
            writeln!(out, "## {heading}")?;
            day = Some(heading);
        }
        report(&mut out, export, exported)?;
    }
    out.flush()?;
    Ok(())
}

fn report<W: Write>(
    out: &mut W,
    export: &Export,
    exported: &ExportedReport,
) -> Result<(), ExportError> {
    let r = &exported.report;
    let time = match &r.occurred_at {
        Some(at) => format!(
            "{}{}",
            at.format("%H:%M"),
            if r.approximate { " (approx.)" } else { "" }
        ),
        None => "(no time)".to_owned(),
    };
    let title = if r.title.trim().is_empty() {
        "(untitled)".to_owned()
    } else {
        inline(&r.title)
    };
    writeln!(out)?;
    writeln!(out, "### {time} — {title}")?;
    writeln!(out)?;
    writeln!(out, "- Report: {}", inline(r.id.as_str()))?;
    let mut place = inline(&r.place.name);
    if let (Some(lat), Some(lon)) = (r.place.lat, r.place.lon) {
        place = format!("{place} ({lat}, {lon})").trim_start().to_owned();
    }
    if !place.is_empty() {
        writeln!(out, "- Place: {place}")?;
    }
    write!(
        out,
        "- Reported by: device {}",
        inline(r.created_by.as_str())
    )?;
    if let Some(created) = &r.created_at {
        write!(
            out,
            ", recorded {}",
            created.to_rfc3339_opts(SecondsFormat::Secs, false)
        )?;
    }
    writeln!(out)?;
    write!(out, "- Status: {}", r.review.status)?;
    if let Some(reviewer) = &r.review.reviewer {
        write!(out, ", by {}", inline(reviewer))?;
    }
    if !r.review.note.is_empty() {
        write!(out, ": {}", inline(&r.review.note))?;
    }
    writeln!(out)?;
    if !r.tags.is_empty() {
        let tags: Vec<String> = r.tags.iter().map(|t| inline(t)).collect();
        writeln!(out, "- Tags: {}", tags.join(", "))?;
    }
    if !r.description.trim().is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", block(&r.description))?;
    }
    if !r.people.is_empty() {
        writeln!(out)?;
        writeln!(out, "People:")?;
        writeln!(out)?;
        for p in &r.people {
            write!(out, "- {} ({})", inline(&p.name), p.role)?;
            if !p.note.is_empty() {
                write!(out, ": {}", inline(&p.note))?;
            }
            writeln!(out)?;
        }
    }
    if !r.timeline.is_empty() {
        writeln!(out)?;
        writeln!(out, "Timeline:")?;
        writeln!(out)?;
        for entry in timeline_in_order(r) {
            writeln!(
                out,
                "- {}{}: {}",
                entry_time(&entry.at, r.occurred_at.as_ref()),
                if entry.approximate { " (approx.)" } else { "" },
                inline(&entry.text)
            )?;
        }
    }
    if !r.attachments.is_empty() {
        writeln!(out)?;
        writeln!(out, "Attachments:")?;
        writeln!(out)?;
        for a in &r.attachments {
            match export.attachments.get(&a.id) {
                Some(meta) => writeln!(
                    out,
                    "- {} ({}, {}, SHA-256 {}), attachment {}",
                    inline(&meta.name),
                    inline(&meta.media_type),
                    plural(meta.size as usize, "byte", "bytes"),
                    inline(&meta.sha256),
                    inline(&a.id)
                )?,
                None => writeln!(
                    out,
                    "- attachment {} (name not readable without the case key)",
                    inline(&a.id)
                )?,
            }
        }
    }
    writeln!(out)?;
    writeln!(out, "{}", history_line(exported))?;
    Ok(())
}

fn history_line(exported: &ExportedReport) -> String {
    let n = plural(exported.history.len(), "signed change", "signed changes");
    let failed: Vec<String> = exported
        .unverified()
        .map(|h| {
            format!(
                "{} by device {}",
                inline(h.hash.get(..12).unwrap_or(&h.hash)),
                inline(&h.author)
            )
        })
        .collect();
    if failed.is_empty() {
        format!("Change history: {n}, all signatures verified.")
    } else {
        format!(
            "Change history: {n}; **{} did not verify**: {}.",
            plural(failed.len(), "signature", "signatures"),
            failed.join("; ")
        )
    }
}

fn entry_time(at: &DateTime<FixedOffset>, report: Option<&DateTime<FixedOffset>>) -> String {
    let same_day =
        report.is_some_and(|r| r.offset() == at.offset() && r.date_naive() == at.date_naive());
    if same_day {
        at.format("%H:%M").to_string()
    } else {
        at.format("%Y-%m-%d %H:%M UTC%:z").to_string()
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Text on one line (a heading, a list item): line breaks become spaces.
fn inline(text: &str) -> String {
    let one_line: Vec<&str> = text.lines().map(str::trim).collect();
    escape_line(&one_line.join(" "))
}

/// Paragraphs separated by blank lines; the lines of a paragraph kept
/// apart with hard line breaks.
fn block(text: &str) -> String {
    let mut paragraphs: Vec<Vec<String>> = vec![vec![]];
    for line in text.lines() {
        if line.trim().is_empty() {
            if paragraphs.last().is_some_and(|p| !p.is_empty()) {
                paragraphs.push(vec![]);
            }
        } else if let Some(p) = paragraphs.last_mut() {
            p.push(escape_line(line));
        }
    }
    paragraphs
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| p.join("\\\n"))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Characters that start inline Markdown anywhere in a line: code,
/// emphasis, links and images, raw HTML and entities, tables, strikethrough,
/// headings' closing `#`s.
const INLINE_SPECIAL: &[char] = &[
    '\\', '`', '*', '_', '[', ']', '<', '>', '!', '|', '~', '&', '#',
];

/// One line of user text as Markdown that renders as exactly that text.
/// Leading whitespace is dropped (it would make a code block); the
/// characters of [`INLINE_SPECIAL`] are backslash-escaped everywhere; a
/// `-`, `+` or `=` at the start (list, setext heading) and the `.` or `)`
/// after leading digits (ordered list) are escaped too.
pub fn escape_line(line: &str) -> String {
    let line = line.trim_start();
    let mut out = String::with_capacity(line.len() + 8);
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    for (i, c) in line.chars().enumerate() {
        let starts_block = (i == 0 && matches!(c, '-' | '+' | '='))
            || (i == digits && digits > 0 && matches!(c, '.' | ')'));
        if starts_block || INLINE_SPECIAL.contains(&c) {
            out.push('\\');
        }
        if !c.is_control() || c == '\t' {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::tests::{hostile, sample};

    fn markdown(export: &Export) -> String {
        let mut out = Vec::new();
        write(&mut out, export).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_chronology_by_day_with_every_part_of_a_report() {
        let text = markdown(&sample());
        let expected_r1 = "\
### 10:40 (approx.) — Arrest at the bus stop

- Report: 11111111111111111111111111111111
- Place: Bus stop, Abay avenue (43.25, 76.95)
- Reported by: device aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, recorded 2016-05-21T12:00:00+06:00
- Status: verified, by cccccccccccccccccccccccccccccccc: two witnesses
- Tags: arrest, police

Aleksey was arrested.\\
Two officers took him away.

People:

- Tulegen Shakirov (officer): car kz380KP02
- Aleksey Ivanov (detainee)

Timeline:

- 11:15 (approx.): taken to the station
- 13:00: released

Attachments:

- photo.jpg (image/jpeg, 1000 bytes, SHA-256 5555555555555555555555555555555555555555555555555555555555555555), attachment a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1
- attachment a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2 (name not readable without the case key)

Change history: 2 signed changes, all signatures verified.
";
        assert!(text.starts_with(
            "# almaty\n\nExported 2024-03-01T12:00:00+00:00 by device cccccccccccccccccccccccccccccccc. Filters: from 2016-05-01. 3 reports.\n\n## 2016-05-21 (UTC+06:00)\n\n"
        ), "{text}");
        assert!(text.contains(expected_r1), "{text}");
        // r2 is the 21st too, but in another offset: a heading of its own.
        let headings: Vec<&str> = text.lines().filter(|l| l.starts_with("## ")).collect();
        assert_eq!(
            headings,
            [
                "## 2016-05-21 (UTC+06:00)",
                "## 2016-05-21 (UTC-03:00)",
                "## 2016-05-22 (UTC+06:00)"
            ]
        );
        assert!(text.contains("### 23:30 — Search of the flat\n"));
        assert!(text.contains(
            "Change history: 1 signed change; **1 signature did not verify**: 333333333333 by device aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
        ));
        assert!(text.contains("- Place: Square (-33.9, 18.4)\n"));
        assert!(text.contains("- Status: disputed\n"));
        assert_eq!(text, markdown(&sample()), "deterministic");
    }

    #[test]
    fn hostile_text_cannot_make_markup() {
        let text = markdown(&hostile());
        assert!(text.starts_with("# \\<b\\>case\\</b\\>\n"));
        assert!(text.contains("### 10:40 — \\<img src=x onerror=alert(1)\\>\n"));
        assert!(text.contains(
            "\\=HYPERLINK(\"http://evil.example\",\"click\")\\\n\\[click\\](javascript:alert(1)) \\*\\*bold\\*\\* \\<script\\>alert(1)\\</script\\> \\&amp;\\\n\\# not a heading\\\n1\\. not a list\\\nАлексей задержан 🙂\n"
        ), "{text}");
        assert!(text.contains("- Status: unverified: \\[x\\](http://evil.example)\n"));
        assert!(text.contains("- Tags: \\-2+3, @SUM(A1), ok\n"));
        assert!(text.contains("- Place: \\+cmd\\|' /C calc'\\!A0 (-12.5, -77)\n"));
        assert!(text.contains("- Tab (witness): CR\n"), "{text}");
        assert!(text.contains("- 11:00: \\=1+1 \\<b\\>bold\\</b\\>\n"));
        // Nothing unescaped that starts markup.
        for line in text.lines() {
            for bad in ["<img", "<script", "](", "<b>"] {
                assert!(
                    !line.contains(bad)
                        || line.contains(&format!("\\{bad}"))
                        || line.contains("\\]("),
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn line_starts_that_make_blocks_are_escaped() {
        assert_eq!(escape_line("- item"), "\\- item");
        assert_eq!(escape_line("+ item"), "\\+ item");
        assert_eq!(escape_line("==="), "\\===");
        assert_eq!(escape_line("12. item"), "12\\. item");
        assert_eq!(escape_line("3) item"), "3\\) item");
        assert_eq!(escape_line("    code"), "code");
        assert_eq!(escape_line("> quote"), "\\> quote");
        assert_eq!(escape_line("a - b. 3) c"), "a - b. 3) c");
        assert_eq!(escape_line("back\\slash"), "back\\\\slash");
        assert_eq!(escape_line("2016-05-21"), "2016-05-21");
    }

    #[test]
    fn timeline_entries_on_another_day_show_their_date() {
        let mut export = sample();
        export.reports[0].report.timeline[0].at =
            crate::export::tests::t("2016-05-22T01:00:00+06:00");
        let text = markdown(&export);
        assert!(
            text.contains("- 2016-05-22 01:00 UTC+06:00: released\n"),
            "{text}"
        );
    }
}
