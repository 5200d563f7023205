//! The cluster's trust: one certificate authority made by `place certs`, a certificate per node,
//! and QUIC configurations in which both ends must present a certificate from that authority.
//!
//! Every node certificate carries its node's **role** ([`Role`]: shard or edge) as a DNS name
//! (`shard.role.place-cluster` or `edge.role.place-cluster`), plus the node's own id. `place
//! certs` gives a node named `shard-*` the shard role and one named `edge-*` the edge role. A
//! node's role is checked at both ends of every connection:
//!
//! - only a shard serves ([`NodeIdentity::server_config`]) and only an edge connects to shards
//!   ([`NodeIdentity::client_config`]): a node loaded with the other role's certificate is
//!   refused before it binds or connects;
//! - a shard accepts only clients whose certificate says edge, and an edge asks for the shard
//!   name ([`SHARD_NAME`]) when it connects, so a server whose certificate is not a shard's fails
//!   the handshake. An edge's certificate cannot act as a shard, nor a shard's as an edge.
//!
//! A certificate without a role (made before roles existed) is refused when it is loaded, with a
//! message telling the operator to run `place certs` again. What makes a peer trusted at all is
//! the authority's signature: a peer without a certificate from this cluster's authority is
//! refused at the handshake, in both directions.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use thiserror::Error;

/// The name an edge asks for when it connects to a shard: a shard's certificate carries it, and
/// no other does.
pub const SHARD_NAME: &str = Role::Shard.dns_name();

/// What a node is in the cluster, as its certificate says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Owns tiles; serves edges over QUIC.
    Shard,
    /// Holds the players' connections; connects to shards.
    Edge,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 2] = [Role::Shard, Role::Edge];

    /// The DNS name in the certificate of every node of this role.
    pub const fn dns_name(self) -> &'static str {
        match self {
            Role::Shard => "shard.role.place-cluster",
            Role::Edge => "edge.role.place-cluster",
        }
    }

    /// The role `place certs` gives a node by its name: `shard-*` or `edge-*`.
    pub fn of_node_name(name: &str) -> Option<Role> {
        if name.starts_with("shard-") {
            Some(Role::Shard)
        } else if name.starts_with("edge-") {
            Some(Role::Edge)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Role::Shard => "shard",
            Role::Edge => "edge",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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
    /// `place certs` was asked for a node whose name says no role.
    #[error("node {0:?}: a node's name says its role: name shards shard-... and edges edge-...")]
    UnknownRole(String),
    /// A certificate carries no role: it was made before roles existed.
    #[error(
        "{path}: this certificate carries no role (shard or edge); it was made by an older \
         `place certs`: run `place certs --out DIR --nodes ...` again for every node, then \
         restart the nodes"
    )]
    NoRole {
        /// The certificate file.
        path: String,
    },
    /// A node was asked to act in a role its certificate does not give it.
    #[error("this node's certificate is a {have}'s: it cannot act as a {need}")]
    WrongRole {
        /// The certificate's role.
        have: Role,
        /// The role it was asked to act in.
        need: Role,
    },
}

/// A peer presented a certificate of another role than the one this end accepts.
#[derive(Debug, Error)]
#[error("the peer's certificate is not a {0}'s")]
struct PeerNotOfRole(Role);

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

    /// Issues a certificate for node `name` in `role` (valid as QUIC server and client; the
    /// configurations decide which it may be), and writes `dir/NAME.pem` and `dir/NAME.key`.
    pub fn issue(&self, dir: &Path, name: &str, role: Role) -> Result<(), TlsError> {
        let mut params = CertificateParams::new(vec![role.dns_name().to_owned(), name.to_owned()])?;
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

/// Whether `cert` carries `role`'s name. Its signature is checked elsewhere (by the handshake).
fn has_role(cert: &CertificateDer<'_>, role: Role) -> bool {
    let Ok(name) = ServerName::try_from(role.dns_name()) else {
        return false;
    };
    webpki::EndEntityCert::try_from(cert)
        .is_ok_and(|parsed| parsed.verify_is_valid_for_subject_name(&name).is_ok())
}

/// A node's certificate and key, its role, and the authority it trusts.
pub struct NodeIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca: CertificateDer<'static>,
    role: Role,
}

impl Clone for NodeIdentity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            ca: self.ca.clone(),
            role: self.role,
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
        let no_role = || TlsError::NoRole {
            path: cert_path.display().to_string(),
        };
        let leaf = chain.first().ok_or_else(no_role)?;
        let role = Role::ALL
            .into_iter()
            .find(|&role| has_role(leaf, role))
            .ok_or_else(no_role)?;
        Ok(Self {
            chain,
            key,
            ca,
            role,
        })
    }

    /// The first node of `role` in `dir` (by name), for a command that must connect as one
    /// (`place ring add` checks a new shard as an edge would).
    pub fn load_first_of(dir: &Path, role: Role) -> Result<Self, TlsError> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                let node = name.strip_suffix(".key")?;
                (Role::of_node_name(node) == Some(role)).then(|| node.to_owned())
            })
            .collect();
        names.sort();
        let name = names.first().ok_or_else(|| TlsError::Io {
            path: dir.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no {role} certificate ({role}-*.key) here"),
            ),
        })?;
        Self::load(dir, name)
    }

    /// The node's role, as its certificate says.
    pub fn role(&self) -> Role {
        self.role
    }

    fn require(&self, need: Role) -> Result<(), TlsError> {
        if self.role == need {
            Ok(())
        } else {
            Err(TlsError::WrongRole {
                have: self.role,
                need,
            })
        }
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone())?;
        Ok(Arc::new(roots))
    }

    /// A shard's QUIC server, accepting only edges: clients with a certificate from the
    /// cluster's authority that says edge. [`TlsError::WrongRole`] if this node is no shard.
    pub fn server_config(&self) -> Result<quinn::ServerConfig, TlsError> {
        self.require(Role::Shard)?;
        self.server_config_accepting(Role::Edge)
    }

    /// A QUIC server with this node's certificate, accepting clients of the authority in `peer`
    /// role (whatever this node's own role: tests use it to act a role the node does not have).
    fn server_config_accepting(&self, peer: Role) -> Result<quinn::ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner =
            WebPkiClientVerifier::builder_with_provider(self.roots()?, Arc::clone(&provider))
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let verifier = Arc::new(RoleClientVerifier { inner, role: peer });
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

    /// An edge's QUIC client: presents this node's certificate and trusts only the cluster's
    /// authority; connect with the server name [`SHARD_NAME`], so that only a shard's
    /// certificate passes. [`TlsError::WrongRole`] if this node is no edge.
    pub fn client_config(&self) -> Result<quinn::ClientConfig, TlsError> {
        self.require(Role::Edge)?;
        self.client_config_unchecked()
    }

    /// A QUIC client with this node's certificate, whatever its role, for one use only: a shard
    /// asking whether another shard's process still answers ([`crate::client::answers`]). The
    /// other shard accepts only edges, so it refuses the handshake; that it answers at all is
    /// the answer. Nothing is ever sent on such a connection.
    pub fn liveness_config(&self) -> Result<quinn::ClientConfig, TlsError> {
        self.client_config_unchecked()
    }

    /// A QUIC client with this node's certificate, whatever its role.
    fn client_config_unchecked(&self) -> Result<quinn::ClientConfig, TlsError> {
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

/// The authority's verification of a client certificate, then its role: a shard accepts only
/// edges.
#[derive(Debug)]
struct RoleClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    role: Role,
}

impl ClientCertVerifier for RoleClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if has_role(end_entity, self.role) {
            return Ok(verified);
        }
        tracing::warn!(
            expected = %self.role,
            "refused a peer: its certificate is of this cluster but not of the expected role"
        );
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Other(rustls::OtherError(Arc::new(PeerNotOfRole(self.role)))),
        ))
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

/// Makes (or reuses) the authority in `dir` and issues a certificate for each node name, in the
/// role its name says ([`Role::of_node_name`]; every name is checked before anything is
/// written).
pub fn write_certs(dir: &Path, nodes: &[String]) -> Result<(), TlsError> {
    let roles = nodes
        .iter()
        .map(|node| Role::of_node_name(node).ok_or_else(|| TlsError::UnknownRole(node.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let ca = ClusterCa::load_or_create(dir)?;
    for (node, role) in nodes.iter().zip(roles) {
        ca.issue(dir, node, role)?;
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
        let connected = endpoint.connect(addr, SHARD_NAME).expect("connect").await;
        let accepted = accept.await.expect("join");
        if let Err(e) = &connected {
            eprintln!("client: {e}");
        }
        if let Err(e) = &accepted {
            eprintln!("server: {e}");
        }
        connected.is_ok() && accepted.is_ok()
    }

    /// Connects `client` to `server` and returns (client connected, server accepted).
    async fn connect(server: quinn::ServerConfig, client: quinn::ClientConfig) -> (bool, bool) {
        let endpoint =
            quinn::Endpoint::server(server, "127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = endpoint.local_addr().expect("local");
        // The endpoint and connection are returned, not dropped: dropping them would close it.
        let accept = tokio::spawn(async move {
            let accepted = endpoint.accept().await.expect("incoming").await;
            (endpoint, accepted)
        });
        let mut client_endpoint =
            quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client");
        client_endpoint.set_default_client_config(client);
        let connected = match client_endpoint
            .connect(addr, SHARD_NAME)
            .expect("connect")
            .await
        {
            // TLS 1.3: the client may think it is connected until the server's refusal arrives.
            Ok(conn) => tokio::time::timeout(Duration::from_secs(1), conn.closed())
                .await
                .is_err(),
            Err(_) => false,
        };
        let (_endpoint, accepted) = accept.await.expect("join");
        (connected, accepted.is_ok())
    }

    fn three_nodes() -> (tempfile::TempDir, [NodeIdentity; 3]) {
        let dir = tempfile::tempdir().expect("tempdir");
        write_certs(
            dir.path(),
            &["shard-1".into(), "shard-2".into(), "edge-1".into()],
        )
        .expect("certs");
        let load = |name| NodeIdentity::load(dir.path(), name).expect("identity");
        let nodes = [load("shard-1"), load("shard-2"), load("edge-1")];
        (dir, nodes)
    }

    #[tokio::test]
    async fn a_shard_accepts_an_edge_and_refuses_a_shard_acting_as_an_edge() {
        let (_dir, [shard, other_shard, edge]) = three_nodes();
        assert_eq!((shard.role(), edge.role()), (Role::Shard, Role::Edge));
        let server = || shard.server_config().expect("a shard serves");
        assert_eq!(
            connect(server(), edge.client_config().expect("an edge connects")).await,
            (true, true)
        );
        let impostor = other_shard.client_config_unchecked().expect("client");
        let (_, accepted) = connect(server(), impostor).await;
        assert!(!accepted, "a shard's certificate cannot act as an edge");
        assert!(matches!(
            other_shard.client_config(),
            Err(TlsError::WrongRole {
                have: Role::Shard,
                need: Role::Edge
            })
        ));
    }

    #[tokio::test]
    async fn an_edge_refuses_a_server_whose_certificate_is_not_a_shards() {
        let (dir, [_, _, edge]) = three_nodes();
        write_certs(dir.path(), &["edge-2".into()]).expect("certs");
        let other_edge = NodeIdentity::load(dir.path(), "edge-2").expect("identity");
        let impostor = other_edge
            .server_config_accepting(Role::Edge)
            .expect("server");
        let (connected, _) = connect(impostor, edge.client_config().expect("client")).await;
        assert!(!connected, "an edge's certificate cannot act as a shard");
        assert!(matches!(
            other_edge.server_config(),
            Err(TlsError::WrongRole {
                have: Role::Edge,
                need: Role::Shard
            })
        ));
    }

    #[test]
    fn certificates_without_a_role_are_refused_and_names_must_say_the_role() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = ClusterCa::load_or_create(dir.path()).expect("ca");
        // A certificate as `place certs` made them before roles: no role name.
        let mut params =
            CertificateParams::new(vec!["place-node".to_owned(), "shard-1".to_owned()])
                .expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "shard-1");
        let key = KeyPair::generate().expect("key");
        let issuer = Issuer::new(ca_params().expect("params"), &ca.key);
        let cert = params.signed_by(&key, &issuer).expect("sign");
        std::fs::write(dir.path().join("shard-1.pem"), cert.pem()).expect("write");
        write_private(&dir.path().join("shard-1.key"), &key.serialize_pem()).expect("write");
        let refused = NodeIdentity::load(dir.path(), "shard-1").map(|_| ());
        assert!(
            matches!(refused, Err(TlsError::NoRole { .. })),
            "{refused:?}"
        );
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("run `place certs"), "{message}");

        assert!(matches!(
            write_certs(dir.path(), &["edge-1".into(), "node-7".into()]),
            Err(TlsError::UnknownRole(name)) if name == "node-7"
        ));
        assert!(
            !dir.path().join("edge-1.key").exists(),
            "nothing is written when a name is refused"
        );
        write_certs(dir.path(), &["shard-1".into()]).expect("certs again");
        let shard = NodeIdentity::load(dir.path(), "shard-1").expect("identity");
        assert_eq!(shard.role(), Role::Shard);
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
        let client_side = endpoint.connect(addr, SHARD_NAME).expect("connect").await;
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
        if let Ok(conn) = endpoint.connect(addr, SHARD_NAME).expect("connect").await {
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
