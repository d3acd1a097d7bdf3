//! Tokenising command lines and building them (protocol.md §1.4–§1.5).

use crate::urlenc;

/// At most this many tokens of a line are kept.
pub const MAX_TOKENS: usize = 32;

/// The raw tokens of a line: split on runs of SPACE/TAB/CR/LF.
fn words(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .filter(|t| !t.is_empty())
}

/// Splits a line on runs of SPACE/TAB/CR/LF and URL-decodes every token.
/// Returns None for a line of separators only (which gets no answer).
pub fn tokenize(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let toks: Vec<Vec<u8>> = words(line).take(MAX_TOKENS).map(urlenc::decode).collect();
    if toks.is_empty() { None } else { Some(toks) }
}

/// Whether token `i` of a line is cut short by decoding (a NUL in it).
pub fn cut_short(line: &[u8], i: usize) -> bool {
    words(line)
        .nth(i)
        .is_some_and(|t| !urlenc::decodes_whole(t))
}

/// `CMD arg…\n` with every argument URL-encoded.
pub fn command(cmd: &str, args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(cmd.as_bytes());
    for a in args {
        out.push(b' ');
        urlenc::encode_into(a, &mut out);
    }
    out.push(b'\n');
    out
}

/// `CMD arg…\n` with raw (already safe) arguments.
pub fn command_raw(cmd: &str, args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(cmd.as_bytes());
    for a in args {
        out.push(b' ');
        out.extend_from_slice(a);
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_like_the_real_server() {
        let t = tokenize(b"  SIG\tkey  /a%20b\r\n").unwrap();
        assert_eq!(t, vec![b"SIG".to_vec(), b"key".to_vec(), b"/a b".to_vec()]);
        assert!(tokenize(b" \t\r\n").is_none());
        let many = "x ".repeat(40);
        assert_eq!(tokenize(many.as_bytes()).unwrap().len(), 32);
    }

    #[test]
    fn builds_encoded_commands() {
        assert_eq!(command("SIG", &[b"k", b"/a b:c"]), b"SIG k /a%20b%3Ac\n");
        assert_eq!(command("CONFIG", &[b""]), b"CONFIG \n");
    }
}
