//! Byte-oriented shell-pattern matching with the semantics of glibc's
//! `fnmatch(3)` in the C/POSIX locale.
//!
//! Only the behaviour needed by csync2 is provided: the flags
//! `FNM_PATHNAME` and `FNM_LEADING_DIR` (in any combination); backslash
//! escaping is always enabled, there is no `FNM_PERIOD` and no case folding.
//!
//! Supported syntax:
//!
//! * `*` (any run of bytes), `?` (one byte), `\x` (the byte `x`);
//! * bracket expressions `[...]`, negated with `[!...]` or `[^...]`, with a
//!   leading `]` taken literally, ranges by byte value (`a-z`), backslash
//!   escapes, the classes `[:alpha:]` `[:digit:]` `[:alnum:]` `[:upper:]`
//!   `[:lower:]` `[:space:]` `[:blank:]` `[:punct:]` `[:print:]` `[:graph:]`
//!   `[:cntrl:]` `[:xdigit:]` (ASCII only: no byte >= 0x80 is in any class),
//!   single-byte equivalence classes `[=x=]` and single-byte collating
//!   symbols `[.x.]`;
//! * an unterminated `[` stands for itself.
//!
//! Bytes >= 0x80 are ordinary characters; names need not be UTF-8.  As with
//! C strings, a NUL byte ends the pattern.  The name is used whole: it cannot
//! contain NUL when it is a path, and is not searched for one because that
//! would cost as much as the matching itself (a NUL in a name is simply a
//! byte that only `*`, `?` and negated brackets match).
//!
//! The matcher reproduces glibc's observable behaviour, including its
//! corner cases (documented at the items below and tested against the C
//! library in the unit tests), but it is an independent implementation.
//!
//! # Stars
//!
//! Like glibc, the matcher backtracks into the most recent star only: the
//! pattern is cut at its stars, and once the piece following a star has
//! matched up to the next star, that position is final.  For ordinary
//! patterns this gives the same answers as an exhaustive search (the
//! leftmost placement of a star-free piece is never worse than a later one),
//! and it keeps the cost at most `name length x pattern length`, without
//! allocation: `*a*a*a*a*a*b` against a long run of `a` fails in linear time.
//! The answers differ from an exhaustive search only for patterns whose
//! meaning changes with the text (an unterminated `[` whose remainder
//! parses differently for different bytes); there the first commitment
//! wins, exactly as in glibc.

/// Options for [`fnmatch`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// `FNM_PATHNAME`: `*`, `?` and bracket expressions never match `/`;
    /// only a literal (possibly escaped) `/` in the pattern does.
    pub pathname: bool,
    /// `FNM_LEADING_DIR`: the pattern may also match a leading part of the
    /// name that is followed by `/` (e.g. `/a/b` matches `/a/b/c`).
    pub leading_dir: bool,
}

impl Flags {
    /// No flags: `*` and `?` match any byte, including `/`.
    pub const NONE: Flags = Flags {
        pathname: false,
        leading_dir: false,
    };
    /// `FNM_PATHNAME`.
    pub const PATHNAME: Flags = Flags {
        pathname: true,
        leading_dir: false,
    };
    /// `FNM_LEADING_DIR | FNM_PATHNAME`.
    pub const LEADING_DIR_PATHNAME: Flags = Flags {
        pathname: true,
        leading_dir: true,
    };
    /// `FNM_LEADING_DIR`.
    pub const LEADING_DIR: Flags = Flags {
        pathname: false,
        leading_dir: true,
    };
}

/// Character-class names longer than this make the bracket fail, as in glibc.
const CLASS_NAME_LIMIT: usize = 2048;

/// Returns `true` when `name` matches `pattern`, i.e. exactly when glibc's
/// `fnmatch(pattern, name, flags)` (C locale) returns 0.
pub fn fnmatch(pattern: &[u8], name: &[u8], flags: Flags) -> bool {
    Matcher {
        pat: until_nul(pattern),
        name,
        flags,
    }
    .run()
}

/// The part of `s` before its first NUL byte (C string semantics).
fn until_nul(s: &[u8]) -> &[u8] {
    // `contains` on bytes is a fast word-at-a-time search.
    if !s.contains(&0) {
        return s;
    }
    match s.iter().position(|&b| b == 0) {
        Some(i) => &s[..i],
        None => s,
    }
}

/// The byte at `i`, or 0 (the C string terminator) past the end.
#[inline]
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

/// The star currently backtracked into: the name positions at which the
/// piece of pattern after it (starting at `cont`) is still to be tried.
#[derive(Clone, Copy)]
struct Star {
    /// Pattern index of the element following the star group.
    cont: usize,
    /// Next candidate name position.
    next: usize,
    /// One past the last candidate name position.
    end: usize,
    /// Only positions holding this byte are candidates (unless `any`).
    first: u8,
    any: bool,
}

impl Star {
    /// The next candidate name position, if any.
    #[inline]
    fn advance(&mut self, name: &[u8]) -> Option<usize> {
        if self.next >= self.end {
            return None;
        }
        let t = if self.any {
            self.next
        } else {
            self.next
                + name[self.next..self.end]
                    .iter()
                    .position(|&b| b == self.first)?
        };
        self.next = t + 1;
        Some(t)
    }
}

/// What a star group leads to.
enum StarStart {
    /// The pattern ends with this star group and the name matches.
    Accept,
    /// The whole match fails.
    Reject,
    /// Candidate positions for the rest of the pattern.
    Star(Star),
    /// `*/` under FNM_PATHNAME: the rest of the pattern (the given index,
    /// after the slash) must match from the given name index (after the
    /// next slash) with no way back.
    Resume(usize, usize),
}

/// Outcome of evaluating a bracket expression against one name byte.
#[derive(Debug, PartialEq, Eq)]
enum Bracket {
    /// The byte matches; the pattern continues at the given index.
    Match(usize),
    /// The byte does not match (or the expression is ill-formed in a way
    /// that glibc reports as a mismatch).
    NoMatch,
    /// The bracket is unterminated: the `[` is an ordinary character.
    Literal,
}

struct Matcher<'a> {
    pat: &'a [u8],
    name: &'a [u8],
    flags: Flags,
}

impl Matcher<'_> {
    fn run(&self) -> bool {
        let (pat, name) = (self.pat, self.name);
        let pathname = self.flags.pathname;
        let mut star: Option<Star> = None;
        let (mut p, mut n) = (0usize, 0usize);

        loop {
            // Match forward from (p, n); `break` on a mismatch.
            loop {
                let Some(&c) = pat.get(p) else {
                    if self.end_ok(n) {
                        return true;
                    }
                    break;
                };
                match c {
                    b'*' => match self.enter_star(p, n) {
                        StarStart::Accept => return true,
                        StarStart::Reject => return false,
                        StarStart::Resume(q, m) => {
                            star = None;
                            p = q;
                            n = m;
                        }
                        StarStart::Star(mut s) => {
                            let Some(t) = s.advance(name) else {
                                return false;
                            };
                            star = Some(s);
                            p = s.cont;
                            n = t;
                        }
                    },
                    b'?' => {
                        if n == name.len() || (pathname && name[n] == b'/') {
                            break;
                        }
                        p += 1;
                        n += 1;
                    }
                    b'[' => {
                        let Some(&ch) = name.get(n) else { break };
                        if pathname && ch == b'/' {
                            break;
                        }
                        match bracket(pat, p + 1, ch) {
                            Bracket::Match(q) => {
                                p = q;
                                n += 1;
                            }
                            Bracket::Literal if ch == b'[' => {
                                p += 1;
                                n += 1;
                            }
                            Bracket::Literal | Bracket::NoMatch => break,
                        }
                    }
                    b'\\' => {
                        // A trailing backslash never matches.
                        let Some(&e) = pat.get(p + 1) else { break };
                        if name.get(n) != Some(&e) {
                            break;
                        }
                        p += 2;
                        n += 1;
                    }
                    _ => {
                        if name.get(n) != Some(&c) {
                            break;
                        }
                        p += 1;
                        n += 1;
                    }
                }
            }
            // Mismatch: try the next position of the current star.
            let Some(s) = star.as_mut() else {
                return false;
            };
            let Some(t) = s.advance(name) else {
                return false;
            };
            p = s.cont;
            n = t;
        }
    }

    /// Whether the pattern, fully consumed, matches with the name at `n`.
    #[inline]
    fn end_ok(&self, n: usize) -> bool {
        n == self.name.len() || (self.flags.leading_dir && self.name[n] == b'/')
    }

    /// Index of the first `/` at or after `n`, or the name's length.
    fn next_slash(&self, n: usize) -> usize {
        self.name[n..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(self.name.len(), |i| n + i)
    }

    /// Handles a group of `*` and `?` starting at pattern index `p`, name
    /// index `n`.
    fn enter_star(&self, mut p: usize, mut n: usize) -> StarStart {
        let (pat, name, flags) = (self.pat, self.name, self.flags);
        // Collapse the group; every `?` consumes one byte.
        loop {
            match at(pat, p) {
                b'*' => p += 1,
                b'?' => {
                    if n == name.len() || (flags.pathname && name[n] == b'/') {
                        return StarStart::Reject;
                    }
                    p += 1;
                    n += 1;
                }
                _ => break,
            }
        }
        let Some(&c) = pat.get(p) else {
            // Trailing star: it may swallow everything, except a `/` when
            // FNM_PATHNAME is set without FNM_LEADING_DIR.
            let ok = !flags.pathname || flags.leading_dir || self.next_slash(n) == name.len();
            return if ok {
                StarStart::Accept
            } else {
                StarStart::Reject
            };
        };
        if flags.pathname && c == b'/' {
            // `*/`: the star runs exactly up to the next slash.
            let s = self.next_slash(n);
            return if s == name.len() {
                StarStart::Reject
            } else {
                StarStart::Resume(p + 1, s + 1)
            };
        }
        // The rest of the pattern is tried at every position up to (not
        // including) the next slash under FNM_PATHNAME, or the end of the
        // name otherwise.  Like glibc, positions are filtered on the byte
        // the rest must start with; for an escape that is the escaped byte,
        // so under FNM_PATHNAME `*\/` can never match.
        let end = if flags.pathname {
            self.next_slash(n)
        } else {
            name.len()
        };
        let (first, any) = match c {
            b'[' => (0, true),
            b'\\' => (at(pat, p + 1), false),
            _ => (c, false),
        };
        StarStart::Star(Star {
            cont: p,
            next: n,
            end,
            first,
            any,
        })
    }
}

/// Result of looking for a class name after `[:`.
enum ClassName {
    /// `[:name:]`: the name is `pat[.0...1]`; the pattern continues at
    /// index `.2`, after `:]`.
    Name(usize, usize, usize),
    /// Not a class (a byte outside `a`..`y` before `:]`): the `[` is an
    /// ordinary bracket member.
    NotAClass,
    /// Too long: the bracket fails.
    TooLong,
}

/// Parses a class name, `colon` being the index of the `:` after `[`.
///
/// Like glibc, only bytes `a` to `y` are accepted in a class name (a `z`
/// makes it "not a class"), and overly long names fail the match.
fn class_name(pat: &[u8], colon: usize) -> ClassName {
    let mut q = colon;
    let mut len = 0;
    loop {
        if len == CLASS_NAME_LIMIT {
            return ClassName::TooLong;
        }
        q += 1;
        let x = at(pat, q);
        if x == b':' && at(pat, q + 1) == b']' {
            return ClassName::Name(colon + 1, q, q + 2);
        }
        if !is_class_name_byte(x) {
            return ClassName::NotAClass;
        }
        len += 1;
    }
}

/// Bytes glibc accepts in a class name: `a` to `y` (not `z`).
#[inline]
fn is_class_name_byte(x: u8) -> bool {
    matches!(x, b'a'..=b'y')
}

/// Whether `ch` belongs to the C-locale class `name`; `None` for an unknown
/// class.
fn class_contains(name: &[u8], ch: u8) -> Option<bool> {
    Some(match name {
        b"alpha" => ch.is_ascii_alphabetic(),
        b"digit" => ch.is_ascii_digit(),
        b"alnum" => ch.is_ascii_alphanumeric(),
        b"upper" => ch.is_ascii_uppercase(),
        b"lower" => ch.is_ascii_lowercase(),
        b"space" => matches!(ch, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'),
        b"blank" => matches!(ch, b' ' | b'\t'),
        b"punct" => ch.is_ascii_punctuation(),
        b"print" => matches!(ch, 0x20..=0x7e),
        b"graph" => ch.is_ascii_graphic(),
        b"cntrl" => ch.is_ascii_control(),
        b"xdigit" => ch.is_ascii_hexdigit(),
        // glibc knows `combining` (and more) only in other locales.
        _ => return None,
    })
}

/// Parses a collating symbol `[.x.]`, `dot` being the index of the `.` after
/// `[`.  Returns the symbol's byte and the index after `.]`, or `None` when
/// the symbol is unterminated or not a single byte (the bracket then fails).
fn collating_symbol(pat: &[u8], dot: usize) -> Option<(u8, usize)> {
    let mut q = dot;
    loop {
        q += 1;
        let x = at(pat, q);
        if x == b'.' && at(pat, q + 1) == b']' {
            break;
        }
        if x == 0 {
            return None;
        }
    }
    (q == dot + 2).then(|| (pat[dot + 1], q + 2))
}

/// Evaluates the bracket expression whose body starts at `start` (just after
/// the `[`) against the name byte `ch`.
///
/// Members are examined left to right.  Up to the first member containing
/// `ch` the body is parsed strictly; after it, the remainder is only skipped
/// to find the closing `]`, using glibc's slightly different skipping rules.
/// Ill-formed constructs (unknown class, bad collating symbol, a range
/// without an end, a backslash at the end) fail the match when they are
/// reached, and reaching the end of the pattern makes the `[` literal.
fn bracket(pat: &[u8], start: usize, ch: u8) -> Bracket {
    let mut p = start;
    let negated = matches!(at(pat, p), b'!' | b'^');
    if negated {
        p += 1;
    }

    // Phase 1: look for a member containing `ch`.  `c` is the first byte of
    // the current member and `p` the index just after it.
    let mut c = at(pat, p);
    p += 1;
    let found = loop {
        // The member's single byte, and whether a `-` followed by `]` may
        // still form a range with it (only after collating symbols).
        let (lo, dash_bracket_is_range) = match c {
            b'\\' => {
                let e = at(pat, p);
                if e == 0 {
                    return Bracket::NoMatch;
                }
                p += 1;
                (e, false)
            }
            0 => return Bracket::Literal,
            b'[' if at(pat, p) == b':' => match class_name(pat, p) {
                ClassName::TooLong => return Bracket::NoMatch,
                ClassName::NotAClass => (b'[', false),
                ClassName::Name(from, to, after) => {
                    let Some(hit) = class_contains(&pat[from..to], ch) else {
                        return Bracket::NoMatch;
                    };
                    p = after;
                    if hit {
                        break Some(p);
                    }
                    c = at(pat, p);
                    p += 1;
                    if c == b']' {
                        break None;
                    }
                    continue;
                }
            },
            b'[' if at(pat, p) == b'=' => {
                let e = at(pat, p + 1);
                if e != 0 && at(pat, p + 2) == b'=' && at(pat, p + 3) == b']' {
                    p += 4;
                    if ch == e {
                        break Some(p);
                    }
                    c = at(pat, p);
                    p += 1;
                    if c == b']' {
                        break None;
                    }
                    continue;
                }
                (b'[', false)
            }
            b'[' if at(pat, p) == b'.' => match collating_symbol(pat, p) {
                Some((sym, after)) => {
                    p = after;
                    (sym, true)
                }
                None => return Bracket::NoMatch,
            },
            _ => (c, false),
        };

        // A single byte, possibly the start of a range.
        let next = at(pat, p + 1);
        let is_range = at(pat, p) == b'-' && next != 0 && (dash_bracket_is_range || next != b']');
        if !is_range && lo == ch {
            break Some(p);
        }
        c = at(pat, p);
        p += 1;
        if c == b'-' && at(pat, p) != b']' {
            let mut hi = at(pat, p);
            p += 1;
            if hi == b'\\' {
                hi = at(pat, p);
                p += 1;
            } else if hi == b'[' && at(pat, p) == b'.' {
                match collating_symbol(pat, p) {
                    Some((sym, after)) => {
                        hi = sym;
                        p = after;
                    }
                    None => return Bracket::NoMatch,
                }
            }
            if hi == 0 {
                return Bracket::NoMatch;
            }
            if lo <= ch && ch <= hi {
                break Some(p);
            }
            c = at(pat, p);
            p += 1;
        }
        if c == b']' {
            break None;
        }
    };

    let Some(mut p) = found else {
        return if negated {
            Bracket::Match(p)
        } else {
            Bracket::NoMatch
        };
    };

    // Phase 2: a member matched; skip to the closing `]`.
    loop {
        let c = at(pat, p);
        p += 1;
        match c {
            b']' => break,
            0 => return Bracket::Literal,
            b'\\' => {
                if at(pat, p) == 0 {
                    return Bracket::NoMatch;
                }
                p += 1;
            }
            b'[' if at(pat, p) == b':' => {
                // Skip a class name; a byte outside `a`..`y` ends the skip
                // and is then examined as an ordinary member.
                let mut q = p;
                let mut count = 0;
                loop {
                    q += 1;
                    count += 1;
                    if count == CLASS_NAME_LIMIT {
                        return Bracket::NoMatch;
                    }
                    let x = at(pat, q);
                    if x == b':' && at(pat, q + 1) == b']' {
                        p = q + 2;
                        break;
                    }
                    if !is_class_name_byte(x) {
                        p = q;
                        break;
                    }
                }
            }
            b'[' if at(pat, p) == b'=' => {
                if at(pat, p + 1) == 0 || at(pat, p + 2) != b'=' || at(pat, p + 3) != b']' {
                    return Bracket::NoMatch;
                }
                p += 4;
            }
            b'[' if at(pat, p) == b'.' => {
                let mut q = p;
                loop {
                    q += 1;
                    let x = at(pat, q);
                    if x == 0 {
                        return Bracket::NoMatch;
                    }
                    if x == b'.' && at(pat, q + 1) == b']' {
                        p = q + 2;
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    if negated {
        Bracket::NoMatch
    } else {
        Bracket::Match(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    const ALL: [Flags; 4] = [
        Flags::NONE,
        Flags::PATHNAME,
        Flags::LEADING_DIR,
        Flags::LEADING_DIR_PATHNAME,
    ];

    /// glibc's answer (C locale).
    fn glibc(pat: &[u8], name: &[u8], flags: Flags) -> bool {
        let p = CString::new(pat).expect("pattern without NUL");
        let n = CString::new(name).expect("name without NUL");
        let f = if flags.pathname { 1 } else { 0 } | if flags.leading_dir { 8 } else { 0 };
        // SAFETY: both pointers are valid NUL-terminated strings.
        unsafe { libc::fnmatch(p.as_ptr(), n.as_ptr(), f) == 0 }
    }

    fn m(pat: &str, name: &str) -> bool {
        fnmatch(pat.as_bytes(), name.as_bytes(), Flags::NONE)
    }

    fn mp(pat: &str, name: &str) -> bool {
        fnmatch(pat.as_bytes(), name.as_bytes(), Flags::PATHNAME)
    }

    fn ml(pat: &str, name: &str) -> bool {
        fnmatch(pat.as_bytes(), name.as_bytes(), Flags::LEADING_DIR)
    }

    fn mlp(pat: &str, name: &str) -> bool {
        fnmatch(pat.as_bytes(), name.as_bytes(), Flags::LEADING_DIR_PATHNAME)
    }

    #[test]
    fn flags_constants() {
        assert_eq!(Flags::default(), Flags::NONE);
        let flags = |pathname, leading_dir| Flags {
            pathname,
            leading_dir,
        };
        assert_eq!(Flags::NONE, flags(false, false));
        assert_eq!(Flags::PATHNAME, flags(true, false));
        assert_eq!(Flags::LEADING_DIR, flags(false, true));
        assert_eq!(Flags::LEADING_DIR_PATHNAME, flags(true, true));
    }

    #[test]
    fn literals() {
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(!m("a", ""));
        assert!(m("abc", "abc"));
        assert!(!m("abc", "abd"));
        assert!(!m("abc", "ab"));
        assert!(!m("ab", "abc"));
        assert!(m("/etc/passwd", "/etc/passwd"));
        assert!(mp("/etc/passwd", "/etc/passwd"));
        assert!(!m("ABC", "abc"), "no case folding");
    }

    #[test]
    fn star() {
        assert!(m("*", ""));
        assert!(m("*", "abc"));
        assert!(m("a*", "a"));
        assert!(m("a*", "abc"));
        assert!(m("*c", "abc"));
        assert!(m("a*c", "ac"));
        assert!(m("a*c", "abbbc"));
        assert!(!m("a*c", "abbb"));
        assert!(m("a**c", "abc"));
        assert!(m("*b*", "abc"));
        assert!(m("*.o", "dir/x.o"));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(!m("a*b*c", "aXcYb"));
        assert!(m("*a*a*", "aa"));
        assert!(!m("*a*a*", "a"));
        assert!(m("*/*", "a/b/c"));
    }

    #[test]
    fn question() {
        assert!(m("?", "a"));
        assert!(!m("?", ""));
        assert!(!m("?", "ab"));
        assert!(m("a?c", "abc"));
        assert!(m("???", "a/c"));
        assert!(m("*?", "a"));
        assert!(!m("*??", "a"));
        assert!(m("?*?", "ab"));
        assert!(m("*?*", "x"));
    }

    #[test]
    fn pathname() {
        assert!(!mp("*", "a/b"));
        assert!(mp("*", "ab"));
        assert!(mp("*/*", "a/b"));
        assert!(!mp("*/*", "a/b/c"));
        assert!(mp("*/*/*", "a/b/c"));
        assert!(!mp("a?b", "a/b"));
        assert!(!mp("a[/]b", "a/b"));
        assert!(!mp("a[!x]b", "a/b"));
        assert!(!mp("a[^x]b", "a/b"));
        assert!(mp("a/b", "a/b"));
        assert!(mp("a\\/b", "a/b"));
        assert!(mp("/home/*/x", "/home/user/x"));
        assert!(!mp("/home/*/x", "/home/a/b/x"));
        assert!(mp("/home/*/*", "/home/user/x"));
        assert!(mp("*.c", "x.c"));
        assert!(!mp("*.c", "d/x.c"));
        assert!(mp("*x*/y", "axb/y"));
        assert!(!mp("*x*/y", "ab/xy"));
        // Without FNM_PATHNAME, all of these match.
        assert!(m("*", "a/b"));
        assert!(m("a?b", "a/b"));
        assert!(m("a[/]b", "a/b"));
        assert!(m("a[!x]b", "a/b"));
    }

    #[test]
    fn leading_dir() {
        assert!(ml("/a/b", "/a/b"));
        assert!(ml("/a/b", "/a/b/c"));
        assert!(ml("/a/b", "/a/b/c/d"));
        assert!(!ml("/a/b", "/a/bc"));
        assert!(!ml("/a/b", "/a"));
        assert!(mlp("/a/b", "/a/b/c"));
        assert!(!mlp("/a/b", "/a/bc/d"));
        assert!(mlp("/a/*", "/a/b/c"));
        assert!(mlp("/a/*", "/a/b"));
        assert!(mlp("*", "a/b/c"));
        assert!(mlp("/a/b?", "/a/bc/d"));
        assert!(mlp("/a/[b]", "/a/b/d"));
        assert!(mlp("/*/b", "/a/b/c"));
        assert!(!mlp("/*/b", "/a/c/b"));
        assert!(ml("a*b", "axb/c"));
        assert!(ml("a*b", "ab/xb/c"));
        // `/` only matches a name starting with a slash followed by nothing
        // or by another slash.
        assert!(mlp("/", "/"));
        assert!(!mlp("/", "/a"));
        assert!(!ml("/", "/a"));
        assert!(!mlp("/", "a/"));
        // Without the flag, a prefix is not enough.
        assert!(!mp("/a/b", "/a/b/c"));
        assert!(!m("/a/b", "/a/b/c"));
    }

    #[test]
    fn brackets() {
        assert!(m("[abc]", "b"));
        assert!(!m("[abc]", "d"));
        assert!(!m("[abc]", ""));
        assert!(!m("[abc]", "ab"));
        assert!(m("[!abc]", "d"));
        assert!(!m("[!abc]", "a"));
        assert!(m("[^abc]", "d"));
        assert!(!m("[^abc]", "c"));
        assert!(m("x[abc]y", "xcy"));
        // `]` first is a member.
        assert!(m("[]]", "]"));
        assert!(m("[]a]", "a"));
        assert!(m("[!]]", "a"));
        assert!(!m("[!]]", "]"));
        assert!(m("[^]a]", "b"));
        // `!` and `^` elsewhere are members.
        assert!(m("[a!]", "!"));
        assert!(m("[a^]", "^"));
        // `[` is a member.
        assert!(m("[[]", "["));
        assert!(m("[a[]", "["));
    }

    #[test]
    fn ranges() {
        assert!(m("[a-c]", "a"));
        assert!(m("[a-c]", "b"));
        assert!(m("[a-c]", "c"));
        assert!(!m("[a-c]", "d"));
        assert!(!m("[a-c]", "B"));
        assert!(m("[!a-c]", "d"));
        assert!(!m("[!a-c]", "b"));
        assert!(m("[0-9a-f]", "e"));
        assert!(m("[a-]", "-"));
        assert!(m("[a-]", "a"));
        assert!(m("[-a]", "-"));
        assert!(m("[]-a]", "^"), "`]`..`a` by byte value");
        assert!(m("[a-c-e]", "-"));
        assert!(!m("[a-c-e]", "d"));
        // A reversed range is empty.
        assert!(!m("[z-a]", "z"));
        assert!(!m("[z-a]", "m"));
        // Escaped range ends.
        assert!(m("[\\]-a]", "_"));
        assert!(m("[a-\\z]", "q"));
        assert!(m("[+-\\]]", "]"));
        // Byte values, including bytes >= 0x80.
        assert!(fnmatch(b"[\x80-\xff]", b"\x90", Flags::NONE));
        assert!(!fnmatch(b"[\x80-\xff]", b"a", Flags::NONE));
        assert!(fnmatch(b"[a-\xff]", b"\xfe", Flags::NONE));
        assert!(fnmatch(b"[\x7f-\x80]", b"\x80", Flags::NONE));
    }

    #[test]
    fn classes() {
        let cases: &[(&str, &[u8], &[u8])] = &[
            ("alpha", b"azAZ", b"09_ \x80\xe9"),
            ("digit", b"0189", b"aZ \xb2"),
            ("alnum", b"a0Z9", b"_- \x80"),
            ("upper", b"AZ", b"az0\xc0"),
            ("lower", b"az", b"AZ0\xe0"),
            ("space", b" \t\n\x0b\x0c\r", b"a\x00\xa0\x85"),
            ("blank", b" \t", b"\n\x0ba"),
            ("punct", b"!/:@[`{~_", b"a0 \x7f\xa1"),
            ("print", b" a~", b"\x1f\x7f\x80\xff"),
            ("graph", b"!a~", b" \x7f\xa0"),
            ("cntrl", b"\x01\x1f\x7f", b" a\x80\x9f"),
            ("xdigit", b"09afAF", b"gG \x80"),
        ];
        for &(class, yes, no) in cases {
            let pat = format!("[[:{class}:]]");
            let neg = format!("[![:{class}:]]");
            for &b in yes {
                assert!(fnmatch(pat.as_bytes(), &[b], Flags::NONE), "{pat} {b:#x}");
                assert!(!fnmatch(neg.as_bytes(), &[b], Flags::NONE), "{neg} {b:#x}");
            }
            for &b in no.iter().filter(|&&b| b != 0) {
                assert!(!fnmatch(pat.as_bytes(), &[b], Flags::NONE), "{pat} {b:#x}");
                assert!(fnmatch(neg.as_bytes(), &[b], Flags::NONE), "{neg} {b:#x}");
            }
        }
        assert!(m("[[:digit:][:upper:]]", "7"));
        assert!(m("[[:digit:][:upper:]]", "Q"));
        assert!(!m("[[:digit:][:upper:]]", "q"));
        assert!(m("[x[:digit:]y]", "y"));
        assert!(m("x[[:alpha:]]*", "xa.c"));
        // A `-` after a class is an ordinary member.
        assert!(m("[[:digit:]-z]", "-"));
        assert!(m("[[:digit:]-z]", "z"));
        assert!(!m("[[:digit:]-z]", "q"));
    }

    #[test]
    fn invalid_classes() {
        // An unknown class name makes the bracket fail when it is reached...
        assert!(!m("[[:foo:]]", "f"));
        assert!(!m("[![:foo:]]", "f"));
        // Upper case is not a class name: `[:ALPHA:]` is read as members,
        // so the bracket ends at its `]` and `x]` follows.
        assert!(m("[[:ALPHA:]x]", "Ax]"));
        assert!(!m("[[:ALPHA:]x]", "x"));
        assert!(!m("[b[:foo:]]", "a"));
        // ... but not when an earlier member already matched.
        assert!(m("[a[:foo:]]", "a"));
        // Bytes other than `a`..`y` mean "not a class": `[` is a member.
        assert!(m("[[:Alpha:]]", "A]"));
        assert!(m("[[:z:]]", "z]"));
        assert!(m("[[:]]", ":]"));
        assert!(!m("[[::]]", ":"), "empty class name");
        // Overlong class names fail.
        let long = format!("[b[:{}]", "a".repeat(CLASS_NAME_LIMIT));
        assert!(!m(&long, "["));
        assert!(!glibc(long.as_bytes(), b"[", Flags::NONE));
        let ok = format!("[b[:{}]", "a".repeat(CLASS_NAME_LIMIT - 1));
        assert!(m(&ok, "["));
        assert!(glibc(ok.as_bytes(), b"[", Flags::NONE));
        // Only the C locale's classes exist.
        assert!(!m("[![:combining:]]", "a"));
        assert!(!glibc(b"[![:combining:]]", b"a", Flags::NONE));
    }

    #[test]
    fn equivalence_and_collating() {
        assert!(m("[[=a=]]", "a"));
        assert!(!m("[[=a=]]", "b"));
        assert!(m("[![=a=]]", "b"));
        assert!(m("[[=a=]b]", "b"));
        assert!(m("[[=]=]]", "]"));
        assert!(m("[[.a.]]", "a"));
        assert!(m("[[...]]", "."));
        assert!(m("[[.-.]a]", "-"));
        assert!(m("[[.a.]-c]", "b"));
        assert!(m("[a-[.c.]]", "b"));
        assert!(!m("[a-[.c.]]", "d"));
        // Multi-byte names do not exist in the C locale.
        assert!(!m("[[.ab.]]", "a"));
        assert!(!m("[[.space.]]", " "));
        assert!(!m("[[..]]", "."));
        // Malformed `[=` makes `[` an ordinary member.
        assert!(m("[[=ab=]]", "=]"));
        assert!(m("[[=a]", "["));
    }

    #[test]
    fn escapes() {
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("\\?", "?"));
        assert!(!m("\\?", "a"));
        assert!(m("\\[a]", "[a]"));
        assert!(m("\\a", "a"));
        assert!(m("\\\\", "\\"));
        assert!(m("a\\*b*", "a*bc"));
        assert!(m("*\\*", "abc*"));
        assert!(!m("*\\*", "abc"));
        // Inside brackets.
        assert!(m("[\\]]", "]"));
        assert!(m("[\\]a]", "a"));
        assert!(m("[\\\\]", "\\"));
        assert!(m("[\\a]", "a"));
        assert!(!m("[\\a]", "\\"));
        assert!(m("[!\\]]", "a"));
        assert!(!m("[!\\]]", "]"));
    }

    #[test]
    fn trailing_backslash_never_matches() {
        for f in ALL {
            assert!(!fnmatch(b"\\", b"\\", f));
            assert!(!fnmatch(b"a\\", b"a\\", f));
            assert!(!fnmatch(b"a\\", b"a", f));
            assert!(!fnmatch(b"*\\", b"a\\", f));
            assert!(!fnmatch(b"[\\", b"[\\", f));
            assert!(!fnmatch(b"[a\\", b"a", f));
        }
    }

    #[test]
    fn unterminated_bracket_is_literal() {
        assert!(m("[", "["));
        assert!(!m("[", "a"));
        assert!(m("[a", "[a"));
        assert!(!m("[a", "a"));
        assert!(m("a[b", "a[b"));
        assert!(m("[]", "[]"));
        assert!(m("[!]", "[!]"));
        assert!(m("[!", "[!"));
        assert!(m("[*", "[xyz"));
        assert!(
            m("[[:alpha:]", "[a"),
            "literal `[`, then the bracket `[:alpha:]`"
        );
        assert!(m("*[", "ab["));
        assert!(mp("[/", "[/"));
        // `[a-` ends with a range without an end: that fails instead.
        assert!(!m("[a-", "[a-"));
        assert!(m("[a-x", "[a-x"));
    }

    #[test]
    fn high_bytes_and_invalid_utf8() {
        assert!(fnmatch(b"\xff*", b"\xff\xfe", Flags::NONE));
        assert!(fnmatch(b"?", b"\x80", Flags::NONE));
        assert!(fnmatch(b"*\x80", b"a\xc3\x80", Flags::PATHNAME));
        assert!(fnmatch(b"[\x80]", b"\x80", Flags::NONE));
        assert!(fnmatch(b"[!\x80]", b"\x81", Flags::NONE));
        assert!(!fnmatch(b"[!\x80]", b"\x80", Flags::NONE));
        assert!(fnmatch(
            b"/d/\xe9*",
            b"/d/\xe9t\xe9/x",
            Flags::LEADING_DIR_PATHNAME
        ));
    }

    #[test]
    fn nul_ends_pattern_only() {
        assert!(fnmatch(b"ab\0cd", b"ab", Flags::NONE));
        assert!(fnmatch(b"[a\0]", b"[a", Flags::NONE));
        assert!(fnmatch(b"a*\0b", b"axx\0", Flags::NONE));
        assert!(!fnmatch(b"ab", b"ab\0cd", Flags::NONE));
        assert!(fnmatch(b"a?c", b"a\0c", Flags::NONE));
    }

    /// Behaviours of glibc that a straightforward reading of the
    /// documentation would not predict; each is checked against glibc too.
    #[test]
    fn glibc_quirks() {
        let cases: &[(&[u8], &[u8], Flags, bool)] = &[
            // `*\/` can never match under FNM_PATHNAME (a star only tries
            // positions before the next slash), although `a\/b` matches `a/b`.
            (b"*\\/b", b"a/b", Flags::PATHNAME, false),
            (b"*\\/b", b"/b", Flags::PATHNAME, false),
            (b"a\\/b", b"a/b", Flags::PATHNAME, true),
            (b"*/b", b"a/b", Flags::PATHNAME, true),
            // A collating symbol followed by `-]` is not a range, yet the
            // symbol itself is not a member.
            (b"[[.a.]-]", b"a", Flags::NONE, false),
            (b"[[.a.]-]", b"-", Flags::NONE, true),
            // `z` is not accepted in class names.
            (b"[[:z:]]", b"z]", Flags::NONE, true),
            // An escaped range end `\[` does not start a collating symbol.
            (b"[a-\\[.b.]]", b"b]", Flags::NONE, true),
            (b"[a-\\[.b.]]", b"a", Flags::NONE, false),
            // After a member matched, the rest of the bracket is only skipped:
            // unknown classes and long collating names are accepted there,
            // but a malformed `[=` fails.
            (b"[a[:foo:]]", b"a", Flags::NONE, true),
            (b"[a[.ab.]]", b"a", Flags::NONE, true),
            (b"[a[=]]", b"a", Flags::NONE, false),
            (b"[b[=]]", b"=]", Flags::NONE, true),
            // ... and a class scan stops at the first byte outside `a`..`y`,
            // which is then read as a member or as the closing bracket.
            (b"[a[:]x]", b"ax]", Flags::NONE, true),
            (b"[a[:b\\]]", b"a", Flags::NONE, true),
            // A range whose end is missing fails instead of making `[` literal.
            (b"[a-", b"[a-", Flags::NONE, false),
            // Unterminated after a class: the `[` is literal.
            (b"[[:alpha:]", b"[a", Flags::NONE, true),
            // A star is never backtracked into once the piece after it has
            // matched up to the next star.  Here, at `[[b`, the unterminated
            // brackets read as `[`, `[`, `b`, reaching the inner star, which
            // then fails; the star is not retried at `:`, where the first
            // bracket would be a terminated one matching `:` (as it does
            // for the name `x:`).
            (b"*[[b*c[:-[:alpha:]", b"x:", Flags::NONE, true),
            (b"*[[b*c[:-[:alpha:]", b"[[bx:", Flags::NONE, false),
            (b"*[[b*c[:-[:alpha:]", b"[[bc:", Flags::NONE, true),
            // With FNM_LEADING_DIR a pattern `/` also matches `//...`.
            (b"/", b"//", Flags::LEADING_DIR_PATHNAME, true),
            (b"/", b"//x", Flags::LEADING_DIR, true),
        ];
        for &(pat, name, flags, want) in cases {
            let p = String::from_utf8_lossy(pat);
            let n = String::from_utf8_lossy(name);
            assert_eq!(glibc(pat, name, flags), want, "glibc {p:?} {n:?} {flags:?}");
            assert_eq!(
                fnmatch(pat, name, flags),
                want,
                "ours {p:?} {n:?} {flags:?}"
            );
        }
        let skip_long = format!("[a[:{}:]]", "a".repeat(CLASS_NAME_LIMIT - 2));
        let skip_too_long = format!("[a[:{}:]]", "a".repeat(CLASS_NAME_LIMIT - 1));
        for (pat, want) in [(skip_long, true), (skip_too_long, false)] {
            assert_eq!(glibc(pat.as_bytes(), b"a", Flags::NONE), want);
            assert_eq!(fnmatch(pat.as_bytes(), b"a", Flags::NONE), want);
        }
    }

    #[test]
    fn no_exponential_blowup() {
        let start = std::time::Instant::now();
        let long_a = vec![b'a'; 20_000];
        for f in ALL {
            assert!(!fnmatch(b"*a*a*a*a*a*b", &long_a, f));
            assert!(!fnmatch(
                b"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
                &long_a,
                f
            ));
            assert!(fnmatch(b"*a*a*a*a*a*a", &long_a, f));
            assert!(!fnmatch(b"*?*?*?*?*?*[b]", &long_a, f));
            assert!(!fnmatch(b"*[a]*[!b]*a*?*a*\\b", &long_a, f));
        }
        let mut path = Vec::new();
        for _ in 0..2_000 {
            path.extend_from_slice(b"aaaa/");
        }
        assert!(!fnmatch(b"*a*a*a/*a*a*b", &path, Flags::PATHNAME));
        assert!(!fnmatch(b"*a*a*a*a*b", &path, Flags::NONE));
        assert!(fnmatch(b"*a*a*a*a*/", &path, Flags::NONE));
        let many = "*a".repeat(300) + "*b";
        assert!(!fnmatch(many.as_bytes(), &long_a, Flags::NONE));
        let mut a300b = vec![b'a'; 300];
        a300b.push(b'b');
        assert!(fnmatch(many.as_bytes(), &a300b, Flags::NONE));
        assert!(!fnmatch(many.as_bytes(), &a300b[1..], Flags::NONE));
        let brackets = "*[a]".repeat(100) + "*[!a]";
        assert!(!fnmatch(brackets.as_bytes(), &long_a, Flags::LEADING_DIR));
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "took {:?}",
            start.elapsed()
        );
    }

    /// xorshift64* pseudo-random generator.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a [u8]]) -> &'a [u8] {
            items[self.below(items.len())]
        }
    }

    const PATTERN_TOKENS: &[&[u8]] = &[
        b"a",
        b"a",
        b"b",
        b"b",
        b"z",
        b"A",
        b"1",
        b" ",
        b"/",
        b"/",
        b"*",
        b"*",
        b"?",
        b"[",
        b"[",
        b"]",
        b"]",
        b"!",
        b"^",
        b"-",
        b"\\",
        b":",
        b".",
        b"=",
        b"\x80",
        b"\xff",
        b"[:alpha:]",
        b"[:digit:]",
        b"[:upper:]",
        b"[:space:]",
        b"[:punct:]",
        b"[:foo:]",
        b"[:",
        b":]",
        b"[.",
        b".]",
        b"[=",
        b"=]",
        b"[.a.]",
        b"[=b=]",
        b"[!",
        b"[^",
        b"[]",
        b"\\/",
        b"\\]",
        b"a-z",
        b"-]",
    ];

    const NAME_TOKENS: &[&[u8]] = &[
        b"a", b"a", b"b", b"b", b"z", b"A", b"1", b" ", b"/", b"/", b"[", b"]", b"!", b"^", b"-",
        b"\\", b":", b".", b"=", b"*", b"?", b"\x80", b"\xff",
    ];

    fn random_pattern(rng: &mut Rng) -> Vec<u8> {
        let len = rng.below(10);
        let mut p = Vec::new();
        for _ in 0..len {
            p.extend_from_slice(rng.pick(PATTERN_TOKENS));
        }
        p
    }

    /// A name that has a fair chance of matching `pat`.
    fn random_name(rng: &mut Rng, pat: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        if rng.below(3) == 0 {
            for _ in 0..rng.below(8) {
                n.extend_from_slice(rng.pick(NAME_TOKENS));
            }
            return n;
        }
        let mut i = 0;
        while i < pat.len() {
            let c = pat[i];
            match (c, rng.below(8)) {
                (_, 0) => n.extend_from_slice(rng.pick(NAME_TOKENS)),
                (_, 1) => {}
                (b'*', _) => {
                    for _ in 0..rng.below(4) {
                        n.extend_from_slice(rng.pick(NAME_TOKENS));
                    }
                }
                (b'?', _) => n.extend_from_slice(rng.pick(NAME_TOKENS)),
                (b'\\', _) if i + 1 < pat.len() => {
                    n.push(pat[i + 1]);
                    i += 1;
                }
                _ => n.push(c),
            }
            i += 1;
        }
        n
    }

    fn differential(seed: u64, iterations: usize) {
        // glibc only honours `[^` as negation when POSIXLY_CORRECT is unset.
        let posixly_correct = std::env::var_os("POSIXLY_CORRECT").is_some();
        let mut rng = Rng(seed);
        let mut matches = [0usize; 4];
        let mut failures = Vec::new();
        for _ in 0..iterations {
            let pat = random_pattern(&mut rng);
            if posixly_correct && pat.contains(&b'^') {
                continue;
            }
            let names = [random_name(&mut rng, &pat), random_name(&mut rng, &pat)];
            for name in &names {
                for (k, f) in ALL.into_iter().enumerate() {
                    let want = glibc(&pat, name, f);
                    matches[k] += want as usize;
                    if fnmatch(&pat, name, f) != want && failures.len() < 20 {
                        failures.push(format!(
                            "pattern {:?} name {:?} {f:?}: glibc says {want}",
                            String::from_utf8_lossy(&pat),
                            String::from_utf8_lossy(name)
                        ));
                    }
                }
            }
        }
        assert!(
            failures.is_empty(),
            "mismatches with glibc:\n{}",
            failures.join("\n")
        );
        // Make sure the generator exercises both outcomes.
        for (k, &hits) in matches.iter().enumerate() {
            assert!(
                hits > iterations / 10,
                "too few matches for {:?}: {hits}",
                ALL[k]
            );
        }
    }

    #[test]
    fn differential_against_glibc() {
        differential(0x9e37_79b9_7f4a_7c15, 50_000);
    }

    #[test]
    fn differential_against_glibc_more_seeds() {
        let extra: usize = std::env::var("FNMATCH_DIFF_ITERS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(25_000);
        for seed in [1u64, 0xdead_beef, 0x1234_5678_9abc_def0] {
            differential(seed, extra);
        }
    }

    #[test]
    fn differential_classes_and_ranges_all_bytes() {
        let classes = [
            "alpha",
            "digit",
            "alnum",
            "upper",
            "lower",
            "space",
            "blank",
            "punct",
            "print",
            "graph",
            "cntrl",
            "xdigit",
            // Valid in C.UTF-8, unknown in the C locale.
            "combining",
        ];
        for class in classes {
            for pat in [format!("[[:{class}:]]"), format!("[![:{class}:]]")] {
                for ch in 1..=255u8 {
                    let f = Flags::NONE;
                    assert_eq!(
                        fnmatch(pat.as_bytes(), &[ch], f),
                        glibc(pat.as_bytes(), &[ch], f),
                        "{pat} {ch:#x}"
                    );
                }
            }
        }
        for lo in (1..=255u8).step_by(7) {
            for hi in (1..=255u8).step_by(11) {
                let pat = [b'[', b'\\', lo, b'-', b'\\', hi, b']'];
                for ch in 1..=255u8 {
                    let f = Flags::NONE;
                    assert_eq!(
                        fnmatch(&pat, &[ch], f),
                        glibc(&pat, &[ch], f),
                        "{pat:?} {ch}"
                    );
                }
            }
        }
    }

    #[test]
    fn differential_handwritten() {
        let pats: &[&[u8]] = &[
            b"[",
            b"[]",
            b"[]]",
            b"[!]",
            b"[!]]",
            b"[^]",
            b"[a-",
            b"[a-]",
            b"[-]",
            b"[--]",
            b"[!--]",
            b"[[:alpha:]-]",
            b"[[.-.]-z]",
            b"[[.a.]-[.c.]]",
            b"[a-[.c.]",
            b"[[=",
            b"[[==]]",
            b"[[===]]",
            b"[[=]=]]",
            b"[a[=]=]]",
            b"[\\",
            b"[\\\\",
            b"[a\\-z]",
            b"*[",
            b"*\\",
            b"*\\/",
            b"*/",
            b"/*",
            b"?/",
            b"*?/*",
            b"**/**",
            b"[[:alpha:]/]",
            b"[!/]",
            b"a[",
            b"a[/",
            b"[/]",
            b"/[a/b",
            b"[a/b]",
            b"\\",
            b"\\\\",
            b"*[a]",
            b"[*]",
            b"[?]",
            b"[a-c-]",
            b"[!a-c-]",
            b"[[:digit:]-[:alpha:]]",
            b"[[:digit:][]",
            b"[b[:",
            b"[b[.",
            b"[b[=",
            b"[a[:",
            b"[a[.",
            b"[a[=",
            b"[a[:a",
            b"[a[.a",
            b"[a[=a",
            b"[a[=a=",
            b"[a[=a=]",
        ];
        let names: &[&[u8]] = &[
            b"", b"a", b"b", b"c", b"-", b"/", b"[", b"]", b"\\", b"=", b".", b":", b"!", b"^",
            b"z", b"[]", b"[!]", b"[a-", b"a/", b"/a", b"//", b"a/b", b"[/", b"[a/b", b"=]", b"[=",
            b"a]", b"[a", b"*", b"?", b"\x80",
        ];
        for &pat in pats {
            for &name in names {
                for f in ALL {
                    assert_eq!(
                        fnmatch(pat, name, f),
                        glibc(pat, name, f),
                        "pattern {:?} name {:?} {f:?}",
                        String::from_utf8_lossy(pat),
                        String::from_utf8_lossy(name)
                    );
                }
            }
        }
    }
}
