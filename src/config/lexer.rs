//! `config FILE…;` inclusion (config.md §2.8).
//!
//! The real program includes files inside its scanner, so an include may sit
//! between any two tokens. We reproduce that by splicing included files into
//! one text before the grammar runs, with a boundary mark around each file.
//! A segment table maps positions back to (file, line) for error messages.

use std::path::{Path, PathBuf};

/// Ends every token at a file boundary; never produced by input bytes,
/// which are all mapped to chars below U+0100.
pub const MARK: char = '\u{E000}';

/// At most this many files may be open in addition to the main file.
const MAX_INCLUDE_DEPTH: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncludeError {
    CantOpen(Vec<u8>),
    TooDeep,
}

impl IncludeError {
    pub fn message(&self) -> String {
        match self {
            IncludeError::CantOpen(name) => format!(
                "Can't open included config file '{}'.",
                String::from_utf8_lossy(name)
            ),
            IncludeError::TooDeep => "Config includes nested too deeply.".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
struct Segment {
    start: usize,
    file: usize,
    line: usize,
}

/// The config text with all includes spliced in.
#[derive(Debug)]
pub struct Expanded {
    pub text: String,
    pub files: Vec<PathBuf>,
    segments: Vec<Segment>,
    /// Include failure at the end of `text`: the real scanner would report it
    /// when the parser asks for the next token there.
    pub failure: Option<IncludeError>,
    /// CR and LF bytes met in include mode, which flex echoes to stdout.
    pub leaked: Vec<u8>,
}

impl Expanded {
    /// The line number as the real parser reports it: one plus every newline
    /// scanned so far, across all files.
    pub fn bison_line(&self, pos: usize) -> usize {
        1 + self.text[..pos].bytes().filter(|&b| b == b'\n').count()
    }

    /// The true file and line of a position.
    pub fn location(&self, pos: usize) -> (&Path, usize) {
        let idx = match self.segments.binary_search_by(|s| s.start.cmp(&pos)) {
            Ok(i) => i,
            Err(0) => 0,
            Err(i) => i - 1,
        };
        let seg = &self.segments[idx];
        let nl = self.text[seg.start..pos]
            .bytes()
            .filter(|&b| b == b'\n')
            .count();
        (&self.files[seg.file], seg.line + nl)
    }
}

pub fn bytes_to_text(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

pub fn text_to_bytes(text: &str) -> Vec<u8> {
    text.chars()
        .filter(|&c| c != MARK)
        .map(|c| c as u32 as u8)
        .collect()
}

fn is_word_byte(b: u8) -> bool {
    !matches!(
        b,
        b' ' | b'\t' | b'\r' | b'\n' | b'@' | b';' | b'(' | b')' | b'#' | b'"'
    )
}

/// End of the maximal bare word starting at `i` (trailing colons excluded).
fn bare_word_end(src: &[u8], i: usize) -> usize {
    let mut j = i;
    while j < src.len() && is_word_byte(src[j]) {
        j += 1;
    }
    let mut end = j;
    while end > i && src[end - 1] == b':' {
        end -= 1;
    }
    end
}

struct Expander {
    out: Expanded,
    stop: bool,
}

impl Expander {
    fn begin_segment(&mut self, file: usize, line: usize) {
        let start = self.out.text.len();
        if let Some(last) = self.out.segments.last_mut()
            && last.start == start
        {
            *last = Segment { start, file, line };
            return;
        }
        self.out.segments.push(Segment { start, file, line });
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        self.out.text.extend(bytes.iter().map(|&b| b as char));
    }

    fn fail(&mut self, err: IncludeError) {
        self.out.failure = Some(err);
        self.stop = true;
    }

    fn expand(&mut self, src: &[u8], file: usize, depth: usize) {
        let mut line = 1;
        self.begin_segment(file, line);
        let mut i = 0;
        while i < src.len() && !self.stop {
            let b = src[i];
            match b {
                b'#' => {
                    let mut j = i;
                    while j < src.len() && src[j] != b'\n' && src[j] != b'\r' {
                        j += 1;
                    }
                    self.push_bytes(&src[i..j]);
                    i = j;
                }
                b'"' => {
                    let mut j = i + 1;
                    while j < src.len() && src[j] != b'"' {
                        j += 1;
                    }
                    let j = (j + 1).min(src.len());
                    line += src[i..j].iter().filter(|&&c| c == b'\n').count();
                    self.push_bytes(&src[i..j]);
                    i = j;
                }
                _ if is_word_byte(b) => {
                    let end = bare_word_end(src, i).max(i + 1);
                    if &src[i..end] == b"config" {
                        i = self.include_mode(src, end, file, depth, &mut line);
                    } else {
                        self.push_bytes(&src[i..end]);
                        i = end;
                    }
                }
                b'\n' => {
                    line += 1;
                    self.push_bytes(&src[i..i + 1]);
                    i += 1;
                }
                _ => {
                    self.push_bytes(&src[i..i + 1]);
                    i += 1;
                }
            }
        }
    }

    /// Scans file names after `config` until `;` (consumed) or end of file.
    /// Returns the position after the directive.
    fn include_mode(
        &mut self,
        src: &[u8],
        mut i: usize,
        file: usize,
        depth: usize,
        line: &mut usize,
    ) -> usize {
        // Keep the directive from gluing the tokens around it together.
        self.out.text.push(MARK);
        while i < src.len() && !self.stop {
            match src[i] {
                b' ' | b'\t' => i += 1,
                b';' => {
                    i += 1;
                    break;
                }
                b'\n' | b'\r' => {
                    // flex echoes it; the line counter does not see it
                    if src[i] == b'\n' {
                        *line += 1;
                    }
                    self.out.leaked.push(src[i]);
                    i += 1;
                }
                _ => {
                    let mut j = i;
                    while j < src.len() && !matches!(src[j], b' ' | b'\t' | b'\r' | b'\n' | b';') {
                        j += 1;
                    }
                    let name = &src[i..j];
                    i = j;
                    self.include_file(name, depth);
                }
            }
        }
        self.out.text.push(MARK);
        self.begin_segment(file, *line);
        i
    }

    fn include_file(&mut self, name: &[u8], depth: usize) {
        if depth + 1 > MAX_INCLUDE_DEPTH {
            self.fail(IncludeError::TooDeep);
            return;
        }
        use std::os::unix::ffi::OsStrExt;
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(name));
        let content = match std::fs::read(&path) {
            Ok(c) => c,
            Err(_) => {
                self.fail(IncludeError::CantOpen(name.to_vec()));
                return;
            }
        };
        self.out.files.push(path);
        let id = self.out.files.len() - 1;
        self.out.text.push(MARK);
        self.expand(&content, id, depth + 1);
        self.out.text.push(MARK);
    }
}

/// Splices every include of `main` (read from `main_path`).
pub fn expand(main_path: &Path, main: &[u8]) -> Expanded {
    let mut ex = Expander {
        out: Expanded {
            text: String::with_capacity(main.len()),
            files: vec![main_path.to_path_buf()],
            segments: Vec::new(),
            failure: None,
            leaked: Vec::new(),
        },
        stop: false,
    };
    ex.expand(main, 0, 0);
    ex.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_word_trailing_colons() {
        assert_eq!(bare_word_end(b"host: x", 0), 4);
        assert_eq!(bare_word_end(b"a::b", 0), 4);
        assert_eq!(bare_word_end(b"a::", 0), 1);
    }

    #[test]
    fn include_is_spliced_and_located() {
        let dir = std::env::temp_dir().join(format!("c2lex{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let inc = dir.join("inc.cfg");
        std::fs::write(&inc, b"host a;\nhost b;\n").unwrap();
        let main = format!("group g {{\nconfig {};\nbad\n}}\n", inc.display());
        let ex = expand(Path::new("main.cfg"), main.as_bytes());
        assert!(ex.failure.is_none());
        let pos = ex.text.find("bad").unwrap();
        // 1 + 1 newline before the include + 2 inside it + 1 after
        assert_eq!(ex.bison_line(pos), 5);
        let (file, line) = ex.location(pos);
        assert_eq!(file, Path::new("main.cfg"));
        assert_eq!(line, 3);
        let (file, line) = ex.location(ex.text.find("host b").unwrap());
        assert_eq!(file, inc.as_path());
        assert_eq!(line, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_include_stops_expansion() {
        let ex = expand(
            Path::new("m"),
            b"group g {\nconfig /nonexistent/x;\nhost a;",
        );
        assert_eq!(
            ex.failure,
            Some(IncludeError::CantOpen(b"/nonexistent/x".to_vec()))
        );
        assert!(!ex.text.contains("host"));
    }

    #[test]
    fn newline_in_include_mode_is_leaked_not_counted() {
        let ex = expand(Path::new("m"), b"config\n;\nx");
        assert_eq!(ex.leaked, b"\n");
        let pos = ex.text.find('x').unwrap();
        assert_eq!(ex.bison_line(pos), 2);
        assert_eq!(ex.location(pos).1, 3);
    }
}
