//! `csync2 --gen-cert [--rsa] [--force]` (our addition): a self-signed
//! certificate and its key in the system directory, as the TLS code loads
//! them (`csync2_ssl_cert.pem`, `csync2_ssl_key.pem`), without openssl.
//!
//! Every node gets the same subject on purpose: a real (GnuTLS) client only
//! sends its certificate when its issuer is among the names the real server
//! advertises, which are the subjects in the server's own certificate file
//! (protocol.md §5.5). Peers pin each other's whole certificate, so equal
//! subjects lose nothing.

use crate::{log, msg, paths};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

pub const SUBJECT_ORG: &str = "csync2 cluster";
const RSA_BITS: usize = 2048;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenCertOptions {
    /// an RSA key instead of ECDSA P-256
    pub rsa: bool,
    /// replace existing files
    pub force: bool,
}

/// PEM of a new key and of its self-signed certificate.
pub fn make(rsa: bool) -> Result<(String, String), String> {
    let key = if rsa {
        use rsa::pkcs8::EncodePrivateKey;
        let k = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, RSA_BITS)
            .map_err(|e| format!("RSA key generation failed: {e}"))?;
        let der = k
            .to_pkcs8_der()
            .map_err(|e| format!("RSA key encoding failed: {e}"))?;
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from(der.as_bytes().to_vec());
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256)
    } else {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
    }
    .map_err(|e| format!("key generation failed: {e}"))?;
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, SUBJECT_ORG);
    params.distinguished_name = dn;
    // RFC 5280 §4.1.2.5: the value for "no well-defined expiration date"
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(9999, 12, 31);
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("certificate signing failed: {e}"))?;
    Ok((key.serialize_pem(), cert.pem()))
}

/// Writes `data` to `path` through a temporary file in the same directory;
/// `replace`: rename over an existing file, else never touch one.
fn write_new(path: &[u8], data: &[u8], mode: u32, replace: bool) -> std::io::Result<()> {
    // per process: a leftover from a killed run never blocks the next one
    let tmp = msg!(path, ".new.", std::process::id().to_string());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(paths::as_path(&tmp))?;
    let done = f.write_all(data).and_then(|_| f.sync_all()).and_then(|_| {
        if replace {
            std::fs::rename(paths::as_path(&tmp), paths::as_path(path))
        } else {
            // fails if the file appeared meanwhile
            std::fs::hard_link(paths::as_path(&tmp), paths::as_path(path))
                .and_then(|_| std::fs::remove_file(paths::as_path(&tmp)))
        }
    });
    if done.is_err() {
        let _ = std::fs::remove_file(paths::as_path(&tmp));
    }
    done
}

/// Returns the exit code.
pub fn generate(sysdir: &[u8], o: &GenCertOptions) -> i32 {
    let key_path = crate::tls::key_file(sysdir);
    let cert_path = crate::tls::cert_file(sysdir);
    if !o.force {
        for p in [&cert_path, &key_path] {
            if std::fs::symlink_metadata(paths::as_path(p)).is_ok() {
                log::debug(
                    0,
                    msg!(
                        p,
                        " already exists; use --gen-cert --force to replace it ",
                        "(peers that pinned the old certificate will refuse the new one)."
                    ),
                );
                return 1;
            }
        }
    }
    let (key, cert) = match make(o.rsa) {
        Ok(x) => x,
        Err(e) => {
            log::debug(0, e);
            return 1;
        }
    };
    // the key first: a certificate without its key is useless
    for (p, data, mode) in [(&key_path, &key, 0o600), (&cert_path, &cert, 0o644)] {
        if let Err(e) = write_new(p, data.as_bytes(), mode, o.force) {
            log::debug(0, msg!("Can't write ", p, ": ", log::strerror(&e)));
            return 1;
        }
    }
    let kind = if o.rsa {
        format!("RSA {RSA_BITS}")
    } else {
        "ECDSA P-256".to_string()
    };
    let mut out = std::io::stdout();
    let _ = out.write_all(&msg!(
        "Wrote ",
        cert_path,
        " and ",
        key_path,
        " (",
        kind,
        ", subject O=",
        SUBJECT_ORG,
        ").\n"
    ));
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_load_as_a_tls_identity() {
        for rsa in [false, true] {
            let dir = std::env::temp_dir().join(format!("c2gencert{}{rsa}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let sysdir = dir.to_str().unwrap().as_bytes().to_vec();
            let o = GenCertOptions { rsa, force: false };
            assert_eq!(generate(&sysdir, &o), 0);
            crate::tls::load_identity(&sysdir).expect("loads");
            let before = std::fs::read(dir.join("csync2_ssl_cert.pem")).unwrap();
            assert_eq!(generate(&sysdir, &o), 1, "no overwrite without --force");
            assert_eq!(
                std::fs::read(dir.join("csync2_ssl_cert.pem")).unwrap(),
                before
            );
            let o = GenCertOptions { rsa, force: true };
            assert_eq!(generate(&sysdir, &o), 0);
            assert_ne!(
                std::fs::read(dir.join("csync2_ssl_cert.pem")).unwrap(),
                before
            );
            use std::os::unix::fs::PermissionsExt;
            let m = std::fs::metadata(dir.join("csync2_ssl_key.pem")).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o600);
            let names: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
