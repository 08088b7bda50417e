//! Geolocation: mmdb country and ASN lookups, UN M49 regions, interest groups, plausibility.
