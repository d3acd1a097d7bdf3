//! Which files belong to which groups (config.md §6).

use super::model::*;
use crate::fnmatch::{Flags, fnmatch};
use crate::log;
use crate::msg;

/// A peer of this host (see [`Config::peers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub name: Vec<u8>,
    /// this host's name towards it
    pub myname: Vec<u8>,
    /// the keys of the groups they share
    pub keys: Vec<Vec<u8>>,
}

/// How a checked name is treated during a walk (config.md §6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// not recorded, not descended into
    Ignore = 0,
    /// descended into but not recorded
    StepInto = 1,
    /// belongs to a group
    Member = 2,
}

fn basename(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&b| b == b'/') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

/// `prefix` equals `name` or is a leading directory of it.
pub fn is_at_or_below(name: &[u8], dir: &[u8]) -> bool {
    name.starts_with(dir) && (name.len() == dir.len() || name[dir.len()] == b'/' || dir == b"/")
}

impl Group {
    /// The per-group include/exclude decision (config.md §6.4).
    pub fn selects(&self, name: &[u8], compare: bool) -> bool {
        let mut path_ok = false;
        let mut base_ok = true;
        let base = basename(name);
        for p in &self.patterns {
            if p.kind == PatternKind::Compare && !compare {
                continue;
            }
            let hit = if p.is_pathname() {
                let flags = if p.star_matches_slashes {
                    Flags::LEADING_DIR
                } else {
                    Flags::LEADING_DIR_PATHNAME
                };
                fnmatch(&p.text, name, flags)
            } else {
                fnmatch(&p.text, base, Flags::NONE)
            };
            if !hit {
                continue;
            }
            let include = p.kind != PatternKind::Exclude;
            if log::enabled(2) {
                let sign = if include { "+" } else { "-" };
                log::debug(2, msg!("Match (", sign, "): ", p.text, " on ", name));
            }
            if p.is_pathname() {
                path_ok = include;
            } else {
                base_ok = include;
            }
        }
        path_ok && base_ok
    }

    /// `name` is a leading directory of one of the include (and in compare
    /// mode compare) pathname patterns.
    fn leads_to_pattern(&self, name: &[u8], compare: bool) -> bool {
        self.patterns.iter().any(|p| {
            if p.kind == PatternKind::Exclude
                || (p.kind == PatternKind::Compare && !compare)
                || !p.is_pathname()
            {
                return false;
            }
            let flags = if p.star_matches_slashes {
                Flags::NONE
            } else {
                Flags::PATHNAME
            };
            let mut t: &[u8] = &p.text;
            while let Some(i) = t.iter().rposition(|&b| b == b'/') {
                t = &t[..i];
                if fnmatch(t, name, flags) {
                    return true;
                }
            }
            false
        })
    }
}

impl Config {
    /// Groups that take part in matching (config.md §6.1).
    pub fn matching_groups(&self, compare: bool) -> impl Iterator<Item = &Group> {
        self.groups
            .iter()
            .filter(move |g| g.is_active() && (!compare || g.has_active_peers))
    }

    /// The file belongs to at least one active group.
    pub fn selects(&self, name: &[u8], compare: bool) -> bool {
        self.matching_groups(compare)
            .any(|g| g.selects(name, compare))
    }

    pub fn class(&self, name: &[u8], compare: bool) -> Class {
        if self.selects(name, compare) {
            return Class::Member;
        }
        if name == b"/"
            || self
                .matching_groups(compare)
                .any(|g| g.leads_to_pattern(name, compare))
            || self.prefixes.iter().any(|p| match &p.path {
                Some(path) => path.len() > name.len() && is_at_or_below(path, name),
                None => false,
            })
        {
            return Class::StepInto;
        }
        Class::Ignore
    }

    /// Every peer of this host's active groups, in name order, with the
    /// name this host has towards it and the keys of the groups they
    /// share (`--catch-up`, `--status`).
    pub fn peers(&self) -> Vec<PeerInfo> {
        let mut out: Vec<PeerInfo> = Vec::new();
        for g in self.matching_groups(false) {
            let Some(me) = g.myname.as_deref() else {
                continue;
            };
            for h in g.hosts.iter().filter(|h| h.name != me) {
                match out.iter_mut().find(|p| p.name == h.name) {
                    Some(p) if !p.keys.contains(&g.key) => p.keys.push(g.key.clone()),
                    Some(_) => {}
                    None => out.push(PeerInfo {
                        name: h.name.clone(),
                        myname: me.to_vec(),
                        keys: vec![g.key.clone()],
                    }),
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Peers of a file with the myname used towards each (config.md §6.6).
    /// With `via`, only groups that list that peer count.
    pub fn peers_of(&self, name: &[u8], via: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for g in self.matching_groups(false) {
            if let Some(v) = via
                && !g.has_peer(v)
            {
                continue;
            }
            if !g.selects(name, false) {
                continue;
            }
            let myname = g.myname.as_ref().expect("active group has a myname");
            for h in &g.hosts {
                if !out.iter().any(|(p, _)| *p == h.name) {
                    out.push((h.name.clone(), myname.clone()));
                }
            }
        }
        out
    }

    /// `/PATH/rest` → `%NAME%/rest` with the first prefix whose path covers
    /// it (config.md §6.7).
    pub fn prefix_encode(&self, real: &[u8]) -> Vec<u8> {
        for p in &self.prefixes {
            if let Some(path) = &p.path
                && path != b"/"
                && is_at_or_below(real, path)
            {
                return msg!(b"%", p.name, b"%", &real[path.len()..]);
            }
        }
        real.to_vec()
    }

    /// Every prefix-encoded form of a real path (one per covering block).
    pub fn prefix_forms(&self, real: &[u8]) -> Vec<Vec<u8>> {
        self.prefixes
            .iter()
            .filter_map(|p| match &p.path {
                Some(path) if path != b"/" && is_at_or_below(real, path) => {
                    Some(msg!(b"%", p.name, b"%", &real[path.len()..]))
                }
                _ => None,
            })
            .collect()
    }

    /// `%NAME%rest` → `PATH` + rest; Err is the fatal message.
    pub fn prefix_decode(&self, logical: &[u8]) -> Result<Vec<u8>, String> {
        if logical.first() != Some(&b'%') {
            return Ok(logical.to_vec());
        }
        let Some(end) = logical[1..].iter().position(|&b| b == b'%') else {
            return Ok(logical.to_vec());
        };
        let name = &logical[1..1 + end];
        let rest = &logical[end + 2..];
        match self
            .prefixes
            .iter()
            .find(|p| p.name == name && p.path.is_some())
        {
            Some(p) => Ok(msg!(p.path.as_ref().expect("checked"), rest)),
            None => Err(format!(
                "Prefix '{}' is not defined for host '{}'.",
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(&self.myhostname)
            )),
        }
    }

    /// Prefix names whose local path is exactly this real directory.
    pub fn prefixes_at(&self, real: &[u8]) -> Vec<Vec<u8>> {
        self.prefixes
            .iter()
            .filter(|p| p.path.as_deref() == Some(real))
            .map(|p| msg!(b"%", p.name, b"%"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(pats: &[(&str, PatternKind)]) -> Group {
        Group {
            name: b"g".to_vec(),
            key: Vec::new(),
            myname: Some(b"me".to_vec()),
            local_slave: false,
            hosts: vec![Host {
                name: b"peer".to_vec(),
                slave: false,
                on_left: false,
            }],
            patterns: pats
                .iter()
                .map(|(t, k)| Pattern::new(t.as_bytes().to_vec(), *k))
                .collect(),
            actions: Vec::new(),
            auto: AutoMethod::None,
            backup_directory: None,
            backup_generations: 3,
            has_active_peers: true,
        }
    }

    fn config(groups: Vec<Group>) -> Config {
        Config {
            groups,
            prefixes: Vec::new(),
            nossl: Vec::new(),
            ignore: Ignore::default(),
            tempdir: None,
            lock_timeout: 12,
            database: None,
            myhostname: b"me".to_vec(),
        }
    }

    use PatternKind::*;

    #[test]
    fn last_match_wins_per_category() {
        let g = group(&[("/t", Include), ("*.txt", Exclude), ("a.txt", Include)]);
        assert!(g.selects(b"/t/a.txt", false));
        assert!(!g.selects(b"/t/b.txt", false));
        assert!(g.selects(b"/t/b.conf", false));
        let g = group(&[("/t", Include), ("/t/sub", Exclude), ("*.conf", Include)]);
        assert!(!g.selects(b"/t/sub/c.conf", false));
    }

    #[test]
    fn traversal_classes() {
        // include T; exclude T/sub; include T/sub/deep (config.md §6.8)
        let c = config(vec![group(&[
            ("/t", Include),
            ("/t/sub", Exclude),
            ("/t/sub/deep", Include),
        ])]);
        assert_eq!(c.class(b"/", false), Class::StepInto);
        assert_eq!(c.class(b"/t", false), Class::Member);
        assert_eq!(c.class(b"/t/sub", false), Class::StepInto);
        assert_eq!(c.class(b"/t/sub/c", false), Class::Ignore);
        assert_eq!(c.class(b"/t/sub/deep/x", false), Class::Member);
        assert_eq!(c.class(b"/u", false), Class::Ignore);
        // the last matching pathname pattern decides
        let c = config(vec![group(&[
            ("/t/sub/deep", Include),
            ("/t/sub", Exclude),
        ])]);
        assert_eq!(c.class(b"/t/sub/deep/x", false), Class::Ignore);
        let c = config(vec![group(&[("/", Include)])]);
        assert_eq!(c.class(b"/", false), Class::Member);
        assert_eq!(c.class(b"/t", false), Class::Ignore);
    }

    #[test]
    fn compare_patterns_only_in_compare_mode() {
        let c = config(vec![group(&[("/t/a", Include), ("/t/b", Compare)])]);
        assert!(!c.selects(b"/t/b", false));
        assert!(c.selects(b"/t/b", true));
    }

    #[test]
    fn prefixes() {
        let mut c = config(vec![]);
        c.prefixes = vec![Prefix {
            name: b"p".to_vec(),
            path: Some(b"/srv/x".to_vec()),
        }];
        assert_eq!(c.prefix_encode(b"/srv/x/a"), b"%p%/a");
        assert_eq!(c.prefix_encode(b"/srv/x"), b"%p%");
        assert_eq!(c.prefix_encode(b"/srv/xy"), b"/srv/xy");
        assert_eq!(c.prefix_decode(b"%p%/a").unwrap(), b"/srv/x/a");
        assert!(c.prefix_decode(b"%q%/a").is_err());
        assert_eq!(c.class(b"/srv", false), Class::StepInto);
    }
}
