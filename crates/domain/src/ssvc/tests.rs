use std::collections::BTreeSet;

use super::*;

const EXPLOITATION: [Exploitation; 3] = [Exploitation::None, Exploitation::PoC, Exploitation::Active];
const UTILITY: [Utility; 3] = [Utility::Laborious, Utility::Efficient, Utility::SuperEffective];
const TECHNICAL_IMPACT: [TechnicalImpact; 2] = [TechnicalImpact::Partial, TechnicalImpact::Total];
const PUBLIC_SAFETY: [PublicSafetyImpact; 2] = [PublicSafetyImpact::Minimal, PublicSafetyImpact::Significant];

fn inputs(
    exploitation: Exploitation,
    automatable: Automatable,
    value_density: ValueDensity,
    technical_impact: TechnicalImpact,
    public_safety_impact: PublicSafetyImpact,
) -> SsvcInputs {
    SsvcInputs { exploitation, automatable, value_density, technical_impact, public_safety_impact }
}

/// Automatable and Value Density that give this utility (one such pair).
fn utility_inputs(utility: Utility) -> (Automatable, ValueDensity) {
    match utility {
        Utility::Laborious => (Automatable::No, ValueDensity::Diffuse),
        Utility::Efficient => (Automatable::Yes, ValueDensity::Diffuse),
        Utility::SuperEffective => (Automatable::Yes, ValueDensity::Concentrated),
    }
}

fn decide_on(e: Exploitation, u: Utility, ti: TechnicalImpact, psi: PublicSafetyImpact) -> SsvcDecision {
    let (automatable, value_density) = utility_inputs(u);
    decide(&inputs(e, automatable, value_density, ti, psi))
}

#[test]
fn utility_follows_the_child_tree() {
    assert_eq!(Utility::of(Automatable::No, ValueDensity::Diffuse), Utility::Laborious);
    assert_eq!(Utility::of(Automatable::No, ValueDensity::Concentrated), Utility::Efficient);
    assert_eq!(Utility::of(Automatable::Yes, ValueDensity::Diffuse), Utility::Efficient);
    assert_eq!(Utility::of(Automatable::Yes, ValueDensity::Concentrated), Utility::SuperEffective);
}

#[test]
fn the_table_covers_every_combination_exactly_once() {
    let mut seen = BTreeSet::new();
    for (e, u, ti, psi, _) in SUPPLIER_TREE {
        assert!(seen.insert((e, u, ti, psi)), "row {e} {u} {ti} {psi} appears twice");
    }
    for e in EXPLOITATION {
        for u in UTILITY {
            for ti in TECHNICAL_IMPACT {
                for psi in PUBLIC_SAFETY {
                    assert!(seen.contains(&(e, u, ti, psi)), "no row for {e} {u} {ti} {psi}");
                }
            }
        }
    }
    assert_eq!(seen.len(), 36);
}

#[test]
fn decide_returns_the_table_row_for_every_combination_of_the_five_inputs() {
    for (e, u, ti, psi, decision) in SUPPLIER_TREE {
        for automatable in [Automatable::No, Automatable::Yes] {
            for value_density in [ValueDensity::Diffuse, ValueDensity::Concentrated] {
                if Utility::of(automatable, value_density) == u {
                    assert_eq!(decide(&inputs(e, automatable, value_density, ti, psi)), decision);
                }
            }
        }
    }
}

#[test]
fn raising_any_input_never_lowers_the_priority() {
    // Every pair of rows where one is at least the other on all four points.
    let mut compared = 0;
    for (e1, u1, ti1, psi1, d1) in SUPPLIER_TREE {
        for (e2, u2, ti2, psi2, d2) in SUPPLIER_TREE {
            if e1 <= e2 && u1 <= u2 && ti1 <= ti2 && psi1 <= psi2 {
                assert!(d1 <= d2, "{e1}/{u1}/{ti1}/{psi1} -> {d1} but {e2}/{u2}/{ti2}/{psi2} -> {d2}");
                compared += 1;
            }
        }
    }
    // 6 * 6 * 3 * 3 ordered pairs per point: (3+2+1) * (3+2+1) * (2+1) * (2+1).
    assert_eq!(compared, 324);
}

#[test]
fn anchor_rows() {
    use Exploitation::{Active, None, PoC};
    use PublicSafetyImpact::{Minimal, Significant};
    use TechnicalImpact::{Partial, Total};
    use Utility::{Efficient, Laborious, SuperEffective};
    for (e, u, ti, psi, expected) in [
        (None, Laborious, Partial, Minimal, SsvcDecision::Defer),
        (Active, SuperEffective, Total, Significant, SsvcDecision::Immediate),
        (None, Laborious, Partial, Significant, SsvcDecision::Scheduled),
        // The published table says Out-of-Cycle here: with active
        // exploitation nothing in the supplier tree is merely Scheduled.
        (Active, Laborious, Partial, Minimal, SsvcDecision::OutOfCycle),
        (Active, Efficient, Total, Minimal, SsvcDecision::OutOfCycle),
        (PoC, SuperEffective, Total, Significant, SsvcDecision::Immediate),
        (None, SuperEffective, Total, Significant, SsvcDecision::OutOfCycle),
        (PoC, Laborious, Total, Minimal, SsvcDecision::Scheduled),
    ] {
        assert_eq!(decide_on(e, u, ti, psi), expected, "{e} {u} {ti} {psi}");
    }
}

#[test]
fn only_the_quietest_row_defers_and_active_exploitation_is_never_scheduled() {
    let deferred: Vec<_> = SUPPLIER_TREE.iter().filter(|row| row.4 == SsvcDecision::Defer).collect();
    assert_eq!(deferred.len(), 1);
    assert!(
        SUPPLIER_TREE
            .iter()
            .filter(|row| row.0 == Exploitation::Active)
            .all(|row| row.4 >= SsvcDecision::OutOfCycle)
    );
}

#[test]
fn values_display_and_parse_with_the_ssvc_spelling() {
    assert_eq!(SsvcDecision::OutOfCycle.to_string(), "Out-of-Cycle");
    assert_eq!(Utility::SuperEffective.to_string(), "Super Effective");
    assert_eq!(Exploitation::PoC.to_string(), "PoC");
    for decision in
        [SsvcDecision::Defer, SsvcDecision::Scheduled, SsvcDecision::OutOfCycle, SsvcDecision::Immediate]
    {
        assert_eq!(decision.to_string().parse::<SsvcDecision>(), Ok(decision));
    }
    assert_eq!("out-of-cycle".parse::<SsvcDecision>(), Ok(SsvcDecision::OutOfCycle));
    assert_eq!("public poc".parse::<Exploitation>(), Ok(Exploitation::PoC));
    assert_eq!("super effective".parse::<Utility>(), Ok(Utility::SuperEffective));
    assert_eq!("Significant".parse::<PublicSafetyImpact>(), Ok(PublicSafetyImpact::Significant));
    assert_eq!("Total".parse::<TechnicalImpact>(), Ok(TechnicalImpact::Total));
    assert_eq!("yes".parse::<Automatable>(), Ok(Automatable::Yes));
    assert_eq!("Concentrated".parse::<ValueDensity>(), Ok(ValueDensity::Concentrated));

    let error = "OutOfCycle".parse::<SsvcDecision>().expect_err("not the SSVC spelling");
    assert_eq!(
        error.to_string(),
        "\"OutOfCycle\" is not an SSVC supplier decision value (expected Defer, Scheduled, Out-of-Cycle, Immediate)"
    );
}

#[test]
fn inputs_serialize_with_stable_names() {
    let given = inputs(
        Exploitation::PoC,
        Automatable::Yes,
        ValueDensity::Concentrated,
        TechnicalImpact::Total,
        PublicSafetyImpact::Significant,
    );
    let json = serde_json::to_value(given).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({
            "exploitation": "poc",
            "automatable": "yes",
            "value_density": "concentrated",
            "technical_impact": "total",
            "public_safety_impact": "significant",
        })
    );
    assert_eq!(serde_json::from_value::<SsvcInputs>(json).expect("deserializes"), given);
    assert_eq!(serde_json::to_string(&SsvcDecision::OutOfCycle).expect("serializes"), "\"out_of_cycle\"");
}
