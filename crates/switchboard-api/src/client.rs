//! Who a request comes from, for the per-address limits of the public routes (chat, forms):
//! the connection's peer, unless the peer is one of the configured trusted proxies.
//!
//! Behind a reverse proxy or a Kubernetes ingress every connection comes from the proxy, so
//! counting peers would put the whole site's visitors under one address's limits. A proxy
//! appends the address it got the request from to `X-Forwarded-For`; anything to the left of
//! that may be whatever the client wrote. So the client is found from the right: the first
//! entry, right to left, that is not itself a trusted proxy (a chain of trusted proxies each
//! appended their peer). A peer that is not trusted is the client, whatever the header says,
//! so a visitor cannot pick their own address; with no trusted proxies (the default) the header
//! is never read.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;

/// A network in CIDR notation, `10.0.0.0/8` or `2001:db8::/32` (a bare address is the network
/// of that address alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a network does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// The address part is not an IPv4 or IPv6 address: fix the configuration.
    #[error("{0:?} is not an IP address or network like 10.0.0.0/8 or fd00::/8")]
    Address(String),
    /// The prefix length is not a number up to 32 (IPv4) or 128 (IPv6).
    #[error("{0:?} has a prefix length that is not a number up to 32 (IPv4) or 128 (IPv6)")]
    Prefix(String),
    /// Bits are set past the prefix (`10.0.0.1/8`): most likely a typo for another network.
    #[error("{0:?} has bits set past its prefix length; write the network, like 10.0.0.0/8")]
    HostBits(String),
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| CidrError::Address(text.to_owned()))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| CidrError::Prefix(text.to_owned()))?,
        };
        let cidr = Cidr { network, prefix };
        if !cidr.contains(network) || bits_of(network) & !mask(prefix, bits) != 0 {
            return Err(CidrError::HostBits(text.to_owned()));
        }
        Ok(cidr)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// An address's bits, an IPv4 one in the low 32.
fn bits_of(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The mask of a `prefix`-bit network among `bits`-bit addresses.
fn mask(prefix: u8, bits: u8) -> u128 {
    let all = if bits == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    match u32::from(bits - prefix) {
        128 => 0,
        host => all & !((1u128 << host) - 1),
    }
}

impl Cidr {
    /// Whether `address` is in the network. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`,
    /// how a dual-stack socket shows an IPv4 peer) is taken as its IPv4 address.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = unmapped(address);
        let bits = match (self.network, address) {
            (IpAddr::V4(_), IpAddr::V4(_)) => 32,
            (IpAddr::V6(_), IpAddr::V6(_)) => 128,
            _ => return false,
        };
        let mask = mask(self.prefix, bits);
        bits_of(address) & mask == bits_of(self.network) & mask
    }
}

/// `address`, an IPv4-mapped IPv6 one as its IPv4 address.
fn unmapped(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// The reverse proxies whose `X-Forwarded-For` is believed (`[http] trusted_proxies`); empty,
/// the default: none, the peer is always the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Proxies in `networks`.
    pub fn new(networks: Vec<Cidr>) -> TrustedProxies {
        TrustedProxies(networks)
    }

    /// The networks trusted.
    pub fn networks(&self) -> &[Cidr] {
        &self.0
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(address))
    }

    /// The client of a request that came from `peer` with `headers`: `peer` unless it is a
    /// trusted proxy; then the rightmost `X-Forwarded-For` entry that is not one (an entry
    /// that is not an address ends the walk: what is left of it cannot be believed, and the
    /// trusted hop right of it is taken), or the leftmost when all are.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = unmapped(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        // Several headers are one list, in order. Each entry is read on its own: a byte a
        // client put in its part of the line (a proxy appends to what the client sent) must
        // not void the entries the proxies appended after it.
        let entries = headers
            .get_all("x-forwarded-for")
            .iter()
            .rev()
            .flat_map(|value| value.as_bytes().rsplit(|b| *b == b','));
        for entry in entries {
            let Some(address) = std::str::from_utf8(entry)
                .ok()
                .and_then(|entry| entry.trim().parse::<IpAddr>().ok())
            else {
                break;
            };
            client = unmapped(address);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use axum::http::{HeaderMap, HeaderValue};

    use super::{Cidr, CidrError, TrustedProxies};

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn proxies(networks: &[&str]) -> TrustedProxies {
        TrustedProxies::new(
            networks
                .iter()
                .map(|n| n.parse().expect("a network"))
                .collect(),
        )
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn networks_parse_and_contain_their_addresses_only() {
        let ten: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(ten.contains(ip("10.255.1.2")));
        assert!(ten.contains(ip("::ffff:10.0.0.1")));
        assert!(!ten.contains(ip("11.0.0.1")));
        assert!(!ten.contains(ip("::a00:1")));
        let one: Cidr = "::1".parse().unwrap();
        assert_eq!(one.to_string(), "::1/128");
        assert!(one.contains(ip("::1")) && !one.contains(ip("::2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12:3456::1")) && !v6.contains(ip("fe80::1")));
        assert!(matches!(
            "10.0.0.1/8".parse::<Cidr>(),
            Err(CidrError::HostBits(_))
        ));
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::Prefix(_))
        ));
        assert!(matches!(
            "::/129".parse::<Cidr>(),
            Err(CidrError::Prefix(_))
        ));
        assert!(matches!(
            "proxy/8".parse::<Cidr>(),
            Err(CidrError::Address(_))
        ));
    }

    #[test]
    fn a_clients_garbage_does_not_void_the_address_the_proxy_appended() {
        let trusted = proxies(&["10.0.0.0/8"]);
        // nginx appends the client's address to the header the client sent, on one line.
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe, 198.51.100.7").unwrap(),
        );
        assert_eq!(
            trusted.client(ip("10.1.2.3"), &headers),
            ip("198.51.100.7"),
            "the entry the proxy appended counts, whatever the client put before it"
        );
    }

    #[test]
    fn a_forged_header_from_an_untrusted_peer_is_ignored() {
        let headers = forwarded(&["198.51.100.7"]);
        assert_eq!(
            TrustedProxies::default().client(ip("203.0.113.9"), &headers),
            ip("203.0.113.9")
        );
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            trusted.client(ip("203.0.113.9"), &headers),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn through_trusted_proxies_the_client_is_the_rightmost_untrusted_entry() {
        let trusted = proxies(&["10.0.0.0/8", "::1/128"]);
        // The client wrote an address of their own on the left; the proxies appended theirs.
        let headers = forwarded(&["1.2.3.4, 198.51.100.7", "10.0.0.5"]);
        assert_eq!(trusted.client(ip("10.0.0.9"), &headers), ip("198.51.100.7"));
        assert_eq!(trusted.client(ip("::1"), &headers), ip("198.51.100.7"));
        // No header: the proxy itself.
        assert_eq!(
            trusted.client(ip("10.0.0.9"), &HeaderMap::new()),
            ip("10.0.0.9")
        );
        // Garbage ends the walk at the trusted hop right of it.
        let headers = forwarded(&["198.51.100.7, nonsense, 10.0.0.5"]);
        assert_eq!(trusted.client(ip("10.0.0.9"), &headers), ip("10.0.0.5"));
        // Every entry trusted: the leftmost.
        let headers = forwarded(&["10.1.1.1, 10.0.0.5"]);
        assert_eq!(trusted.client(ip("10.0.0.9"), &headers), ip("10.1.1.1"));
    }
}
