//! Which server URLs the CLI hands secrets to. `device enroll` sends the
//! one-time token and then every report; `web-login` prints a link whose
//! fragment carries the case keys to a page the server delivers. Over plain
//! http anyone on the path reads the reports and can rewrite the page's code,
//! so both refuse an `http://` server that is not this machine unless the
//! user says `--insecure-http`.

use std::net::IpAddr;

use anyhow::{bail, Result};

/// Refuses `server` when it is plain http to a host other than loopback
/// (127.0.0.0/8, ::1, localhost) and `insecure_http` is not given.
pub fn check_server_url(server: &str, insecure_http: bool, what: &str) -> Result<()> {
    let Some(host) = plain_http_host(server) else {
        return Ok(());
    };
    if insecure_http || is_loopback(&host) {
        return Ok(());
    }
    bail!(
        "refusing to {what} over plain http to {host}: anyone on the network path could read the reports and keys, and rewrite the review page's code. Serve fieldsync over TLS behind a reverse proxy (README, \"Serving over TLS\") and use its https:// address; if this network is one you control end to end, pass --insecure-http"
    )
}

/// The host of an `http://` URL (no userinfo, port or brackets), or None for
/// any other scheme.
fn plain_http_host(url: &str) -> Option<String> {
    let url = url.trim();
    let scheme_end = url.find("://")?;
    if !url[..scheme_end].eq_ignore_ascii_case("http") {
        return None;
    }
    let rest = &url[scheme_end + 3..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    Some(host.to_owned())
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_refused_unless_loopback_or_insecure_http() {
        for ok in [
            "https://fieldsync.example.org",
            "http://127.0.0.1:8080",
            "http://127.3.4.5",
            "http://[::1]:8080/",
            "http://localhost:8080",
            "HTTP://LOCALHOST",
        ] {
            assert!(check_server_url(ok, false, "enroll").is_ok(), "{ok}");
        }
        for refused in [
            "http://192.168.1.10:8080",
            "http://fieldsync.example.org",
            "http://127.0.0.1.example.org",
            "http://localhost@evil.example",
            "http://[::ffff:127.0.0.1]:8080",
            "Http://10.0.0.1",
        ] {
            let err = check_server_url(refused, false, "enroll").unwrap_err();
            assert!(err.to_string().contains("--insecure-http"), "{refused}");
            assert!(
                check_server_url(refused, true, "enroll").is_ok(),
                "{refused}"
            );
        }
    }
}
