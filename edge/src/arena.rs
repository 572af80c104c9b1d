//! The memory tier's large objects, kept in one shared-memory file so that a plain TCP socket
//! can send them without copying.
//!
//! Over plain HTTP, a hit's work is the copy of its bytes into the socket: nginx avoids it with
//! `sendfile` from the page cache, and a heap buffer cannot. Objects of at least [`MIN_LEN`] are
//! therefore written into a memfd (by `pwritev`, once, when they are stored) and read through
//! one read-only mapping of it. To everything else they are an ordinary `Bytes`; the plain-TCP
//! writer (`listen/sendfile.rs`) asks [`locate`] whether the bytes it is given lie in the
//! arena, and if so hands the kernel the file and an offset instead of the bytes.
//!
//! A range is written only while its one lease is being made, and given back only when the lease
//! is dropped. Its pages are then cut out of the file (a punched hole), not overwritten: a socket
//! may still hold them for bytes it has not sent yet, and the kernel keeps a page cut out of
//! the file for as long as a socket holds it. Ranges are whole pages so that a hole never
//! touches a neighbour's.
//!
//! The file is sparse: its size only reserves address space, and memory is used by the pages
//! of live leases. Where a memfd cannot be made, everything stays on the heap.

use std::io::{self, IoSlice, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};
use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{FallocateFlags, MemfdFlags};

mod extents;

use extents::Extents;

/// Objects smaller than this stay on the heap: copying them is cheap next to a response's
/// other work, and a range costs at least a page.
pub const MIN_LEN: usize = 64 << 10;

const PAGE: u64 = 4096;

/// Address space reserved for the arena: far more than any memory tier, so that it fills up
/// only by fragmentation (and then objects go to the heap).
const SIZE: u64 = 256 << 30;

struct Arena {
    file: OwnedFd,
    map: MmapRaw,
    space: Mutex<Extents>,
}

static ARENA: OnceLock<Option<Arena>> = OnceLock::new();

fn arena() -> Option<&'static Arena> {
    ARENA
        .get_or_init(|| match Arena::create() {
            Ok(arena) => Some(arena),
            Err(e) => {
                tracing::warn!(error = %e, "no shared-memory arena: plain HTTP hits are copied");
                None
            }
        })
        .as_ref()
}

impl Arena {
    fn create() -> io::Result<Self> {
        let file = rustix::fs::memfd_create("edge-objects", MemfdFlags::CLOEXEC)?;
        rustix::fs::ftruncate(&file, SIZE)?;
        let map = MmapOptions::new().len(SIZE as usize).map_raw_read_only(&file)?;
        Ok(Self { file, map, space: Mutex::new(Extents::new(SIZE)) })
    }

    fn space(&self) -> std::sync::MutexGuard<'_, Extents> {
        self.space.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A lease of `len` bytes written from `pieces`, or `None` (no room, or the write failed).
    fn lease(&'static self, len: usize, pieces: &[&[u8]]) -> Option<Lease> {
        let pages = (len as u64).div_ceil(PAGE) * PAGE;
        let offset = self.space().take(pages)?;
        let lease = Lease { arena: self, offset, len };
        match self.write_at(offset, pieces) {
            Ok(()) => Some(lease),
            Err(e) => {
                tracing::warn!(error = %e, "arena write failed; kept on the heap");
                None
            }
        }
    }

    fn write_at(&self, mut offset: u64, pieces: &[&[u8]]) -> io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = pieces.iter().filter(|p| !p.is_empty()).map(|p| IoSlice::new(p)).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            // At most IOV_MAX slices per call; a short write is continued.
            let n = rustix::io::pwritev(&self.file, &rest[..rest.len().min(1024)], offset)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            offset += n as u64;
            IoSlice::advance_slices(&mut rest, n);
        }
        Ok(())
    }

    fn base(&self) -> usize {
        self.map.as_ptr() as usize
    }
}

/// One object's range of the arena.
struct Lease {
    arena: &'static Arena,
    offset: u64,
    len: usize,
}

impl AsRef<[u8]> for Lease {
    #[allow(unsafe_code)]
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the range lies inside the mapping, which lives as long as the process (the
        // arena is a static that is never dropped). Its bytes were written before this lease
        // existed, and nothing writes them while it lives: the range belongs to this lease alone
        // until its drop gives it back, and the mapping is read-only to this process.
        unsafe { std::slice::from_raw_parts(self.arena.map.as_ptr().add(self.offset as usize), self.len) }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let pages = (self.len as u64).div_ceil(PAGE) * PAGE;
        // Cut out, not reused in place: a socket may still hold these pages for bytes it has
        // not sent. If the hole cannot be punched, the range is lost rather than overwritten.
        let punched = rustix::fs::fallocate(
            &self.arena.file,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            self.offset,
            pages,
        );
        match punched {
            Ok(()) => self.arena.space().give_back(self.offset, pages),
            Err(e) => tracing::warn!(error = %e, "arena range not given back"),
        }
    }
}

/// `len` bytes made of `pieces`, in one buffer: in the arena when large enough and there is
/// room, on the heap otherwise.
pub fn gather(len: usize, pieces: &[&[u8]]) -> Bytes {
    debug_assert_eq!(pieces.iter().map(|p| p.len()).sum::<usize>(), len);
    if len >= MIN_LEN
        && let Some(lease) = arena().and_then(|a| a.lease(len, pieces))
    {
        return Bytes::from_owner(lease);
    }
    let mut buf = BytesMut::with_capacity(len);
    pieces.iter().for_each(|p| buf.put_slice(p));
    buf.freeze()
}

/// `len` bytes read from `reader` (a disk-tier entry being decoded), kept as [`gather`] keeps them.
pub fn read(reader: &mut impl Read, len: usize) -> io::Result<Bytes> {
    let mut buf = BytesMut::zeroed(len);
    reader.read_exact(&mut buf)?;
    Ok(if len >= MIN_LEN { gather(len, &[&buf]) } else { buf.freeze() })
}

/// Where `bytes` lie in the arena's file, if they are arena bytes: the file and the offset.
pub fn locate(bytes: &[u8]) -> Option<(BorrowedFd<'static>, u64)> {
    let arena = ARENA.get()?.as_ref()?;
    let (at, base) = (bytes.as_ptr() as usize, arena.base());
    let inside = at >= base && (at - base) as u64 + bytes.len() as u64 <= SIZE;
    inside.then(|| (arena.file.as_fd(), (at - base) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_objects_live_in_the_arena_and_read_back_whole() {
        let pieces: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 30_000]).collect();
        let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        let bytes = gather(150_000, &refs);
        assert_eq!(bytes.len(), 150_000);
        assert!(bytes.chunks(30_000).enumerate().all(|(i, c)| c.iter().all(|&b| b == i as u8)));
        let (_, offset) = locate(&bytes).expect("in the arena");
        assert_eq!(offset % PAGE, 0, "a lease starts on a page");
        let (_, inner) = locate(&bytes[1000..2000]).expect("a slice of it too");
        assert_eq!(inner, offset + 1000);
    }

    #[test]
    fn small_objects_and_heap_bytes_are_not_the_arena() {
        let small = gather(100, &[&[7u8; 100]]);
        let _ = gather(MIN_LEN, &[&vec![1u8; MIN_LEN]]);
        assert!(locate(&small).is_none());
        assert!(locate(&vec![0u8; MIN_LEN * 2]).is_none());
    }

    #[test]
    fn a_dropped_lease_is_given_back_and_its_pages_cut_out() {
        let first = gather(MIN_LEN * 3, &[&vec![9u8; MIN_LEN * 3]]);
        let (_, at) = locate(&first).unwrap();
        let copy = first.slice(10..20);
        drop(first);
        assert_eq!(&copy[..], &[9u8; 10], "a slice keeps the lease");
        drop(copy);
        // The range is free again (and was punched: the file reads zeros there).
        let mut back = [1u8; 16];
        rustix::io::pread(&arena().unwrap().file, &mut back, at).unwrap();
        assert_eq!(back, [0u8; 16]);
    }

    #[test]
    fn decoded_entries_land_in_the_arena_when_large() {
        let data = vec![3u8; 200_000];
        let bytes = read(&mut &data[..], 200_000).unwrap();
        assert_eq!(&bytes[..], &data[..]);
        assert!(locate(&bytes).is_some());
        assert!(read(&mut &data[..10], 100).is_err(), "a short entry is an error");
    }
}
