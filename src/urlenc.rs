//! The URL encoding of every string in the database and on the wire
//! (state.md §1.4).

fn needs_encoding(b: u8) -> bool {
    matches!(
        b,
        0x01..=0x20 | 0x7f | b'"' | b'\'' | b'%' | b'$' | b':' | b'|' | b'\\'
    )
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

pub fn encode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 8);
    encode_into(s, &mut out);
    out
}

pub fn encode_into(s: &[u8], out: &mut Vec<u8>) {
    for &b in s {
        if needs_encoding(b) {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        } else {
            out.push(b);
        }
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `strtol(XX, 16)` on the two bytes after a `%`, stored in a C char: an
/// optional blank (in a token only VT or FF) and sign, then as many hex
/// digits as there are ("0x" alone gives 0), else 0. So `%+5` is 5 and
/// `%-1` is 0xFF.
fn strtol2(a: u8, b: u8) -> u8 {
    let s = [a, b];
    let mut i = usize::from(matches!(a, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'));
    let neg = s.get(i) == Some(&b'-');
    if matches!(s.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let mut v: u8 = 0;
    for &c in &s[i..] {
        match hex_val(c) {
            Some(d) => v = v * 16 + d,
            None => break,
        }
    }
    if neg { v.wrapping_neg() } else { v }
}

/// Whether `decode` keeps all of `s` (no `%00` or `%` + non-hex cutting
/// it short, as a NUL ends a C string).
pub fn decodes_whole(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && s.len() - i > 2 {
            if strtol2(s[i + 1], s[i + 2]) == 0 {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// Decodes as the real program does; a decoded NUL byte ends the string
/// (it is a C string there).
pub fn decode(s: &[u8]) -> Vec<u8> {
    if !s.contains(&b'%') {
        return s.to_vec();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'%' && s.len() - i > 2 {
            let v = strtol2(s[i + 1], s[i + 2]);
            if v == 0 {
                break;
            }
            out.push(v);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_exactly_the_special_bytes() {
        assert_eq!(
            encode(b"a b\t\n\x7f\"'%$:|\\"),
            b"a%20b%09%0A%7F%22%27%25%24%3A%7C%5C"
        );
        let plain = b"/;&#+=,()*?[]~@!^`<>{}\xff\xfe\xc3\xa9";
        assert_eq!(encode(plain), plain.to_vec());
    }

    #[test]
    fn roundtrip_all_bytes() {
        let all: Vec<u8> = (1..=255u8).collect();
        assert_eq!(decode(&encode(&all)), all);
    }

    #[test]
    fn decode_quirks() {
        assert_eq!(decode(b"a%2"), b"a%2");
        assert_eq!(decode(b"%"), b"%");
        assert_eq!(decode(b"%41%42"), b"AB");
        assert_eq!(decode(b"%4a"), b"J");
        assert_eq!(decode(b"x%00y"), b"x");
        assert!(!decodes_whole(b"x%00y") && !decodes_whole(b"%zz") && !decodes_whole(b"a%0g"));
        assert!(decodes_whole(b"a%20b%2") && decodes_whole(b"%"));
    }

    /// Found by fuzzing (fuzz/regressions/tokenize/): C strtol skips a
    /// leading blank and takes a sign, which fit in the two bytes.
    #[test]
    fn decode_blank_and_sign_like_strtol() {
        assert_eq!(decode(b"% 1"), b"\x01");
        assert_eq!(decode(b"a%+5b"), b"a\x05b");
        assert_eq!(decode(b"a%-1b"), b"a\xffb");
        assert_eq!(decode(b"%-f"), b"\xf1");
        assert_eq!(decode(b"%\x0bA%\x0c7"), b"\x0a\x07");
        assert_eq!(decode(b"x%+0y"), b"x");
        assert_eq!(decode(b"x%-xy"), b"x");
        assert_eq!(decode(b"x%0xy"), b"x");
        assert_eq!(decode(b"x% 9"), b"x\x09");
        assert!(decodes_whole(b"%+5%-1") && !decodes_whole(b"%+x") && !decodes_whole(b"%\x0b "));
    }
}
