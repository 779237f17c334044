from connectors.v1 import sync_pb2 as _sync_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SyncRequest(_message.Message):
    __slots__ = ("orgs", "repositories", "exclude_archived", "exclude_forks", "options")
    ORGS_FIELD_NUMBER: _ClassVar[int]
    REPOSITORIES_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_FORKS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    orgs: _containers.RepeatedScalarFieldContainer[str]
    repositories: _containers.RepeatedScalarFieldContainer[str]
    exclude_archived: bool
    exclude_forks: bool
    options: _sync_pb2.SyncOptions
    def __init__(self, orgs: _Optional[_Iterable[str]] = ..., repositories: _Optional[_Iterable[str]] = ..., exclude_archived: _Optional[bool] = ..., exclude_forks: _Optional[bool] = ..., options: _Optional[_Union[_sync_pb2.SyncOptions, _Mapping]] = ...) -> None: ...
