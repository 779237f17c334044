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

/// The requests of a FULL sync of `shape`, in the order the connector sends
/// them (listing pages of an organization, then per repository its tree,
/// blobs and SBOM), as paths relative to the upstream's base URL.
pub fn github_requests(shape: &GithubShape) -> Vec<String> {
    let mut paths = Vec::new();
    for org in 0..shape.orgs {
        let login = format!("bench-org-{org}");
        paths.push(format!("/orgs/{login}/repos?per_page={}", shape.page_size));
        for page in 2..=shape.pages_per_org() {
            paths.push(format!(
                "/organizations/{}/repos?per_page={}&page={page}",
                crate::estate::org_id(org),
                shape.page_size
            ));
        }
        for repo in 0..shape.repos_per_org {
            paths.push(format!("/repos/{login}/repo-{repo}/git/trees/main?recursive=1"));
            for manifest in 0..shape.manifests_per_repo {
                paths.push(format!(
                    "/repos/{login}/repo-{repo}/git/blobs/{}",
                    crate::estate::blob_sha(org, repo, manifest)
                ));
            }
            paths.push(format!("/repos/{login}/repo-{repo}/dependency-graph/sbom"));
        }
    }
    paths
}

/// What one run of the fetcher measured.
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
            while let Some(path) = paths.get(next.fetch_add(1, Ordering::Relaxed)) {
                let response = client
                    .get(format!("{base}{path}"))
                    .header(http::header::ACCEPT, "application/vnd.github+json")
                    .header("x-github-api-version", "2022-11-28")
                    .send()
                    .await?;
                let status = response.status();
                let body = response.bytes().await?;
                anyhow::ensure!(status.is_success(), "{path}: answered {status}");
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
        let paths = github_requests(&shape);
        assert_eq!(paths.len() as u64, shape.full_requests());
        assert_eq!(paths[0], "/orgs/bench-org-0/repos?per_page=100");
        assert_eq!(paths[1], "/organizations/5000/repos?per_page=100&page=2");
        assert_eq!(paths[2], "/repos/bench-org-0/repo-0/git/trees/main?recursive=1");
        assert!(
            paths[3].starts_with("/repos/bench-org-0/repo-0/git/blobs/"),
            "{}",
            paths[3]
        );
        assert_eq!(paths[4], "/repos/bench-org-0/repo-0/dependency-graph/sbom");
        assert_eq!(paths[452], "/orgs/bench-org-1/repos?per_page=100");
    }
}
