//! The config parser (`config::parser::parse_bytes`: include splicing,
//! the pest grammar and each statement's meaning), and on success the
//! matcher on names taken from the parsed config.
//!
//! The config (as `csync2.cfg`) and relative `include`/`key` names are
//! in `$C2FUZZ_CONFIG_DIR` (default `/dev/shm/c2fuzz-config`), which holds
//! the key file `k1.key` of the config test cases and an include file
//! `inc.cfg`. The local host is `h1.cfg.test`, as in those test cases
//! (the seeds).
use csync2::config::parser::{ParseOptions, parse_bytes};
use std::path::PathBuf;

fn main() {
    let sysdir = PathBuf::from(
        std::env::var_os("C2FUZZ_CONFIG_DIR").unwrap_or_else(|| "/dev/shm/c2fuzz-config".into()),
    );
    std::fs::create_dir_all(&sysdir).expect("create C2FUZZ_CONFIG_DIR");
    std::fs::write(
        sysdir.join("k1.key"),
        "Vq3xT8bLk2NwZr7YpHc5Md9Fs1Gj4Ue6Aa0Bb.Cc_DdEeFfGgHhIiJjKkLlMmNnOo\n",
    )
    .expect("write k1.key");
    std::fs::write(
        sysdir.join("inc.cfg"),
        "group inc { host h1.cfg.test h9; key k1.key; }\n",
    )
    .expect("write inc.cfg");
    let sysdir = sysdir.as_path();
    let path = sysdir.join("csync2.cfg");
    afl::fuzz!(|data: &[u8]| {
        let opts = ParseOptions {
            myhostname: b"h1.cfg.test",
            sysdir,
            only_groups: None,
            only_peers: None,
        };
        let Ok(cfg) = parse_bytes(&path, data, &opts) else {
            return;
        };
        // names to try: every pattern and prefix path, and a few fixed ones
        let mut names: Vec<Vec<u8>> = vec![b"/".to_vec(), b"/etc/x".to_vec(), b"%p%/x".to_vec()];
        for g in &cfg.groups {
            names.extend(g.patterns.iter().map(|p| p.text.clone()));
        }
        for p in &cfg.prefixes {
            names.push(p.name.clone());
            if let Some(path) = &p.path {
                names.push(path.clone());
            }
        }
        names.truncate(16);
        for n in &names {
            for compare in [false, true] {
                let _ = cfg.selects(n, compare);
                let _ = cfg.class(n, compare);
                let _ = cfg.matching_groups(compare).count();
            }
            let _ = cfg.peers_of(n, None);
            let enc = cfg.prefix_encode(n);
            let _ = cfg.prefix_forms(n);
            let _ = cfg.prefixes_at(n);
            let _ = cfg.prefix_decode(&enc);
            let _ = cfg.prefix_decode(n);
        }
    });
}
