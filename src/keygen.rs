//! `csync2 -k FILE`: a new group key (cli.md §11).

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";

/// 48 random bytes, 6 bits per character: 64 characters and a newline.
pub fn key_from_random(random: &[u8; 48]) -> Vec<u8> {
    let mut out = Vec::with_capacity(65);
    for chunk in random.chunks(3) {
        let v = (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]);
        for shift in [18, 12, 6, 0] {
            out.push(ALPHABET[((v >> shift) & 63) as usize]);
        }
    }
    out.push(b'\n');
    out
}

/// Returns the exit code.
pub fn generate(path: &[u8]) -> i32 {
    use std::os::unix::ffi::OsStrExt;
    let mut random = [0u8; 48];
    match std::fs::File::open("/dev/urandom") {
        Ok(mut f) => {
            if let Err(e) = f.read_exact(&mut random) {
                eprintln!(
                    "Failed to read 48 bytes from /dev/urandom: {}",
                    crate::log::strerror(&e)
                );
                return 1;
            }
        }
        Err(e) => {
            eprintln!("Can't open /dev/urandom: {}", crate::log::strerror(&e));
            return 1;
        }
    }
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(path));
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("Can't create key file: {}", crate::log::strerror(&e));
            return 1;
        }
    };
    if let Err(e) = f
        .write_all(&key_from_random(&random))
        .and_then(|_| f.sync_all())
    {
        eprintln!("Failed to write out keyfile: {}", crate::log::strerror(&e));
        let _ = std::fs::remove_file(path);
        return 1;
    }
    0
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_format() {
        let k = super::key_from_random(&[0xff; 48]);
        assert_eq!(k.len(), 65);
        assert_eq!(&k[..64], &[b'_'; 64][..]);
        let k = super::key_from_random(&[0; 48]);
        assert_eq!(&k[..4], b"AAAA");
    }
}
