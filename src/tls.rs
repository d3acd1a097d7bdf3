//! TLS as csync2 uses it (protocol.md §5): after `SSL` / `OK
//! (activating_ssl).` both sides run a TLS handshake with their own
//! certificate (`csync2_ssl_cert.pem` / `csync2_ssl_key.pem` in the system
//! directory). Certificates are not validated; instead each side pins the
//! peer's certificate in `x509_cert` on first use.
//!
//! Existing clusters use 1024-bit RSA keys, which rustls's providers refuse:
//! such keys sign through the `rsa` crate, and peers' handshake signatures
//! with them are verified the same way. Everything else goes through the
//! ring provider unchanged.

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Verifier};
use rsa::traits::PublicKeyParts;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, Signer, SigningKey, SingleCertAndKey};
use rustls::{
    DigitallySignedStruct, DistinguishedName, Error, SignatureAlgorithm, SignatureScheme,
};
use std::sync::Arc;

/// The smallest RSA key accepted from a peer or for ourselves.
const MIN_RSA_BITS: usize = 1024;

pub fn key_file(sysdir: &[u8]) -> Vec<u8> {
    crate::msg!(sysdir, "/csync2_ssl_key.pem")
}

pub fn cert_file(sysdir: &[u8]) -> Vec<u8> {
    crate::msg!(sysdir, "/csync2_ssl_cert.pem")
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

// ---- our key ----------------------------------------------------------------

/// An RSA key rustls's provider refuses (fewer than 2048 bits).
#[derive(Debug)]
struct SmallRsaKey {
    key: rsa::RsaPrivateKey,
}

const RSA_SCHEMES: [SignatureScheme; 6] = [
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA512,
];

impl SigningKey for SmallRsaKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        RSA_SCHEMES
            .iter()
            .find(|s| offered.contains(s))
            .map(|&scheme| {
                Box::new(SmallRsaSigner {
                    key: self.key.clone(),
                    scheme,
                }) as Box<dyn Signer>
            })
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::RSA
    }
}

#[derive(Debug)]
struct SmallRsaSigner {
    key: rsa::RsaPrivateKey,
    scheme: SignatureScheme,
}

/// PSS with the hash length as salt, or the largest salt the key can hold
/// (a 1024-bit key cannot hold a 64-byte salt with SHA-512).
fn pss_sign<D>(key: &rsa::RsaPrivateKey, message: &[u8]) -> Result<Vec<u8>, Error>
where
    D: 'static
        + sha2::Digest
        + sha2::digest::DynDigest
        + sha2::digest::FixedOutputReset
        + Send
        + Sync,
{
    use rsa::signature::RandomizedSigner;
    let h = <D as sha2::Digest>::output_size();
    let salt = h.min(key.size().saturating_sub(h + 2));
    rsa::pss::BlindedSigningKey::<D>::new_with_salt_len(key.clone(), salt)
        .try_sign_with_rng(&mut rand_core::OsRng, message)
        .map(|s| s.to_vec())
        .map_err(|e| Error::General(format!("RSA-PSS signing failed: {e}")))
}

fn pkcs1_sign<D>(key: &rsa::RsaPrivateKey, message: &[u8]) -> Result<Vec<u8>, Error>
where
    D: 'static + sha2::Digest + rsa::pkcs8::AssociatedOid,
{
    use rsa::signature::Signer;
    rsa::pkcs1v15::SigningKey::<D>::new(key.clone())
        .try_sign(message)
        .map(|s| s.to_vec())
        .map_err(|e| Error::General(format!("RSA signing failed: {e}")))
}

impl Signer for SmallRsaSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        use sha2::{Sha256, Sha384, Sha512};
        match self.scheme {
            SignatureScheme::RSA_PSS_SHA256 => pss_sign::<Sha256>(&self.key, message),
            SignatureScheme::RSA_PSS_SHA384 => pss_sign::<Sha384>(&self.key, message),
            SignatureScheme::RSA_PSS_SHA512 => pss_sign::<Sha512>(&self.key, message),
            SignatureScheme::RSA_PKCS1_SHA256 => pkcs1_sign::<Sha256>(&self.key, message),
            SignatureScheme::RSA_PKCS1_SHA384 => pkcs1_sign::<Sha384>(&self.key, message),
            SignatureScheme::RSA_PKCS1_SHA512 => pkcs1_sign::<Sha512>(&self.key, message),
            _ => Err(Error::General("unsupported RSA scheme".into())),
        }
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

fn signing_key(der: &PrivateKeyDer<'_>) -> Result<Arc<dyn SigningKey>, String> {
    if let Ok(k) = rustls::crypto::ring::sign::any_supported_type(der) {
        return Ok(k);
    }
    let key = match der {
        PrivateKeyDer::Pkcs1(k) => rsa::RsaPrivateKey::from_pkcs1_der(k.secret_pkcs1_der())
            .map_err(|e| format!("unsupported private key: {e}"))?,
        PrivateKeyDer::Pkcs8(k) => rsa::RsaPrivateKey::from_pkcs8_der(k.secret_pkcs8_der())
            .map_err(|e| format!("unsupported private key: {e}"))?,
        _ => return Err("unsupported private key type".to_string()),
    };
    if key.size() * 8 < MIN_RSA_BITS {
        return Err(format!("RSA key of {} bits is too small", key.size() * 8));
    }
    Ok(Arc::new(SmallRsaKey { key }))
}

/// Our certificate and key.
pub struct Identity {
    key: Arc<CertifiedKey>,
    /// a small RSA key: TLS 1.2 only (TLS 1.3 needs RSA-PSS, which GnuTLS
    /// peers refuse from such keys)
    small_rsa: bool,
}

/// Loads our certificate and key; Err is the real program's message.
pub fn load_identity(sysdir: &[u8]) -> Result<Identity, String> {
    let kf = key_file(sysdir);
    let cf = cert_file(sysdir);
    let fail = |why: String| {
        format!(
            "SSL: failed to use key file {} and/or certificate file {}: {why}",
            String::from_utf8_lossy(&kf),
            String::from_utf8_lossy(&cf)
        )
    };
    let read = |p: &[u8]| std::fs::read(crate::paths::as_path(p));
    // GnuTLS's words for a file it cannot read
    let unreadable = |_| fail("Error while reading file. (GNUTLS_E_FILE_ERROR)".to_string());
    let cert_pem = read(&cf).map_err(unreadable)?;
    let key_pem = read(&kf).map_err(unreadable)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no certificate found".to_string()));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("no private key found".to_string()))?;
    let small_rsa = rustls::crypto::ring::sign::any_supported_type(&key).is_err();
    let signing = signing_key(&key).map_err(fail)?;
    Ok(Identity {
        key: Arc::new(CertifiedKey::new(certs, signing)),
        small_rsa,
    })
}

static TLS12_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];

fn versions(id: &Identity) -> &'static [&'static rustls::SupportedProtocolVersion] {
    if id.small_rsa {
        &TLS12_ONLY
    } else {
        rustls::DEFAULT_VERSIONS
    }
}

// ---- the peer's certificate ---------------------------------------------------

/// The DER bytes (tag, length, content) of the element starting at `i`.
fn der_element(d: &[u8], i: usize) -> Option<(u8, usize, usize)> {
    let tag = *d.get(i)?;
    let first = *d.get(i + 1)? as usize;
    let (len, hdr) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for k in 0..n {
            len = (len << 8) | *d.get(i + 2 + k)? as usize;
        }
        (len, 2 + n)
    };
    let start = i + hdr;
    let end = start.checked_add(len)?;
    (end <= d.len()).then_some((tag, start, end))
}

/// The SubjectPublicKeyInfo of an X.509 certificate.
fn spki(cert: &[u8]) -> Option<&[u8]> {
    let (_, c0, _) = der_element(cert, 0)?;
    let (_, t0, t1) = der_element(cert, c0)?;
    let mut i = t0;
    let mut seen = 0;
    while i < t1 {
        let (tag, _, end) = der_element(cert, i)?;
        if tag != 0xa0 {
            // serial, signature, issuer, validity, subject, spki
            seen += 1;
            if seen == 6 {
                return Some(&cert[i..end]);
            }
        }
        i = end;
    }
    None
}

fn rsa_verify(
    message: &[u8],
    cert: &[u8],
    scheme: SignatureScheme,
    sig: &[u8],
) -> Result<(), Error> {
    use sha2::{Sha256, Sha384, Sha512};
    let bad = || Error::General("invalid peer signature".into());
    let spki = spki(cert).ok_or_else(bad)?;
    let key = rsa::RsaPublicKey::from_public_key_der(spki).map_err(|_| bad())?;
    if key.size() * 8 < MIN_RSA_BITS {
        return Err(bad());
    }
    macro_rules! check {
        ($module:ident, $hash:ty) => {{
            let s = rsa::$module::Signature::try_from(sig).map_err(|_| bad())?;
            rsa::$module::VerifyingKey::<$hash>::new(key)
                .verify(message, &s)
                .map_err(|_| bad())
        }};
    }
    match scheme {
        SignatureScheme::RSA_PSS_SHA256 => pss_any_salt::<Sha256>(&key, message, sig),
        SignatureScheme::RSA_PSS_SHA384 => pss_any_salt::<Sha384>(&key, message, sig),
        SignatureScheme::RSA_PSS_SHA512 => pss_any_salt::<Sha512>(&key, message, sig),
        SignatureScheme::RSA_PKCS1_SHA256 => check!(pkcs1v15, Sha256),
        SignatureScheme::RSA_PKCS1_SHA384 => check!(pkcs1v15, Sha384),
        SignatureScheme::RSA_PKCS1_SHA512 => check!(pkcs1v15, Sha512),
        _ => Err(bad()),
    }
}

/// RSA-PSS with whatever salt length fits: TLS wants the hash length, but
/// a small key cannot hold it with SHA-512, and GnuTLS then uses a shorter
/// salt.
fn pss_any_salt<D>(key: &rsa::RsaPublicKey, message: &[u8], sig: &[u8]) -> Result<(), Error>
where
    D: 'static + sha2::Digest + sha2::digest::DynDigest + Send + Sync,
{
    let hashed = D::digest(message);
    let h = <D as sha2::Digest>::output_size();
    let max = key.size().saturating_sub(h + 2);
    let mut lengths = vec![h.min(max), max];
    lengths.extend((0..max).rev());
    if lengths.into_iter().any(|s| {
        key.verify(rsa::Pss::new_with_salt::<D>(s), &hashed, sig)
            .is_ok()
    }) {
        Ok(())
    } else {
        Err(Error::General("invalid peer signature".into()))
    }
}

/// Accepts any certificate (pinning decides later) but checks that the peer
/// holds its key.
#[derive(Debug)]
struct PinLater {
    algs: WebPkiSupportedAlgorithms,
}

impl PinLater {
    fn new() -> PinLater {
        PinLater {
            algs: provider().signature_verification_algorithms,
        }
    }

    fn verify(
        &self,
        tls13: bool,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let r = if tls13 {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
        } else {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
        };
        match r {
            Ok(v) => Ok(v),
            // small RSA keys, which the provider refuses
            Err(e) => match rsa_verify(message, cert.as_ref(), dss.scheme, dss.signature()) {
                Ok(()) => Ok(HandshakeSignatureValid::assertion()),
                Err(e2) => {
                    crate::log::debug(
                        3,
                        format!("TLS: peer signature ({:?}) rejected: {e}; {e2}", dss.scheme),
                    );
                    Err(e)
                }
            },
        }
    }
}

impl ServerCertVerifier for PinLater {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.verify(false, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.verify(true, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        offered_schemes(&self.algs)
    }
}

impl ClientCertVerifier for PinLater {
    /// No CA names: GnuTLS clients send no certificate when their issuer is
    /// not among the names (protocol.md §5.5).
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.verify(false, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.verify(true, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        offered_schemes(&self.algs)
    }
}

/// The schemes we offer, with RSA-PSS-SHA256 before the longer PSS hashes:
/// GnuTLS signs with the first PSS scheme offered, and a SHA-512 PSS
/// signature does not fit a 1024-bit key (GNUTLS_E_CONSTRAINT_ERROR).
fn offered_schemes(algs: &WebPkiSupportedAlgorithms) -> Vec<SignatureScheme> {
    let mut v = algs.supported_schemes();
    if let Some(i) = v.iter().position(|s| *s == SignatureScheme::RSA_PSS_SHA256) {
        let s = v.remove(i);
        let first_pss = v
            .iter()
            .position(|s| {
                matches!(
                    s,
                    SignatureScheme::RSA_PSS_SHA384 | SignatureScheme::RSA_PSS_SHA512
                )
            })
            .unwrap_or(v.len());
        v.insert(first_pss.min(i), s);
    }
    v
}

// ---- sessions -------------------------------------------------------------------

use crate::protocol::conn::Stream;

/// The real program's words for a peer that left during the handshake.
const PREMATURE: &str =
    "The TLS connection was non-properly terminated. (GNUTLS_E_PREMATURE_TERMINATION)";

/// A finished handshake: the encrypted stream and the peer's certificate.
pub struct Established {
    pub stream: Box<dyn Stream>,
    pub peer_cert: Vec<u8>,
}

fn handshake<C, S>(mut conn: C, mut sock: Box<dyn Stream>) -> Result<Established, String>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<S>> + Send + 'static,
    S: rustls::SideData + 'static,
    rustls::StreamOwned<C, Box<dyn Stream>>: Stream,
{
    while conn.is_handshaking() {
        match conn.complete_io(&mut sock) {
            Ok((0, 0)) if conn.is_handshaking() => {
                return Err(PREMATURE.to_string());
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(PREMATURE.to_string());
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    let peer_cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .ok_or_else(|| "the peer sent no certificate".to_string())?;
    Ok(Established {
        stream: Box::new(rustls::StreamOwned::new(conn, sock)),
        peer_cert,
    })
}

/// The server side of the handshake (after `OK (activating_ssl).`).
pub fn accept(sock: Box<dyn Stream>, identity: Identity) -> Result<Established, String> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(&identity))
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(Arc::new(PinLater::new()))
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(identity.key)));
    // no session tickets: the real client reads a post-handshake message as
    // the end of the connection (GnuTLS returns EAGAIN for it)
    let mut config = config;
    config.send_tls13_tickets = 0;
    let conn = rustls::ServerConnection::new(Arc::new(config)).map_err(|e| e.to_string())?;
    handshake(conn, sock)
}

/// The client side of the handshake (after `OK (activating_ssl).`).
pub fn connect(
    sock: Box<dyn Stream>,
    identity: Identity,
    peer: &[u8],
) -> Result<Established, String> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(&identity))
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinLater::new()))
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(identity.key)));
    config.enable_sni = false;
    let name = ServerName::try_from(String::from_utf8_lossy(peer).into_owned())
        .unwrap_or_else(|_| ServerName::try_from("csync2").expect("a valid name"));
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    handshake(conn, sock)
}

/// A certificate as the `x509_cert` table stores it: upper-case hex DER.
pub fn cert_hex(der: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(der.len() * 2);
    for b in der {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
    out
}

/// Trust on first use: Ok(true) when `peer`'s certificate matches the
/// pinned one or was pinned now.
pub fn pin(db: &mut crate::db::Db, peer: &[u8], der: &[u8]) -> Result<bool, crate::db::DbError> {
    match db.peer_cert(peer)? {
        Some(known) => Ok(matches_pinned(&known, der)),
        None => {
            let hex = cert_hex(der);
            crate::log::debug(1, crate::msg!("Adding peer x509 certificate to db: ", hex));
            db.add_peer_cert(peer, &hex)?;
            db.commit()?;
            Ok(true)
        }
    }
}

/// The certificate is the one pinned for the peer (`known`: its hex).
pub fn matches_pinned(known: &[u8], der: &[u8]) -> bool {
    let hex = cert_hex(der);
    crate::log::debug(2, crate::msg!("Peer x509 certificate is: ", hex));
    known == hex.as_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &[u8] = include_bytes!("../tests/data/tls/rsa1024-cert.der");
    const MSG: &[u8] = include_bytes!("../tests/data/tls/rsa1024-msg");

    /// Signatures made by openssl with a 1024-bit key, as in old clusters;
    /// GnuTLS signs PSS-SHA512 with the largest salt that fits.
    #[test]
    fn small_rsa_signatures_verify() {
        let s = spki(CERT).expect("spki");
        assert!(rsa::RsaPublicKey::from_public_key_der(s).is_ok());
        let cases: [(&[u8], SignatureScheme); 3] = [
            (
                include_bytes!("../tests/data/tls/rsa1024-msg.sig-pkcs1-sha256"),
                SignatureScheme::RSA_PKCS1_SHA256,
            ),
            (
                include_bytes!("../tests/data/tls/rsa1024-msg.sig-pss-sha256"),
                SignatureScheme::RSA_PSS_SHA256,
            ),
            (
                include_bytes!("../tests/data/tls/rsa1024-msg.sig-pss-sha512-maxsalt"),
                SignatureScheme::RSA_PSS_SHA512,
            ),
        ];
        for (sig, scheme) in cases {
            rsa_verify(MSG, CERT, scheme, sig).unwrap_or_else(|e| panic!("{scheme:?}: {e}"));
            let mut bad = sig.to_vec();
            bad[10] ^= 1;
            assert!(rsa_verify(MSG, CERT, scheme, &bad).is_err(), "{scheme:?}");
            assert!(
                rsa_verify(b"other", CERT, scheme, sig).is_err(),
                "{scheme:?}"
            );
        }
    }

    #[test]
    fn small_rsa_signer_roundtrip() {
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 1024).unwrap();
        let public = rsa::RsaPublicKey::from(&key);
        let sk = SmallRsaKey { key };
        for scheme in RSA_SCHEMES {
            let signer = sk.choose_scheme(&[scheme]).expect("scheme");
            let sig = signer.sign(b"message").unwrap();
            use sha2::{Digest, Sha256, Sha384, Sha512};
            let ok = match scheme {
                SignatureScheme::RSA_PSS_SHA256 => {
                    pss_any_salt::<Sha256>(&public, b"message", &sig)
                }
                SignatureScheme::RSA_PSS_SHA384 => {
                    pss_any_salt::<Sha384>(&public, b"message", &sig)
                }
                SignatureScheme::RSA_PSS_SHA512 => {
                    pss_any_salt::<Sha512>(&public, b"message", &sig)
                }
                SignatureScheme::RSA_PKCS1_SHA256 => public
                    .verify(
                        rsa::Pkcs1v15Sign::new::<Sha256>(),
                        &Sha256::digest(b"message"),
                        &sig,
                    )
                    .map_err(|_| Error::General("x".into())),
                SignatureScheme::RSA_PKCS1_SHA384 => public
                    .verify(
                        rsa::Pkcs1v15Sign::new::<Sha384>(),
                        &Sha384::digest(b"message"),
                        &sig,
                    )
                    .map_err(|_| Error::General("x".into())),
                _ => public
                    .verify(
                        rsa::Pkcs1v15Sign::new::<Sha512>(),
                        &Sha512::digest(b"message"),
                        &sig,
                    )
                    .map_err(|_| Error::General("x".into())),
            };
            ok.unwrap_or_else(|e| panic!("{scheme:?}: {e}"));
        }
    }

    #[test]
    fn cert_hex_is_upper_case() {
        assert_eq!(cert_hex(&[0x30, 0xab, 0x01]), b"30AB01");
    }
}
