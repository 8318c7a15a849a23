//! Recognising which gateway product answered.

use http::{HeaderMap, HeaderName};
use std::fmt;

// Headers that name a product, parsed once: a lookup by `&str` parses the name each time.
pub(crate) const X_SQUID_ERROR: HeaderName = HeaderName::from_static("x-squid-error");
pub(crate) const X_ENVOY_UPSTREAM_SERVICE_TIME: HeaderName =
    HeaderName::from_static("x-envoy-upstream-service-time");
pub(crate) const CF_RAY: HeaderName = HeaderName::from_static("cf-ray");
pub(crate) const X_POWERED_BY: HeaderName = HeaderName::from_static("x-powered-by");
pub(crate) const X_VARNISH: HeaderName = HeaderName::from_static("x-varnish");

/// Which of the headers that name a product a response has, found in one pass over its header
/// names: a 5xx has a handful of headers, and looking each product's header up would hash its
/// name every time (a classification asks for several).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Named {
    pub(crate) server: bool,
    pub(crate) via: bool,
    pub(crate) squid_error: bool,
    pub(crate) cf_ray: bool,
    pub(crate) powered_by: bool,
    pub(crate) varnish: bool,
    /// Any `x-envoy-*` header.
    pub(crate) envoy: bool,
    pub(crate) envoy_service_time: bool,
}

impl Named {
    pub(crate) fn of(headers: &HeaderMap) -> Named {
        let mut named = Named::default();
        for name in headers.keys() {
            if name == http::header::SERVER {
                named.server = true;
            } else if name == http::header::VIA {
                named.via = true;
            } else if name == X_SQUID_ERROR {
                named.squid_error = true;
            } else if name == CF_RAY {
                named.cf_ray = true;
            } else if name == X_POWERED_BY {
                named.powered_by = true;
            } else if name == X_VARNISH {
                named.varnish = true;
            } else if name.as_str().starts_with("x-envoy-") {
                named.envoy = true;
                named.envoy_service_time |= name == X_ENVOY_UPSTREAM_SERVICE_TIME;
            }
        }
        named
    }
}

/// A gateway or proxy product, recognised from its headers or its error page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Gateway {
    /// Microsoft IIS, with or without Application Request Routing.
    Iis,
    /// nginx.
    Nginx,
    /// Envoy (also Istio's and other meshes' sidecars).
    Envoy,
    /// HAProxy.
    HaProxy,
    /// Squid.
    Squid,
    /// Tinyproxy.
    Tinyproxy,
    /// Apache httpd (`mod_proxy`).
    Apache,
    /// Varnish Cache.
    Varnish,
    /// Caddy.
    Caddy,
    /// Cloudflare's edge.
    Cloudflare,
    /// AWS Application Load Balancer.
    AwsAlb,
    /// Google's front end (Google Cloud load balancers, App Engine).
    GoogleFrontEnd,
    /// Azure Application Gateway.
    AzureApplicationGateway,
}

impl Gateway {
    /// The product's name as people write it.
    pub fn name(self) -> &'static str {
        match self {
            Gateway::Iis => "IIS/ARR",
            Gateway::Nginx => "nginx",
            Gateway::Envoy => "Envoy",
            Gateway::HaProxy => "HAProxy",
            Gateway::Squid => "Squid",
            Gateway::Tinyproxy => "Tinyproxy",
            Gateway::Apache => "Apache httpd",
            Gateway::Varnish => "Varnish",
            Gateway::Caddy => "Caddy",
            Gateway::Cloudflare => "Cloudflare",
            Gateway::AwsAlb => "AWS ALB",
            Gateway::GoogleFrontEnd => "Google Front End",
            Gateway::AzureApplicationGateway => "Azure Application Gateway",
        }
    }

    /// The gateway a `Server` header value names.
    pub fn from_server_header(value: &str) -> Option<Gateway> {
        let v = value.to_ascii_lowercase();
        let found = if v.contains("microsoft-azure-application-gateway") {
            Gateway::AzureApplicationGateway
        } else if v.contains("microsoft-iis") {
            Gateway::Iis
        } else if v.contains("cloudflare") {
            Gateway::Cloudflare
        } else if v.contains("envoy") {
            Gateway::Envoy
        } else if v.contains("nginx") || v.contains("openresty") {
            Gateway::Nginx
        } else if v.contains("haproxy") {
            Gateway::HaProxy
        } else if v.contains("squid") {
            Gateway::Squid
        } else if v.contains("tinyproxy") {
            Gateway::Tinyproxy
        } else if v.contains("varnish") {
            Gateway::Varnish
        } else if v.starts_with("apache") {
            Gateway::Apache
        } else if v.contains("caddy") {
            Gateway::Caddy
        } else if v.contains("awselb") {
            Gateway::AwsAlb
        } else if v == "gfe" || v.starts_with("gfe/") || v.contains("google frontend") {
            Gateway::GoogleFrontEnd
        } else {
            return None;
        };
        Some(found)
    }

    /// The gateway the response headers point to: the first `Server` value recognised (the
    /// outermost hop writes its own first), else a product's own header (`X-Squid-Error`,
    /// `CF-Ray`, `X-Powered-By: ARR`, `x-envoy-*`).
    pub fn from_headers(headers: &HeaderMap) -> Option<Gateway> {
        Gateway::from_named(headers, Named::of(headers))
    }

    /// [`from_headers`](Self::from_headers), told which product headers `headers` has.
    pub(crate) fn from_named(headers: &HeaderMap, named: Named) -> Option<Gateway> {
        if named.server {
            let by_server = headers
                .get_all(http::header::SERVER)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(Gateway::from_server_header);
            if by_server.is_some() {
                return by_server;
            }
        }
        if named.squid_error {
            return Some(Gateway::Squid);
        }
        if named.cf_ray {
            return Some(Gateway::Cloudflare);
        }
        let arr = named.powered_by
            && headers
                .get_all(&X_POWERED_BY)
                .iter()
                .any(|v| v.as_bytes().starts_with(b"ARR"));
        if arr {
            return Some(Gateway::Iis);
        }
        if named.envoy {
            return Some(Gateway::Envoy);
        }
        None
    }
}

impl Gateway {
    /// Whether the product is usually deployed as a forward proxy (the client's own proxy)
    /// rather than as a reverse proxy in front of the origin.
    pub fn is_forward_proxy(self) -> bool {
        matches!(self, Gateway::Squid | Gateway::Tinyproxy)
    }
}

impl fmt::Display for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_product_headers_found_in_one_pass_are_those_a_look_up_finds() {
        let cases: &[&[&str]] = &[
            &[],
            &["server", "content-type", "content-length"],
            &["Server", "Via", "X-Squid-Error"],
            &["cf-ray", "x-powered-by", "x-varnish"],
            &["x-envoy-upstream-service-time", "date"],
            &["x-envoy-overloaded"],
            &["x-envoy", "x-envoyx-other", "x-squid-errors", "cf-rays"],
        ];
        for names in cases {
            let mut headers = HeaderMap::new();
            for name in *names {
                headers.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    "v".parse().unwrap(),
                );
            }
            let named = Named::of(&headers);
            let has = |name: &str| headers.contains_key(name);
            assert_eq!(named.server, has("server"), "{names:?}");
            assert_eq!(named.via, has("via"), "{names:?}");
            assert_eq!(named.squid_error, has("x-squid-error"), "{names:?}");
            assert_eq!(named.cf_ray, has("cf-ray"), "{names:?}");
            assert_eq!(named.powered_by, has("x-powered-by"), "{names:?}");
            assert_eq!(named.varnish, has("x-varnish"), "{names:?}");
            assert_eq!(
                named.envoy,
                headers.keys().any(|k| k.as_str().starts_with("x-envoy-")),
                "{names:?}"
            );
            assert_eq!(
                named.envoy_service_time,
                has("x-envoy-upstream-service-time"),
                "{names:?}"
            );
        }
    }
}
