//! Paths a peer names, resolved beneath their root without following
//! symlinks: the server runs as root, so `tree/link/x` with `link -> /etc`
//! must not reach `/etc/x`, and nothing it does may follow the last
//! component either. A [`Place`] is an open parent directory plus a name;
//! every operation is an `*at` call relative to that directory, so a
//! directory swapped for a symlink after the lookup is not followed either.

use crate::fsutil::Stat;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Whether a logical name from a peer is acceptable: `/a/b` or `%p%/a/b`
/// (or `%p%` alone), no NUL, no empty, `.` or `..` component, no trailing
/// slash.
pub fn valid_name(logical: &[u8]) -> bool {
    if logical.contains(&0) {
        return false;
    }
    let rest = if logical.first() == Some(&b'%') {
        match logical[1..].iter().position(|&b| b == b'%') {
            Some(p) if p > 0 => &logical[p + 2..],
            _ => return false,
        }
    } else {
        logical
    };
    if rest.is_empty() {
        // only a prefix root itself
        return logical.first() == Some(&b'%');
    }
    if rest[0] != b'/' {
        return false;
    }
    rest[1..]
        .split(|&b| b == b'/')
        .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn open_fd(r: libc::c_int) -> io::Result<OwnedFd> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: a descriptor the kernel just returned and nobody else owns
        Ok(unsafe { OwnedFd::from_raw_fd(r) })
    }
}

/// (device, inode) of an open file.
fn dev_ino(fd: RawFd) -> io::Result<(u64, u64)> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok((st.st_dev, st.st_ino))
}

/// A directory given by the configuration (symlinks allowed: the admin
/// chose the path).
fn open_trusted(path: &[u8]) -> io::Result<OwnedFd> {
    let p = cstr(if path.is_empty() { b"/" } else { path })?;
    open_fd(unsafe {
        libc::open(
            p.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })
}

/// `rel` below `base`, no component a symlink (ELOOP if one is).
fn open_beneath(base: &OwnedFd, rel: &[u8]) -> io::Result<OwnedFd> {
    let p = cstr(rel)?;
    // SAFETY: open_how is plain data; zero is its documented default
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            base.as_raw_fd(),
            p.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if r >= 0 {
        return open_fd(r as libc::c_int);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // kernels before 5.6, or a seccomp filter that does not know it
        Some(libc::ENOSYS) | Some(libc::EPERM) => walk_beneath(base, rel),
        // EAGAIN: a rename raced the lookup; the walk does not care
        Some(libc::EAGAIN) => walk_beneath(base, rel),
        _ => Err(e),
    }
}

/// The same, one component at a time with `O_NOFOLLOW`.
fn walk_beneath(base: &OwnedFd, rel: &[u8]) -> io::Result<OwnedFd> {
    let mut fd = open_fd(unsafe {
        libc::openat(
            base.as_raw_fd(),
            c".".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    for comp in rel.split(|&b| b == b'/') {
        if comp.is_empty() || comp == b"." || comp == b".." {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let c = cstr(comp)?;
        let next = open_fd(unsafe {
            libc::openat(
                fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        });
        fd = match next {
            Ok(n) => n,
            // a symlink fails as "not a directory" here: say what it is
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                let r = unsafe {
                    libc::fstatat(
                        fd.as_raw_fd(),
                        c.as_ptr(),
                        &mut st,
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                };
                if r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
    }
    Ok(fd)
}

/// A regular file of a synced tree, opened for reading the way the server
/// resolves names: no symlinked directory below its root, no symlink,
/// FIFO or device at the end (a local user swapping one in must not make
/// root send another file, or hang).
pub fn open_file(logical: &[u8], real: &[u8]) -> io::Result<std::fs::File> {
    let f = Place::resolve(real, crate::fsutil::prefix_root_len(logical, real))?.open_read()?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::from_raw_os_error(libc::EISDIR));
    }
    Ok(f)
}

/// An entry to read or change: its directory, opened beneath the root, and
/// its name there.
pub struct Place {
    dir: OwnedFd,
    name: CString,
}

/// Whether an error says a symlink was in the way.
pub fn is_symlink_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

impl Place {
    /// `real` (absolute) with its first `root` bytes trusted (a prefix's
    /// directory; 0: only `/`). Every directory after that must be a real
    /// directory: a symlink gives ELOOP, a missing one ENOENT.
    pub fn resolve(real: &[u8], root: usize) -> io::Result<Place> {
        let slash = real
            .iter()
            .rposition(|&b| b == b'/')
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        let name = &real[slash + 1..];
        if name.is_empty() || name == b"." || name == b".." {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let dir = if slash <= root {
            open_trusted(&real[..slash])?
        } else {
            let base = open_trusted(&real[..root])?;
            open_beneath(&base, &real[root + 1..slash])?
        };
        Ok(Place {
            dir,
            name: cstr(name)?,
        })
    }

    /// The same place on a second descriptor.
    pub fn try_clone(&self) -> io::Result<Place> {
        Ok(Place {
            dir: self.dir.try_clone()?,
            name: self.name.clone(),
        })
    }

    fn d(&self) -> RawFd {
        self.dir.as_raw_fd()
    }

    pub fn lstat(&self) -> io::Result<Stat> {
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        check(unsafe {
            libc::fstatat(
                self.d(),
                self.name.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })?;
        Ok(Stat::from_libc(&st))
    }

    pub fn readlink(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 4096];
        let n = unsafe {
            libc::readlinkat(
                self.d(),
                self.name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return None;
        }
        buf.truncate(n as usize);
        Some(buf)
    }

    /// Opens a regular file or a directory for reading, never following a
    /// symlink and never opening a device or FIFO (ELOOP / EINVAL).
    pub fn open_read(&self) -> io::Result<std::fs::File> {
        let st = self.lstat()?;
        if st.is_symlink() {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        if !st.is_file() && !st.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let fd = open_fd(unsafe {
            libc::openat(
                self.d(),
                self.name.as_ptr(),
                libc::O_RDONLY
                    | libc::O_NOFOLLOW
                    | libc::O_NONBLOCK
                    | libc::O_NOCTTY
                    | libc::O_CLOEXEC,
            )
        })?;
        let f = std::fs::File::from(fd);
        // replaced between the lstat and the open
        let ft = f.metadata()?.file_type();
        if !ft.is_file() && !ft.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(f)
    }

    pub fn unlink(&self) -> io::Result<()> {
        check(unsafe { libc::unlinkat(self.d(), self.name.as_ptr(), 0) })
    }

    pub fn rmdir(&self) -> io::Result<()> {
        check(unsafe { libc::unlinkat(self.d(), self.name.as_ptr(), libc::AT_REMOVEDIR) })
    }

    /// Removes whatever is there (a directory only when empty).
    pub fn remove(&self) -> io::Result<()> {
        if self.lstat()?.is_dir() {
            self.rmdir()
        } else {
            self.unlink()
        }
    }

    pub fn mkdir(&self, mode: libc::mode_t) -> io::Result<()> {
        check(unsafe { libc::mkdirat(self.d(), self.name.as_ptr(), mode) })
    }

    pub fn symlink(&self, target: &[u8]) -> io::Result<()> {
        let t = cstr(target)?;
        check(unsafe { libc::symlinkat(t.as_ptr(), self.d(), self.name.as_ptr()) })
    }

    pub fn mknod(&self, mode: libc::mode_t, dev: libc::dev_t) -> io::Result<()> {
        check(unsafe { libc::mknodat(self.d(), self.name.as_ptr(), mode, dev) })
    }

    /// Owner of the entry itself (a symlink's own owner).
    pub fn chown(&self, uid: u32, gid: u32) -> io::Result<()> {
        check(unsafe {
            libc::fchownat(
                self.d(),
                self.name.as_ptr(),
                uid,
                gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    }

    /// Mode of the entry; a symlink has none of its own and is left alone
    /// (`chmod` would change its target).
    pub fn chmod(&self, mode: libc::mode_t) -> io::Result<()> {
        let r = unsafe {
            libc::fchmodat(
                self.d(),
                self.name.as_ptr(),
                mode,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) if self.lstat()?.is_symlink() => Ok(()),
            // a C library without the no-follow variant (or no /proc for
            // it): pin the entry with O_PATH, then chmod what it is
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => self.chmod_pinned(mode),
            _ => Err(e),
        }
    }

    fn chmod_pinned(&self, mode: libc::mode_t) -> io::Result<()> {
        let fd = open_fd(unsafe {
            libc::openat(
                self.d(),
                self.name.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return Ok(());
        }
        let proc = cstr(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes())?;
        match check(unsafe { libc::chmod(proc.as_ptr(), mode) }) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                // no /proc: the entry is not a symlink as of just now
                check(unsafe { libc::fchmodat(self.d(), self.name.as_ptr(), mode, 0) })
            }
            r => r,
        }
    }

    /// atime and mtime of the entry itself.
    pub fn set_mtime(&self, t: i64) -> io::Result<()> {
        let ts = libc::timespec {
            tv_sec: t as libc::time_t,
            tv_nsec: 0,
        };
        check(unsafe {
            libc::utimensat(
                self.d(),
                self.name.as_ptr(),
                [ts, ts].as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    }

    /// The directory, opened for reading (to sync it or its file system).
    pub fn open_dir(&self) -> io::Result<std::fs::File> {
        let fd = open_fd(unsafe {
            libc::openat(
                self.d(),
                c".".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        Ok(std::fs::File::from(fd))
    }

    /// Makes the directory's entries durable (after a rename into it).
    pub fn sync_dir(&self) -> io::Result<()> {
        self.open_dir()?.sync_all()
    }

    /// (device, inode) of the directory.
    pub fn dir_id(&self) -> io::Result<(u64, u64)> {
        dev_ino(self.d())
    }

    /// Removes temporary files a killed server left in the directory.
    pub fn remove_stale_temps(&self) {
        let Ok(f) = self.open_dir() else { return };
        use std::os::fd::IntoRawFd;
        let dirp = unsafe { libc::fdopendir(f.into_raw_fd()) };
        if dirp.is_null() {
            return;
        }
        loop {
            let ent = unsafe { libc::readdir(dirp) };
            if ent.is_null() {
                break;
            }
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
            if is_temp_name(name.to_bytes()) {
                unsafe { libc::unlinkat(self.d(), name.as_ptr(), 0) };
            }
        }
        unsafe { libc::closedir(dirp) };
    }

    /// A new file that becomes this entry on [`Temp::commit`]; until then
    /// it has no name (O_TMPFILE) where the file system allows, so a crash
    /// leaves nothing behind. `tempdir`: the configured place for temporary
    /// files, used when it is on the same file system.
    pub fn create_temp(&self, tempdir: Option<&[u8]>) -> io::Result<Temp> {
        let mut dir = None;
        if let Some(t) = tempdir
            && let Ok(fd) = open_trusted(t)
            && dev_ino(fd.as_raw_fd())?.0 == self.dir_id()?.0
        {
            dir = Some(fd);
        }
        let dir = match dir {
            Some(d) => d,
            None => open_fd(unsafe {
                libc::openat(
                    self.d(),
                    c".".as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            })?,
        };
        let r = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                c".".as_ptr(),
                libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if r >= 0 {
            return Ok(Temp {
                file: std::fs::File::from(open_fd(r)?),
                dir,
                name: None,
            });
        }
        // file systems without O_TMPFILE: a named file, removed on failure
        let (fd, name) = create_named(&dir, self.name.to_bytes())?;
        Ok(Temp {
            file: std::fs::File::from(fd),
            dir,
            name: Some(name),
        })
    }
}

/// A random-looking suffix: pid, time and a counter (uniqueness comes from
/// O_EXCL; this only makes collisions rare).
fn suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let x = (std::process::id() as u64) << 32
        ^ (t as u64).wrapping_mul(0x9E37_79B9)
        ^ N.fetch_add(1, Ordering::Relaxed) as u64;
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..6)
        .map(|i| ABC[((x >> (i * 6)) % ABC.len() as u64) as usize] as char)
        .collect()
}

/// What every temporary name starts with. A server killed between linking
/// a finished file under such a name and renaming it over the target leaves
/// one behind: the check never records it (so it is never synced) and the
/// next session writing into that directory removes it.
pub const TEMP_PREFIX: &[u8] = b".csync2-tmp.";

pub fn is_temp_name(name: &[u8]) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// `.csync2-tmp.<base>.XXXXXX`.
fn temp_name(base: &[u8]) -> Vec<u8> {
    // within NAME_MAX
    let base = &base[..base.len().min(230)];
    let mut n = TEMP_PREFIX.to_vec();
    n.extend_from_slice(base);
    n.push(b'.');
    n.extend_from_slice(suffix().as_bytes());
    n
}

/// A temporary file in `dir`, created exclusively, never through a symlink.
fn create_named(dir: &OwnedFd, base: &[u8]) -> io::Result<(OwnedFd, CString)> {
    for _ in 0..100 {
        let name = cstr(&temp_name(base))?;
        let r = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if r >= 0 {
            return Ok((open_fd(r)?, name));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e);
        }
    }
    Err(io::Error::from_raw_os_error(libc::EEXIST))
}

/// A file being written; dropped without [`Temp::commit`], it vanishes.
pub struct Temp {
    pub file: std::fs::File,
    dir: OwnedFd,
    name: Option<CString>,
}

impl Temp {
    /// Puts the file in place of `to`, atomically: readers see the old or
    /// the new version, never a part.
    pub fn commit(mut self, to: &Place) -> io::Result<()> {
        if self.name.is_none() {
            // a new entry: link the unnamed file straight to its name
            match self.link(to.d(), to.name.as_ptr()) {
                Ok(()) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(e),
            }
            // an existing one: a name next to the file, then rename over
            let name = self.link_named(to.name.to_bytes())?;
            self.name = Some(name);
        }
        let name = self.name.as_ref().expect("named");
        let r = unsafe {
            libc::renameat(
                self.dir.as_raw_fd(),
                name.as_ptr(),
                to.d(),
                to.name.as_ptr(),
            )
        };
        check(r)?;
        // in place: nothing to clean up on drop
        self.name = None;
        Ok(())
    }

    /// Gives the unnamed file a name: `linkat` by descriptor (needs
    /// CAP_DAC_READ_SEARCH), else through /proc.
    fn link(&self, dir: RawFd, name: *const libc::c_char) -> io::Result<()> {
        let fd = self.file.as_raw_fd();
        let r = unsafe { libc::linkat(fd, c"".as_ptr(), dir, name, libc::AT_EMPTY_PATH) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EEXIST) {
            return Err(e);
        }
        let proc = cstr(format!("/proc/self/fd/{fd}").as_bytes())?;
        check(unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                proc.as_ptr(),
                dir,
                name,
                libc::AT_SYMLINK_FOLLOW,
            )
        })
    }

    fn link_named(&self, base: &[u8]) -> io::Result<CString> {
        for _ in 0..100 {
            let name = cstr(&temp_name(base))?;
            match self.link(self.dir.as_raw_fd(), name.as_ptr()) {
                Ok(()) => return Ok(name),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::from_raw_os_error(libc::EEXIST))
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if let Some(n) = &self.name {
            unsafe { libc::unlinkat(self.dir.as_raw_fd(), n.as_ptr(), 0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn names() {
        for ok in [&b"/a"[..], b"/a/b c", b"%p%", b"%p%/x", b"/a/.b/..c"] {
            assert!(valid_name(ok), "{}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b""[..],
            b"/",
            b"a/b",
            b"/a/../b",
            b"/a/..",
            b"/./a",
            b"/a//b",
            b"/a/",
            b"/a\0b",
            b"%p%/../x",
            b"%p%x",
            b"%%/x",
            b"%p",
        ] {
            assert!(!valid_name(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    fn area(tag: &str) -> (std::path::PathBuf, Vec<u8>) {
        let d = std::env::temp_dir().join(format!("c2bn-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("tree/d")).unwrap();
        std::fs::create_dir_all(d.join("outside")).unwrap();
        std::fs::write(d.join("outside/secret"), b"secret").unwrap();
        std::os::unix::fs::symlink("../outside", d.join("tree/link")).unwrap();
        std::os::unix::fs::symlink("../outside/secret", d.join("tree/flink")).unwrap();
        let b = d.as_os_str().as_bytes().to_vec();
        (d, b)
    }

    #[test]
    fn refuses_symlinked_directories() {
        let (d, b) = area("dirs");
        let p = |s: &str| [b.clone(), s.as_bytes().to_vec()].concat();
        let e = Place::resolve(&p("/tree/link/secret"), 0).err().unwrap();
        assert!(is_symlink_error(&e), "{e}");
        // the trusted part may be a symlink
        let root = p("/tree/link").len();
        let pl = Place::resolve(&p("/tree/link/secret"), root).unwrap();
        assert!(pl.lstat().unwrap().is_file());
        // the component-by-component walk agrees
        let base = open_trusted(&b).unwrap();
        let e = walk_beneath(&base, b"tree/link").err().unwrap();
        assert!(is_symlink_error(&e), "{e}");
        assert!(walk_beneath(&base, b"tree/d").is_ok());
        let e = Place::resolve(&p("/tree/nope/x"), 0).err().unwrap();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn never_follows_the_last_component() {
        let (d, b) = area("last");
        let p = |s: &str| [b.clone(), s.as_bytes().to_vec()].concat();
        let pl = Place::resolve(&p("/tree/flink"), 0).unwrap();
        assert!(pl.lstat().unwrap().is_symlink());
        assert!(is_symlink_error(&pl.open_read().err().unwrap()));
        pl.chmod(0o777).unwrap();
        pl.chmod_pinned(0o777).unwrap();
        pl.set_mtime(1000).unwrap();
        let f = Place::resolve(&p("/tree/d"), 0).unwrap();
        f.chmod_pinned(0o711).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(d.join("tree/d")).unwrap().permissions();
        assert_eq!(m.mode() & 0o777, 0o711);
        let m = std::fs::metadata(d.join("outside/secret")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_ne!(m.mode() & 0o777, 0o777);
        assert_ne!(m.mtime(), 1000);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn temp_files_leave_nothing_behind() {
        let (d, b) = area("temp");
        let p = |s: &str| [b.clone(), s.as_bytes().to_vec()].concat();
        let count = || std::fs::read_dir(d.join("tree/d")).unwrap().count();
        // dropped: gone
        let pl = Place::resolve(&p("/tree/d/f"), 0).unwrap();
        let mut t = pl.create_temp(None).unwrap();
        t.file.write_all(b"x").unwrap();
        drop(t);
        assert_eq!(count(), 0);
        // new, then replaced
        for v in ["one", "two"] {
            let mut t = pl.create_temp(None).unwrap();
            t.file.write_all(v.as_bytes()).unwrap();
            t.commit(&pl).unwrap();
            assert_eq!(std::fs::read(d.join("tree/d/f")).unwrap(), v.as_bytes());
            assert_eq!(count(), 1);
        }
        // the named fallback
        let dir = open_trusted(&p("/tree/d")).unwrap();
        let (fd, name) = create_named(&dir, b"f").unwrap();
        let mut t = Temp {
            file: std::fs::File::from(fd),
            dir,
            name: Some(name),
        };
        t.file.write_all(b"three").unwrap();
        assert_eq!(count(), 2);
        t.commit(&pl).unwrap();
        assert_eq!(std::fs::read(d.join("tree/d/f")).unwrap(), b"three");
        assert_eq!(count(), 1);
        // a leftover (a kill between link and rename) is recognised and removed
        std::fs::write(d.join("tree/d/.csync2-tmp.f.AbC123"), b"x").unwrap();
        assert!(is_temp_name(b".csync2-tmp.f.AbC123") && !is_temp_name(b".f.AbC123"));
        pl.remove_stale_temps();
        assert_eq!(count(), 1);
        // a symlink in place is replaced, its target untouched
        let pl = Place::resolve(&p("/tree/flink"), 0).unwrap();
        let mut t = pl.create_temp(None).unwrap();
        t.file.write_all(b"new").unwrap();
        t.commit(&pl).unwrap();
        assert_eq!(std::fs::read(d.join("outside/secret")).unwrap(), b"secret");
        assert_eq!(std::fs::read(d.join("tree/flink")).unwrap(), b"new");
        let _ = std::fs::remove_dir_all(&d);
    }
}
