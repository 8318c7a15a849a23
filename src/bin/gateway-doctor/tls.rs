//! The TLS step: a handshake of the doctor's own (rustls, the system's roots plus `--cacert`,
//! as reqwest's default TLS trusts), to show what the server presents — protocol, ALPN, the
//! certificate's subject, issuer, names and expiry — and to name the check that failed.

use crate::report::Report;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// The CA certificates of a PEM file, for both this step and the crate's client.
pub fn read_cacert(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?
        .collect();
    let certs = certs.map_err(|err| format!("{} is not PEM: {err}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// Records the chain the server presents, then lets webpki judge it.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut chain) = self.chain.lock() {
            chain.push(end_entity.clone().into_owned());
            chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The check a handshake failed, in words, from rustls's typed error.
fn failed_check(err: &rustls::Error) -> (&'static str, String) {
    use CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::Expired | C::ExpiredContext { .. } => (
                "expired",
                "the certificate has expired: it must be renewed".to_owned(),
            ),
            C::NotValidYet | C::NotValidYetContext { .. } => (
                "not_valid_yet",
                "the certificate is not valid yet: check this machine's clock".to_owned(),
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => (
                "wrong_name",
                "the certificate does not name this host".to_owned(),
            ),
            C::UnknownIssuer => (
                "untrusted_issuer",
                "the certificate's issuer is not trusted here (self-signed or a private CA: give it with --cacert)".to_owned(),
            ),
            C::Revoked => ("revoked", "the certificate is revoked".to_owned()),
            C::BadSignature => (
                "bad_signature",
                "the certificate's signature is invalid".to_owned(),
            ),
            other => ("invalid_certificate", format!("the certificate is rejected: {other:?}")),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => (
            "not_tls",
            "the server does not speak TLS on this port (plain HTTP?)".to_owned(),
        ),
        rustls::Error::AlertReceived(alert) => (
            "alert",
            format!("the server refused the handshake (alert {alert:?})"),
        ),
        rustls::Error::PeerIncompatible(why) => (
            "incompatible",
            format!("no protocol or cipher in common: {why:?}"),
        ),
        other => ("handshake", other.to_string()),
    }
}

/// Subject, issuer, names and validity of one certificate.
fn describe(der: &CertificateDer<'_>) -> Value {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return json!({ "error": "cannot parse the certificate" });
    };
    let validity = cert.validity();
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes)
                            .ok()
                            .map(|b| std::net::IpAddr::from(b).to_string()),
                        16 => <[u8; 16]>::try_from(*bytes)
                            .ok()
                            .map(|b| std::net::IpAddr::from(b).to_string()),
                        _ => None,
                    };
                    names.extend(ip);
                }
                _ => {}
            }
        }
    }
    json!({
        "subject": cert.subject().to_string(),
        "issuer": cert.issuer().to_string(),
        "names": names,
        "not_before": validity.not_before.to_string(),
        "not_after": validity.not_after.to_string(),
        "valid_now": validity.is_valid(),
    })
}

/// The TLS handshake over `stream` with `host`, reported as one step (and one line per
/// certificate); `extra_roots` come from `--cacert`. Returns whether the handshake and the
/// certificate checks passed (`None`: not checked here).
pub async fn handshake(
    report: &mut Report,
    stream: TcpStream,
    host: &str,
    extra_roots: &[CertificateDer<'static>],
    timeout: Duration,
) -> Option<bool> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    roots.add_parsable_certificates(extra_roots.iter().cloned());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = match WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    {
        Ok(verifier) => verifier,
        Err(err) => {
            report.step(
                "tls",
                format!("not checked: no trusted root certificates ({err})"),
                json!({ "ok": false, "check": "no_roots", "error": err.to_string() }),
            );
            return None;
        }
    };
    let recording = Arc::new(Recording {
        inner: verifier,
        chain: Mutex::new(Vec::new()),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(recording.clone())
                .with_no_client_auth()
        });
    let mut config = match config {
        Ok(config) => config,
        Err(err) => {
            report.step(
                "tls",
                format!("not checked: {err}"),
                json!({ "ok": false, "error": err.to_string() }),
            );
            return None;
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let Ok(name) = ServerName::try_from(host.to_owned()) else {
        report.step(
            "tls",
            format!("not checked: {host} is not a valid TLS server name"),
            json!({ "ok": false, "error": "bad server name" }),
        );
        return None;
    };
    report.waiting(format!("TLS handshake with {host}…"));
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, connector.connect(name, stream)).await;
    let took = started.elapsed();
    let chain: Vec<Value> = recording
        .chain
        .lock()
        .map(|chain| chain.iter().map(|c| describe(c)).collect())
        .unwrap_or_default();
    let passed = matches!(result, Ok(Ok(_)));
    let (text, mut value) = match result {
        Err(_) => (
            format!(
                "no handshake in {}: the server accepted the connection but does not answer TLS",
                crate::shown::ms(timeout)
            ),
            json!({ "ok": false, "check": "no_answer" }),
        ),
        Ok(Ok(tls)) => {
            let (_, conn) = tls.get_ref();
            let version = conn
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default();
            let alpn = conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned());
            let text = format!(
                "{} in {}{}, certificate accepted",
                version.replace("TLSv1_", "TLS 1."),
                crate::shown::ms(took),
                alpn.as_deref()
                    .map(|a| format!(", ALPN {a}"))
                    .unwrap_or_default()
            );
            (
                text,
                json!({ "ok": true, "version": version, "alpn": alpn }),
            )
        }
        Ok(Err(err)) => {
            let rustls_error = err
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            let (check, words) = match rustls_error {
                Some(e) => failed_check(e),
                None if err.kind() == std::io::ErrorKind::UnexpectedEof => (
                    "closed",
                    "the server closed the connection during the handshake".to_owned(),
                ),
                None => ("handshake", err.to_string()),
            };
            (
                format!("failed: {words}"),
                json!({ "ok": false, "check": check, "error": words }),
            )
        }
    };
    if let Value::Object(map) = &mut value {
        map.insert("chain".into(), Value::Array(chain.clone()));
        map.insert("ms".into(), json!(took.as_secs_f64() * 1000.0));
    }
    report.step("tls", text, value);
    for (i, cert) in chain.iter().enumerate() {
        let field = |k: &str| {
            cert.get(k)
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned()
        };
        let label = if i == 0 { "certificate" } else { "issuer cert" };
        let names = cert
            .get("names")
            .and_then(Value::as_array)
            .map(|n| {
                n.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let valid = if cert.get("valid_now").and_then(Value::as_bool) == Some(false) {
            " (NOT VALID NOW)"
        } else {
            ""
        };
        report.line(format!(
            "           {label}: subject {}; issuer {}; names [{names}]; valid until {}{valid}",
            field("subject"),
            field("issuer"),
            field("not_after"),
        ));
    }
    Some(passed)
}
