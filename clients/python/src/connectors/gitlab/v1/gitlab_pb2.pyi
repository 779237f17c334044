from connectors.v1 import sync_pb2 as _sync_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SyncRequest(_message.Message):
    __slots__ = ("groups", "projects", "pipelines_per_project", "include_child_pipelines", "options")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    PROJECTS_FIELD_NUMBER: _ClassVar[int]
    PIPELINES_PER_PROJECT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CHILD_PIPELINES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedScalarFieldContainer[str]
    projects: _containers.RepeatedScalarFieldContainer[str]
    pipelines_per_project: int
    include_child_pipelines: bool
    options: _sync_pb2.SyncOptions
    def __init__(self, groups: _Optional[_Iterable[str]] = ..., projects: _Optional[_Iterable[str]] = ..., pipelines_per_project: _Optional[int] = ..., include_child_pipelines: _Optional[bool] = ..., options: _Optional[_Union[_sync_pb2.SyncOptions, _Mapping]] = ...) -> None: ...
