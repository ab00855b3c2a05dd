//! Dates and times as people write them: one value in a CSV cell or a JSON
//! field ([`parse_datetime`], [`parse_time`]), and dates and times of day
//! found inside running text ([`find_dates`], [`find_times`]).
//!
//! Both work on the same small tokens (numbers, words, single punctuation
//! characters), so every form is read the same way wherever it appears.
//!
//! Values: RFC 3339; `2016-05-21[T| ]10:40[:05[.123]]`; `2016/05/21`;
//! `21.05.2016`; `05/21/2016` (month first; a first number over 12 is
//! refused, not guessed); `21 May 2016`, `21st of May, 2016`;
//! `May 21, 2016`, `Saturday, May 21, 2016`; then optionally `,`/`at`/`T`
//! and a time (`10:40`, `10:40:05`, `10:40 am`, `10 pm`, `10:40 a.m.`,
//! `10.40 pm`), then optionally an offset (`Z`, `UTC`, `GMT`, `+06:00`,
//! `+0600`, `+06`). Month names are English, full or abbreviated.

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime};
use chrono::{Offset, TimeZone};

pub(crate) use self::tokens::month_number;
use self::tokens::{number_word, tokenize, valid_day, Cursor, Kind, Tok};
use super::types::Zone;

/// A date with perhaps a time and an offset, as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Written {
    pub date: NaiveDate,
    pub time: Option<NaiveTime>,
    pub offset: Option<FixedOffset>,
}

/// A date found in running text; `year` is `None` for "May 21".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FoundDate {
    pub start: usize,
    pub end: usize,
    pub month: u32,
    pub day: u32,
    pub year: Option<i32>,
}

/// A time of day found in running text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FoundTime {
    /// Byte range of the time expression ("10:40 am", "4 o'clock").
    pub start: usize,
    pub end: usize,
    pub time: NaiveTime,
}

/// Reads one date (and perhaps time and offset) value. The error is a
/// reason for a refused row.
pub(crate) fn parse_datetime(value: &str) -> Result<Written, String> {
    let value = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(Written {
            date: t.date_naive(),
            time: Some(t.time()),
            offset: Some(*t.offset()),
        });
    }
    let toks = tokenize(value);
    let mut p = Cursor { toks: &toks, i: 0 };
    let unrecognised = || {
        format!(
            "{value:?} is not a date this importer reads; write it like 2016-05-21 10:40, \
             21.05.2016 10:40, 21 May 2016 or May 21, 2016 10:40 am"
        )
    };
    let date = match p.date() {
        Some(Ok(date)) => date,
        Some(Err(reason)) => return Err(format!("{value:?}: {reason}")),
        None => return Err(unrecognised()),
    };
    // Separator between date and time.
    if p.word_is("t") || p.word_is("at") || p.punct_is(',') {
        p.i += 1;
    }
    let time = match p.time() {
        Some(Ok(time)) => Some(time),
        Some(Err(reason)) => return Err(format!("{value:?}: {reason}")),
        None => None,
    };
    let offset = if time.is_some() { p.offset() } else { None };
    if p.i != toks.len() {
        return Err(unrecognised());
    }
    Ok(Written { date, time, offset })
}

/// Reads a time of day on its own: `10:40`, `10:40:05`, `10:40 am`, `10 pm`.
pub(crate) fn parse_time(value: &str) -> Result<NaiveTime, String> {
    let toks = tokenize(value);
    let mut p = Cursor { toks: &toks, i: 0 };
    match p.time() {
        Some(Ok(time)) if p.i == toks.len() => Ok(time),
        Some(Err(reason)) => Err(format!("{:?}: {reason}", value.trim())),
        _ => Err(format!(
            "{:?} is not a time of day; write it like 10:40, 22:15 or 10:40 pm",
            value.trim()
        )),
    }
}

/// `+06:00`, `+0600`, `+06`, `-3:30`.
pub(crate) fn parse_offset(value: &str) -> Option<FixedOffset> {
    let toks = tokenize(value);
    let mut p = Cursor { toks: &toks, i: 0 };
    let offset = p.numeric_offset()?;
    (p.i == toks.len()).then_some(offset)
}

/// The instant a written value names. A value without an offset is a local
/// time of `zone`; without a zone it is refused. A date without a time is
/// midnight (the caller marks it approximate).
pub(crate) fn resolve(
    written: &Written,
    zone: Option<&Zone>,
) -> Result<DateTime<FixedOffset>, String> {
    let local = written
        .date
        .and_time(written.time.unwrap_or(NaiveTime::MIN));
    if let Some(offset) = written.offset {
        return single(
            offset.from_local_datetime(&local),
            &local,
            &offset.to_string(),
        );
    }
    let Some(zone) = zone else {
        return Err(format!(
            "naive time {} (no UTC offset); give --timezone, e.g. --timezone Asia/Almaty or --timezone +06:00",
            describe_local(written)
        ));
    };
    at_zone(zone, &local)
}

/// A local time in `zone`, refused when a clock change makes it ambiguous
/// or skips it.
pub(crate) fn at_zone(zone: &Zone, local: &NaiveDateTime) -> Result<DateTime<FixedOffset>, String> {
    match zone {
        Zone::Fixed(offset) => single(
            offset.from_local_datetime(local),
            local,
            &offset.to_string(),
        ),
        Zone::Named(tz) => single(
            tz.from_local_datetime(local).map(|t| t.fixed_offset()),
            local,
            tz.name(),
        ),
    }
}

/// Like [`at_zone`] but never refuses: an ambiguous time takes the earlier
/// offset, a skipped one the offset just before the change; the flag says
/// so (for narrative text, where a guess marked approximate beats nothing).
pub(crate) fn at_zone_lenient(zone: &Zone, local: &NaiveDateTime) -> (DateTime<FixedOffset>, bool) {
    if let Ok(t) = at_zone(zone, local) {
        return (t, false);
    }
    let offset = match zone {
        Zone::Fixed(offset) => *offset,
        Zone::Named(tz) => match tz.from_local_datetime(local) {
            LocalResult::Ambiguous(a, _) => a.offset().fix(),
            _ => tz
                .offset_from_utc_datetime(&(*local - chrono::Duration::days(1)))
                .fix(),
        },
    };
    let utc = *local - chrono::Duration::seconds(i64::from(offset.local_minus_utc()));
    (
        whole_minutes(DateTime::from_naive_utc_and_offset(utc, offset)),
        true,
    )
}

/// The same instant at its offset rounded to whole minutes. Found by
/// fuzzing: an offset with seconds (local mean time before standard zones,
/// such as Almaty's +05:07:48 until 1924) does not survive RFC 3339, which
/// the document stores, so the report read back named another instant.
fn whole_minutes(t: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
    let secs = t.offset().local_minus_utc();
    match FixedOffset::east_opt((secs + 30).div_euclid(60) * 60) {
        Some(offset) if secs % 60 != 0 => t.with_timezone(&offset),
        _ => t,
    }
}

fn single(
    result: LocalResult<DateTime<FixedOffset>>,
    local: &NaiveDateTime,
    zone: &str,
) -> Result<DateTime<FixedOffset>, String> {
    match result {
        LocalResult::Single(t) => Ok(whole_minutes(t)),
        LocalResult::Ambiguous(a, b) => Err(format!(
            "{} happened twice in {zone} (clocks went back): write it with its offset, {} or {}",
            local.format("%Y-%m-%d %H:%M"),
            a.format("%Y-%m-%dT%H:%M%:z"),
            b.format("%Y-%m-%dT%H:%M%:z")
        )),
        LocalResult::None => Err(format!(
            "{} did not exist in {zone} (clocks went forward): check the time, or write it with an offset",
            local.format("%Y-%m-%d %H:%M")
        )),
    }
}

fn describe_local(written: &Written) -> String {
    match written.time {
        Some(t) => format!("{} {}", written.date, t.format("%H:%M")),
        None => written.date.to_string(),
    }
}

/// Dates in running text, in order: `May 21`, `May 21st, 2016`,
/// `21 May 2016`, `14th of July`, `22.05.2016`, `2016-05-22`,
/// `05/21/2016`. Month names must be capitalised ("may" is a verb).
pub(crate) fn find_dates(text: &str) -> Vec<FoundDate> {
    let toks = tokenize(text);
    let mut found = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let mut p = Cursor { toks: &toks, i };
        if let Some((month, day, year)) = p.text_date() {
            if valid_day(year, month, day) {
                found.push(FoundDate {
                    start: toks[i].start,
                    end: toks[p.i - 1].end,
                    month,
                    day,
                    year,
                });
                i = p.i;
                continue;
            }
        }
        i += 1;
    }
    found
}

/// Times of day in running text, in order: `10:40`, `10:40 am`, `11 am`,
/// `10.40 pm`, `4 o'clock` (with "in the morning", "in the evening", "pm"
/// nearby deciding the half of the day; none means morning), `noon`,
/// `midnight`. Durations ("3 hours", "1:30 hours", "for 2:30") are not
/// times.
pub(crate) fn find_times(text: &str) -> Vec<FoundTime> {
    let toks = tokenize(text);
    // The word before each token, found in one pass.
    let mut prev_words = Vec::with_capacity(toks.len());
    let mut last_word = None;
    for t in &toks {
        prev_words.push(last_word);
        if t.kind == Kind::Word {
            last_word = Some(t.text);
        }
    }
    let mut found = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let prev_word = prev_words[i].map(str::to_ascii_lowercase);
        if let Some((time, end)) = time_at(&toks, i, prev_word.as_deref()) {
            found.push(FoundTime {
                start: toks[i].start,
                end: toks[end - 1].end,
                time,
            });
            i = end;
        } else {
            i += 1;
        }
    }
    found
}

/// A time starting at token `i`, and the token after it. `prev_word` is
/// the word before it, in lower case.
fn time_at(toks: &[Tok<'_>], i: usize, prev_word: Option<&str>) -> Option<(NaiveTime, usize)> {
    let t = &toks[i];
    // Part of a larger number or date ("1.10:40", "2016-05-21 10" is fine).
    if i > 0 && !t.space_before && matches!(toks[i - 1].text, ":" | "." | "/" | "-") {
        return None;
    }
    let noon_or_midnight = match t.text.to_lowercase().as_str() {
        _ if t.kind != Kind::Word => None,
        "noon" | "midday" => NaiveTime::from_hms_opt(12, 0, 0),
        "midnight" => Some(NaiveTime::MIN),
        _ => None,
    };
    if let Some(time) = noon_or_midnight {
        let anchored = matches!(
            prev_word,
            Some(
                "at" | "around"
                    | "about"
                    | "after"
                    | "before"
                    | "by"
                    | "until"
                    | "till"
                    | "since"
                    | "from"
                    | "approximately"
                    | "circa"
                    | "near"
                    | "towards"
            )
        );
        return anchored.then_some((time, i + 1));
    }
    let hour_word = number_word(t);
    if t.kind != Kind::Num && hour_word.is_none() {
        return None;
    }
    let mut p = Cursor { toks, i };
    if t.kind == Kind::Num && t.text.len() <= 2 {
        // 10:40[:05] [am], 10.40 am, 11 am
        // p.time() takes H:MM, or H with am/pm: a bare number is no time.
        if let Some(Ok(time)) = p.time() {
            let duration = matches!(
                p.word_lower().as_deref(),
                Some("hours" | "hour" | "hrs" | "hr" | "h" | "minutes" | "minute" | "mins" | "min")
            ) || matches!(prev_word, Some("for" | "lasted" | "took"));
            if !duration {
                return Some((time, p.i));
            }
        }
    }
    // N o'clock
    let hour = hour_word.or_else(|| {
        (t.kind == Kind::Num && t.text.len() <= 2)
            .then(|| t.text.parse().ok())
            .flatten()
    })?;
    if !(1..=12).contains(&hour) {
        return None;
    }
    let mut p = Cursor { toks, i: i + 1 };
    if !(p.word_is("o") && matches!(p.peek_text(1), Some("'" | "’")) && p.word_at_is(2, "clock"))
    {
        return None;
    }
    p.i += 3;
    let context: Vec<String> = toks[i.saturating_sub(8)..(p.i + 8).min(toks.len())]
        .iter()
        .filter(|t| t.kind == Kind::Word)
        .map(|t| t.text.to_lowercase())
        .collect();
    let has = |w: &str| context.iter().any(|c| c == w);
    let pm = has("pm") || has("afternoon") || has("evening") || (has("night") && hour >= 6);
    let am = has("am") || has("morning");
    let hour = match (hour, pm && !am) {
        (12, false) if has("midnight") || has("night") => 0,
        (12, _) => 12,
        (h, true) => h + 12,
        (h, false) => h,
    };
    Some((NaiveTime::from_hms_opt(hour, 0, 0)?, p.i))
}

#[cfg(test)]
mod tests;
mod tokens;
