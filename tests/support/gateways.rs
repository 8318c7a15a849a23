//! Real gateways and a forward proxy on loopback (Debian's nginx, HAProxy, Caddy, Apache and
//! tinyproxy), configured in a temporary directory; the tests that start them are ignored
//! unless run with `-- --ignored`.

use super::process::{Running, binary, free_port, start, temp_dir};
use super::{Fault, FaultServer, refused_url};
use std::process::Command;

/// The upstream cases every gateway is put in front of.
pub struct Upstreams {
    pub refused: String,
    pub reset: FaultServer,
    pub fin: FaultServer,
    pub garbage: FaultServer,
    pub hang: FaultServer,
}

impl Upstreams {
    pub async fn start() -> Upstreams {
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
    pub fn routes(&self) -> Vec<(&'static str, String)> {
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

/// nginx on loopback in front of every upstream case (`/refused`, `/rst`, `/fin`, `/garbage`,
/// `/hang`, `/dns`), with 2 s timeouts toward them.
pub fn nginx(up: &Upstreams) -> Running {
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

/// haproxy on loopback in front of every upstream case (`/refused`, `/rst`, `/fin`, `/garbage`,
/// `/hang`, `/dns`), with 2 s timeouts toward them.
pub fn haproxy(up: &Upstreams) -> Running {
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
    quick_resolver(&mut cmd);
    start(cmd, port, dir)
}

/// caddy on loopback in front of every upstream case (`/refused`, `/rst`, `/fin`, `/garbage`,
/// `/hang`, `/dns`), with 2 s timeouts toward them.
pub fn caddy(up: &Upstreams) -> Running {
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

/// apache on loopback in front of every upstream case (`/refused`, `/rst`, `/fin`, `/garbage`,
/// `/hang`, `/dns`), with 2 s timeouts toward them.
pub fn apache(up: &Upstreams) -> Running {
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
    quick_resolver(&mut cmd);
    start(cmd, port, dir)
}

/// Starts tinyproxy, serving loopback clients, with these extra configuration lines.
pub fn tinyproxy(extra: &str) -> Running {
    tinyproxy_allowing("127.0.0.1", extra)
}

/// Starts tinyproxy serving only clients from `allow`, with these extra configuration lines.
pub fn tinyproxy_allowing(allow: &str, extra: &str) -> Running {
    let bin = binary("tinyproxy", &["/usr/bin/tinyproxy"]);
    let (port, dir) = (free_port(), temp_dir("tinyproxy"));
    let conf = format!(
        "Port {port}\nListen 127.0.0.1\nTimeout 5\nAllow {allow}\nMaxClients 20\nLogLevel Critical\n{extra}\n"
    );
    let path = dir.join("tinyproxy.conf");
    std::fs::write(&path, conf).expect("write config");
    let mut cmd = Command::new(bin);
    cmd.arg("-d").arg("-c").arg(&path);
    start(cmd, port, dir)
}

/// The `/dns` upstream's name is looked up with the system resolver by HAProxy (at start) and
/// Apache (per request): each query to each name server gets one try of a second (instead of
/// glibc's two of five), so that a slow name server can hardly stretch the lookup past the
/// start's or the client's limits.
fn quick_resolver(cmd: &mut Command) {
    cmd.env("RES_OPTIONS", "timeout:1 attempts:1");
}
