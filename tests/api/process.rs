//! ticketd as a separate process, for what only a process can show: SIGKILL
//! mid-stream, SIGTERM with open streams.
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::Channel;

use crate::helpers::SECRET;

pub struct ServerProcess {
    child: Child,
    pub channel: Channel,
    addr: std::net::SocketAddr,
    /// Every line the server has logged so far.
    log: Arc<Mutex<Vec<String>>>,
    _data_dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts `ticketd serve` on 127.0.0.1:0 against `database_url`.
    pub async fn start(database_url: &str) -> Self {
        Self::start_with_env(database_url, &[]).await
    }

    /// Starts it with these environment variables as well.
    pub async fn start_with_env(database_url: &str, env: &[(&str, &str)]) -> Self {
        let data_dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ticketd"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--drain-timeout",
                "2s",
                "--progress-interval",
                "300ms",
            ])
            .env("TICKETD_DATABASE_URL", database_url)
            .env("TICKETD_JWT_SECRET", std::str::from_utf8(SECRET).unwrap())
            .env("TICKETD_DATA_DIR", data_dir.path())
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ticketd");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(vec![]));
        let kept = log.clone();
        // Read the log until the address shows up, then keep draining it.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line.clone());
                if line.contains("ticketd listening")
                    && let Some(addr) = loopback_addr(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
            .await
            .unwrap()
            .expect("ticketd printed its address");
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("connect");
        Self {
            child,
            channel,
            addr: addr.parse().expect("the logged address"),
            log,
            _data_dir: data_dir,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The loopback address in the first line it logged that contains
    /// `message` (e.g. "metrics listening"), waiting up to 10 s for it.
    pub async fn logged_addr(&self, message: &str) -> std::net::SocketAddr {
        crate::helpers::wait_for(
            &format!("a log line {message:?} with an address"),
            Duration::from_secs(10),
            || async {
                self.log()
                    .iter()
                    .find(|line| line.contains(message))
                    .and_then(|line| loopback_addr(line))
            },
        )
        .await
    }

    /// The lines it has logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit; None if it is still running after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// The first `127.0.0.1:PORT` in a log line, text or JSON.
fn loopback_addr(line: &str) -> Option<std::net::SocketAddr> {
    let at = line.find("127.0.0.1:")?;
    let addr: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    addr.parse().ok()
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
