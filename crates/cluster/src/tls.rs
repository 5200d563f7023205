//! The cluster's trust: one certificate authority made by `place certs`, a certificate per node,
//! and QUIC configurations in which both ends must present a certificate from that authority.
//!
//! Every node certificate carries the DNS name [`NODE_NAME`], the name a client verifies, plus
//! the node's own id; what makes a peer trusted is the authority's signature, so a peer without a
//! certificate from this cluster's authority is refused at the handshake, in both directions.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use thiserror::Error;

/// The DNS name in every node certificate, and the server name clients ask for.
pub const NODE_NAME: &str = "place-node";
/// The QUIC application protocol.
pub const ALPN: &[u8] = b"place-cluster/1";
const CA_NAME: &str = "place cluster CA";
const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";

/// What can go wrong with certificates.
#[derive(Debug, Error)]
pub enum TlsError {
    /// Making a key or certificate failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not the PEM it should be.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// The cluster's certificate authority.
pub struct ClusterCa {
    key: KeyPair,
    cert_pem: String,
}

impl ClusterCa {
    /// A new authority with a fresh key.
    pub fn generate() -> Result<Self, TlsError> {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        Ok(Self {
            key,
            cert_pem: cert.pem(),
        })
    }

    /// Loads the authority from `dir/ca.pem` and `dir/ca.key`.
    pub fn load(dir: &Path) -> Result<Self, TlsError> {
        let key_path = dir.join(CA_KEY);
        let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let key = KeyPair::from_pem(&key_pem)?;
        let cert_path = dir.join(CA_CERT);
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
        Ok(Self { key, cert_pem })
    }

    /// Loads the authority in `dir`, or makes one there if there is none.
    pub fn load_or_create(dir: &Path) -> Result<Self, TlsError> {
        if dir.join(CA_KEY).exists() {
            return Self::load(dir);
        }
        let ca = Self::generate()?;
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        write_private(&dir.join(CA_KEY), &ca.key.serialize_pem())?;
        let cert_path = dir.join(CA_CERT);
        std::fs::write(&cert_path, &ca.cert_pem).map_err(io(&cert_path))?;
        Ok(ca)
    }

    /// Issues a certificate for node `name`, valid as QUIC server and client, and writes
    /// `dir/NAME.pem` and `dir/NAME.key`.
    pub fn issue(&self, dir: &Path, name: &str) -> Result<(), TlsError> {
        let mut params = CertificateParams::new(vec![NODE_NAME.to_owned(), name.to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let issuer = Issuer::new(ca_params()?, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        let cert_path = dir.join(format!("{name}.pem"));
        std::fs::write(&cert_path, cert.pem()).map_err(io(&cert_path))?;
        write_private(&dir.join(format!("{name}.key")), &key.serialize_pem())
    }
}

/// Writes a private key readable by its owner only: the file is created 0600 (a key left by an
/// earlier run is removed first, so the mode is this one and not the old file's), and the key is
/// never, not even for a moment, in a file anyone else may read.
fn write_private(path: &Path, pem: &str) -> Result<(), TlsError> {
    use std::io::Write;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(path)(e)),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(pem.as_bytes()).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// A node's certificate and key, and the authority it trusts.
pub struct NodeIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca: CertificateDer<'static>,
}

impl Clone for NodeIdentity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            ca: self.ca.clone(),
        }
    }
}

impl NodeIdentity {
    /// Loads node `name` from `dir` (`NAME.pem`, `NAME.key`, `ca.pem`).
    pub fn load(dir: &Path, name: &str) -> Result<Self, TlsError> {
        let pem_err = |path: &Path, e: rustls::pki_types::pem::Error| TlsError::Pem {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let cert_path = dir.join(format!("{name}.pem"));
        let chain = CertificateDer::pem_file_iter(&cert_path)
            .map_err(|e| pem_err(&cert_path, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_err(&cert_path, e))?;
        let key_path = dir.join(format!("{name}.key"));
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| pem_err(&key_path, e))?;
        let ca_path = dir.join(CA_CERT);
        let ca = CertificateDer::from_pem_file(&ca_path).map_err(|e| pem_err(&ca_path, e))?;
        Ok(Self { chain, key, ca })
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone())?;
        Ok(Arc::new(roots))
    }

    /// A QUIC server that accepts only clients with a certificate from the cluster's authority.
    pub fn server_config(&self) -> Result<quinn::ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots()?, Arc::clone(&provider))
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto =
            QuicServerConfig::try_from(tls).map_err(|e| TlsError::Verifier(e.to_string()))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(Arc::new(transport()));
        Ok(config)
    }

    /// A QUIC client that presents this node's certificate and trusts only the cluster's
    /// authority.
    pub fn client_config(&self) -> Result<quinn::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto =
            QuicClientConfig::try_from(tls).map_err(|e| TlsError::Verifier(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(Arc::new(transport()));
        Ok(config)
    }
}

/// Transport settings shared by both ends: many concurrent streams (one per placement and one
/// per subscribed tile) and keep-alives so a link notices a dead peer (a `kill -9` sends
/// nothing) within 1.5 s: the placements waiting on it fail then, and its tile streams reopen.
fn transport() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(16_384));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(1_024));
    t.keep_alive_interval(Some(Duration::from_millis(500)));
    if let Ok(idle) = quinn::IdleTimeout::try_from(Duration::from_millis(1_500)) {
        t.max_idle_timeout(Some(idle));
    }
    t
}

/// Makes (or reuses) the authority in `dir` and issues a certificate for each node name.
pub fn write_certs(dir: &Path, nodes: &[String]) -> Result<(), TlsError> {
    let ca = ClusterCa::load_or_create(dir)?;
    for node in nodes {
        ca.issue(dir, node)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn endpoint_pair(server: &NodeIdentity) -> (quinn::Endpoint, SocketAddr) {
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let endpoint =
            quinn::Endpoint::server(server.server_config().expect("server config"), addr)
                .expect("bind");
        let local = endpoint.local_addr().expect("local");
        (endpoint, local)
    }

    /// Connects `client` to `server_addr` and returns whether both ends completed the handshake.
    async fn handshake(
        server: quinn::Endpoint,
        addr: SocketAddr,
        client: quinn::ClientConfig,
    ) -> bool {
        let accept = tokio::spawn(async move {
            let incoming = server.accept().await.expect("incoming");
            incoming.await.map_err(|e| e.to_string())
        });
        let mut endpoint =
            quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client");
        endpoint.set_default_client_config(client);
        let connected = endpoint.connect(addr, NODE_NAME).expect("connect").await;
        let accepted = accept.await.expect("join");
        if let Err(e) = &connected {
            eprintln!("client: {e}");
        }
        if let Err(e) = &accepted {
            eprintln!("server: {e}");
        }
        connected.is_ok() && accepted.is_ok()
    }

    #[cfg(unix)]
    #[test]
    fn private_keys_are_created_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        // A key file left world-readable (by an earlier version) is replaced, not reused.
        std::fs::write(dir.path().join("edge-1.key"), "old").expect("write");
        std::fs::set_permissions(
            dir.path().join("edge-1.key"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        write_certs(dir.path(), &["edge-1".into()]).expect("certs");
        for key in ["ca.key", "edge-1.key"] {
            let mode = std::fs::metadata(dir.path().join(key))
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
        NodeIdentity::load(dir.path(), "edge-1").expect("the new key loads");
    }

    #[tokio::test]
    async fn nodes_of_one_cluster_connect_and_strangers_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_certs(dir.path(), &["shard-1".into(), "edge-1".into()]).expect("certs");
        let shard = NodeIdentity::load(dir.path(), "shard-1").expect("shard identity");
        let edge = NodeIdentity::load(dir.path(), "edge-1").expect("edge identity");

        let (server, addr) = endpoint_pair(&shard);
        assert!(
            handshake(server, addr, edge.client_config().expect("client")).await,
            "same cluster connects"
        );

        // A node certified by another authority is refused by the server...
        let other = tempfile::tempdir().expect("tempdir");
        write_certs(other.path(), &["edge-x".into()]).expect("certs");
        let stranger = NodeIdentity::load(other.path(), "edge-x").expect("identity");
        let (server, addr) = endpoint_pair(&shard);
        let accept =
            tokio::spawn(async move { server.accept().await.expect("incoming").await.is_ok() });
        let mut endpoint =
            quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client");
        endpoint.set_default_client_config(stranger.client_config().expect("client"));
        let client_side = endpoint.connect(addr, NODE_NAME).expect("connect").await;
        assert!(
            client_side.is_err(),
            "the stranger does not trust the shard's authority either"
        );
        assert!(
            !accept.await.expect("join"),
            "the shard refuses the stranger"
        );

        // ...and a client without any certificate is refused too.
        let (server, addr) = endpoint_pair(&shard);
        let accept =
            tokio::spawn(async move { server.accept().await.expect("incoming").await.is_ok() });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(shard.ca.clone()).expect("root");
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("tls13")
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let anonymous =
            quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).expect("quic")));
        let mut endpoint =
            quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client");
        endpoint.set_default_client_config(anonymous);
        if let Ok(conn) = endpoint.connect(addr, NODE_NAME).expect("connect").await {
            // TLS 1.3: the client may think it is connected until the server's refusal arrives.
            let refused = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
            assert!(
                refused.is_ok(),
                "the connection without a certificate is closed"
            );
        }
        assert!(
            !accept.await.expect("join"),
            "the shard refuses a client without a certificate"
        );
    }
}
