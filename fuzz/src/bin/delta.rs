//! Delta application (`protocol::delta::apply_stream`), checked against
//! fast_rsync's own applier, and the delta round trip.
//!
//! Input: byte 0 flags (bit 0: no basis file), bytes 1–2 the basis length
//! (little endian, cut to what is there), the basis, then the delta.
//!
//! Properties checked besides "no panic":
//! * where fast_rsync's `apply_limited` accepts the delta, `apply_stream`
//!   does too, with the same output (same limit);
//! * where `apply_stream` accepts it, fast_rsync accepts the bytes it
//!   consumed with the same output, or refuses a zero-length COPY (which
//!   librsync accepts);
//! * round trip: the rest of the input taken as a new file,
//!   `signature_of(basis)` → `delta_stream` → `apply_stream` gives it back,
//!   and `signature_equals(basis, signature_of(basis))` holds.
use csync2::protocol::delta;
use std::io::Read;
use std::os::unix::fs::FileExt;

const LIMIT: u64 = 1 << 20;

fn main() {
    let basis_file = csync2::fsutil::anon_tempfile().expect("temp file");
    afl::fuzz!(|data: &[u8]| {
        let flags = data.first().copied().unwrap_or(0);
        let blen = u16::from_le_bytes([
            data.get(1).copied().unwrap_or(0),
            data.get(2).copied().unwrap_or(0),
        ]) as usize;
        let rest = data.get(3..).unwrap_or_default();
        let (basis, d) = rest.split_at(blen.min(rest.len()));
        basis_file.set_len(0).unwrap();
        basis_file.write_all_at(basis, 0).unwrap();
        let no_basis = flags & 1 != 0;
        let ours_basis = if no_basis { None } else { Some(&basis_file) };
        let theirs_basis: &[u8] = if no_basis { &[] } else { basis };

        // differential application
        let mut input = d;
        let mut ours = Vec::new();
        let r = delta::apply_stream(ours_basis, &mut input, &mut ours, LIMIT);
        let consumed = d.len() - input.len();
        let mut theirs = Vec::new();
        let t = fast_rsync::apply_limited(theirs_basis, d, &mut theirs, LIMIT as usize);
        if t.is_ok() {
            assert!(r.is_ok(), "fast_rsync applies it, apply_stream says {r:?}");
            assert_eq!(consumed, d.len());
            assert!(ours == theirs, "outputs differ");
        }
        if r.is_ok() {
            let mut theirs = Vec::new();
            match fast_rsync::apply_limited(
                theirs_basis,
                &d[..consumed],
                &mut theirs,
                LIMIT as usize,
            ) {
                Ok(()) => assert!(ours == theirs, "outputs differ"),
                Err(fast_rsync::ApplyError::CopyZero) => {}
                Err(e) => panic!("apply_stream applied it, fast_rsync says {e}"),
            }
        }

        // round trip with the rest of the input as the new content
        let new = d;
        let mut sig = delta::signature_of(&mut &basis[..]).unwrap();
        let mut sig_bytes = Vec::new();
        sig.reader().unwrap().read_to_end(&mut sig_bytes).unwrap();
        assert!(
            delta::signature_equals(&mut &basis[..], &mut &sig_bytes[..], sig_bytes.len() as u64)
                .unwrap()
                .unwrap()
        );
        let mut dl = Vec::new();
        delta::delta_stream(&sig, &mut &new[..], &mut dl).unwrap();
        let mut out = Vec::new();
        delta::apply_stream(Some(&basis_file), &mut &dl[..], &mut out, u64::MAX).unwrap();
        assert!(out == new, "round trip differs");
    });
}
