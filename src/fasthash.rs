//! A fast hasher for maps keyed by file names of the local tree (the keys
//! come from our own database and file system, not from the network, so
//! SipHash's flooding resistance buys nothing there and costs ~10% of -cr).

use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl FastHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub type FastMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    fn h(b: &[u8]) -> u64 {
        let mut s = FastHasher::default();
        b.hash(&mut s);
        s.finish()
    }

    #[test]
    fn distinguishes_similar_names() {
        let names: Vec<Vec<u8>> = (0..10000)
            .map(|i| format!("/tree/pkg/mod/file{i:05}.c").into_bytes())
            .collect();
        let mut seen: std::collections::HashSet<u64> = names.iter().map(|n| h(n)).collect();
        assert_eq!(seen.len(), names.len());
        seen.clear();
        assert_ne!(h(b"ab"), h(b"ab\0"));
    }
}
