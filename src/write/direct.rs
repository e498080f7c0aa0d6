//! A CSV row file written past the page cache (`O_DIRECT`, Linux).
//!
//! An import writes gigabytes of rows it does not read back. Through the
//! page cache each byte is copied into a page the kernel first has to find
//! (evicting others; on a VM, perhaps a page the host must back again):
//! at 10M x 10M that copy cost 0.3-4.8 s of system time per run on our
//! 2-core VM (`perf`: `copy_folio_from_iter_atomic`), the most variable
//! part of the import.
//! Written direct, whole 4 KiB blocks go from one reused, aligned buffer
//! to the disk. The tail of the file (less than a block) is written with
//! `O_DIRECT` turned off. Where `O_DIRECT` is refused (tmpfs, other
//! systems) the file is written as usual.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// The unit of a direct write: its size and alignment.
const BLOCK: usize = 4096;

#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Block([u8; BLOCK]);

/// A file written in whole blocks from an aligned buffer, or as usual.
pub(super) struct DirectFile {
    file: File,
    direct: bool,
    staging: Vec<Block>,
}

impl DirectFile {
    /// Creates (truncates) `path`, direct where the file system allows it.
    pub(super) fn create(path: &Path) -> io::Result<DirectFile> {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::OpenOptionsExt;
            let direct = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_DIRECT)
                .open(path);
            if let Ok(file) = direct {
                return Ok(DirectFile {
                    file,
                    direct: true,
                    staging: Vec::new(),
                });
            }
        }
        Ok(DirectFile {
            file: File::create(path)?,
            direct: false,
            staging: Vec::new(),
        })
    }

    /// Writes the whole blocks at the start of `buf` and removes them from
    /// it (all of it when not direct).
    pub(super) fn write_blocks(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        if !self.direct {
            self.file.write_all(buf)?;
            buf.clear();
            return Ok(());
        }
        let whole = buf.len() / BLOCK * BLOCK;
        if whole == 0 {
            return Ok(());
        }
        let blocks = whole / BLOCK;
        if self.staging.len() < blocks {
            self.staging.resize(blocks, Block([0; BLOCK]));
        }
        for (block, bytes) in self.staging.iter_mut().zip(buf[..whole].chunks_exact(BLOCK)) {
            block.0.copy_from_slice(bytes);
        }
        // SAFETY: `Block` is `repr(C)` bytes without padding, so the first
        // `blocks` blocks are `whole` initialized bytes, aligned to BLOCK.
        let bytes = unsafe { std::slice::from_raw_parts(self.staging.as_ptr().cast::<u8>(), whole) };
        let mut done = 0;
        while done < whole {
            match self.file.write(&bytes[done..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A device whose blocks are larger than BLOCK, or a short
                // write that left the rest unaligned: go on as usual.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.stop_direct()?;
                    self.file.write_all(&bytes[done..])?;
                    done = whole;
                }
                Err(e) => return Err(e),
            }
        }
        buf.drain(..whole);
        Ok(())
    }

    /// Turns `O_DIRECT` off: the rest is written through the page cache.
    fn stop_direct(&mut self) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let fd = self.file.as_raw_fd();
            // SAFETY: fcntl on a file descriptor this value owns, with
            // integer arguments only.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            // SAFETY: as above.
            if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        self.direct = false;
        Ok(())
    }

    /// Writes what is left of `buf` (the file's tail) and closes the file.
    pub(super) fn finish(mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        self.write_blocks(buf)?;
        if buf.is_empty() {
            return Ok(());
        }
        if self.direct {
            self.stop_direct()?;
        }
        self.file.write_all(buf)?;
        buf.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes pieces shorter and longer than a block (so blocks split
    /// records and the tail is neither empty nor whole), turning direct
    /// writes off after piece `stop` (as a refused write does).
    fn write_pieces(stop: Option<usize>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rows.csv");
        let mut file = DirectFile::create(&path).expect("create");
        let mut expected = Vec::new();
        let mut buf = Vec::new();
        for (i, len) in [10, 4095, 1, 9000, 4096, 70_000, 3].into_iter().enumerate() {
            let piece: Vec<u8> = (0..len).map(|j| b'a' + ((i + j) % 26) as u8).collect();
            buf.extend_from_slice(&piece);
            expected.extend_from_slice(&piece);
            file.write_blocks(&mut buf).expect("write");
            assert!(buf.len() < BLOCK, "whole blocks are written");
            if stop == Some(i) {
                file.stop_direct().expect("stop");
            }
        }
        file.finish(&mut buf).expect("finish");
        assert!(buf.is_empty());
        assert_eq!(std::fs::read(&path).expect("read"), expected, "stop {stop:?}");
    }

    #[test]
    fn every_byte_lands_in_order_whatever_the_pieces() {
        write_pieces(None);
    }

    #[test]
    fn a_file_that_stops_being_direct_midway_loses_nothing() {
        write_pieces(Some(3));
    }
}
