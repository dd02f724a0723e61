//! The unix side: modes through `std::os::unix`, `/proc` on Linux, SIGINT/SIGTERM.

use super::{FileSystem, LockHolder};
use std::fs::{DirBuilder, File, Metadata, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use tokio::signal::unix::{signal, Signal, SignalKind};

pub fn private_file(opts: &mut OpenOptions) -> &mut OpenOptions {
    opts.mode(super::PRIVATE_FILE)
}

pub fn private_dir(b: &mut DirBuilder) -> &mut DirBuilder {
    b.mode(super::PRIVATE_DIR)
}

pub fn mode(meta: &Metadata) -> Option<u32> {
    Some(meta.permissions().mode() & 0o777)
}

pub fn set_file_mode(file: &File, mode: u32) -> io::Result<()> {
    file.set_permissions(Permissions::from_mode(mode))
}

pub fn set_path_mode(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(path, Permissions::from_mode(mode))
}

pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(target_os = "linux")]
pub fn lock_holder(lock: &Path, meta: &Metadata, recorded: Option<u32>) -> LockHolder {
    use std::os::unix::fs::MetadataExt;
    let _ = lock;
    match std::fs::read_to_string("/proc/locks") {
        Ok(locks) => match super::lock_holder_in(&locks, meta.dev(), meta.ino(), recorded) {
            Some(pid) => LockHolder::Held(pid),
            None => LockHolder::Free,
        },
        Err(e) => LockHolder::Unknown(format!("cannot read /proc/locks: {e}")),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn lock_holder(_lock: &Path, _meta: &Metadata, _recorded: Option<u32>) -> LockHolder {
    LockHolder::Unknown("this platform does not tell".into())
}

#[cfg(target_os = "linux")]
pub fn file_system(path: &Path) -> FileSystem {
    match std::fs::read_to_string("/proc/mounts") {
        Ok(mounts) => match super::mount_of(&mounts, path) {
            Some((point, fstype)) => FileSystem::Mounted {
                point: point.into(),
                fstype,
            },
            None => FileSystem::Unknown("no mount point found in /proc/mounts".into()),
        },
        Err(e) => FileSystem::Unknown(format!("cannot read /proc/mounts: {e}")),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn file_system(_path: &Path) -> FileSystem {
    FileSystem::Unknown("this platform does not tell".into())
}

pub struct Shutdown {
    int: Signal,
    term: Signal,
}

impl Shutdown {
    pub fn listen() -> io::Result<Shutdown> {
        let with_name = |kind, name: &str| {
            signal(kind)
                .map_err(|e| io::Error::new(e.kind(), format!("could not listen for {name}: {e}")))
        };
        Ok(Shutdown {
            int: with_name(SignalKind::interrupt(), "SIGINT")?,
            term: with_name(SignalKind::terminate(), "SIGTERM")?,
        })
    }

    pub async fn recv(&mut self) -> io::Result<&'static str> {
        Ok(tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        })
    }
}
