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

use chrono::{DateTime, Datelike, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime};
use chrono::{Offset, TimeZone};

use super::Zone;

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

fn number_word(t: &Tok<'_>) -> Option<u32> {
    if t.kind != Kind::Word {
        return None;
    }
    const WORDS: [&str; 12] = [
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve",
    ];
    let lower = t.text.to_lowercase();
    WORDS.iter().position(|w| *w == lower).map(|i| i as u32 + 1)
}

fn valid_day(year: Option<i32>, month: u32, day: u32) -> bool {
    // Without a year, 29 February is possible.
    NaiveDate::from_ymd_opt(year.unwrap_or(2000), month, day).is_some()
}

/// The month a name stands for: English, full or abbreviated, any case.
pub(crate) fn month_number(word: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let lower = word.to_lowercase();
    if lower.len() < 3 {
        return None;
    }
    if lower == "sept" {
        return Some(9);
    }
    MONTHS
        .iter()
        .position(|m| *m == lower || (lower.len() == 3 && m.starts_with(&lower)))
        .map(|i| i as u32 + 1)
}

fn is_weekday(word: &str) -> bool {
    const DAYS: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let lower = word.to_lowercase();
    DAYS.iter()
        .any(|d| *d == lower || (lower.len() == 3 && d.starts_with(&lower)))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Num,
    Word,
    Punct,
}

/// A number (ASCII digits), a word (letters) or one other character.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tok<'a> {
    pub kind: Kind,
    pub text: &'a str,
    pub start: usize,
    pub end: usize,
    pub space_before: bool,
}

pub(crate) fn tokenize(s: &str) -> Vec<Tok<'_>> {
    let mut toks = Vec::new();
    let mut chars = s.char_indices().peekable();
    let mut space_before = false;
    while let Some((start, c)) = chars.next() {
        if c.is_whitespace() {
            space_before = true;
            continue;
        }
        let kind = if c.is_ascii_digit() {
            Kind::Num
        } else if c.is_alphabetic() {
            Kind::Word
        } else {
            Kind::Punct
        };
        let mut end = start + c.len_utf8();
        if kind != Kind::Punct {
            while let Some(&(i, next)) = chars.peek() {
                let same = match kind {
                    Kind::Num => next.is_ascii_digit(),
                    _ => next.is_alphabetic(),
                };
                if !same {
                    break;
                }
                end = i + next.len_utf8();
                chars.next();
            }
        }
        toks.push(Tok {
            kind,
            text: &s[start..end],
            start,
            end,
            space_before,
        });
        space_before = false;
    }
    toks
}

struct Cursor<'t, 'a> {
    toks: &'t [Tok<'a>],
    i: usize,
}

impl<'a> Cursor<'_, 'a> {
    fn get(&self, ahead: usize) -> Option<Tok<'a>> {
        self.toks.get(self.i + ahead).copied()
    }

    fn peek_text(&self, ahead: usize) -> Option<&'a str> {
        self.get(ahead).map(|t| t.text)
    }

    fn word_lower(&self) -> Option<String> {
        self.get(0)
            .filter(|t| t.kind == Kind::Word)
            .map(|t| t.text.to_lowercase())
    }

    fn word_at_is(&self, ahead: usize, word: &str) -> bool {
        self.get(ahead)
            .is_some_and(|t| t.kind == Kind::Word && t.text.eq_ignore_ascii_case(word))
    }

    fn word_is(&self, word: &str) -> bool {
        self.word_at_is(0, word)
    }

    fn punct_is(&self, c: char) -> bool {
        self.get(0)
            .is_some_and(|t| t.kind == Kind::Punct && t.text.starts_with(c))
    }

    /// A number of `min..=max` digits at `ahead`, glued to what precedes it
    /// unless `ahead` is 0.
    fn num(&self, ahead: usize, min: usize, max: usize) -> Option<u32> {
        let t = self.get(ahead)?;
        if t.kind != Kind::Num || t.text.len() < min || t.text.len() > max {
            return None;
        }
        if ahead > 0 && t.space_before {
            return None;
        }
        t.text.parse().ok()
    }

    fn glued_punct(&self, ahead: usize, c: &str) -> bool {
        self.get(ahead)
            .is_some_and(|t| t.kind == Kind::Punct && t.text == c && !t.space_before)
    }

    /// A date value: `Some(Err)` when the form is recognised but the date
    /// is not real or is ambiguous.
    fn date(&mut self) -> Option<Result<NaiveDate, String>> {
        // A weekday first: "Saturday, May 21, 2016".
        if self
            .get(0)
            .is_some_and(|t| t.kind == Kind::Word && is_weekday(t.text))
        {
            self.i += 1;
            if self.punct_is(',') {
                self.i += 1;
            }
        }
        let ymd = |y: u32, m: u32, d: u32| {
            NaiveDate::from_ymd_opt(y as i32, m, d)
                .ok_or_else(|| format!("day {d} of month {m} of {y} is not a date"))
        };
        // 2016-05-21, 2016/05/21
        if let Some(y) = self.num(0, 4, 4) {
            for sep in ["-", "/"] {
                if self.glued_punct(1, sep) && self.glued_punct(3, sep) {
                    if let (Some(m), Some(d)) = (self.num(2, 1, 2), self.num(4, 1, 2)) {
                        self.i += 5;
                        return Some(ymd(y, m, d));
                    }
                }
            }
            return None;
        }
        if let Some(a) = self.num(0, 1, 2) {
            // 21.05.2016
            if self.glued_punct(1, ".") && self.glued_punct(3, ".") {
                if let (Some(m), Some(y)) = (self.num(2, 1, 2), self.num(4, 4, 4)) {
                    self.i += 5;
                    return Some(ymd(y, m, a));
                }
            }
            // 05/21/2016, month first
            if self.glued_punct(1, "/") && self.glued_punct(3, "/") {
                if let (Some(b), Some(y)) = (self.num(2, 1, 2), self.num(4, 4, 4)) {
                    self.i += 5;
                    if a > 12 {
                        return Some(Err(format!(
                            "{a} comes before the first slash, but slash dates are read month first \
                             (05/21/2016); write the date as 2016-05-21 or 21.05.2016"
                        )));
                    }
                    return Some(ymd(y, a, b));
                }
            }
        }
        let (month, day, year) = self.text_date_any_case()?;
        let Some(year) = year else {
            return Some(Err("the date has no year; write the year in full".into()));
        };
        Some(ymd(year as u32, month, day))
    }

    /// `21 May 2016`, `21st of May`, `May 21, 2016`, `May 21st`, and the
    /// numeric forms, for running text: month names capitalised.
    fn text_date(&mut self) -> Option<(u32, u32, Option<i32>)> {
        let start = self.i;
        if let Some(Ok(date)) = self.numeric_date() {
            return Some((date.month(), date.day(), Some(date.year())));
        }
        self.i = start;
        let t = self.get(0)?;
        if t.kind == Kind::Word && !t.text.starts_with(char::is_uppercase) {
            return None;
        }
        if t.kind == Kind::Num {
            // "21 may" in lower case is not taken either.
            let month_tok = if self.word_at_is(1, "of") {
                self.get(2)
            } else {
                let mut k = 1;
                if self.get(1).is_some_and(|t| is_ordinal(&t)) {
                    k = 2;
                }
                if self.word_at_is(k, "of") {
                    k += 1;
                }
                self.get(k)
            };
            if !month_tok.is_some_and(|t| t.text.starts_with(char::is_uppercase)) {
                return None;
            }
        }
        let r = self.text_date_any_case();
        if r.is_none() {
            self.i = start;
        }
        r
    }

    fn numeric_date(&mut self) -> Option<Result<NaiveDate, String>> {
        let t = self.get(0)?;
        if t.kind != Kind::Num {
            return None;
        }
        let start = self.i;
        let r = self.date();
        if r.is_none() {
            self.i = start;
        }
        r
    }

    /// Day-month or month-day with a month name, year optional.
    fn text_date_any_case(&mut self) -> Option<(u32, u32, Option<i32>)> {
        let start = self.i;
        let result = self.text_date_inner();
        if result.is_none() {
            self.i = start;
        }
        result
    }

    fn text_date_inner(&mut self) -> Option<(u32, u32, Option<i32>)> {
        let t = self.get(0)?;
        let (month, day);
        if t.kind == Kind::Num {
            // 21 May, 21st May, 21st of May
            day = self.num(0, 1, 2)?;
            self.i += 1;
            if self.get(0).is_some_and(|t| is_ordinal(&t)) {
                self.i += 1;
            }
            if self.word_is("of") {
                self.i += 1;
            }
            month = month_number(self.get(0).filter(|t| t.kind == Kind::Word)?.text)?;
            self.i += 1;
            if self.glued_punct(0, ".") {
                self.i += 1;
            }
        } else if t.kind == Kind::Word {
            // May 21, May 21st
            month = month_number(t.text)?;
            self.i += 1;
            if self.glued_punct(0, ".") {
                self.i += 1;
            }
            let d = self
                .get(0)
                .filter(|t| t.kind == Kind::Num && t.text.len() <= 2)?;
            day = d.text.parse().ok()?;
            self.i += 1;
            if self.get(0).is_some_and(|t| is_ordinal(&t)) {
                self.i += 1;
            }
        } else {
            return None;
        }
        if !(1..=31).contains(&day) {
            return None;
        }
        // Optional year: ", 2016" or " 2016".
        let before_year = self.i;
        if self.punct_is(',') {
            self.i += 1;
        }
        let year = match self.get(0) {
            Some(y) if y.kind == Kind::Num && y.text.len() == 4 => {
                // "May 21, 2016" but not "May 21, 2016:30" nonsense.
                self.i += 1;
                y.text.parse().ok()
            }
            _ => {
                self.i = before_year;
                None
            }
        };
        Some((month, day, year))
    }

    /// A time: `10:40`, `10:40:05[.123]`, with optional am/pm; `10.40 pm`;
    /// `10 pm`. `Some(Err)` for a recognised form out of range.
    fn time(&mut self) -> Option<Result<NaiveTime, String>> {
        let start = self.i;
        let hour = self.num(0, 1, 2)?;
        let (mut minute, mut second) = (0, 0);
        let mut had_minutes = false;
        if self.glued_punct(1, ":") {
            minute = self.num(2, 2, 2)?;
            self.i += 3;
            had_minutes = true;
            if self.glued_punct(0, ":") {
                second = self.num(1, 2, 2)?;
                self.i += 2;
                // fractions of a second are dropped
                if self.glued_punct(0, ".") && self.num(1, 1, 9).is_some() {
                    self.i += 2;
                }
            }
        } else if self.glued_punct(1, ".") && self.num(2, 2, 2).is_some() {
            // 10.40 pm: only with am/pm after it
            let mut q = Cursor {
                toks: self.toks,
                i: self.i + 3,
            };
            q.ampm()?;
            minute = self.num(2, 2, 2)?;
            self.i += 3;
            had_minutes = true;
        } else {
            self.i += 1;
        }
        let pm = self.ampm();
        if !had_minutes && pm.is_none() {
            self.i = start;
            return None;
        }
        let hour = match pm {
            Some(_) if !(1..=12).contains(&hour) => {
                return Some(Err(format!("{hour} is not an hour of a 12-hour clock")))
            }
            Some(true) => hour % 12 + 12,
            Some(false) => hour % 12,
            None => hour,
        };
        Some(
            NaiveTime::from_hms_opt(hour, minute, second)
                .ok_or_else(|| format!("{hour:02}:{minute:02} is not a time of day")),
        )
    }

    /// `am`, `pm`, `a.m.`, `p.m.`; `Some(true)` for pm.
    fn ampm(&mut self) -> Option<bool> {
        let t = self.get(0).filter(|t| t.kind == Kind::Word)?;
        let lower = t.text.to_ascii_lowercase();
        match lower.as_str() {
            "am" | "pm" => {
                self.i += 1;
                Some(lower == "pm")
            }
            "a" | "p" if self.glued_punct(1, ".") && self.word_at_is(2, "m") => {
                self.i += 3;
                if self.glued_punct(0, ".") {
                    self.i += 1;
                }
                Some(lower == "p")
            }
            _ => None,
        }
    }

    /// `Z`, `UTC`, `GMT`, each perhaps followed by a numeric offset, or a
    /// numeric offset alone.
    fn offset(&mut self) -> Option<FixedOffset> {
        if self.word_is("z") {
            self.i += 1;
            return FixedOffset::east_opt(0);
        }
        if self.word_is("utc") || self.word_is("gmt") {
            self.i += 1;
            if let Some(offset) = self.numeric_offset() {
                return Some(offset);
            }
            return FixedOffset::east_opt(0);
        }
        self.numeric_offset()
    }

    fn numeric_offset(&mut self) -> Option<FixedOffset> {
        let sign = match self.peek_text(0)? {
            "+" => 1,
            "-" | "−" => -1,
            _ => return None,
        };
        let digits = self
            .get(1)
            .filter(|t| t.kind == Kind::Num && !t.space_before)?;
        let (hours, mut minutes, mut used) = match digits.text.len() {
            1 | 2 => (digits.text.parse::<i32>().ok()?, 0, 2),
            4 => (
                digits.text[..2].parse::<i32>().ok()?,
                digits.text[2..].parse::<i32>().ok()?,
                2,
            ),
            _ => return None,
        };
        if digits.text.len() <= 2 && self.glued_punct(2, ":") {
            minutes = self.num(3, 2, 2)? as i32;
            used = 4;
        }
        if hours > 18 || minutes > 59 {
            return None;
        }
        self.i += used;
        FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
    }
}

fn is_ordinal(t: &Tok<'_>) -> bool {
    t.kind == Kind::Word
        && !t.space_before
        && matches!(
            t.text.to_ascii_lowercase().as_str(),
            "st" | "nd" | "rd" | "th"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(s: &str) -> (String, Option<String>, Option<String>) {
        let w = parse_datetime(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        (
            w.date.to_string(),
            w.time.map(|t| t.format("%H:%M:%S").to_string()),
            w.offset.map(|o| o.to_string()),
        )
    }

    fn date_time(d: &str, t: &str) -> (String, Option<String>, Option<String>) {
        (d.into(), Some(t.into()), None)
    }

    #[test]
    fn every_documented_value_form_reads() {
        let d = |s: &str| (s.to_string(), None, None);
        assert_eq!(
            written("2016-05-21T10:40:00+06:00"),
            (
                "2016-05-21".into(),
                Some("10:40:00".into()),
                Some("+06:00".into())
            )
        );
        assert_eq!(
            written("2016-05-21T04:40:12.345Z"),
            (
                "2016-05-21".into(),
                Some("04:40:12".into()),
                Some("+00:00".into())
            )
        );
        assert_eq!(
            written("2016-05-21 10:40"),
            date_time("2016-05-21", "10:40:00")
        );
        assert_eq!(
            written("2016-05-21T10:40:05"),
            date_time("2016-05-21", "10:40:05")
        );
        assert_eq!(
            written("2016-05-21 10:40 +0600"),
            (
                "2016-05-21".into(),
                Some("10:40:00".into()),
                Some("+06:00".into())
            )
        );
        assert_eq!(
            written("2016-05-21 10:40 UTC"),
            (
                "2016-05-21".into(),
                Some("10:40:00".into()),
                Some("+00:00".into())
            )
        );
        assert_eq!(written("2016-05-21"), d("2016-05-21"));
        assert_eq!(written("2016/05/21"), d("2016-05-21"));
        assert_eq!(written("22.05.2016"), d("2016-05-22"));
        assert_eq!(
            written("22.05.2016 10:40"),
            date_time("2016-05-22", "10:40:00")
        );
        assert_eq!(
            written("05/21/2016 10:40"),
            date_time("2016-05-21", "10:40:00")
        );
        assert_eq!(
            written("5/21/2016 1:05 pm"),
            date_time("2016-05-21", "13:05:00")
        );
        assert_eq!(written("21 May 2016"), d("2016-05-21"));
        assert_eq!(written("21st of May, 2016"), d("2016-05-21"));
        assert_eq!(written("May 21, 2016"), d("2016-05-21"));
        assert_eq!(written("Sept. 3 2016"), d("2016-09-03"));
        assert_eq!(
            written("Saturday, May 21, 2016 10:40 am"),
            date_time("2016-05-21", "10:40:00")
        );
        assert_eq!(
            written("21 May 2016 at 10:40 a.m."),
            date_time("2016-05-21", "10:40:00")
        );
        assert_eq!(
            written("May 21, 2016, 12 am"),
            date_time("2016-05-21", "00:00:00")
        );
        assert_eq!(
            written("21 May 2016 10.40 pm"),
            date_time("2016-05-21", "22:40:00")
        );
        assert_eq!(
            written("21 MAY 2016 12:15 PM"),
            date_time("2016-05-21", "12:15:00")
        );
    }

    #[test]
    fn values_that_are_not_dates_say_what_would_be() {
        for bad in [
            "yesterday",
            "21/05/16",
            "2016-13-01",
            "31.02.2016",
            "May 21",
            "10:40",
            "21.05.2016 25:00",
            "2016-05-21 10:40 nonsense",
            "13 pm 2016",
        ] {
            let err = parse_datetime(bad).unwrap_err();
            assert!(err.contains(bad.trim()), "{bad}: {err}");
        }
        assert!(parse_datetime("31.02.2016")
            .unwrap_err()
            .contains("not a date"));
        assert!(parse_datetime("May 21").unwrap_err().contains("no year"));
        let slash = parse_datetime("21/05/2016").unwrap_err();
        assert!(slash.contains("month first"), "{slash}");
    }

    #[test]
    fn times_alone_and_offsets_read() {
        let t = |s: &str| parse_time(s).map(|t| t.format("%H:%M:%S").to_string());
        assert_eq!(t("10:40").unwrap(), "10:40:00");
        assert_eq!(t(" 10:40 pm ").unwrap(), "22:40:00");
        assert_eq!(t("12 pm").unwrap(), "12:00:00");
        assert_eq!(t("9:05:30").unwrap(), "09:05:30");
        assert!(t("25:00").unwrap_err().contains("not a time"));
        assert!(t("soon").is_err());
        assert!(t("10").is_err());
        assert_eq!(parse_offset("+06:00"), FixedOffset::east_opt(6 * 3600));
        assert_eq!(
            parse_offset("-0330"),
            FixedOffset::east_opt(-(3 * 3600 + 1800))
        );
        assert_eq!(parse_offset("+6"), FixedOffset::east_opt(6 * 3600));
        assert_eq!(parse_offset("+25:00"), None);
        assert_eq!(parse_offset("+06:00x"), None);
    }

    #[test]
    fn a_naive_time_needs_a_zone_and_almaty_was_utc_plus_6_in_2016() {
        let w = parse_datetime("21.05.2016 10:40").unwrap();
        let err = resolve(&w, None).unwrap_err();
        assert!(
            err.starts_with("naive time") && err.contains("give --timezone"),
            "{err}"
        );
        let almaty: Zone = "Asia/Almaty".parse().unwrap();
        assert_eq!(
            resolve(&w, Some(&almaty)).unwrap().to_rfc3339(),
            "2016-05-21T10:40:00+06:00"
        );
        let fixed: Zone = "+05:00".parse().unwrap();
        assert_eq!(
            resolve(&w, Some(&fixed)).unwrap().to_rfc3339(),
            "2016-05-21T10:40:00+05:00"
        );
        // An explicit offset wins over the zone.
        let w = parse_datetime("2016-05-21T10:40:00Z").unwrap();
        assert_eq!(
            resolve(&w, Some(&almaty)).unwrap().to_rfc3339(),
            "2016-05-21T10:40:00+00:00"
        );
    }

    #[test]
    fn clock_changes_are_refused_for_values_and_guessed_for_text() {
        let berlin: Zone = "Europe/Berlin".parse().unwrap();
        let twice = parse_datetime("2016-10-30 02:30").unwrap();
        let err = resolve(&twice, Some(&berlin)).unwrap_err();
        assert!(
            err.contains("twice") && err.contains("+02:00") && err.contains("+01:00"),
            "{err}"
        );
        let never = parse_datetime("2016-03-27 02:30").unwrap();
        let err = resolve(&never, Some(&berlin)).unwrap_err();
        assert!(err.contains("did not exist"), "{err}");
        let local = never.date.and_time(never.time.unwrap());
        let (t, guessed) = at_zone_lenient(&berlin, &local);
        assert!(guessed);
        assert_eq!(t.offset().local_minus_utc(), 3600);
        let (t, guessed) = at_zone_lenient(&berlin, &twice.date.and_time(twice.time.unwrap()));
        assert!(guessed);
        assert_eq!(t.offset().local_minus_utc(), 7200);
    }

    fn dates_in(text: &str) -> Vec<(u32, u32, Option<i32>, &str)> {
        find_dates(text)
            .into_iter()
            .map(|d| (d.month, d.day, d.year, &text[d.start..d.end]))
            .collect()
    }

    #[test]
    fn dates_in_running_text_are_found_with_or_without_a_year() {
        assert_eq!(
            dates_in("May 21, Almata: arrests. On 22.05.2016 and on 14th of July, then December 16, 1986 and 21 May 2016."),
            vec![
                (5, 21, None, "May 21"),
                (5, 22, Some(2016), "22.05.2016"),
                (7, 14, None, "14th of July"),
                (12, 16, Some(1986), "December 16, 1986"),
                (5, 21, Some(2016), "21 May 2016"),
            ]
        );
        // "may" the verb, "March" without a day, numbers that are not days.
        assert!(dates_in("You may 2 times. In March we went. 45 May").is_empty());
        assert_eq!(
            dates_in("on 2016-05-21, 05/21/2016"),
            vec![
                (5, 21, Some(2016), "2016-05-21"),
                (5, 21, Some(2016), "05/21/2016")
            ]
        );
        assert_eq!(dates_in("February 30"), vec![]);
    }

    fn times_in(text: &str) -> Vec<(String, &str)> {
        find_times(text)
            .into_iter()
            .map(|t| (t.time.format("%H:%M").to_string(), &text[t.start..t.end]))
            .collect()
    }

    #[test]
    fn times_of_day_in_running_text_are_found_and_durations_are_not() {
        let t = |s: &str| times_in(s).into_iter().map(|(t, _)| t).collect::<Vec<_>>();
        assert_eq!(
            times_in("arrested at around 10:40 am."),
            vec![("10:40".into(), "10:40 am")]
        );
        assert_eq!(t("At 11 am, people assembled"), ["11:00"]);
        assert_eq!(t("After 1:00 pm Alexey was released"), ["13:00"]);
        assert_eq!(t("at 4 o'clock in the morning"), ["04:00"]);
        assert_eq!(t("At 6 o’clock they left"), ["06:00"]);
        assert_eq!(t("At 6 o'clock in the evening"), ["18:00"]);
        assert_eq!(t("in the evening, at six o'clock"), ["18:00"]);
        assert_eq!(t("at 10:40 a.m. the police came"), ["10:40"]);
        assert_eq!(t("by 22:15 all were free"), ["22:15"]);
        assert_eq!(t("at 9.30 pm"), ["21:30"]);
        assert_eq!(t("at noon and after midnight"), ["12:00", "00:00"]);
        assert_eq!(t("around 11am"), ["11:00"]);
        for duration in [
            "held for more than 4 hours",
            "for just over an hour",
            "lasted about 15 minutes",
            "For more than 3 hours they closed",
            "it took 1:30 hours",
            "held for 2:30",
            "a radius of around one kilometer",
            "December 16, 1986",
            "10-15 buses, 53 detained, 150 dollars",
            "the noon prayer",
        ] {
            assert!(t(duration).is_empty(), "{duration}: {:?}", t(duration));
        }
    }
}
