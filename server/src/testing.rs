//! Test support shared by unit and integration tests: a private redis-server
//! on a free loopback port.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where free ports are picked from, up to the ephemeral range.
const FLOOR: u16 = 10_000;

/// The first port of the kernel's ephemeral range (Linux; 32768 elsewhere).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A free TCP port on 127.0.0.1 (bound, then released) for a process that
/// binds it later (a server binary, a redis-server). It is picked at random
/// below the kernel's ephemeral range: the listeners and clients of other
/// tests that bind port 0 (replay servers, connections) get ports from that
/// range, so they cannot take this one between its release and its use (they
/// did: a client then talked to another test's replay server).
pub fn free_port() -> u16 {
    use rand::Rng as _;
    let low = ephemeral_low();
    if low > FLOOR + 1_000 {
        let mut rng = rand::rng();
        for _ in 0..200 {
            let port = rng.random_range(FLOOR..low);
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind an ephemeral loopback port")
}

/// A redis-server started for one test, killed on drop; or the server named by
/// `REDIS_URL` when that is set.
pub struct RedisServer {
    child: Option<Child>,
    url: String,
}

impl RedisServer {
    /// Starts a private redis-server (or uses `REDIS_URL`). When redis-server is
    /// missing, returns `None` so the test can skip, except under `CI=true`
    /// where a missing test dependency is a failure.
    pub fn start_or_skip() -> Option<Self> {
        if let Ok(url) = std::env::var("REDIS_URL") {
            return Some(Self { child: None, url });
        }
        Self::private_or_skip()
    }

    /// Starts a private redis-server even when `REDIS_URL` is set, for a test
    /// that reconfigures its server (`CONFIG SET`) and must not do that to a
    /// shared one; `None` (a skip) as [`RedisServer::start_or_skip`].
    pub fn private_or_skip() -> Option<Self> {
        match Self::start() {
            Ok(server) => Some(server),
            Err(error) => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("redis-server is required under CI=true: {error}");
                }
                eprintln!("skipping: redis-server not available: {error}");
                None
            }
        }
    }

    /// Starts a private redis-server on a free loopback port.
    pub fn start() -> Result<Self, String> {
        Self::start_on(free_port())
    }

    /// Starts it again on the same port after [`RedisServer::kill`] (for outage
    /// tests; a plaintext server, also for one [`RedisServer::start_tls`] started).
    pub fn restart(&mut self) -> Result<(), String> {
        let port: u16 = self
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or("not a server this test started")?;
        let started = Self::start_on(port)?;
        *self = started;
        Ok(())
    }

    fn start_on(port: u16) -> Result<Self, String> {
        Self::spawn(
            &["--port", &port.to_string()],
            port,
            format!("redis://127.0.0.1:{port}"),
        )
    }

    /// Starts a private redis-server that speaks only TLS on a free loopback
    /// port, with the PEM certificate chain `cert` and key `key`. With
    /// `client_ca`, clients must present a certificate that CA signed;
    /// without, they are not asked for one. Its URL is `rediss://127.0.0.1:<port>`.
    pub fn start_tls(
        cert: &std::path::Path,
        key: &std::path::Path,
        client_ca: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        let port = free_port();
        let port_arg = port.to_string();
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        let ca = client_ca.map(|ca| ca.display().to_string());
        let mut args = vec![
            "--port",
            "0",
            "--tls-port",
            &port_arg,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
        ];
        match &ca {
            Some(ca) => args.extend(["--tls-auth-clients", "yes", "--tls-ca-cert-file", ca]),
            None => args.extend(["--tls-auth-clients", "no"]),
        }
        Self::spawn(&args, port, format!("rediss://127.0.0.1:{port}"))
    }

    fn spawn(listen: &[&str], port: u16, url: String) -> Result<Self, String> {
        let child = Command::new("redis-server")
            .args(listen)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("spawn redis-server: {error}"))?;
        let server = Self {
            child: Some(child),
            url,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("redis-server did not listen on port {port}"))
    }

    /// `redis://127.0.0.1:<port>` (`rediss://` for [`RedisServer::start_tls`]).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Kills the server (to test outages); the URL stays valid for a restart.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A moto server (PyPI `moto[server]`) started for one test on a free
/// loopback port, killed on drop. The binary is `CONNECTORS_MOTO_SERVER`
/// (scripts/test installs it into a virtualenv), else `moto_server` on PATH.
pub struct MotoServer {
    child: Child,
    url: String,
}

impl MotoServer {
    /// Starts moto; when it is missing, returns `None` so the test can skip,
    /// except under `CI=true` where a missing test dependency is a failure.
    pub fn start_or_skip() -> Option<Self> {
        match Self::start() {
            Ok(server) => Some(server),
            Err(error) => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("moto_server is required under CI=true: {error}");
                }
                eprintln!("skipping: moto_server not available (run scripts/test to install it): {error}");
                None
            }
        }
    }

    /// Starts moto on a free loopback port and waits until it answers.
    pub fn start() -> Result<Self, String> {
        let binary = std::env::var("CONNECTORS_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let port = free_port();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("spawn {binary}: {error}"))?;
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("{binary} did not listen on port {port}"))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.url.clone()
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_free_port_is_bindable_and_below_the_ephemeral_range() {
        let low = super::ephemeral_low();
        for _ in 0..20 {
            let port = super::free_port();
            assert!((super::FLOOR..low).contains(&port), "{port} not below {low}");
            std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
        }
    }
}
