//! Normalisation of file arguments into canonical real names (cli.md §5.10).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Textual clean-up: `//`, `/./`, `/../` (never above `/`), trailing `/`.
pub fn clean(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let comps: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
    let n = comps.len();
    for (i, c) in comps.into_iter().enumerate() {
        match c {
            b"" => {}
            b"." if i + 1 < n => {}
            b".." => {
                parts.pop();
            }
            _ => parts.push(c),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for p in &parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

fn realpath(dir: &[u8]) -> Option<Vec<u8>> {
    std::fs::canonicalize(Path::new(OsStr::from_bytes(dir)))
        .ok()
        .map(|p| p.into_os_string().into_vec())
}

use std::os::unix::ffi::OsStringExt;

/// The canonical real name of a command-line file argument.
pub fn real_name(arg: &[u8], cwd: &[u8]) -> Vec<u8> {
    let mut abs = if arg.first() == Some(&b'/') {
        arg.to_vec()
    } else {
        let mut v = cwd.to_vec();
        v.push(b'/');
        v.extend_from_slice(arg);
        v
    };
    if abs.is_empty() {
        abs.push(b'/');
    }
    let cleaned = clean(&abs);
    if cleaned == b"/" {
        return cleaned;
    }
    let split = cleaned.iter().rposition(|&b| b == b'/').expect("absolute");
    let (dir, last) = (&cleaned[..split], &cleaned[split + 1..]);
    // the longest existing leading directory is resolved physically
    let mut head: &[u8] = dir;
    let mut tail: Vec<u8> = Vec::new();
    let resolved = loop {
        if head.is_empty() {
            break b"/".to_vec();
        }
        if let Some(r) = realpath(head) {
            break r;
        }
        let i = head.iter().rposition(|&b| b == b'/').expect("absolute");
        let mut t = head[i..].to_vec();
        t.extend_from_slice(&tail);
        tail = t;
        head = &head[..i];
    };
    let mut out = resolved;
    if out == b"/" {
        out.clear();
    }
    out.extend_from_slice(&tail);
    out.push(b'/');
    out.extend_from_slice(last);
    if out.ends_with(b"/.") {
        out.truncate(out.len() - 2);
        if out.is_empty() {
            out.push(b'/');
        }
    }
    out
}

pub fn cwd_bytes() -> Vec<u8> {
    std::env::current_dir()
        .map(|p| p.into_os_string().into_vec())
        .unwrap_or_else(|_| b"/".to_vec())
}

/// `dir/name` (no doubled slash below `/`).
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(dir.len() + name.len() + 1);
    v.extend_from_slice(dir);
    if dir != b"/" {
        v.push(b'/');
    }
    v.extend_from_slice(name);
    v
}

pub fn as_path(name: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textual_cleanup() {
        assert_eq!(clean(b"/a//b/./c/../d/"), b"/a/b/d");
        assert_eq!(clean(b"/.."), b"/");
        assert_eq!(clean(b"//"), b"/");
        assert_eq!(clean(b"/a/."), b"/a/.");
    }

    #[test]
    fn examples_from_the_spec() {
        let d = std::env::temp_dir().join(format!("c2paths{}", std::process::id()));
        let tree = d.join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        let _ = std::os::unix::fs::symlink(&tree, d.join("treelink"));
        let cwd = std::fs::canonicalize(&d)
            .unwrap()
            .into_os_string()
            .into_vec();
        let c = String::from_utf8(cwd.clone()).unwrap();
        let rn = |a: &str| String::from_utf8(real_name(a.as_bytes(), &cwd)).unwrap();
        assert_eq!(rn("tree//sub/../a.txt"), format!("{c}/tree/a.txt"));
        assert_eq!(rn("treelink/a.txt"), format!("{c}/tree/a.txt"));
        assert_eq!(rn("treelink/"), format!("{c}/treelink"));
        assert_eq!(rn("./nonexist/x/../y"), format!("{c}/nonexist/y"));
        assert_eq!(rn("//"), "/");
        assert_eq!(rn("."), c);
        assert_eq!(rn(&format!("{c}/tree/.")), format!("{c}/tree"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
