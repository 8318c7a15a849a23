//! Configuring a [`Client`].

use super::{Client, Stack};
use crate::transport::Transport;
use tower::util::BoxCloneSyncService;

/// Builds a [`Client`]: the `reqwest` client underneath and the policies on top.
#[must_use]
#[derive(Debug, Default)]
pub struct ClientBuilder {
    reqwest: Option<ReqwestSource>,
}

#[derive(Debug)]
enum ReqwestSource {
    Builder(Box<reqwest::ClientBuilder>),
    Client(reqwest::Client),
}

/// The error of [`ClientBuilder::build`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The `reqwest` client could not be built (e.g. the TLS backend failed to initialise).
    #[error("the reqwest client could not be built")]
    Reqwest(#[source] reqwest::Error),
    /// A setting is invalid.
    #[error("invalid client setting: {0}")]
    Invalid(String),
}

impl ClientBuilder {
    /// A builder with the default configuration.
    pub fn new() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Builds the `reqwest` client underneath from this `reqwest::ClientBuilder` (proxies, TLS,
    /// pool settings, default headers…).
    pub fn reqwest_builder(mut self, builder: reqwest::ClientBuilder) -> ClientBuilder {
        self.reqwest = Some(ReqwestSource::Builder(Box::new(builder)));
        self
    }

    /// Sends with this existing `reqwest::Client` (its connection pool is shared).
    pub fn reqwest_client(mut self, client: reqwest::Client) -> ClientBuilder {
        self.reqwest = Some(ReqwestSource::Client(client));
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client, BuildError> {
        let reqwest = match self.reqwest {
            Some(ReqwestSource::Client(client)) => client,
            Some(ReqwestSource::Builder(builder)) => {
                builder.build().map_err(BuildError::Reqwest)?
            }
            None => reqwest::Client::builder()
                .build()
                .map_err(BuildError::Reqwest)?,
        };
        let stack: Stack = BoxCloneSyncService::new(Transport::new(reqwest.clone()));
        Ok(Client { reqwest, stack })
    }
}
