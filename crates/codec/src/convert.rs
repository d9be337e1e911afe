//! Between the domain's shared value types and their protobuf form, for
//! every service (each service keeps the mappings of its own aggregates).

use psirt_domain::{AffectedProduct, CvssSeverity, VersionSpec};
use psirt_proto::common;
use time::OffsetDateTime;

/// A rating as the contracts carry it; `None` (not rated) is UNSPECIFIED.
pub fn rating_to_proto(s: Option<CvssSeverity>) -> common::SeverityRating {
    match s {
        None => common::SeverityRating::Unspecified,
        Some(CvssSeverity::None) => common::SeverityRating::None,
        Some(CvssSeverity::Low) => common::SeverityRating::Low,
        Some(CvssSeverity::Medium) => common::SeverityRating::Medium,
        Some(CvssSeverity::High) => common::SeverityRating::High,
        Some(CvssSeverity::Critical) => common::SeverityRating::Critical,
    }
}

/// A rating from its enum value; UNSPECIFIED or an unknown value is `None`.
pub fn rating_from_proto(value: i32) -> Option<CvssSeverity> {
    match common::SeverityRating::try_from(value).ok()? {
        common::SeverityRating::Unspecified => None,
        common::SeverityRating::None => Some(CvssSeverity::None),
        common::SeverityRating::Low => Some(CvssSeverity::Low),
        common::SeverityRating::Medium => Some(CvssSeverity::Medium),
        common::SeverityRating::High => Some(CvssSeverity::High),
        common::SeverityRating::Critical => Some(CvssSeverity::Critical),
    }
}

pub fn product_to_proto(p: &AffectedProduct) -> common::ProductVersionRange {
    common::ProductVersionRange {
        product: p.product.clone(),
        versions: Some(match &p.versions {
            VersionSpec::Range(r) => common::product_version_range::Versions::Range(r.clone()),
            VersionSpec::Explicit(list) => {
                common::product_version_range::Versions::Explicit(common::VersionList {
                    versions: list.clone(),
                })
            }
        }),
    }
}

/// A product entry of a request or event; missing versions become an empty
/// range, which validation then names.
pub fn product_from_proto(p: &common::ProductVersionRange) -> AffectedProduct {
    AffectedProduct {
        product: p.product.clone(),
        versions: match &p.versions {
            None => VersionSpec::Range(String::new()),
            Some(common::product_version_range::Versions::Range(r)) => VersionSpec::Range(r.clone()),
            Some(common::product_version_range::Versions::Explicit(list)) => {
                VersionSpec::Explicit(list.versions.clone())
            }
        },
    }
}

/// A protobuf timestamp of `t` (every event's instants).
pub fn timestamp(t: OffsetDateTime) -> prost_types::Timestamp {
    let nanos = t.unix_timestamp_nanos();
    prost_types::Timestamp {
        seconds: i64::try_from(nanos.div_euclid(1_000_000_000)).unwrap_or(i64::MAX),
        nanos: i32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0),
    }
}

/// The instant of a protobuf timestamp; `None` out of range.
pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<OffsetDateTime> {
    let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// Milliseconds since the Unix epoch (the read models' instants).
pub fn millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratings_and_products_round_trip() {
        for rating in [None, Some(CvssSeverity::None), Some(CvssSeverity::Low), Some(CvssSeverity::Critical)]
        {
            assert_eq!(rating_from_proto(rating_to_proto(rating) as i32), rating);
        }
        assert_eq!(rating_from_proto(99), None);
        for versions in
            [VersionSpec::Range("vers:semver/<2".into()), VersionSpec::Explicit(vec!["1.0".into()])]
        {
            let p = AffectedProduct { product: "acme".into(), versions };
            assert_eq!(product_from_proto(&product_to_proto(&p)), p);
        }
    }
}
