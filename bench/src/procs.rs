//! Child processes of the benchmark: the server (this binary's `serve`
//! subcommand, which runs exactly what the `connectors-server` binary runs),
//! the bare tonic server, and Redis.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use connectors_client::{ConnectorsClient, ResumePolicy};

pub use connectors_server::testing::free_port;

/// A child process, killed when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    /// Its gRPC address.
    pub addr: SocketAddr,
}

impl Process {
    /// Spawns this binary with `args` and exactly `env` (plus PATH, HOME and MIMALLOC_*),
    /// logging to `log`.
    pub fn spawn_self(args: &[&str], env: &[(String, String)], addr: SocketAddr, log: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut command = Command::new(exe);
        command.args(args).env_clear();
        for name in ["PATH", "HOME"] {
            if let Ok(value) = std::env::var(name) {
                command.env(name, value);
            }
        }
        // Allocator settings reach the server too, for experiments.
        command.envs(std::env::vars().filter(|(name, _)| name.starts_with("MIMALLOC_")));
        command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let log = std::fs::File::create(log)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(Self { child, addr })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        status_kib(self.pid(), "VmHWM:").map(|kib| kib * 1024)
    }

    /// CPU time used so far (user and system, all threads), in seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(self.pid())
    }

    /// Resident set size now (VmRSS), in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        status_kib(self.pid(), "VmRSS:").map(|kib| kib * 1024)
    }

    /// Connects a client (no resume: a broken stream is a failed measurement),
    /// waiting until the process listens.
    pub async fn client(&mut self) -> anyhow::Result<ConnectorsClient> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("child process exited with {status} before listening");
            }
            if let Ok(client) = ConnectorsClient::connect(format!("http://{}", self.addr)).await {
                return Ok(client.with_resume_policy(ResumePolicy::never()));
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "child process did not listen on {}",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .ok_or_else(|| anyhow::anyhow!("{field} not in /proc/{pid}/status"))?;
    Ok(line
        .trim_start_matches(field)
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?)
}

/// Where the benchmark writes logs and figures.
pub fn work_dir(out: &Path) -> PathBuf {
    out.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// CPU time process `pid` used so far (user and system, all threads), in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) end in ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of proc(5), 12 and 13 after the name.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/stat has no field {i}"))?
            .parse::<f64>()?)
    };
    // /proc reports times in clock ticks (`sysconf(_SC_CLK_TCK)`).
    Ok((ticks(11)? + ticks(12)?) / rustix::param::clock_ticks_per_second() as f64)
}
