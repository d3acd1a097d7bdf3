//! rsync signatures and deltas in librsync's MD4 format (protocol.md §4),
//! through fast_rsync, byte-identical to the real peer's.
//!
//! Files are processed in chunks so memory stays flat for huge files:
//! signatures are computed over block-aligned chunks (the same bytes as one
//! pass), deltas are computed per chunk of the new file against the whole
//! signature and concatenated (COPY offsets refer to the basis, so the
//! pieces stay valid; only matches across a chunk edge become literals),
//! and patches are applied as a stream.

use fast_rsync::{Signature, SignatureOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

pub const BLOCK_SIZE: u32 = 2048;
pub const STRONG_LEN: u32 = 16;

/// What the real server sends in PATCH for a file that does not exist:
/// MD4 magic, block 2048, strong length 8, no blocks.
pub const NO_BASIS_SIGNATURE: [u8; 12] = [0x72, 0x73, 0x01, 0x36, 0, 0, 0x08, 0, 0, 0, 0, 0x08];

const DELTA_MAGIC: [u8; 4] = [0x72, 0x73, 0x02, 0x36];
const SIG_HEADER: usize = 12;
/// Signature chunk: a multiple of the block size.
const SIG_CHUNK: usize = 512 * BLOCK_SIZE as usize;
/// Delta chunk of the new file.
const DELTA_CHUNK: usize = 8 << 20;

fn options() -> SignatureOptions {
    SignatureOptions {
        block_size: BLOCK_SIZE,
        crypto_hash_size: STRONG_LEN,
    }
}

/// Reads as much as fits in `buf` (short only at EOF).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The signature of a file, read in chunks.
pub fn signature_of(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; SIG_CHUNK];
    let mut out: Option<Vec<u8>> = None;
    loop {
        let n = read_full(r, &mut buf)?;
        if n == 0 && out.is_some() {
            break;
        }
        let part = Signature::calculate(&buf[..n], options()).into_serialized();
        match &mut out {
            None => out = Some(part),
            Some(o) => o.extend_from_slice(&part[SIG_HEADER..]),
        }
        if n < buf.len() {
            break;
        }
    }
    Ok(out.unwrap_or_default())
}

/// Writes a delta for the content read from `new` into `out`.
pub fn delta_stream(sig: &[u8], new: &mut impl Read, out: &mut impl Write) -> Result<(), String> {
    let sig = Signature::deserialize(sig.to_vec()).map_err(|e| e.to_string())?;
    let index = sig.index();
    out.write_all(&DELTA_MAGIC).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; DELTA_CHUNK];
    let mut piece = Vec::new();
    loop {
        let n = read_full(new, &mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        piece.clear();
        fast_rsync::diff(&index, &buf[..n], &mut piece).map_err(|e| e.to_string())?;
        // each piece is magic, commands, END
        let body = &piece[DELTA_MAGIC.len()..piece.len() - 1];
        out.write_all(body).map_err(|e| e.to_string())?;
        if n < buf.len() {
            break;
        }
    }
    out.write_all(&[0]).map_err(|e| e.to_string())
}

fn read_be(r: &mut impl Read, width: usize) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b[8 - width..])?;
    Ok(u64::from_be_bytes(b))
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Applies a delta read from `delta` (exactly its bytes) to the basis file
/// (None: empty), writing to `out`; at most `limit` output bytes.
pub fn apply_stream(
    basis: Option<&std::fs::File>,
    delta: &mut impl Read,
    out: &mut impl Write,
    limit: u64,
) -> io::Result<()> {
    let mut magic = [0u8; 4];
    delta.read_exact(&mut magic)?;
    if magic != DELTA_MAGIC {
        return Err(bad("bad delta magic"));
    }
    let mut written: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut op = [0u8; 1];
        delta.read_exact(&mut op)?;
        let op = op[0];
        let (copy, offset, len) = match op {
            0 => return Ok(()),
            1..=0x40 => (false, 0, u64::from(op)),
            0x41..=0x44 => (false, 0, read_be(delta, 1 << (op - 0x41))?),
            0x45..=0x54 => {
                let k = op - 0x45;
                let ow = 1usize << (k / 4);
                let lw = 1usize << (k % 4);
                let off = read_be(delta, ow)?;
                (true, off, read_be(delta, lw)?)
            }
            _ => return Err(bad("bad delta command")),
        };
        written = written
            .checked_add(len)
            .ok_or_else(|| bad("delta too long"))?;
        if written > limit {
            return Err(bad("delta result too large"));
        }
        let mut left = len;
        let mut pos = offset;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            if copy {
                let f = basis.ok_or_else(|| bad("copy without a basis"))?;
                f.read_exact_at(&mut buf[..n], pos)
                    .map_err(|_| bad("copy beyond the basis"))?;
                pos += n as u64;
            } else {
                delta.read_exact(&mut buf[..n])?;
            }
            out.write_all(&buf[..n])?;
            left -= n as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One-pass signature: the reference for the chunked one.
    fn signature(data: &[u8]) -> Vec<u8> {
        Signature::calculate(data, options()).into_serialized()
    }

    fn delta(sig: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        delta_stream(sig, &mut &data[..], &mut out)?;
        Ok(out)
    }

    /// fast_rsync's own applier: the reference for the streaming one.
    fn apply(basis: &[u8], delta: &[u8], out: &mut impl Write) -> Result<(), String> {
        fast_rsync::apply(basis, delta, out).map_err(|e| e.to_string())
    }

    #[test]
    fn signature_matches_librsync() {
        // protocol.md §4.2: "hello world\n"
        let s = signature(b"hello world\n");
        let hex: String = s.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "72730136000008000000001027d805da97668ab2f29d0115bd0d1161b9bec520"
        );
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn chunked_signature_equals_one_pass() {
        for n in [
            0,
            1,
            2047,
            2048,
            2049,
            SIG_CHUNK - 1,
            SIG_CHUNK,
            SIG_CHUNK + 5,
            3 * SIG_CHUNK,
        ] {
            let data = pseudo_random(n, n as u64 + 1);
            assert_eq!(
                signature_of(&mut &data[..]).unwrap(),
                signature(&data),
                "{n}"
            );
        }
    }

    #[test]
    fn chunked_delta_applies_with_both_appliers() {
        let old = pseudo_random(DELTA_CHUNK + 300_000, 7);
        let mut new = old.clone();
        new[5000] ^= 1;
        new.splice(
            DELTA_CHUNK - 10..DELTA_CHUNK - 10,
            b"inserted across the edge".iter().copied(),
        );
        new.extend_from_slice(b"tail");
        let d = delta(&signature(&old), &new).unwrap();
        assert!(d.len() < new.len() / 10, "the delta reuses the basis");
        let mut out = Vec::new();
        apply(&old, &d, &mut out).unwrap();
        assert_eq!(out, new);
        let dir = std::env::temp_dir().join(format!("c2delta{}", std::process::id()));
        std::fs::write(&dir, &old).unwrap();
        let f = std::fs::File::open(&dir).unwrap();
        let mut out = Vec::new();
        apply_stream(Some(&f), &mut &d[..], &mut out, u64::MAX).unwrap();
        assert_eq!(out, new);
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn no_basis_and_bad_deltas() {
        let d = delta(&NO_BASIS_SIGNATURE, b"fresh").unwrap();
        let mut out = Vec::new();
        apply_stream(None, &mut &d[..], &mut out, 100).unwrap();
        assert_eq!(out, b"fresh");
        let mut out = Vec::new();
        assert!(
            apply_stream(None, &mut &d[..], &mut out, 3).is_err(),
            "limit"
        );
        assert!(
            apply_stream(
                None,
                &mut &b"\x72\x73\x02\x36\x45\x00\x05\x00"[..],
                &mut out,
                100
            )
            .is_err()
        );
        assert!(apply_stream(None, &mut &b"junk"[..], &mut out, 100).is_err());
        assert!(
            apply_stream(None, &mut &d[..d.len() - 1], &mut out, 100).is_err(),
            "truncated"
        );
    }
}
