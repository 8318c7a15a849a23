//! What an error means for the person who has to fix it: which hop failed, the likely cause,
//! and what to check.
//!
//! [`GatewayError::diagnosis`](crate::GatewayError::diagnosis) answers with a [`Diagnosis`],
//! following the usual 502 guidance:
//!
//! | likely cause | what to check |
//! |---|---|
//! | network connectivity | firewalls, routing and DNS between the hop and the server |
//! | temporary upstream outage | wait and retry, or contact the provider |
//! | proxy misconfiguration | the proxy's settings: address, credentials, access rules, upstream address |
//! | backend misconfiguration | that the application servers are configured and running |
//! | DNS | the host name and the resolver of the machine that failed to resolve it |
//! | firewall | a firewall or security group dropping connections to that address and port |
//! | overload | the server's capacity: it answered that it cannot take the request now |
//!
//! Its `Display` is a short paragraph for a log line or a terminal; like the errors, it never
//! contains credentials or query strings.
//!
//! ```
//! use reqwest_resilience::{ErrorKind, GatewayError};
//! use reqwest_resilience::diagnosis::LikelyCause;
//!
//! let err = GatewayError::new(ErrorKind::TimedOut, "no answer in 2s");
//! let diagnosis = err.diagnosis();
//! assert_eq!(diagnosis.cause(), LikelyCause::UpstreamOutage);
//! println!("{diagnosis}");
//! ```

mod rules;

use crate::gateway::Gateway;
use std::borrow::Cow;
use std::fmt;

/// The hop that reported the failure.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Hop {
    /// This crate's own connection to the server (no proxy in between, or a local policy).
    OwnTransport,
    /// The forward proxy the client is configured to use (scheme, host and port), with the
    /// product when recognised.
    ForwardProxy {
        /// The proxy's address, without credentials.
        address: Option<String>,
        /// The proxy product, when recognised from its answer.
        product: Option<Gateway>,
    },
    /// A reverse proxy or gateway in front of the origin, named when recognised.
    Gateway(Option<Gateway>),
    /// The origin server itself.
    Origin,
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hop::OwnTransport => f.write_str("this client's own connection"),
            Hop::ForwardProxy { address, product } => {
                f.write_str("the forward proxy")?;
                if let Some(product) = product {
                    write!(f, " ({product})")?;
                }
                if let Some(address) = address {
                    write!(f, " at {address}")?;
                }
                Ok(())
            }
            Hop::Gateway(Some(gateway)) => {
                write!(f, "the gateway in front of the server ({gateway})")
            }
            Hop::Gateway(None) => f.write_str("a gateway in front of the server"),
            Hop::Origin => f.write_str("the origin server"),
        }
    }
}

/// The likely cause, among the classic ones of the 502 guidance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LikelyCause {
    /// Firewalls, routing, DNS: the network between a hop and the server.
    NetworkConnectivity,
    /// The upstream is down, restarting or overloaded for now.
    UpstreamOutage,
    /// The proxy is unreachable, misaddressed, demands credentials, or refuses the request.
    ProxyMisconfiguration,
    /// The application servers are not configured or not running as the hop expects.
    BackendMisconfiguration,
    /// This machine could not resolve the server's host name: the name is wrong or the
    /// resolver fails. (A gateway failing to resolve its configured upstream is a
    /// [`ProxyMisconfiguration`](LikelyCause::ProxyMisconfiguration).)
    Dns,
    /// A connection attempt got no answer at all (no refusal, no reset): packets dropped on
    /// the way, as a firewall or a security group does, or a host that is down.
    Firewall,
    /// The server answered that it cannot take the request now (`503 Service Unavailable`).
    Overload,
    /// Nothing tells.
    Unknown,
}

impl LikelyCause {
    /// The cause in words.
    pub fn name(self) -> &'static str {
        match self {
            LikelyCause::NetworkConnectivity => "network connectivity",
            LikelyCause::UpstreamOutage => "temporary upstream outage",
            LikelyCause::ProxyMisconfiguration => "proxy misconfiguration",
            LikelyCause::BackendMisconfiguration => "backend misconfiguration",
            LikelyCause::Dns => "DNS",
            LikelyCause::Firewall => "firewall",
            LikelyCause::Overload => "overload",
            LikelyCause::Unknown => "unknown",
        }
    }
}

impl fmt::Display for LikelyCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which hop failed, the likely cause, what to check, and the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    hop: Hop,
    cause: LikelyCause,
    suggestion: Cow<'static, str>,
    evidence: Vec<String>,
}

impl Diagnosis {
    /// The hop that reported the failure.
    pub fn hop(&self) -> &Hop {
        &self.hop
    }

    /// The likely cause.
    pub fn cause(&self) -> LikelyCause {
        self.cause
    }

    /// One line on what to check.
    pub fn suggestion(&self) -> &str {
        &self.suggestion
    }

    /// What the diagnosis rests on, most telling first.
    pub fn evidence(&self) -> &[String] {
        &self.evidence
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Reported by {}. Likely cause: {}. Check: {}.",
            self.hop, self.cause, self.suggestion
        )?;
        if !self.evidence.is_empty() {
            write!(f, " Evidence: {}.", self.evidence.join("; "))?;
        }
        Ok(())
    }
}

/// The forward proxy a request to `url` goes through when nothing else is configured: the
/// environment's (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`) and, with the
/// `system-proxy` feature, the platform's, decided by the same matcher reqwest uses. Shown as
/// scheme, host and port, never with credentials; `None` when the request goes direct.
///
/// ```
/// let url = reqwest::Url::parse("http://127.0.0.1:9/").unwrap();
/// // Loopback is rarely proxied; either way no credentials are shown.
/// if let Some(proxy) = reqwest_resilience::diagnosis::environment_proxy(&url) {
///     assert!(!proxy.contains('@'));
/// }
/// ```
pub fn environment_proxy(url: &reqwest::Url) -> Option<String> {
    crate::proxy::ProxyMap::from_system().for_url(url)
}

impl crate::GatewayError {
    /// Which hop failed, the likely cause and what to check; see [`diagnosis`](crate::diagnosis).
    pub fn diagnosis(&self) -> Diagnosis {
        rules::diagnose(self)
    }
}
