//! TLS for gfi's servers and clients. Servers (the agent, the controller: `--tls-cert`,
//! `--tls-key`, e.g. a `kubernetes.io/tls` Secret mounted as files) take up a renewed
//! certificate without a restart, and run handshakes as tasks of their own, each with a
//! deadline, so a client that stalls in one delays nobody else's connection. Clients (the kube
//! backend to its agents, `gfi run --remote`) trust a PEM CA bundle.

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's TLS settings from a PEM certificate chain and private key, or what is wrong
/// with the files. The files are watched: when either changes (a Secret's certificate was
/// renewed) the next handshake loads the pair again; a pair that does not load leaves the old
/// one in use, with a warning.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let resolver = ReloadingCert::open(cert, key)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS settings: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What is seen of a file without reading it: a Secret update replaces the files (a symlink
/// swap), which changes their modification time.
type Stamp = [(Option<SystemTime>, u64); 2];

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |p: &Path| match std::fs::metadata(p) {
        Ok(m) => (m.modified().ok(), m.len()),
        Err(_) => (None, 0),
    };
    [one(cert), one(key)]
}

fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--tls-cert {}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "--tls-key {}: {e} (a PEM private key: PKCS#8, PKCS#1 or SEC1)",
            key.display()
        )
    })?;
    CertifiedKey::from_der(certs, key, &provider())
        .map_err(|e| format!("--tls-cert and --tls-key do not make a usable pair: {e}"))
}

#[derive(Debug)]
struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    loaded: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    pair: Arc<CertifiedKey>,
    stamp: Stamp,
    /// The files as they were when they last failed to load: not tried again until they change.
    failed: Option<Stamp>,
}

impl ReloadingCert {
    fn open(cert: &Path, key: &Path) -> Result<ReloadingCert, String> {
        let stamp = stamp(cert, key);
        let pair = Arc::new(load_pair(cert, key)?);
        Ok(ReloadingCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            loaded: Mutex::new(Loaded {
                pair,
                stamp,
                failed: None,
            }),
        })
    }

    /// The pair to present, loaded again first when the files changed. Two `stat`s per
    /// handshake, which costs far less than the handshake.
    fn current(&self) -> Arc<CertifiedKey> {
        let now = stamp(&self.cert, &self.key);
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if now != loaded.stamp && loaded.failed != Some(now) {
            match load_pair(&self.cert, &self.key) {
                Ok(pair) => {
                    tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                    *loaded = Loaded {
                        pair: Arc::new(pair),
                        stamp: now,
                        failed: None,
                    };
                }
                Err(e) => {
                    // Halfway through a Secret update the two files may not match yet.
                    tracing::warn!(
                        "TLS certificate not reloaded, the previous one stays in use: {e}"
                    );
                    loaded.failed = Some(now);
                }
            }
        }
        loaded.pair.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The certificates a client trusts: a PEM bundle (named by `flag` in errors), and the
/// system's CA certificates when `system_roots` is set.
pub fn client_config(
    ca: Option<&Path>,
    flag: &str,
    system_roots: bool,
) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    if system_roots {
        let found = rustls_native_certs::load_native_certs();
        for c in found.certs {
            // A system certificate rustls cannot use is skipped, as a browser would.
            let _ = roots.add(c);
        }
    }
    if let Some(ca) = ca {
        let mut added = 0;
        for c in CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("{flag} {}: {e}", ca.display()))?
        {
            let c = c.map_err(|e| format!("{flag} {}: {e}", ca.display()))?;
            roots.add(c).map_err(|e| {
                format!(
                    "{flag} {}: a certificate rustls cannot use: {e}",
                    ca.display()
                )
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(format!(
                "{flag} {}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)",
                ca.display()
            ));
        }
    }
    if roots.is_empty() {
        return Err(format!(
            "no CA certificate to trust: the system has none readable; name a PEM bundle with {flag}"
        ));
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS settings: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A client configuration for a connector that will only ever make plain HTTP connections
/// (its URLs are `http://`), which trusts no certificate.
pub fn client_config_trusting_nothing() -> ClientConfig {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth()
}

/// A listener whose connections have completed a TLS handshake.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` and hands on the connections whose handshake succeeds; stops
    /// accepting once the listener is dropped.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    accepted = tcp.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: pause rather than spin.
                            tracing::warn!("accepting a connection: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    _ = tx.closed() => return,
                };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(peer = %peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accepting task ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        std::fs::write(&cert, "not a certificate\n").unwrap();
        std::fs::write(&key, "not a key\n").unwrap();
        let e = server_config(&cert, &key).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&cert, pair.cert.pem()).unwrap();
        let e = server_config(&cert, &key).unwrap_err();
        assert!(e.contains("--tls-key"), "{e}");
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&key, other.key_pair.serialize_pem()).unwrap();
        let e = server_config(&cert, &key).unwrap_err();
        assert!(e.contains("usable pair"), "{e}");
        std::fs::write(&key, pair.key_pair.serialize_pem()).unwrap();
        assert!(server_config(&cert, &key).is_ok());
        assert!(server_config(&dir.path().join("missing"), &key).is_err());
    }

    fn presented(r: &ReloadingCert) -> Vec<u8> {
        r.current().cert[0].to_vec()
    }

    #[test]
    fn a_renewed_certificate_is_taken_up_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        let a = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&cert, a.cert.pem()).unwrap();
        std::fs::write(&key, a.key_pair.serialize_pem()).unwrap();
        let r = ReloadingCert::open(&cert, &key).unwrap();
        assert_eq!(presented(&r), a.cert.der().to_vec());
        // Halfway through an update: B's certificate with A's key. A stays in use.
        std::fs::write(&cert, b.cert.pem()).unwrap();
        assert_eq!(presented(&r), a.cert.der().to_vec());
        std::fs::write(&key, b.key_pair.serialize_pem()).unwrap();
        assert_eq!(presented(&r), b.cert.der().to_vec());
        // Files that vanish leave the last good pair in use.
        std::fs::remove_file(&cert).unwrap();
        assert_eq!(presented(&r), b.cert.der().to_vec());
    }

    #[test]
    fn a_client_trusts_the_named_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.crt");
        let e = client_config(Some(&ca), "--agent-ca", false).unwrap_err();
        assert!(e.starts_with("--agent-ca ") && e.contains("ca.crt"), "{e}");
        std::fs::write(&ca, "no certificate here\n").unwrap();
        let e = client_config(Some(&ca), "--agent-ca", false).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = client_config(None, "--remote-ca", false).unwrap_err();
        assert!(e.contains("--remote-ca"), "{e}");
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&ca, pair.cert.pem()).unwrap();
        assert!(client_config(Some(&ca), "--agent-ca", false).is_ok());
    }
}
