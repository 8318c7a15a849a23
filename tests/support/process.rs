//! Real server processes (gateways, proxies) started by tests on loopback.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running process, stopped by its pid (SIGTERM, then SIGKILL) when dropped.
pub struct Running {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Running {
    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // SIGTERM first: a parent process (Apache's) then stops its workers too.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The first of `paths` that exists. The tests that start gateways are `#[ignore]`d (they
/// show as ignored, with the reason, in a plain `cargo test`); run with `-- --ignored`, a
/// missing binary fails the test instead of letting it pass unseen.
pub fn binary(name: &str, paths: &[&str]) -> PathBuf {
    match paths.iter().map(PathBuf::from).find(|p| p.exists()) {
        Some(found) => found,
        None => panic!(
            "{name} is not installed (apt-get install nginx-light haproxy caddy apache2 tinyproxy)"
        ),
    }
}

/// A loopback port for a process to listen on: free right now, never handed out before in
/// this test process, and, where the system allows, below the range the kernel picks ports
/// from for `bind(0)` and outgoing connections. Between this check and the process's own
/// `bind`, nothing the tests run beside it (wiremock, fault servers, connections) can then be
/// given the same port.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let below = ephemeral_low().filter(|low| *low > 12_000);
    for n in 0u64..10_000 {
        let port = match below {
            // Ports from 10,000 up to the kernel's range, in an order of this process's own.
            Some(low) => 10_000 + (spread(n) % u64::from(low - 10_000)) as u16,
            None => {
                let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
                l.local_addr().expect("addr").port()
            }
        };
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free loopback port found")
}

/// The low end of the kernel's range of automatically chosen ports (Linux).
fn ephemeral_low() -> Option<u16> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    range.split_whitespace().next()?.parse().ok()
}

/// The `n`th of a sequence that differs from one test process to the next.
fn spread(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static SEED: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut hasher = SEED.get_or_init(Default::default).build_hasher();
    hasher.write_u64(n);
    hasher.finish()
}

/// A fresh directory for one process's configuration and logs.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rr-{tag}-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Starts `command` (its stderr kept in `dir/stderr.log`) and waits until it listens on `port`.
pub fn start(mut command: Command, port: u16, dir: PathBuf) -> Running {
    let log = dir.join("stderr.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    command.stdout(Stdio::null()).stderr(log_file);
    let child = command.spawn().expect("start the process");
    let running = Running { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(15);
    // A connection whose own port is `port` is TCP's self-connect, not the process listening.
    let listening = || {
        TcpStream::connect(("127.0.0.1", port))
            .is_ok_and(|s| s.local_addr().is_ok_and(|a| a.port() != port))
    };
    while !listening() {
        assert!(
            Instant::now() < deadline,
            "the process did not listen on {port}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    running
}
