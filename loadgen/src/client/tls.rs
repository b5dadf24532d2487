//! TLS for every connection loadgen makes (target, chaos API, Prometheus): rustls with the ring
//! provider, the system's trust store plus an optional extra CA, an optional client certificate, and
//! an explicit no-verification mode. Options are named as curl names them.
//!
//! This module only builds a [`rustls::ClientConfig`]; it opens no connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// TLS options, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Extra CA certificates (PEM), trusted beside the system's.
    pub cacert: Option<PathBuf>,
    /// Client certificate chain (PEM), for servers that ask for one.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key: Option<PathBuf>,
    /// Accept any server certificate.
    pub insecure: bool,
}

/// Why the TLS options cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--cacert {path}: {reason}")]
    CaCert { path: PathBuf, reason: String },
    #[error("--cert {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("--key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("--cert and --key go together: give both")]
    CertWithoutKey,
    #[error("the client certificate does not fit its key, or is unusable: {0}")]
    ClientAuth(rustls::Error),
    #[error("no trusted CA certificates: none in the system's store and no --cacert (use --cacert FILE)")]
    NoRoots,
}

/// The protocols offered by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// `http/1.1` only.
    Http1,
    /// `h2`, then `http/1.1`: the server chooses.
    Http2,
}

/// A client configuration for `options`, offering `alpn`.
pub fn client_config(options: &TlsOptions, alpn: Alpn) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions");
    let builder = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        builder.with_root_certificates(roots(options.cacert.as_deref())?)
    };
    let mut config = match (&options.cert, &options.key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert).map_err(|reason| TlsError::Cert {
                path: cert.clone(),
                reason,
            })?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
                path: key.clone(),
                reason: pem_reason(&e, "a private key"),
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(TlsError::ClientAuth)?
        }
        _ => return Err(TlsError::CertWithoutKey),
    };
    config.alpn_protocols = match alpn {
        Alpn::Http1 => vec![b"http/1.1".to_vec()],
        Alpn::Http2 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    Ok(Arc::new(config))
}

/// The system's trust store, plus the certificates in `cacert`.
fn roots(cacert: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    // Unreadable system certificates are skipped: one bad file must not stop every https run.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = cacert {
        let bad = |reason: String| TlsError::CaCert {
            path: path.to_owned(),
            reason,
        };
        for cert in read_certs(path).map_err(bad)? {
            roots
                .add(cert)
                .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    Ok(roots)
}

/// Every certificate in a PEM file; at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_reason(&e, "certificates"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_reason(&e, "certificates"))?;
    if certs.is_empty() {
        return Err("no `BEGIN CERTIFICATE` block in the file (expected PEM certificates)".to_owned());
    }
    Ok(certs)
}

fn pem_reason(e: &rustls::pki_types::pem::Error, what: &str) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => format!("no PEM block with {what} in the file"),
        other => format!("not a PEM file with {what}: {other:?}"),
    }
}

/// `--insecure`: any certificate is accepted, but the handshake's signatures are still checked, so
/// the connection is encrypted to whoever holds the presented certificate's key.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("loadgen-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn bad_files_are_named_with_what_was_expected() {
        let options = TlsOptions {
            cacert: Some(temp("not-pem.txt", "hello\n")),
            ..TlsOptions::default()
        };
        let e = client_config(&options, Alpn::Http1).unwrap_err().to_string();
        assert!(e.starts_with("--cacert ") && e.contains("not-pem.txt"), "{e}");
        assert!(
            e.contains("BEGIN CERTIFICATE") || e.contains("no PEM block"),
            "{e}"
        );

        let missing = TlsOptions {
            cacert: Some(PathBuf::from("/nonexistent/ca.pem")),
            ..TlsOptions::default()
        };
        let e = client_config(&missing, Alpn::Http1).unwrap_err().to_string();
        assert!(
            e.contains("/nonexistent/ca.pem") && e.contains("No such file"),
            "{e}"
        );

        let half = TlsOptions {
            cert: Some(PathBuf::from("/nonexistent/c.pem")),
            ..TlsOptions::default()
        };
        assert!(matches!(
            client_config(&half, Alpn::Http1),
            Err(TlsError::CertWithoutKey)
        ));
    }

    #[test]
    fn alpn_offers_h2_only_when_asked() {
        let options = TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        };
        let h1 = client_config(&options, Alpn::Http1).unwrap();
        assert_eq!(h1.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let h2 = client_config(&options, Alpn::Http2).unwrap();
        assert_eq!(h2.alpn_protocols[0], b"h2".to_vec());
    }
}
