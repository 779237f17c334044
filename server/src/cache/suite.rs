//! The cache test suite, run against every backend the same way.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::Cache;

/// Runs every cache behaviour check against `cache`. Keys are namespaced by
/// `ns` so that runs on a shared backend do not see each other.
pub(crate) async fn run(cache: Arc<dyn Cache>, ns: &str) {
    let key = |k: &str| format!("{ns}:{k}");

    // Miss, set, hit, overwrite, delete.
    assert_eq!(cache.get(&key("a")).await.unwrap(), None);
    cache.set(&key("a"), Bytes::from_static(b"one"), None).await.unwrap();
    assert_eq!(cache.get(&key("a")).await.unwrap(), Some(Bytes::from_static(b"one")));
    cache.set(&key("a"), Bytes::from_static(b"two"), None).await.unwrap();
    assert_eq!(cache.get(&key("a")).await.unwrap(), Some(Bytes::from_static(b"two")));
    cache.delete(&key("a")).await.unwrap();
    assert_eq!(cache.get(&key("a")).await.unwrap(), None);
    cache.delete(&key("never-set")).await.unwrap();

    // Binary values round-trip unchanged.
    let binary = Bytes::from((0u8..=255).collect::<Vec<u8>>());
    cache.set(&key("bin"), binary.clone(), None).await.unwrap();
    assert_eq!(cache.get(&key("bin")).await.unwrap(), Some(binary));

    // set_if_absent: first wins, the value is not replaced.
    assert!(
        cache
            .set_if_absent(&key("lease"), Bytes::from_static(b"first"), Duration::from_secs(30))
            .await
            .unwrap()
    );
    assert!(
        !cache
            .set_if_absent(&key("lease"), Bytes::from_static(b"second"), Duration::from_secs(30))
            .await
            .unwrap()
    );
    assert_eq!(
        cache.get(&key("lease")).await.unwrap(),
        Some(Bytes::from_static(b"first"))
    );

    // Time to live: gone after it passes, and set_if_absent works again.
    cache
        .set(&key("ttl"), Bytes::from_static(b"x"), Some(Duration::from_millis(150)))
        .await
        .unwrap();
    assert!(
        cache
            .set_if_absent(&key("lease-ttl"), Bytes::from_static(b"a"), Duration::from_millis(150))
            .await
            .unwrap()
    );
    assert_eq!(cache.get(&key("ttl")).await.unwrap(), Some(Bytes::from_static(b"x")));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(cache.get(&key("ttl")).await.unwrap(), None);
    assert!(
        cache
            .set_if_absent(&key("lease-ttl"), Bytes::from_static(b"b"), Duration::from_secs(30))
            .await
            .unwrap()
    );
    assert_eq!(
        cache.get(&key("lease-ttl")).await.unwrap(),
        Some(Bytes::from_static(b"b"))
    );

    // expire: shortens a key's life and keeps its value; 0 removes it; an
    // absent key stays absent.
    cache
        .set(
            &key("old"),
            Bytes::from_static(b"state"),
            Some(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    cache
        .set(&key("older"), Bytes::from_static(b"state"), None)
        .await
        .unwrap();
    cache
        .set(&key("gone"), Bytes::from_static(b"state"), None)
        .await
        .unwrap();
    assert!(cache.expire(&key("old"), Duration::from_millis(150)).await.unwrap());
    assert!(cache.expire(&key("older"), Duration::from_millis(150)).await.unwrap());
    assert!(cache.expire(&key("gone"), Duration::ZERO).await.unwrap());
    assert!(!cache.expire(&key("never-set"), Duration::from_secs(1)).await.unwrap());
    assert_eq!(
        cache.get(&key("old")).await.unwrap(),
        Some(Bytes::from_static(b"state"))
    );
    assert_eq!(cache.get(&key("gone")).await.unwrap(), None);
    assert_eq!(cache.get(&key("never-set")).await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(cache.get(&key("old")).await.unwrap(), None);
    assert_eq!(cache.get(&key("older")).await.unwrap(), None);

    // Concurrent set_if_absent on one key: exactly one winner.
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let cache = cache.clone();
        let k = key("race");
        tasks.push(tokio::spawn(async move {
            cache
                .set_if_absent(&k, Bytes::from(vec![i]), Duration::from_secs(30))
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for task in tasks {
        if task.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn memory_backend_passes_the_suite() {
    run(Arc::new(super::MemoryCache::new(16 * 1024 * 1024)), "suite").await;
}

#[tokio::test]
async fn memory_backend_stays_within_its_bound() {
    let cache = super::MemoryCache::new(64 * 1024);
    for i in 0..1000 {
        cache
            .set(&format!("k{i}"), Bytes::from(vec![0u8; 1024]), None)
            .await
            .unwrap();
    }
    let mut present = 0;
    for i in 0..1000 {
        if cache.get(&format!("k{i}")).await.unwrap().is_some() {
            present += 1;
        }
    }
    // 64 KiB holds at most 59 entries of 1 KiB plus overhead; moka evicts asynchronously,
    // so allow its pending work but never anything near the 1000 inserted.
    assert!(present <= 80, "{present} entries kept in a 64 KiB cache");
}

#[tokio::test]
async fn memory_backend_keeps_sync_state_when_bodies_fill_it() {
    // A full cache of conditional-request bodies, each looked up again (as
    // every sync does), must not keep out or evict the state a sync writes.
    let cache = super::MemoryCache::new(256 * 1024);
    for round in 0..3 {
        for i in 0..1000 {
            let key = format!("http:v2:github:{i:064x}");
            if cache.get(&key).await.unwrap().is_none() {
                cache.set(&key, Bytes::from(vec![round; 1024]), None).await.unwrap();
            }
        }
    }
    let state = Bytes::from(vec![7u8; 4096]);
    cache.set("state:v1:github:f:s:g1", state.clone(), None).await.unwrap();
    cache
        .set("checkpoint:v1:github:nightly", Bytes::from_static(b"token"), None)
        .await
        .unwrap();
    for i in 0..1000 {
        let key = format!("http:v2:github:{i:064x}");
        if cache.get(&key).await.unwrap().is_none() {
            cache.set(&key, Bytes::from(vec![9; 1024]), None).await.unwrap();
        }
    }
    let kept = cache.get("state:v1:github:f:s:g1").await.unwrap();
    assert!(kept == Some(state), "state of {:?} bytes kept", kept.map(|b| b.len()));
    assert_eq!(
        cache.get("checkpoint:v1:github:nightly").await.unwrap(),
        Some(Bytes::from_static(b"token"))
    );
}

#[tokio::test]
async fn redis_backend_passes_the_suite() {
    let Some(redis) = crate::testing::RedisServer::start_or_skip() else {
        return;
    };
    let cache = super::RedisCache::new(&redis.url(), "suite-test:").unwrap();
    run(Arc::new(cache), &uuid::Uuid::new_v4().to_string()).await;
}

#[tokio::test]
async fn shared_cache_degrades_to_misses_when_redis_is_down() {
    // A port nothing listens on.
    let port = crate::testing::free_port();
    let cache = super::SharedCache::new(Arc::new(
        super::RedisCache::new(&format!("redis://127.0.0.1:{port}"), "x:").unwrap(),
    ));
    assert_eq!(cache.get("k").await, None);
    assert!(cache.is_degraded());
    assert!(!cache.set("k", Bytes::from_static(b"v"), None).await);
}

#[tokio::test]
async fn a_redis_that_refuses_a_write_still_serves_reads() {
    // A server of its own: `maxmemory 1` would fill a shared one (REDIS_URL)
    // for every other test.
    let Some(redis) = crate::testing::RedisServer::private_or_skip() else {
        return;
    };
    // Full: Redis's own default policy refuses writes with OOM rather than
    // evicting anything.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let cache = super::SharedCache::new(Arc::new(super::RedisCache::new(&redis.url(), "oom:").unwrap()));
    assert!(cache.set("state", Bytes::from_static(b"kept"), None).await);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query_async(&mut admin)
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(
        !cache.set("body", Bytes::from(vec![7u8; 64 << 10]), None).await,
        "refused: out of memory"
    );
    // The refusal is not an outage: the next read goes to Redis, and finds
    // what it holds.
    assert_eq!(cache.get("state").await, Some(Bytes::from_static(b"kept")));
    assert!(!cache.is_degraded());
}

#[tokio::test]
async fn operations_queued_behind_a_failed_connection_attempt_fail_at_once() {
    // A "Redis" that takes connections and never answers (a failover's
    // half-open address, a firewall that drops replies).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let cache = Arc::new(super::RedisCache::new(&format!("redis://{addr}"), "x:").unwrap());
    let started = std::time::Instant::now();
    let gets: Vec<_> = (0..10)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get(&format!("k{i}")).await })
        })
        .collect();
    for get in gets {
        assert!(matches!(get.await.unwrap(), Err(super::CacheError::Unavailable(_))));
    }
    // One attempt's timeout (3 s at most), not ten of them one after another.
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
}

#[tokio::test]
async fn a_connection_left_half_open_by_a_failover_is_replaced_after_a_timeout() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let Some(redis) = crate::testing::RedisServer::start_or_skip() else {
        return;
    };
    let mut url = url::Url::parse(&redis.url()).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(6379));
    // A proxy standing for the address clients use. Connections accepted
    // before the "failover" (number < `cut`) go silent: what the client sends
    // still arrives, but no reply ever comes back and nothing resets the
    // socket. Connections made after it are forwarded as usual.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = proxy.local_addr().unwrap();
    let cut = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    {
        let (cut, accepted) = (cut.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = proxy.accept().await {
                let number = accepted.fetch_add(1, Ordering::SeqCst);
                let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move { tokio::io::copy(&mut client_read, &mut server_write).await });
                let cut = cut.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 16 << 10];
                    while let Ok(n) = server_read.read(&mut buffer).await {
                        if n == 0 {
                            break;
                        }
                        if number >= cut.load(Ordering::SeqCst) && client_write.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
    }
    url.set_port(Some(addr.port())).unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    let cache = super::RedisCache::new(url.as_str(), "failover:").unwrap();
    cache.set("k", Bytes::from_static(b"v"), None).await.unwrap();
    // One connection, or two when the machine is so loaded that the
    // manager's first attempt timed out and it tried again.
    let before = accepted.load(Ordering::SeqCst);
    assert!((1..=2).contains(&before), "{before}");

    cut.store(before, Ordering::SeqCst);
    assert!(
        matches!(cache.get("k").await, Err(super::CacheError::Unavailable(_))),
        "no reply on the half-open connection"
    );
    // The next operation connects anew instead of waiting on the dead one.
    assert_eq!(cache.get("k").await.unwrap(), Some(Bytes::from_static(b"v")));
    assert_eq!(accepted.load(Ordering::SeqCst), before + 1);
}
