//! How `connectorctl` prints: NDJSON, one JSON document, or a table for
//! people; and the progress bar drawn on a terminal during a sync.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use connectors_client::v1::sync_event::Event;
use connectors_client::v1::{Connector, ConnectorAvailability, EntityKind, ScopeState, Summary, SyncEvent, SyncMode};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tonic::Code;

use crate::Failure;

/// Output format (`--output`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One proto3 JSON object per line, written as it arrives.
    #[default]
    Ndjson,
    /// One JSON document: an array (of events, connectors, ...) or an object.
    Json,
    /// Aligned columns for people.
    Table,
}

/// Writes a sequence of JSON values as NDJSON or as one streamed JSON array
/// (no value is held back: a sync of a million entities is never buffered).
pub struct JsonSeq<W: Write> {
    out: W,
    format: Format,
    written: usize,
}

impl<W: Write> JsonSeq<W> {
    pub fn new(out: W, format: Format) -> Self {
        Self {
            out,
            format,
            written: 0,
        }
    }

    pub fn push(&mut self, value: &impl Serialize) -> Result<(), Failure> {
        let json = to_json(value)?;
        let text = match (self.format, self.written) {
            (Format::Json, 0) => format!("[\n  {json}"),
            (Format::Json, _) => format!(",\n  {json}"),
            _ => format!("{json}\n"),
        };
        self.written += 1;
        write_flushed(&mut self.out, &text)
    }

    pub fn finish(mut self) -> Result<(), Failure> {
        match (self.format, self.written) {
            (Format::Json, 0) => write_flushed(&mut self.out, "[]\n"),
            (Format::Json, _) => write_flushed(&mut self.out, "\n]\n"),
            _ => Ok(()),
        }
    }
}

pub fn to_json(value: &impl Serialize) -> Result<String, Failure> {
    serde_json::to_string(value).map_err(|err| Failure {
        code: Code::Internal,
        message: format!("encoding json: {err}"),
    })
}

pub fn write_flushed(out: &mut impl Write, text: &str) -> Result<(), Failure> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|err| Failure::io("writing stdout", err))
}

/// `ENTITY_KIND_REPOSITORY` as `repository`.
pub fn kind_name(kind: i32) -> String {
    let name = EntityKind::try_from(kind).map_or("unknown", |kind| kind.as_str_name());
    name.trim_start_matches("ENTITY_KIND_").to_ascii_lowercase()
}

/// Rows as aligned columns, the first row being the header. Every column
/// but the last is padded to its widest cell.
pub fn render_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            if column + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', widths[column] - cell.chars().count() + 2));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// The `list` table.
pub fn connectors_table(connectors: &[Connector]) -> String {
    let mut rows = vec![
        ["ID", "NAME", "AVAILABILITY", "AUTH", "INCREMENTAL", "KINDS", "REASON"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for connector in connectors {
        let availability = ConnectorAvailability::try_from(connector.availability)
            .map_or("unknown", |availability| availability.as_str_name())
            .trim_start_matches("CONNECTOR_AVAILABILITY_")
            .to_ascii_lowercase();
        rows.push(vec![
            connector.id.clone(),
            connector.display_name.clone(),
            availability,
            or_dash(&connector.auth_mode),
            if connector.supports_incremental { "yes" } else { "no" }.to_owned(),
            connector
                .kinds
                .iter()
                .map(|&kind| kind_name(kind))
                .collect::<Vec<_>>()
                .join(","),
            or_dash(&connector.reason),
        ]);
    }
    render_table(&rows)
}

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

/// The sync table, streamed: a row per upsert, deletion and scope status
/// (fixed-width columns, the urn last), then the summary.
pub struct SyncTable {
    header_written: bool,
}

impl SyncTable {
    pub fn new() -> Self {
        Self { header_written: false }
    }

    /// The lines `event` adds to the table (may be empty).
    pub fn lines(&mut self, event: &SyncEvent) -> String {
        let mut text = String::new();
        if !self.header_written {
            self.header_written = true;
            text.push_str(&Self::row("EVENT", "KIND", "NAME", "URN"));
        }
        match &event.event {
            Some(Event::Upsert(upsert)) => {
                if let Some(entity) = &upsert.entity {
                    text.push_str(&Self::row(
                        "upsert",
                        &kind_name(entity.kind),
                        &entity.display_name,
                        &entity.urn,
                    ));
                }
            }
            Some(Event::Deletion(deletion)) => {
                text.push_str(&Self::row("delete", &kind_name(deletion.kind), "", &deletion.urn));
            }
            Some(Event::ScopeStatus(status)) => {
                let state = ScopeState::try_from(status.state)
                    .map_or("unknown", |state| state.as_str_name())
                    .trim_start_matches("SCOPE_STATE_")
                    .to_ascii_lowercase();
                let detail = if status.error.is_empty() {
                    format!("{} entities", status.entities)
                } else {
                    format!("{}: {}", status.reason, status.error)
                };
                text.push_str(&Self::row(&format!("scope {state}"), "", &detail, &status.scope));
            }
            Some(Event::Summary(summary)) => text.push_str(&summary_text(summary)),
            Some(Event::Checkpoint(_) | Event::Progress(_)) | None => {}
        }
        text
    }

    fn row(event: &str, kind: &str, name: &str, urn: &str) -> String {
        let name = truncate(name, 40);
        format!("{event:<12}  {kind:<10}  {name:<40}  {urn}")
            .trim_end()
            .to_owned()
            + "\n"
    }
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        text.chars().take(width - 1).chain(std::iter::once('…')).collect()
    }
}

/// Writes sync events in a format: NDJSON, a JSON array or the table.
pub enum EventWriter<W: Write> {
    Json(JsonSeq<W>),
    Table(W, SyncTable),
}

impl<W: Write> EventWriter<W> {
    pub fn new(out: W, format: Format) -> Self {
        match format {
            Format::Table => Self::Table(out, SyncTable::new()),
            Format::Json | Format::Ndjson => Self::Json(JsonSeq::new(out, format)),
        }
    }

    pub fn write(&mut self, event: &SyncEvent) -> Result<(), Failure> {
        match self {
            Self::Json(seq) => seq.push(event),
            Self::Table(out, table) => {
                let lines = table.lines(event);
                if lines.is_empty() {
                    Ok(())
                } else {
                    write_flushed(out, &lines)
                }
            }
        }
    }

    /// Ends the output (closes a JSON array, so it stays valid JSON even
    /// after a failure).
    pub fn finish(self) -> Result<(), Failure> {
        match self {
            Self::Json(seq) => seq.finish(),
            Self::Table(..) => Ok(()),
        }
    }
}

/// The summary as `key: value` lines after a blank line.
pub fn summary_text(summary: &Summary) -> String {
    let mode = SyncMode::try_from(summary.mode)
        .map_or("unknown", |mode| mode.as_str_name())
        .trim_start_matches("SYNC_MODE_")
        .to_ascii_lowercase();
    let upserts: u64 = summary.counts.iter().map(|count| count.upserts).sum();
    let unchanged: u64 = summary.counts.iter().map(|count| count.unchanged).sum();
    let duration = summary
        .duration
        .as_ref()
        .map_or(0.0, |d| d.seconds as f64 + f64::from(d.nanos) / 1e9);
    let mut text = format!(
        "\nsync {}  mode {mode}  complete {}  duration {duration:.3}s\n\
         upserts {upserts}  unchanged {unchanged}  deletions {}  scopes ok {}  failed {}  \
         upstream requests {}  cache hits {}\n",
        summary.sync_id,
        summary.complete,
        summary.deletions,
        summary.scopes_ok,
        summary.scopes_failed,
        summary.upstream_requests,
        summary.cache_hits,
    );
    for count in &summary.counts {
        text.push_str(&format!(
            "  {:<10}  upserts {}  unchanged {}\n",
            kind_name(count.kind),
            count.upserts,
            count.unchanged
        ));
    }
    text
}

/// The progress bar on stderr while a sync runs: scopes done of total, with
/// upserts, deletions and entities/s. Hidden when stderr is not a terminal.
pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_message: Option<Instant>,
    upserts: u64,
    deletions: u64,
    entities_per_second: Option<f64>,
}

impl Progress {
    const INTERVAL: Duration = Duration::from_millis(100);

    pub fn new(enabled: bool) -> Self {
        let bar = enabled.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] [{bar:30}] {pos}/{len} scopes  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(Self::INTERVAL);
            bar
        });
        Self {
            bar,
            started: Instant::now(),
            last_message: None,
            upserts: 0,
            deletions: 0,
            entities_per_second: None,
        }
    }

    pub fn observe(&mut self, event: &SyncEvent, resumes: u32) {
        let Some(bar) = &self.bar else {
            return;
        };
        match &event.event {
            Some(Event::Upsert(_)) => self.upserts += 1,
            Some(Event::Deletion(_)) => self.deletions += 1,
            Some(Event::Progress(progress)) => {
                bar.set_length(u64::from(progress.scopes_total));
                bar.set_position(u64::from(progress.scopes_done));
                if progress.entities_per_second > 0.0 {
                    self.entities_per_second = Some(progress.entities_per_second);
                }
            }
            _ => return,
        }
        let now = Instant::now();
        if self
            .last_message
            .is_none_or(|last| now.duration_since(last) >= Self::INTERVAL)
        {
            self.last_message = Some(now);
            bar.set_message(self.message(resumes));
        }
    }

    fn message(&self, resumes: u32) -> String {
        let rate = self.entities_per_second.unwrap_or_else(|| {
            let seconds = self.started.elapsed().as_secs_f64();
            if seconds > 0.0 {
                (self.upserts + self.deletions) as f64 / seconds
            } else {
                0.0
            }
        });
        let mut message = format!(
            "upserts {}  deletions {}  {rate:.1} entities/s",
            self.upserts, self.deletions
        );
        if resumes > 0 {
            message.push_str(&format!("  resumes {resumes}"));
        }
        message
    }

    /// Draws the final figures and leaves them on the terminal.
    pub fn finish(&mut self, resumes: u32) {
        if let Some(bar) = self.bar.take() {
            bar.finish_with_message(self.message(resumes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_every_column_but_the_last() {
        let rows = vec![
            vec!["ID".to_owned(), "NAME".to_owned(), "NOTE".to_owned()],
            vec!["github".to_owned(), "GitHub".to_owned(), "-".to_owned()],
            vec!["k8s".to_owned(), "Kubernetes clusters".to_owned(), "".to_owned()],
        ];
        assert_eq!(
            render_table(&rows),
            "ID      NAME                 NOTE\ngithub  GitHub               -\nk8s     Kubernetes clusters\n"
        );
    }

    #[test]
    fn json_sequences_are_ndjson_or_one_array() {
        let mut out = Vec::new();
        let mut seq = JsonSeq::new(&mut out, Format::Json);
        seq.push(&1).unwrap();
        seq.push(&"two").unwrap();
        seq.finish().unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "[\n  1,\n  \"two\"\n]\n");

        let mut out = Vec::new();
        JsonSeq::new(&mut out, Format::Json).finish().unwrap();
        assert_eq!(out, b"[]\n");

        let mut out = Vec::new();
        let mut seq = JsonSeq::new(&mut out, Format::Ndjson);
        seq.push(&1).unwrap();
        seq.push(&"two").unwrap();
        seq.finish().unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "1\n\"two\"\n");
    }

    #[test]
    fn kinds_and_long_names_print_short() {
        assert_eq!(kind_name(EntityKind::Repository as i32), "repository");
        assert_eq!(kind_name(999), "unknown");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abcd", 4), "abcd");
    }
}
