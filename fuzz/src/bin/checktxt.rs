//! Check text parsing: `json::checktxt_fields`, the crate's parser of
//! `v1:mtime=…:mode=…` texts (used by `--json`).
//!
//! Properties checked besides "no panic":
//! * the line it makes from any bytes is one valid JSON object whose
//!   `checktxt` is the input (lossily decoded);
//! * a check text built by `checktxt::checktxt` from arbitrary stat data
//!   parses back to the same numbers.
use csync2::checktxt;
use csync2::config::model::Ignore;
use csync2::fsutil::Stat;
use csync2::json::{Obj, checktxt_fields};
use serde_json::Value;

fn object(line: &[u8]) -> serde_json::Map<String, Value> {
    assert_eq!(line.last(), Some(&b'\n'));
    assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(m)) => m,
        other => panic!("not a JSON object: {other:?}"),
    }
}

fn word<const N: usize>(data: &[u8], at: usize) -> [u8; N] {
    let mut b = [0u8; N];
    for (i, x) in b.iter_mut().enumerate() {
        *x = data.get(at + i).copied().unwrap_or(0);
    }
    b
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let m = object(&checktxt_fields(Obj::new(), data).line());
        let raw = m.get("checktxt").and_then(Value::as_str).expect("checktxt");
        assert_eq!(raw, String::from_utf8_lossy(data));

        // stat data from the first bytes, a symlink target from the rest
        let st = Stat {
            mode: u32::from_le_bytes(word(data, 0)),
            uid: u32::from_le_bytes(word(data, 4)),
            gid: u32::from_le_bytes(word(data, 8)),
            size: i64::from_le_bytes(word(data, 12)),
            mtime: i64::from_le_bytes(word(data, 20)),
            rdev: u64::from_le_bytes(word(data, 28)),
        };
        let flags = data.get(36).copied().unwrap_or(0);
        let ignore = Ignore {
            uid: flags & 1 != 0,
            gid: flags & 2 != 0,
            mode: flags & 4 != 0,
        };
        let target = data.get(37..).unwrap_or_default();
        let mtime = (flags & 8 != 0).then_some(st.mtime);
        let text = checktxt::checktxt(&st, Some(target), &ignore, mtime);
        assert!(text.starts_with(b"v1"));
        let m = object(&checktxt_fields(Obj::new(), &text).line());
        let num = |k: &str| m.get(k).and_then(Value::as_i64);
        if !ignore.mode {
            assert_eq!(num("mode"), Some(i64::from(st.mode as i32)));
        }
        if !ignore.uid {
            assert_eq!(num("uid"), Some(i64::from(st.uid as i32)));
        }
        if !ignore.gid {
            assert_eq!(num("gid"), Some(i64::from(st.gid as i32)));
        }
        if st.is_file() {
            assert_eq!(num("size"), Some(st.size));
            assert_eq!(m.get("type").and_then(Value::as_str), Some("reg"));
        }
        if st.is_symlink() && !target.contains(&0) {
            // the target is URL-encoded in the text and decoded again
            let t = m.get("target").map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => panic!("target: {v:?}"),
            });
            let want = String::from_utf8_lossy(target);
            assert_eq!(t.as_deref(), Some(&*want), "{m:?}");
        }
    });
}
