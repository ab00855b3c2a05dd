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
