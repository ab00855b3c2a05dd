//! Narrative text or Markdown: one report per file, as a reporter or a
//! blog would write it.
//!
//! - Title: the first Markdown heading among the first five non-empty
//!   lines, else the first non-empty line (`#` marks dropped; cut to fit
//!   the model's limit).
//! - Description: the whole text.
//! - Date of the events: the first date in the title line, else the first
//!   date in the text not on a line that says "published", "posted" or
//!   "updated" (forms: `May 21`, `21 May 2016`, `14th of July`,
//!   `22.05.2016`, `December 16, 1986`, …). A date without a year takes it
//!   from a full date on a "published"/"posted" line, else from the first
//!   full date anywhere, else from the default date; when it comes from a
//!   publication date, the event is the latest such day not after it
//!   ("May 21" published 22.05.2016 is 2016-05-21; "December 30"
//!   published 2 January 2017 is 2016-12-30).
//! - Timeline: every sentence that mentions a time of day ("at around
//!   10:40 am", "At 11 am", "After 1:00 pm", "at 4 o'clock in the
//!   morning", "noon") is an entry at its first such time, on the date the
//!   sentence names or else the date of the events, with the sentence as
//!   its text. Durations ("more than 4 hours", "about 15 minutes") are not
//!   times. An entry is approximate when, in its clause and within five
//!   words before the time, the sentence says around, about,
//!   approximately, circa, roughly, nearly, almost, after, before, early,
//!   shortly, sometime or towards, or "or so" follows the time. "After
//!   1:00 pm" is thus approximate: the text gives a bound, not the time.
//!   Entries are in time order.
//! - When: the earliest entry (approximate as it is), else midnight of the
//!   date, approximate.
//! - Sentences end at `.`, `!` or `?` before a space or a line end, except
//!   after common abbreviations (Mr., Dr., St., e.g., No., month names),
//!   single initials, and when the next word starts in lower case ("at
//!   10 a.m. the police"); a blank line or a Markdown block ends one too.
//! - Candidates (see `candidates.rs`): people, plates, and places in the
//!   title line; the first place is also the report's place name, as the
//!   issue asks ("offered as the report's place"). No person is put into
//!   the report's people.
//!
//! Times carry no offset, so the file needs a timezone option.

use chrono::{Datelike, NaiveDate, NaiveTime};

use super::candidates;
use super::dates::{self, FoundDate};
use super::fields;
use super::types::{Candidates, ImportError, ImportOptions, ImportedReport, RefusedRow};
use crate::model::{Place, TimelineEntry, MAX_DESCRIPTION_BYTES, MAX_FIELD_BYTES, MAX_TITLE_BYTES};

type Parsed = (Vec<ImportedReport>, Vec<RefusedRow>, Candidates);

/// How a refusal for a date without a year ends; a caller can offer its
/// way to give the year ([`ImportOptions::year`]).
pub(super) const NO_YEAR: &str = "add the year, or give the year such dates are in";

pub(super) fn parse(
    text: &str,
    options: &ImportOptions,
    file: &str,
) -> Result<Parsed, ImportError> {
    let zone = options
        .timezone
        .ok_or_else(|| ImportError::TimezoneRequired { file: file.into() })?;
    let lines = Lines::new(text);
    let title_line = title_line(&lines);
    let (title_start, title_end) = lines.range(title_line);
    let title_text = &text[title_start..title_end];
    let refuse = |reason: String, candidates: Candidates| {
        let needs_year = reason.ends_with(NO_YEAR);
        Ok((
            vec![],
            vec![RefusedRow {
                line: title_line + 1,
                reason,
                needs_year,
            }],
            candidates,
        ))
    };
    let description = text.trim();
    if description.len() > MAX_DESCRIPTION_BYTES {
        return refuse(
            format!(
                "the text is {} bytes; a report's description holds at most {MAX_DESCRIPTION_BYTES}: split it into several files",
                description.len()
            ),
            Candidates::default(),
        );
    }
    let candidates = Candidates {
        people: candidates::people(text),
        plates: candidates::plates(text),
        places: candidates::places(title_text),
    };

    let found = dates::find_dates(text);
    let publication_lines: Vec<bool> = (0..lines.count())
        .map(|i| {
            let line = lines.get(i).to_lowercase();
            ["published", "posted", "updated"]
                .iter()
                .any(|w| line.contains(w))
        })
        .collect();
    let on_publication_line = |d: &FoundDate| publication_lines[lines.line_of(d.start)];
    let reference = found
        .iter()
        .filter(|d| d.year.is_some())
        .find(|d| on_publication_line(d))
        .map(|d| (d, true))
        .or_else(|| found.iter().find(|d| d.year.is_some()).map(|d| (d, false)))
        .and_then(|(d, published)| {
            Some((NaiveDate::from_ymd_opt(d.year?, d.month, d.day)?, published))
        });
    let date_of = |d: &FoundDate| -> Result<NaiveDate, String> {
        let written = &text[d.start..d.end];
        let none = || format!("the date {written:?} is not a real date");
        if let Some(year) = d.year.or(options.year) {
            return NaiveDate::from_ymd_opt(year, d.month, d.day).ok_or_else(none);
        }
        match (reference, options.default_date) {
            (Some((reference, true)), _) => {
                let this_year = NaiveDate::from_ymd_opt(reference.year(), d.month, d.day);
                match this_year {
                    Some(date) if date <= reference => Ok(date),
                    _ => NaiveDate::from_ymd_opt(reference.year() - 1, d.month, d.day)
                        .ok_or_else(none),
                }
            }
            (Some((reference, false)), _) => {
                NaiveDate::from_ymd_opt(reference.year(), d.month, d.day).ok_or_else(none)
            }
            (None, Some(default)) => {
                NaiveDate::from_ymd_opt(default.year(), d.month, d.day).ok_or_else(none)
            }
            (None, None) => Err(format!(
                "the date of the events, {written:?}, has no year and the text has no full date \
                 (such as \"Originally published on 22.05.2016\") to take it from; {NO_YEAR}"
            )),
        }
    };
    let in_title = |d: &&FoundDate| d.start >= title_start && d.end <= title_end;
    let event = found
        .iter()
        .find(in_title)
        .or_else(|| found.iter().find(|d| !on_publication_line(d)));
    let event_date = match (event, options.default_date) {
        (Some(d), _) => date_of(d),
        (None, Some(default)) => Ok(default),
        (None, None) => Err(
            "no date of the events found in the text (write one such as \"21 May 2016\" in the \
             first line), and no default date given"
                .to_owned(),
        ),
    };
    let event_date = match event_date {
        Ok(date) => date,
        Err(reason) => return refuse(reason, candidates),
    };

    let mut timeline = Vec::new();
    for sentence in sentences(text) {
        let Some(time) = dates::find_times(sentence.text).into_iter().next() else {
            continue;
        };
        let sentence_end = sentence.start + sentence.text.len();
        let own_date = found[found.partition_point(|d| d.start < sentence.start)..]
            .iter()
            .take_while(|d| d.end <= sentence_end)
            .find(|d| !on_publication_line(d))
            .and_then(|d| date_of(d).ok());
        let local = own_date.unwrap_or(event_date).and_time(time.time);
        let (at, guessed) = dates::at_zone_lenient(&zone, &local);
        let approximate = guessed || approximate_at(sentence.text, time.start, time.end);
        timeline.push(TimelineEntry {
            at,
            text: fields::truncate(&clean(sentence.text), MAX_FIELD_BYTES),
            approximate,
        });
    }
    timeline.sort_by_key(|e| e.at);
    let (occurred_at, approximate) = match timeline.first() {
        Some(first) => (first.at, first.approximate),
        None => {
            let (at, _) = dates::at_zone_lenient(&zone, &event_date.and_time(NaiveTime::MIN));
            (at, true)
        }
    };
    let report = ImportedReport {
        source_key: "text".into(),
        line: title_line + 1,
        title: fields::truncate(&clean_title(title_text), MAX_TITLE_BYTES),
        occurred_at,
        approximate,
        place: Place {
            name: candidates.places.first().cloned().unwrap_or_default(),
            lat: None,
            lon: None,
        },
        description: description.to_owned(),
        people: vec![],
        tags: vec![],
        timeline,
        attachment_names: vec![],
    };
    match fields::check(report) {
        Ok(report) => Ok((vec![report], vec![], candidates)),
        Err(reason) => refuse(reason, candidates),
    }
}

/// Line starts, to find a byte's line and a line's range.
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { text, starts }
    }

    /// 0-based line of a byte offset.
    fn line_of(&self, byte: usize) -> usize {
        self.starts
            .partition_point(|&s| s <= byte)
            .saturating_sub(1)
    }

    /// Byte range of a 0-based line, without its line end.
    fn range(&self, line: usize) -> (usize, usize) {
        let start = self.starts.get(line).copied().unwrap_or(self.text.len());
        let end = self
            .starts
            .get(line + 1)
            .map_or(self.text.len(), |next| next - 1);
        let end = if self.text[start..end].ends_with('\r') {
            end - 1
        } else {
            end
        };
        (start, end.max(start))
    }

    fn get(&self, line: usize) -> &'a str {
        let (s, e) = self.range(line);
        &self.text[s..e]
    }

    fn count(&self) -> usize {
        self.starts.len()
    }
}

/// 0-based line of the title.
fn title_line(lines: &Lines<'_>) -> usize {
    let non_empty: Vec<usize> = (0..lines.count())
        .filter(|&i| !lines.get(i).trim().is_empty())
        .take(5)
        .collect();
    non_empty
        .iter()
        .copied()
        .find(|&i| lines.get(i).trim_start().starts_with('#'))
        .or_else(|| non_empty.first().copied())
        .unwrap_or(0)
}

/// The title line without Markdown marks, white space (such as a no-break
/// space) made plain spaces.
fn clean_title(line: &str) -> String {
    line.trim()
        .trim_start_matches('#')
        .trim_end_matches('#')
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A sentence's text with runs of white space made one space and a
/// Markdown block mark dropped.
fn clean(sentence: &str) -> String {
    let collapsed = sentence.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s = collapsed.as_str();
    for mark in ["#", ">", "- ", "* ", "+ "] {
        s = s.trim_start_matches(mark).trim_start();
    }
    s.to_owned()
}

struct Sentence<'a> {
    text: &'a str,
    start: usize,
}

/// Paragraphs (blank lines and Markdown blocks apart), split into
/// sentences as the module doc says.
fn sentences(text: &str) -> Vec<Sentence<'_>> {
    let mut out = Vec::new();
    let mut para: Option<(usize, usize)> = None;
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let line = raw.trim_end_matches(['\n', '\r']);
        let (start, end) = (offset, offset + line.len());
        offset += raw.len();
        let trimmed = line.trim_start();
        let block_start = trimmed.starts_with(['#', '>', '-', '*', '+'])
            || trimmed
                .split_once(['.', ')'])
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if trimmed.is_empty() || block_start {
            if let Some((s, e)) = para.take() {
                split_sentences(text, s, e, &mut out);
            }
        }
        if !trimmed.is_empty() {
            para = Some((para.map_or(start, |(s, _)| s), end));
        }
    }
    if let Some((s, e)) = para {
        split_sentences(text, s, e, &mut out);
    }
    out
}

fn split_sentences<'a>(text: &'a str, start: usize, end: usize, out: &mut Vec<Sentence<'a>>) {
    let para = &text[start..end];
    let mut from = 0;
    let push = |from: usize, to: usize, out: &mut Vec<Sentence<'a>>| {
        let piece = &para[from..to];
        let trimmed = piece.trim_start();
        let lead = piece.len() - trimmed.len();
        let trimmed = trimmed.trim_end();
        if !trimmed.is_empty() {
            out.push(Sentence {
                text: trimmed,
                start: start + from + lead,
            });
        }
    };
    for (i, c) in para.char_indices() {
        if !matches!(c, '.' | '!' | '?') || i < from {
            continue;
        }
        let mut j = i + c.len_utf8();
        while let Some(q) = para[j..].chars().next().filter(|q| "\"”’')]»".contains(*q)) {
            j += q.len_utf8();
        }
        let rest = &para[j..];
        if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
            continue;
        }
        if c == '.' {
            let word = para[from..i]
                .rsplit(char::is_whitespace)
                .next()
                .unwrap_or("")
                .trim_start_matches(|c: char| !c.is_alphanumeric());
            let next_lower = rest.trim_start().starts_with(char::is_lowercase);
            if next_lower || abbreviation(word) {
                continue;
            }
        }
        push(from, j, out);
        from = j;
    }
    push(from, para.len(), out);
}

fn abbreviation(word: &str) -> bool {
    const ABBREVIATIONS: &[&str] = &[
        "mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "no", "nr", "vs", "e.g", "i.e",
        "approx", "ca", "cf", "gen", "col", "lt", "sgt", "capt", "gov", "rev", "ave", "blvd", "rd",
        "str", "ul", "pr", "inc", "ltd", "co", "corp", "dept", "mt", "ft", "jan", "feb", "mar",
        "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    ];
    let lower = word.to_lowercase();
    let single_initial = word.chars().count() == 1 && word.starts_with(char::is_uppercase);
    // U.S, U.N: single capitals between dots
    let initials = word.contains('.')
        && word
            .split('.')
            .all(|p| p.chars().count() == 1 && p.starts_with(char::is_uppercase));
    single_initial || initials || ABBREVIATIONS.contains(&lower.as_str())
}

/// Whether the sentence hedges the time at `start..end` (see the module doc).
fn approximate_at(sentence: &str, start: usize, end: usize) -> bool {
    const HEDGES: &[&str] = &[
        "around",
        "about",
        "approximately",
        "approx",
        "circa",
        "ca",
        "roughly",
        "nearly",
        "almost",
        "after",
        "before",
        "early",
        "shortly",
        "sometime",
        "towards",
        "toward",
    ];
    let before = &sentence[..start];
    let clause = before
        .rfind([',', ';', ':', '(', ')', '—', '–'])
        .map_or(before, |i| &before[i..]);
    let hedged_before = clause
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .rev()
        .take(5)
        .any(|w| HEDGES.contains(&w.to_lowercase().as_str()));
    let after: Vec<String> = sentence[end..]
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(2)
        .map(str::to_lowercase)
        .collect();
    let hedged_after = after
        .first()
        .is_some_and(|w| w == "approximately" || w == "roughly")
        || after == ["or", "so"];
    hedged_before || hedged_after || sentence[..start].trim_end().ends_with('~')
}

#[cfg(test)]
mod tests;
