//! Where webhooks may connect: a guard against server-side request forgery.
//!
//! A webhook's URL is the subscriber's choice, so the address connected to
//! is checked, not the name: every address a name resolves to is checked
//! when the connection is made (a name that resolves to a refused address,
//! also after a DNS rebinding, is refused), and an address literal in the
//! URL is checked before sending. Refused unless inside `[webhook]
//! allowed_networks`: loopback, private (RFC 1918, IPv6 ULA), link-local
//! (also the cloud metadata address), CGNAT, unspecified, multicast,
//! broadcast and reserved addresses, IPv4 benchmarking and protocol
//! assignment ranges, and any of these embedded in IPv6 (IPv4-mapped,
//! IPv4-compatible, NAT64, 6to4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why an address is refused; `None` for a public address.
pub fn refused_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b) {
        (0, _) => "unspecified",
        (127, _) => "loopback",
        (10, _) | (172, 16..=31) | (192, 168) => "private",
        (169, 254) => "link-local",
        (100, 64..=127) => "shared (CGNAT)",
        (198, 18..=19) => "benchmarking",
        (192, 0) if c == 0 => "protocol assignments",
        (224..=239, _) => "multicast",
        (240..=255, _) => "reserved or broadcast",
        _ => return None,
    })
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    let s = ip.segments();
    // IPv4 inside IPv6: judged by the IPv4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refused_v4(v4);
    }
    if s[..6] == [0; 6] {
        // IPv4-compatible (deprecated): ::a.b.c.d.
        return refused_v4(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64 well-known prefix: the gateway connects to the IPv4 address.
        return refused_v4(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Some("local-use NAT64");
    }
    if s[0] == 0x2002 {
        // 6to4: 2002:a.b.c.d::/48.
        return refused_v4(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8));
    }
    Some(match s[0] {
        x if x & 0xfe00 == 0xfc00 => "private (unique local)",
        x if x & 0xffc0 == 0xfe80 => "link-local",
        x if x & 0xffc0 == 0xfec0 => "site-local",
        x if x & 0xff00 == 0xff00 => "multicast",
        _ => return None,
    })
}

/// The addresses webhooks may reach: public ones, and those inside the
/// configured networks.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    allowed: Vec<IpNet>,
}

/// A refused connection, with the address and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused to connect to {ip}: a {kind} address (allow it in [webhook] allowed_networks)")]
pub struct Refused {
    pub ip: IpAddr,
    pub kind: &'static str,
}

impl Egress {
    /// From `[webhook] allowed_networks` (checked by the config's validation).
    pub fn new(allowed: &[String]) -> anyhow::Result<Self> {
        let allowed = allowed
            .iter()
            .map(|n| parse_network(n).map_err(|e| anyhow::anyhow!("allowed network {n:?}: {e}")))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { allowed })
    }

    /// Whether `ip` may be connected to.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        let Some(kind) = refused_kind(ip) else { return Ok(()) };
        let ip = canonical(ip);
        if self.allowed.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        Err(Refused { ip, kind })
    }

    /// Checks an address literal in a URL's host (names are checked when
    /// they resolve).
    pub fn check_url(&self, url: &str) -> Result<(), Refused> {
        let Ok(url) = reqwest::Url::parse(url) else { return Ok(()) };
        let host = url.host_str().unwrap_or_default();
        match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(ip) => self.check(ip),
            Err(_) => Ok(()),
        }
    }

    /// A resolver for the HTTP client that leaves out refused addresses and
    /// fails when none is left.
    pub fn resolver(&self) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver { egress: self.clone() })
    }
}

/// IPv4-mapped IPv6 addresses as IPv4, so an allowed IPv4 network covers them.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A CIDR network; a whole-address-space network would turn the guard off
/// and is refused.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    let net: IpNet = text
        .parse()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| "must be a network such as 10.20.0.0/16 or an address".to_owned())?;
    if net.prefix_len() == 0 {
        return Err("must not be the whole address space (that turns the guard off)".to_owned());
    }
    Ok(net.trunc())
}

/// A name whose every address is refused.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to no allowed address: {refused}")]
pub struct RefusedName {
    pub host: String,
    pub refused: Refused,
}

pub struct GuardedResolver {
    egress: Egress,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let egress = self.egress.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match egress.check(a.ip()) {
                    Ok(()) => true,
                    Err(r) => {
                        refused.get_or_insert(r);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let error: Box<dyn std::error::Error + Send + Sync> = match refused {
                    Some(refused) => Box::new(RefusedName { host, refused }),
                    None => format!("{host} resolves to no address").into(),
                };
                return Err(error);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn internal_addresses_are_refused_and_public_ones_pass() {
        for (addr, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("100.127.255.255", "shared (CGNAT)"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved or broadcast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fc00::1", "private (unique local)"),
            ("fd00:ec2::254", "private (unique local)"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::10.0.0.1", "private"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("64:ff9b::7f00:1", "loopback"),
            ("64:ff9b:1::1", "local-use NAT64"),
            ("2002:c0a8:0101::1", "private"),
        ] {
            assert_eq!(refused_kind(ip(addr)), Some(kind), "{addr}");
        }
        for addr in
            ["93.184.215.14", "172.32.0.1", "100.128.0.1", "8.8.8.8", "2606:4700::1111", "64:ff9b::808:808"]
        {
            assert_eq!(refused_kind(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn the_allow_list_opens_only_its_networks() {
        let egress = Egress::new(&["127.0.0.1/32".to_owned(), "10.20.0.0/16".to_owned()]).expect("valid");
        assert!(egress.check(ip("127.0.0.1")).is_ok());
        assert!(egress.check(ip("::ffff:127.0.0.1")).is_ok(), "mapped form of an allowed address");
        assert!(egress.check(ip("10.20.9.9")).is_ok());
        assert_eq!(egress.check(ip("10.21.0.1")), Err(Refused { ip: ip("10.21.0.1"), kind: "private" }));
        assert!(egress.check(ip("127.0.0.2")).is_err());
        assert!(egress.check(ip("8.8.8.8")).is_ok());
        let none = Egress::default();
        assert!(none.check_url("http://127.0.0.1:8080/hook").is_err());
        assert!(none.check_url("http://[::1]:8080/hook").is_err());
        assert!(none.check_url("https://[::ffff:a9fe:a9fe]/latest/meta-data").is_err());
        assert!(none.check_url("https://hooks.example.com/x").is_ok(), "names are checked at resolution");
    }

    #[test]
    fn networks_parse_and_the_whole_space_is_refused() {
        assert_eq!(parse_network("10.20.1.2/16").expect("valid").to_string(), "10.20.0.0/16");
        assert_eq!(parse_network("127.0.0.1").expect("an address").to_string(), "127.0.0.1/32");
        assert!(parse_network("0.0.0.0/0").is_err());
        assert!(parse_network("::/0").is_err());
        assert!(parse_network("localhost").is_err());
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_refused_address_is_refused_at_connect() {
        let resolver = Egress::default().resolver();
        let name: Name = "localhost".parse().expect("name");
        let error = resolver.resolve(name).await.err().expect("refused");
        assert!(error.to_string().contains("loopback"), "{error}");
        let allowed =
            Egress::new(&["127.0.0.0/8".to_owned(), "::1/128".to_owned()]).expect("valid").resolver();
        let name: Name = "localhost".parse().expect("name");
        let addrs: Vec<SocketAddr> = allowed.resolve(name).await.expect("allowed").collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
