//! What the benchmark binaries share: a server run as a child process and
//! measured from `/proc`, and tokens it accepts.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ticketd::auth::{Claims, sign_hs256};

/// The secret the child servers verify tokens with.
pub const SECRET: &str = "bench-secret-bench-secret-bench-secret";

/// A binary next to this one (`cargo build --release` builds them together).
pub fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    Ok(std::env::current_exe()?.with_file_name(name))
}

/// A token for subject `bench` with `role` (and `account`), valid for an hour.
pub fn token(role: &str, account: Option<&str>) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    sign_hs256(SECRET.as_bytes(), &Claims::new("bench", role, account, exp)).unwrap_or_default()
}

/// A server process listening on 127.0.0.1; killed by [`Server::stop`] or on drop.
pub struct Server {
    child: Child,
    pub addr: String,
}

impl Server {
    /// Runs `exe args…` against the database `url`, with `dir` as its data
    /// directory, and waits for the address it logs.
    pub fn start(exe: &Path, args: &[&str], url: &str, dir: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(exe)
            .args(args)
            .env("TICKETD_DATABASE_URL", url)
            .env("TICKETD_JWT_SECRET", SECRET)
            .env("TICKETD_DATA_DIR", dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!(
                    "start {} (build it first: cargo build --release)",
                    exe.display()
                )
            })?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line
                    .find("127.0.0.1:")
                    .filter(|_| line.contains("listening"))
                {
                    let addr = line[at..].split_whitespace().next().unwrap_or("");
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .context("server address")?;
        Ok(Self { child, addr })
    }

    fn status_kb(&self, key: &str) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with(key))
            .with_context(|| format!("no {key} in /proc/<pid>/status"))?;
        Ok(line.split_whitespace().nth(1).context("value")?.parse()?)
    }

    /// Resident memory now (KiB).
    pub fn rss_kb(&self) -> anyhow::Result<u64> {
        self.status_kb("VmRSS:")
    }

    /// Peak resident memory so far (KiB).
    #[allow(dead_code)] // one bench reads only the current RSS
    pub fn hwm_kb(&self) -> anyhow::Result<u64> {
        self.status_kb("VmHWM:")
    }

    /// The process id (for `strace -p`, `perf -p`).
    #[allow(dead_code)] // only the RPC bench prints it
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
