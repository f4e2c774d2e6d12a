//! CIDR ranges (`10.244.0.0/16`, `fd00::/64`): what a cluster's pod
//! network and each node's share of it are written as.
//!
//! The node IPAM controller cuts `--cluster-cidr` into blocks of
//! `--node-cidr-mask-size` bits and hands one to each Node as
//! `spec.podCIDR`; validation checks that what a Node carries is a range
//! at all. Both need the same few operations: parse, the n-th block of a
//! given size, and which block an address range is.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A network: an address with its host bits cleared, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a string is not a CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR address: {0}")]
pub struct ParseCidrError(pub String);

impl Cidr {
    /// The network `addr/prefix`, host bits cleared (as Go's
    /// `net.ParseCIDR` returns the network of `10.244.1.7/24`).
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        (prefix <= Self::bits_of(&addr)).then(|| Cidr { addr: mask(addr, prefix), prefix })
    }

    fn bits_of(addr: &IpAddr) -> u8 {
        if addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    /// The address width: 32 for IPv4, 128 for IPv6.
    pub fn bits(&self) -> u8 {
        Self::bits_of(&self.addr)
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn network(&self) -> IpAddr {
        self.addr
    }

    /// How many blocks of `/new_prefix` this range holds, when that fits in
    /// a `u64` (`None` when `new_prefix` is shorter than this range's, or
    /// longer than the address).
    pub fn subnet_count(&self, new_prefix: u8) -> Option<u64> {
        if new_prefix < self.prefix || new_prefix > self.bits() {
            return None;
        }
        1u64.checked_shl(u32::from(new_prefix - self.prefix))
    }

    /// The `index`-th block of `/new_prefix` inside this range, counting
    /// from its start: `10.244.0.0/16` cut into `/24`s gives `10.244.3.0/24`
    /// as block 3.
    pub fn subnet(&self, new_prefix: u8, index: u64) -> Option<Cidr> {
        if index >= self.subnet_count(new_prefix)? {
            return None;
        }
        let shift = u32::from(self.bits() - new_prefix);
        let offset = u128::from(index).checked_shl(shift)?;
        let addr = from_u128(self.addr, to_u128(self.addr) | offset);
        Cidr::new(addr, new_prefix)
    }

    /// Whether `addr` lies inside this range.
    pub fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.addr.is_ipv4() && mask(addr, self.prefix) == self.addr
    }

    /// Whether `other` lies wholly inside this range.
    pub fn covers(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// The `n`-th address of this range, counting the network address as
    /// 0: `10.244.3.0/24` gives `10.244.3.1` as address 1 (a node's bridge)
    /// and `None` past its last address.
    pub fn host(&self, n: u128) -> Option<IpAddr> {
        let host_bits = u32::from(self.bits() - self.prefix);
        if host_bits < 128 && n >> host_bits != 0 {
            return None;
        }
        Some(from_u128(self.addr, to_u128(self.addr) | n))
    }

    /// How many addresses this range holds, saturated at `u128::MAX`.
    pub fn size(&self) -> u128 {
        1u128.checked_shl(u32::from(self.bits() - self.prefix)).unwrap_or(u128::MAX)
    }

    /// Which block of `/block.prefix` inside this range `block` is, if it
    /// is exactly one of them: the inverse of [`Cidr::subnet`].
    pub fn index_of(&self, block: &Cidr) -> Option<u64> {
        if block.bits() != self.bits() || block.prefix < self.prefix || mask(block.addr, self.prefix) != self.addr {
            return None;
        }
        let shift = u32::from(self.bits() - block.prefix);
        let offset = (to_u128(block.addr) ^ to_u128(self.addr)).checked_shr(shift).unwrap_or(0);
        u64::try_from(offset).ok()
    }
}

fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(like: IpAddr, value: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// `addr` with every bit past `prefix` cleared.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    let bits = Cidr::bits_of(&addr);
    let host_bits = u32::from(bits - prefix.min(bits));
    let keep = if host_bits >= 128 { 0 } else { u128::MAX << host_bits };
    let width = if bits == 32 { u128::from(u32::MAX) } else { u128::MAX };
    from_u128(addr, to_u128(addr) & keep & width)
}

impl FromStr for Cidr {
    type Err = ParseCidrError;

    /// `ADDRESS/PREFIX`, as Go's `net.ParseCIDR` reads it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseCidrError(s.to_string());
        let (addr, prefix) = s.split_once('/').ok_or_else(err)?;
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        Cidr::new(addr, prefix).ok_or_else(err)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parsing_keeps_the_network() {
        assert_eq!(c("10.244.1.7/24").to_string(), "10.244.1.0/24");
        assert_eq!(c("fd00::1/64").to_string(), "fd00::/64");
        assert_eq!(c("0.0.0.0/0").to_string(), "0.0.0.0/0");
        for bad in ["10.244.0.0", "10.244.0.0/33", "10.244.0.0/", "x/8", "10.0.0.0/+8", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_of_a_range() {
        let r = c("10.244.3.0/24");
        assert_eq!(r.host(1), Some("10.244.3.1".parse().unwrap()));
        assert_eq!(r.host(255), Some("10.244.3.255".parse().unwrap()));
        assert_eq!(r.host(256), None);
        assert_eq!(r.size(), 256);
        assert!(r.contains("10.244.3.77".parse().unwrap()));
        assert!(!r.contains("10.244.4.1".parse().unwrap()));
        assert!(!r.contains("::1".parse().unwrap()));
        assert!(c("10.244.0.0/16").covers(&r));
        assert!(!r.covers(&c("10.244.0.0/16")));
        assert_eq!(c("fd00::/64").host(2), Some("fd00::2".parse().unwrap()));
    }

    #[test]
    fn blocks_of_a_range() {
        let cluster = c("10.244.0.0/16");
        assert_eq!(cluster.subnet_count(24), Some(256));
        assert_eq!(cluster.subnet_count(8), None);
        assert_eq!(cluster.subnet(24, 0), Some(c("10.244.0.0/24")));
        assert_eq!(cluster.subnet(24, 3), Some(c("10.244.3.0/24")));
        assert_eq!(cluster.subnet(24, 255), Some(c("10.244.255.0/24")));
        assert_eq!(cluster.subnet(24, 256), None);
        assert_eq!(cluster.subnet(26, 5), Some(c("10.244.1.64/26")));
        assert_eq!(cluster.index_of(&c("10.244.3.0/24")), Some(3));
        assert_eq!(cluster.index_of(&c("10.244.1.64/26")), Some(5));
        assert_eq!(cluster.index_of(&c("10.245.0.0/24")), None, "outside");
        assert_eq!(cluster.index_of(&c("10.0.0.0/8")), None, "larger than the range");
        assert_eq!(cluster.index_of(&c("fd00::/64")), None, "another family");
        let v6 = c("fd00:10::/56");
        assert_eq!(v6.subnet(64, 2), Some(c("fd00:10:0:2::/64")));
        assert_eq!(v6.index_of(&c("fd00:10:0:2::/64")), Some(2));
    }
}
