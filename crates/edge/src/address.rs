//! Which network a client address belongs to, for every per-address limit (connections,
//! WebSockets, guest sessions, logins, placements).
//!
//! An IPv4 client controls one address; an IPv6 client is usually handed a whole /64, so keying
//! limits by exact IPv6 address would give every such client 2^64 budgets. Every limit therefore
//! keys by the address masked to a prefix: /32 for IPv4 and /64 for IPv6 by default, both
//! configurable. An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`, as a dual-stack socket
//! reports it) counts as the IPv4 address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How addresses are grouped into the networks that limits count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Prefix length for IPv4, 1 to 32.
    pub ipv4_prefix: u8,
    /// Prefix length for IPv6, 1 to 128.
    pub ipv6_prefix: u8,
}

impl Default for AddressPolicy {
    fn default() -> Self {
        Self {
            ipv4_prefix: 32,
            ipv6_prefix: 64,
        }
    }
}

impl AddressPolicy {
    /// The network `ip` counts as: the address with every bit past the prefix cleared.
    pub fn network(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => IpAddr::V4(mask_v4(v4, self.ipv4_prefix)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(mask_v4(v4, self.ipv4_prefix)),
                None => IpAddr::V6(mask_v6(v6, self.ipv6_prefix)),
            },
        }
    }
}

fn mask_v4(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let bits = u32::from(ip);
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    Ipv4Addr::from(bits & mask)
}

fn mask_v6(ip: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let bits = u128::from(ip);
    let mask = u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0);
    Ipv6Addr::from(bits & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let policy = AddressPolicy::default();
        assert_eq!(
            policy.network(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            policy.network(ip("2001:db8:1:2::1")),
            policy.network(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            policy.network(ip("2001:db8:1:2::1")),
            policy.network(ip("2001:db8:1:3::1"))
        );
    }

    #[test]
    fn ipv4_counts_by_address_unless_configured() {
        let policy = AddressPolicy::default();
        assert_eq!(policy.network(ip("10.1.2.3")), ip("10.1.2.3"));
        assert_ne!(
            policy.network(ip("10.1.2.3")),
            policy.network(ip("10.1.2.4"))
        );
        let wide = AddressPolicy {
            ipv4_prefix: 24,
            ipv6_prefix: 48,
        };
        assert_eq!(wide.network(ip("10.1.2.3")), ip("10.1.2.0"));
        assert_eq!(wide.network(ip("2001:db8:1:2::1")), ip("2001:db8:1::"));
    }

    #[test]
    fn mapped_ipv4_is_ipv4() {
        let policy = AddressPolicy::default();
        assert_eq!(policy.network(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
    }
}
