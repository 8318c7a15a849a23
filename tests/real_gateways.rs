//! nginx, HAProxy and Caddy on loopback as reverse proxies in front of the fault server; the
//! crate's client classifies each gateway's real answer.
//!
//! Needs the Debian packages `nginx-light`, `haproxy`, `caddy` and `apache2`: the tests are
//! `#[ignore]`d (a plain `cargo test` lists them as ignored, with the reason) and run with
//! `cargo test --features full --test real_gateways --test proxy -- --ignored` (as `.ci/run` does), where a missing binary fails
//! the test.

mod support;

use reqwest_resilience::classify::Gateway;
use reqwest_resilience::{Client, ErrorKind, GatewayError};
use std::process::Command;
use std::time::Duration;
use support::process::{Running, binary, free_port, start, temp_dir};
use support::{Fault, FaultServer, refused_url};

/// The upstream cases every gateway is put in front of.
struct Upstreams {
    refused: String,
    reset: FaultServer,
    fin: FaultServer,
    garbage: FaultServer,
    hang: FaultServer,
}

impl Upstreams {
    async fn start() -> Upstreams {
        Upstreams {
            refused: refused_url("")
                .await
                .trim_start_matches("http://")
                .to_owned(),
            reset: FaultServer::start(Fault::Reset).await,
            fin: FaultServer::start(Fault::CloseAfterRequest).await,
            garbage: FaultServer::start(Fault::Garbage).await,
            hang: FaultServer::start(Fault::Hang).await,
        }
    }

    /// `(path, upstream host:port)` for each case; `dns` names a host that cannot resolve.
    fn routes(&self) -> Vec<(&'static str, String)> {
        vec![
            ("refused", self.refused.clone()),
            ("rst", self.reset.addr.to_string()),
            ("fin", self.fin.addr.to_string()),
            ("garbage", self.garbage.addr.to_string()),
            ("hang", self.hang.addr.to_string()),
            ("dns", "no-such-upstream.invalid:80".to_owned()),
        ]
    }
}

fn nginx(up: &Upstreams) -> Running {
    let bin = binary("nginx", &["/usr/sbin/nginx"]);
    let (port, dir) = (free_port(), temp_dir("nginx"));
    let mut locations = String::new();
    for (name, target) in up.routes() {
        if name == "dns" {
            // A variable makes nginx resolve at request time, with the resolver below.
            locations.push_str(&format!(
                "location /{name} {{ set $up \"{target}\"; proxy_pass http://$up; }}\n"
            ));
        } else {
            locations.push_str(&format!(
                "location /{name} {{ proxy_pass http://{target}; }}\n"
            ));
        }
    }
    let d = dir.display();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  proxy_connect_timeout 2s; proxy_read_timeout 2s; proxy_send_timeout 2s;
  proxy_next_upstream off;
  resolver 127.0.0.1:9 valid=1s; resolver_timeout 1s;
  server {{ listen 127.0.0.1:{port}; {locations} }}
}}
"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("write config");
    let mut cmd = Command::new(bin);
    cmd.arg("-p").arg(&dir).arg("-c").arg(&path);
    start(cmd, port, dir)
}

fn haproxy(up: &Upstreams) -> Running {
    let bin = binary("haproxy", &["/usr/sbin/haproxy"]);
    let (port, dir) = (free_port(), temp_dir("haproxy"));
    let mut frontends = String::new();
    let mut backends = String::new();
    for (name, target) in up.routes() {
        frontends.push_str(&format!(
            "  use_backend be_{name} if {{ path_beg /{name} }}\n"
        ));
        backends.push_str(&format!(
            "backend be_{name}\n  server s1 {target} init-addr last,libc,none\n"
        ));
    }
    let conf = format!(
        "global\n  maxconn 200\ndefaults\n  mode http\n  retries 0\n  timeout connect 2s\n  timeout client 30s\n  timeout server 2s\nfrontend fe\n  bind 127.0.0.1:{port}\n{frontends}{backends}"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, conf).expect("write config");
    let mut cmd = Command::new(bin);
    cmd.arg("-db").arg("-f").arg(&path);
    start(cmd, port, dir)
}

fn caddy(up: &Upstreams) -> Running {
    let bin = binary("caddy", &["/usr/bin/caddy"]);
    let (port, dir) = (free_port(), temp_dir("caddy"));
    let mut handles = String::new();
    for (name, target) in up.routes() {
        handles.push_str(&format!(
            "  handle /{name}* {{\n    reverse_proxy {target} {{\n      transport http {{\n        dial_timeout 2s\n        response_header_timeout 2s\n      }}\n    }}\n  }}\n"
        ));
    }
    let conf =
        format!("{{\n  admin off\n  auto_https off\n}}\nhttp://127.0.0.1:{port} {{\n{handles}}}\n");
    let path = dir.join("Caddyfile");
    std::fs::write(&path, conf).expect("write config");
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg("--config")
        .arg(&path)
        .arg("--adapter")
        .arg("caddyfile");
    cmd.env("HOME", &dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"));
    start(cmd, port, dir)
}

fn apache(up: &Upstreams) -> Running {
    let bin = binary("apache2", &["/usr/sbin/apache2"]);
    let (port, dir) = (free_port(), temp_dir("apache"));
    // Apache's workers run as `nobody` and must read the configuration directory.
    let _ = std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755));
    let modules = "/usr/lib/apache2/modules";
    let mut proxies = String::new();
    for (name, target) in up.routes() {
        proxies.push_str(&format!("ProxyPass /{name} http://{target}/\n"));
    }
    let d = dir.display();
    let conf = format!(
        "ServerRoot \"{d}\"\nServerName 127.0.0.1\nListen 127.0.0.1:{port}\nPidFile {d}/httpd.pid\nErrorLog {d}/error.log\n\
         LoadModule mpm_event_module {modules}/mod_mpm_event.so\n\
         LoadModule authz_core_module {modules}/mod_authz_core.so\n\
         LoadModule proxy_module {modules}/mod_proxy.so\n\
         LoadModule proxy_http_module {modules}/mod_proxy_http.so\n\
         User nobody\nGroup nogroup\nProxyTimeout 2\n{proxies}"
    );
    let path = dir.join("httpd.conf");
    std::fs::write(&path, conf).expect("write config");
    let mut cmd = Command::new(bin);
    cmd.arg("-f").arg(&path).arg("-DFOREGROUND");
    start(cmd, port, dir)
}

/// Sends one request per case through the gateway and compares the classification. Cases
/// marked `Transport` are answers a gateway passes through unparsed (nginx relays a
/// non-HTTP answer as HTTP/0.9), which our own transport then classifies.
async fn check(gateway: Running, expected: &[(&str, &[ErrorKind])], hop: Option<Gateway>) {
    // A fresh connection per case: a gateway closing after an error answer must not turn the
    // next case into a reused-connection failure.
    let client = Client::builder()
        .no_retry()
        .attempt_timeout(Duration::from_secs(10))
        .reqwest_builder(reqwest::Client::builder().pool_max_idle_per_host(0))
        .build()
        .unwrap();
    let mut failures = Vec::new();
    for (case, kinds) in expected {
        let url = format!("http://127.0.0.1:{}/{case}", gateway.port());
        match client.get(&url).send().await {
            // An empty list: the gateway passes the upstream's answer on as a success.
            Ok(response) if kinds.is_empty() && response.status().is_success() => {}
            Ok(response) => failures.push(format!(
                "{case}: got {} instead of an error",
                response.status()
            )),
            Err(err) => {
                if !kinds.contains(&err.kind()) {
                    failures.push(format!("{case}: expected {kinds:?}, got {err}"));
                }
                if err.origin() == reqwest_resilience::Origin::Transport
                    && kinds.contains(&InvalidResponse)
                {
                    continue;
                }
                if let Some(hop) = hop {
                    if err.gateway() != Some(hop) {
                        failures.push(format!(
                            "{case}: expected the hop {hop}, got {:?}",
                            err.gateway()
                        ));
                    }
                }
                check_upstream_origin(&err, &mut failures, case);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn check_upstream_origin(err: &GatewayError, failures: &mut Vec<String>, case: &str) {
    if err.origin() != reqwest_resilience::Origin::Upstream || err.response().is_none() {
        failures.push(format!(
            "{case}: not classified from the gateway's response: {err:?}"
        ));
    }
}

use ErrorKind::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the gateway binaries (apt-get install nginx-light haproxy caddy apache2 tinyproxy); run with: cargo test --features full --test real_gateways --test proxy -- --ignored"]
async fn nginx_answers_classify() {
    let up = Upstreams::start().await;
    let gw = nginx(&up);
    let expected: &[(&str, &[ErrorKind])] = &[
        ("refused", &[BadGateway]),
        ("rst", &[BadGateway]),
        ("fin", &[BadGateway]),
        // nginx relays a non-HTTP answer as an HTTP/0.9 body: our transport sees the garbage.
        ("garbage", &[InvalidResponse]),
        ("hang", &[TimedOut]),
        ("dns", &[BadGateway]),
    ];
    check(gw, expected, Some(Gateway::Nginx)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the gateway binaries (apt-get install nginx-light haproxy caddy apache2 tinyproxy); run with: cargo test --features full --test real_gateways --test proxy -- --ignored"]
async fn haproxy_answers_classify() {
    let up = Upstreams::start().await;
    let gw = haproxy(&up);
    let expected: &[(&str, &[ErrorKind])] = &[
        (
            "refused",
            &[NoHealthyServer, ConnectFailed, ServiceUnavailable],
        ),
        ("rst", &[ConnectionClosed]),
        ("fin", &[ConnectionClosed]),
        ("garbage", &[ConnectionClosed]),
        ("hang", &[TimedOut]),
        ("dns", &[NoHealthyServer]),
    ];
    check(gw, expected, Some(Gateway::HaProxy)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the gateway binaries (apt-get install nginx-light haproxy caddy apache2 tinyproxy); run with: cargo test --features full --test real_gateways --test proxy -- --ignored"]
async fn caddy_answers_classify() {
    let up = Upstreams::start().await;
    let gw = caddy(&up);
    let expected: &[(&str, &[ErrorKind])] = &[
        ("refused", &[BadGateway]),
        ("rst", &[BadGateway]),
        ("fin", &[BadGateway]),
        ("garbage", &[BadGateway]),
        ("hang", &[TimedOut]),
        ("dns", &[BadGateway]),
    ];
    check(gw, expected, Some(Gateway::Caddy)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the gateway binaries (apt-get install nginx-light haproxy caddy apache2 tinyproxy); run with: cargo test --features full --test real_gateways --test proxy -- --ignored"]
async fn apache_answers_classify() {
    let up = Upstreams::start().await;
    let gw = apache(&up);
    let expected: &[(&str, &[ErrorKind])] = &[
        // mod_proxy answers a refused backend with its generic 503 page.
        ("refused", &[ServiceUnavailable]),
        ("rst", &[ConnectionClosed]),
        ("fin", &[ConnectionClosed]),
        // Apache relays a non-HTTP answer as an HTTP/0.9 body with status 200: not a failure
        // anyone downstream can see.
        ("garbage", &[]),
        // Its page for a backend that timed out is the same "Error reading from remote server".
        ("hang", &[ConnectionClosed]),
        ("dns", &[NameNotResolved]),
    ];
    check(gw, expected, Some(Gateway::Apache)).await;
}
