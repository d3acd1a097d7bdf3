//! The protocol line tokenizer and the URL decoder.
//!
//! Properties checked besides "no panic":
//! * `decode` and `decodes_whole` agree with a reference decoder written
//!   from the spec (state.md §1.4: the two bytes after a `%` read with C
//!   `strtol(…, 16)`, which skips leading white space and takes a sign; a
//!   resulting NUL ends the string);
//! * `decode` never grows its input;
//! * `decode(encode(x)) == x` for every `x` without a NUL byte;
//! * `tokenize` gives 1..=MAX_TOKENS tokens or None for a blank line;
//! * a line built by `codec::command` tokenizes back into its command word
//!   and (non-empty, NUL-free) arguments.
use csync2::protocol::codec::{self, MAX_TOKENS};
use csync2::urlenc;

/// C `strtol(s, NULL, 16)` on a NUL-terminated two-byte buffer.
fn strtol16(a: u8, b: u8) -> i64 {
    let s = [a, b];
    let mut i = 0;
    while i < 2 && matches!(s[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let mut neg = false;
    if i < 2 && matches!(s[i], b'+' | b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    // "0x" without a hex digit after it parses as 0: the same as the loop
    let mut v = 0i64;
    while i < 2 {
        match (s[i] as char).to_digit(16) {
            Some(d) => v = v * 16 + i64::from(d),
            None => break,
        }
        i += 1;
    }
    if neg { -v } else { v }
}

/// The decoded bytes (up to a NUL) and whether the whole input was used.
fn reference_decode(s: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && s.len() - i > 2 {
            // stored in a C char
            let c = strtol16(s[i + 1], s[i + 2]) as u8;
            if c == 0 {
                return (out, false);
            }
            out.push(c);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    (out, true)
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let dec = urlenc::decode(data);
        let (want, whole) = reference_decode(data);
        assert_eq!(dec, want, "decode differs from C strtol decoding");
        assert_eq!(urlenc::decodes_whole(data), whole, "decodes_whole");
        assert!(dec.len() <= data.len());

        if !data.contains(&0) {
            assert_eq!(urlenc::decode(&urlenc::encode(data)), data);
        }

        match codec::tokenize(data) {
            Some(toks) => {
                assert!(!toks.is_empty() && toks.len() <= MAX_TOKENS);
                for (i, t) in toks.iter().enumerate() {
                    let raw = data
                        .split(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                        .filter(|t| !t.is_empty())
                        .nth(i)
                        .unwrap();
                    assert_eq!(t, &reference_decode(raw).0);
                    assert_eq!(codec::cut_short(data, i), !reference_decode(raw).1);
                }
            }
            None => assert!(
                data.iter()
                    .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            ),
        }

        // arguments: the input cut at NUL bytes, empty pieces dropped
        let args: Vec<&[u8]> = data
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .take(MAX_TOKENS - 1)
            .collect();
        let line = codec::command("CMD", &args);
        let toks = codec::tokenize(&line).expect("a command line is never blank");
        assert_eq!(toks.len(), args.len() + 1);
        assert_eq!(toks[0], b"CMD");
        for (t, a) in toks[1..].iter().zip(&args) {
            assert_eq!(t, a);
        }
    });
}
