//! The synthetic estate, answered from code by the replay server (no response
//! is held in memory, so a million entities cost the benchmark process nothing).
//!
//! GitHub-shaped: organizations `bench-org-<i>` whose repositories are listed
//! 100 per page with `Link` pagination and ETags (the real listing item, 5 KB,
//! with its name, id and push time varied), each repository with a recursive
//! git tree, `manifests_per_repo` package.json blobs (over REST, and through
//! GitHub's GraphQL API, which the connector reads them with) and a
//! dependency-graph SBOM, as the GitHub connector fetches them.
//!
//! AWS-shaped: ECR `DescribeRepositories` and `DescribeImages` (awsJson 1.1,
//! `nextToken` pages of up to 100 results, or `maxResults` up to 1000, as ECR
//! pages), in account 123456789012, region us-east-1; and STS
//! `GetCallerIdentity`, the connector's credential check.

use std::fmt::Write as _;

use base64::Engine as _;
use connectors_server::replay::github_graphql::{self, BlobSource};
use connectors_server::replay::{FixtureSet, RecordedResponse, Synthesizer};
use http::{HeaderMap, Method, Uri};
use sha2::{Digest, Sha256};

/// The listing item of a real fixture repository, with `{{placeholders}}`.
const REPO_TEMPLATE: &str = include_str!("repo_template.json");

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const ECR_TARGET: &str = "AmazonEC2ContainerRegistry_V20150921.";

/// Manifest blobs per GraphQL read: the connector's default (`GITHUB_BLOB_BATCH`
/// is not set for the benchmark's server).
pub const BLOB_BATCH: usize = connectors_server::providers::github::DEFAULT_BLOB_BATCH;

/// A GitHub-shaped estate.
#[derive(Debug, Clone, Copy)]
pub struct GithubShape {
    /// Organizations.
    pub orgs: u32,
    /// Repositories per organization.
    pub repos_per_org: u32,
    /// package.json manifests per repository.
    pub manifests_per_repo: u32,
    /// Repositories per listing page (the connector's `GITHUB_PAGE_SIZE`).
    pub page_size: u32,
}

impl GithubShape {
    /// An estate of at least `entities` entities (repository, one manifest, SBOM per repository).
    pub fn with_entities(entities: u64) -> Self {
        let repos = entities.div_ceil(3).max(1);
        let orgs = repos.div_ceil(10_000).max(1);
        Self {
            orgs: u32::try_from(orgs).unwrap_or(u32::MAX),
            repos_per_org: u32::try_from(repos.div_ceil(orgs)).unwrap_or(u32::MAX),
            manifests_per_repo: 1,
            page_size: 100,
        }
    }

    /// Organization logins.
    pub fn org_names(&self) -> Vec<String> {
        (0..self.orgs).map(|i| format!("bench-org-{i}")).collect()
    }

    /// Entities a FULL sync emits.
    pub fn entities(&self) -> u64 {
        u64::from(self.orgs) * u64::from(self.repos_per_org) * (2 + u64::from(self.manifests_per_repo))
    }

    pub(crate) fn pages_per_org(&self) -> u32 {
        self.repos_per_org.div_ceil(self.page_size).max(1)
    }

    /// Upstream requests of a FULL sync: listing pages, per repository its
    /// tree and its SBOM report (generate-report, fetch-report, the download
    /// it redirects to), and per listing page the GraphQL reads of its
    /// repositories' manifest blobs (`BLOB_BATCH` each at most).
    pub fn full_requests(&self) -> u64 {
        let reads: u64 = (0..self.pages_per_org())
            .map(|page| {
                let repos = self.page_size.min(self.repos_per_org - page * self.page_size);
                u64::from(repos * self.manifests_per_repo).div_ceil(BLOB_BATCH as u64)
            })
            .sum();
        u64::from(self.orgs) * (u64::from(self.pages_per_org()) + u64::from(self.repos_per_org) * 4 + reads)
    }

    /// The longest chain of requests that depend on each other: an
    /// organization's listing pages (each names the next), then for the last
    /// page's repositories the longer of tree then GraphQL read of its blobs
    /// (the trees name them) and the SBOM report's three steps (each names
    /// the next).
    pub fn dependent_chain(&self) -> u64 {
        u64::from(self.orgs) * u64::from(self.pages_per_org()) + 3
    }
}

/// An AWS-shaped (ECR) estate.
#[derive(Debug, Clone, Copy)]
pub struct AwsShape {
    /// ECR repositories.
    pub repositories: u32,
    /// Images per repository.
    pub images_per_repo: u32,
}

impl AwsShape {
    /// An estate of at least `entities` entities (repositories and their images).
    pub fn with_entities(entities: u64) -> Self {
        let images_per_repo = 999u64;
        let repositories = entities.div_ceil(images_per_repo + 1).max(1);
        Self {
            repositories: u32::try_from(repositories).unwrap_or(u32::MAX),
            images_per_repo: 999,
        }
    }

    /// Entities a FULL sync emits.
    pub fn entities(&self) -> u64 {
        u64::from(self.repositories) * (1 + u64::from(self.images_per_repo))
    }
}

/// The estate: what the replay server synthesizes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Estate {
    /// GitHub organizations, if any.
    pub github: Option<GithubShape>,
    /// ECR repositories, if any.
    pub aws: Option<AwsShape>,
}

enum Piece {
    Text(&'static str),
    Org,
    OrgId,
    Name,
    Id,
    NodeId,
    Pushed,
}

/// The repository template split at its placeholders once.
fn template() -> &'static [Piece] {
    static PIECES: std::sync::OnceLock<Vec<Piece>> = std::sync::OnceLock::new();
    PIECES.get_or_init(|| {
        let mut pieces = Vec::new();
        let mut rest = REPO_TEMPLATE.trim_end();
        while let Some(start) = rest.find("{{") {
            pieces.push(Piece::Text(&rest[..start]));
            let end = rest[start..].find("}}").map(|e| start + e + 2).unwrap_or(rest.len());
            pieces.push(match &rest[start + 2..end - 2] {
                "org" => Piece::Org,
                "org_id" => Piece::OrgId,
                "name" => Piece::Name,
                "id" => Piece::Id,
                "node_id" => Piece::NodeId,
                _ => Piece::Pushed,
            });
            rest = &rest[end..];
        }
        pieces.push(Piece::Text(rest));
        pieces
    })
}

pub(crate) fn org_id(org: u32) -> u64 {
    5_000 + u64::from(org)
}

/// The sha of a repository's `manifest`-th package.json blob.
pub(crate) fn blob_sha(org: u32, repo: u32, manifest: u32) -> String {
    sha(&["blob", &org.to_string(), &repo.to_string(), &manifest.to_string()])
}

fn repo_id(org: u32, repo: u32) -> u64 {
    (u64::from(org) + 1) * 10_000_000 + u64::from(repo)
}

/// The id of repository `repo` of organization `org`'s SBOM report.
pub(crate) fn sbom_report_id(org: u32, repo: u32) -> String {
    format!("00000000-0000-4000-8000-{org:04x}{repo:08x}")
}

fn sha(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..20])
}

fn push_repo(out: &mut String, org: u32, repo: u32) {
    use std::io::Write as _;
    let id = repo_id(org, repo);
    // The node id's text on the stack: a listing page writes 100 repositories.
    let mut raw = [0u8; 40];
    let mut cursor = std::io::Cursor::new(&mut raw[..]);
    let _ = write!(cursor, "010:Repository{id}");
    let len = usize::try_from(cursor.position()).unwrap_or(0);
    for piece in template() {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Org => {
                let _ = write!(out, "bench-org-{org}");
            }
            Piece::OrgId => {
                let _ = write!(out, "{}", org_id(org));
            }
            Piece::Name => {
                let _ = write!(out, "repo-{repo}");
            }
            Piece::Id => {
                let _ = write!(out, "{id}");
            }
            Piece::NodeId => base64::engine::general_purpose::STANDARD.encode_string(&raw[..len], out),
            Piece::Pushed => {
                let _ = write!(
                    out,
                    "2025-06-{:02}T{:02}:{:02}:00Z",
                    1 + repo % 28,
                    repo % 24,
                    repo % 60
                );
            }
        }
    }
}

fn github_headers(etag: &str) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), "application/json; charset=utf-8".into()),
        ("etag".into(), format!("W/\"{etag}\"")),
        ("x-ratelimit-limit".into(), "5000".into()),
        ("x-ratelimit-remaining".into(), "4990".into()),
        ("x-ratelimit-reset".into(), "1795000000".into()),
        ("x-ratelimit-resource".into(), "core".into()),
    ]
}

fn json(headers: Vec<(String, String)>, body: String) -> Option<RecordedResponse> {
    Some(RecordedResponse {
        status: 200,
        headers,
        body: None,
        body_text: Some(body),
    })
}

fn manifest_text(org: u32, repo: u32, manifest: u32) -> String {
    format!(
        "{{\n  \"name\": \"@bench-org-{org}/repo-{repo}-{manifest}\",\n  \"version\": \"1.0.{repo}\",\n  \"dependencies\": {{\n    \"express\": \"^4.19.2\",\n    \"pg\": \"8.11.5\",\n    \"zod\": \"3.23.8\"\n  }},\n  \"devDependencies\": {{\n    \"typescript\": \"5.4.5\"\n  }}\n}}\n"
    )
}

fn manifest_path(manifest: u32) -> String {
    if manifest == 0 {
        "package.json".into()
    } else {
        format!("packages/p{manifest}/package.json")
    }
}

impl GithubShape {
    fn parse_org(&self, login: &str) -> Option<u32> {
        login
            .strip_prefix("bench-org-")?
            .parse()
            .ok()
            .filter(|o| *o < self.orgs)
    }

    /// The organization and repository of an SBOM report id.
    fn parse_report(&self, id: &str) -> Option<(u32, u32)> {
        let tail = id.strip_prefix("00000000-0000-4000-8000-")?;
        let (o, r) = (
            u32::from_str_radix(tail.get(..4)?, 16).ok()?,
            u32::from_str_radix(tail.get(4..)?, 16).ok()?,
        );
        (o < self.orgs && r < self.repos_per_org).then_some((o, r))
    }

    fn parse_repo(&self, org: &str, name: &str) -> Option<(u32, u32)> {
        let org = self.parse_org(org)?;
        let repo = name
            .strip_prefix("repo-")?
            .parse()
            .ok()
            .filter(|r| *r < self.repos_per_org)?;
        Some((org, repo))
    }

    fn listing(&self, org: u32, page: u32) -> Option<RecordedResponse> {
        let pages = self.pages_per_org();
        if page == 0 || page > pages {
            return None;
        }
        let first = (page - 1) * self.page_size;
        let last = (first + self.page_size).min(self.repos_per_org);
        let mut body = String::with_capacity((last - first) as usize * 5_200 + 2);
        body.push('[');
        for repo in first..last {
            if repo > first {
                body.push(',');
            }
            push_repo(&mut body, org, repo);
        }
        body.push(']');
        let mut headers = github_headers(&sha(&["listing", &org.to_string(), &page.to_string()]));
        let link = |p: u32, rel: &str| {
            format!(
                "<{{{{base_url}}}}/organizations/{}/repos?per_page={}&page={p}>; rel=\"{rel}\"",
                org_id(org),
                self.page_size
            )
        };
        if page < pages {
            headers.push((
                "link".into(),
                format!("{}, {}", link(page + 1, "next"), link(pages, "last")),
            ));
        }
        json(headers, body)
    }

    fn respond(&self, uri: &Uri) -> Option<RecordedResponse> {
        let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
        let query: Vec<(&str, &str)> = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .collect();
        let param = |name: &str| query.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        match segments.as_slice() {
            ["user"] => json(
                github_headers("user"),
                r#"{"login":"bench","id":1,"node_id":"MDQ6VXNlcjE=","avatar_url":"https://avatars.githubusercontent.com/u/1?v=4","gravatar_id":"","url":"https://api.github.com/users/bench","html_url":"https://github.com/bench","followers_url":"https://api.github.com/users/bench/followers","following_url":"https://api.github.com/users/bench/following{/other_user}","gists_url":"https://api.github.com/users/bench/gists{/gist_id}","starred_url":"https://api.github.com/users/bench/starred{/owner}{/repo}","subscriptions_url":"https://api.github.com/users/bench/subscriptions","organizations_url":"https://api.github.com/users/bench/orgs","repos_url":"https://api.github.com/users/bench/repos","events_url":"https://api.github.com/users/bench/events{/privacy}","received_events_url":"https://api.github.com/users/bench/received_events","type":"User","site_admin":false}"#.into(),
            ),
            ["orgs", org, "repos"] if param("per_page") == Some(&self.page_size.to_string()) && param("page").is_none() => {
                self.listing(self.parse_org(org)?, 1)
            }
            ["organizations", id, "repos"] if param("per_page") == Some(&self.page_size.to_string()) => {
                let org = id.parse::<u64>().ok()?.checked_sub(5_000)?;
                let org = u32::try_from(org).ok().filter(|o| *o < self.orgs)?;
                self.listing(org, param("page")?.parse().ok()?)
            }
            ["repos", org, name, "git", "trees", "main"] if param("recursive") == Some("1") => {
                let (o, r) = self.parse_repo(org, name)?;
                let mut entries = vec![
                    r#"{"path":"README.md","mode":"100644","type":"blob","sha":"0f8c5b1a3e9d2c4b6a8f0e1d3c5b7a9f2e4d6c8b"}"#.to_owned(),
                    r#"{"path":"src","mode":"040000","type":"tree","sha":"1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"}"#.to_owned(),
                ];
                for m in 0..self.manifests_per_repo {
                    entries.push(format!(
                        r#"{{"path":"{}","mode":"100644","type":"blob","sha":"{}"}}"#,
                        manifest_path(m),
                        blob_sha(o, r, m)
                    ));
                }
                let tree_sha = sha(&["tree", &o.to_string(), &r.to_string()]);
                json(
                    github_headers(&tree_sha),
                    format!(r#"{{"sha":"{tree_sha}","tree":[{}],"truncated":false}}"#, entries.join(",")),
                )
            }
            ["repos", org, name, "git", "blobs", blob] => {
                let (o, r) = self.parse_repo(org, name)?;
                let m = (0..self.manifests_per_repo)
                    .find(|m| blob_sha(o, r, *m) == *blob)?;
                let content = base64::engine::general_purpose::STANDARD.encode(manifest_text(o, r, m));
                json(
                    github_headers(blob),
                    format!(r#"{{"sha":"{blob}","size":{},"content":"{content}","encoding":"base64"}}"#, content.len()),
                )
            }
            ["repos", org, name, "dependency-graph", "sbom", "generate-report"] => {
                let (o, r) = self.parse_repo(org, name)?;
                json(
                    github_headers(&sha(&["sbom-report", &o.to_string(), &r.to_string()])),
                    format!(
                        r#"{{"sbom_url":"https://api.github.com/repos/{org}/{name}/dependency-graph/sbom/fetch-report/{}"}}"#,
                        sbom_report_id(o, r)
                    ),
                )
            }
            ["repos", org, name, "dependency-graph", "sbom", "fetch-report", id] => {
                let (o, r) = self.parse_repo(org, name)?;
                (*id == sbom_report_id(o, r)).then(|| RecordedResponse {
                    status: 302,
                    headers: vec![(
                        "location".into(),
                        format!("{{{{base_url}}}}/sbom-reports/{id}.json"),
                    )],
                    body: None,
                    body_text: Some(String::new()),
                })
            }
            ["sbom-reports", file] => {
                let (o, r) = self.parse_report(file.strip_suffix(".json")?)?;
                let package = |name: &str, version: &str| {
                    format!(
                        r#"{{"name":"{name}","SPDXID":"SPDXRef-npm-{name}-{version}","versionInfo":"{version}","downloadLocation":"NOASSERTION","filesAnalyzed":false,"licenseConcluded":"MIT","externalRefs":[{{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:npm/{name}@{version}"}}]}}"#
                    )
                };
                let body = format!(
                    r#"{{"SPDXID":"SPDXRef-DOCUMENT","spdxVersion":"SPDX-2.3","creationInfo":{{"created":"2025-06-30T09:14:27Z","creators":["Tool: GitHub.com-Dependency-Graph"]}},"name":"bench-org-{o}/repo-{r}","dataLicense":"CC0-1.0","documentNamespace":"https://spdx.org/spdxdocs/protobom/bench-{o}-{r}","packages":[{},{},{}]}}"#,
                    package("express", "4.19.2"),
                    package("pg", "8.11.5"),
                    package("zod", "3.23.8")
                );
                json(vec![("content-type".into(), "application/json".into())], body)
            }
            _ => None,
        }
    }
}

fn aws_headers() -> Vec<(String, String)> {
    vec![
        ("content-type".into(), "application/x-amz-json-1.1".into()),
        ("x-amzn-requestid".into(), "bench".into()),
    ]
}

/// The page `[start, end)` of `total` items a request asks for, and the next token.
fn aws_page(body: &serde_json::Value, prefix: &str, total: u32) -> Option<(u32, u32, Option<String>)> {
    let start: u32 = match body.get("nextToken").and_then(|t| t.as_str()) {
        Some(token) => token.strip_prefix(prefix)?.parse().ok()?,
        None => 0,
    };
    let size = body
        .get("maxResults")
        .and_then(|m| m.as_u64())
        .map(|m| m.clamp(1, 1000))
        .unwrap_or(100);
    let end = start.saturating_add(u32::try_from(size).unwrap_or(100)).min(total);
    let next = (end < total).then(|| format!("{prefix}{end}"));
    Some((start, end, next))
}

impl AwsShape {
    fn respond(&self, headers: &HeaderMap, body: &[u8]) -> Option<RecordedResponse> {
        let target = headers.get("x-amz-target")?.to_str().ok()?.strip_prefix(ECR_TARGET)?;
        let request: serde_json::Value = serde_json::from_slice(body).ok()?;
        let mut out = String::new();
        let next = match target {
            "DescribeRepositories" => {
                let (start, end, next) = aws_page(&request, "repositories-", self.repositories)?;
                out.push_str(r#"{"repositories":["#);
                for r in start..end {
                    if r > start {
                        out.push(',');
                    }
                    let _ = write!(
                        out,
                        r#"{{"createdAt":{},"imageTagMutability":"MUTABLE","registryId":"{ACCOUNT}","repositoryArn":"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/repo-{r}","repositoryName":"repo-{r}","repositoryUri":"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/repo-{r}"}}"#,
                        1_714_550_400 + u64::from(r)
                    );
                }
                out.push(']');
                next
            }
            "DescribeImages" => {
                let name = request.get("repositoryName")?.as_str()?;
                let repo: u32 = name
                    .strip_prefix("repo-")?
                    .parse()
                    .ok()
                    .filter(|r| *r < self.repositories)?;
                let (start, end, next) = aws_page(&request, "images-", self.images_per_repo)?;
                out.push_str(r#"{"imageDetails":["#);
                for i in start..end {
                    if i > start {
                        out.push(',');
                    }
                    let digest = hex::encode(Sha256::digest(format!("{repo}/{i}")));
                    let _ = write!(
                        out,
                        r#"{{"imageDigest":"sha256:{digest}","imageManifestMediaType":"application/vnd.docker.distribution.manifest.v2+json","imagePushedAt":{},"imageSizeInBytes":{},"imageTags":["v{i}"],"registryId":"{ACCOUNT}","repositoryName":"{name}"}}"#,
                        1_714_636_800 + u64::from(i) * 60,
                        50_000_000 + u64::from(i)
                    );
                }
                out.push(']');
                next
            }
            _ => return None,
        };
        if let Some(next) = next {
            let _ = write!(out, r#","nextToken":"{next}""#);
        }
        out.push('}');
        json(aws_headers(), out)
    }
}

impl BlobSource for GithubShape {
    fn has_repository(&self, owner: &str, name: &str) -> bool {
        self.parse_repo(owner, name).is_some()
    }

    fn blob(&self, owner: &str, name: &str, oid: &str) -> Option<Vec<u8>> {
        let (o, r) = self.parse_repo(owner, name)?;
        let m = (0..self.manifests_per_repo).find(|m| blob_sha(o, r, *m) == oid)?;
        Some(manifest_text(o, r, m).into_bytes())
    }
}

impl Synthesizer for Estate {
    fn respond(
        &self,
        _fixtures: &FixtureSet,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<RecordedResponse> {
        if method == Method::GET {
            self.github.as_ref()?.respond(uri)
        } else if method == Method::POST && uri.path() == "/graphql" {
            // The connector's batched manifest reads.
            Some(github_graphql::answer(body, self.github.as_ref()?))
        } else if method == Method::POST && uri.path() == "/" && body.starts_with(b"Action=GetCallerIdentity&") {
            // The AWS connector's credential check (STS, query protocol).
            Some(RecordedResponse {
                status: 200,
                headers: vec![("content-type".into(), "text/xml".into())],
                body: None,
                body_text: Some(format!(
                    r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::{ACCOUNT}:user/bench</Arn><UserId>AIDACKCEVSQ6C2EXAMPLE</UserId><Account>{ACCOUNT}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata></GetCallerIdentityResponse>"#
                )),
            })
        } else if method == Method::POST && uri.path() == "/" {
            self.aws.as_ref()?.respond(headers, body)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_template_is_valid_json_with_its_fields_varied() {
        let mut out = String::new();
        push_repo(&mut out, 3, 42);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["name"], "repo-42");
        assert_eq!(value["full_name"], "bench-org-3/repo-42");
        assert_eq!(value["owner"]["login"], "bench-org-3");
        assert_eq!(value["id"], 40_000_042);
        // base64 of "010:Repository40000042", GitHub's legacy node id form.
        assert_eq!(value["node_id"], "MDEwOlJlcG9zaXRvcnk0MDAwMDA0Mg==");
        assert_eq!(value["pushed_at"], "2025-06-15T18:42:00Z");
        assert_eq!(value["owner"]["id"], 5_003);
    }

    #[test]
    fn shapes_count_what_they_serve() {
        let shape = GithubShape {
            orgs: 2,
            repos_per_org: 150,
            manifests_per_repo: 1,
            page_size: 100,
        };
        assert_eq!(shape.entities(), 900);
        // Per organization: 2 listing pages, 150 trees and SBOM reports (3
        // requests each), a GraphQL read per page.
        assert_eq!(shape.full_requests(), 2 * (2 + 600 + 2));
        let page = shape.listing(1, 2).unwrap();
        let body: serde_json::Value = serde_json::from_str(page.body_text.as_deref().unwrap()).unwrap();
        assert_eq!(body.as_array().unwrap().len(), 50);
        assert!(!page.headers.iter().any(|(k, _)| k == "link"));
        assert!(GithubShape::with_entities(200_000).entities() >= 200_000);
        // The upstream ceiling's requests are exactly those the estate answers.
        let estate = Estate {
            github: Some(shape),
            aws: None,
        };
        for request in crate::fetch::github_requests(&shape) {
            let (method, uri, body) = match &request {
                crate::fetch::Upstream::Get(path) => (Method::GET, path.parse::<Uri>().unwrap(), Vec::new()),
                crate::fetch::Upstream::Graphql(read) => (
                    Method::POST,
                    Uri::from_static("/graphql"),
                    serde_json::to_vec(read).unwrap(),
                ),
            };
            let response = estate
                .respond(&FixtureSet::default(), &method, &uri, &HeaderMap::new(), &body)
                .unwrap_or_else(|| panic!("{request:?} not answered"));
            match &request {
                // A report's fetch-report redirects to its download, whose
                // path is the next request.
                crate::fetch::Upstream::Get(path) if path.contains("/fetch-report/") => {
                    assert_eq!(response.status, 302, "{request:?}");
                    let (_, location) = response.headers.iter().find(|(k, _)| k == "location").unwrap();
                    let id = path.rsplit('/').next().unwrap();
                    assert_eq!(location, &format!("{{{{base_url}}}}/sbom-reports/{id}.json"));
                }
                _ => assert_eq!(response.status, 200, "{request:?}"),
            }
            if let crate::fetch::Upstream::Graphql(read) = &request {
                // Every blob of the read has its text.
                let answer = response.body.unwrap();
                assert!(answer.get("errors").is_none(), "{answer}");
                let texts = answer["data"]
                    .as_object()
                    .unwrap()
                    .values()
                    .flat_map(|repo| repo.as_object().unwrap().values())
                    .filter(|blob| blob["text"].as_str().is_some_and(|t| t.contains("\"express\"")))
                    .count();
                assert_eq!(texts, read["variables"].as_object().unwrap().len() / 3);
            }
        }
        assert!(AwsShape::with_entities(200_000).entities() >= 200_000);
    }
}
