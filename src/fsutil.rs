//! File-system reads for the check walk: `lstat` data in a plain struct, and
//! a directory read that stats entries relative to the directory's fd
//! (no path walk per entry, as `find` does).

use std::ffi::CString;
use std::io;
use std::os::unix::fs::MetadataExt;

/// The directory part of an absolute path ("/" for "/x", "." without a
/// slash).
pub fn parent_dir(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) => b"/",
        Some(i) => &path[..i],
        None => b".",
    }
}

/// What the check text needs from `lstat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: i64,
    pub mtime: i64,
    pub rdev: u64,
}

impl Stat {
    pub fn from_metadata(m: &std::fs::Metadata) -> Stat {
        Stat {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            size: m.size() as i64,
            mtime: m.mtime(),
            rdev: m.rdev(),
        }
    }

    pub(crate) fn from_libc(st: &libc::stat) -> Stat {
        Stat {
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size,
            mtime: st.st_mtime,
            rdev: st.st_rdev,
        }
    }

    fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
    pub fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }
    pub fn is_symlink(&self) -> bool {
        self.kind() == libc::S_IFLNK
    }
    pub fn is_file(&self) -> bool {
        self.kind() == libc::S_IFREG
    }
    pub fn is_char_device(&self) -> bool {
        self.kind() == libc::S_IFCHR
    }
    pub fn is_block_device(&self) -> bool {
        self.kind() == libc::S_IFBLK
    }
    pub fn is_fifo(&self) -> bool {
        self.kind() == libc::S_IFIFO
    }
    pub fn is_socket(&self) -> bool {
        self.kind() == libc::S_IFSOCK
    }
}

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

pub fn lstat(path: &[u8]) -> io::Result<Stat> {
    let p = cstr(path)?;
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::lstat(p.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Stat::from_libc(&st))
}

pub fn readlink(path: &[u8]) -> Option<Vec<u8>> {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    std::fs::read_link(std::ffi::OsStr::from_bytes(path))
        .ok()
        .map(|t| t.into_os_string().into_vec())
}

/// One directory entry: its name, and for the wanted ones the `lstat` data
/// (None if it vanished) and, for symlinks, the target.
pub struct Entry {
    pub name: Vec<u8>,
    pub stat: Option<Stat>,
    pub target: Option<Vec<u8>>,
}

struct DirHandle(*mut libc::DIR);

impl Drop for DirHandle {
    fn drop(&mut self) {
        unsafe { libc::closedir(self.0) };
    }
}

/// Reads a directory (without `.` and `..`) and stats the entries for which
/// `want(name)` is true. The directory is closed before returning, so a
/// deep recursion holds no descriptors.
pub fn read_dir(path: &[u8], mut want: impl FnMut(&[u8]) -> bool) -> io::Result<Vec<Entry>> {
    let p = cstr(path)?;
    let fd = unsafe {
        libc::open(
            p.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let dirp = unsafe { libc::fdopendir(fd) };
    if dirp.is_null() {
        let e = io::Error::last_os_error();
        unsafe { libc::close(fd) };
        return Err(e);
    }
    let dir = DirHandle(dirp);
    let mut out = Vec::new();
    loop {
        unsafe { *libc::__errno_location() = 0 };
        let ent = unsafe { libc::readdir(dir.0) };
        if ent.is_null() {
            let errno = unsafe { *libc::__errno_location() };
            if errno != 0 {
                return Err(io::Error::from_raw_os_error(errno));
            }
            break;
        }
        let cname = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) };
        let name = cname.to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let mut e = Entry {
            name: name.to_vec(),
            stat: None,
            target: None,
        };
        if want(name) {
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            let r =
                unsafe { libc::fstatat(fd, cname.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
            if r == 0 {
                let s = Stat::from_libc(&st);
                if s.is_symlink() {
                    let mut buf = vec![0u8; 4096];
                    let n = unsafe {
                        libc::readlinkat(fd, cname.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
                    };
                    if n >= 0 {
                        buf.truncate(n as usize);
                        e.target = Some(buf);
                    }
                }
                e.stat = Some(s);
            }
        }
        out.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn reads_and_stats_wanted_entries() {
        let d = std::env::temp_dir().join(format!("c2fsu{}", std::process::id()));
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("f"), b"abc").unwrap();
        std::os::unix::fs::symlink("tgt", d.join("l")).unwrap();
        let mut e = read_dir(d.as_os_str().as_bytes(), |n| n != b"sub").unwrap();
        e.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<&[u8]> = e.iter().map(|x| x.name.as_slice()).collect();
        assert_eq!(names, vec![&b"f"[..], b"l", b"sub"]);
        assert_eq!(e[0].stat.unwrap().size, 3);
        assert!(e[0].stat.unwrap().is_file());
        assert!(e[1].stat.unwrap().is_symlink());
        assert_eq!(e[1].target.as_deref(), Some(&b"tgt"[..]));
        assert!(e[2].stat.is_none());
        assert_eq!(lstat(d.join("f").as_os_str().as_bytes()).unwrap().size, 3);
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// Some directory component of `real` after the first `root` bytes is a
/// symlink (the walk and the server never follow symlinked directories).
pub fn under_symlink(real: &[u8], root: usize) -> bool {
    under_symlink_cached(real, root, &mut crate::fasthash::FastMap::default())
}

/// `under_symlink` with remembered directories (path → is a plain
/// directory); the caller forgets them when a symlink may have appeared.
pub fn under_symlink_cached(
    real: &[u8],
    root: usize,
    plain: &mut crate::fasthash::FastMap<Vec<u8>, bool>,
) -> bool {
    // (a prefix root is trusted: `root` ends at the `/` after it)
    let mut i = root + 1;
    while let Some(off) = real
        .get(i..)
        .unwrap_or_default()
        .iter()
        .position(|&b| b == b'/')
    {
        let end = i + off;
        if end > 0 {
            let dir = &real[..end];
            match plain.get(dir) {
                Some(true) => {}
                Some(false) => return true,
                None => match lstat(dir) {
                    Ok(st) if st.is_symlink() => {
                        plain.insert(dir.to_vec(), false);
                        return true;
                    }
                    Ok(_) => {
                        plain.insert(dir.to_vec(), true);
                    }
                    Err(_) => return false,
                },
            }
        }
        i = end + 1;
    }
    false
}

/// Length of the prefix root inside the real path of a `%name%…` logical
/// name (0 for plain paths): components below it are checked for symlinks.
pub fn prefix_root_len(logical: &[u8], real: &[u8]) -> usize {
    if logical.first() != Some(&b'%') {
        return 0;
    }
    match logical[1..].iter().position(|&b| b == b'%') {
        Some(p) => real.len().saturating_sub(logical.len() - (p + 2)),
        None => 0,
    }
}

#[cfg(test)]
mod symlink_tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn finds_symlinked_directories() {
        let d = std::env::temp_dir().join(format!("c2sym{}", std::process::id()));
        std::fs::create_dir_all(d.join("real/sub")).unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("link")).unwrap();
        let base = d.as_os_str().as_bytes().to_vec();
        let p = |s: &str| [base.clone(), s.as_bytes().to_vec()].concat();
        assert!(!under_symlink(&p("/real/sub/f"), 0));
        assert!(under_symlink(&p("/link/sub/f"), 0));
        // the last component itself does not count
        assert!(!under_symlink(&p("/link"), 0));
        // a prefix root may be a symlink; only what is below it counts
        assert!(!under_symlink(&p("/link/sub/f"), p("/link").len()));
        std::os::unix::fs::symlink(d.join("real/sub"), d.join("real/sl")).unwrap();
        assert!(under_symlink(&p("/link/sl/f"), p("/link").len()));
        assert_eq!(
            prefix_root_len(b"%p%/sub/f", &p("/real/sub/f")),
            p("/real").len()
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// An anonymous temporary file (gone when closed) for spooling data.
pub fn anon_tempfile() -> io::Result<std::fs::File> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::FromRawFd;
    let dir = std::env::temp_dir();
    let d = cstr(dir.as_os_str().as_bytes())?;
    let fd = unsafe {
        libc::open(
            d.as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd >= 0 {
        return Ok(unsafe { std::fs::File::from_raw_fd(fd) });
    }
    // file systems without O_TMPFILE: a named file, unlinked at once
    let mut template = dir.as_os_str().as_bytes().to_vec();
    template.extend_from_slice(b"/.csync2-spool.XXXXXX\0");
    let fd = unsafe { libc::mkstemp(template.as_mut_ptr().cast()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    unsafe { libc::unlink(template.as_ptr().cast()) };
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}
