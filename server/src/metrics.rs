//! Operators' metrics in the Prometheus text format (version 0.0.4), with
//! the Prometheus project's own client (`prometheus-client`).
//!
//! They are served only by a second listener, the one `serve
//! --metrics-listen ADDR` binds ([`server`]), which answers `GET /metrics`
//! and nothing else; the public listener never routes `/metrics`. Route
//! counts and pool saturation tell whoever reads them how busy the server
//! is and when, which is not for the reporters' adversaries to see.
//!
//! | metric | what |
//! |---|---|
//! | `fieldsync_http_requests_total{route,method,status}` | requests the public listener answered ([`count_requests`]) |
//! | `fieldsync_sync_round_duration_seconds` | histogram of answered sync rounds ([`Metrics::sync_round_answered`]) |
//! | `fieldsync_changes_stored_total` | changes sync rounds wrote to the store |
//! | `fieldsync_sync_rounds{state="waiting"\|"running"}` | rounds at the sync gate ([`Metrics::sync_turn`]) |
//! | `fieldsync_uploads_in_progress` | incomplete uploads, read from the store at each scrape |
//! | `fieldsync_store_pool_connections{state="in_use"\|"idle"}`, `fieldsync_store_pool_max_connections` | the store's connection pool ([`crate::store::PoolStats`]) |
//!
//! The counters live as long as the process (a restart starts them at
//! zero, which Prometheus's `rate()` expects); the gauges of the store are
//! read at each scrape, so they are right after a restart and, with
//! several processes on one database, count every process's uploads.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, App, HttpResponse, HttpServer};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

use crate::store::{PoolStatus, ServerStorage};

/// The `Content-Type` of the answer to `GET /metrics`.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The route label of a request that matched no route: one value for every
/// unknown path, so a client cannot make a label value per path it sends.
pub const UNMATCHED: &str = "unmatched";

/// How long a scrape waits for the store's count of uploads. A saturated
/// pool makes a connection wait up to its timeout, longer than a scrape
/// may take; then the scrape still answers, with the pool's figures and
/// without the uploads gauge.
const STORE_READ_LIMIT: Duration = Duration::from_secs(2);

/// Bounds of the sync histogram, in seconds: an ordinary round takes
/// milliseconds; one with hundreds of changes, or waiting behind others
/// for a turn, takes seconds.
const SYNC_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The instruments the server updates as it works. One per process,
/// shared by the public listener's workers (registered as app data) and
/// read by the metrics listener.
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    sync_rounds: Histogram,
    changes_stored: Counter,
    rounds_waiting: Gauge,
    rounds_running: Gauge,
}

/// What the metrics listener reads from the store at a scrape.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    pub pool: PoolStatus,
    /// `None` when the store did not answer in time or failed: the gauge
    /// is left out rather than shown stale.
    pub uploads_in_progress: Option<usize>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The matched route's pattern (`/v1/uploads/{id}`), never the path.
    route: String,
    method: &'static str,
    status: u16,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            requests: Family::default(),
            sync_rounds: Histogram::new(SYNC_BUCKETS),
            changes_stored: Counter::default(),
            rounds_waiting: Gauge::default(),
            rounds_running: Gauge::default(),
        }
    }

    /// Records a sync round answered 200: how long it took from its body
    /// read to its answer built (authentication, the wait for a turn,
    /// verification, the store's round, the feed), and how many changes
    /// it stored ([`crate::store::SyncRound::changes_stored`]). Refused
    /// rounds show in the request counts by their status.
    pub fn sync_round_answered(&self, took: Duration, changes_stored: usize) {
        self.sync_rounds.observe(took.as_secs_f64());
        self.changes_stored(changes_stored);
    }

    /// Counts changes a round stored outside `POST /v1/sync` (the review
    /// page's commits).
    pub fn changes_stored(&self, changes: usize) {
        self.changes_stored
            .inc_by(u64::try_from(changes).unwrap_or(u64::MAX));
    }

    /// Waits for a sync round's turn at `gate` (`api::sync_round_gate`),
    /// counted as waiting meanwhile; the turn counts the round as running
    /// until it is dropped. A round whose client goes away while it waits
    /// is dropped here and stops counting.
    pub async fn sync_turn(&self, gate: Arc<Semaphore>) -> Result<SyncTurn, AcquireError> {
        let waiting = Counted::enter(&self.rounds_waiting);
        let permit = gate.acquire_owned().await?;
        drop(waiting);
        Ok(SyncTurn {
            _permit: permit,
            _running: Counted::enter(&self.rounds_running),
        })
    }

    /// The exposition: every instrument, and the store's figures of
    /// `snapshot`.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        // A registry per scrape: the store's figures are registered only
        // when known, and two scrapes at once do not share them. The
        // instruments are shared handles, so registering them is cheap.
        let mut registry = Registry::with_prefix("fieldsync");
        registry.register(
            "http_requests",
            "Requests the public listener answered, by matched route pattern (unmatched: no route), method and status",
            self.requests.clone(),
        );
        registry.register_with_unit(
            "sync_round_duration",
            "Sync rounds (POST /v1/sync) answered 200, from the request body read to the answer built",
            Unit::Seconds,
            self.sync_rounds.clone(),
        );
        registry.register(
            "changes_stored",
            "Changes sync rounds (devices' and the review page's) wrote to the store; refused changes and changes the store already held are not counted",
            self.changes_stored.clone(),
        );
        let rounds = Family::<StateLabel, Gauge>::default();
        rounds
            .get_or_create(&StateLabel { state: "waiting" })
            .set(self.rounds_waiting.get());
        rounds
            .get_or_create(&StateLabel { state: "running" })
            .set(self.rounds_running.get());
        registry.register(
            "sync_rounds",
            "Sync rounds waiting for a turn (one runs per core) and running",
            rounds,
        );
        if let Some(uploads) = snapshot.uploads_in_progress {
            let gauge = Gauge::<i64>::default();
            gauge.set(i64::try_from(uploads).unwrap_or(i64::MAX));
            registry.register(
                "uploads_in_progress",
                "Uploads created and not complete, in the store (expired ones until the sweeper removes them)",
                gauge,
            );
        }
        let pool = Family::<StateLabel, Gauge>::default();
        pool.get_or_create(&StateLabel { state: "in_use" })
            .set(snapshot.pool.in_use.into());
        pool.get_or_create(&StateLabel { state: "idle" })
            .set(snapshot.pool.idle.into());
        registry.register(
            "store_pool_connections",
            "The store's database connections lent out (in_use) and open in the pool (idle)",
            pool,
        );
        let max = Gauge::<i64>::default();
        max.set(snapshot.pool.max.into());
        registry.register(
            "store_pool_max_connections",
            "The most connections the store's pool opens; in_use at this means requests wait",
            max,
        );
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry).expect("writing to a String does not fail");
        text
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// A sync round's turn: its permit of the gate, and its place in the
/// running gauge, both given back when dropped.
pub struct SyncTurn {
    _permit: OwnedSemaphorePermit,
    _running: Counted,
}

/// One unit of a gauge for as long as it lives, so every way out of a
/// handler (an error, a dropped future) gives it back.
struct Counted(Gauge);

impl Counted {
    fn enter(gauge: &Gauge) -> Self {
        gauge.inc();
        Counted(gauge.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The middleware (`actix_web::middleware::from_fn`) that counts every
/// request of the public App by route pattern, method and status. It finds
/// [`Metrics`] in the App's data; without it, it counts nothing.
///
/// The route is the pattern the router matched, never the path, so ids in
/// paths do not become label values; every unmatched path is [`UNMATCHED`]
/// and every method beyond the standard ones `other`: what a client sends
/// cannot grow the number of series.
pub async fn count_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let method = method_label(req.method());
    let result = next.call(req).await;
    if let Some(metrics) = metrics {
        // Handlers' errors are answers by now; an error here comes from a
        // middleware, before any route was matched.
        let (route, status) = match &result {
            Ok(res) => (res.request().match_pattern(), res.status()),
            Err(e) => (None, e.as_response_error().status_code()),
        };
        metrics
            .requests
            .get_or_create(&RequestLabels {
                route: route.unwrap_or_else(|| UNMATCHED.to_owned()),
                method,
                status: status.as_u16(),
            })
            .inc();
    }
    result
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// What the metrics listener's one route reads.
struct Exporter {
    metrics: web::Data<Metrics>,
    store: Arc<dyn ServerStorage>,
}

/// The metrics listener: `GET /metrics` on `listener`, 404 for anything
/// else. One worker: a scraper calls every few seconds. It handles no
/// signals: [`crate::run`] stops it when the public server stops.
pub fn server(
    listener: TcpListener,
    metrics: web::Data<Metrics>,
    store: Arc<dyn ServerStorage>,
) -> std::io::Result<actix_web::dev::Server> {
    let exporter = web::Data::new(Exporter { metrics, store });
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(exporter.clone())
            .route("/metrics", web::get().to(scrape))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}

async fn scrape(exporter: web::Data<Exporter>) -> HttpResponse {
    let pool = exporter.store.pool_status();
    let store = exporter.store.clone();
    let count = web::block(move || store.incomplete_uploads().map(|ids| ids.len()));
    let uploads_in_progress = match actix_web::rt::time::timeout(STORE_READ_LIMIT, count).await {
        Ok(Ok(Ok(count))) => Some(count),
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "metrics: the store's uploads could not be counted");
            None
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: counting uploads failed");
            None
        }
        Err(_) => {
            tracing::warn!(
                "metrics: the store did not count uploads within {STORE_READ_LIMIT:?}; left out"
            );
            None
        }
    };
    let snapshot = Snapshot {
        pool,
        uploads_in_progress,
    };
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(exporter.metrics.render(&snapshot))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(uploads: Option<usize>) -> Snapshot {
        Snapshot {
            pool: PoolStatus {
                in_use: 3,
                idle: 1,
                max: 16,
            },
            uploads_in_progress: uploads,
        }
    }

    /// The value of the sample named exactly `series` (name and labels).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn a_fresh_server_renders_its_metrics_with_help_and_type() {
        let text = Metrics::new().render(&snapshot(Some(2)));
        // The request counts have no series before the first request, and
        // the encoder writes no family without one.
        assert!(!text.contains("http_requests"), "{text}");
        for (name, kind) in [
            ("fieldsync_sync_round_duration_seconds", "histogram"),
            ("fieldsync_changes_stored_total", "counter"),
            ("fieldsync_sync_rounds", "gauge"),
            ("fieldsync_uploads_in_progress", "gauge"),
            ("fieldsync_store_pool_connections", "gauge"),
            ("fieldsync_store_pool_max_connections", "gauge"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name} {kind}:\n{text}"
            );
            assert!(text.contains(&format!("# HELP {name} ")), "{name}:\n{text}");
        }
        assert!(!text.contains("# EOF"), "0.0.4 has no EOF line:\n{text}");
        assert_eq!(sample(&text, "fieldsync_uploads_in_progress"), Some(2.0));
        assert_eq!(
            sample(&text, "fieldsync_store_pool_connections{state=\"in_use\"}"),
            Some(3.0)
        );
        assert_eq!(
            sample(&text, "fieldsync_store_pool_connections{state=\"idle\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "fieldsync_store_pool_max_connections"),
            Some(16.0)
        );
        assert_eq!(sample(&text, "fieldsync_changes_stored_total"), Some(0.0));
        assert_eq!(
            sample(&text, "fieldsync_sync_round_duration_seconds_count"),
            Some(0.0)
        );
    }

    #[test]
    fn an_unknown_upload_count_is_left_out_not_shown_stale() {
        let text = Metrics::new().render(&snapshot(None));
        assert!(!text.contains("uploads_in_progress"), "{text}");
        assert!(text.contains("fieldsync_store_pool_connections"), "{text}");
    }

    #[test]
    fn rounds_and_changes_are_counted_into_the_histogram_and_the_counter() {
        let metrics = Metrics::new();
        metrics.sync_round_answered(Duration::from_millis(30), 7);
        metrics.sync_round_answered(Duration::from_secs(3), 0);
        metrics.changes_stored(1);
        let text = metrics.render(&snapshot(Some(0)));
        assert_eq!(sample(&text, "fieldsync_changes_stored_total"), Some(8.0));
        assert_eq!(
            sample(&text, "fieldsync_sync_round_duration_seconds_count"),
            Some(2.0)
        );
        let le = |bound: &str| {
            sample(
                &text,
                &format!("fieldsync_sync_round_duration_seconds_bucket{{le=\"{bound}\"}}"),
            )
        };
        assert_eq!(le("0.025"), Some(0.0), "{text}");
        assert_eq!(le("0.05"), Some(1.0), "{text}");
        assert_eq!(le("2.5"), Some(1.0), "{text}");
        assert_eq!(le("5"), Some(2.0), "{text}");
        assert_eq!(le("+Inf"), Some(2.0), "{text}");
    }

    #[actix_web::test]
    async fn a_turn_counts_as_waiting_then_running_then_nothing() {
        let metrics = Metrics::new();
        let gate = Arc::new(Semaphore::new(1));
        let first = metrics.sync_turn(gate.clone()).await.unwrap();
        let rounds = |m: &Metrics| (m.rounds_waiting.get(), m.rounds_running.get());
        assert_eq!(rounds(&metrics), (0, 1));
        {
            let second = std::pin::pin!(metrics.sync_turn(gate.clone()));
            // Polled once: it waits for the first round's permit.
            let polled = futures_util::poll!(second);
            assert!(polled.is_pending());
            assert_eq!(rounds(&metrics), (1, 1));
        }
        // The waiting round went away (its client did): it stops counting.
        assert_eq!(rounds(&metrics), (0, 1));
        drop(first);
        assert_eq!(rounds(&metrics), (0, 0));
        let text = metrics.render(&snapshot(Some(0)));
        assert_eq!(
            sample(&text, "fieldsync_sync_rounds{state=\"running\"}"),
            Some(0.0)
        );
    }

    #[actix_web::test]
    async fn requests_are_counted_by_route_pattern_method_and_status_never_by_path() {
        use actix_web::test::{call_service, init_service, TestRequest};
        let metrics = web::Data::new(Metrics::new());
        let app = init_service(
            App::new()
                .app_data(metrics.clone())
                .wrap(actix_web::middleware::from_fn(count_requests))
                .route("/v1/uploads/{id}", web::get().to(HttpResponse::NoContent)),
        )
        .await;
        for path in [
            "/v1/uploads/0123456789abcdef",
            "/v1/uploads/fedcba9876543210",
            "/secret-path-1",
            "/secret-path-2",
        ] {
            call_service(&app, TestRequest::get().uri(path).to_request()).await;
        }
        call_service(
            &app,
            TestRequest::default()
                .method(Method::from_bytes(b"BREW").unwrap())
                .uri("/v1/uploads/x")
                .to_request(),
        )
        .await;
        let text = metrics.render(&snapshot(Some(0)));
        let count =
            |labels: &str| sample(&text, &format!("fieldsync_http_requests_total{{{labels}}}"));
        assert_eq!(
            count("route=\"/v1/uploads/{id}\",method=\"GET\",status=\"204\""),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            count("route=\"unmatched\",method=\"GET\",status=\"404\""),
            Some(2.0),
            "{text}"
        );
        assert!(
            text.contains("route=\"/v1/uploads/{id}\",method=\"other\""),
            "{text}"
        );
        for raw in ["0123456789abcdef", "secret-path", "BREW"] {
            assert!(!text.contains(raw), "{raw} is in the labels:\n{text}");
        }
    }
}
