//! The GitLab connector: the conformance suite on fixtures, and the
//! GitLab-specific behaviour (scopes, request counts, errors, live mode).

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use connectors_proto::gitlab::v1::SyncRequest;
use connectors_proto::v1::{EntityKind, ScopeState, SyncEvent, SyncOptions, entity::Body, sync_event::Event};
use connectors_server::config::{Config, ConnectorsMode};
use connectors_server::replay::{Exchange, FixtureSet, ReplayOptions, ReplayServer};
use serde::Deserialize;
use tonic::{Code, Status};

use crate::conformance::{FaultRun, Harness, collect, full, incremental};
use crate::support::{TestServer, deletions, scope_statuses, summary, upserts};

fn fixtures_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures"))
}

#[derive(Debug, Deserialize)]
struct EstateProject {
    id: u64,
    path_with_namespace: String,
    pipelines: Vec<u64>,
    detailed: Vec<u64>,
    #[serde(default)]
    child_pipelines: Vec<u64>,
    #[serde(default)]
    child_detailed: Vec<u64>,
}

/// fixtures/gitlab/estate.json: top-level group -> projects in listing order.
fn estate() -> BTreeMap<String, Vec<EstateProject>> {
    let text = std::fs::read_to_string(fixtures_root().join("gitlab/estate.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[derive(Debug, Deserialize)]
struct Expected {
    upserts: Vec<String>,
    deletions: Vec<String>,
}

pub struct Gitlab;

/// Serves the base fixtures with `fixtures/gitlab/scenarios/<name>` over them.
fn apply_scenario(server: &TestServer, name: &str) {
    let root = fixtures_root();
    let mut set = FixtureSet::load_provider(&root, "gitlab").unwrap();
    set.overlay_dir(&root.join(format!("gitlab/scenarios/{name}/exchanges")))
        .unwrap();
    server.server.replay("gitlab").unwrap().set_fixtures(set);
}

/// A FULL sync on the base fixtures, then the events of an INCREMENTAL sync
/// from its checkpoint with scenario `name` applied.
async fn incremental_across(server: &TestServer, name: &str) -> Vec<SyncEvent> {
    let base = collect(open(server, request(full())).await).await;
    apply_scenario(server, name);
    collect(open(server, request(incremental(summary(&base).checkpoint))).await).await
}

/// `fixtures/gitlab/scenarios/<name>/expected.json`.
fn expected_of(name: &str) -> Expected {
    let path = fixtures_root().join(format!("gitlab/scenarios/{name}/expected.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn open(server: &TestServer, request: SyncRequest) -> Result<tonic::Streaming<SyncEvent>, Status> {
    server.client.gitlab().sync(request).await.map(|r| r.into_inner())
}

fn request(options: SyncOptions) -> SyncRequest {
    SyncRequest {
        options: Some(options),
        ..Default::default()
    }
}

fn urns(events: &[SyncEvent]) -> Vec<String> {
    upserts(events).into_iter().map(|(u, _)| u).collect()
}

#[async_trait]
impl Harness for Gitlab {
    const ID: &'static str = "gitlab";

    async fn open(server: &TestServer, options: SyncOptions) -> Result<tonic::Streaming<SyncEvent>, Status> {
        open(server, request(options)).await
    }

    fn expected_counts() -> Vec<(EntityKind, u64)> {
        let projects: Vec<EstateProject> = estate().into_values().flatten().collect();
        let counts = vec![
            (EntityKind::Repository, projects.len() as u64),
            (
                EntityKind::Pipeline,
                projects.iter().map(|p| p.pipelines.len() as u64).sum(),
            ),
        ];
        // The estate fixtures/gitlab/generate.py wrote.
        assert_eq!(counts, vec![(EntityKind::Repository, 25), (EntityKind::Pipeline, 42)]);
        counts
    }

    fn apply_change(server: &TestServer) {
        apply_scenario(server, "changed");
    }

    fn expected_change() -> (Vec<String>, Vec<String>) {
        let expected = expected_of("changed");
        (expected.upserts, expected.deletions)
    }

    fn failed_under(run: FaultRun) -> Vec<(String, ScopeState, String, String)> {
        crate::conformance::malformed_fails(
            run,
            "group:globex",
            // The group goes on past a project's pipelines that do not
            // parse: two more such projects are counted.
            "pipeline 310775 of globex/storefront: gitlab returned a body that does not parse: EOF while parsing a value at line 1 column 20 (and 2 more such failures in this scope)",
        )
    }

    async fn bad_requests(server: &TestServer) -> Vec<(Result<tonic::Streaming<SyncEvent>, Status>, &'static str)> {
        let groups = |groups: &[&str]| SyncRequest {
            groups: groups.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        let projects = |projects: &[&str]| SyncRequest {
            projects: projects.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        let many: Vec<String> = (0..101).map(|i| format!("group{i}")).collect();
        let cases: Vec<(SyncRequest, &'static str)> = vec![
            (groups(&[""]), "groups[0]"),
            (groups(&["acme-corp", "https://gitlab.example.com/acme"]), "groups[1]"),
            (groups(&["acme-corp/../globex"]), "groups[0]"),
            (groups(&[".hidden"]), "groups[0]"),
            (groups(&["acme-corp", "acme-corp"]), "groups[1]"),
            (
                SyncRequest {
                    groups: many,
                    ..Default::default()
                },
                "groups",
            ),
            (projects(&["no-namespace"]), "projects[0]"),
            (projects(&["acme-corp/api", "acme-corp/a b"]), "projects[1]"),
            (projects(&["acme-corp/repo.git"]), "projects[0]"),
            (
                SyncRequest {
                    pipelines_per_project: 101,
                    ..Default::default()
                },
                "pipelines_per_project",
            ),
            (
                SyncRequest {
                    options: Some(SyncOptions {
                        kinds: vec![EntityKind::Manifest as i32],
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

crate::conformance_suite!(conformance, crate::gitlab::Gitlab);

#[tokio::test]
async fn no_change_incremental_makes_a_fraction_of_the_requests_of_a_full_sync() {
    let server = TestServer::start().await;
    let base = collect(open(&server, request(full())).await).await;
    let full_summary = summary(&base);
    let events = collect(open(&server, request(incremental(full_summary.checkpoint.clone()))).await).await;
    let inc = summary(&events);
    println!(
        "gitlab requests: full {} / no-change incremental {} ({} answered 304) = {:.1}%",
        full_summary.upstream_requests,
        inc.upstream_requests,
        inc.cache_hits,
        100.0 * inc.upstream_requests as f64 / full_summary.upstream_requests as f64
    );
    let projects: Vec<EstateProject> = estate().into_values().flatten().collect();
    let detailed: usize = projects.iter().map(|p| p.detailed.len()).sum();
    assert_eq!(detailed, 38);
    // Full: 5 listing pages, 24 pipeline listings (one project has CI
    // disabled), 38 finished pipelines read one by one.
    assert_eq!(full_summary.upstream_requests, 5 + 24 + 38);
    // Incremental: the 5 listing pages and the 24 pipeline listings, each
    // answered 304 from the cache. The pipelines are listed although every
    // project's last_activity_at is unchanged: GitLab moves it at most once an
    // hour and not when a pipeline finishes, so it cannot vouch for them. No
    // pipeline is read one by one: every updated_at is unchanged.
    assert_eq!(inc.upstream_requests, 5 + 24);
    assert_eq!(inc.cache_hits, 5 + 24);
    assert_eq!(upserts(&events).len(), 0);
    assert_eq!(server.unmatched("gitlab"), Vec::<String>::new());
}

#[tokio::test]
async fn only_the_changed_project_has_its_pipelines_refetched() {
    let server = TestServer::start().await;
    let events = incremental_across(&server, "changed").await;
    let s = summary(&events);
    // 5 listing pages (acme-corp page 1 and both globex pages changed; the
    // other two are 304s), the pipeline listings of the 23 projects with CI
    // left (22 answered 304), and the gateway's 4 finished pipelines, read
    // again as its last_activity_at moved (the 3 old ones answered 304).
    // No pipeline of the 22 unchanged projects is read one by one. The
    // deleted project, listed no more, is confirmed gone (GET /projects/52058: 404).
    assert_eq!(s.upstream_requests, 5 + 23 + 4 + 1);
    assert_eq!(s.cache_hits, 2 + 22 + 3);
    let new = events
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::Upsert(u)) if u.entity.as_ref()?.kind == EntityKind::Pipeline as i32 => u.clone().entity,
            _ => None,
        })
        .unwrap();
    assert_eq!(new.urn, "urn:connectors:gitlab:pipeline:52004:311103");
    assert_eq!(new.parent_urn, "urn:connectors:gitlab:repository:52004");
    let Some(Body::Pipeline(p)) = new.body else { panic!() };
    assert_eq!(p.project, "acme-corp/platform/gateway");
    assert_eq!((p.status.as_str(), p.r#ref.as_str()), ("success", "main"));
    // scenarios/changed/.../pipelines/311103.json: "duration": 138,
    // "finished_at": "2026-10-10T16:07:17.630Z".
    assert_eq!(
        (p.duration_seconds, p.finish_time),
        (
            138,
            Some(pbjson_types::Timestamp {
                seconds: 1_791_648_437,
                nanos: 630_000_000
            })
        )
    );
}

/// GitLab moves `last_activity_at` at most once an hour, and not at all when a
/// pipeline finishes: a push 20 minutes after the recorded activity and a
/// running pipeline that finished leave every listing page as it was.
#[tokio::test]
async fn pipelines_added_or_finished_without_a_new_last_activity_at_are_not_missed() {
    let server = TestServer::start().await;
    let events = incremental_across(&server, "within-the-hour").await;
    let expected = expected_of("within-the-hour");
    // In listing order: the gateway (52004) before the web frontend (52007).
    assert_eq!(urns(&events), expected.upserts);
    assert_eq!(
        urns(&events),
        vec![
            "urn:connectors:gitlab:pipeline:52004:310196",
            "urn:connectors:gitlab:pipeline:52007:311143",
        ]
    );
    assert_eq!(deletions(&events), expected.deletions);
    let statuses: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Upsert(u)) => match (&u.entity.as_ref()?.body, &u.provenance) {
                (Some(Body::Pipeline(p)), Some(provenance)) => Some((p.status.clone(), provenance.operation.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("success".to_owned(), "pipelines/get".to_owned()),
            ("success".to_owned(), "pipelines/get".to_owned()),
        ]
    );
    let s = summary(&events);
    // 5 listing pages (304), 24 pipeline listings (22 answered 304, the two
    // changed ones 200), and the two pipelines now finished read one by one;
    // the 38 finished pipelines whose updated_at is unchanged are not.
    assert_eq!(s.upstream_requests, 5 + 24 + 2);
    assert_eq!(s.cache_hits, 5 + 22);
    let unchanged: u64 = s.counts.iter().map(|c| c.unchanged).sum();
    assert_eq!(unchanged, 25 + 42 - 1);
    assert_eq!(server.unmatched("gitlab"), Vec::<String>::new());
}

/// Offset pagination drift: `acme-corp/billing-api` (page 1) is deleted after
/// page 1 was read, so `acme-corp/platform/k8s-manifests` (52019), first of
/// the old page 2, moves to page 1 and no page lists it. It still exists in
/// the group (`GET /projects/52019`), so it is not deleted.
#[tokio::test]
async fn a_project_skipped_by_the_listing_when_an_earlier_one_is_deleted_is_not_deleted() {
    let server = TestServer::start().await;
    let events = incremental_across(&server, "drift").await;
    let expected = expected_of("drift");
    assert_eq!(deletions(&events), expected.deletions);
    assert_eq!(urns(&events), expected.upserts);
    let s = summary(&events);
    assert!(s.complete);
    assert_eq!(s.deletions, 0);
    let unchanged: u64 = s.counts.iter().map(|c| c.unchanged).sum();
    assert_eq!(unchanged, 25 + 42, "52019 and its 3 pipelines included");
    // 5 listing pages (acme-corp's shifted pages 2 and 3 answered 200), the
    // 24 pipeline listings (52019's after it was confirmed), all 304, and
    // GET /projects/52019 for the one project of the baseline not listed.
    assert_eq!(s.upstream_requests, 5 + 24 + 1);
    assert_eq!(s.cache_hits, 3 + 24);
    assert_eq!(server.unmatched("gitlab"), Vec::<String>::new());
}

#[tokio::test]
async fn a_subgroup_and_explicit_projects_are_scopes_of_their_own() {
    let server = TestServer::start().await;
    let estate = estate();
    let gateway = estate["acme-corp"]
        .iter()
        .find(|p| p.path_with_namespace == "acme-corp/platform/gateway")
        .unwrap();
    let events = collect(
        open(
            &server,
            SyncRequest {
                groups: vec!["acme-corp/platform".into()],
                projects: vec!["globex/payments".into(), "acme-corp/does-not-exist".into()],
                ..Default::default()
            },
        )
        .await,
    )
    .await;
    let statuses = scope_statuses(&events);
    assert_eq!(
        statuses,
        vec![
            ("group:acme-corp/platform".to_owned(), ScopeState::Ok as i32),
            ("project:globex/payments".to_owned(), ScopeState::Ok as i32),
            ("project:acme-corp/does-not-exist".to_owned(), ScopeState::Failed as i32),
        ]
    );
    let failed = events
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::ScopeStatus(s)) if s.state == ScopeState::Failed as i32 => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(failed.reason, "UPSTREAM_NOT_FOUND");
    assert_eq!(
        failed.error,
        "project acme-corp/does-not-exist: gitlab answered 404: 404 project not found"
    );
    let got = urns(&events);
    let platform: Vec<&EstateProject> = estate["acme-corp"]
        .iter()
        .filter(|p| p.path_with_namespace.starts_with("acme-corp/platform/"))
        .collect();
    assert_eq!(platform.len(), 6);
    let payments = estate["globex"]
        .iter()
        .find(|p| p.path_with_namespace == "globex/payments")
        .unwrap();
    let mut expected = Vec::new();
    for p in platform.iter().copied().chain([payments]) {
        expected.push(format!("urn:connectors:gitlab:repository:{}", p.id));
        for pipeline in &p.pipelines {
            expected.push(format!("urn:connectors:gitlab:pipeline:{}:{pipeline}", p.id));
        }
    }
    assert_eq!(got, expected);
    assert!(got.contains(&format!("urn:connectors:gitlab:repository:{}", gateway.id)));
    assert!(!summary(&events).complete);
    assert_eq!(server.unmatched("gitlab"), Vec::<String>::new());
}

/// `acme-corp/platform/gateway` is shared with `globex`: GitLab lists it among
/// globex's projects unless the request says `with_shared=false` (recorded in
/// `groups/globex/projects-with-shared-page-*.json`). A group scope holds the
/// projects of the group's own namespaces only.
#[tokio::test]
async fn a_group_scope_leaves_out_projects_shared_with_it() {
    let server = TestServer::start().await;
    let before = server.upstream_requests("gitlab");
    let events = collect(
        open(
            &server,
            SyncRequest {
                groups: vec!["globex".into()],
                ..Default::default()
            },
        )
        .await,
    )
    .await;
    let globex = &estate()["globex"];
    let mut expected = Vec::new();
    for p in globex {
        expected.push(format!("urn:connectors:gitlab:repository:{}", p.id));
        for pipeline in &p.pipelines {
            expected.push(format!("urn:connectors:gitlab:pipeline:{}:{pipeline}", p.id));
        }
    }
    assert_eq!(urns(&events), expected);
    assert!(!urns(&events).contains(&"urn:connectors:gitlab:repository:52004".to_owned()));
    let detailed: usize = globex.iter().map(|p| p.detailed.len()).sum();
    // 2 listing pages, 9 pipeline listings, 12 finished pipelines.
    assert_eq!(
        (globex.len(), detailed),
        (9, 12),
        "the globex estate of fixtures/gitlab/generate.py"
    );
    assert_eq!(server.upstream_requests("gitlab") - before, 2 + 9 + 12);
    assert!(summary(&events).complete);
    assert_eq!(server.unmatched("gitlab"), Vec::<String>::new());
}

#[tokio::test]
async fn an_unknown_group_fails_its_scope_only() {
    let server = TestServer::start().await;
    let mut options = full();
    options.kinds = vec![EntityKind::Repository as i32];
    let events = collect(
        open(
            &server,
            SyncRequest {
                groups: vec!["no-such-group".into(), "globex".into()],
                options: Some(options),
                ..Default::default()
            },
        )
        .await,
    )
    .await;
    let statuses = scope_statuses(&events);
    assert_eq!(
        statuses,
        vec![
            ("group:no-such-group".to_owned(), ScopeState::Failed as i32),
            ("group:globex".to_owned(), ScopeState::Ok as i32),
        ]
    );
    assert_eq!(urns(&events).len(), 9);
}

/// A project whose pipelines listing does not parse is that project's
/// failure: it is sent without its pipelines, the group's other projects
/// and their pipelines are sent, then the group's scope ends FAILED
/// `UPSTREAM_MALFORMED` naming the project (keeping its baseline: nothing
/// deleted).
#[tokio::test]
async fn pipelines_that_do_not_parse_fail_their_group_after_its_other_projects() {
    let server = TestServer::start().await;
    let globex = || SyncRequest {
        groups: vec!["globex".into()],
        options: Some(full()),
        ..Default::default()
    };
    let clean = collect(open(&server, globex()).await).await;
    let mut set = FixtureSet::load_provider(&fixtures_root(), "gitlab").unwrap();
    set.insert(crate::support::cut_short(
        "/api/v4/projects/52052/pipelines",
        serde_json::json!({"order_by": "id", "per_page": "20", "sort": "desc"}),
        r#"[{"id": 310795, "iid": 2, "proj"#,
    ));
    server.server.replay("gitlab").unwrap().set_fixtures(set);
    let events = collect(open(&server, globex()).await).await;
    let inventory_pipeline = "urn:connectors:gitlab:pipeline:52052:";
    let expected: Vec<(String, String)> = upserts(&clean)
        .into_iter()
        .filter(|(urn, _)| !urn.starts_with(inventory_pipeline))
        .collect();
    // 9 projects and 13 pipelines, less inventory's 2.
    assert_eq!((upserts(&clean).len(), expected.len()), (9 + 13, 9 + 11));
    assert_eq!(upserts(&events), expected);
    assert_eq!(
        crate::support::scope_errors(&events),
        vec![(
            "group:globex".to_owned(),
            "UPSTREAM_MALFORMED".to_owned(),
            "pipelines of globex/inventory: gitlab returned a body that does not parse: EOF while parsing a string at line 1 column 31".to_owned()
        )]
    );
    assert_eq!(deletions(&events), Vec::<String>::new());
    assert!(!summary(&events).complete);
}

/// Child pipelines (source `parent_pipeline`) are not in GitLab's pipelines
/// listing; `include_child_pipelines` lists them per project as well.
#[tokio::test]
async fn child_pipelines_are_synced_when_asked_for_with_one_more_listing_per_project() {
    let server = TestServer::start().await;
    let with_children = |options: SyncOptions| SyncRequest {
        include_child_pipelines: true,
        ..request(options)
    };
    let before = server.upstream_requests("gitlab");
    let plain = collect(open(&server, request(full())).await).await;
    let plain_requests = server.upstream_requests("gitlab") - before;
    let events = collect(open(&server, with_children(full())).await).await;
    let s = summary(&events);

    // Every project, then its pipelines and child pipelines, newest first.
    let mut expected = Vec::new();
    for project in estate().into_values().flatten() {
        expected.push(format!("urn:connectors:gitlab:repository:{}", project.id));
        let mut ids: Vec<u64> = project
            .pipelines
            .iter()
            .chain(&project.child_pipelines)
            .copied()
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        expected.extend(
            ids.iter()
                .map(|id| format!("urn:connectors:gitlab:pipeline:{}:{id}", project.id)),
        );
    }
    assert_eq!(urns(&events), expected);
    assert_eq!(urns(&events).len(), 25 + 42 + 4);
    assert_eq!(urns(&plain).len(), 25 + 42, "without the field, no child pipeline");
    // One more listing for each of the 24 projects with CI, and the 3 finished
    // child pipelines read one by one.
    let projects: Vec<EstateProject> = estate().into_values().flatten().collect();
    let child_detailed: usize = projects.iter().map(|p| p.child_detailed.len()).sum();
    assert_eq!(child_detailed, 3);
    assert_eq!(s.upstream_requests, plain_requests + 24 + 3);
    assert_eq!(server.unmatched("gitlab"), Vec::<String>::new());

    let child = events
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::Upsert(u)) if u.entity.as_ref()?.urn == "urn:connectors:gitlab:pipeline:52004:310190" => {
                Some(u.clone())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(child.provenance.unwrap().operation, "pipelines/get");
    let entity = child.entity.unwrap();
    assert_eq!(entity.parent_urn, "urn:connectors:gitlab:repository:52004");
    let Some(Body::Pipeline(p)) = entity.body else { panic!() };
    assert_eq!(
        (p.project.as_str(), p.status.as_str(), p.source.as_str()),
        ("acme-corp/platform/gateway", "failed", "parent_pipeline")
    );
    // pipelines/310190.json: "duration": 398, "finished_at": "2026-10-07T03:11:13.647Z".
    assert_eq!(
        (p.duration_seconds, p.finish_time),
        (
            398,
            Some(pbjson_types::Timestamp {
                seconds: 1_791_342_673,
                nanos: 647_000_000
            })
        )
    );

    // Nothing changed: nothing sent, both listings of each project answered 304.
    let again = collect(open(&server, with_children(incremental(s.checkpoint.clone()))).await).await;
    let inc = summary(&again);
    assert_eq!((upserts(&again).len(), deletions(&again).len()), (0, 0));
    assert_eq!((inc.upstream_requests, inc.cache_hits), (5 + 2 * 24, 5 + 2 * 24));
    // The checkpoint is bound to the choice.
    let status = open(&server, request(incremental(s.checkpoint))).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("options.checkpoint:"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn kinds_select_what_is_fetched() {
    let server = TestServer::start().await;
    let mut options = full();
    options.kinds = vec![EntityKind::Repository as i32];
    let before = server.upstream_requests("gitlab");
    let events = collect(open(&server, request(options)).await).await;
    assert_eq!(upserts(&events).len(), 25);
    // Listing pages only: no pipeline requests.
    assert_eq!(server.upstream_requests("gitlab") - before, 5);
    let first = events
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::Upsert(u)) => Some(u.clone()),
            _ => None,
        })
        .unwrap();
    let entity = first.entity.unwrap();
    assert_eq!(entity.urn, "urn:connectors:gitlab:repository:52001");
    let Some(Body::Repository(repo)) = entity.body else {
        panic!()
    };
    assert_eq!(
        (repo.owner.as_str(), repo.name.as_str(), repo.full_name.as_str()),
        ("acme-corp", "billing-api", "acme-corp/billing-api")
    );
    assert_eq!(repo.topics, vec!["api", "billing"]);
    assert_eq!(repo.clone_url, "https://gitlab.example.com/acme-corp/billing-api.git");
    let provenance = first.provenance.unwrap();
    assert_eq!(provenance.operation, "groups/projects");
    assert_eq!(provenance.source, "group:acme-corp");
}

#[tokio::test]
async fn live_mode_without_credentials_is_a_failed_precondition_naming_the_variables() {
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    let server = TestServer::with_config(config).await;
    let status = open(&server, request(full())).await.expect_err("not configured");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("GITLAB_TOKEN"), "{}", status.message());
}

/// Live mode against a self-managed instance behind a path prefix: the token
/// goes in PRIVATE-TOKEN, the API is under <GITLAB_BASE_URL>/api/v4, and the
/// default scope is GITLAB_GROUPS.
#[tokio::test]
async fn live_mode_sends_the_token_to_the_self_managed_instance() {
    let root = fixtures_root();
    let page: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("gitlab/exchanges/groups/globex/projects-page-2.json")).unwrap(),
    )
    .unwrap();
    let project = page["exchanges"][0]["response"]["body"][0].clone();
    let id = project["id"].as_u64().unwrap();
    let mut set = FixtureSet::default();
    for value in [
        serde_json::json!({
            "request": {
                "method": "GET",
                "path": "/gitlab/api/v4/groups/ops%2Finfra/projects",
                "query": {"include_subgroups": "true", "with_shared": "false", "per_page": "100", "order_by": "id", "sort": "asc"},
                "headers": {"private-token": "glpat-testtoken"}
            },
            "response": {"status": 200, "headers": {"content-type": "application/json", "x-next-page": ""}, "body": [project]}
        }),
        serde_json::json!({
            "request": {
                "method": "GET",
                "path": format!("/gitlab/api/v4/projects/{id}/pipelines"),
                "query": {"per_page": "5", "order_by": "id", "sort": "desc"},
                "headers": {"private-token": "glpat-testtoken"}
            },
            "response": {"status": 200, "headers": {"content-type": "application/json"}, "body": []}
        }),
        serde_json::json!({
            "request": {"method": "GET", "path": "/gitlab/api/v4/user", "headers": {"private-token": "glpat-testtoken"}},
            "response": {"status": 200, "body": {"id": 7, "username": "release-bot"}}
        }),
    ] {
        let exchange: Exchange = serde_json::from_value(value).unwrap();
        set.insert(exchange);
    }
    let upstream = ReplayServer::start(set, ReplayOptions::default()).await.unwrap();

    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Live;
    config.gitlab.token = Some("glpat-testtoken".into());
    config.gitlab.base_url = Some(url::Url::parse(&format!("{}/gitlab", upstream.base_url())).unwrap());
    config.gitlab.groups = vec!["ops/infra".into()];
    config.gitlab.pipelines_per_project = Some(5);
    let server = TestServer::with_config(config).await;
    assert_eq!(server.client.get_connector("gitlab").await.unwrap().auth_mode, "token");
    let events = collect(open(&server, request(full())).await).await;
    assert_eq!(urns(&events), vec![format!("urn:connectors:gitlab:repository:{id}")]);
    assert!(summary(&events).complete);
    assert_eq!(upstream.unmatched_requests(), Vec::<String>::new());
    assert_eq!(
        upstream.stats().requests(),
        3,
        "the credential check, the listing, the pipelines"
    );
}

#[tokio::test]
async fn without_a_token_auto_mode_runs_on_fixtures_and_says_what_to_set() {
    let mut config = Config::for_tests();
    config.mode = ConnectorsMode::Auto;
    let server = TestServer::with_config(config).await;
    let entry = server.client.get_connector("gitlab").await.unwrap();
    assert_eq!(
        entry.availability,
        connectors_proto::v1::ConnectorAvailability::Fixture as i32
    );
    assert_eq!(
        entry.reason,
        "no GitLab credentials configured (set GITLAB_TOKEN, and GITLAB_BASE_URL for a self-managed instance, to sync live)"
    );
}

/// The resuming client stream of the `connectors-client` crate, its
/// connection cut after the first scope (see `support::resume_over_a_cut`).
#[tokio::test]
async fn the_client_crate_resumes_a_gitlab_sync_whose_connection_was_cut() {
    let server = TestServer::start().await;
    let unbroken = collect(open(&server, request(full())).await).await;
    crate::support::resume_over_a_cut(&server, "gitlab", &unbroken, |client| {
        client.sync_gitlab(request(full()))
    })
    .await;
}
