//! Lookup rate of the installed databases on one core (run via bench/geo.sh).
//!
//! Usage: geo_bench [N]  (default 5,000,000 random IPv4 + N/5 IPv6 addresses)

use matador::geo::db::GeoDb;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

/// xorshift64*: deterministic addresses without a dependency.
fn next(s: &mut u64) -> u64 {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    s.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(5_000_000);
    let db = GeoDb::open_default(None, None)?;
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let v4: Vec<IpAddr> = (0..n)
        .map(|_| IpAddr::V4(Ipv4Addr::from(next(&mut s) as u32)))
        .collect();
    // IPv6 addresses inside 2000::/4 (global unicast), where records are.
    let v6: Vec<IpAddr> = (0..n / 5)
        .map(|_| {
            let hi = (next(&mut s) & 0x0fff_ffff_ffff_ffff) | 0x2000_0000_0000_0000;
            IpAddr::V6(Ipv6Addr::from(
                (u128::from(hi) << 64) | u128::from(next(&mut s)),
            ))
        })
        .collect();
    let rate = |label: &str, count: usize, f: &mut dyn FnMut() -> usize| {
        let t = Instant::now();
        let hits = f();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{label:<34} {count:>9} lookups in {secs:6.3} s = {:6.2} M/s ({hits} with a record)",
            count as f64 / secs / 1e6
        );
    };
    let country = db.country_db();
    let asn = db.asn_db().ok_or("no ASN database")?;
    rate("country, IPv4 (country.mmdb)", v4.len(), &mut || {
        v4.iter()
            .filter(|&&ip| matches!(country.country(ip), Ok(Some(_))))
            .count()
    });
    rate("country, IPv6 (country.mmdb)", v6.len(), &mut || {
        v6.iter()
            .filter(|&&ip| matches!(country.country(ip), Ok(Some(_))))
            .count()
    });
    rate("ASN, IPv4 (asn.mmdb)", v4.len(), &mut || {
        v4.iter()
            .filter(|&&ip| matches!(asn.asn(ip), Ok(Some(_))))
            .count()
    });
    rate("country+ASN+org+networks, IPv4", v4.len() / 5, &mut || {
        v4[..v4.len() / 5]
            .iter()
            .filter(|&&ip| db.lookup(ip).is_ok_and(|a| a.country.is_some()))
            .count()
    });
    Ok(())
}
