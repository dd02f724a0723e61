//! [`RunLock`]: the single-writer lock beside the ledger.

use super::{create_private_dir, resolve_ledger_path, Error, Result};
use crate::platform;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The pid of the run holding the lock at `path`, for the error message. The
/// holder writes its pid just after it takes the lock, so for a moment the file can
/// be empty or still name the previous holder: read again for up to 250 ms until
/// it names a live process (checked through /proc on Linux).
fn read_holder(path: &Path) -> Option<u32> {
    let mut last = None;
    for _ in 0..25 {
        last = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        if let Some(pid) = last {
            let alive = !cfg!(target_os = "linux") || Path::new(&format!("/proc/{pid}")).exists();
            if alive {
                return Some(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    last
}

/// The single-writer lock held by `sync`, `backfill` and `replay` for their whole run.
/// Dropped (or the process killed), the kernel releases it.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// The lock file used for a ledger: `<ledger>.lock` next to the ledger's real
    /// path, with symlinks resolved (see [`resolve_ledger_path`]), so that every
    /// name of one ledger (a symlink to it, a symlinked directory, a relative path
    /// from another directory) shares one lock file.
    pub fn path_for(ledger: &Path) -> PathBuf {
        let mut s = resolve_ledger_path(ledger).into_os_string();
        s.push(".lock");
        PathBuf::from(s)
    }

    /// Takes the lock at once or fails with [`Error::Locked`] naming the holder.
    /// Creates the ledger's directory (0700) when it is missing.
    pub fn acquire(ledger: &Path) -> Result<RunLock> {
        // The directory first, so the path resolves the same way in every run.
        if let Some(dir) = ledger.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                create_private_dir(dir).map_err(|source| Error::CreateDir {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
        }
        let path = Self::path_for(ledger);
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        let mut file = platform::private_file(&mut opts)
            .open(&path)
            .map_err(|source| Error::Lock {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = read_holder(&path);
                return Err(Error::Locked { path, holder });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(Error::Lock { path, source });
            }
        }
        // Best effort: the pid helps a person find the holder; the lock itself is
        // the kernel's, not the file's content.
        let _ = file.set_len(0);
        let _ = writeln!(file, "{}", std::process::id());
        let _ = file.flush();
        Ok(RunLock { _file: file, path })
    }

    /// Where the lock lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
