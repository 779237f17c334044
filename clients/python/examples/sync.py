#!/usr/bin/env python3
"""Syncs one connector and prints its entities as they stream, then the summary.

    PYTHONPATH=clients/python/src python3 clients/python/examples/sync.py github
    python3 clients/python/examples/sync.py --target localhost:50051 --scope globex github

One line per event (tab-separated), in stream order:

    upsert    <urn>  <kind>  <display name>
    deletion  <urn>  <kind>
    scope     <scope>  <state>  <entities>  [<reason>: <error>]
    summary   mode=... complete=... upserts=N unchanged=N deletions=N scopes_ok=N scopes_failed=N upstream_requests=N cache_hits=N

With --checkpoint-file, a sync starts INCREMENTAL from the checkpoint stored
there (FULL when the file does not exist) and stores the summary's checkpoint
for the next run.

Exit status: 0 when the stream ended with a complete summary; 1 on a gRPC
error (printed to stderr with its code); 2 when the stream ended without a
summary; 3 when some scope failed (summary.complete is false).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

import grpc

from connectors.v1 import entities_pb2, sync_pb2

# connector id -> (package, service, the SyncRequest field that names its scopes)
CONNECTORS = {
    "github": ("connectors.github.v1.github", "GithubConnectorService", "orgs"),
    "gitlab": ("connectors.gitlab.v1.gitlab", "GitlabConnectorService", "groups"),
    "aws": ("connectors.aws.v1.aws", "AwsConnectorService", "account_ids"),
    "azure": ("connectors.azure.v1.azure", "AzureConnectorService", "subscription_ids"),
    "gcp": ("connectors.gcp.v1.gcp", "GcpConnectorService", "project_ids"),
    "kubernetes": ("connectors.kubernetes.v1.kubernetes", "KubernetesConnectorService", "contexts"),
    "wiz": ("connectors.wiz.v1.wiz", "WizConnectorService", "cloud_platforms"),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("connector", nargs="?", default="github", choices=sorted(CONNECTORS))
    parser.add_argument("--target", default="localhost:50051", help="host:port of the server")
    parser.add_argument(
        "--scope",
        action="append",
        default=[],
        help="an org, group, account, subscription, project, context or cloud platform "
        "(repeatable; default: the server's default scope)",
    )
    parser.add_argument(
        "--kind",
        action="append",
        default=[],
        help="only entities of this kind, e.g. ENTITY_KIND_REPOSITORY (repeatable)",
    )
    parser.add_argument("--checkpoint-file", type=Path, help="incremental from and to this file")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("CONNECTORS_API_KEY"),
        help="sent as authorization: Bearer (default: $CONNECTORS_API_KEY)",
    )
    return parser.parse_args(argv)


def build_request(args: argparse.Namespace):
    module, service, scope_field = CONNECTORS[args.connector]
    pb2 = importlib.import_module(f"{module}_pb2")
    pb2_grpc = importlib.import_module(f"{module}_pb2_grpc")
    options = sync_pb2.SyncOptions(
        mode=sync_pb2.SYNC_MODE_FULL,
        kinds=[entities_pb2.EntityKind.Value(kind) for kind in args.kind],
    )
    if args.checkpoint_file is not None and args.checkpoint_file.exists():
        options.mode = sync_pb2.SYNC_MODE_INCREMENTAL
        options.checkpoint = args.checkpoint_file.read_bytes()
    request = pb2.SyncRequest(options=options)
    getattr(request, scope_field).extend(args.scope)
    stub_class = getattr(pb2_grpc, f"{service}Stub")
    return stub_class, request


def describe(event: sync_pb2.SyncEvent) -> str | None:
    """The line printed for an event, or None for checkpoints and progress."""
    case = event.WhichOneof("event")
    if case == "upsert":
        entity = event.upsert.entity
        kind = entities_pb2.EntityKind.Name(entity.kind)
        return f"upsert\t{entity.urn}\t{kind}\t{entity.display_name}"
    if case == "deletion":
        return f"deletion\t{event.deletion.urn}\t{entities_pb2.EntityKind.Name(event.deletion.kind)}"
    if case == "scope_status":
        status = event.scope_status
        line = f"scope\t{status.scope}\t{sync_pb2.ScopeState.Name(status.state)}\t{status.entities}"
        if status.state != sync_pb2.SCOPE_STATE_OK:
            line += f"\t{status.reason}: {status.error}"
        return line
    if case == "summary":
        summary = event.summary
        fields = [
            f"mode={sync_pb2.SyncMode.Name(summary.mode)}",
            f"complete={str(summary.complete).lower()}",
            f"upserts={sum(count.upserts for count in summary.counts)}",
            f"unchanged={sum(count.unchanged for count in summary.counts)}",
            f"deletions={summary.deletions}",
            f"scopes_ok={summary.scopes_ok}",
            f"scopes_failed={summary.scopes_failed}",
            f"upstream_requests={summary.upstream_requests}",
            f"cache_hits={summary.cache_hits}",
        ]
        return "summary\t" + " ".join(fields)
    # checkpoint, progress, and event cases newer than this client: ignored.
    return None


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    stub_class, request = build_request(args)
    metadata = [("authorization", f"Bearer {args.api_key}")] if args.api_key else None
    summary = None
    with grpc.insecure_channel(args.target) as channel:
        stub = stub_class(channel)
        try:
            for event in stub.Sync(request, metadata=metadata):
                line = describe(event)
                if line is not None:
                    print(line, flush=True)
                if event.WhichOneof("event") == "summary":
                    summary = event.summary
        except grpc.RpcError as error:
            print(f"sync failed: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    if summary is None:
        print("sync failed: the stream ended without a summary", file=sys.stderr)
        return 2
    if args.checkpoint_file is not None:
        args.checkpoint_file.write_bytes(summary.checkpoint)
    return 0 if summary.complete else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
