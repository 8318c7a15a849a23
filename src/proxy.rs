//! Which forward proxy, if any, a request goes through: what the diagnosis needs to tell a
//! proxy's failure from a failure behind it.

use reqwest::Url;

/// The forward proxies a client uses, by scheme, with the hosts exempted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProxyMap {
    http: Option<String>,
    https: Option<String>,
    no_proxy: Vec<String>,
}

impl ProxyMap {
    /// One proxy for every scheme; `None` when `url` is not a usable proxy URL.
    pub(crate) fn all(url: &str) -> Option<ProxyMap> {
        let shown = display(url)?;
        Some(ProxyMap {
            http: Some(shown.clone()),
            https: Some(shown),
            no_proxy: Vec::new(),
        })
    }

    /// The proxies the environment names (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, lower or
    /// upper case, and `NO_PROXY`), as reqwest's system proxy reads them.
    pub(crate) fn from_env() -> Option<ProxyMap> {
        let var = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
        };
        let all = var(&["ALL_PROXY", "all_proxy"]);
        let http = var(&["HTTP_PROXY", "http_proxy"]).or_else(|| all.clone());
        let https = var(&["HTTPS_PROXY", "https_proxy"]).or(all);
        let map = ProxyMap {
            http: http.as_deref().and_then(display),
            https: https.as_deref().and_then(display),
            no_proxy: var(&["NO_PROXY", "no_proxy"])
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_ascii_lowercase())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        };
        (map.http.is_some() || map.https.is_some()).then_some(map)
    }

    /// The proxy (scheme, host and port, no credentials) a request to `url` goes through.
    pub(crate) fn for_url(&self, url: &Url) -> Option<&str> {
        let proxy = match url.scheme() {
            "http" | "ws" => self.http.as_deref(),
            "https" | "wss" => self.https.as_deref(),
            _ => None,
        }?;
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        let exempt = self.no_proxy.iter().any(|rule| {
            rule == "*" || {
                let rule = rule.trim_start_matches('.');
                host == rule || host.ends_with(&format!(".{rule}"))
            }
        });
        (!exempt).then_some(proxy)
    }
}

impl std::fmt::Display for ProxyMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.http, &self.https) {
            (Some(a), Some(b)) if a == b => f.write_str(a),
            (http, https) => write!(
                f,
                "http: {}, https: {}",
                http.as_deref().unwrap_or("none"),
                https.as_deref().unwrap_or("none")
            ),
        }
    }
}

fn display(url: &str) -> Option<String> {
    let parsed = Url::parse(url.trim()).ok()?;
    let host = parsed.host_str()?;
    Some(match parsed.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}", parsed.scheme()),
        None => format!("{}://{host}", parsed.scheme()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_exempts_hosts_and_subdomains() {
        let mut map = ProxyMap::all("http://user:pw@proxy.test:3128").unwrap();
        map.no_proxy = vec!["internal.test".into(), ".corp.test".into()];
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            map.for_url(&url("http://a.example/")),
            Some("http://proxy.test:3128")
        );
        assert_eq!(map.for_url(&url("http://internal.test/")), None);
        assert_eq!(map.for_url(&url("https://x.corp.test/")), None);
    }
}
