//! TLS to PostgreSQL: `sslmode` in `[state].postgres_url`, as libpq reads it, over rustls.
//!
//! `disable` never uses TLS; `prefer` tries it and falls back to plain; `require` insists on it
//! without checking the certificate, unless a CA is given (`[state].postgres_ca_file`), when it
//! checks the chain as `verify-ca` does (libpq's rule); `verify-ca` checks the chain;
//! `verify-full` checks the chain and that the certificate names the host. The chain is checked
//! against the CA file when given, else the system's roots. Without `sslmode`, a URL whose hosts
//! are all loopback (or Unix sockets) gets `prefer` and any other gets `require`: a password never
//! crosses a network in the clear by default.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::{Context as _, Result, bail};
use futures_util::future::BoxFuture;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::Host;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// `sslmode`, as libpq names it (`allow` is left out: it prefers plain text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => bail!(
                "`sslmode={other}` in `state.postgres_url` is not one of disable, prefer, require, verify-ca, verify-full"
            ),
        })
    }

    /// What tokio-postgres negotiates; the checks beyond it are the connector's.
    fn negotiation(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Negotiate;
        match self {
            Self::Disable => Negotiate::Disable,
            Self::Prefer => Negotiate::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => Negotiate::Require,
        }
    }
}

/// Splits `sslmode` off `url` (tokio-postgres knows only disable, prefer and require), giving
/// the URL without it and the mode it names, if any.
pub(crate) fn split_sslmode(url: &str) -> Result<(String, Option<SslMode>)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    let mut mode = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.strip_prefix("sslmode=") {
            Some(value) => mode = Some(SslMode::parse(value)?),
            None => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, mode))
}

/// The mode for `config` when its URL named none: `prefer` when every host is loopback or a
/// Unix socket, else `require`.
pub(crate) fn default_mode(config: &tokio_postgres::Config) -> SslMode {
    let local = |host: &Host| match host {
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        #[cfg(unix)]
        Host::Unix(_) => true,
    };
    if config.get_hosts().iter().all(local) {
        SslMode::Prefer
    } else {
        SslMode::Require
    }
}

/// Applies `mode` to `config` and makes the connector that checks what it asks.
pub(crate) fn connector(
    config: &mut tokio_postgres::Config,
    mode: SslMode,
    ca_file: Option<&Path>,
) -> Result<MakeRustls> {
    config.ssl_mode(mode.negotiation());
    let check = match (mode, ca_file) {
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => Check::Nothing,
        (SslMode::Require | SslMode::VerifyCa, _) => Check::Chain,
        (SslMode::VerifyFull, _) => Check::ChainAndName,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = Arc::new(roots(ca_file)?);
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
        .build()
        .context("cannot use the CA certificates for PostgreSQL")?;
    let verifier = Arc::new(Verifier { check, webpki });
    let tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS for PostgreSQL")?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustls(tokio_rustls::TlsConnector::from(Arc::new(tls))))
}

/// The CA file's certificates, or the system's roots.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = fs_err::read(path)
                .with_context(|| "cannot read `state.postgres_ca_file`".to_owned())?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.with_context(|| {
                    format!(
                        "`{}` (`state.postgres_ca_file`) is not PEM certificates",
                        path.display()
                    )
                })?;
                roots.add(cert).with_context(|| {
                    format!(
                        "`{}` (`state.postgres_ca_file`) holds an unusable certificate",
                        path.display()
                    )
                })?;
            }
            if roots.is_empty() {
                bail!(
                    "`{}` (`state.postgres_ca_file`) holds no PEM certificate",
                    path.display()
                );
            }
        }
        None => {
            // Unreadable system certificates are skipped, as every rustls client does; with
            // none at all, verification fails and says so.
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    Ok(roots)
}

/// What is checked of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Only that the handshake is signed by the key it presents (`require` without a CA).
    Nothing,
    /// That it chains to a trusted root (`verify-ca`).
    Chain,
    /// That it chains and names the host (`verify-full`).
    ChainAndName,
}

#[derive(Debug)]
struct Verifier {
    check: Check,
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.check == Check::Nothing {
            return Ok(ServerCertVerified::assertion());
        }
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
                if self.check == Check::Chain =>
            {
                // webpki checks the name after the chain: the chain is good.
                Ok(ServerCertVerified::assertion())
            }
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) if self.check == Check::Chain => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// tokio-postgres' TLS factory over rustls: one connector per host.
#[derive(Clone)]
pub(crate) struct MakeRustls(tokio_rustls::TlsConnector);

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Connect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, host: &str) -> Result<Connect, Self::Error> {
        Ok(Connect {
            connector: self.0.clone(),
            name: ServerName::try_from(host.to_owned())?,
        })
    }
}

pub(crate) struct Connect {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<Stream<S>>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = self.connector.connect(self.name, stream).await?;
            Ok(Stream(tls))
        })
    }
}

/// A TLS connection to PostgreSQL (no channel binding: SCRAM works without it).
pub(crate) struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for Stream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_split_off_the_url() {
        let (url, mode) =
            split_sslmode("postgres://u:p@db:5432/izzi?sslmode=verify-full&connect_timeout=3")
                .unwrap();
        assert_eq!(url, "postgres://u:p@db:5432/izzi?connect_timeout=3");
        assert_eq!(mode, Some(SslMode::VerifyFull));
        let (url, mode) = split_sslmode("postgres://db/izzi?sslmode=disable").unwrap();
        assert_eq!(
            (url.as_str(), mode),
            ("postgres://db/izzi", Some(SslMode::Disable))
        );
        assert_eq!(split_sslmode("postgres://db/izzi").unwrap().1, None);
        let err = split_sslmode("postgres://db/izzi?sslmode=allow").unwrap_err();
        assert!(err.to_string().contains("`sslmode=allow`"), "{err}");
    }

    #[test]
    fn loopback_defaults_to_prefer_and_anything_else_to_require() {
        let mode = |url: &str| default_mode(&url.parse().unwrap());
        assert_eq!(mode("postgres://izzi@127.0.0.1:5432/izzi"), SslMode::Prefer);
        assert_eq!(mode("postgres://izzi@localhost/izzi"), SslMode::Prefer);
        assert_eq!(mode("postgres://izzi@[::1]/izzi"), SslMode::Prefer);
        assert_eq!(mode("postgres://izzi@db.internal/izzi"), SslMode::Require);
        assert_eq!(
            mode("postgres://izzi@127.0.0.1,10.0.0.5/izzi"),
            SslMode::Require
        );
    }
}
