from connectors.v1 import entities_pb2 as _entities_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConnectorAvailability(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONNECTOR_AVAILABILITY_UNSPECIFIED: _ClassVar[ConnectorAvailability]
    CONNECTOR_AVAILABILITY_LIVE: _ClassVar[ConnectorAvailability]
    CONNECTOR_AVAILABILITY_FIXTURE: _ClassVar[ConnectorAvailability]
    CONNECTOR_AVAILABILITY_UNAVAILABLE: _ClassVar[ConnectorAvailability]
CONNECTOR_AVAILABILITY_UNSPECIFIED: ConnectorAvailability
CONNECTOR_AVAILABILITY_LIVE: ConnectorAvailability
CONNECTOR_AVAILABILITY_FIXTURE: ConnectorAvailability
CONNECTOR_AVAILABILITY_UNAVAILABLE: ConnectorAvailability

class Connector(_message.Message):
    __slots__ = ("id", "display_name", "version", "kinds", "supports_incremental", "auth_modes", "availability", "reason", "service", "auth_mode")
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_INCREMENTAL_FIELD_NUMBER: _ClassVar[int]
    AUTH_MODES_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    AUTH_MODE_FIELD_NUMBER: _ClassVar[int]
    id: str
    display_name: str
    version: str
    kinds: _containers.RepeatedScalarFieldContainer[_entities_pb2.EntityKind]
    supports_incremental: bool
    auth_modes: _containers.RepeatedScalarFieldContainer[str]
    availability: ConnectorAvailability
    reason: str
    service: str
    auth_mode: str
    def __init__(self, id: _Optional[str] = ..., display_name: _Optional[str] = ..., version: _Optional[str] = ..., kinds: _Optional[_Iterable[_Union[_entities_pb2.EntityKind, str]]] = ..., supports_incremental: _Optional[bool] = ..., auth_modes: _Optional[_Iterable[str]] = ..., availability: _Optional[_Union[ConnectorAvailability, str]] = ..., reason: _Optional[str] = ..., service: _Optional[str] = ..., auth_mode: _Optional[str] = ...) -> None: ...

class ListConnectorsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListConnectorsResponse(_message.Message):
    __slots__ = ("connectors",)
    CONNECTORS_FIELD_NUMBER: _ClassVar[int]
    connectors: _containers.RepeatedCompositeFieldContainer[Connector]
    def __init__(self, connectors: _Optional[_Iterable[_Union[Connector, _Mapping]]] = ...) -> None: ...

class GetConnectorRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetConnectorResponse(_message.Message):
    __slots__ = ("connector",)
    CONNECTOR_FIELD_NUMBER: _ClassVar[int]
    connector: Connector
    def __init__(self, connector: _Optional[_Union[Connector, _Mapping]] = ...) -> None: ...
