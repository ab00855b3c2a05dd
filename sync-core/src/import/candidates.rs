//! What a narrative names that a coordinator may want as fields: people,
//! vehicle plates, the place in the title line. These are guesses, offered
//! for confirmation and never written into a report's people.
//!
//! People: runs of two to four capitalised words ("Aleksey Nigay",
//! "Al’kena Kenjebayeva", "Abay Erekenov’s" → "Abay Erekenov"), not
//! broken by punctuation, without common English words (which also drops
//! sentence starts such as "On Facebook"), without words that name
//! organisations or places ("Trade Unions", "Jetysuyskiy District
//! Department", "Abay Furmanov street"), outside lines written in Title
//! Case (headlines, whose every word is capitalised). A few false
//! candidates remain ("Zaschhitim Kok-Jaylau", a movement's name).
//!
//! Plates: Kazakh plates, an optional `kz`, 3 digits, 2–3 letters,
//! 2 digits (`kz380KP02`, `380 KP 02`); and any run of 6–9 capital
//! letters and digits with at least one letter and two digits.
//!
//! Places: in the title line, the parts of a dateline ("May 21, Almata:
//! …", "Almaty, 21 May 2016 — …") that are not the date, and capitalised
//! words after "in", "at" or "near" ("Arrests in Almaty").

use std::collections::HashSet;

use super::dates;

/// Names of people, deduplicated, in order of first appearance.
pub(crate) fn people(text: &str) -> Vec<String> {
    let mut found = Found::default();
    for line in text.lines() {
        if is_title_case(line) {
            continue;
        }
        let words = words(line);
        let mut run: Vec<&str> = Vec::new();
        for (k, word) in words.iter().enumerate() {
            let (word_text, possessive) = strip_possessive(word.text);
            let joined = k > 0 && line[words[k - 1].end..word.start].chars().all(|c| c == ' ');
            if !joined {
                flush(&mut run, word.text, &mut found);
            }
            if name_like(word_text) {
                run.push(word_text);
                if possessive {
                    flush(&mut run, "", &mut found);
                }
            } else {
                flush(&mut run, word.text, &mut found);
            }
        }
        flush(&mut run, "", &mut found);
    }
    found.list
}

/// Candidates in order of first appearance, each once.
#[derive(Default)]
struct Found {
    list: Vec<String>,
    seen: HashSet<String>,
}

impl Found {
    fn push(&mut self, candidate: &str) {
        if self.seen.insert(candidate.to_owned()) {
            self.list.push(candidate.to_owned());
        }
    }
}

fn flush(run: &mut Vec<&str>, next: &str, found: &mut Found) {
    let words = std::mem::take(run);
    if !(2..=4).contains(&words.len()) {
        return;
    }
    if words
        .iter()
        .any(|w| ORGANISATION_WORDS.contains(&w.to_lowercase().as_str()))
    {
        return;
    }
    if PLACE_NOUNS.contains(&next.to_lowercase().as_str()) {
        return;
    }
    found.push(&words.join(" "));
}

/// Plate numbers, deduplicated, in order of first appearance.
pub(crate) fn plates(text: &str) -> Vec<String> {
    let runs: Vec<(usize, usize)> = alnum_runs(text);
    let mut found = Found::default();
    for (k, &(start, end)) in runs.iter().enumerate() {
        let run = &text[start..end];
        if kazakh_plate(run) || generic_plate(run) {
            found.push(run);
            continue;
        }
        // "380 KP 02"
        if let (Some(&(s2, e2)), Some(&(s3, e3))) = (runs.get(k + 1), runs.get(k + 2)) {
            let (b, c) = (&text[s2..e2], &text[s3..e3]);
            let spaced = &text[end..s2] == " " && &text[e2..s3] == " ";
            if spaced
                && run.len() == 3
                && run.bytes().all(|b| b.is_ascii_digit())
                && (2..=3).contains(&b.len())
                && b.bytes().all(|b| b.is_ascii_uppercase())
                && c.len() == 2
                && c.bytes().all(|b| b.is_ascii_digit())
            {
                found.push(&text[start..e3]);
            }
        }
    }
    found.list
}

fn kazakh_plate(run: &str) -> bool {
    let body = match run.get(..2) {
        Some(p) if p.eq_ignore_ascii_case("kz") => &run[2..],
        _ => run,
    };
    let b = body.as_bytes();
    let letters = b.len().saturating_sub(5);
    (7..=8).contains(&b.len())
        && b[..3].iter().all(u8::is_ascii_digit)
        && b[3..3 + letters].iter().all(u8::is_ascii_alphabetic)
        && b[3 + letters..].iter().all(u8::is_ascii_digit)
}

fn generic_plate(run: &str) -> bool {
    let digits = run.bytes().filter(u8::is_ascii_digit).count();
    let letters = run.bytes().filter(u8::is_ascii_uppercase).count();
    (6..=9).contains(&run.len()) && digits >= 2 && letters >= 1 && digits + letters == run.len()
}

/// Byte ranges of runs of ASCII letters and digits bounded by anything
/// that is not a letter or digit of any script.
fn alnum_runs(text: &str) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start: Option<usize> = None;
    let mut ascii = true;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        if c.is_alphanumeric() {
            start.get_or_insert(i);
            ascii &= c.is_ascii();
        } else if let Some(s) = start.take() {
            if ascii {
                runs.push((s, i));
            }
            ascii = true;
        }
    }
    runs
}

/// Places named in the title line.
pub(crate) fn places(title: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut push = |place: &str| {
        let place = place.trim_matches(|c: char| !c.is_alphanumeric());
        if !place.is_empty() && !found.iter().any(|f| f == place) {
            found.push(place.to_owned());
        }
    };
    let found_dates = dates::find_dates(title);
    // A dateline: "May 21, Almata: …", "Almaty, 21 May 2016 — …".
    let head_end = [":", "|", " — ", " – ", " - "]
        .iter()
        .filter_map(|sep| title.find(sep))
        .min();
    if let Some(head_end) = head_end {
        let has_date = found_dates.iter().any(|d| d.end <= head_end);
        if has_date {
            let mut offset = 0;
            for segment in title[..head_end].split(',') {
                let (seg_start, seg_end) = (offset, offset + segment.len());
                offset = seg_end + 1;
                let dated = found_dates
                    .iter()
                    .any(|d| d.start < seg_end && d.end > seg_start);
                if !dated && capitalised_words(segment, 3) {
                    push(segment);
                }
            }
        }
    }
    // "… in Almaty", "at Republic Square".
    let words = words(title);
    for (k, word) in words.iter().enumerate() {
        if !matches!(word.text.to_lowercase().as_str(), "in" | "at" | "near") {
            continue;
        }
        let mut end = None;
        for w in words[k + 1..].iter().take(3) {
            let joined = title[end.unwrap_or(word.end)..w.start]
                .chars()
                .all(char::is_whitespace);
            if !joined || !name_like_place(w.text) {
                break;
            }
            end = Some(w.end);
        }
        if let (Some(first), Some(end)) = (words.get(k + 1), end) {
            push(&title[first.start..end]);
        }
    }
    found
}

fn capitalised_words(segment: &str, max: usize) -> bool {
    let words: Vec<&str> = segment.split_whitespace().collect();
    !words.is_empty()
        && words.len() <= max
        && words.iter().all(|w| {
            let w = w.trim_matches(|c: char| !c.is_alphanumeric());
            name_like_place(w)
        })
}

fn name_like_place(word: &str) -> bool {
    word.starts_with(char::is_uppercase)
        && !STOP_WORDS.contains(&word.to_lowercase().as_str())
        && dates::month_number(word).is_none()
}

/// A capitalised word that is not a common word: "Nigay", "Al’kena".
fn name_like(word: &str) -> bool {
    let mut chars = word.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    first.is_uppercase()
        && word.chars().count() >= 2
        && word.chars().any(char::is_lowercase)
        && !STOP_WORDS.contains(&word.to_lowercase().as_str())
}

fn strip_possessive(word: &str) -> (&str, bool) {
    for suffix in ["’s", "'s", "’S", "'S"] {
        if let Some(stem) = word.strip_suffix(suffix) {
            return (stem, true);
        }
    }
    (word, false)
}

/// A headline: at least three words of four letters or more that are not
/// function words, and all of those capitalised.
fn is_title_case(line: &str) -> bool {
    let mut content = 0;
    for word in words(line) {
        let w = word.text;
        if w.chars().count() < 4 || FUNCTION_WORDS.contains(&w.to_lowercase().as_str()) {
            continue;
        }
        if !w.starts_with(char::is_uppercase) {
            return false;
        }
        content += 1;
    }
    content >= 3
}

struct Word<'a> {
    text: &'a str,
    start: usize,
    end: usize,
}

/// Words: letters, with an apostrophe or hyphen inside ("Al’kena",
/// "Kok-Jaylau", "Erekenov’s").
fn words(line: &str) -> Vec<Word<'_>> {
    let mut words = Vec::new();
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut k = 0;
    while k < chars.len() {
        if !chars[k].1.is_alphabetic() {
            k += 1;
            continue;
        }
        let start = chars[k].0;
        let mut j = k + 1;
        while j < chars.len() {
            let c = chars[j].1;
            let inner = matches!(c, '\'' | '’' | '-')
                && chars.get(j + 1).is_some_and(|(_, n)| n.is_alphabetic());
            if c.is_alphabetic() || inner {
                j += 1;
            } else {
                break;
            }
        }
        let end = chars.get(j).map_or(line.len(), |(i, _)| *i);
        words.push(Word {
            text: &line[start..end],
            start,
            end,
        });
        k = j;
    }
    words
}

/// Short words a headline leaves in lower case.
const FUNCTION_WORDS: &[&str] = &[
    "against", "about", "after", "before", "from", "into", "onto", "over", "under", "with",
    "without", "upon", "during", "since", "until", "between", "among", "through", "across",
    "toward", "towards", "near", "within", "that",
];

/// Common words that are not names (compared in lower case).
const STOP_WORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "and",
    "or",
    "but",
    "nor",
    "so",
    "yet",
    "if",
    "then",
    "than",
    "that",
    "this",
    "these",
    "those",
    "there",
    "here",
    "where",
    "when",
    "while",
    "who",
    "whom",
    "whose",
    "which",
    "what",
    "why",
    "how",
    "of",
    "at",
    "in",
    "on",
    "to",
    "for",
    "from",
    "by",
    "with",
    "without",
    "into",
    "onto",
    "upon",
    "over",
    "under",
    "after",
    "before",
    "during",
    "since",
    "until",
    "till",
    "as",
    "about",
    "around",
    "against",
    "among",
    "between",
    "through",
    "across",
    "toward",
    "towards",
    "near",
    "within",
    "along",
    "behind",
    "beyond",
    "despite",
    "via",
    "per",
    "above",
    "below",
    "out",
    "up",
    "down",
    "off",
    "not",
    "no",
    "yes",
    "all",
    "any",
    "some",
    "every",
    "each",
    "many",
    "much",
    "more",
    "most",
    "other",
    "another",
    "such",
    "only",
    "also",
    "just",
    "even",
    "still",
    "again",
    "our",
    "your",
    "their",
    "his",
    "her",
    "its",
    "my",
    "we",
    "you",
    "they",
    "he",
    "she",
    "it",
    "i",
    "me",
    "him",
    "them",
    "us",
    "one",
    "two",
    "three",
    "first",
    "last",
    "new",
    "old",
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "sir",
    "do",
    "does",
    "did",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "have",
    "has",
    "had",
    "will",
    "would",
    "shall",
    "should",
    "can",
    "could",
    "may",
    "might",
    "must",
    "let",
    "please",
    "thanks",
    "dear",
    "today",
    "yesterday",
    "tomorrow",
    "morning",
    "evening",
    "night",
    "afternoon",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "moreover",
    "however",
    "furthermore",
    "therefore",
    "meanwhile",
    "later",
    "according",
    "apart",
    "almost",
    "although",
    "though",
    "because",
    "whether",
    "finally",
    "now",
    "never",
    "always",
    "both",
    "either",
    "neither",
    "several",
    "nobody",
    "someone",
    "everyone",
    "something",
    "nothing",
    "like",
    "update",
    "posted",
    "published",
    "translated",
    "source",
    "photo",
    "read",
    "click",
    "share",
    "reply",
    "comment",
    "leave",
    "pingback",
    "responses",
    "bookmark",
    "entry",
    "only",
    "thank",
    "hello",
    "once",
];

/// Words that make a run of capitalised words an organisation or a place.
const ORGANISATION_WORDS: &[&str] = &[
    "party",
    "union",
    "unions",
    "association",
    "department",
    "district",
    "ministry",
    "committee",
    "council",
    "court",
    "police",
    "office",
    "movement",
    "unit",
    "square",
    "street",
    "avenue",
    "road",
    "lane",
    "prospect",
    "prospekt",
    "boulevard",
    "library",
    "university",
    "school",
    "college",
    "channel",
    "kanal",
    "republic",
    "church",
    "mosque",
    "bank",
    "company",
    "agency",
    "service",
    "services",
    "force",
    "forces",
    "army",
    "government",
    "parliament",
    "centre",
    "center",
    "hospital",
    "station",
    "airport",
    "park",
    "river",
    "lake",
    "mountain",
    "mountains",
    "city",
    "region",
    "province",
    "state",
    "kingdom",
    "federation",
    "news",
    "times",
    "post",
    "radio",
    "television",
    "foundation",
    "institute",
    "group",
    "network",
    "facebook",
    "twitter",
    "telegram",
    "youtube",
    "instagram",
    "whatsapp",
    "international",
    "national",
    "united",
    "nations",
    "people",
    "communist",
    "socialist",
    "democratic",
    "interior",
    "affairs",
    "security",
    "special",
    "media",
    "press",
    "newspaper",
    "human",
    "rights",
];

/// Words after a run of capitalised words that make it a place name.
const PLACE_NOUNS: &[&str] = &[
    "street",
    "st",
    "avenue",
    "ave",
    "road",
    "square",
    "district",
    "region",
    "city",
    "town",
    "village",
    "river",
    "lake",
    "park",
    "prospekt",
    "boulevard",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_people_are_offered_and_headlines_organisations_and_streets_are_not() {
        let text = "May 21, Almata: Mass Arrests at a Rally against the Sale of Land\n\
            The activist Andrey Buzykin and his comrade’s, Abay Erekenov’s, flat. \
            Al’kena Kenjebayeva of the Communist People’s Party of Kazakhstan and the \
            Association of Trade Unions. Held at the Jetysuyskiy District Department. \
            Someone’s shoe lay on Abay Furmanov street. On Facebook, Log Out. \
            Their names are Maksat Shakyrbayev, and Tulegen Shakirov. Tulegen Shakirov again.";
        assert_eq!(
            people(text),
            [
                "Andrey Buzykin",
                "Abay Erekenov",
                "Al’kena Kenjebayeva",
                "Maksat Shakyrbayev",
                "Tulegen Shakirov"
            ]
        );
    }

    #[test]
    fn plates_are_offered_and_words_with_digits_are_not() {
        let text = "the car is kz380KP02.kazakhstan land reforms 1During; another 123 ABC 02, \
                    then 777AB01 and B-MW 12, the COVID19 word, 2016-05-21, 10:40, 150 dollars.";
        assert_eq!(
            plates(text),
            ["kz380KP02", "123 ABC 02", "777AB01", "COVID19"]
        );
    }

    #[test]
    fn places_come_from_the_dateline_and_after_in_or_at() {
        assert_eq!(
            places("May 21, Almata: Mass Arrests at a Rally against the Sale of Land"),
            ["Almata"]
        );
        assert_eq!(
            places("Almaty, 21 May 2016 — arrests at Republic Square"),
            ["Almaty", "Republic Square"]
        );
        assert_eq!(places("Police: arrests in Shymkent on May 1"), ["Shymkent"]);
        assert!(places("Nothing here").is_empty());
    }
}
