//! The kinds of file csync2 synchronises, and each kind's names: the
//! `lstat` type, the request that creates it (PATCH or MK*), its `X-PUT`
//! kind, and its `type=` in a check text (state.md §2, protocol.md §3).

use crate::fsutil::Stat;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Reg,
    Dir,
    Chr,
    Blk,
    Fifo,
    Link,
    Sock,
}

const ALL: [FileKind; 7] = [
    FileKind::Reg,
    FileKind::Dir,
    FileKind::Chr,
    FileKind::Blk,
    FileKind::Fifo,
    FileKind::Link,
    FileKind::Sock,
];

impl FileKind {
    /// The kind of an entry; anything unknown is sent as a socket, as the
    /// real client does.
    pub fn of(st: &Stat) -> FileKind {
        if st.is_file() {
            FileKind::Reg
        } else if st.is_dir() {
            FileKind::Dir
        } else if st.is_char_device() {
            FileKind::Chr
        } else if st.is_block_device() {
            FileKind::Blk
        } else if st.is_fifo() {
            FileKind::Fifo
        } else if st.is_symlink() {
            FileKind::Link
        } else {
            FileKind::Sock
        }
    }

    /// The request that creates an entry of this kind on a peer.
    pub fn verb(self) -> &'static str {
        match self {
            FileKind::Reg => "PATCH",
            FileKind::Dir => "MKDIR",
            FileKind::Chr => "MKCHR",
            FileKind::Blk => "MKBLK",
            FileKind::Fifo => "MKFIFO",
            FileKind::Link => "MKLINK",
            FileKind::Sock => "MKSOCK",
        }
    }

    /// The kind an `MK*` word (upper case) creates; PATCH is not an MK*.
    pub fn from_make_verb(word: &[u8]) -> Option<FileKind> {
        ALL.into_iter()
            .find(|k| *k != FileKind::Reg && k.verb().as_bytes() == word)
    }

    /// The kind's name in `X-PUT`.
    pub fn put_name(self) -> &'static str {
        match self {
            FileKind::Reg => "reg",
            FileKind::Dir => "dir",
            FileKind::Chr => "chr",
            FileKind::Blk => "blk",
            FileKind::Fifo => "fifo",
            FileKind::Link => "link",
            FileKind::Sock => "sock",
        }
    }

    pub fn from_put_name(word: &[u8]) -> Option<FileKind> {
        ALL.into_iter().find(|k| k.put_name().as_bytes() == word)
    }

    /// The kind's `type=` value in a check text.
    pub fn check_type(self) -> &'static str {
        match self {
            FileKind::Link => "lnk",
            k => k.put_name(),
        }
    }

    /// The kind a check text describes (its `type=` field).
    pub fn of_check_text(text: &[u8]) -> Option<FileKind> {
        let at = text.windows(6).position(|w| w == b":type=")? + 6;
        let rest = &text[at..];
        let word = &rest[..rest.iter().position(|&b| b == b':').unwrap_or(rest.len())];
        ALL.into_iter().find(|k| k.check_type().as_bytes() == word)
    }

    /// The `mknod` file type of a special file.
    pub fn node_type(self) -> libc::mode_t {
        match self {
            FileKind::Chr => libc::S_IFCHR,
            FileKind::Blk => libc::S_IFBLK,
            FileKind::Fifo => libc::S_IFIFO,
            FileKind::Sock => libc::S_IFSOCK,
            FileKind::Reg => libc::S_IFREG,
            FileKind::Dir => libc::S_IFDIR,
            FileKind::Link => libc::S_IFLNK,
        }
    }

    /// Devices carry their device number on the wire.
    pub fn is_device(self) -> bool {
        matches!(self, FileKind::Chr | FileKind::Blk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in ALL {
            assert_eq!(FileKind::from_put_name(k.put_name().as_bytes()), Some(k));
            let text = format!("v1:mode=1:type={}:x=1", k.check_type());
            assert_eq!(FileKind::of_check_text(text.as_bytes()), Some(k));
            if k != FileKind::Reg {
                assert_eq!(FileKind::from_make_verb(k.verb().as_bytes()), Some(k));
            }
        }
        assert_eq!(FileKind::from_make_verb(b"PATCH"), None);
        assert_eq!(
            FileKind::of_check_text(b"v1:type=lnk:target=a"),
            Some(FileKind::Link)
        );
        assert_eq!(FileKind::of_check_text(b"---"), None);
    }
}
