//! CERT/CC's Stakeholder-Specific Vulnerability Categorization (SSVC v2),
//! supplier tree: how urgently to develop a fix, from exploitation, utility,
//! technical impact and public safety impact, as one published table.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The state of exploitation of the vulnerability (SSVC section "Exploitation").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exploitation {
    /// No evidence of active exploitation and no public proof of concept.
    None,
    /// A public proof of concept exists (or exploitation is well known).
    #[serde(rename = "poc")]
    PoC,
    /// Reliable evidence of exploitation in the wild.
    Active,
}

/// Whether an attacker can reliably automate steps 1-4 of the kill chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Automatable {
    No,
    Yes,
}

/// The concentration of resources an attacker gains per exploitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueDensity {
    Diffuse,
    Concentrated,
}

/// How useful exploiting the vulnerability is to an attacker; derived from
/// [`Automatable`] and [`ValueDensity`] by [`Utility::of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Utility {
    Laborious,
    Efficient,
    SuperEffective,
}

/// How much control over the affected component exploitation gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TechnicalImpact {
    Partial,
    Total,
}

/// Public safety impact; the full model derives it from Safety Impact
/// (Negligible → Minimal, anything higher → Significant), callers give it directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublicSafetyImpact {
    Minimal,
    Significant,
}

/// The supplier's patch development priority, least urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SsvcDecision {
    /// Do not work on the patch at present.
    Defer,
    /// Develop a fix within regularly scheduled maintenance efforts.
    Scheduled,
    /// Develop a fix out-of-cycle, taking resources from other projects.
    OutOfCycle,
    /// Develop and release a fix as quickly as possible, drawing on all resources.
    Immediate,
}

/// The decision points of the supplier tree, as triage assesses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SsvcInputs {
    pub exploitation: Exploitation,
    pub automatable: Automatable,
    pub value_density: ValueDensity,
    pub technical_impact: TechnicalImpact,
    pub public_safety_impact: PublicSafetyImpact,
}

impl SsvcInputs {
    pub fn utility(&self) -> Utility {
        Utility::of(self.automatable, self.value_density)
    }
}

impl Utility {
    /// SSVC's utility child tree.
    pub const fn of(automatable: Automatable, value_density: ValueDensity) -> Self {
        match (automatable, value_density) {
            (Automatable::No, ValueDensity::Diffuse) => Self::Laborious,
            (Automatable::No, ValueDensity::Concentrated) | (Automatable::Yes, ValueDensity::Diffuse) => {
                Self::Efficient
            }
            (Automatable::Yes, ValueDensity::Concentrated) => Self::SuperEffective,
        }
    }
}

/// The SSVC v2 supplier tree, one row per combination of its four decision
/// points (3 × 3 × 2 × 2 = 36), in the order of CERT/CC's published table
/// (`data/csvs/supplier-options.csv` in the CERTCC/SSVC repository, the same
/// rows as `supplier_patch_development_priority_1_0_0.csv` of later releases).
pub const SUPPLIER_TREE: [(Exploitation, Utility, TechnicalImpact, PublicSafetyImpact, SsvcDecision); 36] = {
    use Exploitation::{Active, None as NoExploit, PoC};
    use PublicSafetyImpact::{Minimal, Significant};
    use SsvcDecision::{Defer, Immediate, OutOfCycle, Scheduled};
    use TechnicalImpact::{Partial, Total};
    use Utility::{Efficient, Laborious, SuperEffective};
    [
        (NoExploit, Laborious, Partial, Minimal, Defer),
        (NoExploit, Laborious, Partial, Significant, Scheduled),
        (NoExploit, Laborious, Total, Minimal, Scheduled),
        (NoExploit, Laborious, Total, Significant, OutOfCycle),
        (NoExploit, Efficient, Partial, Minimal, Scheduled),
        (NoExploit, Efficient, Partial, Significant, OutOfCycle),
        (NoExploit, Efficient, Total, Minimal, Scheduled),
        (NoExploit, Efficient, Total, Significant, OutOfCycle),
        (NoExploit, SuperEffective, Partial, Minimal, Scheduled),
        (NoExploit, SuperEffective, Partial, Significant, OutOfCycle),
        (NoExploit, SuperEffective, Total, Minimal, OutOfCycle),
        (NoExploit, SuperEffective, Total, Significant, OutOfCycle),
        (PoC, Laborious, Partial, Minimal, Scheduled),
        (PoC, Laborious, Partial, Significant, OutOfCycle),
        (PoC, Laborious, Total, Minimal, Scheduled),
        (PoC, Laborious, Total, Significant, Immediate),
        (PoC, Efficient, Partial, Minimal, Scheduled),
        (PoC, Efficient, Partial, Significant, Immediate),
        (PoC, Efficient, Total, Minimal, OutOfCycle),
        (PoC, Efficient, Total, Significant, Immediate),
        (PoC, SuperEffective, Partial, Minimal, OutOfCycle),
        (PoC, SuperEffective, Partial, Significant, Immediate),
        (PoC, SuperEffective, Total, Minimal, OutOfCycle),
        (PoC, SuperEffective, Total, Significant, Immediate),
        (Active, Laborious, Partial, Minimal, OutOfCycle),
        (Active, Laborious, Partial, Significant, Immediate),
        (Active, Laborious, Total, Minimal, OutOfCycle),
        (Active, Laborious, Total, Significant, Immediate),
        (Active, Efficient, Partial, Minimal, OutOfCycle),
        (Active, Efficient, Partial, Significant, Immediate),
        (Active, Efficient, Total, Minimal, OutOfCycle),
        (Active, Efficient, Total, Significant, Immediate),
        (Active, SuperEffective, Partial, Minimal, Immediate),
        (Active, SuperEffective, Partial, Significant, Immediate),
        (Active, SuperEffective, Total, Minimal, Immediate),
        (Active, SuperEffective, Total, Significant, Immediate),
    ]
};

/// The supplier tree's decision for these inputs.
pub fn decide(inputs: &SsvcInputs) -> SsvcDecision {
    let utility = inputs.utility();
    SUPPLIER_TREE
        .iter()
        .find(|(e, u, ti, psi, _)| {
            *e == inputs.exploitation
                && *u == utility
                && *ti == inputs.technical_impact
                && *psi == inputs.public_safety_impact
        })
        .map(|row| row.4)
        // The table covers every combination (a test checks it); should that
        // ever break, the most urgent answer is the safe one.
        .unwrap_or(SsvcDecision::Immediate)
}

/// A name that is none of a decision point's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not an SSVC {decision_point} value (expected {})", .expected.join(", "))]
pub struct UnknownSsvcValue {
    pub decision_point: &'static str,
    pub value: String,
    pub expected: &'static [&'static str],
}

/// Display with SSVC's spelling, parse it back ignoring ASCII case.
macro_rules! spelled {
    ($type:ty, $point:literal, [$($variant:ident => $name:literal $(| $alias:literal)*),+ $(,)?]) => {
        impl $type {
            /// SSVC's name for the value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $type {
            type Err = UnknownSsvcValue;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $(
                    if text.eq_ignore_ascii_case($name) $(|| text.eq_ignore_ascii_case($alias))* {
                        return Ok(Self::$variant);
                    }
                )+
                Err(UnknownSsvcValue {
                    decision_point: $point,
                    value: text.to_owned(),
                    expected: &[$($name),+],
                })
            }
        }
    };
}

// "public poc" is how SSVC releases after v2.0 name PoC.
spelled!(Exploitation, "Exploitation", [None => "None", PoC => "PoC" | "public poc", Active => "Active"]);
spelled!(Automatable, "Automatable", [No => "No", Yes => "Yes"]);
spelled!(ValueDensity, "Value Density", [Diffuse => "Diffuse", Concentrated => "Concentrated"]);
spelled!(Utility, "Utility", [Laborious => "Laborious", Efficient => "Efficient", SuperEffective => "Super Effective"]);
spelled!(TechnicalImpact, "Technical Impact", [Partial => "Partial", Total => "Total"]);
spelled!(PublicSafetyImpact, "Public Safety Impact", [Minimal => "Minimal", Significant => "Significant"]);
spelled!(SsvcDecision, "supplier decision", [
    Defer => "Defer",
    Scheduled => "Scheduled",
    OutOfCycle => "Out-of-Cycle",
    Immediate => "Immediate",
]);

#[cfg(test)]
mod tests;
