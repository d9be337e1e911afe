use time::macros::datetime;

use super::*;

const OPENED: OffsetDateTime = datetime!(2026-03-02 09:30 UTC);

fn hours(n: i64) -> Duration {
    Duration::hours(n)
}

fn duration(text: &str) -> SlaDuration {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

// ---------------------------------------------------------------------------
// Given/when/then for the clocks.
// ---------------------------------------------------------------------------

/// Given a case opened at [`OPENED`] ...
struct Given {
    policy: SlaPolicy,
    severity: Option<CvssSeverity>,
    acknowledged_at: Option<OffsetDateTime>,
    triaged_at: Option<OffsetDateTime>,
}

fn given_a_case() -> Given {
    Given { policy: SlaPolicy::default(), severity: None, acknowledged_at: None, triaged_at: None }
}

impl Given {
    fn rated(mut self, severity: CvssSeverity) -> Self {
        self.severity = Some(severity);
        self
    }

    fn under(mut self, policy: SlaPolicy) -> Self {
        self.policy = policy;
        self
    }

    fn acknowledged_after(mut self, elapsed: Duration) -> Self {
        self.acknowledged_at = Some(OPENED + elapsed);
        self
    }

    fn triaged_after(mut self, elapsed: Duration) -> Self {
        self.triaged_at = Some(OPENED + elapsed);
        self
    }

    /// ... when the clocks are computed this long after opening.
    fn checked_after(&self, elapsed: Duration) -> SlaState {
        SlaClocks::compute(
            &self.policy,
            OPENED,
            self.acknowledged_at,
            self.triaged_at,
            self.severity,
            OPENED + elapsed,
        )
    }
}

#[test]
fn a_fresh_critical_case_is_on_track_with_deadlines_from_the_policy() {
    let state = given_a_case().rated(CvssSeverity::Critical).checked_after(hours(1));
    assert_eq!(state.severity, Some(CvssSeverity::Critical));
    assert_eq!(state.acknowledge.status, ClockStatus::OnTrack);
    assert_eq!(state.acknowledge.due_at, OPENED + Duration::days(1));
    assert_eq!(state.triage.status, ClockStatus::OnTrack);
    assert_eq!(state.triage.due_at, OPENED + Duration::days(3));
    assert_eq!(state.next_deadline(), Some((Clock::Acknowledge, OPENED + Duration::days(1))));
    assert_eq!(state.breaches_due(OPENED + hours(1)), []);
}

#[test]
fn each_rating_takes_its_own_windows() {
    for (severity, acknowledge, triage) in [
        (Some(CvssSeverity::Critical), 1, 3),
        (Some(CvssSeverity::High), 2, 5),
        (Some(CvssSeverity::Medium), 3, 10),
        (Some(CvssSeverity::Low), 5, 15),
        (Some(CvssSeverity::None), 5, 15),
        (None, 3, 10),
    ] {
        let mut given = given_a_case();
        given.severity = severity;
        let state = given.checked_after(Duration::ZERO);
        assert_eq!(state.acknowledge.due_at, OPENED + Duration::days(acknowledge), "{severity:?}");
        assert_eq!(state.triage.due_at, OPENED + Duration::days(triage), "{severity:?}");
        assert_eq!(state.acknowledge.window, Duration::days(acknowledge), "{severity:?}");
    }
}

#[test]
fn a_clock_is_due_soon_in_the_last_quarter_of_its_window() {
    // Critical acknowledge: 24h window, due soon from 18h.
    let given = given_a_case().rated(CvssSeverity::Critical);
    let just_before = given.checked_after(hours(18) - Duration::SECOND);
    assert_eq!(just_before.acknowledge.status, ClockStatus::OnTrack);
    let at_threshold = given.checked_after(hours(18));
    assert_eq!(at_threshold.acknowledge.status, ClockStatus::DueSoon);
    assert_eq!(at_threshold.acknowledge.due_soon_at, OPENED + hours(18));
    let last_second = given.checked_after(hours(24) - Duration::SECOND);
    assert_eq!(last_second.acknowledge.status, ClockStatus::DueSoon);
    // The next deadline is still ahead while due soon.
    assert_eq!(last_second.next_deadline(), Some((Clock::Acknowledge, OPENED + hours(24))));
}

#[test]
fn an_unmet_clock_is_breached_from_its_deadline_on() {
    let given = given_a_case().rated(CvssSeverity::Critical);
    let state = given.checked_after(hours(24));
    assert_eq!(state.acknowledge.status, ClockStatus::Breached { at: OPENED + hours(24) });
    assert_eq!(state.triage.status, ClockStatus::OnTrack);
    // The breached clock is no longer "next"; the triage deadline is.
    assert_eq!(state.next_deadline(), Some((Clock::Triage, OPENED + Duration::days(3))));
    assert_eq!(state.breaches_due(OPENED + hours(24)), [(Clock::Acknowledge, OPENED + hours(24))]);
}

#[test]
fn a_clock_met_before_its_deadline_is_met_on_time() {
    let state = given_a_case().rated(CvssSeverity::High).acknowledged_after(hours(2)).checked_after(hours(3));
    assert_eq!(state.acknowledge.status, ClockStatus::Met { at: OPENED + hours(2), late: false });
    assert_eq!(state.acknowledge.met_at, Some(OPENED + hours(2)));
    assert_eq!(state.next_deadline(), Some((Clock::Triage, OPENED + Duration::days(5))));
}

#[test]
fn a_clock_met_at_or_after_its_deadline_is_met_late() {
    let on_the_deadline = given_a_case().rated(CvssSeverity::Critical).acknowledged_after(hours(24));
    assert_eq!(
        on_the_deadline.checked_after(hours(30)).acknowledge.status,
        ClockStatus::Met { at: OPENED + hours(24), late: true }
    );
    let a_second_before =
        given_a_case().rated(CvssSeverity::Critical).acknowledged_after(hours(24) - Duration::SECOND);
    assert_eq!(
        a_second_before.checked_after(hours(30)).acknowledge.status,
        ClockStatus::Met { at: OPENED + hours(24) - Duration::SECOND, late: false }
    );
}

#[test]
fn a_met_clock_is_never_due_for_a_breach() {
    let given =
        given_a_case().rated(CvssSeverity::Critical).acknowledged_after(hours(30)).triaged_after(hours(40));
    let state = given.checked_after(Duration::days(10));
    assert_eq!(state.breaches_due(OPENED + Duration::days(10)), []);
    assert_eq!(state.next_deadline(), None);
}

#[test]
fn breaches_due_lists_passed_unmet_deadlines_earliest_first() {
    let state = given_a_case().rated(CvssSeverity::Critical).checked_after(hours(1));
    // Asked later than computed: a scheduler keeps states and polls them.
    assert_eq!(state.breaches_due(OPENED + hours(23)), []);
    assert_eq!(state.breaches_due(OPENED + hours(24)), [(Clock::Acknowledge, OPENED + hours(24))]);
    assert_eq!(
        state.breaches_due(OPENED + Duration::days(4)),
        [(Clock::Acknowledge, OPENED + Duration::days(1)), (Clock::Triage, OPENED + Duration::days(3))]
    );
    let acknowledged =
        given_a_case().rated(CvssSeverity::Critical).acknowledged_after(hours(1)).checked_after(hours(1));
    assert_eq!(
        acknowledged.breaches_due(OPENED + Duration::days(4)),
        [(Clock::Triage, OPENED + Duration::days(3))]
    );
}

#[test]
fn an_unrated_case_runs_on_the_unrated_clocks() {
    let state = given_a_case().checked_after(Duration::days(2));
    assert_eq!(state.severity, None);
    assert_eq!(state.acknowledge.due_at, OPENED + Duration::days(3));
    assert_eq!(state.acknowledge.status, ClockStatus::OnTrack);
}

#[test]
fn rating_a_case_later_measures_its_deadlines_from_the_opening() {
    // Unrated on day two: on track for the three-day acknowledgement.
    assert_eq!(given_a_case().checked_after(Duration::days(2)).acknowledge.status, ClockStatus::OnTrack);
    // Rated Critical on day two: its one-day deadline passed yesterday.
    let state = given_a_case().rated(CvssSeverity::Critical).checked_after(Duration::days(2));
    assert_eq!(state.acknowledge.status, ClockStatus::Breached { at: OPENED + Duration::days(1) });
    // Rated Low instead: more time than the unrated clocks, breached by day three, gave.
    assert!(matches!(
        given_a_case().checked_after(Duration::days(3)).acknowledge.status,
        ClockStatus::Breached { .. }
    ));
    let state = given_a_case().rated(CvssSeverity::Low).checked_after(Duration::days(3));
    assert_eq!(state.acknowledge.status, ClockStatus::OnTrack);
}

#[test]
fn timestamps_before_the_opening_count_as_met_on_time() {
    let state = given_a_case().acknowledged_after(-hours(1)).checked_after(hours(1));
    assert_eq!(state.acknowledge.status, ClockStatus::Met { at: OPENED - hours(1), late: false });
}

#[test]
fn a_custom_policy_moves_the_deadlines() {
    let policy: SlaPolicy =
        serde_json::from_str(r#"{"critical": {"acknowledge": "4h", "triage": "1d"}}"#).expect("valid");
    let state = given_a_case().rated(CvssSeverity::Critical).under(policy).checked_after(hours(3));
    assert_eq!(state.acknowledge.due_at, OPENED + hours(4));
    assert_eq!(state.acknowledge.status, ClockStatus::DueSoon);
    assert_eq!(state.triage.due_at, OPENED + hours(24));
}

#[test]
fn deadlines_beyond_the_calendar_saturate_instead_of_panicking() {
    let far_future = PrimitiveDateTime::MAX.assume_utc() - Duration::days(1);
    let state = SlaClocks::compute(
        &SlaPolicy::default(),
        far_future,
        None,
        None,
        Some(CvssSeverity::Low),
        far_future,
    );
    assert_eq!(state.triage.due_at, PrimitiveDateTime::MAX.assume_utc());
    assert_eq!(state.triage.status, ClockStatus::OnTrack);
}

// ---------------------------------------------------------------------------
// The policy: defaults, configuration, validation.
// ---------------------------------------------------------------------------

#[test]
fn the_defaults_are_the_documented_ones() {
    let policy = SlaPolicy::default();
    for (clocks, acknowledge, triage) in [
        (policy.critical, "1d", "3d"),
        (policy.high, "2d", "5d"),
        (policy.medium, "3d", "10d"),
        (policy.low, "5d", "15d"),
        (policy.none, "5d", "15d"),
        (policy.unrated, "3d", "10d"),
    ] {
        assert_eq!((clocks.acknowledge, clocks.triage), (duration(acknowledge), duration(triage)));
    }
    assert_eq!(policy.unrated, policy.medium, "unrated cases run on the medium clocks");
    assert_eq!(policy.validate(), []);
}

#[test]
fn an_empty_configuration_is_the_default_policy() {
    assert_eq!(serde_json::from_str::<SlaPolicy>("{}").expect("valid"), SlaPolicy::default());
}

#[test]
fn a_partial_configuration_keeps_the_defaults_it_does_not_mention() {
    let policy: SlaPolicy =
        serde_json::from_str(r#"{"critical": {"acknowledge": "12h"}, "unrated": {"triage": "5d"}}"#)
            .expect("valid");
    let default = SlaPolicy::default();
    assert_eq!(policy.critical.acknowledge, duration("12h"));
    assert_eq!(policy.critical.triage, default.critical.triage);
    assert_eq!(policy.unrated.acknowledge, default.unrated.acknowledge);
    assert_eq!(policy.unrated.triage, duration("5d"));
    assert_eq!(
        (policy.high, policy.medium, policy.low, policy.none),
        (default.high, default.medium, default.low, default.none)
    );
}

#[test]
fn configuration_typos_are_refused() {
    for json in [
        r#"{"critcal": {"acknowledge": "1d"}}"#,
        r#"{"critical": {"acknowledged": "1d"}}"#,
        r#"{"critical": {"acknowledge": "1 day"}}"#,
        r#"{"critical": {"acknowledge": 86400}}"#,
    ] {
        assert!(serde_json::from_str::<SlaPolicy>(json).is_err(), "{json}");
    }
}

#[test]
fn the_policy_serializes_durations_as_strings_and_round_trips() {
    let json = serde_json::to_value(SlaPolicy::default()).expect("serializes");
    assert_eq!(json["critical"], serde_json::json!({"acknowledge": "1d", "triage": "3d"}));
    assert_eq!(json["medium"]["triage"], "10d");
    assert_eq!(serde_json::from_value::<SlaPolicy>(json).expect("deserializes"), SlaPolicy::default());
}

#[test]
fn validate_lists_every_problem_by_field() {
    let mut policy = SlaPolicy::default();
    policy.low.acknowledge = SlaDuration::ZERO;
    policy.high.acknowledge = duration("6d");
    policy.unrated.acknowledge = duration("11d");
    let problems = policy.validate();
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            // high.acknowledge 6d > high.triage 5d
            "high.acknowledge",
            "low.acknowledge",
            // unrated.acknowledge 11d > unrated.triage 10d
            "unrated.acknowledge",
            // high.acknowledge 6d > medium.acknowledge 3d
            "high.acknowledge",
            // low.acknowledge 0s < medium's 3d: the medium window is longer than the low one
            "medium.acknowledge",
        ],
        "{problems:#?}"
    );
    assert_eq!(problems[1].description, "low.acknowledge must be longer than zero");
    assert_eq!(
        problems[0].description,
        "high.acknowledge (6d) must not be longer than high.triage (5d): triage includes acknowledging"
    );
    assert_eq!(
        problems[3].description,
        "high.acknowledge (6d) is longer than medium.acknowledge (3d): a more severe rating must not get more time"
    );
}

#[test]
fn the_unrated_clocks_may_be_anything_positive() {
    let mut policy = SlaPolicy::default();
    policy.unrated = policy.critical;
    assert_eq!(policy.validate(), []);
    policy.unrated = policy.none;
    assert_eq!(policy.validate(), []);
}

// ---------------------------------------------------------------------------
// Durations.
// ---------------------------------------------------------------------------

#[test]
fn durations_parse_humantime_like_spellings() {
    for (text, expected) in [
        ("1d", Duration::days(1)),
        ("36h", hours(36)),
        ("1d12h", hours(36)),
        ("1d 12h", hours(36)),
        ("1 d 12 h", hours(36)),
        (" 2w ", Duration::days(14)),
        ("90m", Duration::minutes(90)),
        ("1h30m15s", Duration::seconds(5415)),
        ("0s", Duration::ZERO),
        ("3650d", Duration::days(MAX_SLA_DAYS)),
    ] {
        assert_eq!(duration(text).as_duration(), expected, "{text}");
    }
}

#[test]
fn durations_display_in_their_shortest_form() {
    for (text, shown) in
        [("1d", "1d"), ("36h", "1d12h"), ("2w", "14d"), ("90s", "1m30s"), ("0d", "0s"), ("25h1s", "1d1h1s")]
    {
        assert_eq!(duration(text).to_string(), shown, "{text}");
        assert_eq!(duration(shown), duration(text), "{shown} parses back");
    }
}

#[test]
fn durations_refuse_anything_else() {
    for (text, expected) in [
        ("", SlaDurationError::Empty),
        ("   ", SlaDurationError::Empty),
        ("1", SlaDurationError::Malformed { text: "1".into() }),
        ("d", SlaDurationError::Malformed { text: "d".into() }),
        ("-1d", SlaDurationError::Malformed { text: "-1d".into() }),
        ("1.5d", SlaDurationError::Malformed { text: "1.5d".into() }),
        ("1x", SlaDurationError::UnknownUnit { text: "1x".into(), unit: "x".into() }),
        ("1 day", SlaDurationError::UnknownUnit { text: "1 day".into(), unit: "day".into() }),
        ("1D", SlaDurationError::UnknownUnit { text: "1D".into(), unit: "D".into() }),
        ("1h1d", SlaDurationError::OutOfOrder { text: "1h1d".into() }),
        ("1d1d", SlaDurationError::OutOfOrder { text: "1d1d".into() }),
        ("3651d", SlaDurationError::TooLong { text: "3651d".into() }),
        ("3650d1s", SlaDurationError::TooLong { text: "3650d1s".into() }),
        ("99999999999999999999w", SlaDurationError::TooLong { text: "99999999999999999999w".into() }),
        ("9223372036854775807w", SlaDurationError::TooLong { text: "9223372036854775807w".into() }),
    ] {
        assert_eq!(text.parse::<SlaDuration>(), Err(expected), "{text:?}");
    }
}

#[test]
fn durations_from_code_are_bounded_too() {
    assert_eq!(SlaDuration::new(hours(36)).map(SlaDuration::as_duration), Ok(hours(36)));
    assert!(matches!(SlaDuration::new(-hours(1)), Err(SlaDurationError::Negative { .. })));
    assert!(matches!(
        SlaDuration::new(Duration::days(MAX_SLA_DAYS + 1)),
        Err(SlaDurationError::TooLong { .. })
    ));
}
