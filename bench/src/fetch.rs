//! The upstream ceiling of the GitHub shape: a plain HTTP client (reqwest,
//! the server's own HTTP stack) sending exactly the requests of a FULL sync
//! to the replay server, at the server's upstream concurrency, reading every
//! body and parsing none. It runs in a process of its own, as the server
//! does, so that what it measures is what the estate's requests cost on this
//! machine (replay server included) before any connector work: no sync of
//! this shape can be faster.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::estate::GithubShape;

/// One upstream request of the ceiling.
#[derive(Debug, Clone, PartialEq)]
pub enum Upstream {
    /// `GET` of a path relative to the upstream's base URL.
    Get(String),
    /// `POST /graphql` with this body: a read of manifest blobs.
    Graphql(serde_json::Value),
}

/// The requests of a FULL sync of `shape`, in the order the connector sends
/// them: an organization's listing pages, per repository its tree and SBOM,
/// and per listing page the GraphQL reads of its repositories' manifest
/// blobs (`BLOB_BATCH` at most each, the query the connector builds).
pub fn github_requests(shape: &GithubShape) -> Vec<Upstream> {
    use connectors_server::providers::github::client::{BlobRef, blob_query};
    let mut requests = Vec::new();
    for org in 0..shape.orgs {
        let login = format!("bench-org-{org}");
        requests.push(Upstream::Get(format!(
            "/orgs/{login}/repos?per_page={}",
            shape.page_size
        )));
        for page in 2..=shape.pages_per_org() {
            requests.push(Upstream::Get(format!(
                "/organizations/{}/repos?per_page={}&page={page}",
                crate::estate::org_id(org),
                shape.page_size
            )));
        }
        for page in 0..shape.pages_per_org() {
            let repos = page * shape.page_size..((page + 1) * shape.page_size).min(shape.repos_per_org);
            let mut blobs = Vec::new();
            for repo in repos {
                requests.push(Upstream::Get(format!(
                    "/repos/{login}/repo-{repo}/git/trees/main?recursive=1"
                )));
                let report = crate::estate::sbom_report_id(org, repo);
                for path in [
                    format!("/repos/{login}/repo-{repo}/dependency-graph/sbom/generate-report"),
                    format!("/repos/{login}/repo-{repo}/dependency-graph/sbom/fetch-report/{report}"),
                    format!("/sbom-reports/{report}.json"),
                ] {
                    requests.push(Upstream::Get(path));
                }
                blobs.extend((0..shape.manifests_per_repo).map(|manifest| BlobRef {
                    owner: login.clone(),
                    name: format!("repo-{repo}"),
                    sha: crate::estate::blob_sha(org, repo, manifest),
                }));
            }
            for chunk in blobs.chunks(crate::estate::BLOB_BATCH) {
                requests.push(Upstream::Graphql(blob_query(chunk).0));
            }
        }
    }
    requests
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Fetched {
    /// Requests answered 200.
    pub requests: u64,
    /// Body bytes read.
    pub bytes: u64,
    /// Wall time of all of them.
    pub seconds: f64,
}

/// Sends every request of `shape` to `base` with `concurrency` in flight,
/// from as many tasks (the server spreads its requests over the cores too).
pub async fn fetch(base: &str, shape: &GithubShape, concurrency: usize) -> anyhow::Result<Fetched> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let base = base.trim_end_matches('/').to_owned();
    let paths = Arc::new(github_requests(shape));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (client, base, paths, next) = (client.clone(), base.clone(), paths.clone(), next.clone());
        workers.spawn(async move {
            let (mut requests, mut bytes) = (0u64, 0u64);
            while let Some(request) = paths.get(next.fetch_add(1, Ordering::Relaxed)) {
                let (builder, path) = match request {
                    Upstream::Get(path) => (client.get(format!("{base}{path}")), path.as_str()),
                    Upstream::Graphql(body) => (
                        client
                            .post(format!("{base}/graphql"))
                            .header(http::header::CONTENT_TYPE, "application/json")
                            .body(serde_json::to_vec(body)?),
                        "/graphql",
                    ),
                };
                let response = builder
                    .header(http::header::ACCEPT, "application/vnd.github+json")
                    .header("x-github-api-version", "2022-11-28")
                    .send()
                    .await?;
                let status = response.status();
                let body = response.bytes().await?;
                // The SBOM report's fetch-report redirects to its download,
                // which is a request of its own (as the connector sends it).
                anyhow::ensure!(
                    status.is_success() || status.is_redirection(),
                    "{path}: answered {status}"
                );
                requests += 1;
                bytes += body.len() as u64;
            }
            Ok::<_, anyhow::Error>((requests, bytes))
        });
    }
    let (mut requests, mut bytes) = (0u64, 0u64);
    while let Some(done) = workers.join_next().await {
        let (r, b) = done??;
        requests += r;
        bytes += b;
    }
    Ok(Fetched {
        requests,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requests_are_those_of_a_full_sync() {
        let shape = GithubShape {
            orgs: 2,
            repos_per_org: 150,
            manifests_per_repo: 1,
            page_size: 100,
        };
        let requests = github_requests(&shape);
        assert_eq!(requests.len() as u64, shape.full_requests());
        let get = |path: &str| Upstream::Get(path.to_owned());
        assert_eq!(requests[0], get("/orgs/bench-org-0/repos?per_page=100"));
        assert_eq!(requests[1], get("/organizations/5000/repos?per_page=100&page=2"));
        assert_eq!(requests[2], get("/repos/bench-org-0/repo-0/git/trees/main?recursive=1"));
        assert_eq!(
            requests[3],
            get("/repos/bench-org-0/repo-0/dependency-graph/sbom/generate-report")
        );
        assert_eq!(
            requests[4],
            get("/repos/bench-org-0/repo-0/dependency-graph/sbom/fetch-report/00000000-0000-4000-8000-000000000000")
        );
        assert_eq!(
            requests[5],
            get("/sbom-reports/00000000-0000-4000-8000-000000000000.json")
        );
        // The first page's 100 blobs in one read, after its 100 trees and SBOM reports.
        let Upstream::Graphql(read) = &requests[402] else {
            panic!("not a GraphQL read: {:?}", requests[402]);
        };
        assert_eq!(read["variables"]["o0"], "bench-org-0");
        assert_eq!(read["variables"]["n99"], "repo-99");
        assert_eq!(read["variables"]["s99_0"], crate::estate::blob_sha(0, 99, 0));
        // 2 listing pages + 150 trees + 150 SBOM reports of 3 requests + 2
        // reads per organization.
        assert_eq!(requests[604], get("/orgs/bench-org-1/repos?per_page=100"));
        assert_eq!(requests.len(), 2 * 604);
    }
}
