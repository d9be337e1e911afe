//! Rendering results: canonical proto3 JSON via prost-reflect for scripts,
//! and small aligned tables and key/value blocks for people. Text that came
//! from reporters is stripped of control characters before it reaches a terminal.

use std::io::Write;
use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use prost_types::Timestamp;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::CliError;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns and key/value blocks.
    Table,
    /// Canonical proto3 JSON of the response.
    Json,
}

/// The descriptors of the project (and the well-known wrapper types), decoded
/// once per process.
pub fn descriptor_pool() -> Result<&'static DescriptorPool, CliError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut pool = DescriptorPool::decode(psirt_proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())?;
        // `google.protobuf.BytesValue` shows events this client cannot decode
        // (see `displayable_any`); the project's protos do not import it.
        if pool.get_message_by_name(BYTES_VALUE).is_none()
            && let Some(file) = DescriptorPool::global().get_file_by_name("google/protobuf/wrappers.proto")
        {
            pool.add_file_descriptor_proto(file.file_descriptor_proto().clone())
                .map_err(|e| e.to_string())?;
        }
        Ok(pool)
    })
    .as_ref()
    .map_err(|e| CliError::Other(anyhow::anyhow!("bad embedded descriptor set: {e}")))
}

const BYTES_VALUE: &str = "google.protobuf.BytesValue";

/// Writes `message` as pretty canonical proto3 JSON (camelCase names, enum
/// names, RFC 3339 timestamps, 64-bit integers as strings), the mapping
/// every other protobuf tool uses, via the descriptors of the project.
/// `google.protobuf.Any` fields are expanded (`{"@type": ..., fields}`).
pub fn write_json<M>(w: &mut dyn Write, message: &M) -> Result<(), CliError>
where
    M: prost::Message + prost::Name,
{
    let dynamic = to_dynamic(message)?;
    serialize(&dynamic, &mut serde_json::Serializer::pretty(&mut *w), &M::full_name())?;
    writeln!(w)?;
    Ok(())
}

/// Like [`write_json`], but compact on one line: one message per line
/// (JSON Lines) for streams such as `case watch`.
pub fn write_json_line<M>(w: &mut dyn Write, message: &M) -> Result<(), CliError>
where
    M: prost::Message + prost::Name,
{
    let dynamic = to_dynamic(message)?;
    serialize(&dynamic, &mut serde_json::Serializer::new(&mut *w), &M::full_name())?;
    writeln!(w)?;
    Ok(())
}

fn to_dynamic<M>(message: &M) -> Result<DynamicMessage, CliError>
where
    M: prost::Message + prost::Name,
{
    let name = M::full_name();
    let descriptor = descriptor_pool()?
        .get_message_by_name(&name)
        .ok_or_else(|| CliError::Other(anyhow::anyhow!("no descriptor for {name}")))?;
    DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot decode {name}: {e}")))
}

fn serialize<W, F>(
    dynamic: &DynamicMessage,
    serializer: &mut serde_json::Serializer<W, F>,
    name: &str,
) -> Result<(), CliError>
where
    W: Write,
    F: serde_json::ser::Formatter,
{
    dynamic.serialize_with_options(serializer, &SerializeOptions::new()).map_err(|e| {
        match e.io_error_kind() {
            Some(_) => CliError::Output(e.into()),
            None => CliError::Other(anyhow::anyhow!("cannot encode {name} as JSON: {e}")),
        }
    })
}

/// `any` if its payload can be shown as JSON with the project's descriptors
/// (a known message type that decodes); otherwise the stored bytes wrapped
/// in a `google.protobuf.BytesValue`, which JSON shows as
/// `{"@type": ".../google.protobuf.BytesValue", "value": "<base64>"}`, so one
/// event newer than this client does not make a whole listing unprintable.
pub fn displayable_any(any: prost_types::Any) -> Result<prost_types::Any, CliError> {
    let pool = descriptor_pool()?;
    let decodes = any
        .type_url
        .rsplit_once('/')
        .and_then(|(_, name)| pool.get_message_by_name(name))
        .is_some_and(|descriptor| DynamicMessage::decode(descriptor, any.value.as_slice()).is_ok());
    if decodes {
        return Ok(any);
    }
    let descriptor = pool
        .get_message_by_name(BYTES_VALUE)
        .ok_or_else(|| CliError::Other(anyhow::anyhow!("no descriptor for {BYTES_VALUE}")))?;
    let mut wrapper = DynamicMessage::new(descriptor);
    wrapper.set_field_by_name("value", prost_reflect::Value::Bytes(any.value.into()));
    Ok(prost_types::Any {
        type_url: format!("type.googleapis.com/{BYTES_VALUE}"),
        value: prost::Message::encode_to_vec(&wrapper),
    })
}

/// A table with a header row; columns padded to their widest cell.
#[derive(Debug)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<const N: usize>(headers: [&str; N]) -> Self {
        Self { headers: headers.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    /// Adds a row; each cell is made single-line.
    pub fn row(&mut self, cells: impl IntoIterator<Item = String>) {
        self.rows.push(cells.into_iter().map(|c| sanitize_line(&c)).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Writes the table. Widths count characters, which is right for the
    /// ids, enum names and timestamps here; wide (CJK) characters in titles
    /// may shift the last column, which is why the title comes last.
    pub fn write(&self, w: &mut dyn Write) -> std::io::Result<()> {
        self.write_indented(w, 0)
    }

    /// [`Table::write`] with every line indented by `indent` spaces.
    pub fn write_indented(&self, w: &mut dyn Write, indent: usize) -> std::io::Result<()> {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(columns) {
                if i + 1 == columns {
                    // No padding after the last column: no trailing blanks.
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count() + 2));
                }
            }
            writeln!(w, "{:indent$}{}", "", line.trim_end())?;
        }
        Ok(())
    }
}

/// Writes `Key:  value` lines with the values aligned.
pub fn write_fields(w: &mut dyn Write, fields: &[(&str, String)]) -> std::io::Result<()> {
    write_fields_indented(w, fields, 0)
}

/// [`write_fields`] indented by `indent` spaces, for a section of a block.
pub fn write_fields_indented(
    w: &mut dyn Write,
    fields: &[(&str, String)],
    indent: usize,
) -> std::io::Result<()> {
    let width = fields.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    for (key, value) in fields {
        let label = format!("{key}:");
        writeln!(w, "{:indent$}{label:<width$}  {}", "", sanitize_line(value), width = width + 1)?;
    }
    Ok(())
}

/// Writes multi-line text indented by `indent` spaces, control characters
/// other than newlines removed.
pub fn write_block(w: &mut dyn Write, text: &str, indent: usize) -> std::io::Result<()> {
    for line in sanitize_block(text).lines() {
        if line.is_empty() {
            writeln!(w)?;
        } else {
            writeln!(w, "{:indent$}{line}", "")?;
        }
    }
    Ok(())
}

/// One line of text safe for a terminal: reporter-supplied text must not be
/// able to move the cursor, recolour or rewrite earlier output (escape
/// sequences), or break a table row (newlines). Control characters become spaces.
pub fn sanitize_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Like [`sanitize_line`], but keeps line breaks (`\r\n` becomes `\n`).
pub fn sanitize_block(text: &str) -> String {
    text.replace("\r\n", "\n")
        .chars()
        .map(|c| match c {
            '\n' => '\n',
            '\t' => ' ',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// Cuts `text` to at most `max` characters, marking a cut with `…`.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `2024-05-01T12:00:00Z` (UTC, whole seconds), or `-` when unset.
pub fn timestamp(ts: Option<&Timestamp>) -> String {
    let Some(ts) = ts else { return "-".to_owned() };
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp(ts.seconds)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("<invalid time {}s>", ts.seconds))
}

/// The short lowercase name of an enum value: `REPORT_STATUS_RECEIVED` with
/// prefix `REPORT_STATUS_` is `received`, matching the command-line values.
/// Values newer than this client show as `unknown(<n>)`.
pub fn enum_label(name: Option<&str>, prefix: &str, number: i32) -> String {
    match name {
        Some(name) => name.strip_prefix(prefix).unwrap_or(name).to_ascii_lowercase(),
        None => format!("unknown({number})"),
    }
}

/// `-` for an empty value, so key/value blocks have no blank values.
pub fn or_dash(value: &str) -> String {
    if value.is_empty() { "-".to_owned() } else { value.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(table: &Table) -> String {
        let mut buf = Vec::new();
        table.write(&mut buf).expect("write");
        String::from_utf8(buf).expect("utf-8")
    }

    #[test]
    fn table_aligns_columns() {
        let mut table = Table::new(["ID", "STATUS", "TITLE"]);
        table.row(["a".to_owned(), "received".to_owned(), "first".to_owned()]);
        table.row(["bbbb".to_owned(), "ack".to_owned(), "line\nbreak\x1b[31m".to_owned()]);
        assert_eq!(
            render(&table),
            "ID    STATUS    TITLE\na     received  first\nbbbb  ack       line break [31m\n"
        );
    }

    #[test]
    fn fields_align() {
        let mut buf = Vec::new();
        write_fields(&mut buf, &[("Id", "1".to_owned()), ("Long key", "2".to_owned())]).expect("write");
        assert_eq!(String::from_utf8(buf).expect("utf-8"), "Id:        1\nLong key:  2\n");
    }

    #[test]
    fn truncates_by_characters() {
        assert_eq!(truncate("short", 60), "short");
        assert_eq!(truncate("ääääää", 4), "äää…");
    }

    #[test]
    fn formats_timestamps_and_enums() {
        assert_eq!(timestamp(Some(&Timestamp { seconds: 0, nanos: 5 })), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(None), "-");
        assert_eq!(enum_label(Some("REPORT_STATUS_RECEIVED"), "REPORT_STATUS_", 1), "received");
        assert_eq!(enum_label(None, "REPORT_STATUS_", 9), "unknown(9)");
    }

    #[test]
    fn json_uses_the_proto_mapping() {
        use psirt_proto::intake::{GetReportResponse, Report, ReportStatus};
        let response = GetReportResponse {
            report: Some(Report {
                report_id: "r1".to_owned(),
                status: ReportStatus::Received as i32,
                version: 3,
                received_at: Some(Timestamp { seconds: 1_714_564_800, nanos: 0 }),
                ..Report::default()
            }),
        };
        let mut buf = Vec::new();
        write_json(&mut buf, &response).expect("json");
        let json: serde_json::Value = serde_json::from_slice(&buf).expect("valid json");
        assert_eq!(json["report"]["reportId"], "r1");
        assert_eq!(json["report"]["status"], "REPORT_STATUS_RECEIVED");
        assert_eq!(json["report"]["version"], "3");
        assert_eq!(json["report"]["receivedAt"], "2024-05-01T12:00:00Z");
    }
}
