//! Invite links to the phone app: `URL/app/#invite=TOKEN[&fp=FINGERPRINT]`,
//! and QR codes of what the CLI prints for a phone's camera.
//!
//! The token travels in the fragment, which a browser never sends, so it
//! reaches no server log, proxy log or Referer header. `fp` is the case
//! public key's fingerprint the phone checks the server's key against.

use anyhow::{bail, Context, Result};

/// The link a reporter opens on the phone. `base` is the server's public
/// address (`https://fieldsync.example.org`, with or without a trailing
/// slash or `/app/`).
pub fn invite_link(base: &str, token: &str, fingerprint: Option<&str>) -> Result<String> {
    let base = base.trim();
    let lower = base.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        bail!("--link must be the server's address as the phone reaches it, starting with https:// (for example https://fieldsync.example.org); got {base:?}");
    }
    if base.contains(['#', '?', ' ']) {
        bail!("--link must be the server's address only, without ?query, #fragment or spaces; got {base:?}");
    }
    let root = base.trim_end_matches('/');
    let root = root.strip_suffix("/app").unwrap_or(root);
    let mut link = format!("{root}/app/#invite={token}");
    if let Some(fp) = fingerprint {
        link.push_str("&fp=");
        link.push_str(fp);
    }
    Ok(link)
}

/// Whether the phone will refuse to run the app from this address: browsers
/// give WebCrypto and service workers only to https pages and loopback.
pub fn insecure_for_phones(base: &str) -> bool {
    let lower = base.trim().to_ascii_lowercase();
    lower.starts_with("http://")
        && !["http://127.", "http://localhost", "http://[::1]"]
            .iter()
            .any(|p| lower.starts_with(p))
}

/// `text` as a QR code drawn with Unicode half blocks, for a terminal.
pub fn qr(text: &str) -> Result<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).context("the text does not fit a QR code")?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_puts_the_token_and_fingerprint_in_the_fragment_whatever_the_base_looks_like() {
        for base in [
            "https://f.example.org",
            "https://f.example.org/",
            "https://f.example.org/app",
            "https://f.example.org/app/",
        ] {
            assert_eq!(
                invite_link(base, "TOK", Some("FP")).unwrap(),
                "https://f.example.org/app/#invite=TOK&fp=FP"
            );
        }
        assert_eq!(
            invite_link("http://127.0.0.1:8080", "TOK", None).unwrap(),
            "http://127.0.0.1:8080/app/#invite=TOK"
        );
    }

    #[test]
    fn a_base_that_is_not_an_address_is_refused_with_what_to_give() {
        for bad in ["f.example.org", "ftp://x", "https://x/?a=1", "https://x/#y"] {
            let e = invite_link(bad, "T", None).unwrap_err().to_string();
            assert!(e.contains("--link"), "{e}");
        }
    }

    #[test]
    fn plain_http_is_insecure_for_phones_except_on_loopback() {
        assert!(insecure_for_phones("http://192.168.1.5:8080"));
        assert!(!insecure_for_phones("http://127.0.0.1:8080"));
        assert!(!insecure_for_phones("https://f.example.org"));
    }

    #[test]
    fn a_link_fits_a_qr_code() {
        let link = invite_link(
            "https://f.example.org",
            &"a".repeat(43),
            Some(&"b".repeat(22)),
        );
        assert!(qr(&link.unwrap()).unwrap().lines().count() > 10);
    }
}
