//! What differs between operating systems, in one place, so the Windows build has
//! one module to grow: file modes (private files and directories), the holder of
//! the run lock, the file system a path lives on, and the shutdown signals.
//!
//! `unix` and `other` offer the same functions; on platforms without a notion
//! (modes on Windows, `/proc` outside Linux) the answer says "not known" rather
//! than pretending. The text parsers for `/proc/locks` and `/proc/mounts` are pure
//! and tested on every platform (`procfs`).
//!
//! Must not: know about the ledger, settings, HTTP or the command line; it hands
//! back plain values.

mod procfs;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as imp;

#[cfg(not(unix))]
mod other;
#[cfg(not(unix))]
use other as imp;

use std::fs::{DirBuilder, File, Metadata, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

pub use procfs::{is_network_fs, lock_holder_in, mount_of};

/// Mode for files only this account may read: ledger, lock, logs, backups.
pub const PRIVATE_FILE: u32 = 0o600;
/// Mode for directories only this account may enter: the ledger's directory.
pub const PRIVATE_DIR: u32 = 0o700;
/// Mode for files others may read: the metrics file a node exporter scrapes.
pub const SHARED_FILE: u32 = 0o644;

/// Files created through `opts` get [`PRIVATE_FILE`] (no effect where files have
/// no mode).
pub fn private_file(opts: &mut OpenOptions) -> &mut OpenOptions {
    imp::private_file(opts)
}

/// Directories created through `b` get [`PRIVATE_DIR`].
pub fn private_dir(b: &mut DirBuilder) -> &mut DirBuilder {
    imp::private_dir(b)
}

/// The permission bits (`& 0o777`), or `None` where files have no mode.
pub fn mode(meta: &Metadata) -> Option<u32> {
    imp::mode(meta)
}

/// Sets an open file's permission bits; nothing where files have no mode.
pub fn set_file_mode(file: &File, mode: u32) -> io::Result<()> {
    imp::set_file_mode(file, mode)
}

/// Sets a path's permission bits; nothing where files have no mode.
pub fn set_path_mode(path: &Path, mode: u32) -> io::Result<()> {
    imp::set_path_mode(path, mode)
}

/// Makes a rename inside `dir` durable (fsync of the directory) where the
/// platform needs and allows it. Best effort.
pub fn sync_dir(dir: &Path) {
    imp::sync_dir(dir)
}

/// Who holds the run lock, as far as the platform can tell without taking it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockHolder {
    /// A process holds it.
    Held(u32),
    /// Nobody holds it.
    Free,
    /// Not known on this platform, or the source could not be read (why).
    Unknown(String),
}

/// Who holds the lock on `lock` (a file that exists). `recorded` is the pid the
/// holder wrote into it, used where the kernel reports another device number.
pub fn lock_holder(lock: &Path, meta: &Metadata, recorded: Option<u32>) -> LockHolder {
    imp::lock_holder(lock, meta, recorded)
}

/// The file system a path lives on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSystem {
    /// Its mount point and type (`ext4`, `nfs4`, ...).
    Mounted {
        /// The mount point.
        point: PathBuf,
        /// The file system type as the kernel names it.
        fstype: String,
    },
    /// Not known on this platform, or the mount table could not be read (why).
    Unknown(String),
}

/// The file system `path` (absolute, symlinks resolved) lives on.
pub fn file_system(path: &Path) -> FileSystem {
    imp::file_system(path)
}

/// The signals that ask a run to stop: SIGINT and SIGTERM on unix, Ctrl-C elsewhere.
/// Listening starts when this is made, so a signal that arrives before
/// [`Shutdown::recv`] is awaited is not missed.
pub struct Shutdown(imp::Shutdown);

impl Shutdown {
    /// Starts listening.
    pub fn listen() -> io::Result<Shutdown> {
        imp::Shutdown::listen().map(Shutdown)
    }

    /// Waits for the first signal and names it (`SIGINT`, `SIGTERM`, `Ctrl-C`).
    pub async fn recv(&mut self) -> io::Result<&'static str> {
        self.0.recv().await
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn private_files_and_directories_get_their_modes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        let mut o = OpenOptions::new();
        o.write(true).create(true);
        let file = private_file(&mut o).open(&f).unwrap();
        assert_eq!(mode(&file.metadata().unwrap()), Some(PRIVATE_FILE));
        set_file_mode(&file, SHARED_FILE).unwrap();
        assert_eq!(mode(&std::fs::metadata(&f).unwrap()), Some(SHARED_FILE));
        set_path_mode(&f, PRIVATE_FILE).unwrap();
        assert_eq!(mode(&std::fs::metadata(&f).unwrap()), Some(PRIVATE_FILE));
        let d = dir.path().join("a/b");
        private_dir(DirBuilder::new().recursive(true))
            .create(&d)
            .unwrap();
        assert_eq!(mode(&std::fs::metadata(&d).unwrap()), Some(PRIVATE_DIR));
        sync_dir(dir.path());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_held_lock_names_this_process_and_a_released_one_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.lock");
        let f = File::create(&p).unwrap();
        let meta = f.metadata().unwrap();
        f.try_lock().unwrap();
        assert_eq!(
            lock_holder(&p, &meta, None),
            LockHolder::Held(std::process::id())
        );
        f.unlock().unwrap();
        assert_eq!(lock_holder(&p, &meta, None), LockHolder::Free);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_file_system_of_the_root_is_found() {
        match file_system(Path::new("/")) {
            FileSystem::Mounted { point, fstype } => {
                assert_eq!(point, Path::new("/"));
                assert!(!fstype.is_empty());
            }
            FileSystem::Unknown(why) => panic!("unknown: {why}"),
        }
    }
}
