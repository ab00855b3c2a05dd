//! `fieldsync serve`: the server, in this same binary.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use fieldsync_server::blob_store::BlobLocation;
use fieldsync_server::StartError;

/// Automerge opens an info-level span, its arguments formatted, on every
/// document it loads: at "info" that was a twentieth of the server's CPU
/// under sync load, for lines nobody reads.
const DEFAULT_LOG_FILTER: &str = "info,automerge=warn";

/// `metrics_listen`: where to serve the operators' metrics, if anywhere
/// (`--metrics-listen`); never on `listen`.
pub fn serve(
    config: fieldsync_server::Config,
    listen: &str,
    metrics_listen: Option<&str>,
) -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| DEFAULT_LOG_FILTER.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let listener = std::net::TcpListener::bind(listen).with_context(|| {
        format!("cannot listen on {listen}; is another server using that port?")
    })?;
    let addr = listener.local_addr()?;
    let metrics_listener = metrics_listen
        .map(|at| {
            std::net::TcpListener::bind(at).with_context(|| {
                format!("cannot listen for metrics on {at}; is another server using that port?")
            })
        })
        .transpose()?;
    let metrics_addr = metrics_listener
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()?;
    let data = config.data_dir.clone();
    // The URL is not printed: it may hold a password.
    let postgres = config.database.is_some();
    let blobs = match &config.blobs {
        BlobLocation::DataDir => String::new(),
        bucket => format!(", blobs in {bucket}"),
    };
    actix_web::rt::System::new().block_on(async move {
        let server =
            fieldsync_server::run(listener, metrics_listener, config).map_err(with_hint)?;
        // The banner stays the first line (tests and scripts read the
        // address from it); the metrics address, with a port 0 resolved,
        // is the second. One write, so a reader that takes only the first
        // line never makes the second fail.
        let store = if postgres {
            "PostgreSQL database"
        } else {
            "data in"
        };
        let mut banner = if postgres {
            format!(
                "fieldsync listening on http://{addr} ({store}; data in {}{blobs})\n",
                data.display()
            )
        } else {
            format!(
                "fieldsync listening on http://{addr} ({store} {}{blobs})\n",
                data.display()
            )
        };
        if let Some(at) = metrics_addr {
            banner.push_str(&format!("metrics on http://{at}/metrics\n"));
        }
        print!("{banner}");
        std::io::stdout().flush().ok();
        server.await.context("the server stopped with an error")
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What to check when the bucket cannot be reached: the server names no
/// setting in its errors, the CLI does.
fn with_hint(e: StartError) -> anyhow::Error {
    match e {
        StartError::Blobs { .. } => anyhow::anyhow!(
            "{e}; check AWS_ENDPOINT_URL (with AWS_ALLOW_HTTP=true for a plain-http endpoint), \
             AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that the bucket exists"
        ),
        other => anyhow::Error::new(other),
    }
}
