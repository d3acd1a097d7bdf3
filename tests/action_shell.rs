//! File names reach action commands (`%%`) as inert shell words: a file
//! named `a;id>pwned` in a synced tree must not make root run `id` (the
//! real csync2 runs it). Local changes with `do-local`, so no network.

use std::path::Path;
use std::process::Command;

#[test]
fn file_names_cannot_inject_shell_commands() {
    let base = std::env::temp_dir().join(format!("c2actsh-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let tree = base.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::create_dir_all(base.join("etc")).unwrap();
    std::fs::create_dir_all(base.join("db")).unwrap();
    std::fs::write(base.join("etc/act.key"), [b'k'; 64]).unwrap();
    let log = base.join("action.log");
    std::fs::write(
        base.join("etc/csync2.cfg"),
        format!(
            "group g {{\n host h1.act.test h2.act.test;\n key act.key;\n include {t};\n \
             action {{ pattern {t}/*; exec \"echo %% >> {l}\"; do-local; }}\n}}\n",
            t = tree.display(),
            l = log.display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_csync2"))
            .current_dir(&base)
            .env("CSYNC2_SYSTEM_DIR", base.join("etc"))
            .args(["-N", "h1.act.test", "-D"])
            .arg(base.join("db"))
            .args(args)
            .arg(&tree)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["-cIr"]);
    for name in [
        "a;id>pwned",
        "b`id>pwned2`",
        "c&&id>pwned3",
        "d$(id>pwned4)",
    ] {
        std::fs::write(tree.join(name), b"x").unwrap();
    }
    run(&["-cr"]);
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    for p in ["pwned", "pwned2", "pwned3", "pwned4"] {
        assert!(
            !Path::new(&base.join(p)).exists(),
            "a file name ran a command ({p}); action log: {logged}"
        );
    }
    // the action ran, with every name as one word
    assert!(logged.contains("a%3Bid%3Epwned"), "{logged}");
    assert!(logged.contains("c%26%26id%3Epwned3"), "{logged}");
    std::fs::remove_dir_all(&base).unwrap();
}
