//! The GitHub connector: the conformance suite on fixtures, and the
//! GitHub-specific behaviour (scopes, filters, request counts, live mode).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use connectors_proto::github::v1::SyncRequest;
use connectors_proto::v1::{EntityKind, ScopeState, SyncEvent, SyncOptions, sync_event::Event};
use connectors_server::config::{Config, ConnectorsMode};
use connectors_server::replay::github_graphql::FixtureGraphql;
use connectors_server::replay::{Exchange, FixtureSet, RecordedResponse, ReplayOptions, ReplayServer, Synthesizer};
use futures::StreamExt;
use serde::Deserialize;
use tonic::{Code, Status};

use crate::conformance::{FaultRun, Harness, collect, full, incremental};
use crate::support::{TestServer, deletions, scope_errors, scope_statuses, summary, upserts};

fn fixtures_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures"))
}

#[derive(Debug, Deserialize)]
struct EstateRepo {
    id: u64,
    full_name: String,
    archived: bool,
    fork: bool,
    manifests: Vec<String>,
    has_sbom: bool,
}

/// fixtures/github/estate.json: org -> repos in listing order.
fn estate() -> BTreeMap<String, Vec<EstateRepo>> {
    let text = std::fs::read_to_string(fixtures_root().join("github/estate.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[derive(Debug, Deserialize)]
struct Expected {
    upserts: Vec<String>,
    deletions: Vec<String>,
}

pub struct Github;

async fn open(server: &TestServer, request: SyncRequest) -> Result<tonic::Streaming<SyncEvent>, Status> {
    server.client.github().sync(request).await.map(|r| r.into_inner())
}

fn request(options: SyncOptions) -> SyncRequest {
    SyncRequest {
        options: Some(options),
        ..Default::default()
    }
}

#[async_trait]
impl Harness for Github {
    const ID: &'static str = "github";

    async fn open(server: &TestServer, options: SyncOptions) -> Result<tonic::Streaming<SyncEvent>, Status> {
        open(server, request(options)).await
    }

    fn expected_counts() -> Vec<(EntityKind, u64)> {
        let repos: Vec<EstateRepo> = estate().into_values().flatten().collect();
        let counts = vec![
            (EntityKind::Repository, repos.len() as u64),
            (
                EntityKind::Manifest,
                repos.iter().map(|r| r.manifests.len() as u64).sum(),
            ),
            (EntityKind::Sbom, repos.iter().filter(|r| r.has_sbom).count() as u64),
        ];
        // The estate the fixture generator wrote (fixtures/github/generate.py).
        assert_eq!(
            counts,
            vec![
                (EntityKind::Repository, 34),
                (EntityKind::Manifest, 37),
                (EntityKind::Sbom, 31)
            ]
        );
        counts
    }

    fn apply_change(server: &TestServer) {
        apply_scenario(server, "changed");
    }

    fn expected_change() -> (Vec<String>, Vec<String>) {
        let text = std::fs::read_to_string(fixtures_root().join("github/scenarios/changed/expected.json")).unwrap();
        let expected: Expected = serde_json::from_str(&text).unwrap();
        (expected.upserts, expected.deletions)
    }

    fn failed_under(run: FaultRun) -> Vec<(String, ScopeState, String, String)> {
        crate::conformance::malformed_fails(
            run,
            "org:acme-corp",
            "repositories of acme-corp: github returned a body that does not parse",
        )
    }

    async fn bad_requests(server: &TestServer) -> Vec<(Result<tonic::Streaming<SyncEvent>, Status>, &'static str)> {
        let orgs = |orgs: &[&str]| SyncRequest {
            orgs: orgs.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        let repos = |repos: &[&str]| SyncRequest {
            repositories: repos.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        let many: Vec<String> = (0..101).map(|i| format!("org{i}")).collect();
        let cases: Vec<(SyncRequest, &'static str)> = vec![
            (orgs(&[""]), "orgs[0]"),
            (orgs(&["acme", "bad/org"]), "orgs[1]"),
            (orgs(&["-leading"]), "orgs[0]"),
            (orgs(&["a".repeat(40).as_str()]), "orgs[0]"),
            (orgs(&["acme", "acme"]), "orgs[1]"),
            (
                SyncRequest {
                    orgs: many,
                    ..Default::default()
                },
                "orgs",
            ),
            (repos(&["no-slash"]), "repositories[0]"),
            (repos(&["acme/.."]), "repositories[0]"),
            (repos(&["../etc/passwd"]), "repositories[0]"),
            (repos(&["acme/api", "acme/a b"]), "repositories[1]"),
            (
                SyncRequest {
                    options: Some(SyncOptions {
                        kinds: vec![EntityKind::Pipeline as i32],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "options.kinds[0]",
            ),
        ];
        let mut out = Vec::new();
        for (request, field) in cases {
            out.push((open(server, request).await, field));
        }
        out
    }
}

crate::conformance_suite!(conformance, crate::github::Github);

fn urns_of(events: &[SyncEvent], kind: EntityKind) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Upsert(u)) if u.entity.as_ref()?.kind == kind as i32 => Some(u.entity.as_ref()?.urn.clone()),
            _ => None,
        })
        .collect()
}

/// Upstream requests of a FULL sync of the fixture estate: 5 listing pages,
/// 34 trees, the SBOM reports (34 `generate-report`, 3 of them 404s; the
/// other 31 reports a `fetch-report` and a download each), and the 37
/// manifest blobs in 5 GraphQL reads (one per listing page).
pub(crate) const FULL_REQUESTS: u64 = 5 + 34 + 34 + 2 * 31 + 5;

#[tokio::test]
async fn no_change_incremental_makes_a_fraction_of_the_requests_of_a_full_sync() {
    let server = TestServer::start().await;
    let base = collect(open(&server, request(full())).await).await;
    let full_summary = summary(&base);
    let events = collect(open(&server, request(incremental(full_summary.checkpoint.clone()))).await).await;
    let inc = summary(&events);
    println!(
        "github requests: full {} / no-change incremental {} ({} answered 304) = {:.1}%",
        full_summary.upstream_requests,
        inc.upstream_requests,
        inc.cache_hits,
        100.0 * inc.upstream_requests as f64 / full_summary.upstream_requests as f64
    );
    assert_eq!(full_summary.upstream_requests, FULL_REQUESTS);
    // Incremental: only the 5 listing pages, each answered 304 from the cache.
    assert_eq!(inc.upstream_requests, 5);
    assert_eq!(inc.cache_hits, 5);
    assert_eq!(upserts(&events).len(), 0);
}

/// Every entity the FULL sync `full` sent, the INCREMENTAL sync `inc` counted
/// unchanged, kind by kind.
fn assert_every_entity_unchanged(inc: &connectors_proto::v1::Summary, full: &connectors_proto::v1::Summary) {
    let unchanged: Vec<(i32, u64)> = inc.counts.iter().map(|c| (c.kind, c.unchanged)).collect();
    let sent: Vec<(i32, u64)> = full.counts.iter().map(|c| (c.kind, c.upserts)).collect();
    assert_eq!(unchanged, sent);
}

/// An in-memory cache smaller than the upstream bodies of one FULL sync
/// still keeps the state that sync wrote: the no-change INCREMENTAL sync
/// from its checkpoint succeeds and sends nothing (bodies pushed the state
/// out, or kept it from being stored, when both shared one bound).
#[tokio::test]
async fn a_cache_full_of_upstream_bodies_keeps_the_sync_state() {
    let mut config = Config::for_tests();
    config.memory_cache_bytes = 128 * 1024;
    let server = TestServer::with_config(config).await;
    let base = collect(open(&server, request(full())).await).await;
    let full_summary = summary(&base);
    assert!(full_summary.complete);
    let events = collect(open(&server, request(incremental(full_summary.checkpoint.clone()))).await).await;
    let inc = summary(&events);
    assert!(inc.complete, "{:?}", scope_errors(&events));
    assert_eq!(upserts(&events).len(), 0);
    assert_eq!(deletions(&events).len(), 0);
    assert_every_entity_unchanged(&inc, &full_summary);
}

/// The urns a sync sends for a fixture repository, in order: the
/// repository, its manifests, its SBOM.
fn urns_of_repo(repo: &EstateRepo) -> Vec<String> {
    let mut urns = vec![format!("urn:connectors:github:repository:{}", repo.id)];
    for path in &repo.manifests {
        urns.push(format!("urn:connectors:github:manifest:{}:{path}", repo.id));
    }
    if repo.has_sbom {
        urns.push(format!("urn:connectors:github:sbom:{}", repo.id));
    }
    urns
}

#[tokio::test]
async fn explicit_repositories_are_scopes_of_their_own() {
    let server = TestServer::start().await;
    let estate = estate();
    let pick = |org: &str, i: usize| &estate[org][i];
    let chosen = [pick("acme-corp", 0), pick("globex", 3)];
    let events = collect(
        open(
            &server,
            SyncRequest {
                repositories: chosen.iter().map(|r| r.full_name.clone()).collect(),
                ..Default::default()
            },
        )
        .await,
    )
    .await;
    let scopes: Vec<String> = scope_statuses(&events).into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        scopes,
        chosen
            .iter()
            .map(|r| format!("repo:{}", r.full_name))
            .collect::<Vec<_>>()
    );
    let expected: Vec<String> = chosen.iter().flat_map(|repo| urns_of_repo(repo)).collect();
    let got: Vec<String> = upserts(&events).into_iter().map(|(u, _)| u).collect();
    assert_eq!(got, expected);
    assert_eq!(server.unmatched("github"), Vec::<String>::new());
}

/// An explicit repository named by its name before a rename (or a
/// transfer): GitHub answers 301 to `/repositories/{id}` on the API, which
/// the connector follows; the scope keeps the name the request gave, and
/// the entities are the repository's, by id. A redirect to another origin
/// is not followed: that scope fails, naming the repository.
#[tokio::test]
async fn an_explicit_repository_renamed_since_is_followed_to_its_new_name() {
    let server = TestServer::start().await;
    let root = fixtures_root();
    let mut set = FixtureSet::load_provider(&root, "github").unwrap();
    let renamed = &estate()["acme-corp"][0];
    let moved = |from: &str, to: String| -> Exchange {
        serde_json::from_value(serde_json::json!({
            "request": {"method": "GET", "path": from},
            "response": {"status": 301,
                "headers": {"content-type": "application/json; charset=utf-8", "location": to.clone()},
                "body": {"message": "Moved Permanently", "url": to,
                    "documentation_url": "https://docs.github.com/rest/guides/best-practices-for-using-the-rest-api#follow-redirects"}}
        }))
        .unwrap()
    };
    set.insert(moved(
        "/repos/acme-corp/payments-service",
        format!("{{{{base_url}}}}/repositories/{}", renamed.id),
    ));
    set.insert(moved(
        "/repos/acme-corp/elsewhere",
        "https://attacker.example/repositories/1".to_owned(),
    ));
    let mut by_id = set
        .exchanges()
        .find(|e| e.request.path == format!("/repos/{}", renamed.full_name))
        .unwrap()
        .clone();
    by_id.request.path = format!("/repositories/{}", renamed.id);
    set.insert(by_id);
    let replay = server.server.replay("github").unwrap();
    replay.set_fixtures(set);
    let before = replay.stats().requests();
    let events = collect(
        open(
            &server,
            SyncRequest {
                repositories: vec!["acme-corp/payments-service".into(), "acme-corp/elsewhere".into()],
                ..Default::default()
            },
        )
        .await,
    )
    .await;
    assert_eq!(
        scope_errors(&events),
        vec![(
            "repo:acme-corp/elsewhere".to_owned(),
            "UPSTREAM_UNAVAILABLE".to_owned(),
            "repository acme-corp/elsewhere: refusing request to a url outside the configured upstream origin"
                .to_owned()
        )]
    );
    let got: Vec<String> = upserts(&events).into_iter().map(|(u, _)| u).collect();
    assert_eq!(got, urns_of_repo(renamed));
    // The two redirects, the repository by id, its tree, a GraphQL read of
    // its blobs and its SBOM report (3); nothing sent to the other origin.
    assert_eq!(replay.stats().requests() - before, 2 + 1 + 1 + 1 + 3);
    assert_eq!(server.unmatched("github"), Vec::<String>::new());
}

#[tokio::test]
async fn kinds_select_what_is_fetched() {
    let server = TestServer::start().await;
    let mut options = full();
    options.kinds = vec![EntityKind::Sbom as i32];
    let before = server.upstream_requests("github");
    let events = collect(open(&server, request(options)).await).await;
    let sboms = urns_of(&events, EntityKind::Sbom);
    assert_eq!(sboms.len(), 31);
    assert_eq!(upserts(&events).len(), 31);
    // Listing pages and SBOM reports only (34 generate-report, 31 fetch-report
    // and 31 downloads): no tree or blob requests.
    assert_eq!(server.upstream_requests("github") - before, 5 + 34 + 2 * 31);
}

#[tokio::test]
async fn archived_repositories_and_forks_can_be_excluded() {
    let server = TestServer::start().await;
    let repos: Vec<EstateRepo> = estate().into_values().flatten().collect();
    let kept: Vec<String> = repos
        .iter()
        .filter(|r| !r.archived && !r.fork)
        .map(|r| format!("urn:connectors:github:repository:{}", r.id))
        .collect();
    assert_eq!(kept.len(), 30);
    let mut options = full();
    options.kinds = vec![EntityKind::Repository as i32];
    let events = collect(
        open(
            &server,
            SyncRequest {
                exclude_archived: true,
                exclude_forks: true,
                options: Some(options),
                ..Default::default()
            },
        )
        .await,
    )
    .await;
    let mut got = urns_of(&events, EntityKind::Repository);
    got.sort();
    let mut kept = kept;
    kept.sort();
    assert_eq!(got, kept);
}

#[tokio::test]
async fn the_change_scenario_works_on_the_redis_cache() {
    let Some(redis) = connectors_server::testing::RedisServer::start_or_skip() else {
        return;
    };
    let mut config = Config::for_tests();
    config.redis_url = Some(redis.url());
    let server = TestServer::with_config(config).await;
    assert_eq!(server.server.cache.backend(), "redis");
    let base = collect(open(&server, request(full())).await).await;
    <Github as Harness>::apply_change(&server);
    let events = collect(open(&server, request(incremental(summary(&base).checkpoint))).await).await;
    assert_change_result(&events);
    assert!(!server.server.cache.is_degraded());
}

/// The INCREMENTAL sync after the change scenario sent exactly its expected
/// upserts and deletions.
fn assert_change_result(events: &[SyncEvent]) {
    let (want_up, want_del) = <Github as Harness>::expected_change();
    let mut got_up: Vec<String> = upserts(events).into_iter().map(|(u, _)| u).collect();
    got_up.sort();
    let mut got_del = deletions(events);
    got_del.sort();
    assert_eq!((got_up, got_del), (want_up, want_del));
}

/// The id of a repository of the fixture estate.
fn repo_id_of(full_name: &str) -> u64 {
    estate()
        .values()
        .flatten()
        .find(|r| r.full_name == full_name)
        .map(|r| r.id)
        .unwrap()
}

/// Upstream requests of the change scenario's INCREMENTAL sync: the 5
/// listing pages (fx-rates-api is gone from globex's), then mobile-bff's tree,
/// a GraphQL read of its changed services/api blob and its SBOM report (3
/// requests); not its unchanged worker blob; and `GET /repositories/{id}`
/// of fx-rates-api, which no page listed (404: it is deleted).
const EXPECTED_CHANGE_REQUESTS: u64 = 11;

/// Serves the fixtures with `fixtures/github/scenarios/<name>/exchanges` over them.
fn apply_scenario(server: &TestServer, name: &str) {
    let root = fixtures_root();
    let mut set = FixtureSet::load_provider(&root, "github").unwrap();
    set.overlay_dir(&root.join(format!("github/scenarios/{name}/exchanges")))
        .unwrap();
    server.server.replay("github").unwrap().set_fixtures(set);
}

/// An organization's listing that comes back empty (every repository gone
/// from it at once, or a listing GitHub got wrong) deletes nothing that is
/// still there: each of its 22 repositories is looked up by id, a listing
/// page's worth at a time, found in the organization, and kept.
#[tokio::test]
async fn an_organization_listing_that_comes_back_empty_deletes_nothing_still_there() {
    let server = TestServer::start().await;
    let base = collect(open(&server, request(full())).await).await;
    let full_summary = summary(&base);
    let root = fixtures_root();
    let mut set = FixtureSet::load_provider(&root, "github").unwrap();
    let acme: Vec<EstateRepo> = estate().remove("acme-corp").unwrap();
    assert_eq!(acme.len(), 22);
    let mut by_id = Vec::new();
    for repo in &acme {
        let mut exchange = set
            .exchanges()
            .find(|e| e.request.path == format!("/repos/{}", repo.full_name))
            .unwrap()
            .clone();
        exchange.request.path = format!("/repositories/{}", repo.id);
        by_id.push(exchange);
    }
    for exchange in by_id {
        set.insert(exchange);
    }
    let page = set
        .exchanges_mut_all()
        .find(|e| e.request.path == "/orgs/acme-corp/repos")
        .unwrap();
    page.response.body = Some(serde_json::json!([]));
    page.response
        .headers
        .retain(|(name, _)| name != "link" && name != "etag");
    server.server.replay("github").unwrap().set_fixtures(set);
    let events = collect(open(&server, request(incremental(full_summary.checkpoint.clone()))).await).await;
    let s = summary(&events);
    assert!(s.complete, "{:?}", scope_errors(&events));
    assert_eq!(deletions(&events), Vec::<String>::new());
    assert_eq!(upserts(&events), Vec::<(String, String)>::new());
    assert_every_entity_unchanged(&s, &full_summary);
    // acme-corp's one (empty) page, globex's two (304), 22 lookups by id.
    assert_eq!(s.upstream_requests, 1 + 2 + 22);
    assert_eq!(s.cache_hits, 2);
    assert_eq!(server.unmatched("github"), Vec::<String>::new());
}

/// Page-number listing drift: `acme-corp/payments-api` (page 1) is deleted
/// after page 1 was read, so `acme-corp/auth-gateway`, first of the old page
/// 2, moves to page 1 and no page lists it. `GET /repositories/{id}` finds
/// it still in the organization, so neither it nor its children are deleted.
#[tokio::test]
async fn a_repository_skipped_by_the_listing_when_an_earlier_one_is_deleted_is_not_deleted() {
    let server = TestServer::start().await;
    let base = collect(open(&server, request(full())).await).await;
    let full_summary = summary(&base);
    apply_scenario(&server, "drift");
    let replay = server.server.replay("github").unwrap();
    let before = replay.stats().requests();
    let events = collect(open(&server, request(incremental(full_summary.checkpoint.clone()))).await).await;
    let text = std::fs::read_to_string(fixtures_root().join("github/scenarios/drift/expected.json")).unwrap();
    let expected: Expected = serde_json::from_str(&text).unwrap();
    assert_eq!(deletions(&events), expected.deletions);
    assert_eq!(
        upserts(&events).into_iter().map(|(u, _)| u).collect::<Vec<_>>(),
        expected.upserts
    );
    let s = summary(&events);
    assert!(s.complete, "{:?}", scope_errors(&events));
    assert_eq!(s.deletions, 0);
    // Every entity of the FULL sync is unchanged, auth-gateway's included.
    assert_every_entity_unchanged(&s, &full_summary);
    // 5 listing pages (acme-corp's shifted pages 2 and 3 answered 200, the
    // other 3 answered 304) and GET /repositories/{id} of auth-gateway.
    assert_eq!(s.upstream_requests, 5 + 1);
    assert_eq!(s.cache_hits, 3);
    assert_eq!(replay.stats().requests() - before, 6);
    assert_eq!(server.unmatched("github"), Vec::<String>::new());
}

/// A pushed repository's manifest whose blob sha is the baseline's is kept
/// without fetching the blob: in the change scenario mobile-bff's
/// services/worker/package.json keeps its sha while services/api's changes.
/// Its blob is taken out of the fixtures, so a request for it would be
/// unmatched.
#[tokio::test]
async fn an_unchanged_blob_of_a_pushed_repository_is_not_fetched_again() {
    let server = TestServer::start().await;
    let base = collect(open(&server, request(full())).await).await;
    let root = fixtures_root();
    let mut set = FixtureSet::load_provider(&root, "github").unwrap();
    set.overlay_dir(&root.join("github/scenarios/changed/exchanges"))
        .unwrap();
    let kept_blob = "/repos/acme-corp/mobile-bff/git/blobs/1393e0ca";
    let full_path = set
        .exchanges()
        .map(|e| e.request.path.clone())
        .find(|p| p.starts_with(kept_blob))
        .unwrap();
    assert_eq!(set.remove_path(&full_path), 1);
    let replay = server.server.replay("github").unwrap();
    replay.set_fixtures(set);
    let before = replay.stats().requests();
    let events = collect(open(&server, request(incremental(summary(&base).checkpoint))).await).await;
    assert_eq!(server.unmatched("github"), Vec::<String>::new());
    assert_change_result(&events);
    let worker = format!(
        "urn:connectors:github:manifest:{}:services/worker/package.json",
        repo_id_of("acme-corp/mobile-bff")
    );
    assert!(!upserts(&events).iter().any(|(u, _)| *u == worker));
    let requests = replay.stats().requests() - before;
    assert_eq!(
        requests, EXPECTED_CHANGE_REQUESTS,
        "upstream requests of the INCREMENTAL sync"
    );
}

#[tokio::test]
async fn live_mode_without_credentials_is_a_failed_precondition_naming_the_variables() {
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    let server = TestServer::with_config(config).await;
    let status = open(&server, request(full())).await.expect_err("not configured");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("GITHUB_TOKEN"), "{}", status.message());
    assert!(status.message().contains("GITHUB_APP_ID"), "{}", status.message());
}

/// The first repository of the fixtures' first listing page, and its id.
/// `template` (a listed repository) as repository `id`, `org/name`.
fn repo_as(template: &serde_json::Value, org: &str, name: &str, id: u64) -> serde_json::Value {
    let mut repo = template.clone();
    repo["id"] = serde_json::json!(id);
    repo["name"] = serde_json::json!(name);
    repo["full_name"] = serde_json::json!(format!("{org}/{name}"));
    repo["owner"]["login"] = serde_json::json!(org);
    repo
}

fn first_fixture_repo() -> (serde_json::Value, u64) {
    let page: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures_root().join("github/exchanges/orgs/acme-corp/repos-page-1.json")).unwrap(),
    )
    .unwrap();
    let repo = page["exchanges"][0]["response"]["body"][0].clone();
    let id = repo["id"].as_u64().unwrap();
    (repo, id)
}

/// A live-mode server with a token whose GitHub API is `api_url`.
async fn live_with_token(api_url: &str) -> TestServer {
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    config.github.token = Some("ghp_testtoken".into());
    config.github.api_url = Some(url::Url::parse(api_url).unwrap());
    TestServer::with_config(config).await
}

/// A recorded `GET` of `path` with `query`, answered `status` with a JSON
/// `body` (a JSON string is sent as it is, as a body that may not parse).
fn get_exchange(path: String, query: serde_json::Value, status: u16, body: serde_json::Value) -> Exchange {
    let mut response =
        serde_json::json!({"status": status, "headers": {"content-type": "application/json; charset=utf-8"}});
    match body {
        serde_json::Value::String(text) => response["body_text"] = text.into(),
        body => response["body"] = body,
    }
    serde_json::from_value(serde_json::json!({
        "request": {"method": "GET", "path": path, "query": query},
        "response": response
    }))
    .unwrap()
}

/// The recursive tree of `full_name`'s `branch` (sha `sha`): a
/// `package.json` blob of each sha in `blobs` (none: an empty tree).
fn package_tree(full_name: &str, branch: &str, sha: &str, blobs: &[&str]) -> Exchange {
    let entries: Vec<_> = blobs
        .iter()
        .map(|blob| serde_json::json!({"path": "package.json", "mode": "100644", "type": "blob", "sha": blob, "size": 60}))
        .collect();
    get_exchange(
        format!("/repos/{full_name}/git/trees/{branch}"),
        serde_json::json!({"recursive": "1"}),
        200,
        serde_json::json!({"sha": sha, "truncated": false, "tree": entries}),
    )
}

/// The blob `sha` of `full_name`: a `package.json` named `name` that
/// depends on `left-pad` at `version`.
fn package_blob(full_name: &str, name: &str, sha: &str, version: &str) -> Exchange {
    get_exchange(
        format!("/repos/{full_name}/git/blobs/{sha}"),
        serde_json::json!({}),
        200,
        serde_json::json!({"sha": sha, "size": 60, "encoding": "utf-8",
            "content": format!("{{\"name\": \"{name}\", \"dependencies\": {{\"left-pad\": \"{version}\"}}}}")}),
    )
}

/// An SPDX document without packages, as an SBOM report downloads it.
fn spdx_document(name: &str, namespace: &str, created: &str) -> serde_json::Value {
    serde_json::json!({"SPDXID": "SPDXRef-DOCUMENT", "spdxVersion": "SPDX-2.3", "name": name,
        "documentNamespace": namespace, "creationInfo": {"created": created}, "packages": []})
}

/// A one-page organization listing: `GET {api}/orgs/{org}/repos?per_page=100`
/// answered with `repos` (`api` is the REST prefix: empty, or `/api/v3`).
fn listing_exchange(api: &str, org: &str, repos: serde_json::Value) -> Exchange {
    get_exchange(
        format!("{api}/orgs/{org}/repos"),
        serde_json::json!({"per_page": "100"}),
        200,
        repos,
    )
}

/// GitHub's 404 to the SBOM report of a repository without the dependency graph.
fn sbom_not_found(api: &str, full_name: &str) -> Exchange {
    sbom_refused(
        api,
        full_name,
        404,
        serde_json::json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}),
    )
}

/// An answer of `status` to `generate-report` of a repository's SBOM.
fn sbom_refused(api: &str, full_name: &str, status: u16, body: serde_json::Value) -> Exchange {
    get_exchange(
        format!("{api}/repos/{full_name}/dependency-graph/sbom/generate-report"),
        serde_json::json!({}),
        status,
        body,
    )
}

/// GitHub's SBOM report of a repository: `generate-report` names it,
/// `fetch-report/{id}` redirects to storage on another host (here a path of
/// the replay server), which serves the SPDX `document` as it is.
fn sbom_report(api: &str, full_name: &str, document: serde_json::Value) -> [Exchange; 3] {
    let id = uuid::Uuid::new_v4();
    let fetch = format!("{api}/repos/{full_name}/dependency-graph/sbom/fetch-report/{id}");
    let redirect = serde_json::from_value(serde_json::json!({
        "request": {"method": "GET", "path": fetch},
        "response": {"status": 302, "headers": {"location": format!("{{{{base_url}}}}/sbom-reports/{id}.json")}, "body_text": ""}
    }))
    .unwrap();
    [
        get_exchange(
            format!("{api}/repos/{full_name}/dependency-graph/sbom/generate-report"),
            serde_json::json!({}),
            200,
            serde_json::json!({"sbom_url": format!("https://api.github.com{fetch}")}),
        ),
        redirect,
        get_exchange(format!("/sbom-reports/{id}.json"), serde_json::json!({}), 200, document),
    ]
}

/// A live server with a token on a replay server of `set`, reading blobs
/// over REST (the replay server here has no GraphQL view).
async fn live_with_rest_blobs(set: FixtureSet) -> (TestServer, ReplayServer) {
    let upstream = ReplayServer::start(set, ReplayOptions::default()).await.unwrap();
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    config.github.token = Some("ghp_testtoken".into());
    config.github.api_url = Some(url::Url::parse(upstream.base_url()).unwrap());
    config.github.blob_batch = Some(0);
    (TestServer::with_config(config).await, upstream)
}

/// A FULL sync of `orgs` on a replay server of `exchanges`, reading blobs
/// over REST; the replay server, to count what was asked.
async fn sync_full_over_rest(
    exchanges: impl IntoIterator<Item = Exchange>,
    orgs: &[&str],
) -> (Vec<SyncEvent>, ReplayServer) {
    let mut set = FixtureSet::default();
    for exchange in exchanges {
        set.insert(exchange);
    }
    let (server, upstream) = live_with_rest_blobs(set).await;
    (sync_full(&server, orgs).await, upstream)
}

/// The urns of the upserts of `events`, in order.
fn upsert_urns(events: &[SyncEvent]) -> Vec<String> {
    upserts(events).into_iter().map(|(urn, _)| urn).collect()
}

/// A FULL sync of every kind of `orgs`.
async fn sync_full(server: &TestServer, orgs: &[&str]) -> Vec<SyncEvent> {
    let request = SyncRequest {
        orgs: orgs.iter().map(|o| (*o).to_owned()).collect(),
        options: Some(full()),
        ..Default::default()
    };
    collect(open(server, request).await).await
}

/// A FULL sync of only the repositories of `orgs`.
async fn sync_repositories(server: &TestServer, orgs: &[&str]) -> Vec<SyncEvent> {
    let mut options = full();
    options.kinds = vec![EntityKind::Repository as i32];
    let request = SyncRequest {
        orgs: orgs.iter().map(|o| (*o).to_owned()).collect(),
        options: Some(options),
        ..Default::default()
    };
    collect(open(server, request).await).await
}

/// The start-up credential check: GitHub answers `GET /user` 401 to a token
/// it does not accept (the connector is NOT_SERVING), and 403 to one it
/// accepts that may not read a user, such as an App installation token given
/// as `GITHUB_TOKEN`: that connector serves (its syncs work).
#[tokio::test]
async fn the_credential_check_fails_a_rejected_token_and_passes_one_that_may_not_read_a_user() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let answers = [
        (
            401,
            serde_json::json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"}),
            ServingStatus::NotServing,
        ),
        (
            403,
            serde_json::json!({"message": "Resource not accessible by integration",
                "documentation_url": "https://docs.github.com/rest/users/users#get-the-authenticated-user", "status": "403"}),
            ServingStatus::Serving,
        ),
    ];
    for (status, body, expected) in answers {
        let mut set = FixtureSet::default();
        set.insert(get_exchange("/user".into(), serde_json::json!({}), status, body));
        let upstream = ReplayServer::start(set, ReplayOptions::default()).await.unwrap();
        // GitLab, live too, is checked after GitHub, once GitHub's health is
        // set (the start-up checks run one connector after the other): its
        // `GET /api/v4/user` is the sign that GitHub's outcome is in. A
        // SERVING connector looks the same before its check and after.
        let mut set = FixtureSet::default();
        set.insert(get_exchange(
            "/api/v4/user".into(),
            serde_json::json!({}),
            200,
            serde_json::json!({"id": 7}),
        ));
        let gitlab = ReplayServer::start(set, ReplayOptions::default()).await.unwrap();
        let mut config = Config::for_tests();
        config.mode = ConnectorsMode::Live;
        config.github.token = Some("ghp_testtoken".into());
        config.github.api_url = Some(url::Url::parse(upstream.base_url()).unwrap());
        config.gitlab.token = Some("glpat-testtoken".into());
        config.gitlab.base_url = Some(url::Url::parse(gitlab.base_url()).unwrap());
        let server = TestServer::with_config(config).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while gitlab.stats().requests() == 0 {
            assert!(std::time::Instant::now() < deadline, "the checks did not reach GitLab");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let health = HealthClient::new(server.client.channel().clone())
            .check(HealthCheckRequest {
                service: "connectors.github.v1.GithubConnectorService".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(health.status, expected as i32, "GET /user answered {status}");
        assert_eq!(upstream.stats().requests(), 1, "one check, not retried");
        assert_eq!(
            (upstream.unmatched_requests(), gitlab.unmatched_requests()),
            (Vec::<String>::new(), Vec::<String>::new())
        );
    }
}

/// With `CONNECTORS_CREDENTIAL_CHECK_SECS` the credential check runs again:
/// a token GitHub starts rejecting (revoked after start-up) turns the
/// connector NOT_SERVING, and one it accepts again turns it back.
#[tokio::test]
async fn the_credential_check_runs_again_and_health_follows_the_token() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let user = |status: u16| {
        let body = match status {
            // GitHub's documented example of `GET /user`.
            200 => serde_json::json!({
                "login": "octocat", "id": 1, "node_id": "MDQ6VXNlcjE=",
                "avatar_url": "https://github.com/images/error/octocat_happy.gif", "gravatar_id": "",
                "url": "https://api.github.com/users/octocat", "html_url": "https://github.com/octocat",
                "followers_url": "https://api.github.com/users/octocat/followers",
                "following_url": "https://api.github.com/users/octocat/following{/other_user}",
                "gists_url": "https://api.github.com/users/octocat/gists{/gist_id}",
                "starred_url": "https://api.github.com/users/octocat/starred{/owner}{/repo}",
                "subscriptions_url": "https://api.github.com/users/octocat/subscriptions",
                "organizations_url": "https://api.github.com/users/octocat/orgs",
                "repos_url": "https://api.github.com/users/octocat/repos",
                "events_url": "https://api.github.com/users/octocat/events{/privacy}",
                "received_events_url": "https://api.github.com/users/octocat/received_events",
                "type": "User", "site_admin": false, "name": "monalisa octocat", "company": "GitHub",
                "blog": "https://github.com/blog", "location": "San Francisco", "email": "octocat@github.com",
                "hireable": false, "bio": "There once was...", "twitter_username": "monatheoctocat",
                "public_repos": 2, "public_gists": 1, "followers": 20, "following": 0,
                "created_at": "2008-01-14T04:33:35Z", "updated_at": "2008-01-14T04:33:35Z"
            }),
            _ => {
                serde_json::json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})
            }
        };
        let mut set = FixtureSet::default();
        set.insert(get_exchange("/user".into(), serde_json::json!({}), status, body));
        set
    };
    let upstream = ReplayServer::start(user(200), ReplayOptions::default()).await.unwrap();
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    config.github.token = Some("ghp_testtoken".into());
    config.github.api_url = Some(url::Url::parse(upstream.base_url()).unwrap());
    config.credential_check_interval = Some(Duration::from_millis(50));
    let server = TestServer::with_config(config).await;
    let mut health = HealthClient::new(server.client.channel().clone());
    let mut wait_for = async |expected: ServingStatus| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let status = health
                .check(HealthCheckRequest {
                    service: "connectors.github.v1.GithubConnectorService".into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status;
            if status == expected as i32 {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "health never became {expected:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    wait_for(ServingStatus::Serving).await;
    upstream.set_fixtures(user(401));
    wait_for(ServingStatus::NotServing).await;
    upstream.set_fixtures(user(200));
    wait_for(ServingStatus::Serving).await;
    // Checked again and again, each time one request.
    assert!(upstream.stats().requests() >= 3, "{}", upstream.stats().requests());
    assert_eq!(upstream.unmatched_requests(), Vec::<String>::new());
}

/// Live mode with a token against a GitHub Enterprise style base URL (path
/// prefix): the token is sent as a bearer credential and the prefix is kept.
#[tokio::test]
async fn live_mode_sends_the_token_to_the_configured_enterprise_url() {
    let (first_repo, repo_id) = first_fixture_repo();
    let exchange: Exchange = serde_json::from_value(serde_json::json!({
        "request": {
            "method": "GET",
            "path": "/api/v3/orgs/octo-org/repos",
            "query": {"per_page": "100"},
            "headers": {"authorization": "Bearer ghp_testtoken"}
        },
        "response": {"status": 200, "headers": {"content-type": "application/json"}, "body": [first_repo]}
    }))
    .unwrap();
    let mut set = FixtureSet::default();
    set.insert(exchange);
    let upstream = ReplayServer::start(set, ReplayOptions::default()).await.unwrap();

    let server = live_with_token(&format!("{}/api/v3", upstream.base_url())).await;
    let listed = server.client.get_connector("github").await.unwrap();
    assert_eq!(listed.auth_mode, "pat");
    let events = sync_repositories(&server, &["octo-org"]).await;
    assert_eq!(
        upserts(&events).into_iter().map(|(u, _)| u).collect::<Vec<_>>(),
        vec![format!("urn:connectors:github:repository:{repo_id}")]
    );
    let Some(Event::Upsert(u)) = events.iter().find_map(|e| match &e.event {
        Some(Event::Upsert(_)) => e.event.clone(),
        _ => None,
    }) else {
        panic!("no upsert")
    };
    assert_eq!(
        u.provenance.unwrap().source_mode,
        connectors_proto::v1::SourceMode::Live as i32
    );
    // Only the health check (GET /api/v3/user) may be unmatched.
    let unmatched: Vec<String> = upstream
        .unmatched_requests()
        .into_iter()
        .filter(|r| !r.starts_with("GET /api/v3/user"))
        .collect();
    assert_eq!(unmatched, Vec::<String>::new());
}

/// A listing page whose body does not parse fails its organization's scope
/// as UPSTREAM_MALFORMED, after the entities of the pages before it, and the
/// other organizations' scopes still run.
#[tokio::test]
async fn a_listing_page_that_does_not_parse_fails_its_scope_only() {
    let (first_repo, repo_id) = first_fixture_repo();
    let exchanges = serde_json::json!([
        {
            "request": {"method": "GET", "path": "/orgs/octo-org/repos", "query": {"per_page": "100"}},
            "response": {"status": 200, "headers": {
                "content-type": "application/json; charset=utf-8",
                "link": "<{{base_url}}/organizations/77/repos?per_page=100&page=2>; rel=\"next\", <{{base_url}}/organizations/77/repos?per_page=100&page=2>; rel=\"last\""
            }, "body": [first_repo]}
        },
        {
            "request": {"method": "GET", "path": "/organizations/77/repos", "query": {"per_page": "100", "page": "2"}},
            "response": {"status": 200, "headers": {"content-type": "application/json; charset=utf-8"},
                "body_text": "[{\"id\": 1296269, \"name\": \"Hello-Wor"}
        },
        {
            "request": {"method": "GET", "path": "/orgs/empty-org/repos", "query": {"per_page": "100"}},
            "response": {"status": 200, "headers": {"content-type": "application/json; charset=utf-8"}, "body": []}
        }
    ]);
    let mut set = FixtureSet::default();
    for exchange in exchanges.as_array().unwrap() {
        set.insert(serde_json::from_value::<Exchange>(exchange.clone()).unwrap());
    }
    let upstream = ReplayServer::start(set, ReplayOptions::default()).await.unwrap();
    let server = live_with_token(upstream.base_url()).await;
    let events = sync_repositories(&server, &["octo-org", "empty-org"]).await;
    assert_eq!(
        upserts(&events).into_iter().map(|(u, _)| u).collect::<Vec<_>>(),
        vec![format!("urn:connectors:github:repository:{repo_id}")]
    );
    assert_eq!(
        crate::support::scope_errors(&events),
        vec![(
            "org:octo-org".to_owned(),
            "UPSTREAM_MALFORMED".to_owned(),
            "repositories of octo-org: github returned a body that does not parse".to_owned()
        )]
    );
    assert_eq!(
        scope_statuses(&events),
        vec![
            (
                "org:octo-org".to_owned(),
                connectors_proto::v1::ScopeState::Failed as i32
            ),
            ("org:empty-org".to_owned(), connectors_proto::v1::ScopeState::Ok as i32),
        ]
    );
}

/// An RSA key for a test GitHub App, made with openssl for this test only.
fn test_app_key() -> Option<String> {
    let output = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "2048"])
        .output();
    match output {
        Ok(out) if out.status.success() => Some(String::from_utf8(out.stdout).unwrap()),
        other => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("openssl is required under CI=true: {other:?}");
            }
            eprintln!("skipping: openssl not available");
            None
        }
    }
}

/// The fixtures as a GitHub App's installations see them: every request of
/// acme-corp carries its installation's token, every one of globex its own
/// (report downloads go to storage without one), `edit` applied, served
/// with the installation lookups and mints of the `github-app` scenario;
/// and a live server authenticated as App 424242 in front of them.
async fn github_app_on_fixtures(key: String, edit: impl FnOnce(&mut FixtureSet)) -> (TestServer, ReplayServer) {
    let root = fixtures_root();
    let mut set = FixtureSet::load_provider(&root, "github").unwrap();
    for exchange in set.exchanges_mut_all() {
        let path = exchange.request.path.clone();
        if path.starts_with("/sbom-reports/") {
            continue;
        }
        let token = if path.contains("/acme-corp") || path.starts_with("/organizations/1001/") {
            "Bearer ghs_acmeInstallationToken0000000000001"
        } else {
            "Bearer ghs_globexInstallationToken00000000002"
        };
        exchange.request.headers.insert("authorization".into(), token.into());
    }
    edit(&mut set);
    set.overlay_dir(&root.join("github/scenarios/github-app/exchanges"))
        .unwrap();
    let upstream = ReplayServer::start_synthetic(set, FixtureGraphql::shared(), ReplayOptions::default())
        .await
        .unwrap();
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    config.github.app_id = Some(424242);
    config.github.app_private_key = Some(key);
    config.github.api_url = Some(url::Url::parse(upstream.base_url()).unwrap());
    config.github.orgs = vec!["acme-corp".into(), "globex".into()];
    config.github.page_size = Some(10);
    let server = TestServer::with_config(config).await;
    assert_eq!(
        server.client.get_connector("github").await.unwrap().auth_mode,
        "github_app"
    );
    (server, upstream)
}

/// What the replay server was asked for that it had no exchange for, but
/// the start-up credential check (`GET /app`).
fn unmatched_but_the_check(upstream: &ReplayServer) -> Vec<String> {
    upstream
        .unmatched_requests()
        .into_iter()
        .filter(|r| r != "GET /app")
        .collect()
}

/// GitHub App authentication: the connector looks up each org's installation
/// with the App JWT, mints an installation token, and sends every request of
/// that org with it (every fixture requires the org's token).
#[tokio::test]
async fn github_app_mints_and_uses_an_installation_token_per_org() {
    let Some(key) = test_app_key() else {
        return;
    };
    let (server, upstream) = github_app_on_fixtures(key, |_| {}).await;
    let events = collect(open(&server, request(full())).await).await;
    let s = summary(&events);
    assert!(s.complete, "{:?}", scope_statuses(&events));
    let counts: Vec<(i32, u64)> = s.counts.iter().map(|c| (c.kind, c.upserts)).collect();
    assert_eq!(
        counts,
        vec![
            (EntityKind::Repository as i32, 34),
            (EntityKind::Manifest as i32, 37),
            (EntityKind::Sbom as i32, 31)
        ]
    );
    assert_eq!(unmatched_but_the_check(&upstream), Vec::<String>::new());
}

/// Each installation of a GitHub App has a rate limit of its own: acme-corp's
/// installation has spent its limit (its first listing page is a 403 with
/// `x-ratelimit-remaining: 0`), and globex, another installation of the same
/// App, is still crawled whole.
#[tokio::test]
async fn an_installation_out_of_its_rate_limit_holds_back_only_its_own_organization() {
    let Some(key) = test_app_key() else {
        return;
    };
    let (server, upstream) = github_app_on_fixtures(key, |set| {
        let page = set
            .exchanges_mut_all()
            .find(|e| e.request.path == "/orgs/acme-corp/repos")
            .unwrap();
        page.response.status = 403;
        page.response.headers = vec![
            ("content-type".into(), "application/json; charset=utf-8".into()),
            ("x-ratelimit-limit".into(), "5000".into()),
            ("x-ratelimit-remaining".into(), "0".into()),
            ("x-ratelimit-used".into(), "5000".into()),
            // 2100-01-01: beyond any wait.
            ("x-ratelimit-reset".into(), "4102444800".into()),
            ("x-ratelimit-resource".into(), "core".into()),
        ];
        page.response.body = Some(serde_json::json!({
            "message": "API rate limit exceeded for installation ID 7001.",
            "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            "status": "403"
        }));
    })
    .await;
    let events = collect(open(&server, request(full())).await).await;
    let errors = scope_errors(&events);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        (errors[0].0.as_str(), errors[0].1.as_str()),
        ("org:acme-corp", "UPSTREAM_RATE_LIMITED")
    );
    assert_eq!(
        scope_statuses(&events),
        vec![
            (
                "org:acme-corp".to_owned(),
                connectors_proto::v1::ScopeState::RateLimited as i32
            ),
            ("org:globex".to_owned(), connectors_proto::v1::ScopeState::Ok as i32),
        ]
    );
    let globex: Vec<EstateRepo> = estate().remove("globex").unwrap();
    let s = summary(&events);
    let counts: Vec<(i32, u64)> = s.counts.iter().map(|c| (c.kind, c.upserts)).collect();
    assert_eq!(
        counts,
        vec![
            (EntityKind::Repository as i32, globex.len() as u64),
            (
                EntityKind::Manifest as i32,
                globex.iter().map(|r| r.manifests.len() as u64).sum()
            ),
            (
                EntityKind::Sbom as i32,
                globex.iter().filter(|r| r.has_sbom).count() as u64
            )
        ]
    );
    assert_eq!(unmatched_but_the_check(&upstream), Vec::<String>::new());
}

#[tokio::test]
async fn two_shards_split_the_default_scope_and_validate_their_bounds() {
    let server = TestServer::start().await;
    let whole = upserts(&collect(open(&server, request(full())).await).await);
    let mut shards = Vec::new();
    for index in 0..2 {
        let mut options = full();
        options.shard_index = index;
        options.shard_count = 2;
        let events = collect(open(&server, request(options)).await).await;
        shards.push((scope_statuses(&events), upserts(&events)));
    }
    // sha256("org:acme-corp") -> shard 1 of 2, sha256("org:globex") -> shard 0 (Python hashlib).
    assert_eq!(
        shards[0].0.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        vec!["org:globex"]
    );
    assert_eq!(
        shards[1].0.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        vec!["org:acme-corp"]
    );
    let mut union: Vec<(String, String)> = shards[1].1.clone();
    union.extend(shards[0].1.clone());
    assert_eq!(union, whole);

    let mut bad = full();
    bad.shard_index = 2;
    bad.shard_count = 2;
    let status = open(&server, request(bad)).await.expect_err("index out of range");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "options.shard_index: must be below options.shard_count (2), got 2"
    );
}

#[tokio::test]
async fn identical_concurrent_syncs_crawl_github_once() {
    let server = TestServer::start().await;
    let replay = server.server.replay("github").unwrap();
    replay.set_options(ReplayOptions {
        latency: Duration::from_millis(10),
        ..Default::default()
    });
    let (first, second) = tokio::join!(async { collect(open(&server, request(full())).await).await }, async {
        collect(open(&server, request(full())).await).await
    });
    assert_eq!(upserts(&first), upserts(&second));
    assert_eq!(upserts(&first).len(), 102);
    // One crawl: the requests of a single FULL sync.
    assert_eq!(replay.stats().requests(), FULL_REQUESTS);
}

/// The fixtures' GraphQL view with `edit` applied to each of its answers.
struct EditedGraphql(fn(&mut RecordedResponse));

impl Synthesizer for EditedGraphql {
    fn respond(
        &self,
        fixtures: &FixtureSet,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Option<RecordedResponse> {
        let mut response = FixtureGraphql.respond(fixtures, method, uri, headers, body)?;
        (self.0)(&mut response);
        Some(response)
    }
}

/// A live server with a token, syncing the fixture estate's organizations
/// from a replay server of the fixtures whose GraphQL answers `graphql` gives.
async fn live_on_fixtures(graphql: Arc<dyn Synthesizer>) -> (TestServer, ReplayServer) {
    let set = FixtureSet::load_provider(&fixtures_root(), "github").unwrap();
    let upstream = ReplayServer::start_synthetic(set, graphql, ReplayOptions::default())
        .await
        .unwrap();
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    config.github.token = Some("ghp_testtoken".into());
    config.github.api_url = Some(url::Url::parse(upstream.base_url()).unwrap());
    config.github.orgs = vec!["acme-corp".into(), "globex".into()];
    config.github.page_size = Some(10);
    (TestServer::with_config(config).await, upstream)
}

/// Every blob object of a GraphQL answer.
fn each_blob(answer: &mut serde_json::Value, mut f: impl FnMut(&mut serde_json::Map<String, serde_json::Value>)) {
    for repo in answer["data"].as_object_mut().into_iter().flat_map(|d| d.values_mut()) {
        for blob in repo.as_object_mut().into_iter().flat_map(|r| r.values_mut()) {
            if let Some(blob) = blob.as_object_mut() {
                f(blob);
            }
        }
    }
}

/// Syncs the fixture estate with GraphQL answers edited by `edit`, and
/// checks that every blob was read over REST after them: the same entities
/// as fixture mode's FULL sync, with one more request per manifest (and
/// `retries` more per GraphQL read).
async fn assert_blobs_read_over_rest(edit: fn(&mut RecordedResponse), retries: u64) {
    let reference = TestServer::start().await;
    let expected = upserts(&collect(open(&reference, request(full())).await).await);
    let (server, upstream) = live_on_fixtures(Arc::new(EditedGraphql(edit))).await;
    let events = collect(open(&server, request(full())).await).await;
    assert!(summary(&events).complete, "{:?}", scope_errors(&events));
    assert_eq!(upserts(&events), expected);
    // Matched requests: the start-up credential check (GET /user) has no fixture.
    let matched = upstream.stats().requests() - upstream.stats().unmatched();
    assert_eq!(matched, FULL_REQUESTS + 37 + 5 * retries);
    assert_eq!(upstream.unmatched_requests(), vec!["GET /user".to_owned()]);
}

/// The body of a GraphQL answer.
fn json(response: &mut RecordedResponse) -> &mut serde_json::Value {
    response.body.as_mut().expect("a JSON answer")
}

/// A blob GraphQL gives no text for (here: every one, truncated) is read over REST.
#[tokio::test]
async fn blobs_graphql_truncates_are_read_over_rest() {
    assert_blobs_read_over_rest(
        |answer| {
            each_blob(json(answer), |blob| {
                blob.insert("text".into(), serde_json::Value::Null);
                blob.insert("isTruncated".into(), true.into());
            })
        },
        0,
    )
    .await;
}

/// GraphQL errors without data (GitHub's answer to a query that timed out)
/// send the read's blobs over REST: the sync completes.
#[tokio::test]
async fn graphql_errors_without_data_send_the_blobs_over_rest() {
    assert_blobs_read_over_rest(
        |answer| {
            *json(answer) = serde_json::json!({
                "errors": [{"message": "Something went wrong while executing your query. This may be the result of a timeout, or it could be a GitHub bug."}]
            });
        },
        0,
    )
    .await;
}

/// GitHub cuts a query off after 10 s and answers 502 with its timeout
/// message (semantic-release/github#1017, sorenlouv/backport#479 quote it),
/// or an HTML 502/504 page: after the layer's retries, the read's blobs go
/// over REST and the sync completes.
#[tokio::test]
async fn a_graphql_query_github_cuts_off_with_502_sends_the_blobs_over_rest() {
    assert_blobs_read_over_rest(
        |answer| {
            answer.status = 502;
            *json(answer) = serde_json::json!({
                "data": null,
                "errors": [{"message": "Something went wrong while executing your query. This may be the result of a timeout, or it could be a GitHub bug. Please include `E3C2:3F5A:1B2C3D:4E5F6A:6745B3C1` when reporting this issue."}]
            });
        },
        3,
    )
    .await;
    assert_blobs_read_over_rest(
        |answer| {
            answer.status = 504;
            answer.body = None;
            answer.headers = vec![("content-type".into(), "text/html".into())];
            answer.body_text = Some("<html><body><h1>504 Gateway Time-out</h1></body></html>".into());
        },
        3,
    )
    .await;
}

/// A GraphQL answer that is not a GraphQL response (no `data`, no
/// `errors`) sends the read's blobs over REST too.
#[tokio::test]
async fn a_graphql_answer_without_data_or_errors_sends_the_blobs_over_rest() {
    assert_blobs_read_over_rest(|answer| *json(answer) = serde_json::json!({"message": "unexpected"}), 0).await;
}

/// A blob that neither API has fails its scope naming the manifest, after
/// the repositories before it; the other organization is complete.
#[tokio::test]
async fn a_blob_neither_api_has_fails_its_scope_naming_the_manifest() {
    let mut set = FixtureSet::load_provider(&fixtures_root(), "github").unwrap();
    let gone = set
        .exchanges()
        .map(|e| e.request.path.clone())
        .find(|p| p.starts_with("/repos/globex/") && p.contains("/git/blobs/"))
        .unwrap();
    assert_eq!(set.remove_path(&gone), 1);
    let repo = gone.split('/').nth(3).unwrap().to_owned();
    let (server, upstream) = live_on_fixtures(FixtureGraphql::shared()).await;
    upstream.set_fixtures(set);
    let events = collect(open(&server, request(full())).await).await;
    let errors = scope_errors(&events);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let (scope, reason, message) = &errors[0];
    assert_eq!(scope, "org:globex");
    assert_eq!(reason, "UPSTREAM_NOT_FOUND");
    assert!(
        message.starts_with("manifest ") && message.contains(&format!(" of globex/{repo}: github answered 404")),
        "{message}"
    );
    let acme = estate()["acme-corp"].len();
    let repos = urns_of(&events, EntityKind::Repository);
    assert!(repos.len() >= acme && repos.len() < 34, "{} repositories", repos.len());
    assert_eq!(
        upstream.unmatched_requests(),
        vec!["GET /user".to_owned(), format!("GET {gone}")],
        "the blob was asked for over REST after GraphQL (and the start-up check, GET /user)"
    );
}

/// GitHub's GraphQL budget exhausted for the next hour, as GitHub answers it.
struct ExhaustedGraphql;

impl Synthesizer for ExhaustedGraphql {
    fn respond(
        &self,
        _fixtures: &FixtureSet,
        method: &http::Method,
        uri: &http::Uri,
        _headers: &http::HeaderMap,
        _body: &[u8],
    ) -> Option<RecordedResponse> {
        let reset = (chrono::Utc::now().timestamp() + 3600).to_string();
        (method == http::Method::POST && uri.path() == "/graphql").then(|| RecordedResponse {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/json; charset=utf-8".into()),
                ("x-ratelimit-limit".into(), "5000".into()),
                ("x-ratelimit-remaining".into(), "0".into()),
                ("x-ratelimit-reset".into(), reset),
                ("x-ratelimit-resource".into(), "graphql".into()),
            ],
            body: Some(serde_json::json!({
                "errors": [{"type": "RATE_LIMITED", "message": "API rate limit already exceeded for user ID 1."}]
            })),
            body_text: None,
        })
    }
}

/// GitHub's GraphQL rate limit (an error of type RATE_LIMITED, with no
/// data) ends the scopes RATE_LIMITED, not FAILED, with the reset as the
/// retry time; the REST budget is GitHub's other one, so a sync without
/// manifests right after completes.
#[tokio::test]
async fn graphql_rate_limited_ends_the_scopes_rate_limited_and_spares_rest() {
    let (server, _upstream) = live_on_fixtures(Arc::new(ExhaustedGraphql)).await;
    let events = collect(open(&server, request(full())).await).await;
    assert_eq!(
        scope_statuses(&events),
        vec![
            (
                "org:acme-corp".to_owned(),
                connectors_proto::v1::ScopeState::RateLimited as i32
            ),
            (
                "org:globex".to_owned(),
                connectors_proto::v1::ScopeState::RateLimited as i32
            ),
        ]
    );
    let errors = scope_errors(&events);
    assert_eq!(errors.len(), 2, "{errors:?}");
    for (_, reason, _) in &errors {
        assert_eq!(reason, "UPSTREAM_RATE_LIMITED");
    }

    let mut repositories = full();
    repositories.kinds = vec![EntityKind::Repository as i32];
    let events = collect(open(&server, request(repositories)).await).await;
    assert!(summary(&events).complete, "{:?}", scope_errors(&events));
    assert_eq!(urns_of(&events, EntityKind::Repository).len(), 34);
}

/// GitHub Enterprise Server (`GITHUB_API_URL` ending in `/api/v3`): REST under
/// `/api/v3`, the manifests' GraphQL read at `/api/graphql`, both with the token.
#[tokio::test]
async fn enterprise_server_manifests_are_read_at_api_graphql() {
    struct Enterprise;
    impl connectors_server::replay::github_graphql::BlobSource for Enterprise {
        fn has_repository(&self, _owner: &str, _name: &str) -> bool {
            true
        }
        fn blob(&self, _owner: &str, _name: &str, oid: &str) -> Option<Vec<u8>> {
            (oid == "3f1c2a9be0d4c5f6a7b8c9d0e1f2a3b4c5d6e7f8")
                .then(|| br#"{"dependencies":{"left-pad":"1.3.0"}}"#.to_vec())
        }
    }
    impl Synthesizer for Enterprise {
        fn respond(
            &self,
            _fixtures: &FixtureSet,
            method: &http::Method,
            uri: &http::Uri,
            headers: &http::HeaderMap,
            body: &[u8],
        ) -> Option<RecordedResponse> {
            let authorized = headers
                .get("authorization")
                .is_some_and(|v| v == "Bearer ghp_testtoken");
            (method == http::Method::POST && uri.path() == "/api/graphql" && authorized)
                .then(|| connectors_server::replay::github_graphql::answer(body, self))
        }
    }
    let (repo, repo_id) = first_fixture_repo();
    let full_name = repo["full_name"].as_str().unwrap().to_owned();
    let branch = repo["default_branch"].as_str().unwrap().to_owned();
    let authorized = |mut exchange: Exchange| {
        exchange
            .request
            .headers
            .insert("authorization".into(), "Bearer ghp_testtoken".into());
        exchange
    };
    let get = |path: String, query: serde_json::Value, status: u16, body: serde_json::Value| {
        authorized(get_exchange(path, query, status, body))
    };
    let mut set = FixtureSet::default();
    set.insert(authorized(listing_exchange(
        "/api/v3",
        "octo-org",
        serde_json::json!([repo]),
    )));
    set.insert(get(
        format!("/api/v3/repos/{full_name}/git/trees/{branch}"),
        serde_json::json!({"recursive": "1"}),
        200,
        serde_json::json!({"sha": "9c1e", "truncated": false, "tree": [
            {"path": "package.json", "mode": "100644", "type": "blob", "sha": "3f1c2a9be0d4c5f6a7b8c9d0e1f2a3b4c5d6e7f8", "size": 37}
        ]}),
    ));
    set.insert(authorized(sbom_not_found("/api/v3", &full_name)));
    // A GitHub Enterprise Server without SBOM reports (404 above) is asked
    // for the synchronous export: 404, no dependency graph either.
    set.insert(get(
        format!("/api/v3/repos/{full_name}/dependency-graph/sbom"),
        serde_json::json!({}),
        404,
        serde_json::json!({"message": "Not Found", "documentation_url": "https://docs.github.com/enterprise-server@3.17/rest", "status": "404"}),
    ));
    let upstream = ReplayServer::start_synthetic(set, Arc::new(Enterprise), ReplayOptions::default())
        .await
        .unwrap();
    let server = live_with_token(&format!("{}/api/v3", upstream.base_url())).await;
    let events = sync_full(&server, &["octo-org"]).await;
    assert!(summary(&events).complete, "{:?}", scope_errors(&events));
    assert_eq!(
        upserts(&events).into_iter().map(|(u, _)| u).collect::<Vec<_>>(),
        vec![
            format!("urn:connectors:github:repository:{repo_id}"),
            format!("urn:connectors:github:manifest:{repo_id}:package.json"),
        ]
    );
    let manifest = events
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::Upsert(u)) => match u.entity.as_ref()?.body.as_ref()? {
                connectors_proto::v1::entity::Body::Manifest(m) => Some(m.clone()),
                _ => None,
            },
            _ => None,
        })
        .unwrap();
    assert_eq!(
        manifest
            .dependencies
            .iter()
            .map(|d| d.purl.as_str())
            .collect::<Vec<_>>(),
        vec!["pkg:npm/left-pad@1.3.0"]
    );
    // Only the start-up check (GET /api/v3/user) is unmatched.
    assert_eq!(upstream.unmatched_requests(), vec!["GET /api/v3/user".to_owned()]);
}

/// A git tree or an SBOM whose body does not parse is that repository's
/// failure: the organization's other repositories are sent (and the broken
/// one, without what did not parse), then its scope ends FAILED as
/// UPSTREAM_MALFORMED, naming what and whose (so it keeps its baseline and
/// deletes nothing); the other organization's scope is not affected.
#[tokio::test]
async fn a_tree_or_an_sbom_that_does_not_parse_fails_its_scope_naming_it_after_the_rest() {
    let (tree_repo, tree_id) = first_fixture_repo();
    let sbom_repo = repo_as(&tree_repo, "globex", "sbom-broken", 4_200_001);
    let fine = [
        repo_as(&tree_repo, "octo-org", "fine", 4_200_002),
        repo_as(&tree_repo, "globex", "fine", 4_200_003),
    ];
    let tree_full = tree_repo["full_name"].as_str().unwrap().to_owned();
    let branch = tree_repo["default_branch"].as_str().unwrap().to_owned();
    let exchange = get_exchange;
    let mut set = FixtureSet::default();
    for exchange in [
        listing_exchange("", "octo-org", serde_json::json!([tree_repo, fine[0]])),
        exchange(
            format!("/repos/{tree_full}/git/trees/{branch}"),
            serde_json::json!({"recursive": "1"}),
            200,
            serde_json::json!("{\"sha\": \"9c1e\", \"tree\": [{\"path\": \"package.js"),
        ),
        sbom_not_found("", &tree_full),
        listing_exchange("", "globex", serde_json::json!([sbom_repo, fine[1]])),
        package_tree("globex/sbom-broken", &branch, "9c1e", &[]),
        package_tree("octo-org/fine", &branch, "9c1f", &[]),
        sbom_not_found("", "octo-org/fine"),
        package_tree("globex/fine", &branch, "9c20", &[]),
        sbom_not_found("", "globex/fine"),
    ] {
        set.insert(exchange);
    }
    // The document is there, its version is not a string.
    for exchange in sbom_report(
        "",
        "globex/sbom-broken",
        serde_json::json!({"spdxVersion": 2.3, "name": "x", "documentNamespace": "y", "creationInfo": {"created": "2025-06-30T09:14:27Z"}}),
    ) {
        set.insert(exchange);
    }
    let upstream = ReplayServer::start(set, ReplayOptions::default()).await.unwrap();
    let server = live_with_token(upstream.base_url()).await;
    let events = sync_full(&server, &["octo-org", "globex"]).await;
    assert_eq!(
        upserts(&events).into_iter().map(|(urn, _)| urn).collect::<Vec<_>>(),
        vec![
            format!("urn:connectors:github:repository:{tree_id}"),
            "urn:connectors:github:repository:4200002".to_owned(),
            "urn:connectors:github:repository:4200001".to_owned(),
            "urn:connectors:github:repository:4200003".to_owned(),
        ]
    );
    assert_eq!(
        scope_errors(&events),
        vec![
            (
                "org:octo-org".to_owned(),
                "UPSTREAM_MALFORMED".to_owned(),
                format!("tree of {tree_full}: github returned a body that does not parse")
            ),
            (
                "org:globex".to_owned(),
                "UPSTREAM_MALFORMED".to_owned(),
                "sbom of globex/sbom-broken: github returned a body that does not parse".to_owned()
            ),
        ]
    );
    let summary = crate::support::summary(&events);
    assert_eq!(
        (summary.scopes_ok, summary.scopes_failed, summary.complete),
        (0, 2, false)
    );
    assert_eq!(upstream.unmatched_requests(), vec!["GET /user".to_owned()]);
}

/// A manifest blob whose body does not parse (read over REST) is that
/// repository's failure, as a tree's is: the page's other repositories and
/// their manifests are sent, the broken repository without that manifest,
/// then the organization's scope ends FAILED as UPSTREAM_MALFORMED naming
/// the manifest and its repository. It used to end the scope at that
/// repository, before anything of the page was sent.
#[tokio::test]
async fn a_manifest_blob_that_does_not_parse_fails_its_scope_naming_it_after_the_rest() {
    let (template, _) = first_fixture_repo();
    let branch = template["default_branch"].as_str().unwrap().to_owned();
    let broken = repo_as(&template, "globex", "broken", 4_200_401);
    let fine = repo_as(&template, "globex", "fine", 4_200_402);
    let (bad, good) = (
        "0b5e2c1d9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c",
        "6f1d2e3c4b5a69788796a5b4c3d2e1f0a9b8c7d6",
    );
    let exchanges = [
        listing_exchange("", "globex", serde_json::json!([broken, fine])),
        package_tree("globex/broken", &branch, "9c1e", &[bad]),
        get_exchange(
            format!("/repos/globex/broken/git/blobs/{bad}"),
            serde_json::json!({}),
            200,
            serde_json::json!("{\"sha\": \"0b5e2c1d\", \"encoding\": \"ba"),
        ),
        sbom_not_found("", "globex/broken"),
        package_tree("globex/fine", &branch, "9c1f", &[good]),
        package_blob("globex/fine", "fine", good, "1.3.0"),
        sbom_not_found("", "globex/fine"),
    ];
    let (events, upstream) = sync_full_over_rest(exchanges, &["globex"]).await;
    assert_eq!(
        upsert_urns(&events),
        vec![
            "urn:connectors:github:repository:4200401".to_owned(),
            "urn:connectors:github:repository:4200402".to_owned(),
            "urn:connectors:github:manifest:4200402:package.json".to_owned(),
        ]
    );
    assert_eq!(
        scope_errors(&events),
        vec![(
            "org:globex".to_owned(),
            "UPSTREAM_MALFORMED".to_owned(),
            "manifest package.json of globex/broken: github returned a body that does not parse".to_owned()
        )]
    );
    let summary = crate::support::summary(&events);
    assert_eq!(
        (summary.scopes_ok, summary.scopes_failed, summary.complete),
        (0, 1, false)
    );
    assert_eq!(upstream.unmatched_requests(), vec!["GET /user".to_owned()]);
}

/// A symlink in a git tree is a blob (mode `120000`) whose content is the
/// path it points to: a symlinked `requirements.txt` is not a manifest.
#[tokio::test]
async fn a_symlinked_manifest_is_not_read_as_one() {
    let (template, _) = first_fixture_repo();
    let branch = template["default_branch"].as_str().unwrap().to_owned();
    let repo = repo_as(&template, "globex", "linked", 4_200_301);
    let package = "9d5ed678fe57bcca610140957afab571b7cc5a2b";
    let exchanges = [
        listing_exchange("", "globex", serde_json::json!([repo])),
        get_exchange(
            format!("/repos/globex/linked/git/trees/{branch}"),
            serde_json::json!({"recursive": "1"}),
            200,
            serde_json::json!({"sha": "9c1e", "truncated": false, "tree": [
                {"path": "package.json", "mode": "100644", "type": "blob", "sha": package, "size": 40},
                {"path": "requirements.txt", "mode": "120000", "type": "blob", "sha": "5a3b1e2f9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f", "size": 21}
            ]}),
        ),
        get_exchange(
            format!("/repos/globex/linked/git/blobs/{package}"),
            serde_json::json!({}),
            200,
            serde_json::json!({"sha": package, "size": 40, "encoding": "utf-8",
                "content": "{\"dependencies\": {\"left-pad\": \"1.3.0\"}}"}),
        ),
        sbom_not_found("", "globex/linked"),
    ];
    let (events, upstream) = sync_full_over_rest(exchanges, &["globex"]).await;
    assert_eq!(
        upsert_urns(&events),
        vec![
            "urn:connectors:github:repository:4200301".to_owned(),
            "urn:connectors:github:manifest:4200301:package.json".to_owned(),
        ]
    );
    // Listing, tree, package.json's blob, the SBOM report (404), `GET /user`:
    // the symlink's blob is not asked for.
    assert_eq!(upstream.unmatched_requests(), vec!["GET /user".to_owned()]);
    assert_eq!(upstream.stats().requests(), 5);
}

/// GitHub's SBOM reports are generated asynchronously: a `fetch-report` that
/// answers 202 is polled again until it redirects to the document; one that
/// is never ready within `GITHUB_SBOM_REPORT_WAIT_SECS` fails its
/// organization's scope (no deletions on a guess), and the other goes on.
#[tokio::test]
async fn an_sbom_report_is_polled_until_ready_and_one_never_ready_fails_its_scope() {
    let (template, _) = first_fixture_repo();
    let branch = template["default_branch"].as_str().unwrap().to_owned();
    let repo = |org: &str, name: &str, id: u64| repo_as(&template, org, name, id);
    let tree = |full_name: &str| package_tree(full_name, &branch, "9c1e", &[]);
    let not_ready = |report: &Exchange, times: Option<u32>| -> Exchange {
        let mut value = serde_json::json!({
            "request": {"method": "GET", "path": report.request.path},
            "response": {"status": 202, "headers": {"content-type": "application/json; charset=utf-8"}, "body_text": ""}
        });
        if let Some(times) = times {
            value["times"] = times.into();
        }
        serde_json::from_value(value).unwrap()
    };
    let document = |name: &str| {
        spdx_document(
            &format!("com.github.{name}"),
            &format!("https://spdx.org/spdxdocs/protobom/{name}"),
            "2026-11-30T09:14:27Z",
        )
    };
    let mut set = FixtureSet::default();
    let [generate, fetch, download] = sbom_report("", "globex/ledger", document("globex/ledger"));
    let first_poll = not_ready(&fetch, Some(1));
    for exchange in [
        listing_exchange("", "globex", serde_json::json!([repo("globex", "ledger", 4_200_102)])),
        tree("globex/ledger"),
        generate,
        first_poll,
        fetch,
        download,
    ] {
        set.insert(exchange);
    }
    let [generate, fetch, _] = sbom_report("", "octo-org/vault", document("octo-org/vault"));
    for exchange in [
        listing_exchange(
            "",
            "octo-org",
            serde_json::json!([repo("octo-org", "vault", 4_200_103)]),
        ),
        tree("octo-org/vault"),
        generate,
        not_ready(&fetch, None),
    ] {
        set.insert(exchange);
    }
    let upstream = ReplayServer::start(set, ReplayOptions::default()).await.unwrap();
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    config.github.token = Some("ghp_testtoken".into());
    config.github.api_url = Some(url::Url::parse(upstream.base_url()).unwrap());
    config.github.sbom_report_wait = Some(Duration::from_secs(1));
    let server = TestServer::with_config(config).await;
    let events = sync_full(&server, &["globex", "octo-org"]).await;
    assert_eq!(
        upserts(&events).into_iter().map(|(urn, _)| urn).collect::<Vec<_>>(),
        vec![
            "urn:connectors:github:repository:4200102".to_owned(),
            "urn:connectors:github:sbom:4200102".to_owned(),
        ]
    );
    assert_eq!(
        scope_errors(&events),
        vec![(
            "org:octo-org".to_owned(),
            "UPSTREAM_UNAVAILABLE".to_owned(),
            "sbom of octo-org/vault: github had not generated the report after 1 s".to_owned()
        )]
    );
    // globex: listing, tree, generate-report, fetch-report twice (202, then
    // the redirect), download; octo-org: listing, tree, generate-report and
    // fetch-report at 0 and 0.5 s (the next poll, 1 s later, is past the
    // wait); the start-up `GET /user`.
    assert_eq!(upstream.unmatched_requests(), vec!["GET /user".to_owned()]);
    assert_eq!(upstream.stats().requests(), 6 + 5 + 1);
}

/// A 403 to one repository's SBOM export that does not say the credential
/// lacks access (GitHub's answer for a fork without a dependency graph of its
/// own) leaves that repository without an SBOM and the rest of its scope
/// going on; a 403 that says the token may not read the repository fails the
/// scope, naming it, as before.
#[tokio::test]
async fn a_forbidden_sbom_export_is_no_sbom_unless_the_credential_lacks_access() {
    let (template, _) = first_fixture_repo();
    let branch = template["default_branch"].as_str().unwrap().to_owned();
    let repo = |org: &str, name: &str, id: u64, fork: bool| {
        let mut repo = repo_as(&template, org, name, id);
        repo["fork"] = serde_json::json!(fork);
        repo
    };
    let tree = |full_name: &str| package_tree(full_name, &branch, "9c1e", &[]);
    let sbom = |full_name: &str, status: u16, body: serde_json::Value| sbom_refused("", full_name, status, body);
    let mut set = FixtureSet::default();
    for exchange in sbom_report(
        "",
        "globex/ledger",
        spdx_document(
            "com.github.globex/ledger",
            "https://spdx.org/spdxdocs/protobom/ledger",
            "2025-06-30T09:14:27Z",
        ),
    ) {
        set.insert(exchange);
    }
    for exchange in [
        listing_exchange(
            "",
            "globex",
            serde_json::json!([
                repo("globex", "left-pad-fork", 4_200_101, true),
                repo("globex", "ledger", 4_200_102, false)
            ]),
        ),
        tree("globex/left-pad-fork"),
        sbom(
            "globex/left-pad-fork",
            403,
            serde_json::json!({"message": "Forbidden", "documentation_url": "https://docs.github.com/rest", "status": "403"}),
        ),
        tree("globex/ledger"),
        listing_exchange(
            "",
            "octo-org",
            serde_json::json!([repo("octo-org", "vault", 4_200_103, false)]),
        ),
        tree("octo-org/vault"),
        sbom(
            "octo-org/vault",
            403,
            serde_json::json!({"message": "Resource not accessible by personal access token",
                "documentation_url": "https://docs.github.com/rest/dependency-graph/sboms#export-a-software-bill-of-materials-sbom-for-a-repository",
                "status": "403"}),
        ),
    ] {
        set.insert(exchange);
    }
    let upstream = ReplayServer::start(set, ReplayOptions::default()).await.unwrap();
    let server = live_with_token(upstream.base_url()).await;
    let events = sync_full(&server, &["globex", "octo-org"]).await;
    assert_eq!(
        upserts(&events).into_iter().map(|(urn, _)| urn).collect::<Vec<_>>(),
        vec![
            "urn:connectors:github:repository:4200101".to_owned(),
            "urn:connectors:github:repository:4200102".to_owned(),
            "urn:connectors:github:sbom:4200102".to_owned(),
        ]
    );
    assert_eq!(
        scope_statuses(&events),
        vec![
            ("org:globex".to_owned(), connectors_proto::v1::ScopeState::Ok as i32),
            (
                "org:octo-org".to_owned(),
                connectors_proto::v1::ScopeState::Failed as i32
            ),
        ]
    );
    assert_eq!(
        scope_errors(&events),
        vec![(
            "org:octo-org".to_owned(),
            "UPSTREAM_PERMISSION_DENIED".to_owned(),
            "sbom of octo-org/vault: github answered 403: resource not accessible by personal access token".to_owned()
        )]
    );
    // Each exchange once (no retries of a 403), and the start-up `GET /user`.
    assert_eq!(upstream.unmatched_requests(), vec!["GET /user".to_owned()]);
    assert_eq!(upstream.stats().requests(), 11);
}

/// An installation token GitHub no longer accepts (revoked before it
/// expires) is answered 401: the request goes once more through octocrab,
/// which forgets the token, mints a new one and sends it again; the sync
/// completes.
#[tokio::test]
async fn a_revoked_installation_token_is_minted_again_and_the_request_resent() {
    let Some(key) = test_app_key() else {
        return;
    };
    let tokens = Arc::new(Tokens::new(true));
    let (server, upstream, repo_id) = one_repository_as_an_app(key, tokens.clone()).await;
    let events = sync_repositories(&server, &["acme-corp"]).await;
    assert!(summary(&events).complete, "{:?}", scope_errors(&events));
    assert_eq!(
        upserts(&events).into_iter().map(|(u, _)| u).collect::<Vec<_>>(),
        vec![format!("urn:connectors:github:repository:{repo_id}")]
    );
    assert_eq!(tokens.minted.load(std::sync::atomic::Ordering::SeqCst), 2);
    // The start-up check (GET /app), the installation lookup, a mint, the
    // listing answered 401 (sent by the session, then by octocrab with the
    // same token), a mint, the listing answered 200.
    assert_eq!(upstream.stats().requests(), 7);
    assert_eq!(upstream.unmatched_requests(), vec!["GET /app".to_owned()]);
}

/// Every session of an installation shares its token while it is valid:
/// a second sync of the organization mints none (octocrab copies its cached
/// token when its client is cloned, so each sync's copy of a client that had
/// none minted its own, and after the first hour every page task did).
#[tokio::test]
async fn an_installation_token_is_minted_once_for_every_sync_of_the_installation() {
    let Some(key) = test_app_key() else {
        return;
    };
    let tokens = Arc::new(Tokens::new(false));
    let (server, upstream, repo_id) = one_repository_as_an_app(key, tokens.clone()).await;
    for _ in 0..3 {
        let events = sync_repositories(&server, &["acme-corp"]).await;
        assert!(summary(&events).complete, "{:?}", scope_errors(&events));
        assert_eq!(
            upserts(&events).into_iter().map(|(u, _)| u).collect::<Vec<_>>(),
            vec![format!("urn:connectors:github:repository:{repo_id}")]
        );
    }
    assert_eq!(tokens.minted.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The start-up check, the installation lookup, one mint, three listings.
    assert_eq!(upstream.stats().requests(), 1 + 1 + 1 + 3);
    assert_eq!(upstream.unmatched_requests(), vec!["GET /app".to_owned()]);
}

/// Mints installation 7001's tokens (`POST /app/installations/7001/access_tokens`),
/// counting them: with `revoke_first`, the first token minted is one GitHub
/// revoked (every request with it is answered 401), then a fresh one.
struct Tokens {
    minted: std::sync::atomic::AtomicU32,
    revoke_first: bool,
}

const REVOKED_TOKEN: &str = "ghs_revokedInstallationToken000000000001";
const FRESH_TOKEN: &str = "ghs_freshInstallationToken00000000000002";

impl Tokens {
    fn new(revoke_first: bool) -> Self {
        Self {
            minted: std::sync::atomic::AtomicU32::new(0),
            revoke_first,
        }
    }
}

impl Synthesizer for Tokens {
    fn respond(
        &self,
        _fixtures: &FixtureSet,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        _body: &[u8],
    ) -> Option<RecordedResponse> {
        let json = |status: u16, body: serde_json::Value| RecordedResponse {
            status,
            headers: vec![("content-type".into(), "application/json; charset=utf-8".into())],
            body: Some(body),
            body_text: None,
        };
        if method == http::Method::POST && uri.path() == "/app/installations/7001/access_tokens" {
            let first = self.minted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            let token = if first && self.revoke_first {
                REVOKED_TOKEN
            } else {
                FRESH_TOKEN
            };
            return Some(json(
                201,
                serde_json::json!({"token": token, "expires_at": "2099-01-01T00:00:00Z",
                    "permissions": {"metadata": "read"}, "repository_selection": "all"}),
            ));
        }
        let revoked = headers
            .get("authorization")
            .is_some_and(|v| *v == format!("Bearer {REVOKED_TOKEN}"));
        revoked.then(|| {
            json(
                401,
                serde_json::json!({"message": "Bad credentials",
                    "documentation_url": "https://docs.github.com/rest", "status": "401"}),
            )
        })
    }
}

/// A live server authenticated as App 424242 in front of acme-corp's
/// installation lookup, `tokens`, and a listing of one repository that
/// requires the fresh token; with that repository's id.
async fn one_repository_as_an_app(key: String, tokens: Arc<Tokens>) -> (TestServer, ReplayServer, u64) {
    let root = fixtures_root();
    let mut set = FixtureSet::default();
    let installations = FixtureSet::load_dir(&root.join("github/scenarios/github-app/exchanges")).unwrap();
    for exchange in installations.exchanges() {
        if exchange.request.path == "/orgs/acme-corp/installation" {
            set.insert(exchange.clone());
        }
    }
    let (repo, repo_id) = first_fixture_repo();
    set.insert(
        serde_json::from_value(serde_json::json!({
            "request": {"method": "GET", "path": "/orgs/acme-corp/repos", "query": {"per_page": "100"},
                "headers": {"authorization": format!("Bearer {FRESH_TOKEN}")}},
            "response": {"status": 200, "headers": {"content-type": "application/json; charset=utf-8"}, "body": [repo]}
        }))
        .unwrap(),
    );
    let upstream = ReplayServer::start_synthetic(set, tokens, ReplayOptions::default())
        .await
        .unwrap();
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    config.github.app_id = Some(424242);
    config.github.app_private_key = Some(key);
    config.github.api_url = Some(url::Url::parse(upstream.base_url()).unwrap());
    let server = TestServer::with_config(config).await;
    (server, upstream, repo_id)
}

/// A default branch whose name holds characters a URI cannot carry as they
/// are (git allows `#` and `%` in ref names) is sent percent-encoded in the
/// tree route, so its manifests are read (a `#` sent raw would cut the path
/// at it, and GitHub would answer for another branch, or 404).
#[tokio::test]
async fn a_default_branch_named_with_hash_and_percent_has_its_tree_read() {
    let (mut repo, repo_id) = first_fixture_repo();
    repo["default_branch"] = serde_json::json!("release/#12-100%");
    let full_name = repo["full_name"].as_str().unwrap().to_owned();
    let get = get_exchange;
    let blob = "5e7a0c1d2b3f4a5968778695a4b3c2d1e0f9a8b7";
    let mut set = FixtureSet::default();
    set.insert(listing_exchange("", "octo-org", serde_json::json!([repo])));
    set.insert(get(
        format!("/repos/{full_name}/git/trees/release/%2312-100%25"),
        serde_json::json!({"recursive": "1"}),
        200,
        serde_json::json!({"sha": "77aa", "truncated": false, "tree": [
            {"path": "go.mod", "mode": "100644", "type": "blob", "sha": blob, "size": 40}
        ]}),
    ));
    set.insert(get(
        format!("/repos/{full_name}/git/blobs/{blob}"),
        serde_json::json!({}),
        200,
        serde_json::json!({"sha": blob, "size": 40, "encoding": "utf-8",
            "content": "module example.com/x\n\nrequire golang.org/x/text v0.14.0\n"}),
    ));
    set.insert(sbom_not_found("", &full_name));
    let (server, upstream) = live_with_rest_blobs(set).await;
    let events = sync_full(&server, &["octo-org"]).await;
    assert!(summary(&events).complete, "{:?}", scope_errors(&events));
    assert_eq!(
        upserts(&events).into_iter().map(|(u, _)| u).collect::<Vec<_>>(),
        vec![
            format!("urn:connectors:github:repository:{repo_id}"),
            format!("urn:connectors:github:manifest:{repo_id}:go.mod"),
        ]
    );
    assert_eq!(upstream.unmatched_requests(), vec!["GET /user".to_owned()]);
}

/// A recursive tree GitHub cuts short (`truncated`: past 100,000 entries or
/// 7 MB) is read a level at a time, as GitHub's documentation says: the root
/// without `recursive`, each subtree recursively, one cut short again a level
/// at a time. Manifests anywhere in it are read; vendored directories are not.
#[tokio::test]
async fn a_truncated_tree_is_read_a_level_at_a_time() {
    let (repo, repo_id) = first_fixture_repo();
    let full_name = repo["full_name"].as_str().unwrap().to_owned();
    let branch = repo["default_branch"].as_str().unwrap().to_owned();
    let get = |path: String, query: serde_json::Value, body: serde_json::Value| get_exchange(path, query, 200, body);
    let entry = |path: &str, kind: &str, sha: &str| {
        let mode = if kind == "tree" { "040000" } else { "100644" };
        serde_json::json!({"path": path, "mode": mode, "type": kind, "sha": sha})
    };
    let trees = format!("/repos/{full_name}/git/trees");
    let recursive = serde_json::json!({"recursive": "1"});
    let (root, services, api, web, modules) = ("a0", "b1", "c2", "d3", "e4");
    let (root_json, api_mod, web_json) = (
        "1111111111111111111111111111111111111111",
        "2222222222222222222222222222222222222222",
        "3333333333333333333333333333333333333333",
    );
    let blob = |sha: &str, content: &str| {
        get(
            format!("/repos/{full_name}/git/blobs/{sha}"),
            serde_json::json!({}),
            serde_json::json!({"sha": sha, "encoding": "utf-8", "content": content}),
        )
    };
    let mut set = FixtureSet::default();
    for exchange in [
        listing_exchange("", "octo-org", serde_json::json!([repo])),
        // Cut short: only the first entries of a listing too large.
        get(
            format!("{trees}/{branch}"),
            recursive.clone(),
            serde_json::json!({"sha": root, "truncated": true, "tree": [entry("node_modules", "tree", modules)]}),
        ),
        get(
            format!("{trees}/{root}"),
            serde_json::json!({}),
            serde_json::json!({"sha": root, "truncated": false, "tree": [
                entry("node_modules", "tree", modules),
                entry("package.json", "blob", root_json),
                entry("services", "tree", services),
                entry("web", "tree", web),
            ]}),
        ),
        // `services` is cut short again: read a level at a time.
        get(
            format!("{trees}/{services}"),
            recursive.clone(),
            serde_json::json!({"sha": services, "truncated": true, "tree": []}),
        ),
        get(
            format!("{trees}/{services}"),
            serde_json::json!({}),
            serde_json::json!({"sha": services, "truncated": false, "tree": [entry("api", "tree", api)]}),
        ),
        get(
            format!("{trees}/{api}"),
            recursive.clone(),
            serde_json::json!({"sha": api, "truncated": false, "tree": [entry("go.mod", "blob", api_mod)]}),
        ),
        get(
            format!("{trees}/{web}"),
            recursive.clone(),
            serde_json::json!({"sha": web, "truncated": false, "tree": [
                entry("app", "tree", "f5"),
                entry("app/package.json", "blob", web_json),
            ]}),
        ),
        blob(root_json, "{\"dependencies\": {\"left-pad\": \"1.3.0\"}}"),
        blob(api_mod, "module example.com/api\n\nrequire golang.org/x/text v0.14.0\n"),
        blob(web_json, "{\"dependencies\": {\"react\": \"18.3.1\"}}"),
    ]
    .into_iter()
    .chain(sbom_report(
        "",
        &full_name,
        spdx_document(&full_name, "https://spdx.org/spdxdocs/x", "2025-06-30T09:14:27Z"),
    )) {
        set.insert(exchange);
    }
    let (server, upstream) = live_with_rest_blobs(set).await;
    let events = sync_full(&server, &["octo-org"]).await;
    assert!(summary(&events).complete, "{:?}", scope_errors(&events));
    assert_eq!(
        upserts(&events).into_iter().map(|(u, _)| u).collect::<Vec<_>>(),
        vec![
            format!("urn:connectors:github:repository:{repo_id}"),
            format!("urn:connectors:github:manifest:{repo_id}:package.json"),
            format!("urn:connectors:github:manifest:{repo_id}:services/api/go.mod"),
            format!("urn:connectors:github:manifest:{repo_id}:web/app/package.json"),
            format!("urn:connectors:github:sbom:{repo_id}"),
        ]
    );
    // The 13 exchanges, each once, and the start-up `GET /user`: node_modules
    // is not read.
    assert_eq!(upstream.unmatched_requests(), vec!["GET /user".to_owned()]);
    assert_eq!(upstream.stats().requests(), 14);
}

/// GitHub blocks access to some repositories an organization still lists:
/// 451 "Repository access blocked" for one taken down by a DMCA notice, 403
/// with the same message for one disabled for its terms of service. Every
/// request for their contents is answered so. Such a repository is sent
/// (it exists), the manifests and SBOM the last sync saw are kept (no
/// deletions), the rest of its organization goes on, and the next sync asks
/// again, so its contents come back once GitHub serves them.
#[tokio::test]
async fn a_repository_github_blocks_keeps_its_contents_and_its_organization_goes_on() {
    let (template, _) = first_fixture_repo();
    let branch = template["default_branch"].as_str().unwrap().to_owned();
    let repo = |name: &str, id: u64, pushed_at: &str| {
        let mut repo = repo_as(&template, "globex", name, id);
        repo["fork"] = serde_json::json!(false);
        repo["pushed_at"] = serde_json::json!(pushed_at);
        repo
    };
    let get = get_exchange;
    let tree = |name: &str, blobs: &[&str]| package_tree(&format!("globex/{name}"), &branch, "9c1e", blobs);
    let blob = |name: &str, sha: &str, version: &str| package_blob(&format!("globex/{name}"), name, sha, version);
    let sbom = |name: &str| {
        sbom_report(
            "",
            &format!("globex/{name}"),
            spdx_document(
                &format!("com.github.globex/{name}"),
                &format!("https://spdx.org/spdxdocs/protobom/{name}"),
                "2025-06-30T09:14:27Z",
            ),
        )
    };
    // GitHub's answers for a blocked repository, as they come (the `block`
    // object is not in the published description; github/rest-api-description#3314).
    let dmca = serde_json::json!({"message": "Repository access blocked", "block": {"reason": "dmca",
        "created_at": "2026-11-20T17:53:56Z", "html_url": "https://github.com/github/dmca/blob/master/2026/11/2026-11-18-ledger.md"}});
    let tos = serde_json::json!({"message": "Repository access blocked", "block": {"reason": "tos",
        "created_at": "2026-11-21T01:02:15Z", "html_url": "https://github.com/tos"}});
    let blocked = |name: &str, status: u16, body: &serde_json::Value| {
        [
            get(
                format!("/repos/globex/{name}/git/trees/{branch}"),
                serde_json::json!({"recursive": "1"}),
                status,
                body.clone(),
            ),
            sbom_refused("", &format!("globex/{name}"), status, body.clone()),
        ]
    };
    let (ledger, left_pad, vault) = (4_200_102u64, 4_200_101u64, 4_200_103u64);
    let (v1, v2) = (
        "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d",
        "2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e",
    );
    let (pushed, pushed_again) = ("2026-11-02T10:00:00Z", "2026-11-19T08:30:00Z");
    let set_of = |exchanges: Vec<Exchange>| {
        let mut set = FixtureSet::default();
        for exchange in exchanges {
            set.insert(exchange);
        }
        set
    };
    let mut before = vec![
        listing_exchange(
            "",
            "globex",
            serde_json::json!([repo("ledger", ledger, pushed), repo("left-pad", left_pad, pushed)]),
        ),
        tree("ledger", &[v1]),
        blob("ledger", v1, "1.3.0"),
        tree("left-pad", &[]),
        sbom_not_found("", "globex/left-pad"),
    ];
    before.extend(sbom("ledger"));
    let before = set_of(before);
    // ledger was pushed, then taken down; vault is new, and disabled.
    let listing_of_three = || {
        listing_exchange(
            "",
            "globex",
            serde_json::json!([
                repo("ledger", ledger, pushed_again),
                repo("left-pad", left_pad, pushed),
                repo("vault", vault, pushed)
            ]),
        )
    };
    let mut taken_down = vec![listing_of_three()];
    taken_down.extend(blocked("ledger", 451, &dmca));
    taken_down.extend(blocked("vault", 403, &tos));
    let (server, upstream) = live_with_rest_blobs(before).await;
    let urns = |events: &[SyncEvent]| upserts(events).into_iter().map(|(urn, _)| urn).collect::<Vec<_>>();
    let manifest = format!("urn:connectors:github:manifest:{ledger}:package.json");

    let first = sync_full(&server, &["globex"]).await;
    assert_eq!(
        urns(&first),
        vec![
            format!("urn:connectors:github:repository:{ledger}"),
            manifest.clone(),
            format!("urn:connectors:github:sbom:{ledger}"),
            format!("urn:connectors:github:repository:{left_pad}"),
        ]
    );

    upstream.set_fixtures(set_of(taken_down.clone()));
    let sync_from = |checkpoint: Vec<u8>| SyncRequest {
        orgs: vec!["globex".into()],
        options: Some(incremental(checkpoint)),
        ..Default::default()
    };
    let requests = upstream.stats().requests();
    let second = collect(open(&server, sync_from(summary(&first).checkpoint)).await).await;
    assert_eq!(
        scope_statuses(&second),
        vec![("org:globex".to_owned(), connectors_proto::v1::ScopeState::Ok as i32)]
    );
    // ledger changed (pushed_at); vault is new; nothing of ledger's is gone.
    assert_eq!(
        urns(&second),
        vec![
            format!("urn:connectors:github:repository:{ledger}"),
            format!("urn:connectors:github:repository:{vault}"),
        ]
    );
    assert_eq!(deletions(&second), Vec::<String>::new());
    // The listing, and each blocked repository's tree and SBOM once (no retries).
    assert_eq!(upstream.stats().requests() - requests, 5);
    assert_eq!(upstream.unmatched_requests(), vec!["GET /user".to_owned()]);

    // Still blocked: asked again, nothing changes.
    let requests = upstream.stats().requests();
    let third = collect(open(&server, sync_from(summary(&second).checkpoint)).await).await;
    assert_eq!((urns(&third), deletions(&third)), (Vec::new(), Vec::new()));
    assert!(summary(&third).complete);
    assert_eq!(upstream.stats().requests() - requests, 5);

    // GitHub serves ledger again, with a changed manifest: it is sent.
    let mut restored = vec![listing_of_three()];
    restored.extend([tree("ledger", &[v2]), blob("ledger", v2, "1.3.1")]);
    restored.extend(sbom("ledger"));
    restored.extend(blocked("vault", 403, &tos));
    upstream.set_fixtures(set_of(restored));
    let fourth = collect(open(&server, sync_from(summary(&third).checkpoint)).await).await;
    assert_eq!(urns(&fourth), vec![manifest]);
    assert_eq!(deletions(&fourth), Vec::<String>::new());
    assert_eq!(upstream.unmatched_requests(), vec!["GET /user".to_owned()]);
}

/// A default branch switched without a push (`pushed_at` as it was) has the
/// new branch's manifests read: the repository's version names its branch.
#[tokio::test]
async fn a_default_branch_switched_without_a_push_has_its_manifests_read_again() {
    let (template, _) = first_fixture_repo();
    let id = 4_200_201u64;
    let pushed = "2026-11-02T10:00:00Z";
    let repo = |branch: &str| {
        let mut repo = repo_as(&template, "globex", "ledger", id);
        repo["fork"] = serde_json::json!(false);
        repo["pushed_at"] = serde_json::json!(pushed);
        repo["default_branch"] = serde_json::json!(branch);
        repo
    };
    let tree = |branch: &str, sha: &str| package_tree("globex/ledger", branch, &format!("7e{sha}"), &[sha]);
    let blob = |sha: &str, version: &str| package_blob("globex/ledger", "ledger", sha, version);
    let (on_master, on_main) = (
        "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d",
        "2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e",
    );
    let estate = |branch: &str, sha: &str, version: &str| {
        let mut set = FixtureSet::default();
        set.insert(listing_exchange("", "globex", serde_json::json!([repo(branch)])));
        set.insert(tree(branch, sha));
        set.insert(blob(sha, version));
        set.insert(sbom_not_found("", "globex/ledger"));
        set
    };
    let (server, upstream) = live_with_rest_blobs(estate("master", on_master, "1.3.0")).await;
    let first = sync_full(&server, &["globex"]).await;
    let manifest = format!("urn:connectors:github:manifest:{id}:package.json");
    let repository = format!("urn:connectors:github:repository:{id}");
    let urns = |events: &[SyncEvent]| upserts(events).into_iter().map(|(urn, _)| urn).collect::<Vec<_>>();
    assert_eq!(urns(&first), vec![repository.clone(), manifest.clone()]);

    upstream.set_fixtures(estate("main", on_main, "1.4.0"));
    let requests = upstream.stats().requests();
    let request = SyncRequest {
        orgs: vec!["globex".into()],
        options: Some(incremental(summary(&first).checkpoint)),
        ..Default::default()
    };
    let second = collect(open(&server, request).await).await;
    assert!(summary(&second).complete, "{:?}", scope_errors(&second));
    assert_eq!(urns(&second), vec![repository, manifest]);
    assert_eq!(deletions(&second), Vec::<String>::new());
    let shas: Vec<String> = second
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Upsert(u)) => match u.entity.as_ref()?.body.as_ref()? {
                connectors_proto::v1::entity::Body::Manifest(m) => Some(m.blob_sha.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(shas, vec![on_main.to_owned()]);
    // The listing, main's tree, its blob and the SBOM report's 404.
    assert_eq!(upstream.stats().requests() - requests, 4);
    assert_eq!(upstream.unmatched_requests(), vec!["GET /user".to_owned()]);
}

/// Checkpoints come back from clients: a page cursor in one that is not a
/// page of the organization's repository listing (another API path, sent
/// with the server's credential) is refused, and not requested.
#[tokio::test]
async fn a_checkpoint_whose_page_cursor_names_another_api_path_is_refused() {
    let server = TestServer::start().await;
    let mut stream = open(&server, request(full())).await.unwrap();
    // The first checkpoint inside an organization: its cursor is the next
    // listing page, as GitHub's Link header names it.
    let (mut token, cursor) = loop {
        let event = stream.next().await.expect("a checkpoint with a page cursor").unwrap();
        if let Some(Event::Checkpoint(c)) = event.event {
            let token: serde_json::Value = serde_json::from_slice(c.token.strip_prefix(b"ckpt1:").unwrap()).unwrap();
            if let Some(cursor) = token["resume"]["cursor"].as_str() {
                let cursor = cursor.to_owned();
                break (token, cursor);
            }
        }
    };
    drop(stream);
    assert!(cursor.starts_with("/organizations/"), "{cursor}");
    let (path, query) = cursor.split_once('?').unwrap();
    for forged in ["/user/repos?page=2", &format!("{path}/../../../user?{query}")] {
        token["resume"]["cursor"] = serde_json::Value::from(forged);
        let mut options = full();
        options.checkpoint = [b"ckpt1:".as_slice(), &serde_json::to_vec(&token).unwrap()].concat();
        let status = match open(&server, request(options)).await {
            Err(status) => status,
            Ok(stream) => {
                let events: Vec<_> = stream.collect().await;
                events.into_iter().find_map(Result::err).expect("the stream fails")
            }
        };
        assert_eq!(status.code(), Code::InvalidArgument, "{forged}: {status:?}");
        assert_eq!(
            status.message(),
            "options.checkpoint: the page cursor it holds is not valid",
            "{forged}"
        );
    }
    // Neither path was asked for (the replay server answers what it has no
    // fixture for with a 404, and lists it).
    assert_eq!(server.unmatched("github"), Vec::<String>::new());
}
