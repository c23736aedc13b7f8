//! The journal: Cairn's source of truth. An append-only sequence of segment files, each a
//! header followed by checksummed frames. Appends are buffered and made durable by an explicit
//! `sync` (fdatasync), so a caller can group many appends under one sync (group commit). On
//! open, a torn tail left by a crash is cut off. Segments rotate by size and age and are
//! removed whole, oldest first, which is how retention works.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

const SEGMENT_MAGIC: &[u8; 8] = b"CAIRNJ01";
const SEGMENT_HEADER: u64 = 16;
const FRAME_MAGIC: u32 = 0x4652_4d31; // "FRM1"
const FRAME_HEADER: u64 = 12;
/// Segment files a reader keeps open at most.
const MAX_OPEN_SEGMENTS: usize = 128;
/// The largest frame payload accepted (a frame holds one batch of records).
pub const MAX_FRAME: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("journal segment {path} is corrupt at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("frame of {0} bytes is larger than the journal accepts")]
    FrameTooLarge(usize),
    #[error("segment {0} no longer exists (removed by retention)")]
    SegmentGone(u64),
}

type Result<T> = std::result::Result<T, JournalError>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where a frame lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameLoc {
    pub segment: u64,
    /// Offset of the frame payload in the segment file.
    pub offset: u64,
    pub len: u32,
}

/// A segment file and when it was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    pub id: u64,
    pub created_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Rotate once the active segment is this large.
    pub segment_max_bytes: u64,
    /// Rotate once the active segment is this old.
    pub segment_max_age_ms: i64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_max_bytes: 128 * 1024 * 1024,
            segment_max_age_ms: 3_600_000,
        }
    }
}

struct Active {
    id: u64,
    created_ms: i64,
    len: u64,
    out: BufWriter<File>,
}

/// The append side of the journal. Reading goes through [`Reader`], which may be shared.
pub struct Journal {
    dir: PathBuf,
    opts: Options,
    active: Active,
    segments: Vec<SegmentInfo>,
    reader: Reader,
}

/// Reads frames by location; cheap to clone and safe to use from many threads.
#[derive(Clone)]
pub struct Reader {
    dir: PathBuf,
    files: Arc<RwLock<HashMap<u64, Arc<File>>>>,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.log"))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

impl Reader {
    fn file(&self, segment: u64) -> Result<Arc<File>> {
        if let Some(f) = self.files.read().get(&segment) {
            return Ok(f.clone());
        }
        let path = segment_path(&self.dir, segment);
        let file = match File::open(&path) {
            Ok(f) => Arc::new(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(JournalError::SegmentGone(segment));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut files = self.files.write();
        // Keep a bounded number of segments open (90 days of hourly segments would pass the
        // usual limit of open files): drop some other handle; it is reopened when needed.
        while files.len() >= MAX_OPEN_SEGMENTS {
            let Some(victim) = files.keys().copied().find(|k| *k != segment) else {
                break;
            };
            files.remove(&victim);
        }
        files.insert(segment, file.clone());
        Ok(file)
    }

    /// The oldest segment still on disk, if any.
    pub fn first_segment(&self) -> Option<u64> {
        std::fs::read_dir(&self.dir)
            .ok()?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                name.strip_suffix(".log")?.parse::<u64>().ok()
            })
            .min()
    }

    /// Reads one frame's payload and checks its checksum.
    pub fn read(&self, loc: FrameLoc) -> Result<Vec<u8>> {
        let file = self.file(loc.segment)?;
        let path = segment_path(&self.dir, loc.segment);
        let mut header = [0u8; FRAME_HEADER as usize];
        file.read_exact_at(&mut header, loc.offset - FRAME_HEADER)
            .map_err(io_err(&path))?;
        let (magic, len, crc) = parse_frame_header(&header);
        if magic != FRAME_MAGIC || len != loc.len {
            return Err(JournalError::Corrupt {
                path,
                offset: loc.offset,
                reason: "frame header does not match its index entry".into(),
            });
        }
        let mut payload = vec![0u8; loc.len as usize];
        file.read_exact_at(&mut payload, loc.offset)
            .map_err(io_err(&path))?;
        if crc32fast::hash(&payload) != crc {
            return Err(JournalError::Corrupt {
                path,
                offset: loc.offset,
                reason: "checksum mismatch".into(),
            });
        }
        Ok(payload)
    }

    /// Reads `len` bytes at `offset` of a segment, without the frame checksum (for reading
    /// one record out of a frame whose checksum was verified when it was written or replayed).
    pub fn read_at(&self, segment: u64, offset: u64, len: usize) -> Result<Vec<u8>> {
        let file = self.file(segment)?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset)
            .map_err(io_err(&segment_path(&self.dir, segment)))?;
        Ok(buf)
    }

    /// Reads the whole frame that starts at byte `start` of a segment (its header first),
    /// checking its checksum. Returns the frame and where the next one starts, or `None` when
    /// `start` is at (or past) the end of the segment file.
    pub fn frame_at(&self, segment: u64, start: u64) -> Result<Option<(FrameLoc, Vec<u8>)>> {
        let file = self.file(segment)?;
        let path = segment_path(&self.dir, segment);
        let file_len = file.metadata().map_err(io_err(&path))?.len();
        if start + FRAME_HEADER > file_len {
            return Ok(None);
        }
        let mut header = [0u8; FRAME_HEADER as usize];
        file.read_exact_at(&mut header, start)
            .map_err(io_err(&path))?;
        let (_, len, _) = parse_frame_header(&header);
        let loc = FrameLoc {
            segment,
            offset: start + FRAME_HEADER,
            len,
        };
        if start + FRAME_HEADER + u64::from(len) > file_len {
            return Err(JournalError::Corrupt {
                path,
                offset: start,
                reason: "frame runs past the end of the segment".into(),
            });
        }
        self.read(loc).map(|payload| Some((loc, payload)))
    }

    fn forget(&self, segment: u64) {
        self.files.write().remove(&segment);
    }
}

fn parse_frame_header(h: &[u8; FRAME_HEADER as usize]) -> (u32, u32, u32) {
    let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    (word(0), word(4), word(8))
}

/// Scans one segment file frame by frame.
pub struct SegmentScan {
    file: io::BufReader<File>,
    pub info: SegmentInfo,
    offset: u64,
    file_len: u64,
}

/// What a scan found at the end of a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum ScanEnd {
    Clean,
    /// Bytes from this offset on do not form a whole, valid frame.
    Torn {
        offset: u64,
        reason: String,
    },
}

impl SegmentScan {
    pub fn open(dir: &Path, id: u64) -> Result<SegmentScan> {
        let path = segment_path(dir, id);
        let mut file = File::open(&path).map_err(io_err(&path))?;
        let file_len = file.metadata().map_err(io_err(&path))?.len();
        let mut header = [0u8; SEGMENT_HEADER as usize];
        file.read_exact(&mut header)
            .map_err(|_| JournalError::Corrupt {
                path: path.clone(),
                offset: 0,
                reason: "segment header is missing".into(),
            })?;
        if &header[..8] != SEGMENT_MAGIC {
            return Err(JournalError::Corrupt {
                path,
                offset: 0,
                reason: "not a Cairn journal segment".into(),
            });
        }
        let created_ms = i64::from_le_bytes(header[8..16].try_into().unwrap_or([0; 8]));
        Ok(SegmentScan {
            file: io::BufReader::with_capacity(1 << 20, file),
            info: SegmentInfo { id, created_ms },
            offset: SEGMENT_HEADER,
            file_len,
        })
    }

    /// The next frame, `Ok(None)` at a clean end, or `Err(end)` where the rest is torn.
    pub fn next_frame(&mut self) -> std::result::Result<Option<(FrameLoc, Vec<u8>)>, ScanEnd> {
        if self.offset == self.file_len {
            return Ok(None);
        }
        let torn = |offset: u64, reason: &str| ScanEnd::Torn {
            offset,
            reason: reason.to_owned(),
        };
        let start = self.offset;
        if self.file_len - start < FRAME_HEADER {
            return Err(torn(start, "incomplete frame header"));
        }
        let mut header = [0u8; FRAME_HEADER as usize];
        if self.file.read_exact(&mut header).is_err() {
            return Err(torn(start, "unreadable frame header"));
        }
        let (magic, len, crc) = parse_frame_header(&header);
        if magic != FRAME_MAGIC {
            return Err(torn(start, "bad frame magic"));
        }
        if u64::from(len) > self.file_len - start - FRAME_HEADER || len as usize > MAX_FRAME {
            return Err(torn(start, "frame runs past the end of the segment"));
        }
        let mut payload = vec![0u8; len as usize];
        if self.file.read_exact(&mut payload).is_err() {
            return Err(torn(start, "unreadable frame"));
        }
        if crc32fast::hash(&payload) != crc {
            return Err(torn(start, "checksum mismatch"));
        }
        self.offset = start + FRAME_HEADER + u64::from(len);
        Ok(Some((
            FrameLoc {
                segment: self.info.id,
                offset: start + FRAME_HEADER,
                len,
            },
            payload,
        )))
    }
}

fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(id) = name
            .strip_suffix(".log")
            .and_then(|s| s.parse::<u64>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn create_segment(dir: &Path, id: u64, created_ms: i64) -> Result<Active> {
    let path = segment_path(dir, id);
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    let mut header = [0u8; SEGMENT_HEADER as usize];
    header[..8].copy_from_slice(SEGMENT_MAGIC);
    header[8..].copy_from_slice(&created_ms.to_le_bytes());
    file.write_all(&header).map_err(io_err(&path))?;
    file.sync_all().map_err(io_err(&path))?;
    sync_dir(dir)?;
    Ok(Active {
        id,
        created_ms,
        len: SEGMENT_HEADER,
        out: BufWriter::with_capacity(1 << 20, file),
    })
}

impl Journal {
    /// Opens (or creates) the journal in `dir`. Cuts off a torn tail of the newest segment.
    /// Returns the journal; replay its contents with [`Journal::segments`] and [`SegmentScan`].
    pub fn open(dir: &Path, opts: Options, now_ms: i64) -> Result<Journal> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let ids = list_segments(dir)?;
        let mut segments = Vec::with_capacity(ids.len());
        for &id in &ids {
            match SegmentScan::open(dir, id) {
                Ok(scan) => segments.push(scan.info),
                Err(JournalError::Corrupt { .. }) if Some(&id) == ids.last() => {
                    // A crash while creating the newest segment: nothing in it was acknowledged.
                    tracing::warn!(
                        segment = id,
                        "removing a journal segment with a torn header"
                    );
                    let path = segment_path(dir, id);
                    fs::remove_file(&path).map_err(io_err(&path))?;
                }
                Err(e) => return Err(e),
            }
        }
        let active = match segments.last() {
            Some(last) => {
                let mut scan = SegmentScan::open(dir, last.id)?;
                let end = loop {
                    match scan.next_frame() {
                        Ok(Some(_)) => {}
                        Ok(None) => break scan.offset,
                        Err(ScanEnd::Torn { offset, reason }) => {
                            tracing::warn!(
                                segment = last.id,
                                offset,
                                reason,
                                "cutting off a torn journal tail (never acknowledged)"
                            );
                            break offset;
                        }
                        Err(ScanEnd::Clean) => break scan.offset,
                    }
                };
                let path = segment_path(dir, last.id);
                let mut file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                file.set_len(end).map_err(io_err(&path))?;
                file.sync_all().map_err(io_err(&path))?;
                file.seek(SeekFrom::Start(end)).map_err(io_err(&path))?;
                Active {
                    id: last.id,
                    created_ms: last.created_ms,
                    len: end,
                    out: BufWriter::with_capacity(1 << 20, file),
                }
            }
            None => {
                let a = create_segment(dir, 1, now_ms)?;
                segments.push(SegmentInfo {
                    id: a.id,
                    created_ms: a.created_ms,
                });
                a
            }
        };
        Ok(Journal {
            dir: dir.to_owned(),
            opts,
            active,
            segments,
            reader: Reader {
                dir: dir.to_owned(),
                files: Arc::new(RwLock::new(HashMap::new())),
            },
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segments, oldest first (the last is the one being written).
    pub fn segments(&self) -> &[SegmentInfo] {
        &self.segments
    }

    pub fn reader(&self) -> Reader {
        self.reader.clone()
    }

    /// Buffers one frame. It is durable only after [`Journal::sync`].
    pub fn append(&mut self, payload: &[u8]) -> Result<FrameLoc> {
        if payload.len() > MAX_FRAME {
            return Err(JournalError::FrameTooLarge(payload.len()));
        }
        let len = payload.len() as u32;
        let mut header = [0u8; FRAME_HEADER as usize];
        header[..4].copy_from_slice(&FRAME_MAGIC.to_le_bytes());
        header[4..8].copy_from_slice(&len.to_le_bytes());
        header[8..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
        let path = segment_path(&self.dir, self.active.id);
        self.active
            .out
            .write_all(&header)
            .and_then(|()| self.active.out.write_all(payload))
            .map_err(io_err(&path))?;
        let loc = FrameLoc {
            segment: self.active.id,
            offset: self.active.len + FRAME_HEADER,
            len,
        };
        self.active.len += FRAME_HEADER + u64::from(len);
        Ok(loc)
    }

    /// Writes out everything appended and waits for it to reach the disk (fdatasync).
    pub fn sync(&mut self) -> Result<()> {
        let path = segment_path(&self.dir, self.active.id);
        self.active.out.flush().map_err(io_err(&path))?;
        self.active.out.get_ref().sync_data().map_err(io_err(&path))
    }

    /// Starts a new segment if the active one is full or old. Call after a sync.
    pub fn maybe_rotate(&mut self, now_ms: i64) -> Result<bool> {
        let full = self.active.len >= self.opts.segment_max_bytes;
        let old = now_ms - self.active.created_ms >= self.opts.segment_max_age_ms
            && self.active.len > SEGMENT_HEADER;
        if !(full || old) {
            return Ok(false);
        }
        self.rotate(now_ms)?;
        Ok(true)
    }

    /// Seals the active segment and starts a new one.
    pub fn rotate(&mut self, now_ms: i64) -> Result<()> {
        self.sync()?;
        let next = create_segment(&self.dir, self.active.id + 1, now_ms)?;
        self.segments.push(SegmentInfo {
            id: next.id,
            created_ms: next.created_ms,
        });
        self.active = next;
        Ok(())
    }

    /// Removes whole segments every frame of which was written before `cutoff_ms`, never the
    /// active one nor any from `keep_from` on (a consumer still needs those). Returns the ids
    /// removed.
    pub fn remove_before(&mut self, cutoff_ms: i64, keep_from: u64) -> Result<Vec<u64>> {
        let mut removed = Vec::new();
        // Segment i ends where segment i+1 starts.
        while self.segments.len() > 1
            && self.segments[1].created_ms <= cutoff_ms
            && self.segments[0].id < keep_from
        {
            let seg = self.segments.remove(0);
            let path = segment_path(&self.dir, seg.id);
            self.reader.forget(seg.id);
            fs::remove_file(&path).map_err(io_err(&path))?;
            removed.push(seg.id);
        }
        if !removed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// Where the next frame will be written: the active segment and its length. Everything
    /// before it is durable once [`Journal::sync`] has returned.
    pub fn end(&self) -> (u64, u64) {
        (self.active.id, self.active.len)
    }

    /// Where the first frame of a segment starts.
    pub const FIRST_FRAME: u64 = SEGMENT_HEADER;

    pub fn active_created_ms(&self) -> i64 {
        self.active.created_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(dir: &Path, j: &Journal) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for s in j.segments() {
            let mut scan = SegmentScan::open(dir, s.id).unwrap();
            while let Ok(Some((_, p))) = scan.next_frame() {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn append_sync_reopen_read() {
        let tmp = tempfile::tempdir().unwrap();
        let mut j = Journal::open(tmp.path(), Options::default(), 1).unwrap();
        let a = j.append(b"hello").unwrap();
        let b = j.append(b"world!").unwrap();
        j.sync().unwrap();
        assert_eq!(j.reader().read(a).unwrap(), b"hello");
        assert_eq!(j.reader().read(b).unwrap(), b"world!");
        drop(j);
        let j = Journal::open(tmp.path(), Options::default(), 2).unwrap();
        assert_eq!(
            scan_all(tmp.path(), &j),
            vec![b"hello".to_vec(), b"world!".to_vec()]
        );
    }

    #[test]
    fn torn_tail_is_cut() {
        let tmp = tempfile::tempdir().unwrap();
        let mut j = Journal::open(tmp.path(), Options::default(), 1).unwrap();
        j.append(b"kept").unwrap();
        j.append(b"torn-away").unwrap();
        j.sync().unwrap();
        drop(j);
        let path = segment_path(tmp.path(), 1);
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let mut j = Journal::open(tmp.path(), Options::default(), 2).unwrap();
        assert_eq!(scan_all(tmp.path(), &j), vec![b"kept".to_vec()]);
        j.append(b"after").unwrap();
        j.sync().unwrap();
        drop(j);
        let j = Journal::open(tmp.path(), Options::default(), 3).unwrap();
        assert_eq!(
            scan_all(tmp.path(), &j),
            vec![b"kept".to_vec(), b"after".to_vec()]
        );
    }

    #[test]
    fn rotation_and_retention() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = Options {
            segment_max_bytes: 40,
            segment_max_age_ms: 1000,
        };
        let mut j = Journal::open(tmp.path(), opts, 0).unwrap();
        let first = j.append(&[1u8; 30]).unwrap();
        j.sync().unwrap();
        assert!(j.maybe_rotate(10).unwrap());
        j.append(&[2u8; 5]).unwrap();
        j.sync().unwrap();
        assert!(!j.maybe_rotate(20).unwrap());
        assert!(j.maybe_rotate(2000).unwrap());
        assert_eq!(j.segments().len(), 3);
        assert_eq!(j.remove_before(5, u64::MAX).unwrap(), Vec::<u64>::new());
        assert_eq!(j.remove_before(10, u64::MAX).unwrap(), vec![1]);
        assert!(matches!(
            j.reader().read(first),
            Err(JournalError::SegmentGone(1))
        ));
        assert_eq!(j.remove_before(i64::MAX, u64::MAX).unwrap(), vec![2]);
        assert_eq!(j.segments().len(), 1);
    }
}
