//! `--json` (our addition): one JSON object per line for `-H`, `-L`, `-M`,
//! `-S` and `-T`, for monitoring. Names are bytes: a name that is not UTF-8
//! is shown with replacement characters and also given exactly as hex in
//! `<key>_hex`.

use serde_json::{Map, Value};

/// One object, built field by field (in that order).
#[derive(Default)]
pub struct Obj {
    map: Map<String, Value>,
}

impl Obj {
    pub fn new() -> Obj {
        Obj::default()
    }

    /// A byte string; not UTF-8: also `<k>_hex`.
    pub fn bytes(mut self, k: &str, v: &[u8]) -> Obj {
        match std::str::from_utf8(v) {
            Ok(s) => {
                self.map.insert(k.to_string(), Value::from(s));
            }
            Err(_) => {
                let lossy = String::from_utf8_lossy(v).into_owned();
                self.map.insert(k.to_string(), Value::from(lossy));
                let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
                self.map.insert(format!("{k}_hex"), Value::from(hex));
            }
        }
        self
    }

    pub fn bool(mut self, k: &str, v: bool) -> Obj {
        self.map.insert(k.to_string(), Value::from(v));
        self
    }

    pub fn null(mut self, k: &str) -> Obj {
        self.map.insert(k.to_string(), Value::Null);
        self
    }

    /// A list of objects.
    pub fn list(mut self, k: &str, v: Vec<Obj>) -> Obj {
        let items = v.into_iter().map(|o| Value::Object(o.map)).collect();
        self.map.insert(k.to_string(), Value::Array(items));
        self
    }

    pub fn num(mut self, k: &str, v: i64) -> Obj {
        self.map.insert(k.to_string(), Value::from(v));
        self
    }

    /// The object and a newline.
    pub fn line(self) -> Vec<u8> {
        let mut out = serde_json::to_vec(&Value::Object(self.map)).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// A check text (`v1:mtime=…:mode=…`) as an object's fields besides the
/// raw text: numbers as numbers, the rest as strings.
pub fn checktxt_fields(mut o: Obj, text: &[u8]) -> Obj {
    o = o.bytes("checktxt", text);
    for part in text.split(|&b| b == b':').skip(1) {
        let Some(eq) = part.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (k, v) = (&part[..eq], &part[eq + 1..]);
        let Ok(k) = std::str::from_utf8(k) else {
            continue;
        };
        if !matches!(
            k,
            "mtime" | "mode" | "uid" | "gid" | "user" | "group" | "type" | "size" | "target"
        ) {
            continue;
        }
        let num = std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse::<i64>().ok());
        o = match num {
            Some(n) if k != "user" && k != "group" && k != "target" => o.num(k, n),
            _ => o.bytes(k, &crate::urlenc::decode(v)),
        };
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_invalid_utf8() {
        let l = Obj::new()
            .bytes("file", b"/a \"b\"\\\n\x01")
            .bool("force", true)
            .num("n", -3)
            .line();
        assert_eq!(
            String::from_utf8(l).unwrap(),
            "{\"file\":\"/a \\\"b\\\"\\\\\\n\\u0001\",\"force\":true,\"n\":-3}\n"
        );
        let l = Obj::new().bytes("file", b"/x\xff").line();
        assert_eq!(
            String::from_utf8(l).unwrap(),
            "{\"file\":\"/x\u{fffd}\",\"file_hex\":\"2f78ff\"}\n"
        );
    }

    #[test]
    fn check_text_fields() {
        let l = checktxt_fields(
            Obj::new(),
            b"v1:mtime=17:mode=33188:user=root:group=root:type=reg:size=5",
        )
        .line();
        assert_eq!(
            String::from_utf8(l).unwrap(),
            "{\"checktxt\":\"v1:mtime=17:mode=33188:user=root:group=root:type=reg:size=5\",\
             \"mtime\":17,\"mode\":33188,\"user\":\"root\",\"group\":\"root\",\"type\":\"reg\",\"size\":5}\n"
        );
    }
}
