//! The IIS / ARR substatus codes of `502 Bad Gateway`.

use std::fmt;
use std::str::FromStr;

/// A substatus of `502 Bad Gateway`, as IIS and Application Request Routing define them.
///
/// ```
/// use reqwest_resilience::Substatus;
///
/// let s: Substatus = "502.3".parse().unwrap();
/// assert_eq!(s, Substatus::ForwarderConnection);
/// assert_eq!(s.code(), "502.3");
/// assert_eq!(s.to_string(), "502.3 forwarder connection error");
/// // The error variant for it is named by its cause:
/// assert_eq!(
///     reqwest_resilience::ErrorKind::from_substatus(s),
///     reqwest_resilience::ErrorKind::ConnectFailed
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Substatus {
    /// 502.1: the server behind the hop did not answer in time.
    CgiTimeout,
    /// 502.2: the server behind the hop exited or closed before a complete response.
    PrematureExit,
    /// 502.3: the hop could not connect to the server behind it.
    ForwarderConnection,
    /// 502.4: there was no server to forward the request to.
    NoServer,
    /// 502.5: a WebSocket upgrade failed.
    WebSocket,
    /// 502.6: forwarding the request failed.
    ForwardedRequest,
    /// 502.7: executing the request failed.
    ExecuteRequest,
}

impl Substatus {
    /// Every substatus, in code order.
    pub const ALL: [Substatus; 7] = [
        Substatus::CgiTimeout,
        Substatus::PrematureExit,
        Substatus::ForwarderConnection,
        Substatus::NoServer,
        Substatus::WebSocket,
        Substatus::ForwardedRequest,
        Substatus::ExecuteRequest,
    ];

    /// The code as IIS writes it, e.g. `"502.3"`.
    pub fn code(self) -> &'static str {
        match self {
            Substatus::CgiTimeout => "502.1",
            Substatus::PrematureExit => "502.2",
            Substatus::ForwarderConnection => "502.3",
            Substatus::NoServer => "502.4",
            Substatus::WebSocket => "502.5",
            Substatus::ForwardedRequest => "502.6",
            Substatus::ExecuteRequest => "502.7",
        }
    }

    /// The number after the dot (1 to 7).
    pub fn number(self) -> u8 {
        match self {
            Substatus::CgiTimeout => 1,
            Substatus::PrematureExit => 2,
            Substatus::ForwarderConnection => 3,
            Substatus::NoServer => 4,
            Substatus::WebSocket => 5,
            Substatus::ForwardedRequest => 6,
            Substatus::ExecuteRequest => 7,
        }
    }

    /// The substatus with this number after the dot, if IIS defines one.
    pub fn from_number(n: u8) -> Option<Substatus> {
        Substatus::ALL.get(usize::from(n).checked_sub(1)?).copied()
    }

    /// IIS's own short description, e.g. `"forwarder connection error"` (the error variants
    /// are named by cause instead: [`ErrorKind::label`](crate::ErrorKind::label)).
    pub fn description(self) -> &'static str {
        match self {
            Substatus::CgiTimeout => "CGI application timeout",
            Substatus::PrematureExit => "premature exit",
            Substatus::ForwarderConnection => "forwarder connection error",
            Substatus::NoServer => "no server",
            Substatus::WebSocket => "WebSocket failure",
            Substatus::ForwardedRequest => "forwarded request failure",
            Substatus::ExecuteRequest => "execute request failure",
        }
    }
}

impl fmt::Display for Substatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.description())
    }
}

/// The error of parsing a [`Substatus`] from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a 502 substatus (expected 502.1 to 502.7)")]
pub struct ParseSubstatusError(());

impl FromStr for Substatus {
    type Err = ParseSubstatusError;

    /// Parses `"502.3"`, and also IIS's log form `"502,3"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .trim()
            .strip_prefix("502")
            .ok_or(ParseSubstatusError(()))?;
        let digits = rest
            .strip_prefix('.')
            .or_else(|| rest.strip_prefix(','))
            .ok_or(ParseSubstatusError(()))?;
        match digits.as_bytes() {
            [d @ b'1'..=b'7'] => Substatus::from_number(d - b'0').ok_or(ParseSubstatusError(())),
            _ => Err(ParseSubstatusError(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for s in Substatus::ALL {
            assert_eq!(s.code().parse::<Substatus>(), Ok(s));
            assert_eq!(Substatus::from_number(s.number()), Some(s));
        }
    }

    #[test]
    fn rejects_other_text() {
        for bad in [
            "", "502", "502.0", "502.8", "502.33", "503.1", "502.x", "5023",
        ] {
            assert!(bad.parse::<Substatus>().is_err(), "{bad:?} parsed");
        }
        assert_eq!("502,4".parse(), Ok(Substatus::NoServer));
    }

    /// Each substatus shows its code and IIS's own description, and no two share one.
    #[test]
    fn displays_the_code_and_iis_description() {
        assert_eq!(
            Substatus::ForwarderConnection.to_string(),
            "502.3 forwarder connection error"
        );
        assert_eq!(
            Substatus::CgiTimeout.description(),
            "CGI application timeout"
        );
        let mut seen = std::collections::HashSet::new();
        for s in Substatus::ALL {
            let shown = s.to_string();
            assert!(shown.starts_with(&format!("{} ", s.code())), "{shown}");
            assert!(shown.ends_with(s.description()), "{shown}");
            assert!(s.description().len() > 3, "{s:?}");
            assert!(seen.insert(s.description()), "{s:?} shares a description");
        }
    }
}
