//! rsync signatures and deltas in librsync's MD4 format (protocol.md §4),
//! through fast_rsync, byte-identical to the real peer's.

use fast_rsync::{Signature, SignatureOptions};

pub const BLOCK_SIZE: u32 = 2048;
pub const STRONG_LEN: u32 = 16;

/// What the real server sends in PATCH for a file that does not exist:
/// MD4 magic, block 2048, strong length 8, no blocks.
pub const NO_BASIS_SIGNATURE: [u8; 12] = [0x72, 0x73, 0x01, 0x36, 0, 0, 0x08, 0, 0, 0, 0, 0x08];

pub fn signature(data: &[u8]) -> Vec<u8> {
    Signature::calculate(
        data,
        SignatureOptions {
            block_size: BLOCK_SIZE,
            crypto_hash_size: STRONG_LEN,
        },
    )
    .into_serialized()
}

/// A delta turning the basis described by `sig` into `data`.
pub fn delta(sig: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    let sig = Signature::deserialize(sig.to_vec()).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(data.len() / 8 + 16);
    fast_rsync::diff(&sig.index(), data, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Applies a delta to `basis`, writing the result to `out`.
pub fn apply(basis: &[u8], delta: &[u8], out: &mut impl std::io::Write) -> Result<(), String> {
    fast_rsync::apply(basis, delta, out).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn delta_roundtrip_and_no_basis() {
        let old = vec![7u8; 10000];
        let mut new = old.clone();
        new[5000] = 1;
        new.extend_from_slice(b"tail");
        let d = delta(&signature(&old), &new).unwrap();
        let mut out = Vec::new();
        apply(&old, &d, &mut out).unwrap();
        assert_eq!(out, new);
        let d = delta(&NO_BASIS_SIGNATURE, b"fresh").unwrap();
        let mut out = Vec::new();
        apply(b"", &d, &mut out).unwrap();
        assert_eq!(out, b"fresh");
    }
}
