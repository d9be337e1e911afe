//! Who is asking: the client's address (through the proxies the portal
//! trusts, and only those) and its rate limit. Every public answer counts
//! against the caller's address; over the limit the portal answers 429 with
//! `Retry-After`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use psirt_kit::quota::{RateLimiter, caller_key};

/// Most addresses of `X-Forwarded-For` the portal reads.
pub const MAX_FORWARDED: usize = 32;

/// The client of a request whose TCP peer is `peer`: the peer itself, unless
/// it is a trusted proxy; then, walking `X-Forwarded-For` from the right
/// (each proxy appends the address it saw), the first address that is not a
/// trusted proxy. A header from an untrusted peer is ignored: a client
/// cannot choose its own address.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    let mut client = peer;
    for entry in forwarded.iter().rev().take(MAX_FORWARDED) {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            // Garbage from beyond the last trusted proxy: the last address
            // a trusted hop vouched for is the client.
            Err(_) => return client,
        }
    }
    client
}

/// What the rate limit of the public pages needs.
#[derive(Debug, Clone)]
pub struct Limits {
    pub limiter: Arc<RateLimiter>,
    pub trusted_proxies: Arc<[IpNet]>,
}

/// Admits the request if its client is within its rate; otherwise 429 with
/// `Retry-After` (whole seconds, at least 1).
pub async fn limit(limits: Limits, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
    let client = client_address(peer, request.headers(), &limits.trusted_proxies);
    match limits.limiter.check(&caller_key(None, Some(client))) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut response =
                (StatusCode::TOO_MANY_REQUESTS, "too many requests; try again later\n").into_response();
            if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("net")).collect()
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(value).expect("value"));
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let client = client_address(ip("203.0.113.9"), &forwarded("198.51.100.1"), &nets(&["10.0.0.0/8"]));
        assert_eq!(client, ip("203.0.113.9"));
    }

    #[test]
    fn through_trusted_proxies_the_first_untrusted_address_from_the_right_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        // The client put a forged entry first; the ingress appended what it saw.
        let headers = forwarded("1.2.3.4, 198.51.100.7, 10.1.2.3");
        assert_eq!(client_address(ip("10.0.0.5"), &headers, &trusted), ip("198.51.100.7"));
        // No header: the proxy itself.
        assert_eq!(client_address(ip("10.0.0.5"), &HeaderMap::new(), &trusted), ip("10.0.0.5"));
        // Garbage beyond the trusted hops: the last vouched address.
        assert_eq!(
            client_address(ip("10.0.0.5"), &forwarded("nonsense, 10.9.9.9"), &trusted),
            ip("10.9.9.9")
        );
    }

    proptest::proptest! {
        /// Whatever an untrusted client sends, it is limited by its own
        /// address; behind a trusted proxy, the answer is an address of the
        /// header or the proxy, never a trusted one unless all are.
        #[test]
        fn a_client_never_escapes_its_own_address(header in "\\PC{0,200}", last in proptest::prelude::any::<[u8; 4]>()) {
            let trusted = nets(&["10.0.0.0/8"]);
            let Ok(value) = HeaderValue::from_str(&header) else { return Ok(()) };
            let mut headers = HeaderMap::new();
            headers.insert("x-forwarded-for", value);
            let peer = IpAddr::from(last);
            let client = client_address(peer, &headers, &trusted);
            if !trusted[0].contains(&peer) {
                proptest::prop_assert_eq!(client, peer);
            } else if client != peer {
                let listed = header.split(',').any(|entry| entry.trim().parse::<IpAddr>().ok() == Some(client));
                proptest::prop_assert!(listed, "{} from {}", client, header);
            }
        }
    }
}
