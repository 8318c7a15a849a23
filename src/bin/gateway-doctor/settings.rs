//! What the walk and `--repeat` share: the client's settings (TLS roots, proxy, connect
//! timeout) and the request's headers.

use crate::Args;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest_resilience::Client;
use rustls::pki_types::CertificateDer;

/// The settings the walk and `--repeat` share: TLS roots, proxy, connect timeout.
pub fn builder(
    args: &Args,
    roots: &[CertificateDer<'static>],
) -> Result<reqwest_resilience::ClientBuilder, String> {
    let certs = roots
        .iter()
        .map(|der| reqwest::Certificate::from_der(der.as_ref()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("a --cacert certificate is not usable: {err}"))?;
    let connect_timeout = args.timeout;
    let mut builder = Client::builder().reqwest_builder_fn(move || {
        let builder = reqwest::Client::builder().connect_timeout(connect_timeout);
        if certs.is_empty() {
            builder
        } else {
            builder.tls_certs_merge(certs.clone())
        }
    });
    if let Some(proxy) = &args.proxy {
        builder = builder.proxy(proxy.clone());
    }
    Ok(builder)
}

pub fn parse_headers(given: &[String]) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for line in given {
        let Some((name, value)) = line.split_once(':') else {
            return Err("a header is not `Name: value`".to_owned());
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{} is not a header name", name.trim()))?;
        let mut value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("the value of {name} is not a valid header value"))?;
        value.set_sensitive(true);
        headers.append(name, value);
    }
    Ok(headers)
}
