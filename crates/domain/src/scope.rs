//! Product scopes: which cases a principal may know of.
//!
//! A principal's token lists product scopes: product names (compared
//! case-insensitively, blanks around them ignored), purl prefixes
//! (`pkg:npm/@acme/`, compared as ASCII case-insensitive prefixes), or `*`
//! for every product. A case is in scope when any of its products is; a case
//! without products, or whose free-text products match no scope, is in scope
//! only for `*` (and for admins, who hold every scope).

use std::fmt;

/// Most scopes one principal may hold; a longer claim is cut here.
pub const MAX_SCOPES: usize = 1000;
/// Longest scope; longer ones are dropped.
pub const MAX_SCOPE_CHARS: usize = 500;

/// The product scopes of a principal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scopes {
    /// Every product (`*`, admins, and callers when authentication is off).
    All,
    /// These products or purl prefixes only; empty: no case at all.
    #[default]
    None,
    Products(Vec<String>),
}

impl Scopes {
    /// Scopes from the claim's values; blanks and over-long values are
    /// dropped, `*` anywhere means all.
    pub fn from_claim<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut products = Vec::new();
        for value in values.into_iter().take(MAX_SCOPES) {
            let value = value.trim();
            if value == "*" {
                return Self::All;
            }
            if !value.is_empty() && value.chars().count() <= MAX_SCOPE_CHARS {
                products.push(value.to_owned());
            }
        }
        if products.is_empty() { Self::None } else { Self::Products(products) }
    }

    /// Whether one product is in scope.
    pub fn permits_product(&self, product: &str) -> bool {
        match self {
            Self::All => true,
            Self::None => false,
            Self::Products(scopes) => scopes.iter().any(|s| matches(s, product)),
        }
    }

    /// Whether a case with `products` is in scope: any of them is (a case
    /// without products only for [`Scopes::All`]).
    pub fn permits<S: AsRef<str>>(&self, products: &[S]) -> bool {
        match self {
            Self::All => true,
            _ => products.iter().any(|p| self.permits_product(p.as_ref())),
        }
    }

    /// True for [`Scopes::All`].
    pub fn is_all(&self) -> bool {
        matches!(self, Self::All)
    }
}

fn matches(scope: &str, product: &str) -> bool {
    let product = product.trim();
    if scope.len() > 4 && scope[..4].eq_ignore_ascii_case("pkg:") {
        return product.len() >= scope.len()
            && product.is_char_boundary(scope.len())
            && product[..scope.len()].eq_ignore_ascii_case(scope);
    }
    product.eq_ignore_ascii_case(scope) || product.to_lowercase() == scope.to_lowercase()
}

/// As recorded with a command's event (`*`, or the scopes comma-separated).
impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::None => Ok(()),
            Self::Products(p) => f.write_str(&p.join(",")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_case_insensitively_and_purls_by_prefix() {
        let s = Scopes::from_claim(["Acme Router", " pkg:npm/@acme/ ", ""]);
        assert!(s.permits(&["acme router"]));
        assert!(s.permits(&["other", "ACME ROUTER "]), "any product of the case");
        assert!(s.permits(&["pkg:npm/@acme/sdk@1.2.3"]));
        assert!(s.permits(&["PKG:NPM/@ACME/sdk"]));
        assert!(!s.permits(&["pkg:npm/@acmecorp/sdk", "Acme Router 2"]), "prefix of the purl, whole names");
        assert!(!s.permits::<&str>(&[]), "a case without products: only *");
        assert!(!s.permits(&["pkg:"]));
    }

    #[test]
    fn a_star_holds_everything_and_no_claim_nothing() {
        assert_eq!(Scopes::from_claim(["acme", "*"]), Scopes::All);
        assert!(Scopes::All.permits::<&str>(&[]));
        assert_eq!(Scopes::from_claim([]), Scopes::None);
        assert!(!Scopes::None.permits(&["acme"]));
        assert_eq!(Scopes::from_claim(["a", "b"]).to_string(), "a,b");
        let long = "x".repeat(MAX_SCOPE_CHARS + 1);
        assert_eq!(Scopes::from_claim([long.as_str()]), Scopes::None);
    }

    #[test]
    fn non_ascii_names_fold_and_prefixes_respect_char_boundaries() {
        let s = Scopes::from_claim(["Überwachung", "pkg:x/é"]);
        assert!(s.permits(&["überwachung"]));
        assert!(!s.permits(&["pkg:x/\u{e8}"]));
        assert!(!s.permits(&["pkg:x"]));
    }
}
