//! `connectorctl diff A B`: what changed between the estates two sync
//! outputs describe.
//!
//! Each file is the output of `connectorctl sync` (NDJSON or `--output json`)
//! or of grpcurl (a sequence of JSON objects). Its events are applied in
//! order (an upsert sets an entity, a deletion removes it), so the two inputs
//! are usually FULL syncs of the same scopes, taken at different times or
//! from different replicas. Entities are compared by content hash.

use std::collections::BTreeMap;
use std::path::Path;

use connectors_client::v1::SyncEvent;
use connectors_client::v1::sync_event::Event;
use serde::Serialize;
use tonic::Code;

use crate::Failure;
use crate::output::{Format, JsonSeq, kind_name, render_table, to_json, write_flushed};

/// An entity as the diff sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    kind: i32,
    content_hash: String,
}

/// The entities a sync output leaves, by urn.
pub type Estate = BTreeMap<String, Seen>;

/// One difference.
#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    change: &'static str,
    urn: String,
    kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    before: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    after: String,
}

/// Reads a sync output file into the estate it describes.
pub fn read_estate(path: &Path) -> Result<Estate, Failure> {
    let text = std::fs::read_to_string(path).map_err(|err| Failure::io(format!("reading {}", path.display()), err))?;
    parse_estate(&text).map_err(|message| Failure {
        code: Code::InvalidArgument,
        message: format!("{}: {message}", path.display()),
    })
}

/// The estate of a sync output: a JSON array of events, or JSON objects one
/// after another (NDJSON, or grpcurl's indented objects).
pub fn parse_estate(text: &str) -> Result<Estate, String> {
    let mut estate = Estate::new();
    let mut apply = |event: SyncEvent| match event.event {
        Some(Event::Upsert(upsert)) => {
            let Some(entity) = upsert.entity else {
                return;
            };
            let content_hash = upsert.provenance.map(|p| p.content_hash).unwrap_or_default();
            estate.insert(
                entity.urn,
                Seen {
                    kind: entity.kind,
                    content_hash,
                },
            );
        }
        Some(Event::Deletion(deletion)) => {
            estate.remove(&deletion.urn);
        }
        _ => {}
    };
    if text.trim_start().starts_with('[') {
        let events: Vec<SyncEvent> =
            serde_json::from_str(text).map_err(|err| format!("not a JSON array of sync events: {err}"))?;
        events.into_iter().for_each(&mut apply);
    } else {
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<SyncEvent>();
        loop {
            let offset = stream.byte_offset();
            match stream.next() {
                None => break,
                Some(Ok(event)) => apply(event),
                Some(Err(err)) => {
                    let line = text[..offset].lines().count() + 1;
                    return Err(format!("event at line {line} is not a sync event: {err}"));
                }
            }
        }
    }
    Ok(estate)
}

/// The changes from `before` to `after`, by urn, and how many entities are
/// unchanged.
pub fn changes(before: &Estate, after: &Estate) -> (Vec<Change>, usize) {
    let mut changes = Vec::new();
    let mut unchanged = 0;
    for (urn, old) in before {
        match after.get(urn) {
            None => changes.push(Change {
                change: "removed",
                urn: urn.clone(),
                kind: kind_name(old.kind),
                before: old.content_hash.clone(),
                after: String::new(),
            }),
            Some(new) if new != old => changes.push(Change {
                change: "changed",
                urn: urn.clone(),
                kind: kind_name(new.kind),
                before: old.content_hash.clone(),
                after: new.content_hash.clone(),
            }),
            Some(_) => unchanged += 1,
        }
    }
    for (urn, new) in after {
        if !before.contains_key(urn) {
            changes.push(Change {
                change: "added",
                urn: urn.clone(),
                kind: kind_name(new.kind),
                before: String::new(),
                after: new.content_hash.clone(),
            });
        }
    }
    changes.sort_by(|a, b| a.urn.cmp(&b.urn));
    (changes, unchanged)
}

/// Prints the changes in `format`; returns whether there were any.
pub fn print(
    changes: &[Change],
    unchanged: usize,
    format: Format,
    out: &mut impl std::io::Write,
) -> Result<bool, Failure> {
    let count = |kind: &str| changes.iter().filter(|change| change.change == kind).count();
    let (added, removed, changed) = (count("added"), count("removed"), count("changed"));
    match format {
        Format::Ndjson => {
            let mut seq = JsonSeq::new(&mut *out, Format::Ndjson);
            for change in changes {
                seq.push(change)?;
            }
            seq.finish()?;
        }
        Format::Json => {
            #[derive(Serialize)]
            struct Report<'a> {
                changes: &'a [Change],
                added: usize,
                removed: usize,
                changed: usize,
                unchanged: usize,
            }
            let report = Report {
                changes,
                added,
                removed,
                changed,
                unchanged,
            };
            write_flushed(out, &(to_json(&report)? + "\n"))?;
        }
        Format::Table => {
            let mut rows = vec![vec!["CHANGE".to_owned(), "KIND".to_owned(), "URN".to_owned()]];
            rows.extend(
                changes
                    .iter()
                    .map(|change| vec![change.change.to_owned(), change.kind.clone(), change.urn.clone()]),
            );
            let mut text = if changes.is_empty() {
                String::new()
            } else {
                render_table(&rows)
            };
            text.push_str(&format!(
                "{added} added, {removed} removed, {changed} changed, {unchanged} unchanged\n"
            ));
            write_flushed(out, &text)?;
        }
    }
    Ok(!changes.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"{"upsert":{"entity":{"urn":"urn:a","kind":"ENTITY_KIND_REPOSITORY"},"provenance":{"contentHash":"h1"}}}
{"checkpoint":{"token":"YzE=","scope":"org:acme"}}
{"upsert":{"entity":{"urn":"urn:b","kind":"ENTITY_KIND_MANIFEST"},"provenance":{"contentHash":"h2"}}}
{"upsert":{"entity":{"urn":"urn:c","kind":"ENTITY_KIND_SBOM"},"provenance":{"contentHash":"h3"}}}
"#;

    #[test]
    fn estates_apply_upserts_and_deletions_in_order() {
        let after = r#"[
          {"upsert":{"entity":{"urn":"urn:a","kind":"ENTITY_KIND_REPOSITORY"},"provenance":{"contentHash":"h1"}}},
          {"upsert":{"entity":{"urn":"urn:b","kind":"ENTITY_KIND_MANIFEST"},"provenance":{"contentHash":"h2x"}}},
          {"upsert":{"entity":{"urn":"urn:c","kind":"ENTITY_KIND_SBOM"},"provenance":{"contentHash":"h3"}}},
          {"deletion":{"urn":"urn:c","kind":"ENTITY_KIND_SBOM"}},
          {"upsert":{"entity":{"urn":"urn:d","kind":"ENTITY_KIND_REPOSITORY"},"provenance":{"contentHash":"h4"}}},
          {"summary":{"syncId":"s"}}
        ]"#;
        let before = parse_estate(BEFORE).unwrap();
        let after = parse_estate(after).unwrap();
        assert_eq!(before.len(), 3);
        assert_eq!(after.keys().collect::<Vec<_>>(), ["urn:a", "urn:b", "urn:d"]);

        let (changes, unchanged) = changes(&before, &after);
        assert_eq!(unchanged, 1);
        let summary: Vec<(&str, &str, &str, &str)> = changes
            .iter()
            .map(|c| (c.change, c.urn.as_str(), c.before.as_str(), c.after.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("changed", "urn:b", "h2", "h2x"),
                ("removed", "urn:c", "h3", ""),
                ("added", "urn:d", "", "h4"),
            ]
        );

        let mut out = Vec::new();
        assert!(print(&changes, unchanged, Format::Table, &mut out).unwrap());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "CHANGE   KIND        URN\n\
             changed  manifest    urn:b\n\
             removed  sbom        urn:c\n\
             added    repository  urn:d\n\
             1 added, 1 removed, 1 changed, 1 unchanged\n"
        );
    }

    #[test]
    fn identical_outputs_have_no_changes() {
        let estate = parse_estate(BEFORE).unwrap();
        let (changes, unchanged) = changes(&estate, &estate);
        assert_eq!((changes.len(), unchanged), (0, 3));
        let mut out = Vec::new();
        assert!(!print(&changes, unchanged, Format::Ndjson, &mut out).unwrap());
        assert!(out.is_empty());
    }

    #[test]
    fn a_bad_line_is_named() {
        let text = format!("{BEFORE}{{\"upsert\": 5}}\n");
        let err = parse_estate(&text).unwrap_err();
        assert!(err.starts_with("event at line 5 is not a sync event: "), "{err}");
    }
}
