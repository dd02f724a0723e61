//! The side for platforms without unix modes or `/proc` (Windows): files take the
//! access rules of their directory (the installer sets ACLs, see
//! `contrib/install-task.ps1`); the lock holder and the file system are not known;
//! on Windows Ctrl-C, Ctrl-Break and the console's close and shutdown events ask a
//! run to stop (Ctrl-C alone elsewhere).

use super::{FileSystem, LockHolder};
use std::fs::{DirBuilder, File, Metadata, OpenOptions};
use std::io;
use std::path::Path;

pub fn private_file(opts: &mut OpenOptions) -> &mut OpenOptions {
    opts
}

pub fn private_dir(b: &mut DirBuilder) -> &mut DirBuilder {
    b
}

pub fn mode(_meta: &Metadata) -> Option<u32> {
    None
}

pub fn set_file_mode(_file: &File, _mode: u32) -> io::Result<()> {
    Ok(())
}

pub fn set_path_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

pub fn sync_dir(_dir: &Path) {}

pub fn lock_holder(_lock: &Path, _meta: &Metadata, _recorded: Option<u32>) -> LockHolder {
    LockHolder::Unknown("this platform does not tell".into())
}

pub fn file_system(_path: &Path) -> FileSystem {
    FileSystem::Unknown("this platform does not tell".into())
}

#[cfg(windows)]
pub struct Shutdown {
    c: tokio::signal::windows::CtrlC,
    brk: tokio::signal::windows::CtrlBreak,
    close: tokio::signal::windows::CtrlClose,
    shutdown: tokio::signal::windows::CtrlShutdown,
}

#[cfg(windows)]
impl Shutdown {
    pub fn listen() -> io::Result<Shutdown> {
        use tokio::signal::windows;
        Ok(Shutdown {
            c: windows::ctrl_c()?,
            brk: windows::ctrl_break()?,
            close: windows::ctrl_close()?,
            shutdown: windows::ctrl_shutdown()?,
        })
    }

    pub async fn recv(&mut self) -> io::Result<&'static str> {
        Ok(tokio::select! {
            _ = self.c.recv() => "Ctrl-C",
            _ = self.brk.recv() => "Ctrl-Break",
            _ = self.close.recv() => "console close",
            _ = self.shutdown.recv() => "system shutdown",
        })
    }
}

#[cfg(not(windows))]
pub struct Shutdown;

#[cfg(not(windows))]
impl Shutdown {
    pub fn listen() -> io::Result<Shutdown> {
        Ok(Shutdown)
    }

    pub async fn recv(&mut self) -> io::Result<&'static str> {
        tokio::signal::ctrl_c().await.map(|()| "Ctrl-C")
    }
}
