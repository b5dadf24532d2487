//! TLS for every connection loadgen makes (target, chaos API, Prometheus): rustls with the ring
//! provider, the system's trust store plus an optional extra CA, an optional client certificate, and
//! an explicit no-verification mode. Options are named as curl names them.
//!
//! This module only builds a [`rustls::ClientConfig`]; it opens no connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, InconsistentKeys, RootCertStore, SignatureScheme};

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
    /// The flag that gave `cacert`, for errors: `--cacert` for the target, `--prometheus-cacert` for
    /// Prometheus.
    pub cacert_flag: CaFlag,
}

/// Which flag gave a CA file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CaFlag {
    #[default]
    Cacert,
    PrometheusCacert,
}

impl std::fmt::Display for CaFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CaFlag::Cacert => "--cacert",
            CaFlag::PrometheusCacert => "--prometheus-cacert",
        })
    }
}

/// Why the TLS options cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{flag} {path}: {reason}")]
    CaCert {
        flag: CaFlag,
        path: PathBuf,
        reason: String,
    },
    #[error("--cert {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("--key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("--cert and --key go together: give both")]
    CertWithoutKey,
    #[error("--key {path}: not a usable private key: {reason}")]
    UnusableKey { path: PathBuf, reason: rustls::Error },
    #[error("--cert {cert} does not fit --key {key}: the certificate's public key is not the key's")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("no trusted CA certificates: none in the system's store and no {0} (use {0} FILE)")]
    NoRoots(CaFlag),
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
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider.clone())))
    } else {
        builder.with_root_certificates(roots(options.cacert.as_deref(), options.cacert_flag)?)
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
            let certified = client_cert(chain, key_der, &provider).map_err(|e| match e {
                ClientCertError::Key(reason) => TlsError::UnusableKey {
                    path: key.clone(),
                    reason,
                },
                ClientCertError::Mismatch => TlsError::KeyMismatch {
                    cert: cert.clone(),
                    key: key.clone(),
                },
            })?;
            builder.with_client_cert_resolver(Arc::new(ClientCert(Arc::new(certified))))
        }
        _ => return Err(TlsError::CertWithoutKey),
    };
    config.alpn_protocols = match alpn {
        Alpn::Http1 => vec![b"http/1.1".to_vec()],
        Alpn::Http2 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    Ok(Arc::new(config))
}

enum ClientCertError {
    Key(rustls::Error),
    Mismatch,
}

/// The client certificate `chain` with its key, checked to fit. rustls's own check parses the
/// certificate as a server would and refuses X.509 v1 certificates (what `openssl x509 -req` makes
/// without an extensions file), which servers such as nginx accept from clients; so the public key is
/// read from the certificate here, whatever its version, and the server judges the rest.
fn client_cert(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, ClientCertError> {
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(ClientCertError::Key)?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => Err(ClientCertError::Mismatch),
        // rustls could not parse the certificate: compare the keys from its DER directly.
        Err(_) => {
            let theirs = certified.cert.first().and_then(|c| spki_of(c));
            match (theirs, certified.key.public_key()) {
                (Some(cert_key), Some(key)) if cert_key != key.as_ref() => Err(ClientCertError::Mismatch),
                _ => Ok(certified),
            }
        }
    }
}

/// One DER element at the start of `der`: its tag, its whole encoding and what follows it.
fn der_element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *der.first()?;
    let first = *der.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let bytes = der.get(2..2 + count)?;
        (
            bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b)),
            2 + count,
        )
    };
    let end = header.checked_add(len)?;
    Some((tag, der.get(..end)?, der.get(end..)?))
}

/// The `SubjectPublicKeyInfo` of an X.509 certificate of any version (RFC 5280, 4.1): the seventh
/// field of the `TBSCertificate`, or the sixth when the optional version is absent (v1).
fn spki_of(cert: &[u8]) -> Option<&[u8]> {
    let (_, certificate, _) = der_element(cert)?;
    let (_, tbs, _) = der_element(certificate.get(header_len(certificate)?..)?)?;
    let mut rest = tbs.get(header_len(tbs)?..)?;
    if rest.first() == Some(&0xa0) {
        rest = der_element(rest)?.2;
    }
    // serialNumber, signature, issuer, validity, subject
    for _ in 0..5 {
        rest = der_element(rest)?.2;
    }
    let (tag, spki, _) = der_element(rest)?;
    (tag == 0x30).then_some(spki)
}

/// The length of a DER element's header (tag and length).
fn header_len(der: &[u8]) -> Option<usize> {
    let first = *der.get(1)?;
    Some(if first < 0x80 {
        2
    } else {
        2 + usize::from(first & 0x7f)
    })
}

/// Always presents the one client certificate.
#[derive(Debug)]
struct ClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The system's trust store, plus the certificates in `cacert`.
fn roots(cacert: Option<&Path>, flag: CaFlag) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    // Unreadable system certificates are skipped: one bad file must not stop every https run.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = cacert {
        let bad = |reason: String| TlsError::CaCert {
            flag,
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
        return Err(TlsError::NoRoots(flag));
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

        let prometheus = TlsOptions {
            cacert: Some(temp("not-pem.txt", "hello\n")),
            cacert_flag: CaFlag::PrometheusCacert,
            ..TlsOptions::default()
        };
        let e = client_config(&prometheus, Alpn::Http1).unwrap_err().to_string();
        assert!(e.starts_with("--prometheus-cacert "), "{e}");

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

    fn testdata(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("src/client/testdata")
            .join(name)
    }

    #[test]
    fn an_x509_v1_client_certificate_is_taken_and_checked_against_its_key() {
        // Made by `openssl x509 -req` without an extensions file, as many guides do: version 1.
        let with = |key: &str| TlsOptions {
            insecure: true,
            cert: Some(testdata("client-v1.pem")),
            key: Some(testdata(key)),
            ..TlsOptions::default()
        };
        let config = client_config(&with("client-v1.key"), Alpn::Http1);
        assert!(config.is_ok(), "{:?}", config.err());
        let e = client_config(&with("other.key"), Alpn::Http1).unwrap_err();
        assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
        assert!(e.to_string().contains("does not fit --key"), "{e}");
    }

    #[test]
    fn the_public_key_is_read_from_certificates_of_any_version() {
        let v1 = CertificateDer::from_pem_file(testdata("client-v1.pem")).unwrap();
        let key = PrivateKeyDer::from_pem_file(testdata("client-v1.key")).unwrap();
        let signing = ring::default_provider()
            .key_provider
            .load_private_key(key)
            .unwrap();
        assert_eq!(spki_of(&v1), Some(signing.public_key().unwrap().as_ref()));
        // A v3 certificate (the CA's, with extensions): the same field as rustls finds.
        let v3 = CertificateDer::from_pem_file(testdata("ca.pem")).unwrap();
        let parsed = rustls::server::ParsedCertificate::try_from(&v3).unwrap();
        assert_eq!(spki_of(&v3), Some(parsed.subject_public_key_info().as_ref()));
        // Nothing read past the end of something that is not a certificate.
        for junk in [
            &[][..],
            &[0x30],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x03, 0x30, 0x01],
        ] {
            assert_eq!(spki_of(junk), None);
        }
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
