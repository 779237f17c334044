use super::*;

/// A listing item as GitHub sends it for a repository without description,
/// language or license (nulls, not absent fields), with the URL fields the
/// lean model keeps as text.
const BARE_REPO: &str = r#"{
  "id": 812345678,
  "node_id": "R_kgDOMGwzTg",
  "name": "scratch",
  "full_name": "acme-platform/scratch",
  "private": true,
  "owner": {"login": "acme-platform", "id": 90011, "type": "Organization", "url": "https://api.github.com/users/acme-platform"},
  "html_url": "https://github.com/acme-platform/scratch",
  "description": null,
  "fork": false,
  "url": "https://api.github.com/repos/acme-platform/scratch",
  "clone_url": "https://github.com/acme-platform/scratch.git",
  "language": null,
  "license": null,
  "topics": [],
  "visibility": "internal",
  "default_branch": "main",
  "archived": false,
  "created_at": "2024-06-12T08:00:01Z",
  "pushed_at": null
}"#;

#[test]
fn a_listing_item_with_nulls_maps_to_empty_fields() {
    let repo: GhRepository = client::parse_json(BARE_REPO.as_bytes()).unwrap();
    let entity = repo_entity(&repo);
    assert_eq!(entity.urn, "urn:connectors:github:repository:812345678");
    assert_eq!(entity.display_name, "acme-platform/scratch");
    let Some(Body::Repository(body)) = entity.body else {
        panic!("not a repository: {:?}", entity.body);
    };
    assert_eq!(body.owner, "acme-platform");
    assert_eq!(body.description, "");
    assert_eq!(body.language, "");
    assert_eq!(body.license_spdx_id, "");
    assert_eq!(body.visibility, "internal");
    assert_eq!(body.web_url, "https://github.com/acme-platform/scratch");
    assert_eq!(body.clone_url, "https://github.com/acme-platform/scratch.git");
    assert_eq!(body.create_time.map(|t| t.seconds), Some(1_718_179_201));
    assert_eq!(body.push_time, None);
    assert_eq!(push_version(&repo), "");
}

#[test]
fn a_push_version_names_the_default_branch_and_reads_the_push_time_alone_of_earlier_servers() {
    let repo: GhRepository = serde_json::from_value(serde_json::json!({
        "id": 7, "name": "app", "owner": {"login": "acme"},
        "pushed_at": "2025-06-27T16:41:09Z", "default_branch": "main"
    }))
    .unwrap();
    assert_eq!(push_version(&repo), "2025-06-27T16:41:09+00:00 main");
    assert!(same_push(Some("2025-06-27T16:41:09+00:00 main"), &repo));
    // Saved before the branch was part of it: the same push.
    assert!(same_push(Some("2025-06-27T16:41:09+00:00"), &repo));
    // The default branch switched without a push, or a later push.
    assert!(!same_push(Some("2025-06-27T16:41:09+00:00 master"), &repo));
    assert!(!same_push(Some("2025-06-20T08:00:00+00:00"), &repo));
    assert!(!same_push(Some("2025-06-20T08:00:00+00:00 main"), &repo));
    // New, or saved blocked (no version: asked again).
    assert!(!same_push(None, &repo));
    assert!(!same_push(Some(""), &repo));
}

#[test]
fn a_license_without_spdx_id_maps_to_an_empty_id() {
    let json = BARE_REPO.replace(
        r#""license": null"#,
        r#""license": {"key": "other", "name": "Other", "spdx_id": null, "url": null, "node_id": "MDc6TGljZW5zZTA="}"#,
    );
    let repo: GhRepository = serde_json::from_str(&json).unwrap();
    let Some(Body::Repository(body)) = repo_entity(&repo).body else {
        panic!("not a repository");
    };
    assert_eq!(body.license_spdx_id, "");
    let json = BARE_REPO.replace(
        r#""license": null"#,
        r#""license": {"key": "mit", "name": "MIT License", "spdx_id": "MIT", "url": "https://api.github.com/licenses/mit", "node_id": "MDc6TGljZW5zZTEz"}"#,
    );
    let repo: GhRepository = serde_json::from_str(&json).unwrap();
    let Some(Body::Repository(body)) = repo_entity(&repo).body else {
        panic!("not a repository");
    };
    assert_eq!(body.license_spdx_id, "MIT");
}

fn blob(owner: &str, name: &str, sha: &str) -> BlobRef {
    BlobRef {
        owner: owner.into(),
        name: name.into(),
        sha: sha.into(),
    }
}

#[test]
fn a_blob_query_groups_blobs_by_repository_and_passes_every_value_as_a_variable() {
    let blobs = [
        blob("acme", "web", "aa11"),
        blob("acme", "api", "bb22"),
        blob("acme", "web", "cc33"),
    ];
    let (body, aliases) = client::blob_query(&blobs);
    assert_eq!(
        body["query"],
        "query($o0: String!, $n0: String!, $s0_0: GitObjectID!, $s0_1: GitObjectID!, $o1: String!, $n1: String!, $s1_0: GitObjectID!) { \
         r0: repository(owner: $o0, name: $n0) { \
         b0: object(oid: $s0_0) { ... on Blob { text isBinary isTruncated } } \
         b1: object(oid: $s0_1) { ... on Blob { text isBinary isTruncated } } } \
         r1: repository(owner: $o1, name: $n1) { \
         b0: object(oid: $s1_0) { ... on Blob { text isBinary isTruncated } } } }"
    );
    assert_eq!(
        body["variables"],
        serde_json::json!({"o0": "acme", "n0": "web", "s0_0": "aa11", "s0_1": "cc33", "o1": "acme", "n1": "api", "s1_0": "bb22"})
    );
    let aliases: Vec<(&str, &str)> = aliases.iter().map(|(r, b)| (r.as_str(), b.as_str())).collect();
    assert_eq!(aliases, vec![("r0", "b0"), ("r1", "b0"), ("r0", "b1")]);
}

/// The replay server's view answers the connector's query: blobs by alias,
/// `null` and a NOT_FOUND error for a repository it cannot resolve.
#[test]
fn the_replay_view_answers_a_blob_query_in_githubs_shape() {
    struct Source;
    impl crate::replay::github_graphql::BlobSource for Source {
        fn has_repository(&self, owner: &str, name: &str) -> bool {
            (owner, name) == ("acme", "web")
        }
        fn blob(&self, _owner: &str, _name: &str, oid: &str) -> Option<Vec<u8>> {
            match oid {
                "aa11" => Some(b"{\"name\":\"web\"}\n".to_vec()),
                "ee55" => Some(vec![0x89, b'P', b'N', b'G', 0]),
                _ => None,
            }
        }
    }
    let (body, _) = client::blob_query(&[
        blob("acme", "web", "aa11"),
        blob("acme", "web", "ee55"),
        blob("acme", "web", "ff66"),
        blob("acme", "gone", "bb22"),
    ]);
    // GraphQL locations count from 1; the query is one line.
    let column = body["query"].as_str().unwrap().find("r1: repository").unwrap() + 1;
    let answer = crate::replay::github_graphql::answer(body.to_string().as_bytes(), &Source);
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body.unwrap(),
        serde_json::json!({
            "data": {
                "r0": {
                    "b0": {"text": "{\"name\":\"web\"}\n", "isBinary": false, "isTruncated": false},
                    "b1": {"text": null, "isBinary": true, "isTruncated": false},
                    "b2": null
                },
                "r1": null
            },
            "errors": [{
                "type": "NOT_FOUND",
                "path": ["r1"],
                "locations": [{"line": 1, "column": column}],
                "message": "Could not resolve to a Repository with the name 'acme/gone'."
            }]
        })
    );
    // The same query text with other variables (the view keeps parsed
    // queries by their text): each answer follows its own variables.
    let (again, _) = client::blob_query(&[
        blob("acme", "gone", "aa11"),
        blob("acme", "gone", "ee55"),
        blob("acme", "gone", "ff66"),
        blob("acme", "web", "aa11"),
    ]);
    assert_eq!(again["query"], body["query"]);
    let answer = crate::replay::github_graphql::answer(again.to_string().as_bytes(), &Source);
    assert_eq!(
        answer.body.unwrap(),
        serde_json::json!({
            "data": {
                "r0": null,
                "r1": {"b0": {"text": "{\"name\":\"web\"}\n", "isBinary": false, "isTruncated": false}}
            },
            "errors": [{
                "type": "NOT_FOUND",
                "path": ["r0"],
                "locations": [{"line": 1, "column": body["query"].as_str().unwrap().find("r0: repository").unwrap() + 1}],
                "message": "Could not resolve to a Repository with the name 'acme/gone'."
            }]
        })
    );
    let refused = crate::replay::github_graphql::answer(br#"{"query": "{ viewer { login } }"}"#, &Source);
    assert_eq!(
        refused.body.unwrap(),
        serde_json::json!({"errors": [{"message": "Field 'viewer' doesn't exist on type 'Query'"}]})
    );
}

/// A session sends only to the configured origin: an absolute URI elsewhere
/// (say, a listing link that was not made relative) is refused before
/// anything is sent, so the token never leaves for it.
#[tokio::test]
async fn a_session_refuses_a_uri_on_another_origin_before_sending() {
    let config =
        crate::http::UpstreamConfig::new("github", url::Url::parse("https://ghe.example.test/api/v3").unwrap());
    let upstream =
        Arc::new(crate::http::UpstreamClient::new(config, crate::cache::SharedCache::memory(1 << 20)).unwrap());
    let client = GithubClient::new(upstream, &GithubAuth::Token("ghp_sessiontest".into())).unwrap();
    let session = client.for_owner("acme", None).await.unwrap();
    for route in [
        "https://elsewhere.example.test/api/v3/orgs/acme/repos?page=2",
        "https://ghe.example.test/other/orgs/acme/repos",
    ] {
        let error = client::get_repo_page(&session, route.parse().unwrap())
            .await
            .expect_err("refused");
        assert!(
            matches!(
                error,
                PageError::Request(RequestError::Upstream(UpstreamError::ForeignOrigin))
            ),
            "{route}: {error:?}"
        );
    }
}

/// sonic-rs reads what serde_json reads: every recorded listing page, tree
/// and SBOM of the GitHub fixtures parses to the same values with both.
#[test]
fn recorded_listings_trees_and_sboms_parse_as_serde_json_parses_them() {
    fn same<T: serde::de::DeserializeOwned + std::fmt::Debug>(body: &[u8], what: &str) {
        let ours: T = client::parse_json(body).unwrap_or_else(|_| panic!("{what} does not parse"));
        let reference: T = serde_json::from_slice(body).unwrap();
        assert_eq!(format!("{ours:?}"), format!("{reference:?}"), "{what}");
    }
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures"));
    let set = crate::replay::FixtureSet::load_provider(root, "github").unwrap();
    let (mut pages, mut trees, mut sboms) = (0, 0, 0);
    for exchange in set.exchanges().filter(|e| e.response.status == 200) {
        let Some(body) = &exchange.response.body else { continue };
        let body = serde_json::to_vec(body).unwrap();
        let path = &exchange.request.path;
        if path.ends_with("/repos") {
            same::<Vec<GhRepository>>(&body, path);
            pages += 1;
        } else if path.contains("/git/trees/") {
            same::<client::GitTree>(&body, path);
            trees += 1;
        } else if path.starts_with("/sbom-reports/") {
            same::<client::SpdxDocument>(&body, path);
            sboms += 1;
        }
    }
    // 34 trees: one is a 409 (the empty `acme-corp/sandbox`).
    assert_eq!((pages, trees, sboms), (5, 33, 31));
}

#[test]
fn a_body_that_is_not_json_text_is_malformed() {
    let page = |item: &[u8]| [b"[".as_slice(), item, b"]"].concat();
    // Escapes are read; a field the model skips is still checked.
    let repos: Vec<GhRepository> =
        client::parse_json(&page(br#"{"id": 7, "name": "caf\u00e9", "node_id": "R_\"x\""}"#)).unwrap();
    assert_eq!((repos[0].id, repos[0].name.as_str()), (7, "caf\u{e9}"));
    for bad in [
        page(b"{\"id\": 7, \"name\": \"x\", \"node_id\": \"\xff\xfe\"}"),
        page(b"{\"id\": 7, \"name\": \"x\"} trailing"),
        page(b"{\"id\": 7, \"name\": \"x\""),
        page(b"{\"id\": \"7\", \"name\": \"x\"}"),
    ] {
        assert!(
            matches!(client::parse_json::<Vec<GhRepository>>(&bad), Err(PageError::Malformed)),
            "{}",
            String::from_utf8_lossy(&bad)
        );
    }
}

/// A session's request with a body (a GraphQL read) says it is JSON, on the
/// first send and on octocrab's resend alike; one without a body says nothing.
#[test]
fn a_request_body_is_sent_as_json_and_an_empty_one_untyped() {
    let mut read = http::Request::new(bytes::Bytes::from_static(br#"{"query":"{ viewer { login } }"}"#));
    client::json_content_type(&mut read);
    assert_eq!(
        read.headers().get(http::header::CONTENT_TYPE).unwrap(),
        "application/json"
    );
    assert_eq!(read.headers().len(), 1);
    let mut get = http::Request::new(bytes::Bytes::new());
    client::json_content_type(&mut get);
    assert!(get.headers().is_empty());
}

#[test]
fn sbom_and_graphql_requests_count_against_budgets_of_their_own() {
    use super::separate_budget;
    assert_eq!(separate_budget("/graphql"), Some("graphql"));
    assert_eq!(
        separate_budget("/repos/acme/api/dependency-graph/sbom"),
        Some("dependency_sbom")
    );
    assert_eq!(
        separate_budget("/repos/acme/api/dependency-graph/sbom/generate-report"),
        Some("dependency_sbom")
    );
    assert_eq!(
        separate_budget("/repos/acme/api/dependency-graph/sbom/fetch-report/7f3c"),
        Some("dependency_sbom")
    );
    // REST `core`: a repository named after the endpoint, its trees, the
    // dependency graph's other endpoints.
    assert_eq!(separate_budget("/repos/acme/dependency-graph/git/trees/main"), None);
    assert_eq!(separate_budget("/repos/dependency-graph/sbom/git/trees/main"), None);
    assert_eq!(separate_budget("/repos/acme/api/dependency-graph/compare/a...b"), None);
    assert_eq!(separate_budget("/orgs/acme/repos"), None);
    assert_eq!(separate_budget("/repos/acme/graphql"), None);
}

#[test]
fn a_resume_cursor_is_accepted_only_as_a_page_of_the_organizations_listing() {
    let accepted = |cursor: &str| listing_cursor(cursor, "acme-corp").map(|uri| uri.to_string());
    for listing in [
        "/organizations/4001/repos?per_page=10&page=2",
        "/orgs/acme-corp/repos?per_page=100&page=3",
        "/orgs/Acme-Corp/repos?page=2",
    ] {
        assert_eq!(accepted(listing).as_deref(), Some(listing));
    }
    for other in [
        "/user/repos?page=2",
        "/orgs/globex/repos?page=2",
        "/organizations/4001/repos/../../../user?page=2",
        "/orgs/acme-corp/repos/../../../setup/api",
        "/organizations/4001/../../admin/repos?page=2",
        "/organizations/x/repos?page=2",
        "/organizations//repos",
        "https://evil.example/organizations/4001/repos?page=2",
        "//evil.example/organizations/4001/repos?page=2",
        "organizations/4001/repos?page=2",
        "",
    ] {
        assert_eq!(accepted(other), None, "{other}");
    }
}
