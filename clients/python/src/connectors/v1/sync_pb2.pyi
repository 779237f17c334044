import datetime

from connectors.v1 import entities_pb2 as _entities_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SyncMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SYNC_MODE_UNSPECIFIED: _ClassVar[SyncMode]
    SYNC_MODE_FULL: _ClassVar[SyncMode]
    SYNC_MODE_INCREMENTAL: _ClassVar[SyncMode]

class SourceMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_MODE_UNSPECIFIED: _ClassVar[SourceMode]
    SOURCE_MODE_LIVE: _ClassVar[SourceMode]
    SOURCE_MODE_FIXTURE: _ClassVar[SourceMode]

class ScopeState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCOPE_STATE_UNSPECIFIED: _ClassVar[ScopeState]
    SCOPE_STATE_OK: _ClassVar[ScopeState]
    SCOPE_STATE_FAILED: _ClassVar[ScopeState]
    SCOPE_STATE_RATE_LIMITED: _ClassVar[ScopeState]
SYNC_MODE_UNSPECIFIED: SyncMode
SYNC_MODE_FULL: SyncMode
SYNC_MODE_INCREMENTAL: SyncMode
SOURCE_MODE_UNSPECIFIED: SourceMode
SOURCE_MODE_LIVE: SourceMode
SOURCE_MODE_FIXTURE: SourceMode
SCOPE_STATE_UNSPECIFIED: ScopeState
SCOPE_STATE_OK: ScopeState
SCOPE_STATE_FAILED: ScopeState
SCOPE_STATE_RATE_LIMITED: ScopeState

class SyncOptions(_message.Message):
    __slots__ = ("mode", "checkpoint", "kinds", "state_key", "shard_index", "shard_count")
    MODE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    STATE_KEY_FIELD_NUMBER: _ClassVar[int]
    SHARD_INDEX_FIELD_NUMBER: _ClassVar[int]
    SHARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    mode: SyncMode
    checkpoint: bytes
    kinds: _containers.RepeatedScalarFieldContainer[_entities_pb2.EntityKind]
    state_key: str
    shard_index: int
    shard_count: int
    def __init__(self, mode: _Optional[_Union[SyncMode, str]] = ..., checkpoint: _Optional[bytes] = ..., kinds: _Optional[_Iterable[_Union[_entities_pb2.EntityKind, str]]] = ..., state_key: _Optional[str] = ..., shard_index: _Optional[int] = ..., shard_count: _Optional[int] = ...) -> None: ...

class Provenance(_message.Message):
    __slots__ = ("connector_id", "connector_version", "sync_id", "source", "region", "operation", "fetch_time", "upstream_version", "content_hash", "source_mode")
    CONNECTOR_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    SYNC_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    FETCH_TIME_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_MODE_FIELD_NUMBER: _ClassVar[int]
    connector_id: str
    connector_version: str
    sync_id: str
    source: str
    region: str
    operation: str
    fetch_time: _timestamp_pb2.Timestamp
    upstream_version: str
    content_hash: str
    source_mode: SourceMode
    def __init__(self, connector_id: _Optional[str] = ..., connector_version: _Optional[str] = ..., sync_id: _Optional[str] = ..., source: _Optional[str] = ..., region: _Optional[str] = ..., operation: _Optional[str] = ..., fetch_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., upstream_version: _Optional[str] = ..., content_hash: _Optional[str] = ..., source_mode: _Optional[_Union[SourceMode, str]] = ...) -> None: ...

class Upsert(_message.Message):
    __slots__ = ("entity", "provenance")
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    entity: _entities_pb2.Entity
    provenance: Provenance
    def __init__(self, entity: _Optional[_Union[_entities_pb2.Entity, _Mapping]] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ...) -> None: ...

class Deletion(_message.Message):
    __slots__ = ("urn", "kind", "provenance")
    URN_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    urn: str
    kind: _entities_pb2.EntityKind
    provenance: Provenance
    def __init__(self, urn: _Optional[str] = ..., kind: _Optional[_Union[_entities_pb2.EntityKind, str]] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("token", "scope")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    token: bytes
    scope: str
    def __init__(self, token: _Optional[bytes] = ..., scope: _Optional[str] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("entities", "upstream_requests", "cache_hits", "rate_limit_remaining", "entities_per_second", "requests_per_second", "scopes_done", "scopes_total")
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_REMAINING_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    SCOPES_DONE_FIELD_NUMBER: _ClassVar[int]
    SCOPES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    entities: int
    upstream_requests: int
    cache_hits: int
    rate_limit_remaining: int
    entities_per_second: float
    requests_per_second: float
    scopes_done: int
    scopes_total: int
    def __init__(self, entities: _Optional[int] = ..., upstream_requests: _Optional[int] = ..., cache_hits: _Optional[int] = ..., rate_limit_remaining: _Optional[int] = ..., entities_per_second: _Optional[float] = ..., requests_per_second: _Optional[float] = ..., scopes_done: _Optional[int] = ..., scopes_total: _Optional[int] = ...) -> None: ...

class ScopeStatus(_message.Message):
    __slots__ = ("scope", "state", "error", "reason", "retry_time", "entities")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RETRY_TIME_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    scope: str
    state: ScopeState
    error: str
    reason: str
    retry_time: _timestamp_pb2.Timestamp
    entities: int
    def __init__(self, scope: _Optional[str] = ..., state: _Optional[_Union[ScopeState, str]] = ..., error: _Optional[str] = ..., reason: _Optional[str] = ..., retry_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., entities: _Optional[int] = ...) -> None: ...

class KindCount(_message.Message):
    __slots__ = ("kind", "upserts", "unchanged")
    KIND_FIELD_NUMBER: _ClassVar[int]
    UPSERTS_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    kind: _entities_pb2.EntityKind
    upserts: int
    unchanged: int
    def __init__(self, kind: _Optional[_Union[_entities_pb2.EntityKind, str]] = ..., upserts: _Optional[int] = ..., unchanged: _Optional[int] = ...) -> None: ...

class Summary(_message.Message):
    __slots__ = ("sync_id", "mode", "counts", "deletions", "upstream_requests", "cache_hits", "duration", "complete", "checkpoint", "scopes_ok", "scopes_failed", "start_time")
    SYNC_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    DELETIONS_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    SCOPES_OK_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FAILED_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    sync_id: str
    mode: SyncMode
    counts: _containers.RepeatedCompositeFieldContainer[KindCount]
    deletions: int
    upstream_requests: int
    cache_hits: int
    duration: _duration_pb2.Duration
    complete: bool
    checkpoint: bytes
    scopes_ok: int
    scopes_failed: int
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, sync_id: _Optional[str] = ..., mode: _Optional[_Union[SyncMode, str]] = ..., counts: _Optional[_Iterable[_Union[KindCount, _Mapping]]] = ..., deletions: _Optional[int] = ..., upstream_requests: _Optional[int] = ..., cache_hits: _Optional[int] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., complete: _Optional[bool] = ..., checkpoint: _Optional[bytes] = ..., scopes_ok: _Optional[int] = ..., scopes_failed: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SyncEvent(_message.Message):
    __slots__ = ("upsert", "deletion", "checkpoint", "progress", "scope_status", "summary")
    UPSERT_FIELD_NUMBER: _ClassVar[int]
    DELETION_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    SCOPE_STATUS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    upsert: Upsert
    deletion: Deletion
    checkpoint: Checkpoint
    progress: Progress
    scope_status: ScopeStatus
    summary: Summary
    def __init__(self, upsert: _Optional[_Union[Upsert, _Mapping]] = ..., deletion: _Optional[_Union[Deletion, _Mapping]] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., scope_status: _Optional[_Union[ScopeStatus, _Mapping]] = ..., summary: _Optional[_Union[Summary, _Mapping]] = ...) -> None: ...
