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
    let repo: GhRepository = serde_json::from_str(BARE_REPO).unwrap();
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
