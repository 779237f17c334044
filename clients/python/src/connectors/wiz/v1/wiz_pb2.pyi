from connectors.v1 import sync_pb2 as _sync_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SyncRequest(_message.Message):
    __slots__ = ("cloud_platforms", "resource_types", "subscription_ids", "options")
    CLOUD_PLATFORMS_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_TYPES_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_IDS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    cloud_platforms: _containers.RepeatedScalarFieldContainer[str]
    resource_types: _containers.RepeatedScalarFieldContainer[str]
    subscription_ids: _containers.RepeatedScalarFieldContainer[str]
    options: _sync_pb2.SyncOptions
    def __init__(self, cloud_platforms: _Optional[_Iterable[str]] = ..., resource_types: _Optional[_Iterable[str]] = ..., subscription_ids: _Optional[_Iterable[str]] = ..., options: _Optional[_Union[_sync_pb2.SyncOptions, _Mapping]] = ...) -> None: ...
