//! Request validation shared by every connector's handler. Messages name the
//! field (`orgs[2]`, `options.kinds[0]`).

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
        deadline: None,
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

#[cfg(test)]
mod fuzz {
    //! Property tests: the request validators and the checkpoint decoder never
    //! panic, and every rejection is INVALID_ARGUMENT naming a request field.

    use connectors_proto::github::v1::SyncRequest;
    use proptest::prelude::*;

    use crate::sync::{SyncError, Token};

    fn field_of(error: SyncError) -> String {
        match error {
            SyncError::InvalidArgument { field, .. } => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[cfg(feature = "github")]
        #[test]
        fn github_requests_validate_or_name_the_field(
            orgs in prop::collection::vec(".{0,50}", 0..5),
            repositories in prop::collection::vec(".{0,60}", 0..5),
        ) {
            let request = SyncRequest { orgs, repositories, ..Default::default() };
            match crate::providers::github::GithubRequest::try_from(&request) {
                Ok(valid) => {
                    for org in &valid.orgs {
                        prop_assert!(!org.is_empty() && org.len() <= 39);
                        prop_assert!(org.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
                    }
                    for (owner, name) in &valid.repositories {
                        prop_assert!(!owner.contains('/') && !name.contains('/') && name != "..");
                    }
                }
                Err(error) => {
                    let field = field_of(error);
                    prop_assert!(field.starts_with("orgs") || field.starts_with("repositories"), "{}", field);
                }
            }
        }

        #[cfg(feature = "gitlab")]
        #[test]
        fn gitlab_requests_validate_or_name_the_field(
            groups in prop::collection::vec(".{0,40}", 0..4),
            projects in prop::collection::vec(".{0,60}", 0..4),
            pipelines_per_project in any::<u32>(),
            include_child_pipelines in any::<bool>(),
        ) {
            let request = connectors_proto::gitlab::v1::SyncRequest {
                groups,
                projects,
                pipelines_per_project,
                include_child_pipelines,
                options: None,
            };
            if let Err(error) = crate::providers::gitlab::GitlabRequest::try_from(&request) {
                let field = field_of(error);
                prop_assert!(
                    field.starts_with("groups") || field.starts_with("projects") || field == "pipelines_per_project",
                    "{}", field
                );
            }
        }

        #[cfg(feature = "kubernetes")]
        #[test]
        fn kubernetes_requests_validate_or_name_the_field(
            contexts in prop::collection::vec(".{0,40}", 0..4),
            namespaces in prop::collection::vec(".{0,70}", 0..4),
            label_selector in ".{0,80}",
            field_selector in ".{0,80}",
        ) {
            let request = connectors_proto::kubernetes::v1::SyncRequest {
                contexts, namespaces, label_selector, field_selector, options: None,
            };
            if let Err(error) = crate::providers::kubernetes::KubernetesRequest::try_from(&request) {
                let field = field_of(error);
                prop_assert!(
                    ["contexts", "namespaces", "label_selector", "field_selector"].iter().any(|f| field.starts_with(f)),
                    "{}", field
                );
            }
        }

        #[cfg(feature = "wiz")]
        #[test]
        fn wiz_requests_validate_or_name_the_field(
            cloud_platforms in prop::collection::vec(".{0,20}", 0..4),
            resource_types in prop::collection::vec(".{0,40}", 0..4),
            subscription_ids in prop::collection::vec(".{0,60}", 0..4),
        ) {
            let request = connectors_proto::wiz::v1::SyncRequest { cloud_platforms, resource_types, subscription_ids, options: None };
            if let Err(error) = crate::providers::wiz::WizRequest::try_from(&request) {
                let field = field_of(error);
                prop_assert!(
                    ["cloud_platforms", "resource_types", "subscription_ids"].iter().any(|f| field.starts_with(f)),
                    "{}", field
                );
            }
        }

        #[test]
        fn sync_options_validate_or_name_the_field(
            mode in any::<i32>(),
            kinds in prop::collection::vec(any::<i32>(), 0..20),
            state_key in ".{0,140}",
            shard_index in any::<u32>(),
            shard_count in any::<u32>(),
            checkpoint in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let options = connectors_proto::v1::SyncOptions { mode, kinds, state_key, shard_index, shard_count, checkpoint };
            if let Err(error) = super::options(Some(options)) {
                let field = field_of(error);
                prop_assert!(field.starts_with("options."), "{}", field);
            }
        }

        #[test]
        fn checkpoint_decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Token::decode(&bytes, "github", "fp");
            let mut prefixed = b"ckpt1:".to_vec();
            prefixed.extend(&bytes);
            let _ = Token::decode(&prefixed, "github", "fp");
        }

        #[test]
        fn checkpoint_json_of_any_shape_is_decoded_or_rejected(json in r#"\{("[a-z_]{1,10}":("[ -~]{0,12}"|[0-9]{1,5}|null|\[\]|\{\}),?){0,6}\}"#) {
            let mut bytes = b"ckpt1:".to_vec();
            bytes.extend(json.as_bytes());
            let _ = Token::decode(&bytes, "github", "fp");
        }
    }
}
