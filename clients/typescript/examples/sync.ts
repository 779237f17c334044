// Syncs one connector over gRPC and prints its entities as they stream, then
// the summary; the same lines and exit status as clients/python/examples/sync.py.
//
//   npm ci && npm run build
//   node dist/examples/sync.js [--target localhost:50051] [--scope globex] [--kind ENTITY_KIND_REPOSITORY]
//                              [--checkpoint-file gh.ckpt] [--api-key KEY] [github]
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import * as aws from "../src/gen/connectors/aws/v1/aws_pb.js";
import * as azure from "../src/gen/connectors/azure/v1/azure_pb.js";
import * as gcp from "../src/gen/connectors/gcp/v1/gcp_pb.js";
import * as github from "../src/gen/connectors/github/v1/github_pb.js";
import * as gitlab from "../src/gen/connectors/gitlab/v1/gitlab_pb.js";
import * as kubernetes from "../src/gen/connectors/kubernetes/v1/kubernetes_pb.js";
import * as wiz from "../src/gen/connectors/wiz/v1/wiz_pb.js";
import { EntityKindSchema, type EntityKind } from "../src/gen/connectors/v1/entities_pb.js";
import {
  ScopeState,
  ScopeStateSchema,
  SyncMode,
  SyncModeSchema,
  SyncOptionsSchema,
  type SyncEvent,
  type SyncOptions,
} from "../src/gen/connectors/v1/sync_pb.js";

type Call = { headers?: Record<string, string> };

// One typed call per connector; `scopes` fills the field that names its scopes.
function sync(connector: string, transport: Transport, scopes: string[], options: SyncOptions, call: Call): AsyncIterable<SyncEvent> {
  switch (connector) {
    case "github":
      return createClient(github.GithubConnectorService, transport).sync(create(github.SyncRequestSchema, { orgs: scopes, options }), call);
    case "gitlab":
      return createClient(gitlab.GitlabConnectorService, transport).sync(create(gitlab.SyncRequestSchema, { groups: scopes, options }), call);
    case "aws":
      return createClient(aws.AwsConnectorService, transport).sync(create(aws.SyncRequestSchema, { accountIds: scopes, options }), call);
    case "azure":
      return createClient(azure.AzureConnectorService, transport).sync(create(azure.SyncRequestSchema, { subscriptionIds: scopes, options }), call);
    case "gcp":
      return createClient(gcp.GcpConnectorService, transport).sync(create(gcp.SyncRequestSchema, { projectIds: scopes, options }), call);
    case "kubernetes":
      return createClient(kubernetes.KubernetesConnectorService, transport).sync(create(kubernetes.SyncRequestSchema, { contexts: scopes, options }), call);
    case "wiz":
      return createClient(wiz.WizConnectorService, transport).sync(create(wiz.SyncRequestSchema, { cloudPlatforms: scopes, options }), call);
    default:
      throw new Error(`unknown connector ${connector}: one of aws, azure, gcp, github, gitlab, kubernetes, wiz`);
  }
}

const kindName = (kind: EntityKind) => EntityKindSchema.value[kind]?.name ?? String(kind);

// The line printed for an event, or undefined for checkpoints and progress.
function describe(event: SyncEvent): string | undefined {
  const e = event.event;
  switch (e.case) {
    case "upsert": {
      const entity = e.value.entity;
      return entity && `upsert\t${entity.urn}\t${kindName(entity.kind)}\t${entity.displayName}`;
    }
    case "deletion":
      return `deletion\t${e.value.urn}\t${kindName(e.value.kind)}`;
    case "scopeStatus": {
      const s = e.value;
      let line = `scope\t${s.scope}\t${ScopeStateSchema.value[s.state]?.name}\t${s.entities}`;
      if (s.state !== ScopeState.OK) line += `\t${s.reason}: ${s.error}`;
      return line;
    }
    case "summary": {
      const s = e.value;
      const fields = [
        `mode=${SyncModeSchema.value[s.mode]?.name}`,
        `complete=${s.complete}`,
        `upserts=${s.counts.reduce((n, c) => n + c.upserts, 0n)}`,
        `unchanged=${s.counts.reduce((n, c) => n + c.unchanged, 0n)}`,
        `deletions=${s.deletions}`,
        `scopes_ok=${s.scopesOk}`,
        `scopes_failed=${s.scopesFailed}`,
        `upstream_requests=${s.upstreamRequests}`,
        `cache_hits=${s.cacheHits}`,
      ];
      return `summary\t${fields.join(" ")}`;
    }
    default:
      // checkpoint, progress, and event cases newer than this client: ignored.
      return undefined;
  }
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      target: { type: "string", default: "localhost:50051" },
      scope: { type: "string", multiple: true, default: [] },
      kind: { type: "string", multiple: true, default: [] },
      "checkpoint-file": { type: "string" },
      "api-key": { type: "string", default: process.env.CONNECTORS_API_KEY },
    },
  });
  const connector = positionals[0] ?? "github";
  const kinds = values.kind.map((name) => {
    const kind = EntityKindSchema.values.find((v) => v.name === name);
    if (!kind) throw new Error(`unknown kind ${name}`);
    return kind.number;
  });
  const options = create(SyncOptionsSchema, { mode: SyncMode.FULL, kinds });
  const checkpointFile = values["checkpoint-file"];
  if (checkpointFile !== undefined && existsSync(checkpointFile)) {
    options.mode = SyncMode.INCREMENTAL;
    options.checkpoint = readFileSync(checkpointFile);
  }
  const apiKey = values["api-key"];
  const call: Call = apiKey ? { headers: { authorization: `Bearer ${apiKey}` } } : {};
  const transport = createGrpcTransport({ baseUrl: `http://${values.target}` });

  let summary: Extract<SyncEvent["event"], { case: "summary" }>["value"] | undefined;
  try {
    for await (const event of sync(connector, transport, values.scope, options, call)) {
      const line = describe(event);
      if (line !== undefined) console.log(line);
      if (event.event.case === "summary") summary = event.event.value;
    }
  } catch (error) {
    const e = ConnectError.from(error);
    const code = Code[e.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
    console.error(`sync failed: ${code}: ${e.rawMessage}`);
    return 1;
  }
  if (summary === undefined) {
    console.error("sync failed: the stream ended without a summary");
    return 2;
  }
  if (checkpointFile !== undefined) writeFileSync(checkpointFile, summary.checkpoint);
  return summary.complete ? 0 : 3;
}

process.exitCode = await main();
