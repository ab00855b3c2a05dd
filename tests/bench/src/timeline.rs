//! Benchmarks 5 and 6: the case timeline of a large case through a real
//! `fieldsync serve` over loopback (latency of the first page and of
//! filtered pages), and the server's memory and start time with many
//! stored reports.
//!
//! The reports are generated straight into the server store with
//! `Store::import_generated_reports` (the rows a sync round would write,
//! made and signed with the core) before the server starts: a device could
//! not sync a million reports in the time a benchmark has. Generation is
//! timed and printed as a row of its own, and nothing is kept between runs.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use chrono::{DateTime, FixedOffset};
use fieldsync_core::model::{DeviceRole, Place};
use fieldsync_core::request_auth::RequestAuth;
use fieldsync_core::{CaseId, DeviceKey, NewReport, ReportId};
use fieldsync_server::store::TimelineQuery;
use fieldsync_server::Store;
use fieldsync_tests::ServerProcess;

use crate::measure::{self, mib};
use crate::table::Table;

/// Requests per measured query.
const REQUESTS: usize = 200;
/// Devices the generated reports are spread over.
const REPORTERS: usize = 20;
/// Reports per transaction while generating: ids are random, so each
/// commit rewrites index pages all over the file, fewer commits fewer times.
const BATCH: usize = 50_000;
/// One report every five minutes: a week holds about 2,000 whatever the size.
const MINUTES_APART: u64 = 5;
/// Tags every report carries one of (10% each).
const COMMON_TAGS: [&str; 10] = [
    "arrest",
    "detention",
    "rally",
    "search",
    "fine",
    "court",
    "release",
    "assault",
    "confiscation",
    "summons",
];
/// A tag one report in a hundred carries.
const RARE_TAG: &str = "hospital";
const RARE_EVERY: usize = 100;

/// Benchmark 5: first page and filtered pages of a case of `reports`.
pub fn queries(table: &mut Table, reports: usize) -> Result<()> {
    let section = format!("timeline {reports} reports");
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let case = generate(&data, reports)?;
    generated_row(table, &section, &case, &data)?;

    let server = ServerProcess::start(&data, "127.0.0.1:0");
    let queries = http_queries(table, &section, &server.url, &case, "")?;
    drop(server);

    // The same queries in this process, store only: what HTTP, the request
    // signature and the nonce's commit add is the difference.
    let store = Store::open(&data)?;
    let mut parts = Vec::new();
    for (short, _, query) in &queries {
        let parsed = parse_query(query)?;
        let mut times = Vec::with_capacity(REQUESTS);
        for _ in 0..REQUESTS {
            let started = Instant::now();
            store.timeline(&case.id, &parsed)?;
            times.push(started.elapsed());
        }
        times.sort();
        parts.push(format!("{short} {}", ms(times[times.len() / 2])));
    }
    table.row(
        &section,
        "same queries, Store::timeline in-process (median)",
        parts.join(", "),
    );
    Ok(())
}

/// Benchmark 6: the server's memory and start time with `reports` stored.
pub fn scale(table: &mut Table, reports: usize) -> Result<()> {
    let section = format!("scale {reports} reports");
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let case = generate(&data, reports)?;
    generated_row(table, &section, &case, &data)?;

    let started = Instant::now();
    let mut server = ServerProcess::start(&data, "127.0.0.1:0");
    let banner = started.elapsed();
    let client = Client::new(&server.url, &case.coordinator);
    client.healthz()?;
    let answered = started.elapsed();
    let pid = server.child.id();
    table.row(
        &section,
        "start: spawn to first /healthz answer",
        format!("{} (listening banner at {})", ms(answered), ms(banner)),
    );
    let rss_started = measure::rss_of(pid)?;
    let first = Instant::now();
    let page = client.timeline("")?;
    let first = first.elapsed();
    check_page(&page, "", full_page(reports, ""))?;
    let rss_page = measure::rss_of(pid)?;
    let tag = Instant::now();
    let page = client.timeline(&format!("tag={RARE_TAG}"))?;
    let tag = tag.elapsed();
    check_page(&page, "tag", full_page(reports, "tag"))?;
    table.row(
        &section,
        "first timeline page, then a tag-filtered one",
        format!(
            "{}, {} (one request each, just started)",
            ms(first),
            ms(tag)
        ),
    );
    table.row(
        &section,
        "server RSS: after start / after the first page",
        format!("{:.1} MiB / {:.1} MiB", mib(rss_started), mib(rss_page)),
    );
    table.row(
        &section,
        "server peak RSS (VmHWM)",
        format!("{:.1} MiB", mib(measure::peak_rss_of(pid)?)),
    );
    server.kill();
    Ok(())
}

/// A generated case: its id, the coordinator that reads it and how long
/// generating took.
pub(crate) struct Case {
    id: CaseId,
    coordinator: DeviceKey,
    reports: usize,
    took: Duration,
}

impl Case {
    /// A week around the middle of the case's reports, as RFC 3339.
    fn week_in_the_middle(&self) -> (String, String) {
        let middle = self.reports as u64 * MINUTES_APART / 2;
        let from = start() + chrono::Duration::minutes(middle as i64);
        let to = from + chrono::Duration::days(7);
        (from.to_rfc3339(), to.to_rfc3339())
    }
}

fn start() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2016-01-01T00:00:00+06:00").expect("a valid time")
}

/// The timeline's queries through the server at `url`, each timed over
/// `REQUESTS` requests and checked, one row each (`suffix` added to the
/// row's name); returns them for a run of the same queries in-process.
pub(crate) fn http_queries(
    table: &mut Table,
    section: &str,
    url: &str,
    case: &Case,
    suffix: &str,
) -> Result<[(&'static str, &'static str, String); 3]> {
    let reports = case.reports;
    let client = Client::new(url, &case.coordinator);
    let week = case.week_in_the_middle();
    let queries = [
        (
            "first page",
            "first page (100 reports, no filter)",
            String::new(),
        ),
        (
            "tag",
            "tag filter (a tag 1 report in 100 carries)",
            format!("tag={RARE_TAG}"),
        ),
        (
            "week + status",
            "one week + status=unverified (all are)",
            format!(
                "from={}&to={}&status=unverified",
                urlencode(&week.0),
                urlencode(&week.1)
            ),
        ),
    ];
    for (_, what, query) in &queries {
        // One request first, not counted: the first after the start reads
        // the pages it needs from the file.
        client.timeline(query)?;
        let mut times = Vec::with_capacity(REQUESTS);
        for _ in 0..REQUESTS {
            let started = Instant::now();
            let page = client.timeline(query)?;
            times.push(started.elapsed());
            check_page(&page, query, full_page(reports, query))?;
        }
        table.row(section, &format!("{what}{suffix}"), latency(&mut times));
    }
    Ok(queries)
}

/// A new store in `data` with one case, `REPORTERS` reporters and a
/// coordinator, and `reports` reports spread over the reporters, one every
/// five minutes (in an order unrelated to the ids or to the order written).
pub(crate) fn generate(data: &Path, reports: usize) -> Result<Case> {
    let store = Store::open(data)?;
    let case = store.create_case("bench")?;
    let enroll = |role| -> Result<DeviceKey> {
        let key = DeviceKey::generate()?;
        let token = store.create_invite("bench", role, Duration::from_secs(3600))?;
        store.enroll(&token, &key.public_key())?;
        Ok(key)
    };
    let reporters: Vec<DeviceKey> = (0..REPORTERS)
        .map(|_| enroll(DeviceRole::Reporter))
        .collect::<Result<_>>()?;
    let coordinator = enroll(DeviceRole::Coordinator)?;
    let now = DateTime::parse_from_rfc3339("2026-11-23T10:00:00+01:00")?;
    // 7,919 is prime to every size used, so each report gets a slot of its
    // own, and neighbours in time are far apart in the order written.
    let span = reports as u64 * MINUTES_APART;
    let started = Instant::now();
    for first in (0..reports).step_by(BATCH) {
        let mut batch: Vec<(&DeviceKey, NewReport)> = (first..reports.min(first + BATCH))
            .map(|i| {
                let slot = (i as u64 * 7_919 * MINUTES_APART) % span;
                let at = start() + chrono::Duration::minutes(slot as i64);
                let mut new = NewReport::new(
                    ReportId::random()?,
                    case.id.clone(),
                    format!("Detention {i}"),
                    at,
                );
                new.place = Place {
                    name: "Republic square".into(),
                    lat: Some(43.2 + (i % 1000) as f64 / 10_000.0),
                    lon: Some(76.9 + (i % 700) as f64 / 10_000.0),
                };
                new.description = format!(
                    "Held at the district department, released after {} hours.",
                    1 + i % 5
                );
                new.tags = vec![COMMON_TAGS[i % COMMON_TAGS.len()].to_owned()];
                if i % RARE_EVERY == 0 {
                    new.tags.push(RARE_TAG.to_owned());
                }
                Ok((&reporters[i % REPORTERS], new))
            })
            .collect::<Result<_>>()?;
        // In id order, each index page is visited once per batch.
        batch.sort_by(|a, b| a.1.id.as_str().cmp(b.1.id.as_str()));
        store.import_generated_reports(&batch, now)?;
    }
    Ok(Case {
        id: case.id,
        coordinator,
        reports,
        took: started.elapsed(),
    })
}

pub(crate) fn generated_row(
    table: &mut Table,
    section: &str,
    case: &Case,
    data: &Path,
) -> Result<()> {
    let size = std::fs::metadata(data.join(fieldsync_server::store::DB_FILE))?.len();
    table.row(
        section,
        "workload (generated in the store, not synced)",
        format!(
            "{} reports by {REPORTERS} devices in {:.1} s ({:.0} reports/s), database {:.0} MiB",
            case.reports,
            case.took.as_secs_f64(),
            case.reports as f64 / case.took.as_secs_f64(),
            mib(size)
        ),
    );
    Ok(())
}

/// Signed requests of the coordinator's device, over one kept-alive
/// connection.
struct Client<'a> {
    agent: ureq::Agent,
    url: String,
    key: &'a DeviceKey,
}

impl<'a> Client<'a> {
    fn new(url: &str, key: &'a DeviceKey) -> Self {
        Self {
            agent: ureq::AgentBuilder::new().build(),
            url: url.to_owned(),
            key,
        }
    }

    /// Waits for the server's first answer to `/healthz`.
    fn healthz(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.agent.get(&format!("{}/healthz", self.url)).call() {
                Ok(r) if r.status() == 200 => return Ok(()),
                _ if Instant::now() < deadline => std::thread::yield_now(),
                other => anyhow::bail!("the server never answered /healthz: {other:?}"),
            }
        }
    }

    /// `GET /v1/timeline?query`, parsed.
    fn timeline(&self, query: &str) -> Result<serde_json::Value> {
        let path = if query.is_empty() {
            "/v1/timeline".to_owned()
        } else {
            format!("/v1/timeline?{query}")
        };
        let now = chrono::Utc::now().timestamp();
        let auth = RequestAuth::sign(self.key, "GET", &path, b"", now)?;
        let mut request = self.agent.get(&format!("{}{path}", self.url));
        for (name, value) in auth.headers() {
            request = request.set(name, &value);
        }
        let response = request
            .call()
            .with_context(|| format!("GET {path} failed"))?;
        Ok(serde_json::from_reader(response.into_reader())?)
    }
}

/// A page of `expected` reports that match the query.
fn check_page(page: &serde_json::Value, query: &str, expected: usize) -> Result<()> {
    let reports = page["reports"].as_array().context("a page has reports")?;
    ensure!(
        reports.len() == expected,
        "expected {expected} reports for {query:?}, got {}",
        reports.len()
    );
    if query.starts_with("tag") {
        ensure!(
            reports.iter().all(|r| r["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&RARE_TAG.into()))),
            "a report without the tag in a tag-filtered page"
        );
    }
    Ok(())
}

/// How many reports the first page of `query` holds in a case of `reports`.
fn full_page(reports: usize, query: &str) -> usize {
    if query.starts_with("tag") {
        (reports / RARE_EVERY).min(100)
    } else {
        100
    }
}

/// `median M ms, p99 P ms (N requests)`, sorting `times`.
fn latency(times: &mut [Duration]) -> String {
    times.sort();
    let p99 = times[(times.len() * 99).div_ceil(100) - 1];
    format!(
        "median {}, p99 {} ({} requests)",
        ms(times[times.len() / 2]),
        ms(p99),
        times.len()
    )
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Percent-encodes what a query value may hold here (`+` and `:`).
fn urlencode(value: &str) -> String {
    value
        .replace('%', "%25")
        .replace('+', "%2B")
        .replace(':', "%3A")
}

/// A query string as the server's `web::Query` reads it.
fn parse_query(query: &str) -> Result<TimelineQuery> {
    let mut parsed = TimelineQuery::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').context("name=value")?;
        let value = value
            .replace("%3A", ":")
            .replace("%2B", "+")
            .replace("%25", "%");
        match name {
            "tag" => parsed.tag = Some(value),
            "from" => parsed.from = Some(value),
            "to" => parsed.to = Some(value),
            "status" => parsed.status = Some(value),
            other => anyhow::bail!("no such timeline filter: {other}"),
        }
    }
    Ok(parsed)
}
