//! HTTP calls that survive bad gateways.
//!
//! `reqwest-resilience` wraps [`reqwest`]: requests end in
//! `Result<reqwest::Response, GatewayError>`, where [`GatewayError`] has one variant per cause
//! of a gateway failure, named after the IIS / ARR substatus codes of `502 Bad Gateway`.
//!
//! ```no_run
//! use reqwest_resilience::{Client, GatewayError};
//!
//! # async fn run() {
//! let client = Client::new();
//! match client.get("http://127.0.0.1:8080/").send().await {
//!     Ok(response) => println!("status {}", response.status()),
//!     Err(GatewayError::ForwarderConnection(d)) => eprintln!("could not connect: {d}"),
//!     Err(GatewayError::CgiTimeout(_)) => eprintln!("the upstream was too slow"),
//!     Err(other) => eprintln!("{other}"),
//! }
//! # }
//! ```
//!
//! # The taxonomy
//!
//! | variant | substatus | meaning |
//! |---|---|---|
//! | [`GatewayError::CgiTimeout`] | 502.1 | the server behind the hop did not answer in time |
//! | [`GatewayError::PrematureExit`] | 502.2 | the server closed or reset before a complete response |
//! | [`GatewayError::ForwarderConnection`] | 502.3 | the hop could not connect to the server |
//! | [`GatewayError::NoServer`] | 502.4 | there was no server to forward to |
//! | [`GatewayError::WebSocket`] | 502.5 | a WebSocket upgrade failed |
//! | [`GatewayError::ForwardedRequest`] | 502.6 | forwarding the request failed |
//! | [`GatewayError::ExecuteRequest`] | 502.7 | the request failed during execution |
//! | [`GatewayError::BadGateway`] | — | a 502 whose cause nothing tells |
//! | [`GatewayError::ServiceUnavailable`] | — | a 503 whose cause nothing tells |
//! | [`GatewayError::DeadlineExceeded`] | — | the total deadline ran out |
//! | [`GatewayError::InvalidRequest`] | — | the request was invalid; never sent |
//!
//! The [`error`] module documents the full mapping from what gateways send and what our own
//! transport sees; the [`classify`] module holds the classifiers.

#![warn(missing_docs)]

pub mod classify;
mod client;
mod context;
pub mod diagnosis;
pub mod error;
pub mod fallback;
mod proxy;
mod redact;
pub mod retry;
pub mod timeout;
mod transport;
#[cfg(feature = "websocket")]
pub mod websocket;

pub use client::{
    BuildError, Client, ClientBuilder, DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_DEADLINE, RequestBuilder,
};
pub use error::{Details, ErrorKind, GatewayError, Origin, ResponseSnapshot, Substatus};
pub use transport::{Transport, TransportFuture};

/// The README's examples are compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
