//! The proto comments and the validators state one rule per request field:
//! this reads every request message (and the messages they contain) of the
//! intake, triage, remediation, notification and admin APIs from the
//! `.proto` files and compares the limit each field's comment states with
//! its row of `psirt_domain::validation::fields::REQUEST_FIELDS`, the rules
//! the validators apply.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use psirt_domain::validation::fields::{Each, REQUEST_FIELDS, Rule};
use psirt_domain::validation::{MAX_PAGE_TOKEN_CHARS, MAX_REQUEST_ID_CHARS, Text, Unit};
use psirt_domain::vers::MAX_VERS_CHARS;

const PACKAGES: [&str; 6] = ["intake", "triage", "remediation", "notification", "admin", "common"];

#[derive(Debug, Clone)]
struct Field {
    label: String,
    ty: String,
    name: String,
    comment: String,
}

/// Messages by (package, name), fields in order.
type Messages = BTreeMap<(String, String), Vec<Field>>;

fn proto_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto/psirt")
}

fn parse(package: &str, text: &str, messages: &mut Messages) {
    let package = format!("psirt.{package}.v1");
    // `Some(name)` for a message, `None` for an enum or a oneof.
    let mut stack: Vec<Option<String>> = Vec::new();
    let mut comment: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(text) = line.strip_prefix("//") {
            comment.push(text.trim().to_owned());
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["message", name, "{"] => {
                stack.push(Some((*name).to_owned()));
                messages.entry((package.clone(), (*name).to_owned())).or_default();
            }
            ["enum", _, "{"] => stack.push(None),
            ["oneof", _, "{"] => {
                // Fields of a oneof belong to the message around it.
                let outer = stack.iter().rev().flatten().next().cloned();
                stack.push(outer);
            }
            ["}"] => {
                stack.pop();
            }
            _ => {
                let in_enum = matches!(stack.last(), Some(None));
                if let (Some(Some(message)), false) = (stack.last(), in_enum) {
                    let (label, rest) = match words.first() {
                        Some(&"repeated") => ("repeated", &words[1..]),
                        Some(&"optional") => ("optional", &words[1..]),
                        _ => ("", &words[..]),
                    };
                    if let [ty, name, "=", ..] = rest {
                        messages.get_mut(&(package.clone(), message.clone())).expect("message").push(Field {
                            label: label.to_owned(),
                            ty: (*ty).to_owned(),
                            name: (*name).to_owned(),
                            comment: comment.join(" "),
                        });
                    }
                }
            }
        }
        comment.clear();
    }
}

fn messages() -> Messages {
    let mut messages = Messages::new();
    for package in PACKAGES {
        let dir = proto_dir().join(package).join("v1");
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "proto") {
                parse(package, &std::fs::read_to_string(&path).expect("proto"), &mut messages);
            }
        }
    }
    messages
}

/// The (package, name) a field type names, if it is a message of the six packages.
fn resolve(messages: &Messages, package: &str, ty: &str) -> Option<(String, String)> {
    let key = match ty.rsplit_once('.') {
        Some((pkg, name)) => (pkg.to_owned(), name.to_owned()),
        None => (package.to_owned(), ty.to_owned()),
    };
    messages.contains_key(&key).then_some(key)
}

/// `Message.field` → field of every request message and every message they contain.
fn request_fields(messages: &Messages) -> BTreeMap<String, Field> {
    let mut todo: Vec<(String, String)> = messages
        .keys()
        .filter(|(pkg, name)| name.ends_with("Request") && !pkg.contains("common"))
        .cloned()
        .collect();
    let mut seen = BTreeSet::new();
    let mut out = BTreeMap::new();
    while let Some(key) = todo.pop() {
        if !seen.insert(key.clone()) {
            continue;
        }
        for field in &messages[&key] {
            if let Some(inner) = resolve(messages, &key.0, &field.ty) {
                todo.push(inner);
            }
            let name = format!("{}.{}", key.1, field.name);
            let previous = out.insert(name.clone(), field.clone());
            assert!(
                previous.is_none(),
                "{name} is defined in two packages: the table's names would be ambiguous"
            );
        }
    }
    out
}

/// Words of a comment, lower case, punctuation around them dropped.
fn words(comment: &str) -> Vec<String> {
    comment
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| ",.;:()".contains(c)).to_lowercase())
        .collect()
}

fn range(word: &str) -> Option<(usize, usize)> {
    let (a, b) = word.split_once("..")?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// A limit a comment states: (min if stated, max, unit), for `what`
/// ("character", "entr" for entries); `each`: the one after "each".
fn stated(comment: &str, what: &str, each: bool) -> Option<(Option<usize>, usize, Unit)> {
    let w = words(comment);
    let after_each = w.iter().position(|x| x == "each");
    for i in 0..w.len() {
        if each != after_each.is_some_and(|e| i > e) {
            continue;
        }
        let next = |k: usize| w.get(i + k).map(String::as_str).unwrap_or_default();
        if let Some((min, max)) = range(&w[i]) {
            if next(1).starts_with(what) {
                return Some((Some(min), max, Unit::Chars));
            }
        }
        if w[i] == "most" && i > 0 && w[i - 1] == "at" {
            if let Ok(n) = next(1).parse::<usize>() {
                if next(2).starts_with(what) {
                    return Some((None, n, Unit::Chars));
                }
                if next(2) == "kib" && what == "character" {
                    return Some((None, n * 1024, Unit::Bytes));
                }
            }
        }
        if let Ok(min) = w[i].parse::<usize>() {
            if next(1).starts_with("character") && next(2) == "to" && next(4) == "kib" && what == "character"
            {
                if let Ok(max) = next(3).parse::<usize>() {
                    return Some((Some(min), max * 1024, Unit::Bytes));
                }
            }
        }
    }
    None
}

fn compare_text(problems: &mut Vec<String>, name: &str, comment: &str, rule: Text, each: bool) {
    match stated(comment, "character", each) {
        None => problems.push(format!("{name}: the comment states no limit; the code applies {rule:?}")),
        Some((min, max, unit)) => {
            if max != rule.max || unit != rule.unit || min.is_some_and(|m| m != rule.min) {
                problems.push(format!(
                    "{name}: the comment states {min:?}..{max} {unit:?}, the code applies {}..{} {:?}",
                    rule.min, rule.max, rule.unit
                ));
            }
        }
    }
}

fn compare_max(problems: &mut Vec<String>, name: &str, comment: &str, max: usize, each: bool) {
    match stated(comment, "character", each) {
        Some((_, stated, Unit::Chars)) if stated == max => {}
        other => {
            problems.push(format!("{name}: the comment states {other:?}, the code applies at most {max}"))
        }
    }
}

fn check(name: &str, field: &Field, rule: Rule, problems: &mut Vec<String>) {
    let comment = field.comment.as_str();
    let repeated = field.label == "repeated";
    if repeated != matches!(rule, Rule::List { .. }) {
        problems.push(format!("{name}: repeated is {repeated}, the rule is {rule:?}"));
        return;
    }
    match rule {
        Rule::Text(text) => compare_text(problems, name, comment, text, false),
        Rule::Id => {
            if !comment.contains("(UUID)") {
                problems.push(format!("{name}: an id whose comment does not say (UUID)"));
            }
        }
        Rule::RequestId => {
            let phrase = format!("1..{MAX_REQUEST_ID_CHARS} characters of `[A-Za-z0-9._:-]`");
            if !comment.contains(&phrase) {
                problems.push(format!("{name}: a request id whose comment does not say {phrase}"));
            }
        }
        Rule::PageToken => compare_max(problems, name, comment, MAX_PAGE_TOKEN_CHARS, false),
        Rule::VersRange => {
            compare_text(problems, name, comment, Text::line(1, MAX_VERS_CHARS), false);
            if !comment.contains("vers") {
                problems.push(format!("{name}: a vers range whose comment does not say so"));
            }
        }
        Rule::Syntax { max } => compare_max(problems, name, comment, max, false),
        Rule::Known => {
            if !comment.to_lowercase().contains("one of") {
                problems.push(format!("{name}: a name of a fixed set whose comment does not say `one of`"));
            }
        }
        Rule::Message => {}
        Rule::List { min, max, each } => {
            match stated(comment, "entr", false) {
                Some((stated_min, stated_max, _))
                    if stated_max == max && stated_min.is_none_or(|m| m == min) => {}
                other => problems.push(format!(
                    "{name}: the comment states {other:?} entries, the code applies {min}..{max}"
                )),
            }
            match each {
                Each::Text(text) => compare_text(problems, name, comment, text, true),
                Each::Syntax { max } => compare_max(problems, name, comment, max, true),
                Each::Value | Each::Message => {}
            }
        }
    }
}

#[test]
fn every_request_field_has_one_rule_stated_alike_in_proto_and_code() {
    let messages = messages();
    let fields = request_fields(&messages);
    assert!(fields.contains_key("SubmitReportRequest.title"), "the parser found the requests");
    assert!(fields.contains_key("ProductVersionRange.range"), "and the messages they contain");
    let mut problems = Vec::new();
    let mut rows = BTreeMap::new();
    for (name, rule) in REQUEST_FIELDS {
        if rows.insert(*name, *rule).is_some() {
            problems.push(format!("{name}: two rows"));
        }
    }
    for (name, field) in &fields {
        let needs_rule = matches!(field.ty.as_str(), "string" | "bytes") || field.label == "repeated";
        match rows.get(name.as_str()) {
            None if needs_rule => {
                problems.push(format!("{name}: a request field with no row in REQUEST_FIELDS"))
            }
            None => {}
            Some(rule) => check(name, field, *rule, &mut problems),
        }
    }
    for name in rows.keys() {
        if !fields.contains_key(*name) {
            problems.push(format!("{name}: a row for no request field"));
        }
    }
    assert!(problems.is_empty(), "{} disagreements:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn the_comment_reader_reads_the_fixed_phrasing() {
    assert_eq!(
        stated("Required, 1..300 characters, single line.", "character", false),
        Some((Some(1), 300, Unit::Chars))
    );
    assert_eq!(stated("Optional, at most 64 KiB.", "character", false), Some((None, 65536, Unit::Bytes)));
    assert_eq!(
        stated("Required, 1 character to 64 KiB.", "character", false),
        Some((Some(1), 65536, Unit::Bytes))
    );
    let list = "Products. At most 100 entries, each 1..200 characters.";
    assert_eq!(stated(list, "entr", false), Some((None, 100, Unit::Chars)));
    assert_eq!(stated(list, "character", true), Some((Some(1), 200, Unit::Chars)));
    assert_eq!(stated(list, "character", false), None);
}
