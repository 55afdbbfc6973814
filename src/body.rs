//! A page body: in memory while small, spilled to an unnamed temp file once it
//! grows past [`SPILL_BYTES`], so a page of any size costs bounded memory
//! (the fetcher, the privacy check, link extraction and the writer all read
//! it as a stream).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

/// Bodies larger than this are kept in a temp file, not in memory.
pub(crate) const SPILL_BYTES: usize = 4 << 20;

/// Size of the chunks large bodies are read in.
pub(crate) const CHUNK: usize = 64 << 10;

/// A complete body.
#[derive(Debug)]
pub(crate) enum Body {
    /// Small bodies (almost every page).
    Memory(Bytes),
    /// Large bodies, in an unlinked temp file.
    File {
        /// The temp file (already unlinked; gone when dropped).
        file: File,
        /// Its length.
        len: u64,
    },
}

impl Body {
    /// The length in bytes.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Body::Memory(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    /// The bytes, when the body is in memory.
    pub(crate) fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Body::Memory(b) => Some(b),
            Body::File { .. } => None,
        }
    }

    /// A reader from the start (positional reads: the body is not consumed).
    pub(crate) fn reader(&self) -> BodyReader<'_> {
        BodyReader { body: self, pos: 0 }
    }

    /// blake3 of the content.
    pub(crate) fn hash(&self) -> io::Result<blake3::Hash> {
        match self {
            Body::Memory(b) => Ok(blake3::hash(b)),
            Body::File { .. } => {
                let mut h = blake3::Hasher::new();
                io::copy(&mut self.reader(), &mut h)?;
                Ok(h.finalize())
            }
        }
    }

    /// True when `other` yields exactly these bytes (streamed, bounded memory).
    pub(crate) fn same_as(&self, other: &mut impl Read) -> io::Result<bool> {
        let mut mine = self.reader();
        let mut a = vec![0u8; CHUNK];
        let mut b = vec![0u8; CHUNK];
        loop {
            let n = read_full(&mut mine, &mut a)?;
            let m = read_full(other, &mut b[..n.max(1)])?;
            if n != m || a[..n] != b[..m] {
                return Ok(false);
            }
            if n == 0 {
                return Ok(true);
            }
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Body::Memory(Bytes::from(v))
    }
}

impl From<String> for Body {
    fn from(s: String) -> Body {
        Body::from(s.into_bytes())
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Body {
        Body::Memory(Bytes::from_static(s))
    }
}

/// Reads as much as fits in `buf`, stopping early only at the end.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads a [`Body`] from the start without moving a shared file position.
#[derive(Debug)]
pub(crate) struct BodyReader<'a> {
    body: &'a Body,
    pos: u64,
}

impl Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.body {
            Body::Memory(b) => {
                let start = (self.pos as usize).min(b.len());
                let n = buf.len().min(b.len() - start);
                buf[..n].copy_from_slice(&b[start..start + n]);
                n
            }
            Body::File { file, len } => {
                let want = (buf.len() as u64).min(len.saturating_sub(self.pos)) as usize;
                if want == 0 {
                    0
                } else {
                    file.read_at(&mut buf[..want], self.pos)?
                }
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}

/// Collects a body chunk by chunk, spilling to a temp file in `spill_dir`
/// once it passes [`SPILL_BYTES`].
#[derive(Debug)]
pub(crate) struct BodyBuilder {
    memory: BytesMut,
    file: Option<(File, u64)>,
    spill_dir: PathBuf,
}

impl BodyBuilder {
    /// An empty body; large ones go to `spill_dir` (kiln's state directory,
    /// on disk, rather than a tmpfs `/tmp` that would hold it in RAM).
    pub(crate) fn new(spill_dir: &Path) -> BodyBuilder {
        BodyBuilder {
            memory: BytesMut::new(),
            file: None,
            spill_dir: spill_dir.to_path_buf(),
        }
    }

    /// Bytes so far.
    pub(crate) fn len(&self) -> u64 {
        match &self.file {
            Some((_, n)) => *n,
            None => self.memory.len() as u64,
        }
    }

    /// Appends a chunk.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> io::Result<()> {
        if self.file.is_none() && self.memory.len() + chunk.len() > SPILL_BYTES {
            std::fs::create_dir_all(&self.spill_dir)?;
            let mut f = tempfile::tempfile_in(&self.spill_dir)?;
            f.write_all(&self.memory)?;
            let n = self.memory.len() as u64;
            self.memory = BytesMut::new();
            self.file = Some((f, n));
        }
        match &mut self.file {
            Some((f, n)) => {
                f.write_all(chunk)?;
                *n += chunk.len() as u64;
            }
            None => self.memory.extend_from_slice(chunk),
        }
        Ok(())
    }

    /// The finished body.
    pub(crate) fn finish(self) -> Body {
        match self.file {
            Some((file, len)) => Body::File { file, len },
            None => Body::Memory(self.memory.freeze()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_bodies_spill_and_read_back_identically() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = BodyBuilder::new(dir.path());
        let chunk: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
        for _ in 0..6 {
            b.push(&chunk).unwrap();
        }
        let body = b.finish();
        assert!(matches!(body, Body::File { .. }), "6 MiB spills");
        assert_eq!(body.len(), 6 << 20);
        let all: Vec<u8> = chunk.iter().copied().cycle().take(6 << 20).collect();
        let mut back = Vec::new();
        body.reader().read_to_end(&mut back).unwrap();
        assert_eq!(back, all);
        assert_eq!(body.hash().unwrap(), blake3::hash(&all));
        assert!(body.same_as(&mut &all[..]).unwrap());
        assert!(!body.same_as(&mut &all[1..]).unwrap());
        let small = Body::from(b"abc".to_vec());
        assert!(small.same_as(&mut &b"abc"[..]).unwrap());
        assert!(!small.same_as(&mut &b"abcd"[..]).unwrap());
        assert!(!small.same_as(&mut &b"ab"[..]).unwrap());
    }
}
