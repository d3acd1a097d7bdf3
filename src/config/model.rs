//! The parsed configuration (config.md §4–§5). Names are byte strings:
//! file names and patterns need not be UTF-8.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternKind {
    Include,
    Exclude,
    Compare,
}

#[derive(Debug, Clone)]
pub struct Pattern {
    pub text: Vec<u8>,
    pub kind: PatternKind,
    /// contains `**`: FNM_PATHNAME is dropped
    pub star_matches_slashes: bool,
}

impl Pattern {
    pub fn new(mut text: Vec<u8>, kind: PatternKind) -> Pattern {
        while text.len() > 1 && text.last() == Some(&b'/') {
            text.pop();
        }
        let star_matches_slashes = text.windows(2).any(|w| w == b"**");
        Pattern {
            text,
            kind,
            star_matches_slashes,
        }
    }

    /// Pathname patterns start with `/` or `%`; the rest match basenames.
    pub fn is_pathname(&self) -> bool {
        matches!(self.text.first(), Some(b'/') | Some(b'%'))
    }
}

#[derive(Debug, Clone)]
pub struct Host {
    /// the name connected to (the part after `@` if given), lowercased
    pub name: Vec<u8>,
    pub slave: bool,
    /// written before the local host in the group ("left side")
    pub on_left: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoMethod {
    None,
    First,
    Younger,
    Older,
    Bigger,
    Smaller,
    Left,
    Right,
}

impl AutoMethod {
    pub fn parse(word: &[u8]) -> Option<AutoMethod> {
        Some(match word {
            b"none" => AutoMethod::None,
            b"first" => AutoMethod::First,
            b"younger" => AutoMethod::Younger,
            b"older" => AutoMethod::Older,
            b"bigger" => AutoMethod::Bigger,
            b"smaller" => AutoMethod::Smaller,
            b"left" => AutoMethod::Left,
            b"right" => AutoMethod::Right,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Action {
    pub patterns: Vec<Vec<u8>>,
    pub commands: Vec<Vec<u8>>,
    pub logfile: Option<Vec<u8>>,
    pub do_local: bool,
    pub do_local_only: bool,
}

impl Action {
    pub fn logfile(&self) -> &[u8] {
        self.logfile.as_deref().unwrap_or(b"/dev/null")
    }
}

#[derive(Debug, Clone)]
pub struct Group {
    pub name: Vec<u8>,
    pub key: Vec<u8>,
    /// this host's name in the group; None when it is not a member or was
    /// deselected by -G
    pub myname: Option<Vec<u8>>,
    pub local_slave: bool,
    /// peers in config order (the local host is not in this list)
    pub hosts: Vec<Host>,
    pub patterns: Vec<Pattern>,
    pub actions: Vec<Action>,
    pub auto: AutoMethod,
    pub backup_directory: Option<Vec<u8>>,
    pub backup_generations: i32,
    /// false when -P was given and names none of the group's peers
    pub has_active_peers: bool,
}

impl Group {
    pub fn is_active(&self) -> bool {
        self.myname.is_some()
    }

    pub fn has_peer(&self, peer: &[u8]) -> bool {
        self.hosts.iter().any(|h| h.name == peer)
    }
}

#[derive(Debug, Clone)]
pub struct Prefix {
    pub name: Vec<u8>,
    /// the path on this host, without trailing slashes
    pub path: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Default)]
pub struct Ignore {
    pub uid: bool,
    pub gid: bool,
    pub mode: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// reverse file order: the last group in the file comes first
    pub groups: Vec<Group>,
    /// reverse file order as well
    pub prefixes: Vec<Prefix>,
    pub nossl: Vec<(Vec<u8>, Vec<u8>)>,
    pub ignore: Ignore,
    pub tempdir: Option<Vec<u8>>,
    pub lock_timeout: i32,
    /// the first `database` statement
    pub database: Option<Vec<u8>>,
    pub myhostname: Vec<u8>,
}

impl Config {
    pub fn active_groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.iter().filter(|g| g.is_active())
    }

    pub fn is_member(&self) -> bool {
        self.groups.iter().any(|g| g.is_active())
    }
}
