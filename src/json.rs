//! `--json` (our addition): one JSON object per line for `-H`, `-L`, `-M`,
//! `-S` and `-T`, for monitoring. Names are bytes: a name that is not UTF-8
//! is shown with replacement characters and also given exactly as hex in
//! `<key>_hex`.

/// One object, built field by field.
pub struct Obj {
    out: Vec<u8>,
}

impl Default for Obj {
    fn default() -> Self {
        Self::new()
    }
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\r' => out.extend_from_slice(b"\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

impl Obj {
    pub fn new() -> Obj {
        Obj { out: vec![b'{'] }
    }

    fn key(&mut self, k: &str) {
        if self.out.len() > 1 {
            self.out.push(b',');
        }
        push_str(&mut self.out, k);
        self.out.push(b':');
    }

    /// A byte string; not UTF-8: also `<k>_hex`.
    pub fn bytes(mut self, k: &str, v: &[u8]) -> Obj {
        self.key(k);
        match std::str::from_utf8(v) {
            Ok(s) => push_str(&mut self.out, s),
            Err(_) => {
                push_str(&mut self.out, &String::from_utf8_lossy(v));
                let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
                self.key(&format!("{k}_hex"));
                push_str(&mut self.out, &hex);
            }
        }
        self
    }

    pub fn bool(mut self, k: &str, v: bool) -> Obj {
        self.key(k);
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        self
    }

    pub fn num(mut self, k: &str, v: i64) -> Obj {
        self.key(k);
        self.out.extend_from_slice(v.to_string().as_bytes());
        self
    }

    /// The object and a newline.
    pub fn line(mut self) -> Vec<u8> {
        self.out.extend_from_slice(b"}\n");
        self.out
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
