//! Sync events encoded once.
//!
//! Every event a sync sends is encoded exactly once, into an [`EncodedEvent`]:
//! the same bytes go to the gRPC response (the server's Sync stubs are
//! generated with `SyncEvent` mapped to this type, whose `prost::Message`
//! impl writes them as they are) and to the coalescing log. An upsert's
//! entity is encoded once too: its bytes are hashed for the content hash and
//! then written into the event (see [`upsert_event`]).

use bytes::{BufMut, Bytes, BytesMut};
use connectors_proto::v1::{Entity, Provenance, SyncEvent};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

/// The protobuf encoding of one `connectors.v1.SyncEvent`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct EncodedEvent(Bytes);

impl std::fmt::Debug for EncodedEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.event() {
            Ok(event) => event.fmt(f),
            Err(_) => write!(f, "EncodedEvent(<{} bytes that do not decode>)", self.0.len()),
        }
    }
}

impl EncodedEvent {
    /// Takes bytes that hold one encoded `SyncEvent` (as read back from the coalescing log).
    pub(crate) fn from_encoded(bytes: Bytes) -> Self {
        Self(bytes)
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The event, decoded.
    pub fn event(&self) -> Result<SyncEvent, prost::DecodeError> {
        SyncEvent::decode(self.0.clone())
    }
}

impl From<&SyncEvent> for EncodedEvent {
    fn from(event: &SyncEvent) -> Self {
        Self(event.encode_to_vec().into())
    }
}

impl From<SyncEvent> for EncodedEvent {
    fn from(event: SyncEvent) -> Self {
        Self::from(&event)
    }
}

/// Written as the bytes it holds: the gRPC layer encodes it without
/// re-encoding the event.
impl Message for EncodedEvent {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        // Never on the server's path (it only sends events), but correct: merge
        // into the decoded event and keep its new encoding.
        let mut event = self.event()?;
        event.merge_field(tag, wire_type, buf, ctx)?;
        *self = Self::from(&event);
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0 = Bytes::new();
    }
}

/// `SyncEvent.upsert` and the fields of `Upsert` (connectors/v1/sync.proto).
const SYNC_EVENT_UPSERT: u32 = 1;
const UPSERT_ENTITY: u32 = 1;
const UPSERT_PROVENANCE: u32 = 2;

/// Encodes `entity` into `out` (cleared first): the bytes its content hash is
/// taken of, and the bytes [`upsert_event`] writes.
pub(super) fn encode_entity(entity: &Entity, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(entity.encoded_len());
    // Encoding into a Vec that has the room cannot fail.
    let _ = entity.encode(out);
}

/// The upsert event of an entity already encoded (`entity`, by
/// [`encode_entity`]): byte for byte what prost writes for
/// `SyncEvent { upsert: Upsert { entity, provenance } }`.
pub(super) fn upsert_event(entity: &[u8], provenance: &Provenance) -> EncodedEvent {
    let provenance_len = provenance.encoded_len();
    let upsert_len = key_len(UPSERT_ENTITY)
        + encoded_len_varint(entity.len() as u64)
        + entity.len()
        + key_len(UPSERT_PROVENANCE)
        + encoded_len_varint(provenance_len as u64)
        + provenance_len;
    let mut buf =
        BytesMut::with_capacity(key_len(SYNC_EVENT_UPSERT) + encoded_len_varint(upsert_len as u64) + upsert_len);
    encode_key(SYNC_EVENT_UPSERT, WireType::LengthDelimited, &mut buf);
    encode_varint(upsert_len as u64, &mut buf);
    encode_key(UPSERT_ENTITY, WireType::LengthDelimited, &mut buf);
    encode_varint(entity.len() as u64, &mut buf);
    buf.put_slice(entity);
    encode_key(UPSERT_PROVENANCE, WireType::LengthDelimited, &mut buf);
    encode_varint(provenance_len as u64, &mut buf);
    provenance.encode_raw(&mut buf);
    EncodedEvent(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use connectors_proto::v1::{EntityKind, Label, Upsert, sync_event::Event};

    fn entity(display_name: &str) -> Entity {
        Entity {
            urn: "urn:connectors:aws:asset:arn:aws:ecr:us-east-1:123456789012:repository/api".into(),
            kind: EntityKind::Asset as i32,
            native_id: "arn:aws:ecr:us-east-1:123456789012:repository/api".into(),
            display_name: display_name.into(),
            labels: vec![Label {
                key: "team".into(),
                value: "payments".into(),
            }],
            parent_urn: String::new(),
            body: None,
        }
    }

    #[test]
    fn an_upsert_encoded_from_its_entity_bytes_is_what_prost_encodes() {
        // Lengths on both sides of the one-byte varint boundary (127/128).
        for name in ["api", &"x".repeat(60), &"y".repeat(200)] {
            let entity = entity(name);
            let provenance = Provenance {
                connector_id: "aws".into(),
                sync_id: "s-1".into(),
                content_hash: "ab".repeat(32),
                ..Default::default()
            };
            let mut bytes = Vec::new();
            encode_entity(&entity, &mut bytes);
            let ours = upsert_event(&bytes, &provenance);
            let event = SyncEvent {
                event: Some(Event::Upsert(Upsert {
                    entity: Some(entity),
                    provenance: Some(provenance),
                })),
            };
            assert_eq!(
                ours.as_bytes().as_ref(),
                event.encode_to_vec().as_slice(),
                "display name of {} bytes",
                name.len()
            );
            assert_eq!(ours.event().unwrap(), event);
        }
    }

    #[test]
    fn an_encoded_event_is_written_as_its_bytes() {
        let event = SyncEvent {
            event: Some(Event::Upsert(Upsert {
                entity: Some(entity("api")),
                provenance: None,
            })),
        };
        let encoded = EncodedEvent::from(&event);
        assert_eq!(encoded.encoded_len(), event.encoded_len());
        // What the gRPC codec writes: the same bytes as the event itself.
        assert_eq!(encoded.encode_to_vec(), event.encode_to_vec());
        // Decoding through the Message impl merges into the event.
        let decoded = <EncodedEvent as Message>::decode(event.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.event().unwrap(), event);
    }
}
