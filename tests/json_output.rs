//! `--json` (our addition) for `-M`, `-L`, `-H` and `-S`: every line parses
//! as a JSON object, and the plain lines rebuilt from those objects are
//! byte for byte what the real csync2 prints, with the same exit code.
//! (`-T --json` is covered in tests/net_compare.rs.)

mod common;

use common::*;
use serde_json::Value;
use std::ffi::OsString;

const CFG: &str = "
group g {
    host {HOST} h2.local.test (h3.local.test);
    key g1.key;
    include {TREE};
}
";

/// A field holding a name: exact bytes from `<k>_hex` when present.
fn name(v: &Value, k: &str) -> Vec<u8> {
    if let Some(h) = v.get(format!("{k}_hex")).and_then(Value::as_str) {
        return (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
            .collect();
    }
    v[k].as_str()
        .unwrap_or_else(|| panic!("no string `{k}` in {v}"))
        .as_bytes()
        .to_vec()
}

fn objects(out: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(out).expect("JSON output is UTF-8");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn rebuild(mode: &str, v: &Value) -> Vec<u8> {
    let mut line = Vec::new();
    match mode {
        "-M" => {
            let flag = if v["force"].as_bool().expect("force") {
                "force"
            } else {
                "chary"
            };
            for part in [
                flag.as_bytes().to_vec(),
                name(v, "myname"),
                name(v, "peer"),
                name(v, "file"),
            ] {
                line.extend_from_slice(&part);
                line.push(b'\t');
            }
            line.pop();
        }
        "-L" | "-S" => {
            line.extend_from_slice(&name(v, "checktxt"));
            line.push(b'\t');
            line.extend_from_slice(&name(v, "file"));
        }
        "-H" => {
            let rec = v["recursive"].as_bool().expect("recursive");
            line.extend_from_slice(if rec { b"1\t" } else { b"0\t" });
            line.extend_from_slice(&name(v, "file"));
        }
        _ => unreachable!(),
    }
    line.push(b'\n');
    line
}

/// Returns the number of objects.
fn compare(env: &Env, args: &[&str]) -> usize {
    let a: Vec<OsString> = args.iter().map(OsString::from).collect();
    let real = env.run(Which::Real, &a);
    let mut j = a.clone();
    j.push("--json".into());
    let ours = env.run(Which::Ours, &j);
    assert_eq!(
        ours.code,
        real.code,
        "{args:?}: exit code; ours stderr: {}",
        show(&ours.stderr)
    );
    let objs = objects(&ours.stdout);
    let rebuilt: Vec<u8> = objs.iter().flat_map(|v| rebuild(args[0], v)).collect();
    assert!(
        rebuilt == real.stdout,
        "{args:?}: rebuilt from JSON:\n{}\nreal:\n{}",
        show(&rebuilt),
        show(&real.stdout)
    );
    objs.len()
}

#[test]
fn listings_as_json() {
    let env = Env::new("json_listings");
    env.config(CFG);
    env.mkdir("d", 0o755);
    env.file("d/plain.txt", "x", 0o644, T0);
    env.file(b"d/tab\there", "x", 0o600, T0);
    env.file(b"d/new\nline", "x", 0o644, T0);
    env.file(b"d/quote\"back\\slash", "x", 0o644, T0);
    env.file(b"d/latin1-\xe9", "x", 0o644, T0);
    env.file("d/ctl-\u{1}", "x", 0o644, T0);
    std::os::unix::fs::symlink("plain.txt", env.p("d/link")).expect("symlink");
    let tree = env.tree.to_string_lossy().into_owned();
    // empty database: exit 2, no output
    for m in ["-M", "-L", "-H"] {
        compare(&env, &[m]);
    }
    for w in [Which::Real, Which::Ours] {
        let out = env.run(w, &[OsString::from("-cr"), OsString::from(&tree)]);
        assert!(out.code == Some(0), "-cr: {}", show(&out.stderr));
        let out = env.run(w, &[OsString::from("-f"), env.t("d/plain.txt")]);
        assert!(out.code == Some(0), "-f: {}", show(&out.stderr));
        for (h, r) in [("d", true), ("d/plain.txt", false)] {
            let mut a = vec![OsString::from("-h")];
            if r {
                a.push("-r".into());
            }
            a.push(env.t(h));
            let out = env.run(w, &a);
            assert!(out.code == Some(0), "-h: {}", show(&out.stderr));
        }
    }
    // two peers for each of 8 entries; 9 files with the tree and d
    assert_eq!(compare(&env, &["-M"]), 18);
    assert_eq!(compare(&env, &["-L"]), 9);
    assert_eq!(compare(&env, &["-H"]), 2);
    assert_eq!(compare(&env, &["-S", HOST, "h2.local.test"]), 9);
    assert_eq!(compare(&env, &["-S", HOST, "nobody"]), 0);
    // typed check-text fields
    let ours = env.run(
        Which::Ours,
        &[OsString::from("-L"), OsString::from("--json")],
    );
    let rows = objects(&ours.stdout);
    let plain = rows
        .iter()
        .find(|v| name(v, "file").ends_with(b"/d/plain.txt"))
        .expect("plain.txt listed");
    assert_eq!(plain["type"], "reg");
    assert_eq!(plain["size"], 1);
    assert_eq!(plain["mode"], 0o100644);
    let link = rows
        .iter()
        .find(|v| name(v, "file").ends_with(b"/d/link"))
        .expect("link listed");
    assert_eq!(link["type"], "lnk");
    assert_eq!(link["target"], "plain.txt");
    // not with other modes
    let out = env.run(
        Which::Ours,
        &[OsString::from("-x"), OsString::from("--json")],
    );
    assert_eq!(out.code, Some(1));
    assert!(show(&out.stderr).contains("--json works only with"));
}
