//! The scheme and host this server is reached at, as the browser sees them:
//! for the Origin check of state-changing web requests and the session
//! cookie's `Secure` flag.
//!
//! actix-web's `ConnectionInfo` believes `Forwarded`, `X-Forwarded-Proto`
//! and `X-Forwarded-Host` from any client. Only a reverse proxy the operator
//! put in front may set them, so they are read only when the server runs
//! with `--trust-proxy` ([`crate::config::Config::trust_proxy`]); otherwise the
//! scheme is the connection's own and the host is the request's `Host`.

use actix_web::http::header::HOST;
use actix_web::HttpRequest;

/// (scheme, host[:port]) of the origin the request was made to.
pub fn scheme_and_host(req: &HttpRequest, trust_proxy: bool) -> (String, String) {
    if trust_proxy {
        let info = req.connection_info();
        return (info.scheme().to_owned(), info.host().to_owned());
    }
    let scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    let host = req
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| req.app_config().host().to_owned());
    (scheme.to_owned(), host)
}
