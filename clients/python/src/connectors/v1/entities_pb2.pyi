import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EntityKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTITY_KIND_UNSPECIFIED: _ClassVar[EntityKind]
    ENTITY_KIND_REPOSITORY: _ClassVar[EntityKind]
    ENTITY_KIND_MANIFEST: _ClassVar[EntityKind]
    ENTITY_KIND_SBOM: _ClassVar[EntityKind]
    ENTITY_KIND_PIPELINE: _ClassVar[EntityKind]
    ENTITY_KIND_WORKLOAD: _ClassVar[EntityKind]
    ENTITY_KIND_TAG: _ClassVar[EntityKind]
    ENTITY_KIND_ASSET: _ClassVar[EntityKind]
ENTITY_KIND_UNSPECIFIED: EntityKind
ENTITY_KIND_REPOSITORY: EntityKind
ENTITY_KIND_MANIFEST: EntityKind
ENTITY_KIND_SBOM: EntityKind
ENTITY_KIND_PIPELINE: EntityKind
ENTITY_KIND_WORKLOAD: EntityKind
ENTITY_KIND_TAG: EntityKind
ENTITY_KIND_ASSET: EntityKind

class Label(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Entity(_message.Message):
    __slots__ = ("urn", "kind", "native_id", "display_name", "labels", "parent_urn", "repository", "manifest", "sbom", "pipeline", "workload", "tag", "asset")
    URN_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NATIVE_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PARENT_URN_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    SBOM_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    urn: str
    kind: EntityKind
    native_id: str
    display_name: str
    labels: _containers.RepeatedCompositeFieldContainer[Label]
    parent_urn: str
    repository: Repository
    manifest: Manifest
    sbom: Sbom
    pipeline: Pipeline
    workload: Workload
    tag: Tag
    asset: CloudAsset
    def __init__(self, urn: _Optional[str] = ..., kind: _Optional[_Union[EntityKind, str]] = ..., native_id: _Optional[str] = ..., display_name: _Optional[str] = ..., labels: _Optional[_Iterable[_Union[Label, _Mapping]]] = ..., parent_urn: _Optional[str] = ..., repository: _Optional[_Union[Repository, _Mapping]] = ..., manifest: _Optional[_Union[Manifest, _Mapping]] = ..., sbom: _Optional[_Union[Sbom, _Mapping]] = ..., pipeline: _Optional[_Union[Pipeline, _Mapping]] = ..., workload: _Optional[_Union[Workload, _Mapping]] = ..., tag: _Optional[_Union[Tag, _Mapping]] = ..., asset: _Optional[_Union[CloudAsset, _Mapping]] = ...) -> None: ...

class Repository(_message.Message):
    __slots__ = ("owner", "name", "full_name", "description", "default_branch", "visibility", "archived", "fork", "language", "topics", "web_url", "clone_url", "license_spdx_id", "create_time", "push_time")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FULL_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_BRANCH_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    FORK_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    WEB_URL_FIELD_NUMBER: _ClassVar[int]
    CLONE_URL_FIELD_NUMBER: _ClassVar[int]
    LICENSE_SPDX_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PUSH_TIME_FIELD_NUMBER: _ClassVar[int]
    owner: str
    name: str
    full_name: str
    description: str
    default_branch: str
    visibility: str
    archived: bool
    fork: bool
    language: str
    topics: _containers.RepeatedScalarFieldContainer[str]
    web_url: str
    clone_url: str
    license_spdx_id: str
    create_time: _timestamp_pb2.Timestamp
    push_time: _timestamp_pb2.Timestamp
    def __init__(self, owner: _Optional[str] = ..., name: _Optional[str] = ..., full_name: _Optional[str] = ..., description: _Optional[str] = ..., default_branch: _Optional[str] = ..., visibility: _Optional[str] = ..., archived: _Optional[bool] = ..., fork: _Optional[bool] = ..., language: _Optional[str] = ..., topics: _Optional[_Iterable[str]] = ..., web_url: _Optional[str] = ..., clone_url: _Optional[str] = ..., license_spdx_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., push_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Dependency(_message.Message):
    __slots__ = ("name", "version", "purl", "scope")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PURL_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    purl: str
    scope: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., purl: _Optional[str] = ..., scope: _Optional[str] = ...) -> None: ...

class Manifest(_message.Message):
    __slots__ = ("path", "ecosystem", "blob_sha", "dependencies", "parse_error")
    PATH_FIELD_NUMBER: _ClassVar[int]
    ECOSYSTEM_FIELD_NUMBER: _ClassVar[int]
    BLOB_SHA_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    PARSE_ERROR_FIELD_NUMBER: _ClassVar[int]
    path: str
    ecosystem: str
    blob_sha: str
    dependencies: _containers.RepeatedCompositeFieldContainer[Dependency]
    parse_error: str
    def __init__(self, path: _Optional[str] = ..., ecosystem: _Optional[str] = ..., blob_sha: _Optional[str] = ..., dependencies: _Optional[_Iterable[_Union[Dependency, _Mapping]]] = ..., parse_error: _Optional[str] = ...) -> None: ...

class SbomPackage(_message.Message):
    __slots__ = ("spdx_id", "name", "version", "purl", "license_concluded")
    SPDX_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PURL_FIELD_NUMBER: _ClassVar[int]
    LICENSE_CONCLUDED_FIELD_NUMBER: _ClassVar[int]
    spdx_id: str
    name: str
    version: str
    purl: str
    license_concluded: str
    def __init__(self, spdx_id: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., purl: _Optional[str] = ..., license_concluded: _Optional[str] = ...) -> None: ...

class Sbom(_message.Message):
    __slots__ = ("spec_version", "document_name", "document_namespace", "create_time", "packages")
    SPEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_NAME_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    spec_version: str
    document_name: str
    document_namespace: str
    create_time: _timestamp_pb2.Timestamp
    packages: _containers.RepeatedCompositeFieldContainer[SbomPackage]
    def __init__(self, spec_version: _Optional[str] = ..., document_name: _Optional[str] = ..., document_namespace: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., packages: _Optional[_Iterable[_Union[SbomPackage, _Mapping]]] = ...) -> None: ...

class Pipeline(_message.Message):
    __slots__ = ("project", "status", "ref", "sha", "source", "web_url", "create_time", "update_time", "finish_time", "duration_seconds")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    SHA_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    WEB_URL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    project: str
    status: str
    ref: str
    sha: str
    source: str
    web_url: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    duration_seconds: int
    def __init__(self, project: _Optional[str] = ..., status: _Optional[str] = ..., ref: _Optional[str] = ..., sha: _Optional[str] = ..., source: _Optional[str] = ..., web_url: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration_seconds: _Optional[int] = ...) -> None: ...

class ContainerImage(_message.Message):
    __slots__ = ("container", "image", "digest")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    container: str
    image: str
    digest: str
    def __init__(self, container: _Optional[str] = ..., image: _Optional[str] = ..., digest: _Optional[str] = ...) -> None: ...

class Workload(_message.Message):
    __slots__ = ("workload_type", "cluster", "namespace", "images", "owner_urns", "desired_replicas", "ready_replicas", "status", "attributes")
    WORKLOAD_TYPE_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    OWNER_URNS_FIELD_NUMBER: _ClassVar[int]
    DESIRED_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    READY_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    workload_type: str
    cluster: str
    namespace: str
    images: _containers.RepeatedCompositeFieldContainer[ContainerImage]
    owner_urns: _containers.RepeatedScalarFieldContainer[str]
    desired_replicas: int
    ready_replicas: int
    status: str
    attributes: _containers.RepeatedCompositeFieldContainer[Label]
    def __init__(self, workload_type: _Optional[str] = ..., cluster: _Optional[str] = ..., namespace: _Optional[str] = ..., images: _Optional[_Iterable[_Union[ContainerImage, _Mapping]]] = ..., owner_urns: _Optional[_Iterable[str]] = ..., desired_replicas: _Optional[int] = ..., ready_replicas: _Optional[int] = ..., status: _Optional[str] = ..., attributes: _Optional[_Iterable[_Union[Label, _Mapping]]] = ...) -> None: ...

class Tag(_message.Message):
    __slots__ = ("resource_id", "key", "value")
    RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    resource_id: str
    key: str
    value: str
    def __init__(self, resource_id: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class CloudAsset(_message.Message):
    __slots__ = ("asset_type", "native_type", "cloud_platform", "account", "region", "status", "external_id", "images", "attributes", "create_time", "update_time")
    ASSET_TYPE_FIELD_NUMBER: _ClassVar[int]
    NATIVE_TYPE_FIELD_NUMBER: _ClassVar[int]
    CLOUD_PLATFORM_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    asset_type: str
    native_type: str
    cloud_platform: str
    account: str
    region: str
    status: str
    external_id: str
    images: _containers.RepeatedCompositeFieldContainer[ContainerImage]
    attributes: _containers.RepeatedCompositeFieldContainer[Label]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, asset_type: _Optional[str] = ..., native_type: _Optional[str] = ..., cloud_platform: _Optional[str] = ..., account: _Optional[str] = ..., region: _Optional[str] = ..., status: _Optional[str] = ..., external_id: _Optional[str] = ..., images: _Optional[_Iterable[_Union[ContainerImage, _Mapping]]] = ..., attributes: _Optional[_Iterable[_Union[Label, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
