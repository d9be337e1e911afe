//! The shipped NATS server configuration: `deploy/nats/psirt-auth.conf`
//! grants each service exactly its own aggregates (the ownership table of
//! the event store) and nothing that changes the stream, and the Helm values
//! carry the same accounts (Helm is not available here, so the block in
//! `deploy/nats/values.yaml` is compared with its rendering from the conf).

use std::path::Path;

use serde_json::{Map, Value};

fn repo(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// A parser for the part of the NATS configuration syntax the shipped
/// file uses: maps in braces, arrays in brackets, `key: value` (or `=`,
/// or a space), quoted strings, bare words, `$VARIABLE` references
/// (kept as `"$VARIABLE"`), `#` comments, commas or newlines between items.
struct Conf<'a> {
    text: &'a [u8],
    at: usize,
}

impl Conf<'_> {
    fn parse(text: &str) -> Value {
        let mut conf = Conf { text: text.as_bytes(), at: 0 };
        let value = conf.map_body(None);
        conf.skip();
        assert_eq!(conf.at, conf.text.len(), "trailing text at byte {}", conf.at);
        value
    }

    fn skip(&mut self) {
        while self.at < self.text.len() {
            match self.text[self.at] {
                b' ' | b'\t' | b'\r' | b'\n' | b',' | b';' => self.at += 1,
                b'#' => {
                    while self.at < self.text.len() && self.text[self.at] != b'\n' {
                        self.at += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn word(&mut self) -> String {
        let start = self.at;
        while self.at < self.text.len() && !b" \t\r\n,;:=}]#{[".contains(&self.text[self.at]) {
            self.at += 1;
        }
        String::from_utf8_lossy(&self.text[start..self.at]).into_owned()
    }

    fn value(&mut self) -> Value {
        self.skip();
        match self.text[self.at] {
            b'{' => {
                self.at += 1;
                self.map_body(Some(b'}'))
            }
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                loop {
                    self.skip();
                    if self.text[self.at] == b']' {
                        self.at += 1;
                        return Value::Array(items);
                    }
                    items.push(self.value());
                }
            }
            b'"' => {
                self.at += 1;
                let start = self.at;
                while self.text[self.at] != b'"' {
                    self.at += 1;
                }
                self.at += 1;
                Value::String(String::from_utf8_lossy(&self.text[start..self.at - 1]).into_owned())
            }
            _ => Value::String(self.word()),
        }
    }

    fn map_body(&mut self, close: Option<u8>) -> Value {
        let mut map = Map::new();
        loop {
            self.skip();
            if self.at >= self.text.len() {
                assert!(close.is_none(), "unclosed map");
                return Value::Object(map);
            }
            if Some(self.text[self.at]) == close {
                self.at += 1;
                return Value::Object(map);
            }
            let key = self.word();
            assert!(!key.is_empty(), "a key expected at byte {}", self.at);
            while self.at < self.text.len() && b" \t:=".contains(&self.text[self.at]) {
                self.at += 1;
            }
            let value = self.value();
            map.insert(key, value);
        }
    }
}

/// The YAML the Helm values carry for a conf value: block style, strings
/// quoted, variables as the chart's unquoted `<< $VAR >>`.
fn yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match v {
                    Value::String(_) => {
                        out.push_str(&format!("{pad}{key}: "));
                        yaml(v, 0, out);
                    }
                    _ => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        yaml(v, indent + 2, out);
                    }
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                let mut inner = String::new();
                yaml(item, indent + 2, &mut inner);
                out.push_str(&format!("{pad}- {}", inner.trim_start()));
            }
        }
        other => out.push_str(&format!("{}\n", scalar(other))),
    }
}

fn scalar(value: &Value) -> String {
    let text = value.as_str().unwrap_or_default();
    match text.strip_prefix('$') {
        Some(var) if var.chars().all(|c| c.is_ascii_uppercase() || c == '_') => format!("<< ${var} >>"),
        _ => format!("{text:?}"),
    }
}

fn shipped() -> Value {
    Conf::parse(&repo("deploy/nats/psirt-auth.conf"))
}

/// The users of the PSIRT account, by the variable holding their key.
fn users(conf: &Value) -> Vec<(String, Vec<String>, Vec<String>)> {
    let users = conf["accounts"]["PSIRT"]["users"].as_array().expect("users");
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    users
        .iter()
        .map(|u| {
            (
                u["nkey"].as_str().expect("nkey").to_owned(),
                strings(&u["permissions"]["publish"]["allow"]),
                strings(&u["permissions"]["subscribe"]["allow"]),
            )
        })
        .collect()
}

#[test]
fn each_service_may_publish_exactly_its_own_aggregates_and_never_change_the_stream() {
    let conf = shipped();
    assert_eq!(conf["accounts"]["PSIRT"]["jetstream"], "enabled");
    let users = users(&conf);
    let owners = psirt_eventstore::ownership::owners();
    assert_eq!(users.len(), owners.len() + 1, "the admin and one user per service");
    for (service, aggregates) in owners {
        let var = format!("$PSIRT_NATS_{}_NKEY", service.to_uppercase());
        let (_, publish, subscribe) =
            users.iter().find(|u| u.0 == var).unwrap_or_else(|| panic!("no user {var}"));
        let mut events: Vec<&str> =
            publish.iter().filter(|s| s.starts_with("psirt.")).map(String::as_str).collect();
        let mut wanted: Vec<String> = aggregates.iter().map(|a| format!("psirt.evt.{a}.>")).collect();
        events.sort_unstable();
        wanted.sort();
        assert_eq!(events, wanted, "{service} publishes exactly its aggregates");
        for subject in publish.iter().filter(|s| s.starts_with("$JS.")) {
            for forbidden in
                [".STREAM.CREATE.", ".STREAM.UPDATE.", ".STREAM.DELETE.", ".STREAM.PURGE.", ".MSG.DELETE."]
            {
                assert!(!subject.contains(forbidden), "{service} may {subject}");
            }
            assert!(
                !subject.ends_with(".>") || subject.contains(".proj-") || subject.contains("DIRECT.GET"),
                "{service} has a wildcard grant {subject}"
            );
            if let Some(rest) =
                subject.strip_prefix("$JS.API.CONSUMER.").or_else(|| subject.strip_prefix("$JS.ACK."))
            {
                assert!(
                    rest.contains(&format!("proj-{service}-")),
                    "{service} reaches another's consumer: {subject}"
                );
            }
        }
        assert_eq!(subscribe, &vec![format!("_INBOX_{service}.>")], "{service} hears only its own replies");
        assert_eq!(
            psirt_kit::backbone::inbox_prefix(&format!("psirt-{service}")),
            format!("_INBOX_{service}")
        );
    }
}

#[test]
fn the_helm_values_carry_the_same_accounts() {
    let mut expected = String::new();
    let accounts = Value::Object(Map::from_iter([("accounts".to_owned(), shipped()["accounts"].clone())]));
    yaml(&accounts, 4, &mut expected);
    let values = repo("deploy/nats/values.yaml");
    let begin = "    # BEGIN psirt-auth.conf";
    let end = "                  # END psirt-auth.conf";
    let start = values.find(begin).expect("values.yaml marks the accounts block");
    let start = start + values[start..].find('\n').expect("line") + 1;
    let stop = values.find(end).expect("end marker");
    let actual = &values[start..stop];
    assert!(
        actual == expected,
        "deploy/nats/values.yaml differs from deploy/nats/psirt-auth.conf; the block should read:\n{expected}"
    );
    // Secrets are referenced, never inlined: the keys come from a Secret.
    let seed =
        values.split(|c: char| !c.is_ascii_alphanumeric()).find(|w| w.starts_with("SU") && w.len() >= 50);
    assert_eq!(seed, None, "no NKey seed in the values");
    for name in ["ADMIN", "INTAKE", "TRIAGE", "REMEDIATION", "NOTIFICATION"] {
        assert!(values.contains(&format!("PSIRT_NATS_{name}_NKEY:")), "the env of {name}'s key");
    }
    assert!(values.contains("sync_interval: always"));
}

/// The ownership table names real event messages, and every event message of
/// the proto package belongs to an aggregate: a new event type missing from
/// the table would be parked as foreign by every consumer.
#[test]
fn the_ownership_table_covers_every_event_message() {
    use prost::Message as _;
    // Messages of the package that are parts of events, never events themselves.
    const VALUE_TYPES: &[&str] =
        &["Acknowledgment", "AdvisoryContent", "SubscriptionSettings", "DueDateChange"];
    let set =
        prost_types::FileDescriptorSet::decode(psirt_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
    let messages: Vec<String> = set
        .file
        .iter()
        .filter(|f| f.package() == psirt_eventstore::ownership::EVENT_PACKAGE)
        .flat_map(|f| f.message_type.iter().map(|m| m.name().to_owned()))
        .collect();
    assert!(messages.len() > 40, "{messages:?}");
    let listed: Vec<&str> =
        psirt_eventstore::ownership::AGGREGATES.iter().flat_map(|a| a.event_types.iter().copied()).collect();
    for name in &listed {
        assert!(messages.iter().any(|m| m == name), "{name} is not a message of the events package");
    }
    for message in &messages {
        assert!(
            listed.contains(&message.as_str()) || VALUE_TYPES.contains(&message.as_str()),
            "event {message} belongs to no aggregate in psirt_eventstore::ownership"
        );
    }
}
