//! Text templates over a case and an event: the subject and body of an
//! e-mail, the summary, description, comments and custom fields of a Jira
//! issue, the fields of a ServiceNow record.
//!
//! A template is text with `{{ name }}` placeholders. Names are checked
//! when the template is parsed (at configuration load), so a typo is a
//! start-up error, not an empty field in production. Rendering cannot
//! fail: every known name has a value (possibly empty).
//!
//! Names: `case.id`, `case.key`, `case.title`, `case.status`,
//! `case.severity`, `case.products` (comma-separated), `case.cves`
//! (comma-separated), `case.embargoed` (`true`/`false`), `event.type` (the
//! short name, e.g. `CaseAccepted`), `event.id`, `event.time` (RFC 3339),
//! `event.summary` (one sentence), `delivery.id`, `case.link` (the link to
//! the case for people who may look; empty when none is configured). `{{{{` is a literal `{{`.

use std::fmt;

/// Every placeholder name a template may use.
pub const NAMES: [&str; 15] = [
    "case.id",
    "case.key",
    "case.title",
    "case.status",
    "case.severity",
    "case.products",
    "case.cves",
    "case.embargoed",
    "case.link",
    "event.type",
    "event.id",
    "event.time",
    "event.summary",
    "delivery.id",
    "ticket.key",
];

/// Longest template text.
pub const MAX_TEMPLATE_CHARS: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Name(usize),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template is longer than {MAX_TEMPLATE_CHARS} characters")]
    TooLong,
    #[error("unclosed placeholder at character {0}")]
    Unclosed(usize),
    #[error("unknown placeholder {0:?}; known: {names}", names = NAMES.join(", "))]
    UnknownName(String),
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        if source.chars().count() > MAX_TEMPLATE_CHARS {
            return Err(TemplateError::TooLong);
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            text.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            if let Some(escaped) = after.strip_prefix("{{") {
                text.push_str("{{");
                rest = escaped;
                continue;
            }
            let close =
                after.find("}}").ok_or_else(|| TemplateError::Unclosed(source.len() - rest.len() + open))?;
            let name = after[..close].trim();
            let index = NAMES
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| TemplateError::UnknownName(name.to_owned()))?;
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Name(index));
            rest = &after[close + 2..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Self { source: source.to_owned(), parts })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The names this template uses.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Name(i) => Some(NAMES[*i]),
            Part::Text(_) => None,
        })
    }

    pub fn render(&self, values: &Values) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Name(i) => out.push_str(&values.0[*i]),
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// The values of the placeholders, in the order of [`NAMES`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values([String; NAMES.len()]);

impl Values {
    /// Sets `name`; unknown names are ignored (they cannot be in a parsed template).
    #[must_use]
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        if let Some(i) = NAMES.iter().position(|n| *n == name) {
            self.0[i] = value.into();
        }
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        NAMES.iter().position(|n| *n == name).map(|i| self.0[i].as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        Values::default().with("case.key", "PSIRT-2026-0001").with("case.title", "Heap overflow in parser")
    }

    #[test]
    fn given_placeholders_when_rendered_then_values_are_substituted() {
        let t = Template::parse("[{{case.key}}] {{ case.title }}").unwrap();
        assert_eq!(t.render(&values()), "[PSIRT-2026-0001] Heap overflow in parser");
        assert_eq!(t.names().collect::<Vec<_>>(), ["case.key", "case.title"]);
    }

    #[test]
    fn given_a_known_name_without_value_when_rendered_then_it_is_empty() {
        let t = Template::parse("CVE: {{case.cves}}.").unwrap();
        assert_eq!(t.render(&values()), "CVE: .");
    }

    #[test]
    fn given_an_unknown_name_when_parsed_then_it_is_refused_naming_it() {
        let e = Template::parse("{{case.titel}}").unwrap_err();
        assert_eq!(e, TemplateError::UnknownName("case.titel".to_owned()));
        assert!(e.to_string().contains("case.title"), "{e}");
    }

    #[test]
    fn given_an_unclosed_placeholder_when_parsed_then_its_position_is_named() {
        assert_eq!(Template::parse("ab {{case.key").unwrap_err(), TemplateError::Unclosed(3));
    }

    #[test]
    fn given_escaped_braces_when_rendered_then_they_stay_literal() {
        let t = Template::parse("{{{{case.key}} is {{case.key}}").unwrap();
        assert_eq!(t.render(&values()), "{{case.key}} is PSIRT-2026-0001");
    }

    #[test]
    fn given_text_without_placeholders_then_it_renders_as_is() {
        let t = Template::parse("plain }} text").unwrap();
        assert_eq!(t.render(&Values::default()), "plain }} text");
    }

    #[test]
    fn given_an_oversized_template_then_it_is_refused() {
        let big = "x".repeat(MAX_TEMPLATE_CHARS + 1);
        assert_eq!(Template::parse(&big).unwrap_err(), TemplateError::TooLong);
    }
}
