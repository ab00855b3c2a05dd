//! `fieldsync serve`: the server, in this same binary.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};

/// Automerge opens an info-level span, its arguments formatted, on every
/// document it loads: at "info" that was a twentieth of the server's CPU
/// under sync load, for lines nobody reads.
const DEFAULT_LOG_FILTER: &str = "info,automerge=warn";

pub fn serve(config: fieldsync_server::Config, listen: &str) -> Result<ExitCode> {
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
    let data = config.data_dir.clone();
    // The URL is not printed: it may hold a password.
    let postgres = config.database.is_some();
    actix_web::rt::System::new().block_on(async move {
        let server = fieldsync_server::run(listener, config).with_context(|| {
            if postgres {
                "cannot open the PostgreSQL database given by --database".to_owned()
            } else {
                format!("cannot open the data directory {}", data.display())
            }
        })?;
        if postgres {
            println!(
                "fieldsync listening on http://{addr} (PostgreSQL database; blobs in {})",
                data.display()
            );
        } else {
            println!(
                "fieldsync listening on http://{addr} (data in {})",
                data.display()
            );
        }
        std::io::stdout().flush().ok();
        server.await.context("the server stopped with an error")
    })?;
    Ok(ExitCode::SUCCESS)
}
