//! The `probe` example's output against local failing servers.

mod support;

use std::path::PathBuf;
use std::process::Command;
use support::{Fault, FaultServer, refused_url};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The built `probe` example, (re)built when it is missing or older than the crate's sources
/// (a test run alone does not build examples: a stale binary would test old code), with the
/// features this test was built with.
fn probe_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_probe).clone()
}

fn build_probe() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let binary = profile_dir.join("examples").join("probe");
    let built = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let stale = match built {
        None => true,
        Some(built) => {
            newer_than(&root.join("src"), built)
                || newer_than(&root.join("examples/probe.rs"), built)
                || newer_than(&root.join("Cargo.toml"), built)
        }
    };
    if stale {
        let features: Vec<&str> = [
            ("full", cfg!(feature = "full")),
            ("native-tls", cfg!(feature = "native-tls")),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--example",
                "probe",
                "--features",
                &features.join(","),
            ])
            .current_dir(root)
            .status()
            .expect("cargo build --example probe");
        assert!(status.success());
    }
    binary
}

/// Whether `path` (a file, or any file under a directory) was modified after `than`.
fn newer_than(path: &std::path::Path, than: std::time::SystemTime) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if meta.is_dir() {
        return std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .any(|entry| newer_than(&entry.path(), than));
    }
    meta.modified().is_ok_and(|modified| modified > than)
}

/// Runs the probe in a blocking thread (the servers under test live on this runtime).
async fn probe(args: Vec<String>) -> (i32, String) {
    let binary = probe_binary();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(binary)
            .args(&args)
            .output()
            .expect("run probe");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn refused_server() {
    let url = refused_url("/orders?token=s3cret").await;
    let (code, out) = probe(vec![url, "--deadline".into(), "5".into()]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("attempt 1: GET http://127.0.0.1:"), "{out}");
    assert!(out.contains("attempt 3:"), "{out}");
    assert!(out.contains("error connect_failed"), "{out}");
    assert!(
        out.contains("result: 502.3 could not connect: connection refused"),
        "{out}"
    );
    assert!(out.contains("diagnosis: Reported by this client's own connection. Likely cause: backend misconfiguration."), "{out}");
    assert!(!out.contains("s3cret"), "{out}");
}

#[tokio::test]
async fn gateway_page() {
    let mock = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(
            ResponseTemplate::new(502)
                .insert_header("server", "Microsoft-IIS/10.0")
                .set_body_string("<h3>HTTP Error 502.3 - Bad Gateway</h3><td>0x80072efd</td>"),
        )
        .mount(&mock)
        .await;
    let (code, out) = probe(vec![mock.uri()]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("Reported by the gateway in front of the server (IIS/ARR)"),
        "{out}"
    );
    assert!(out.contains("HRESULT 0x80072efd (cannot connect)"), "{out}");
}

#[tokio::test]
async fn fallback_and_healthy_servers() {
    let dead = refused_url("").await;
    let healthy = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&healthy)
        .await;
    let (code, out) = probe(vec![
        format!("{dead}/x"),
        "--fallback".into(),
        healthy.uri(),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("server #0:") && out.contains("server #1:"),
        "{out}"
    );
    assert!(out.contains("result: 200 OK"), "{out}");
}

#[tokio::test]
async fn reset_and_bad_arguments() {
    let reset = FaultServer::start(Fault::Reset).await;
    let (code, out) = probe(vec![reset.url("/")]).await;
    assert_eq!(code, 1);
    assert!(
        out.contains("Likely cause: temporary upstream outage"),
        "{out}"
    );
    let (code, out) = probe(vec![]).await;
    assert_eq!(code, 2);
    assert!(out.contains("usage: probe URL"), "{out}");
}
