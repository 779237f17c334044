//! Request validation shared by every connector's handler. Messages name the
//! field ("orgs[2]", "options.kinds[0]").

use connectors_proto::v1::{EntityKind, SyncMode};

use crate::sync::{Shard, SyncError, SyncOptions};

/// Most entries of a scope list (orgs, accounts, ...).
pub const MAX_SCOPES: usize = 100;
/// Most shards a request can be split into.
pub const MAX_SHARDS: u32 = 4096;
/// Most explicit resources (repositories, projects).
pub const MAX_RESOURCES: usize = 1000;

/// Validates the shared `SyncOptions`.
pub fn options(options: Option<connectors_proto::v1::SyncOptions>) -> Result<SyncOptions, SyncError> {
    let options = options.unwrap_or_default();
    let mode = SyncMode::try_from(options.mode)
        .map_err(|_| SyncError::invalid("options.mode", format!("unknown sync mode {}", options.mode)))?;
    if options.kinds.len() > 16 {
        return Err(SyncError::invalid("options.kinds", "at most 16 kinds"));
    }
    let mut kinds = Vec::with_capacity(options.kinds.len());
    for (i, raw) in options.kinds.iter().enumerate() {
        match EntityKind::try_from(*raw) {
            Ok(EntityKind::Unspecified) => {
                return Err(SyncError::invalid(
                    format!("options.kinds[{i}]"),
                    "ENTITY_KIND_UNSPECIFIED is not a kind",
                ));
            }
            Ok(kind) => kinds.push(kind),
            Err(_) => {
                return Err(SyncError::invalid(
                    format!("options.kinds[{i}]"),
                    format!("unknown entity kind {raw}"),
                ));
            }
        }
    }
    let state_key = if options.state_key.is_empty() {
        None
    } else {
        let key = options.state_key;
        if key.len() > 128
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
        {
            return Err(SyncError::invalid(
                "options.state_key",
                "must be 1 to 128 characters of [A-Za-z0-9._:-]",
            ));
        }
        Some(key)
    };
    let shard = match (options.shard_count, options.shard_index) {
        (0, 0) => None,
        (0, _) => {
            return Err(SyncError::invalid(
                "options.shard_index",
                "set without options.shard_count",
            ));
        }
        (count, _) if count > MAX_SHARDS => {
            return Err(SyncError::invalid(
                "options.shard_count",
                format!("at most {MAX_SHARDS}"),
            ));
        }
        (count, index) if index >= count => {
            return Err(SyncError::invalid(
                "options.shard_index",
                format!("must be below options.shard_count ({count}), got {index}"),
            ));
        }
        (count, index) => Some(Shard { index, count }),
    };
    Ok(SyncOptions {
        mode,
        checkpoint: options.checkpoint,
        kinds,
        state_key,
        shard,
    })
}

/// A GitHub-style login (organization or user): 1 to 39 characters of
/// [A-Za-z0-9-], not starting or ending with '-'.
pub fn login(field: &str, value: &str) -> Result<(), SyncError> {
    let ok = !value.is_empty()
        && value.len() <= 39
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(SyncError::invalid(
            field,
            format!(
                "{:?} is not an organization or user login (1 to 39 characters of A-Z, a-z, 0-9 and '-')",
                truncate(value)
            ),
        ))
    }
}

/// A repository name: 1 to 100 characters of [A-Za-z0-9._-], not "." or "..".
pub fn repo_name(field: &str, value: &str) -> Result<(), SyncError> {
    let ok = !value.is_empty()
        && value.len() <= 100
        && value != "."
        && value != ".."
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(SyncError::invalid(
            field,
            format!(
                "{:?} is not a repository name (1 to 100 characters of A-Z, a-z, 0-9, '.', '_' and '-')",
                truncate(value)
            ),
        ))
    }
}

/// At most `max` entries, no duplicates.
pub fn list_len<T: PartialEq>(field: &str, items: &[T], max: usize) -> Result<(), SyncError> {
    if items.len() > max {
        return Err(SyncError::invalid(
            field,
            format!("at most {max} entries, got {}", items.len()),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        if items[..i].contains(item) {
            return Err(SyncError::invalid(format!("{field}[{i}]"), "duplicate entry"));
        }
    }
    Ok(())
}

/// Shortens a value quoted in an error message.
pub fn truncate(value: &str) -> String {
    if value.chars().count() > 64 {
        format!("{}...", value.chars().take(64).collect::<String>())
    } else {
        value.to_owned()
    }
}
