//! Fetching the files a Messenger message carries: Meta sends a URL per attachment, not the
//! bytes, and the URL expires, so the file is fetched when the message arrives and kept in the
//! blob store.
//!
//! The URL comes from the network, so the fetch is careful: http(s) only; the host is resolved
//! first and every address it resolves to is checked, and the connection goes to the checked
//! address (no second lookup an attacker's DNS could answer differently); loopback, private,
//! link-local (cloud metadata) and other non-public addresses are refused unless host and port
//! are the configured trusted origin (a test's stand-in for Meta); at most [`MAX_REDIRECTS`]
//! redirects, each checked the same way; at most [`MAX_ATTACHMENT_BYTES`], read in chunks and
//! cut off beyond. A failure is a message for the log: the webhook keeps the message without
//! the file.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, LOCATION};

/// The largest file kept (Messenger's own limit is 25 MB).
pub(crate) const MAX_ATTACHMENT_BYTES: usize = 25 * 1024 * 1024;

/// How many redirects are followed (Meta's attachment URLs redirect to its CDN).
const MAX_REDIRECTS: usize = 3;

/// How long one fetch may take, redirects included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// A fetched file.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) bytes: Vec<u8>,
    pub(crate) content_type: String,
    pub(crate) file_name: String,
}

/// A host and port.
pub(crate) type Origin = (String, u16);

/// Fetches `url`, trusting a non-public address only for `trusted`.
pub(crate) async fn fetch(url: &str, trusted: Option<&Origin>) -> Result<Fetched, String> {
    tokio::time::timeout(FETCH_TIMEOUT, fetch_following(url, trusted))
        .await
        .map_err(|_| format!("no answer within {}s", FETCH_TIMEOUT.as_secs()))?
}

async fn fetch_following(url: &str, trusted: Option<&Origin>) -> Result<Fetched, String> {
    let mut url = Url::parse(url).map_err(|_| "not a URL".to_owned())?;
    // Only a chain that starts at the trusted origin is trusted: a URL anyone can share must
    // not redirect into it.
    let trusted = trusted.filter(|origin| is_origin(&url, origin));
    for _ in 0..=MAX_REDIRECTS {
        let (host, address) = checked_address(&url, trusted).await?;
        // No proxy from the environment: a proxy would look the host up again, past the check.
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(&host, address)
            .build()
            .map_err(|e| format!("no HTTP client: {e}"))?;
        let mut response = client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        if status.is_redirection() {
            let next = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|location| url.join(location).ok())
                .ok_or_else(|| format!("answered {status} without a usable Location"))?;
            url = next;
            continue;
        }
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ATTACHMENT_BYTES as u64)
        {
            return Err("the file is larger than 25 MB".to_owned());
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| "application/octet-stream".to_owned(), media_type);
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| e.without_url().to_string())?
        {
            if bytes.len() + chunk.len() > MAX_ATTACHMENT_BYTES {
                return Err("the file is larger than 25 MB".to_owned());
            }
            bytes.extend_from_slice(&chunk);
        }
        let last_segment = url
            .path_segments()
            .and_then(|mut segments| segments.next_back())
            .unwrap_or_default();
        let decoded = percent_decode(last_segment);
        return Ok(Fetched {
            bytes,
            content_type,
            file_name: crate::mutation::file_name(&decoded),
        });
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

/// Whether `url`'s host and port are `origin`.
fn is_origin(url: &Url, (host, port): &Origin) -> bool {
    let bare = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    bare.eq_ignore_ascii_case(host) && url.port_or_known_default() == Some(*port)
}

/// The host of `url` and the address to connect to: its first address if every one it
/// resolves to is public, or if host and port are the trusted origin.
async fn checked_address(
    url: &Url,
    trusted: Option<&Origin>,
) -> Result<(String, SocketAddr), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{} URLs are not fetched", url.scheme()));
    }
    let host = url.host_str().ok_or("the URL has no host")?.to_owned();
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| format!("{host} does not resolve: {e}"))?
        .collect();
    let trusted = trusted.is_some_and(|origin| is_origin(url, origin));
    if let Some(refused) = addresses.iter().find(|a| !trusted && !public(a.ip())) {
        return Err(format!(
            "{host} resolves to {}, which is not fetched",
            refused.ip()
        ));
    }
    let first = addresses
        .first()
        .copied()
        .ok_or_else(|| format!("{host} resolves to nothing"))?;
    Ok((bare.to_owned(), first))
}

/// Whether `ip` is a public unicast address: not loopback, private, link-local, shared,
/// documentation, multicast, broadcast or unspecified.
fn public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                // IETF protocol assignments, benchmarking, reserved.
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public(IpAddr::V4(v4)),
            None => {
                // Global unicast only (2000::/3), without the ranges that tunnel to IPv4
                // addresses (6to4, Teredo) and documentation; NAT64 (64:ff9b::/96), IPv4-
                // compatible, site-local, unique-local and the rest are outside it.
                let [first, second, ..] = v6.segments();
                (first & 0xe000) == 0x2000
                    && first != 0x2002
                    && !(first == 0x2001 && (second == 0 || second == 0x0db8))
            }
        },
    }
}

/// A `Content-Type` value's media type alone, lower case; `application/octet-stream` when it
/// is not one.
fn media_type(value: &str) -> String {
    let media = value.split(';').next().unwrap_or_default().trim();
    let token = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
    };
    match media.split_once('/') {
        Some((kind, sub)) if media.len() <= 100 && token(kind) && token(sub) => {
            media.to_ascii_lowercase()
        }
        _ => "application/octet-stream".to_owned(),
    }
}

/// `%XX` escapes of a URL path segment decoded (invalid UTF-8 replaced).
fn percent_decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_fetched() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378::1",
            "2001:db8::1",
            "::a9fe:a9fe",
            "fec0::1",
            "fd00:ec2::254",
            "100.100.100.200",
            "192.0.0.8",
            "198.18.0.1",
            "240.0.0.1",
        ] {
            assert!(!public(private.parse().unwrap()), "{private}");
        }
        for open in ["157.240.1.35", "2a03:2880:f10c::1", "2001:4860::8888"] {
            assert!(public(open.parse().unwrap()), "{open}");
        }
    }

    #[test]
    fn media_types_are_kept_alone_or_replaced() {
        assert_eq!(media_type("image/JPEG; charset=x"), "image/jpeg");
        assert_eq!(media_type("text/html\r\nX: y"), "application/octet-stream");
        assert_eq!(media_type("nonsense"), "application/octet-stream");
    }

    #[tokio::test]
    async fn non_http_and_private_urls_are_refused_before_connecting() {
        assert!(fetch("file:///etc/passwd", None).await.is_err());
        let refused = fetch("http://169.254.169.254/latest/meta-data", None)
            .await
            .unwrap_err();
        assert!(refused.contains("not fetched"), "{refused}");
        // The trusted origin is a host and a port: the same host on another port is not.
        let trusted = ("127.0.0.1".to_owned(), 9);
        let refused = fetch("http://127.0.0.1:6379/", Some(&trusted))
            .await
            .unwrap_err();
        assert!(refused.contains("not fetched"), "{refused}");
    }
}
