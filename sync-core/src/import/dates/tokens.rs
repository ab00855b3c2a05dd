//! The small grammar dates are read with: a text as tokens (numbers,
//! words, single punctuation characters), and a cursor that reads day,
//! month and year forms and times of day from them, wherever they appear.

use chrono::{Datelike, FixedOffset, NaiveDate, NaiveTime};

pub(super) fn number_word(t: &Tok<'_>) -> Option<u32> {
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

pub(super) fn valid_day(year: Option<i32>, month: u32, day: u32) -> bool {
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

pub(super) fn is_weekday(word: &str) -> bool {
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

pub(super) struct Cursor<'t, 'a> {
    pub(super) toks: &'t [Tok<'a>],
    pub(super) i: usize,
}

impl<'a> Cursor<'_, 'a> {
    pub(super) fn get(&self, ahead: usize) -> Option<Tok<'a>> {
        self.toks.get(self.i + ahead).copied()
    }

    pub(super) fn peek_text(&self, ahead: usize) -> Option<&'a str> {
        self.get(ahead).map(|t| t.text)
    }

    pub(super) fn word_lower(&self) -> Option<String> {
        self.get(0)
            .filter(|t| t.kind == Kind::Word)
            .map(|t| t.text.to_lowercase())
    }

    pub(super) fn word_at_is(&self, ahead: usize, word: &str) -> bool {
        self.get(ahead)
            .is_some_and(|t| t.kind == Kind::Word && t.text.eq_ignore_ascii_case(word))
    }

    pub(super) fn word_is(&self, word: &str) -> bool {
        self.word_at_is(0, word)
    }

    pub(super) fn punct_is(&self, c: char) -> bool {
        self.get(0)
            .is_some_and(|t| t.kind == Kind::Punct && t.text.starts_with(c))
    }

    /// A number of `min..=max` digits at `ahead`, glued to what precedes it
    /// unless `ahead` is 0.
    pub(super) fn num(&self, ahead: usize, min: usize, max: usize) -> Option<u32> {
        let t = self.get(ahead)?;
        if t.kind != Kind::Num || t.text.len() < min || t.text.len() > max {
            return None;
        }
        if ahead > 0 && t.space_before {
            return None;
        }
        t.text.parse().ok()
    }

    pub(super) fn glued_punct(&self, ahead: usize, c: &str) -> bool {
        self.get(ahead)
            .is_some_and(|t| t.kind == Kind::Punct && t.text == c && !t.space_before)
    }

    /// A date value: `Some(Err)` when the form is recognised but the date
    /// is not real or is ambiguous.
    pub(super) fn date(&mut self) -> Option<Result<NaiveDate, String>> {
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
    pub(super) fn text_date(&mut self) -> Option<(u32, u32, Option<i32>)> {
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

    pub(super) fn numeric_date(&mut self) -> Option<Result<NaiveDate, String>> {
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
    pub(super) fn text_date_any_case(&mut self) -> Option<(u32, u32, Option<i32>)> {
        let start = self.i;
        let result = self.text_date_inner();
        if result.is_none() {
            self.i = start;
        }
        result
    }

    pub(super) fn text_date_inner(&mut self) -> Option<(u32, u32, Option<i32>)> {
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
    pub(super) fn time(&mut self) -> Option<Result<NaiveTime, String>> {
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
    pub(super) fn ampm(&mut self) -> Option<bool> {
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
    pub(super) fn offset(&mut self) -> Option<FixedOffset> {
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

    pub(super) fn numeric_offset(&mut self) -> Option<FixedOffset> {
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

pub(super) fn is_ordinal(t: &Tok<'_>) -> bool {
    t.kind == Kind::Word
        && !t.space_before
        && matches!(
            t.text.to_ascii_lowercase().as_str(),
            "st" | "nd" | "rd" | "th"
        )
}
