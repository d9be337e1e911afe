//! Properties of the CVSS v3.x/v4.0 vector parser (`psirt_domain::CvssVector`),
//! which reads what reporters suggest and triage records: arbitrary text is
//! refused with a typed error or accepted as a scored vector, never a panic;
//! generated well-formed vectors parse, keep their text, normalise to the
//! specification's order without `X`, score in 0.0..=10.0; small corruptions
//! of a valid vector are refused.
//!
//! The metric tables below are written out again from the specifications
//! (v3.1 section 7.4, v4.0 table 23) rather than taken from the parser, so
//! a gap in the parser's tables makes a property fail.

use proptest::prelude::*;
use psirt_domain::{CvssError, CvssNomenclature, CvssSeverity, CvssVector, CvssVersion};

/// (metric, mandatory, values) in the order the vector string lists them.
type Table = &'static [(&'static str, bool, &'static [&'static str])];

const V3: Table = &[
    ("AV", true, &["N", "A", "L", "P"]),
    ("AC", true, &["L", "H"]),
    ("PR", true, &["N", "L", "H"]),
    ("UI", true, &["N", "R"]),
    ("S", true, &["U", "C"]),
    ("C", true, &["H", "L", "N"]),
    ("I", true, &["H", "L", "N"]),
    ("A", true, &["H", "L", "N"]),
    ("E", false, &["X", "H", "F", "P", "U"]),
    ("RL", false, &["X", "U", "W", "T", "O"]),
    ("RC", false, &["X", "C", "R", "U"]),
    ("CR", false, &["X", "H", "M", "L"]),
    ("IR", false, &["X", "H", "M", "L"]),
    ("AR", false, &["X", "H", "M", "L"]),
    ("MAV", false, &["X", "N", "A", "L", "P"]),
    ("MAC", false, &["X", "L", "H"]),
    ("MPR", false, &["X", "N", "L", "H"]),
    ("MUI", false, &["X", "N", "R"]),
    ("MS", false, &["X", "U", "C"]),
    ("MC", false, &["X", "H", "L", "N"]),
    ("MI", false, &["X", "H", "L", "N"]),
    ("MA", false, &["X", "H", "L", "N"]),
];

const V4: Table = &[
    ("AV", true, &["N", "A", "L", "P"]),
    ("AC", true, &["L", "H"]),
    ("AT", true, &["N", "P"]),
    ("PR", true, &["N", "L", "H"]),
    ("UI", true, &["N", "P", "A"]),
    ("VC", true, &["H", "L", "N"]),
    ("VI", true, &["H", "L", "N"]),
    ("VA", true, &["H", "L", "N"]),
    ("SC", true, &["H", "L", "N"]),
    ("SI", true, &["H", "L", "N"]),
    ("SA", true, &["H", "L", "N"]),
    ("E", false, &["X", "A", "P", "U"]),
    ("CR", false, &["X", "H", "M", "L"]),
    ("IR", false, &["X", "H", "M", "L"]),
    ("AR", false, &["X", "H", "M", "L"]),
    ("MAV", false, &["X", "N", "A", "L", "P"]),
    ("MAC", false, &["X", "L", "H"]),
    ("MAT", false, &["X", "N", "P"]),
    ("MPR", false, &["X", "N", "L", "H"]),
    ("MUI", false, &["X", "N", "P", "A"]),
    ("MVC", false, &["X", "H", "L", "N"]),
    ("MVI", false, &["X", "H", "L", "N"]),
    ("MVA", false, &["X", "H", "L", "N"]),
    ("MSC", false, &["X", "H", "L", "N"]),
    ("MSI", false, &["X", "S", "H", "L", "N"]),
    ("MSA", false, &["X", "S", "H", "L", "N"]),
    ("S", false, &["X", "N", "P"]),
    ("AU", false, &["X", "N", "Y"]),
    ("R", false, &["X", "A", "U", "I"]),
    ("V", false, &["X", "D", "C"]),
    ("RE", false, &["X", "L", "M", "H"]),
    ("U", false, &["X", "Clear", "Green", "Amber", "Red"]),
];

/// v4.0 environmental metrics (section 1.3: they make a score CVSS-BE).
const V4_ENVIRONMENTAL: &[&str] =
    &["CR", "IR", "AR", "MAV", "MAC", "MAT", "MPR", "MUI", "MVC", "MVI", "MVA", "MSC", "MSI", "MSA"];

fn table(version: CvssVersion) -> Table {
    match version {
        CvssVersion::V3_0 | CvssVersion::V3_1 => V3,
        CvssVersion::V4_0 => V4,
    }
}

fn prefix(version: CvssVersion) -> String {
    format!("CVSS:{}", version.as_str())
}

/// One component as generated: (position in the table, metric, value).
type Component = (usize, &'static str, &'static str);

/// A well-formed vector: every base metric, any optional ones, in any order.
#[derive(Debug, Clone)]
struct Generated {
    version: CvssVersion,
    /// In the order written.
    components: Vec<Component>,
}

impl Generated {
    fn text(&self) -> String {
        let mut text = prefix(self.version);
        for (_, metric, value) in &self.components {
            text.push_str(&format!("/{metric}:{value}"));
        }
        text
    }

    /// The specification's order without the `X` (Not Defined) metrics.
    fn normalized(&self) -> String {
        let mut sorted = self.components.clone();
        sorted.sort_by_key(|(position, _, _)| *position);
        let mut text = prefix(self.version);
        for (_, metric, value) in sorted.iter().filter(|(_, _, value)| *value != "X") {
            text.push_str(&format!("/{metric}:{value}"));
        }
        text
    }

    /// The same vector with the base metrics only.
    fn base_only(&self) -> String {
        let specs = table(self.version);
        let mut sorted: Vec<_> = self.components.iter().filter(|(p, _, _)| specs[*p].1).collect();
        sorted.sort_by_key(|(position, _, _)| *position);
        let mut text = prefix(self.version);
        for (_, metric, value) in sorted {
            text.push_str(&format!("/{metric}:{value}"));
        }
        text
    }

    fn defined(&self, metric: &str) -> bool {
        self.components.iter().any(|(_, m, v)| *m == metric && *v != "X")
    }
}

fn version() -> impl Strategy<Value = CvssVersion> {
    prop_oneof![Just(CvssVersion::V3_0), Just(CvssVersion::V3_1), Just(CvssVersion::V4_0)]
}

fn generated() -> impl Strategy<Value = Generated> {
    version().prop_flat_map(|version| {
        let choices: Vec<BoxedStrategy<Option<Component>>> = table(version)
            .iter()
            .enumerate()
            .map(|(position, &(metric, mandatory, values))| {
                let value = proptest::sample::select(values).prop_map(move |v| (position, metric, v));
                if mandatory { value.prop_map(Some).boxed() } else { proptest::option::of(value).boxed() }
            })
            .collect();
        choices.prop_flat_map(move |chosen| {
            let components: Vec<_> = chosen.into_iter().flatten().collect();
            Just(components).prop_shuffle().prop_map(move |components| Generated { version, components })
        })
    })
}

/// Checks what every accepted vector must satisfy, whatever its origin.
fn check_accepted(text: &str, vector: &CvssVector) -> Result<(), TestCaseError> {
    prop_assert_eq!(vector.as_str(), text);
    prop_assert_eq!(vector.to_string(), text);
    let score = vector.score();
    prop_assert!(score.is_finite() && (0.0..=10.0).contains(&score), "{text}: score {score}");
    prop_assert!(
        ((score * 10.0).round() - score * 10.0).abs() < 1e-9,
        "{text}: score {score} has one decimal"
    );
    prop_assert_eq!(vector.severity(), CvssSeverity::from_score(score));
    prop_assert!(vector.normalized().starts_with(&prefix(vector.version())));
    // The normalised form is a fixed point that means the same.
    let again = CvssVector::parse(vector.normalized())
        .map_err(|e| TestCaseError::fail(format!("{text}: normalised form refused: {e}")))?;
    prop_assert_eq!(again.normalized(), vector.normalized());
    prop_assert_eq!(again.score(), score);
    prop_assert_eq!(again.nomenclature(), vector.nomenclature());
    Ok(())
}

/// Text made of the characters and pieces vectors are made of, so that the
/// parser gets past its first checks more often than with random text.
fn vector_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("CVSS:3.1".to_owned()),
        Just("CVSS:4.0".to_owned()),
        Just("CVSS:3.0".to_owned()),
        Just("/".to_owned()),
        Just(":".to_owned()),
        proptest::sample::select(V4.iter().map(|(m, _, _)| *m).collect::<Vec<_>>()).prop_map(str::to_owned),
        proptest::sample::select(V3.iter().map(|(m, _, _)| *m).collect::<Vec<_>>()).prop_map(str::to_owned),
        "[A-Za-z]{1,2}",
        "[/:A-Z0-9 ]{1,3}",
        "\\PC",
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any text at all: a typed error or a vector that satisfies every
    /// invariant, never a panic.
    #[test]
    fn arbitrary_text_is_refused_or_a_sound_vector(text in "\\PC{0,200}") {
        if let Ok(vector) = CvssVector::parse(&text) {
            check_accepted(&text, &vector)?;
        }
    }

    /// The same with text assembled from vector pieces, which reaches the
    /// metric and value checks.
    #[test]
    fn vector_like_text_is_refused_or_a_sound_vector(text in vector_like()) {
        match CvssVector::parse(&text) {
            Ok(vector) => check_accepted(&text, &vector)?,
            Err(CvssError::Unscorable { reason }) => {
                prop_assert!(false, "{text}: accepted by the checks but not by the scorer: {reason}");
            }
            Err(_) => {}
        }
    }

    /// Every well-formed vector parses: the text is kept as written, the
    /// normalised form is the specification's order without `X`, every
    /// metric reads back, the score is in range and labelled by the metric
    /// groups that are really given.
    #[test]
    fn generated_vectors_parse_and_normalise(generated in generated()) {
        let text = generated.text();
        let vector = CvssVector::parse(&text)
            .map_err(|e| TestCaseError::fail(format!("{text}: refused: {e}")))?;
        check_accepted(&text, &vector)?;
        prop_assert_eq!(vector.version(), generated.version);
        prop_assert_eq!(vector.normalized(), generated.normalized());
        for (_, metric, value) in &generated.components {
            prop_assert_eq!(vector.metric(metric), Some(*value), "{}", metric);
        }
        for (metric, _, _) in table(generated.version) {
            if !generated.components.iter().any(|(_, m, _)| m == metric) {
                prop_assert_eq!(vector.metric(metric), None, "{}", metric);
            }
        }
        let expected_nomenclature = match generated.version {
            // Only the base metrics are scored for v3.x, so the score is the
            // base vector's.
            CvssVersion::V3_0 | CvssVersion::V3_1 => {
                let base = CvssVector::parse(&generated.base_only()).expect("the base metrics alone parse");
                prop_assert_eq!(vector.score(), base.score());
                CvssNomenclature::Base
            }
            CvssVersion::V4_0 => {
                let threat = generated.defined("E");
                let environmental = V4_ENVIRONMENTAL.iter().any(|m| generated.defined(m));
                match (threat, environmental) {
                    (false, false) => CvssNomenclature::Base,
                    (true, false) => CvssNomenclature::BaseThreat,
                    (false, true) => CvssNomenclature::BaseEnvironmental,
                    (true, true) => CvssNomenclature::BaseThreatEnvironmental,
                }
            }
        };
        prop_assert_eq!(vector.nomenclature(), expected_nomenclature);
    }

    /// Leaving out any base metric is refused, naming it.
    #[test]
    fn a_missing_base_metric_is_refused(generated in generated(), pick in any::<proptest::sample::Index>()) {
        let specs = table(generated.version);
        let base: Vec<usize> = (0..generated.components.len())
            .filter(|i| specs[generated.components[*i].0].1)
            .collect();
        let mut broken = generated.clone();
        let (_, metric, _) = broken.components.remove(base[pick.index(base.len())]);
        match CvssVector::parse(&broken.text()) {
            Err(CvssError::MissingBaseMetrics { metrics }) => prop_assert_eq!(metrics, vec![metric]),
            other => prop_assert!(false, "{}: {:?}", broken.text(), other),
        }
    }

    /// A metric given twice (even with the same value) is refused.
    #[test]
    fn a_repeated_metric_is_refused(generated in generated(), pick in any::<proptest::sample::Index>(), at in any::<proptest::sample::Index>()) {
        let mut broken = generated.clone();
        let copy = broken.components[pick.index(broken.components.len())];
        let position = at.index(broken.components.len() + 1);
        broken.components.insert(position, copy);
        match CvssVector::parse(&broken.text()) {
            Err(CvssError::RepeatedMetric { metric }) => prop_assert_eq!(metric, copy.1),
            other => prop_assert!(false, "{}: {:?}", broken.text(), other),
        }
    }

    /// A value the specification does not spell that way (another case, a
    /// value of no metric, an empty one) is refused.
    #[test]
    fn a_value_out_of_the_specification_is_refused(
        generated in generated(),
        pick in any::<proptest::sample::Index>(),
        replacement in prop_oneof![Just(String::new()), "[A-Za-z]{1,6}", "\\PC{1,4}"],
    ) {
        let specs = table(generated.version);
        let index = pick.index(generated.components.len());
        let (position, metric, _) = generated.components[index];
        prop_assume!(!specs[position].2.contains(&replacement.as_str()));
        let text = generated
            .components
            .iter()
            .enumerate()
            .fold(prefix(generated.version), |mut text, (i, (_, m, v))| {
                let value = if i == index { replacement.as_str() } else { v };
                text.push_str(&format!("/{m}:{value}"));
                text
            });
        let refused = CvssVector::parse(&text);
        prop_assert!(refused.is_err(), "{text} accepted with {metric}:{replacement:?}");
    }

    /// White space anywhere, a trailing separator, or the prefix in another
    /// case is refused: the specifications allow none of them.
    #[test]
    fn a_corrupted_spelling_is_refused(
        generated in generated(),
        at in any::<proptest::sample::Index>(),
        space in proptest::sample::select(vec![" ", "\t", "\n", "\u{a0}"]),
        corruption in 0..3u8,
    ) {
        let text = generated.text();
        let broken = match corruption {
            0 => {
                let boundaries: Vec<usize> = (0..=text.len()).filter(|i| text.is_char_boundary(*i)).collect();
                let i = boundaries[at.index(boundaries.len())];
                format!("{}{space}{}", &text[..i], &text[i..])
            }
            1 => format!("{text}/"),
            _ => text.replacen("CVSS", "cvss", 1),
        };
        prop_assert!(CvssVector::parse(&broken).is_err(), "{:?} accepted", broken);
    }
}
