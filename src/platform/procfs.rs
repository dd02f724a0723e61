//! Pure parsers of Linux's `/proc/locks` and `/proc/mounts` text, kept apart from
//! the reading so they are tested on every platform.

#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::path::Path;

/// glibc's `major()`/`minor()` of a Linux `dev_t`.
pub(crate) fn dev_major_minor(dev: u64) -> (u64, u64) {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
    (major, minor)
}

/// The pid holding a lock on the file (`dev`, `ino`) by `/proc/locks` text, e.g.
/// `1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF`. Waiters (`->`) are not
/// holders. On file systems whose lock entries carry another device number than
/// `stat` (overlay), an entry with the inode and the pid written in the lock file
/// also counts.
pub fn lock_holder_in(locks: &str, dev: u64, ino: u64, recorded: Option<u32>) -> Option<u32> {
    let (major, minor) = dev_major_minor(dev);
    let mut inode_only = None;
    for line in locks.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(1) == Some(&"->") {
            continue;
        }
        let (Some(pid), Some(id)) = (f.get(4), f.get(5)) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let mut parts = id.split(':');
        let (Some(ma), Some(mi), Some(i)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if i.parse::<u64>().ok() != Some(ino) {
            continue;
        }
        let dev_matches = u64::from_str_radix(ma, 16).ok() == Some(major)
            && u64::from_str_radix(mi, 16).ok() == Some(minor);
        if dev_matches {
            return Some(pid);
        }
        if recorded == Some(pid) {
            inode_only = Some(pid);
        }
    }
    inode_only
}

/// File system types on which SQLite's locking and WAL are not dependable.
pub fn is_network_fs(fstype: &str) -> bool {
    fstype.starts_with("nfs")
        || fstype.starts_with("smb")
        || matches!(fstype, "cifs" | "ceph" | "glusterfs" | "fuse.sshfs" | "9p")
}

/// `/proc/mounts` octal escapes (`\040` for a space) undone.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b.get(i) == Some(&b'\\') && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')));
        match octal.and_then(|n| u8::try_from(n).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.extend(b.get(i).copied());
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount point and file system type `path` lives on, by `/proc/mounts` text:
/// the longest mount point containing it (the last one listed when stacked).
pub fn mount_of(mounts: &str, path: &Path) -> Option<(String, String)> {
    let mut best: Option<(String, String)> = None;
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(_), Some(point), Some(fstype)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let point = unescape_mount(point);
        if !path.starts_with(&point) {
            continue;
        }
        if best.as_ref().is_none_or(|(p, _)| point.len() >= p.len()) {
            best = Some((point, fstype.to_string()));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_holder_reads_proc_locks() {
        // dev 0xfd01 = major 0xfd, minor 0x01.
        let locks = "1: POSIX  ADVISORY  WRITE 77 fd:01:999 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 5151 fd:01:1234567 0 EOF\n";
        assert_eq!(lock_holder_in(locks, 0xfd01, 1_234_567, None), Some(4242));
        assert_eq!(lock_holder_in(locks, 0xfd01, 7, None), None);
        // Another device: only with the recorded pid.
        assert_eq!(lock_holder_in(locks, 0x801, 1_234_567, None), None);
        assert_eq!(
            lock_holder_in(locks, 0x801, 1_234_567, Some(4242)),
            Some(4242)
        );
        // A waiter is never the holder.
        let waiting = "2: -> FLOCK  ADVISORY  WRITE 5151 fd:01:1234567 0 EOF\n";
        assert_eq!(lock_holder_in(waiting, 0xfd01, 1_234_567, Some(5151)), None);
        assert_eq!(lock_holder_in("garbage\n\n1:\n", 0xfd01, 1, None), None);
    }

    #[test]
    fn dev_numbers_split_like_glibc() {
        assert_eq!(dev_major_minor(0xfd01), (0xfd, 0x01));
        assert_eq!(dev_major_minor(0x0803), (8, 3));
        // A large minor spills into the high bits.
        assert_eq!(dev_major_minor(0x0010_0103), (1, 0x103));
    }

    #[test]
    fn mounts_find_the_longest_containing_point() {
        let mounts = "/dev/sda1 / ext4 rw 0 0\n\
                      server:/export /srv/lrci nfs4 rw 0 0\n\
                      //nas/share /mnt/my\\040share cifs rw 0 0\n\
                      tmpfs /srv/lrci-other tmpfs rw 0 0\n";
        let m = |p: &str| mount_of(mounts, Path::new(p)).unwrap();
        assert_eq!(
            m("/srv/lrci/ledger.sqlite3"),
            ("/srv/lrci".into(), "nfs4".into())
        );
        assert_eq!(m("/srv/lrci-x/l"), ("/".into(), "ext4".into()));
        assert_eq!(
            m("/mnt/my share/l"),
            ("/mnt/my share".into(), "cifs".into())
        );
        assert!(is_network_fs("nfs4") && is_network_fs("cifs") && is_network_fs("smb3"));
        assert!(!is_network_fs("ext4") && !is_network_fs("tmpfs") && !is_network_fs("overlay"));
        assert_eq!(unescape_mount("a\\040b\\134c\\"), "a b\\c\\");
    }
}
