//! rsync signatures and deltas in librsync's MD4 format (protocol.md §4),
//! through fast_rsync, byte-identical to the real peer's.
//!
//! Memory stays flat for huge files:
//! * signatures are computed over block-aligned chunks (the same bytes as
//!   one pass) and spooled to an anonymous file once they outgrow
//!   [`SIG_MEM_MAX`];
//! * a peer's signature is compared with ours chunk by chunk, never held;
//! * deltas are computed per chunk of the new file and concatenated (COPY
//!   offsets refer to the basis, so the pieces stay valid; only matches
//!   across a chunk edge become literals). Up to [`WINDOW_BLOCKS`] basis
//!   blocks are indexed at once; against a bigger basis each region of the
//!   new file is matched with the basis blocks around the same offset (a
//!   window), so data that moved further than that is sent as literals;
//! * patches are applied as a stream.

use fast_rsync::{Signature, SignatureOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::FileExt;

pub const BLOCK_SIZE: u32 = 2048;
pub const STRONG_LEN: u32 = 16;

/// What the real server sends in PATCH for a file that does not exist:
/// MD4 magic, block 2048, strong length 8, no blocks.
pub const NO_BASIS_SIGNATURE: [u8; 12] = [0x72, 0x73, 0x01, 0x36, 0, 0, 0x08, 0, 0, 0, 0, 0x08];

const SIG_MAGIC: [u8; 4] = [0x72, 0x73, 0x01, 0x36];
const DELTA_MAGIC: [u8; 4] = [0x72, 0x73, 0x02, 0x36];
const SIG_HEADER: usize = 12;
/// Signature chunk: a multiple of the block size.
const SIG_CHUNK: usize = 512 * BLOCK_SIZE as usize;
/// Delta chunk of the new file.
const DELTA_CHUNK: usize = 8 << 20;
/// Basis blocks indexed at once (256 MiB of basis; the index costs about
/// 70 bytes per block).
pub const WINDOW_BLOCKS: u64 = 128 * 1024;
/// A signature larger than this is spooled to an anonymous file.
pub const SIG_MEM_MAX: u64 = SIG_HEADER as u64 + WINDOW_BLOCKS * (4 + STRONG_LEN as u64);

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

/// A signature: in memory, or spooled to an anonymous file when large.
#[derive(Debug)]
pub enum Sig {
    Mem(Vec<u8>),
    Spool(std::fs::File, u64),
}

impl Sig {
    pub fn len(&self) -> u64 {
        match self {
            Sig::Mem(v) => v.len() as u64,
            Sig::Spool(_, n) => *n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its bytes from the start, as a stream.
    pub fn reader(&mut self) -> io::Result<Box<dyn Read + '_>> {
        match self {
            Sig::Mem(v) => Ok(Box::new(&v[..])),
            Sig::Spool(f, n) => {
                f.rewind()?;
                Ok(Box::new(Read::take(&*f, *n)))
            }
        }
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        match self {
            Sig::Mem(v) => {
                let s = usize::try_from(off)
                    .ok()
                    .and_then(|o| v.get(o..o.checked_add(buf.len())?))
                    .ok_or_else(|| bad("signature too short"))?;
                buf.copy_from_slice(s);
                Ok(())
            }
            Sig::Spool(f, _) => f.read_exact_at(buf, off),
        }
    }

    /// Appends bytes, moving to a spool file past `mem_max`.
    fn push(&mut self, data: &[u8], mem_max: u64) -> io::Result<()> {
        if let Sig::Mem(v) = self {
            if (v.len() + data.len()) as u64 <= mem_max {
                v.extend_from_slice(data);
                return Ok(());
            }
            let mut f = crate::fsutil::anon_tempfile()?;
            f.write_all(v)?;
            *self = Sig::Spool(f, v.len() as u64);
        }
        let Sig::Spool(f, n) = self else {
            unreachable!("moved to a spool above")
        };
        f.write_all(data)?;
        *n += data.len() as u64;
        Ok(())
    }
}

/// The signature of a file, read in chunks.
pub fn signature_of(r: &mut impl Read) -> io::Result<Sig> {
    signature_spooled(r, SIG_MEM_MAX)
}

fn signature_spooled(r: &mut impl Read, mem_max: u64) -> io::Result<Sig> {
    let mut buf = vec![0u8; SIG_CHUNK];
    let mut out = Sig::Mem(Vec::new());
    let mut first = true;
    loop {
        let n = read_full(r, &mut buf)?;
        if n == 0 && !first {
            break;
        }
        let part = Signature::calculate(&buf[..n], options()).into_serialized();
        out.push(if first { &part } else { &part[SIG_HEADER..] }, mem_max)?;
        first = false;
        if n < buf.len() {
            break;
        }
    }
    Ok(out)
}

/// The outer result is the peer's stream (an error there leaves the
/// connection out of step), the inner one is local.
pub type PeerResult<T> = io::Result<io::Result<T>>;

/// Reads a signature of `n` bytes from the peer, spooled when large. On a
/// local error the rest is still read, so the stream stays in step.
pub fn read_sig(peer: &mut (impl Read + ?Sized), n: u64) -> PeerResult<Sig> {
    read_sig_spooled(peer, n, SIG_MEM_MAX)
}

fn read_sig_spooled(peer: &mut (impl Read + ?Sized), n: u64, mem_max: u64) -> PeerResult<Sig> {
    let mut left = n;
    let mut out = Sig::Mem(Vec::new());
    let mut buf = vec![0u8; 64 * 1024];
    let mut local = None;
    while left > 0 {
        let k = left.min(buf.len() as u64) as usize;
        peer.read_exact(&mut buf[..k])?;
        left -= k as u64;
        if local.is_none()
            && let Err(e) = out.push(&buf[..k], mem_max)
        {
            local = Some(e);
        }
    }
    Ok(match local {
        Some(e) => Err(e),
        None => Ok(out),
    })
}

/// Whether the peer's signature (`peer_len` bytes from `peer`, all of
/// them consumed) is the signature of `own`, compared chunk by chunk.
pub fn signature_equals(
    own: &mut impl Read,
    peer: &mut (impl Read + ?Sized),
    peer_len: u64,
) -> PeerResult<bool> {
    let mut left = peer_len;
    let mut same = true;
    let mut local = None;
    let mut buf = vec![0u8; SIG_CHUNK];
    let mut theirs = Vec::new();
    let mut first = true;
    loop {
        let n = match read_full(own, &mut buf) {
            Ok(n) => n,
            Err(e) => {
                local = Some(e);
                break;
            }
        };
        if n == 0 && !first {
            break;
        }
        let part = Signature::calculate(&buf[..n], options()).into_serialized();
        let part = if first {
            &part[..]
        } else {
            &part[SIG_HEADER..]
        };
        first = false;
        if part.len() as u64 > left {
            same = false;
            break;
        }
        theirs.resize(part.len(), 0);
        peer.read_exact(&mut theirs)?;
        left -= part.len() as u64;
        if theirs != part {
            same = false;
            break;
        }
        if n < buf.len() {
            break;
        }
    }
    same &= left == 0;
    let drained = io::copy(&mut peer.take(left), &mut io::sink())?;
    if drained != left {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(match local {
        Some(e) => Err(e),
        None => Ok(same),
    })
}

fn invalid(e: impl std::fmt::Display) -> String {
    format!("invalid signature: {e}")
}

/// Writes a delta for the content read from `new` into `out`.
pub fn delta_stream(sig: &Sig, new: &mut impl Read, out: &mut impl Write) -> Result<(), String> {
    delta_windowed(sig, new, out, WINDOW_BLOCKS)
}

fn delta_windowed(
    sig: &Sig,
    new: &mut impl Read,
    out: &mut impl Write,
    window: u64,
) -> Result<(), String> {
    let mut header = [0u8; SIG_HEADER];
    sig.read_at(&mut header, 0).map_err(invalid)?;
    if header[..4] != SIG_MAGIC {
        return Err(invalid("not an MD4 signature"));
    }
    let block = u64::from(u32::from_be_bytes([
        header[4], header[5], header[6], header[7],
    ]));
    let strong = u64::from(u32::from_be_bytes([
        header[8], header[9], header[10], header[11],
    ]));
    let per = 4 + strong;
    let body = sig.len() - SIG_HEADER as u64;
    if block == 0 || strong == 0 || strong > 16 || !body.is_multiple_of(per) {
        return Err(invalid("bad header or length"));
    }
    let blocks = body / per;
    let w = |e: io::Error| e.to_string();
    out.write_all(&DELTA_MAGIC).map_err(w)?;
    let mut buf = vec![0u8; DELTA_CHUNK];
    let mut piece = Vec::new();
    // new-file bytes matched against one window: half of it, the window
    // reaching a quarter before and after (all of them when it all fits)
    let region = if blocks <= window {
        u64::MAX
    } else {
        (window / 2).max(1) * block
    };
    let mut pos: u64 = 0;
    let mut eof = false;
    while !eof {
        let w0 = if blocks <= window {
            0
        } else {
            (pos / block)
                .saturating_sub(window / 4)
                .min(blocks - window)
        };
        let w1 = (w0 + window).min(blocks);
        let mut part = vec![0u8; (SIG_HEADER as u64 + (w1 - w0) * per) as usize];
        part[..SIG_HEADER].copy_from_slice(&header);
        sig.read_at(&mut part[SIG_HEADER..], SIG_HEADER as u64 + w0 * per)
            .map_err(invalid)?;
        let part = Signature::deserialize(part).map_err(invalid)?;
        let index = part.index();
        let base = w0 * block;
        let end = pos.saturating_add(region);
        while !eof && pos < end {
            let want = buf
                .len()
                .min(usize::try_from(end - pos).unwrap_or(usize::MAX));
            let n = read_full(new, &mut buf[..want]).map_err(w)?;
            pos += n as u64;
            eof = n < want;
            if n == 0 {
                break;
            }
            piece.clear();
            fast_rsync::diff(&index, &buf[..n], &mut piece).map_err(|e| e.to_string())?;
            // each piece is magic, commands, END
            let cmds = &piece[DELTA_MAGIC.len()..piece.len() - 1];
            if base == 0 {
                out.write_all(cmds).map_err(w)?;
            } else {
                rebase(cmds, base, out).map_err(w)?;
            }
        }
    }
    out.write_all(&[0]).map_err(w)
}

fn width_class(v: u64) -> u8 {
    match v {
        0..=0xff => 0,
        0x100..=0xffff => 1,
        0x1_0000..=0xffff_ffff => 2,
        _ => 3,
    }
}

fn put_be(out: &mut impl Write, v: u64, class: u8) -> io::Result<()> {
    out.write_all(&v.to_be_bytes()[8 - (1 << class)..])
}

/// Copies delta commands, moving every COPY offset by `base`.
fn rebase(mut cmds: &[u8], base: u64, out: &mut impl Write) -> io::Result<()> {
    while let Some((&op, rest)) = cmds.split_first() {
        cmds = rest;
        match op {
            1..=0x44 => {
                let (lw, len) = if op <= 0x40 {
                    (0, u64::from(op))
                } else {
                    let lw = 1usize << (op - 0x41);
                    (lw, read_be(&mut &rest[..], lw)?)
                };
                let total = usize::try_from(len)
                    .ok()
                    .and_then(|l| l.checked_add(lw))
                    .filter(|&t| t <= rest.len())
                    .ok_or_else(|| bad("truncated delta"))?;
                out.write_all(&[op])?;
                out.write_all(&rest[..total])?;
                cmds = &rest[total..];
            }
            0x45..=0x54 => {
                let k = op - 0x45;
                let off = read_be(&mut cmds, 1 << (k / 4))?;
                let len = read_be(&mut cmds, 1 << (k % 4))?;
                let off = off
                    .checked_add(base)
                    .ok_or_else(|| bad("offset overflow"))?;
                let (oc, lc) = (width_class(off), width_class(len));
                out.write_all(&[0x45 + oc * 4 + lc])?;
                put_be(out, off, oc)?;
                put_be(out, len, lc)?;
            }
            _ => return Err(bad("bad delta command")),
        }
    }
    Ok(())
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
        delta_stream(&Sig::Mem(sig.to_vec()), &mut &data[..], &mut out)?;
        Ok(out)
    }

    fn bytes(mut s: Sig) -> Vec<u8> {
        let mut v = Vec::new();
        s.reader().unwrap().read_to_end(&mut v).unwrap();
        assert_eq!(v.len() as u64, s.len());
        v
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
            let one = signature(&data);
            assert_eq!(bytes(signature_of(&mut &data[..]).unwrap()), one, "{n}");
            let peer = signature_equals(&mut &data[..], &mut &one[..], one.len() as u64);
            assert!(peer.unwrap().unwrap(), "{n}: equal");
        }
    }

    #[test]
    fn large_signatures_spool_and_compare() {
        // several signature chunks, spooled past 1000 bytes
        let n = 3 * SIG_CHUNK + 4000;
        let data = pseudo_random(n, 3);
        let one = signature(&data);
        let s = signature_spooled(&mut &data[..], 1000).unwrap();
        assert!(matches!(s, Sig::Spool(..)), "spooled");
        assert_eq!(bytes(s), one);
        let back = read_sig_spooled(&mut &one[..], one.len() as u64, 1000)
            .unwrap()
            .unwrap();
        assert!(matches!(back, Sig::Spool(..)));
        assert_eq!(bytes(back), one);
        // a difference anywhere, or a length difference: false, and the
        // peer's bytes are all consumed
        for cut in [0usize, 100, one.len() - 1] {
            let mut other = one.clone();
            other[cut] ^= 1;
            let mut r = &other[..];
            let eq = signature_equals(&mut &data[..], &mut r, other.len() as u64);
            assert!(!eq.unwrap().unwrap(), "{cut}");
            assert!(r.is_empty(), "{cut}: drained");
        }
        let mut longer = one.clone();
        longer.extend_from_slice(&[0; 20]);
        let mut r = &longer[..];
        assert!(
            !signature_equals(&mut &data[..], &mut r, longer.len() as u64)
                .unwrap()
                .unwrap()
        );
        assert!(r.is_empty());
        let short = &one[..one.len() - 20];
        let mut r = short;
        assert!(
            !signature_equals(&mut &data[..], &mut r, short.len() as u64)
                .unwrap()
                .unwrap()
        );
        // a peer that sends less than announced breaks the stream
        let mut r = &one[..100];
        assert!(signature_equals(&mut &data[..], &mut r, one.len() as u64).is_err());
    }

    /// Windowed deltas (a small window here) apply with both appliers,
    /// reuse the basis for edits in place and appends, and send data moved
    /// beyond the window as literals.
    #[test]
    fn windowed_delta_applies() {
        let window = 64u64; // blocks: 128 KiB of basis per index
        let old = pseudo_random(3 << 20, 11);
        let mut new = old.clone();
        new[5000] ^= 1;
        new[(2 << 20) + 77] ^= 1;
        new.splice(1_500_000..1_500_000, b"inserted".iter().copied());
        new.extend_from_slice(&pseudo_random(300_000, 12));
        // the first 64 KiB again at the end: too far away for the window
        new.extend_from_slice(&old[..65536]);
        let sig = Sig::Mem(signature(&old));
        let mut d = Vec::new();
        delta_windowed(&sig, &mut &new[..], &mut d, window).unwrap();
        let mut out = Vec::new();
        apply(&old, &d, &mut out).unwrap();
        assert!(out == new, "fast_rsync applier");
        let path = std::env::temp_dir().join(format!("c2win{}", std::process::id()));
        std::fs::write(&path, &old).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let mut out = Vec::new();
        apply_stream(Some(&f), &mut &d[..], &mut out, u64::MAX).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(out == new, "streaming applier");
        let literal = 300_000 + 65536;
        // each region edge costs up to two blocks of literals
        let edges = new.len() / (window as usize / 2 * BLOCK_SIZE as usize) + 1;
        let most = literal + edges * 2 * BLOCK_SIZE as usize + 10_000;
        assert!(d.len() < most, "basis reused: {} (most {most})", d.len());
        assert!(
            d.len() > literal,
            "moved data sent as literals: {}",
            d.len()
        );
        // the whole signature fits in the default window: identical to one index
        let mut whole = Vec::new();
        delta_windowed(&sig, &mut &new[..], &mut whole, WINDOW_BLOCKS).unwrap();
        let mut plain = Vec::new();
        let idx = Signature::deserialize(signature(&old)).unwrap();
        fast_rsync::diff(&idx.index(), &new, &mut plain).unwrap();
        assert_eq!(whole, plain);
    }

    #[test]
    fn rebase_moves_copies_only() {
        // LITERAL 3 "abc", COPY off 1 len 2, LITERAL_N1 65 bytes
        let mut cmds = vec![3, b'a', b'b', b'c', 0x45, 1, 2, 0x41, 65];
        cmds.extend_from_slice(&[b'x'; 65]);
        let mut out = Vec::new();
        rebase(&cmds, 0x1_0000_0000, &mut out).unwrap();
        let mut want = vec![
            3,
            b'a',
            b'b',
            b'c',
            0x45 + 3 * 4,
            0,
            0,
            0,
            1,
            0,
            0,
            0,
            1,
            2,
            0x41,
            65,
        ];
        want.extend_from_slice(&[b'x'; 65]);
        assert_eq!(out, want);
        assert!(
            rebase(&[0x41, 70, b'x'], 5, &mut Vec::new()).is_err(),
            "truncated"
        );
        assert!(rebase(&[0x60], 5, &mut Vec::new()).is_err(), "unknown op");
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
