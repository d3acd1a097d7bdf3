//! The module graph of `src/` has no cycles, and the layers keep their
//! direction: the wire vocabulary knows nothing of the client or the
//! server, and neither of those knows the other or the program's modes
//! (doc/architecture.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn strip_comments(s: &str) -> String {
    s.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
        .collect()
}

/// Top-level module → the top-level modules it names (`crate::x`, and
/// `use crate::{x, y::z}`).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let top = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = strip_comments(&std::fs::read_to_string(f).unwrap());
        let deps = g.entry(top.clone()).or_default();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + 7..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for part in group[..end].split(',') {
                    let w = ident_at(part.trim());
                    if !w.is_empty() {
                        deps.insert(w);
                    }
                }
            } else {
                let w = ident_at(rest);
                if !w.is_empty() {
                    deps.insert(w);
                }
            }
        }
        deps.remove(&top);
    }
    let mods: BTreeSet<String> = g.keys().cloned().collect();
    for d in g.values_mut() {
        d.retain(|m| mods.contains(m));
    }
    g
}

fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        u: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(u.to_string(), 1);
        stack.push(u.to_string());
        for v in &g[u] {
            match state.get(v.as_str()).copied().unwrap_or(0) {
                0 => {
                    if let Some(c) = visit(v, g, state, stack) {
                        return Some(c);
                    }
                }
                1 => {
                    let at = stack.iter().position(|s| s == v).unwrap();
                    let mut c = stack[at..].to_vec();
                    c.push(v.clone());
                    return Some(c);
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(u.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for u in g.keys() {
        if state.get(u.as_str()).copied().unwrap_or(0) == 0
            && let Some(c) = visit(u, g, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn module_graph_has_no_cycles() {
    let g = graph();
    // a scanner that finds nothing would pass vacuously
    assert!(g.len() > 20, "too few modules found: {g:?}");
    assert!(g["app"].contains("setup") && g["server"].contains("protocol"));
    if let Some(c) = find_cycle(&g) {
        panic!("module cycle: {}", c.join(" -> "));
    }
}

#[test]
fn layers_keep_their_direction() {
    let g = graph();
    let forbidden: &[(&str, &[&str])] = &[
        (
            "protocol",
            &["client", "server", "update", "app", "compare", "setup"],
        ),
        ("client", &["server", "app", "update", "compare"]),
        ("server", &["client", "app", "update", "compare", "catchup"]),
        ("setup", &["app", "client", "server", "update"]),
        ("update", &["server", "app"]),
        ("cli", &["app", "server", "client", "db"]),
    ];
    let mut bad = Vec::new();
    for (m, never) in forbidden {
        for n in *never {
            if g[*m].contains(*n) {
                bad.push(format!("{m} uses {n}"));
            }
        }
    }
    assert!(bad.is_empty(), "layering broken: {bad:?}");
}

#[test]
fn cycle_finder_finds_cycles() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.insert("a".into(), ["b".to_string()].into());
    g.insert("b".into(), ["c".to_string()].into());
    g.insert("c".into(), ["a".to_string()].into());
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
    g.get_mut("c").unwrap().clear();
    assert!(find_cycle(&g).is_none());
}
