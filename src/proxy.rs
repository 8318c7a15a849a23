//! Which forward proxy, if any, a request goes through: what the diagnosis needs to tell a
//! proxy's failure from a failure behind it.
//!
//! The decision is made by the same code reqwest 0.13 uses, `hyper_util`'s proxy [`Matcher`]:
//! the same environment variables (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, lower
//! or upper case; the platform's settings with the `system-proxy` feature), the same `NO_PROXY`
//! rules (host names, subdomains, IP addresses and CIDR ranges, `*`), and a proxy given without
//! a scheme taken as `http://`, as reqwest takes it.

use hyper_util::client::proxy::matcher::Matcher;
use reqwest::Url;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// The forward proxies a client uses.
pub(crate) struct ProxyMap {
    matcher: Matcher,
    /// What `Display` shows: the proxy's scheme, host and port, or where the rules came from.
    shown: String,
    /// What `for_url` found, by host (see `host::key`): asked on every failed attempt, and the
    /// matcher's answer needs a URI built and the `NO_PROXY` rules run. The rules never change
    /// once read, so an answer stays true; at most `SEEN_MAX` hosts are kept.
    seen: Mutex<HashMap<u64, Option<String>>>,
    /// The settings read name no proxy at all (no proxy variable in the environment, on a
    /// platform whose system settings are not read): no URL has one, and `for_url` says so
    /// without a look-up.
    none: bool,
}

/// How many hosts' answers a [`ProxyMap`] keeps.
const SEEN_MAX: usize = 64;

impl std::fmt::Debug for ProxyMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the matcher's own `Debug`: it would show the proxies' credentials.
        f.debug_tuple("ProxyMap").field(&self.shown).finish()
    }
}

impl ProxyMap {
    /// One proxy for every scheme, as `reqwest::Proxy::all(url)` sets it; `None` when `url` is
    /// not a usable proxy URL.
    pub(crate) fn all(url: &str) -> Option<ProxyMap> {
        let url = proxy_url(url)?;
        let shown = display_url(&url)?;
        Some(ProxyMap {
            matcher: Matcher::builder().all(String::from(url)).build(),
            shown,
            seen: Mutex::default(),
            none: false,
        })
    }

    /// The proxies reqwest's client uses when none is configured on it: the environment and,
    /// with the `system-proxy` feature (or any crate in the build that turns on `hyper-util`'s
    /// `client-proxy-system`), the platform's settings on macOS and Windows (possibly none:
    /// then no URL has a proxy).
    pub(crate) fn from_system() -> ProxyMap {
        // Read at the same time as the matcher reads them.
        let none = !reads_system_settings() && names_no_proxy(|name| std::env::var(name).ok());
        ProxyMap {
            matcher: Matcher::from_system(),
            shown: "the environment's proxies".to_owned(),
            seen: Mutex::default(),
            none,
        }
    }

    /// The proxy (scheme, host and port, no credentials) a request to `url` goes through.
    pub(crate) fn for_url(&self, url: &Url) -> Option<String> {
        if self.none {
            return None;
        }
        let host = crate::host::key(url);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = seen.get(&host) {
            return found.clone();
        }
        let found = self.intercept(url);
        if seen.len() < SEEN_MAX {
            seen.insert(host, found.clone());
        }
        found
    }

    fn intercept(&self, url: &Url) -> Option<String> {
        let scheme = match url.scheme() {
            "http" | "ws" => "http",
            "https" | "wss" => "https",
            _ => return None,
        };
        let host = url.host_str()?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let uri = http::Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query("/")
            .build()
            .ok()?;
        let intercept = self.matcher.intercept(&uri)?;
        display_uri(intercept.uri())
    }
}

/// Whether the matcher may also read the platform's proxy settings: `Matcher::from_system`
/// does on macOS and Windows when `hyper-util`'s `client-proxy-system` feature is on, which
/// any crate in the build may turn on (reqwest's default features do), not only this crate's
/// `system-proxy`.
fn reads_system_settings() -> bool {
    cfg!(any(target_os = "macos", windows))
}

/// Whether the environment, as `hyper_util`'s matcher reads it (the first of each pair that is
/// set, upper case first), names no proxy: `ALL_PROXY`, `HTTP_PROXY` and `HTTPS_PROXY` are all
/// unset or empty. (A value that does not parse names none either; it is left to the matcher.)
fn names_no_proxy(env: impl Fn(&str) -> Option<String>) -> bool {
    [
        ["ALL_PROXY", "all_proxy"],
        ["HTTP_PROXY", "http_proxy"],
        ["HTTPS_PROXY", "https_proxy"],
    ]
    .iter()
    .all(|pair| {
        pair.iter()
            .find_map(|name| env(name))
            .is_none_or(|value| value.is_empty())
    })
}

impl std::fmt::Display for ProxyMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// The proxy URL as reqwest reads it: as given when it parses with a host, else with `http://`
/// in front (`127.0.0.1:3128`, `proxy.test:3128`).
fn proxy_url(given: &str) -> Option<Url> {
    let given = given.trim();
    match Url::parse(given) {
        Ok(url) if url.has_host() => Some(url),
        _ => Url::parse(&format!("http://{given}"))
            .ok()
            .filter(Url::has_host),
    }
}

fn display_url(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

fn display_uri(uri: &http::Uri) -> Option<String> {
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host()?;
    let port = uri.port_u16().or(match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "socks4" | "socks4a" | "socks5" | "socks5h" => Some(1080),
        _ => None,
    });
    Some(match port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_names_no_proxy_only_when_no_proxy_variable_has_a_value() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(names_no_proxy(env(&[])));
        assert!(names_no_proxy(env(&[
            ("NO_PROXY", "*"),
            ("HTTP_PROXY", "")
        ])));
        assert!(!names_no_proxy(env(&[("HTTP_PROXY", "http://p:3128")])));
        assert!(!names_no_proxy(env(&[("https_proxy", "http://p:3128")])));
        assert!(!names_no_proxy(env(&[("all_proxy", "socks5://p")])));
        // The upper-case name is read first, as the matcher reads it: set and empty, it hides
        // the lower-case one.
        assert!(names_no_proxy(env(&[
            ("HTTP_PROXY", ""),
            ("http_proxy", "http://p")
        ])));
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn one_proxy_for_every_scheme_without_credentials() {
        let map = ProxyMap::all("http://user:pw@proxy.test:3128").unwrap();
        assert_eq!(
            map.for_url(&url("http://a.example/")).as_deref(),
            Some("http://proxy.test:3128")
        );
        assert_eq!(
            map.for_url(&url("https://a.example/")).as_deref(),
            Some("http://proxy.test:3128")
        );
        assert!(!format!("{map:?} {map}").contains("pw"));
    }

    #[test]
    fn answers_kept_per_host_stay_each_hosts_own() {
        let map = ProxyMap {
            matcher: Matcher::builder()
                .all("http://proxy.test:3128".to_owned())
                .no("direct.example".to_owned())
                .build(),
            shown: String::new(),
            seen: Mutex::default(),
            none: false,
        };
        let proxied = Some("http://proxy.test:3128".to_owned());
        // Asked twice each (the second answer is the kept one), and past the number kept.
        for round in 0..2 {
            assert_eq!(map.for_url(&url("http://direct.example/")), None, "{round}");
            assert_eq!(map.for_url(&url("http://a.example/")), proxied, "{round}");
            assert_eq!(map.for_url(&url("ftp://a.example/")), None, "{round}");
            for n in 0..SEEN_MAX + 8 {
                let other = url(&format!("http://h{n}.example:{}/", 1000 + n));
                assert_eq!(map.for_url(&other), proxied, "{round} {n}");
            }
        }
        assert_eq!(map.seen.lock().unwrap().len(), SEEN_MAX);
    }

    #[test]
    fn a_proxy_without_a_scheme_is_http_as_reqwest_reads_it() {
        for given in ["127.0.0.1:3128", "proxy.test:3128"] {
            let map = ProxyMap::all(given).unwrap();
            let host = given.split(':').next().unwrap();
            assert_eq!(
                map.for_url(&url("http://a.example/")),
                Some(format!("http://{host}:3128"))
            );
        }
        assert!(ProxyMap::all("").is_none());
    }
}
