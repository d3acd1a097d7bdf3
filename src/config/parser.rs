//! Drives the pest grammar one statement at a time and applies each
//! statement's meaning as it is read, so that the first error reported is the
//! one the real program reports (config.md §3–§5, §7).

use super::lexer::{self, Expanded, MARK};
use super::model::*;
use crate::fnmatch::{Flags, fnmatch};
use crate::log;
use pest::Parser;
use pest::iterators::Pair;
use std::path::{Path, PathBuf};

#[derive(pest_derive::Parser)]
#[grammar = "config/grammar.pest"]
pub struct ConfigGrammar;

/// A config error: `message` is the real program's line; `detail` is our
/// extra line that names the true file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub message: String,
    pub detail: Option<String>,
    /// include errors bypass the logger (always stderr)
    pub plain_stderr: bool,
}

impl ConfigError {
    fn semantic(message: String) -> ConfigError {
        ConfigError {
            message,
            detail: None,
            plain_stderr: false,
        }
    }
}

pub struct ParseOptions<'a> {
    pub myhostname: &'a [u8],
    pub sysdir: &'a Path,
    /// -G
    pub only_groups: Option<&'a [Vec<u8>]>,
    /// -P
    pub only_peers: Option<&'a [Vec<u8>]>,
}

/// C `atoll`: leading blanks, optional sign, digits; anything else gives 0
/// (saturating instead of overflowing).
pub fn atoll(s: &[u8]) -> i64 {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let neg = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut v: i64 = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        v = v.saturating_mul(10).saturating_add(i64::from(s[i] - b'0'));
        i += 1;
    }
    if neg { -v } else { v }
}

/// C `atoi`, saturating to the `int` range.
pub fn atoi(s: &[u8]) -> i32 {
    atoll(s).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

fn lower(s: &[u8]) -> Vec<u8> {
    s.to_ascii_lowercase()
}

struct GroupBuilder {
    group: Group,
    seen_local: bool,
    has_key: bool,
    has_auto: bool,
}

struct State<'a> {
    opts: &'a ParseOptions<'a>,
    ex: &'a Expanded,
    cfg: Config,
    anon_groups: usize,
}

pub fn parse_file(path: &Path, opts: &ParseOptions) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| {
        ConfigError::semantic(format!(
            "Can not open config file `{}': {}",
            path.display(),
            log::strerror(&e)
        ))
    })?;
    parse_bytes(path, &bytes, opts)
}

pub fn parse_bytes(path: &Path, bytes: &[u8], opts: &ParseOptions) -> Result<Config, ConfigError> {
    let ex = lexer::expand(path, bytes);
    if !ex.leaked.is_empty() {
        // flex echoes line ends met in include mode to stdout
        use std::io::Write;
        let _ = std::io::stdout().write_all(&ex.leaked);
    }
    let mut st = State {
        opts,
        ex: &ex,
        cfg: Config {
            groups: Vec::new(),
            prefixes: Vec::new(),
            nossl: Vec::new(),
            ignore: Ignore::default(),
            tempdir: None,
            lock_timeout: 12,
            database: None,
            myhostname: opts.myhostname.to_vec(),
        },
        anon_groups: 0,
    };
    st.run()?;
    Ok(st.cfg)
}

fn word_bytes(pair: Pair<Rule>) -> Vec<u8> {
    let inner = pair.into_inner().next().expect("word has one inner token");
    let s = inner.as_str();
    match inner.as_rule() {
        Rule::quoted => {
            let body = &s[1..];
            let body = body.strip_suffix('"').unwrap_or(body);
            lexer::text_to_bytes(body)
        }
        _ => lexer::text_to_bytes(s),
    }
}

fn words(pair: Pair<Rule>) -> Vec<Vec<u8>> {
    pair.into_inner()
        .filter(|p| p.as_rule() == Rule::word)
        .map(word_bytes)
        .collect()
}

impl<'a> State<'a> {
    fn text(&self) -> &'a str {
        &self.ex.text
    }

    fn skip(&self, pos: usize) -> usize {
        pos + skip_len(&self.text()[pos..])
    }

    /// Parses one `rule` at `pos`; on failure builds the syntax error.
    fn parse_one(&self, rule: Rule, pos: usize) -> Result<(Pair<'a, Rule>, usize), ConfigError> {
        let text = self.text();
        match ConfigGrammar::parse(rule, &text[pos..]) {
            Ok(pairs) => {
                // silent rules yield several pairs (e.g. a statement and its `;`)
                let end = pos + pairs.clone().map(|p| p.as_span().end()).max().unwrap_or(0);
                let pair = pairs.into_iter().next().expect("a rule match");
                Ok((pair, end))
            }
            Err(e) => {
                let off = match e.location {
                    pest::error::InputLocation::Pos(p) => p,
                    pest::error::InputLocation::Span((s, _)) => s,
                };
                Err(self.syntax_error(pos + off, &e))
            }
        }
    }

    fn syntax_error(&self, at: usize, e: &pest::error::Error<Rule>) -> ConfigError {
        let text = self.text();
        // the error position may sit before skipped blanks
        let at = self.skip(at);
        if at >= text.len()
            && let Some(f) = &self.ex.failure
        {
            return ConfigError {
                message: f.message(),
                detail: None,
                plain_stderr: true,
            };
        }
        let tok_end = token_end(text, at);
        let bison = self.ex.bison_line(tok_end);
        let (file, line) = self.ex.location(at);
        let found = if at >= text.len() {
            "end of file".to_string()
        } else {
            let t = lexer::text_to_bytes(&text[at..tok_end]);
            format!("'{}'", String::from_utf8_lossy(&t).escape_debug())
        };
        let expected = match &e.variant {
            pest::error::ErrorVariant::ParsingError { positives, .. } => {
                let mut v: Vec<&str> = positives.iter().filter_map(|r| describe(*r)).collect();
                v.sort();
                v.dedup();
                v
            }
            _ => Vec::new(),
        };
        let expected = if expected.is_empty() {
            String::new()
        } else {
            format!(", expected {}", expected.join(" or "))
        };
        ConfigError {
            message: format!("Near line {bison}: syntax error"),
            detail: Some(format!(
                "{}:{}: syntax error: unexpected {found}{expected}",
                file.display(),
                line
            )),
            plain_stderr: false,
        }
    }

    fn run(&mut self) -> Result<(), ConfigError> {
        let mut pos = self.skip(0);
        while pos < self.text().len() {
            let (pair, end) = match self.parse_one(Rule::top_item, pos) {
                Ok(r) => r,
                Err(e) => return Err(self.early_reduction(pos, None).unwrap_or(e)),
            };
            match pair.as_rule() {
                Rule::group_open => {
                    pos = self.group(pair, end)?;
                }
                Rule::prefix_open => {
                    pos = self.prefix(pair, end)?;
                }
                _ => {
                    self.top_stmt(pair)?;
                    pos = end;
                }
            }
            pos = self.skip(pos);
        }
        if let Some(f) = &self.ex.failure {
            return Err(ConfigError {
                message: f.message(),
                detail: None,
                plain_stderr: true,
            });
        }
        Ok(())
    }

    fn top_stmt(&mut self, pair: Pair<Rule>) -> Result<(), ConfigError> {
        match pair.as_rule() {
            Rule::nossl_stmt => {
                let w = words(pair);
                self.cfg.nossl.push((w[0].clone(), w[1].clone()));
                Ok(())
            }
            Rule::ignore_stmt => self.ignore(words(pair)),
            Rule::tempdir_stmt => {
                self.cfg.tempdir = words(pair).pop();
                Ok(())
            }
            Rule::lock_timeout_stmt => {
                self.cfg.lock_timeout = atoi(&words(pair)[0]);
                Ok(())
            }
            Rule::database_stmt => {
                if self.cfg.database.is_none() {
                    self.cfg.database = words(pair).pop();
                }
                Ok(())
            }
            Rule::nocygwin_stmt => Err(ConfigError::semantic(
                "Config error: Found 'nocygwinlowercase' but this is not a cygwin csync2."
                    .to_string(),
            )),
            r => unreachable!("top-level rule {r:?}"),
        }
    }

    /// `prefix NAME { on HOST: PATH; … }`, one entry at a time: each entry
    /// is checked as soon as it is read.
    fn prefix(&mut self, open: Pair<Rule>, mut pos: usize) -> Result<usize, ConfigError> {
        let name = word_bytes(
            open.into_inner()
                .find(|p| p.as_rule() == Rule::word)
                .expect("prefix name"),
        );
        let mut path: Option<Vec<u8>> = None;
        loop {
            pos = self.skip(pos);
            let (entry, end) = self.parse_one(Rule::prefix_item, pos)?;
            pos = end;
            if entry.as_rule() == Rule::rbrace {
                break;
            }
            let w = words(entry);
            let (host, p) = (&w[0], &w[1]);
            if p.first() != Some(&b'/') {
                return Err(ConfigError::semantic(format!(
                    "Config error: Prefix '{}' is not an absolute path.",
                    String::from_utf8_lossy(p)
                )));
            }
            if path.is_none() && fnmatch(host, self.opts.myhostname, Flags::NONE) {
                let mut p = p.clone();
                while p.len() > 1 && p.last() == Some(&b'/') {
                    p.pop();
                }
                log::debug(
                    2,
                    format!(
                        "Prefix '{}' is set to '{}'.",
                        String::from_utf8_lossy(&name),
                        String::from_utf8_lossy(&p)
                    ),
                );
                path = Some(p);
            }
        }
        self.cfg.prefixes.insert(0, Prefix { name, path });
        Ok(pos)
    }

    /// On a syntax error at `pos`: the error of a statement that bison had
    /// already reduced before it saw the bad token, if any.
    fn early_reduction(
        &mut self,
        pos: usize,
        gb: Option<&mut GroupBuilder>,
    ) -> Option<ConfigError> {
        let text = &self.text()[pos..];
        let head = |rule| {
            ConfigGrammar::parse(rule, text)
                .ok()
                .and_then(|mut p| p.next())
        };
        match gb {
            Some(gb) => {
                for rule in [Rule::key_head, Rule::auto_head] {
                    if let Some(pair) = head(rule) {
                        let stmt = if rule == Rule::key_head {
                            Rule::key_stmt
                        } else {
                            Rule::auto_stmt
                        };
                        return self.group_stmt_words(gb, stmt, words(pair)).err();
                    }
                }
                None
            }
            None => head(Rule::ignore_head).and_then(|pair| self.ignore(words(pair)).err()),
        }
    }

    fn ignore(&mut self, words: Vec<Vec<u8>>) -> Result<(), ConfigError> {
        for w in words.iter().rev() {
            match w.as_slice() {
                b"uid" => self.cfg.ignore.uid = true,
                b"gid" => self.cfg.ignore.gid = true,
                b"mod" => self.cfg.ignore.mode = true,
                _ => {
                    return Err(ConfigError::semantic(format!(
                        "Config error: Unknown 'ignore' porperty: '{}'.",
                        String::from_utf8_lossy(w)
                    )));
                }
            }
        }
        Ok(())
    }

    fn group(&mut self, open: Pair<Rule>, mut pos: usize) -> Result<usize, ConfigError> {
        let name = match open.into_inner().find(|p| p.as_rule() == Rule::word) {
            Some(w) => word_bytes(w),
            None => {
                self.anon_groups += 1;
                format!("group_{}", self.anon_groups).into_bytes()
            }
        };
        let mut gb = GroupBuilder {
            group: Group {
                name,
                key: Vec::new(),
                myname: None,
                local_slave: false,
                hosts: Vec::new(),
                patterns: Vec::new(),
                actions: Vec::new(),
                auto: AutoMethod::None,
                backup_directory: None,
                backup_generations: 3,
                has_active_peers: true,
            },
            seen_local: false,
            has_key: false,
            has_auto: false,
        };
        loop {
            pos = self.skip(pos);
            let (pair, end) = match self.parse_one(Rule::group_item, pos) {
                Ok(r) => r,
                Err(e) => return Err(self.early_reduction(pos, Some(&mut gb)).unwrap_or(e)),
            };
            pos = end;
            match pair.as_rule() {
                Rule::rbrace => break,
                Rule::action_block => gb.group.actions.push(action(pair)),
                _ => self.group_stmt(&mut gb, pair)?,
            }
        }
        self.finish_group(gb)?;
        Ok(pos)
    }

    fn group_stmt(&mut self, gb: &mut GroupBuilder, pair: Pair<Rule>) -> Result<(), ConfigError> {
        match pair.as_rule() {
            Rule::host_stmt => {
                for item in pair.into_inner() {
                    match item.as_rule() {
                        Rule::host_spec => self.host(gb, item, false),
                        Rule::slave_list => {
                            for spec in item.into_inner().filter(|p| p.as_rule() == Rule::host_spec)
                            {
                                self.host(gb, spec, true);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Rule::include_stmt | Rule::exclude_stmt => {
                let kind = if pair.as_rule() == Rule::include_stmt {
                    PatternKind::Include
                } else {
                    PatternKind::Exclude
                };
                for w in words(pair) {
                    gb.group.patterns.push(Pattern::new(w, kind));
                }
            }
            Rule::compare_stmt => {
                // the real grammar reuses the include list: only the last
                // word becomes a compare pattern (config.md §5.4)
                let w = words(pair);
                let n = w.len();
                for (i, w) in w.into_iter().enumerate() {
                    let kind = if i + 1 == n {
                        PatternKind::Compare
                    } else {
                        PatternKind::Include
                    };
                    gb.group.patterns.push(Pattern::new(w, kind));
                }
            }
            Rule::backup_directory_stmt => {
                gb.group.backup_directory = words(pair).pop();
            }
            Rule::backup_generations_stmt => {
                gb.group.backup_generations = atoi(&words(pair)[0]);
            }
            Rule::key_stmt | Rule::auto_stmt => {
                let rule = pair.as_rule();
                self.group_stmt_words(gb, rule, words(pair))?;
            }
            r => unreachable!("group rule {r:?}"),
        }
        Ok(())
    }

    /// `key` and `auto`: statements whose checks run as soon as they are read.
    fn group_stmt_words(
        &mut self,
        gb: &mut GroupBuilder,
        rule: Rule,
        mut w: Vec<Vec<u8>>,
    ) -> Result<(), ConfigError> {
        match rule {
            Rule::key_stmt => {
                if gb.has_key {
                    return Err(ConfigError::semantic(
                        "Config error: a group might only have one key.".to_string(),
                    ));
                }
                let file = w.pop().expect("key file");
                gb.group.key = read_key(self.opts.sysdir, &file)?;
                gb.has_key = true;
            }
            Rule::auto_stmt => {
                let w = w.pop().expect("auto word");
                if gb.has_auto {
                    return Err(ConfigError::semantic(
                        "Config error: a group might only have one auto-setting.".to_string(),
                    ));
                }
                gb.group.auto = AutoMethod::parse(&w).ok_or_else(|| {
                    ConfigError::semantic(format!(
                        "Config error: Unknown auto-setting '{}' (use 'none', 'younger', 'older', 'bigger', 'smaller', 'left' or 'right').",
                        String::from_utf8_lossy(&w)
                    ))
                })?;
                gb.has_auto = true;
            }
            r => unreachable!("word statement {r:?}"),
        }
        Ok(())
    }

    fn host(&self, gb: &mut GroupBuilder, spec: Pair<Rule>, slave: bool) {
        let w = words(spec);
        let name = lower(&w[0]);
        let alias = w.get(1).map(|a| lower(a));
        if name == self.opts.myhostname {
            gb.group.myname = Some(alias.unwrap_or(name));
            gb.group.local_slave = slave;
            gb.seen_local = true;
        } else {
            gb.group.hosts.push(Host {
                name: alias.unwrap_or(name),
                slave,
                on_left: !gb.seen_local,
            });
        }
    }

    fn finish_group(&mut self, gb: GroupBuilder) -> Result<(), ConfigError> {
        if !gb.has_key {
            return Err(ConfigError::semantic(
                "Config error: every group must have a key.".to_string(),
            ));
        }
        let mut g = gb.group;
        if let Some(peers) = self.opts.only_peers {
            g.has_active_peers = g.hosts.iter().any(|h| peers.contains(&h.name));
        }
        if let Some(groups) = self.opts.only_groups
            && g.myname.is_some()
            && !groups.contains(&g.name)
        {
            g.myname = None;
        }
        self.cfg.groups.insert(0, g);
        Ok(())
    }
}

fn action(pair: Pair<Rule>) -> Action {
    let mut a = Action::default();
    for stmt in pair.into_inner() {
        match stmt.as_rule() {
            Rule::pattern_stmt => a.patterns.extend(words(stmt)),
            Rule::exec_stmt => a.commands.extend(words(stmt)),
            Rule::logfile_stmt => a.logfile = words(stmt).pop(),
            Rule::do_local_stmt => a.do_local = true,
            Rule::do_local_only_stmt => {
                a.do_local = true;
                a.do_local_only = true;
            }
            _ => {}
        }
    }
    a
}

/// Reads and validates a group key file (config.md §5.2).
pub fn read_key(sysdir: &Path, file: &[u8]) -> Result<Vec<u8>, ConfigError> {
    use std::os::unix::ffi::OsStrExt;
    let path = if file.first() == Some(&b'/') {
        PathBuf::from(std::ffi::OsStr::from_bytes(file))
    } else {
        let mut p = sysdir.as_os_str().as_bytes().to_vec();
        p.push(b'/');
        p.extend_from_slice(file);
        PathBuf::from(std::ffi::OsStr::from_bytes(&p))
    };
    let shown = path.display().to_string();
    // fgets fails only for an unreadable or empty file
    let content = match std::fs::read(&path) {
        Ok(c) if !c.is_empty() => c,
        _ => {
            return Err(ConfigError::semantic(format!(
                "Config error: Can't read keyfile {shown}."
            )));
        }
    };
    // fgets into a 1024-byte buffer: the first line, at most 1023 bytes
    let first = &content[..content.len().min(1023)];
    let mut key = first
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default()
        .to_vec();
    if let Some(&bad) = key
        .iter()
        .find(|&&c| !(c.is_ascii_alphanumeric() || c == b'.' || c == b'_'))
    {
        let mut msg = b"Unallowed character '".to_vec();
        msg.push(bad);
        msg.extend_from_slice(format!("' in key file {shown}.").as_bytes());
        return Err(ConfigError::semantic(
            String::from_utf8_lossy(&msg).into_owned(),
        ));
    }
    if key.len() < 32 {
        return Err(ConfigError::semantic(format!(
            "Config error: Key in file {shown} is too short."
        )));
    }
    key.shrink_to_fit();
    Ok(key)
}

/// Length of the blanks and comments at the start of `t`.
fn skip_len(t: &str) -> usize {
    let b = t.as_bytes();
    let mut i = 0;
    loop {
        if t[i..].starts_with(MARK) {
            i += MARK.len_utf8();
        } else if i + 1 < b.len() && b[i] == b'"' && b[i + 1] == b'"' {
            i += 2;
        } else if i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r' | b'\n') {
            i += 1;
        } else if i < b.len() && b[i] == b'#' {
            while i < b.len() && !matches!(b[i], b'\r' | b'\n') && !t[i..].starts_with(MARK) {
                i += t[i..].chars().next().map(|c| c.len_utf8()).unwrap_or(1);
            }
        } else {
            return i;
        }
    }
}

/// End of the token starting at `at` (for the line number of an error).
fn token_end(text: &str, at: usize) -> usize {
    let t = &text[at..];
    for rule in [Rule::quoted, Rule::bare] {
        if let Ok(mut p) = ConfigGrammar::parse(rule, t)
            && let Some(p) = p.next()
        {
            return at + p.as_span().end();
        }
    }
    (at + t.chars().next().map(|c| c.len_utf8()).unwrap_or(0)).min(text.len())
}

fn describe(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::word => "a name",
        Rule::lbrace => "'{'",
        Rule::rbrace => "'}'",
        Rule::colon => "':'",
        Rule::semi => "';'",
        Rule::lparen => "'('",
        Rule::rparen => "')'",
        Rule::at => "'@'",
        Rule::k_group => "'group'",
        Rule::k_prefix => "'prefix'",
        Rule::k_nossl => "'nossl'",
        Rule::k_ignore => "'ignore'",
        Rule::k_tempdir => "'tempdir'",
        Rule::k_lock_timeout => "'lock-timeout'",
        Rule::k_database => "'database'",
        Rule::k_no_cygwin => "'no-cygwin-lowercase'",
        Rule::k_host => "'host'",
        Rule::k_include => "'include'",
        Rule::k_exclude => "'exclude'",
        Rule::k_compare => "'compare'",
        Rule::k_key => "'key'",
        Rule::k_auto => "'auto'",
        Rule::k_action => "'action'",
        Rule::k_backup_directory => "'backup-directory'",
        Rule::k_backup_generations => "'backup-generations'",
        Rule::k_pattern => "'pattern'",
        Rule::k_exec => "'exec'",
        Rule::k_logfile => "'logfile'",
        Rule::k_do_local => "'do-local'",
        Rule::k_do_local_only => "'do-local-only'",
        Rule::k_on => "'on'",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parses(rule: Rule, s: &str) -> Result<String, String> {
        ConfigGrammar::parse(rule, s)
            .map(|p| p.as_str().to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn statement_rules() {
        assert_eq!(
            parses(Rule::group_item, "host h1 h2 (h3);").unwrap(),
            "host h1 h2 (h3);"
        );
        assert_eq!(parses(Rule::group_item, "host a@b;").unwrap(), "host a@b;");
        assert_eq!(
            parses(Rule::group_item, "include /x \"a b\";").unwrap(),
            "include /x \"a b\";"
        );
        assert!(parses(Rule::group_item, "include on;").is_err());
        assert_eq!(
            parses(Rule::prefix_block, "prefix p { on h: /x; }").unwrap(),
            "prefix p { on h: /x; }"
        );
        assert!(parses(Rule::prefix_block, "prefix p { on h:/x; }").is_err());
        assert!(parses(Rule::top_item, "group g{ }").is_err());
        assert_eq!(
            parses(Rule::group_item, "action { exec \"x %%\"; do-local; }").unwrap(),
            "action { exec \"x %%\"; do-local; }"
        );
    }
}

#[cfg(test)]
mod driver_tests {
    use super::*;

    fn opts() -> ParseOptions<'static> {
        ParseOptions {
            myhostname: b"h1",
            sysdir: Path::new("/nonexistent"),
            only_groups: None,
            only_peers: None,
        }
    }

    #[test]
    fn hosts_and_patterns() {
        let cfg = b"group g1 {\n  host h1 h2 (h3);\n  include /t;\n}\n";
        let err = parse_bytes(Path::new("x.cfg"), cfg, &opts()).unwrap_err();
        // the key is missing: the first error is at the group end
        assert_eq!(err.message, "Config error: every group must have a key.");
    }
}
