//! Entity identity and content hashes.

use connectors_proto::v1::{Entity, EntityKind};
use sha2::{Digest, Sha256};

/// The urn segment of a kind ("repository").
pub fn kind_segment(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Unspecified => "unspecified",
        EntityKind::Repository => "repository",
        EntityKind::Manifest => "manifest",
        EntityKind::Sbom => "sbom",
        EntityKind::Pipeline => "pipeline",
        EntityKind::Workload => "workload",
        EntityKind::Tag => "tag",
        EntityKind::Asset => "asset",
    }
}

/// `urn:connectors:<connector>:<kind>:<native id>`.
pub fn urn(connector: &str, kind: EntityKind, native_id: &str) -> String {
    // `concat` sizes the string once; `format!` cost more per entity than
    // the rest of building one (see the README's "Performance").
    ["urn:connectors:", connector, ":", kind_segment(kind), ":", native_id].concat()
}

/// Lower-case hex SHA-256 of the entity's canonical (protobuf) encoding. The
/// entity messages have no map fields and connectors sort their lists, so the
/// encoding, and the hash, is deterministic.
pub fn content_hash(entity: &Entity) -> String {
    let mut encoded = Vec::new();
    super::encoded::encode_entity(entity, &mut encoded);
    // Hex digits are ASCII.
    std::str::from_utf8(&content_hash_of(&encoded))
        .unwrap_or_default()
        .to_owned()
}

/// The ASCII hex of [`content_hash`] of an entity already encoded, on the
/// stack (the hot path allocates no string for it).
pub(super) fn content_hash_of(encoded: &[u8]) -> [u8; 64] {
    let mut hex = [0u8; 64];
    // 64 bytes hold the hex of 32.
    let _ = hex::encode_to_slice(Sha256::digest(encoded), &mut hex);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use connectors_proto::v1::{Label, Repository, entity::Body};

    #[test]
    fn urn_follows_the_scheme() {
        assert_eq!(
            urn("github", EntityKind::Repository, "200001"),
            "urn:connectors:github:repository:200001"
        );
        assert_eq!(
            urn("github", EntityKind::Manifest, "200001:services/api/package.json"),
            "urn:connectors:github:manifest:200001:services/api/package.json"
        );
    }

    // SHA-256 of the hand-written protobuf encoding of `entity` (computed
    // independently in Python from the wire format).
    const PINNED_HASH: &str = "bc626e85ec23f357a5ba742aff4d1d5343839dc90f4b4efce6b83e2cc25ca447";

    #[test]
    fn content_hash_is_stable_and_sensitive() {
        let entity = Entity {
            urn: "urn:connectors:github:repository:1".into(),
            kind: EntityKind::Repository as i32,
            native_id: "1".into(),
            display_name: "acme/api".into(),
            labels: vec![Label {
                key: "topic".into(),
                value: "payments".into(),
            }],
            parent_urn: String::new(),
            body: Some(Body::Repository(Repository {
                name: "api".into(),
                ..Default::default()
            })),
        };
        // Pinned: the canonical encoding must not drift between releases,
        // or every client would see every entity as changed.
        assert_eq!(content_hash(&entity), PINNED_HASH);
        let mut changed = entity.clone();
        changed.display_name = "acme/api2".into();
        assert_ne!(content_hash(&entity), content_hash(&changed));
        assert_eq!(content_hash(&entity), content_hash(&entity.clone()));
        assert_eq!(content_hash(&entity).len(), 64);
    }
}
