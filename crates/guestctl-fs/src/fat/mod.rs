//! FAT12, FAT16 and FAT32 with VFAT long names, read-only, in process.
//!
//! [`FatFs::open`] parses the boot sector and then serves the [`Filesystem`] trait the way a
//! Linux `mount -t vfat -o ro,umask=022` shows the volume: directories `0755`, files `0755`
//! (`0555` with the read-only attribute), uid/gid 0, names from valid long-name sequences
//! (checksum checked) or else the 8.3 name in code page 437 with the NT lower-case flags.
//! FAT stores local times without a zone: they are read as UTC (mtime from the write time,
//! 2 s resolution; crtime with its 10 ms field; atime from the access date; ctime = mtime).
//!
//! A [`NodeId`] is the byte offset on the device of the node's 8.3 directory entry (stable
//! and unique); the root directory is [`ROOT`]. Cluster chains are bounded by the cluster
//! count (a loop is an error, not a hang), directories by the 2 MiB the format allows, and
//! the chain of a file is mapped once into runs and cached (bounded) so positional reads do
//! not walk the chain. exFAT is refused with [`crate::ErrorKind::Unsupported`].

mod bpb;
mod dir;
mod table;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use guestctl_block::BlockDevice;

use self::bpb::{Bpb, FatKind};
use self::dir::{dos_time, parse_dir, Entry, RawEntry};
use self::table::{Next, Table};
use crate::{
    DirEntry, Error, ErrorKind, FileType, Filesystem, FsInfo, Metadata, NodeId, OpenOptions,
    Result, Xattr,
};

/// The node id of the root directory (no directory entry describes it).
pub const ROOT: NodeId = NodeId(1);

/// The largest directory the format allows (65536 entries of 32 bytes).
const MAX_DIR_BYTES: u64 = 65536 * 32;
/// The most runs (contiguous pieces) one file's chain may have.
const MAX_RUNS: usize = 1 << 20;
/// The most runs kept in the chain cache over all files; emptied when exceeded.
const MAX_CACHED_RUNS: usize = 1 << 22;
/// The most chains kept in the cache.
const MAX_CACHED_CHAINS: usize = 4096;

/// A contiguous piece of a cluster chain.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Index of the run's first cluster within the chain.
    index: u64,
    /// Its cluster number.
    cluster: u32,
    /// Clusters in the run.
    len: u32,
}

/// A mapped cluster chain.
#[derive(Debug)]
struct Chain {
    runs: Vec<Run>,
    clusters: u64,
    /// Why the chain stopped before the wanted length, if it did.
    broken: Option<String>,
}

/// A FAT12/16/32 volume opened read-only. `Send + Sync`.
#[derive(Debug)]
pub struct FatFs {
    dev: Arc<dyn BlockDevice>,
    bpb: Bpb,
    table: Table,
    label: String,
    notes: Vec<String>,
    chains: Mutex<(HashMap<u64, Arc<Chain>>, usize)>,
}

fn corrupt_at(structure: &'static str, offset: u64, msg: impl Into<String>) -> Error {
    Error::corrupt(msg.into()).structure(structure).at(offset)
}

/// A volume label as blkid shows it: code page 437, trailing spaces removed.
fn trim_label(raw: &[u8; 11]) -> String {
    let end = raw
        .iter()
        .rposition(|&c| c != b' ' && c != 0)
        .map_or(0, |p| p + 1);
    raw[..end].iter().map(|&c| dir::cp437(c)).collect()
}

fn lower_eq(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

impl FatFs {
    /// Opens the FAT volume on `dev`. exFAT is refused with [`ErrorKind::Unsupported`].
    pub fn open(dev: Arc<dyn BlockDevice>, opts: &OpenOptions) -> Result<FatFs> {
        let _ = opts; // FAT has neither checksums nor a journal.
        let mut sector = vec![0u8; 512];
        dev.read_exact_at(0, &mut sector)
            .map_err(|e| Error::from(e).structure("FAT boot sector").at(0))?;
        let bpb = Bpb::parse(&sector)?;
        let fat_end = bpb.fat_offset + bpb.fat_bytes;
        if fat_end > dev.size() {
            return Err(corrupt_at(
                "file allocation table",
                bpb.fat_offset,
                format!(
                    "the FAT ends at byte {fat_end}, past the device ({} bytes)",
                    dev.size()
                ),
            ));
        }
        let mut notes = Vec::new();
        if dev.size() < bpb.total_bytes {
            notes.push(format!(
                "the device ({} bytes) is smaller than the volume ({} bytes): reads past its end fail",
                dev.size(),
                bpb.total_bytes
            ));
        }
        let table = Table::new(dev.clone(), &bpb);
        let mut fs = FatFs {
            dev,
            bpb,
            table,
            label: String::new(),
            notes,
            chains: Mutex::new((HashMap::new(), 0)),
        };
        let root_label = match fs.dir_bytes(ROOT) {
            Ok((bytes, _)) => parse_dir(&bytes, fs.fat32()).1,
            Err(e) => {
                fs.notes
                    .push(format!("the root directory cannot be read: {e}"));
                None
            }
        };
        fs.label = match (root_label, fs.bpb.label) {
            (Some(l), _) => trim_label(&l),
            (None, Some(l)) if &l != b"NO NAME    " => trim_label(&l),
            _ => String::new(),
        };
        Ok(fs)
    }

    /// Notes from opening.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    fn fat32(&self) -> bool {
        self.bpb.kind == FatKind::Fat32
    }

    fn cs(&self) -> u64 {
        u64::from(self.bpb.cluster_size)
    }

    /// Follows the chain from `first` for at most `want` clusters.
    fn map_chain(&self, first: u32, want: u64) -> Result<Chain> {
        let mut runs: Vec<Run> = Vec::new();
        let mut done: std::collections::BTreeMap<u32, u32> = std::collections::BTreeMap::new();
        let mut clusters = 0u64;
        let mut broken = None;
        let mut c = first;
        if want > 0 && !self.bpb.valid_cluster(first) {
            broken = Some(format!("first cluster {first} is not a data cluster"));
        }
        while broken.is_none() && clusters < want {
            if clusters >= u64::from(self.bpb.cluster_count) {
                broken = Some(format!(
                    "the cluster chain from {first} is longer than the volume ({} clusters): it loops",
                    self.bpb.cluster_count
                ));
                break;
            }
            // A cluster already in the chain means a loop (checked on every step, in
            // O(log runs), so a loop shorter than the wanted length is caught too).
            let in_current = runs
                .last()
                .is_some_and(|r| c >= r.cluster && c - r.cluster < r.len);
            let in_earlier = done
                .range(..=c)
                .next_back()
                .is_some_and(|(&s, &l)| c - s < l);
            if in_current || in_earlier {
                broken = Some(format!(
                    "the cluster chain from {first} loops back to cluster {c}"
                ));
                break;
            }
            match runs.last_mut() {
                Some(r) if u64::from(r.cluster) + u64::from(r.len) == u64::from(c) => r.len += 1,
                last => {
                    if let Some(r) = last {
                        done.insert(r.cluster, r.len);
                    }
                    if runs.len() >= MAX_RUNS {
                        return Err(Error::limit(format!(
                            "the cluster chain from {first} has more than {MAX_RUNS} fragments"
                        ))
                        .structure("cluster chain"));
                    }
                    runs.push(Run {
                        index: clusters,
                        cluster: c,
                        len: 1,
                    });
                }
            }
            clusters += 1;
            if clusters == want {
                break;
            }
            match self.table.next(c)? {
                Next::Cluster(n) if self.bpb.valid_cluster(n) => c = n,
                Next::Cluster(n) => {
                    broken = Some(format!(
                        "cluster {c} links to {n}, which is not a data cluster"
                    ))
                }
                Next::End => break,
                Next::Free => broken = Some(format!("cluster {c} links to a free cluster")),
                Next::Bad => broken = Some(format!("cluster {c} links to a bad cluster")),
            }
        }
        Ok(Chain {
            runs,
            clusters,
            broken,
        })
    }

    /// The chain of a file, through the cache.
    fn file_chain(&self, node: NodeId, first: u32, size: u64) -> Result<Arc<Chain>> {
        if let Ok(c) = self.chains.lock() {
            if let Some(ch) = c.0.get(&node.0) {
                return Ok(ch.clone());
            }
        }
        let ch = Arc::new(self.map_chain(first, size.div_ceil(self.cs()))?);
        if let Ok(mut c) = self.chains.lock() {
            if c.0.len() >= MAX_CACHED_CHAINS || c.1 + ch.runs.len() > MAX_CACHED_RUNS {
                c.0.clear();
                c.1 = 0;
            }
            c.1 += ch.runs.len();
            c.0.insert(node.0, ch.clone());
        }
        Ok(ch)
    }

    /// Device offset of byte `pos` of a chain (which must lie inside it).
    fn chain_offset(&self, ch: &Chain, pos: u64) -> Option<(u64, u64)> {
        let idx = pos / self.cs();
        let i = ch.runs.partition_point(|r| r.index <= idx).checked_sub(1)?;
        let r = ch.runs[i];
        let end = r.index + u64::from(r.len);
        if idx >= end {
            return None;
        }
        let start =
            self.bpb.cluster_offset(r.cluster) + (idx - r.index) * self.cs() + pos % self.cs();
        let avail = (end - idx) * self.cs() - pos % self.cs();
        Some((start, avail))
    }

    /// The directory entry behind `node` (not the root) and its device offset.
    fn entry(&self, node: NodeId) -> Result<RawEntry> {
        let off = node.0;
        let b = &self.bpb;
        let in_root = off >= b.root_offset
            && off < b.root_offset + b.root_bytes
            && (off - b.root_offset) % 32 == 0;
        let data_end = b.data_offset + u64::from(b.cluster_count) * self.cs();
        let in_data = off >= b.data_offset && off < data_end && (off - b.data_offset) % 32 == 0;
        if !in_root && !in_data {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("node {off} is not the offset of a directory entry"),
            ));
        }
        let mut raw = [0u8; 32];
        self.dev
            .read_exact_at(off, &mut raw)
            .map_err(|e| Error::from(e).structure("directory entry").at(off))?;
        let e = RawEntry::parse(&raw, self.fat32());
        if e.is_free() || e.is_lfn() || e.is_label() || e.is_dot() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("node {off} is not a live directory entry"),
            ));
        }
        Ok(e)
    }

    /// The bytes of directory `node`, and for each its cluster mapping (none for the fixed
    /// FAT12/16 root).
    fn dir_bytes(&self, node: NodeId) -> Result<(Vec<u8>, Option<Chain>)> {
        let first = if node == ROOT {
            if !self.fat32() {
                let mut buf = vec![0u8; self.bpb.root_bytes as usize];
                self.dev
                    .read_exact_at(self.bpb.root_offset, &mut buf)
                    .map_err(|e| {
                        Error::from(e)
                            .structure("root directory")
                            .at(self.bpb.root_offset)
                    })?;
                return Ok((buf, None));
            }
            self.bpb.root_cluster
        } else {
            let e = self.entry(node)?;
            if !e.is_dir() {
                return Err(Error::new(ErrorKind::NotADirectory, "not a directory").inode(node.0));
            }
            e.cluster
        };
        let max = MAX_DIR_BYTES / self.cs() + 1;
        let ch = self.map_chain(first, max.max(2))?;
        if let Some(why) = &ch.broken {
            return Err(corrupt_at("directory cluster chain", node.0, why.clone()).inode(node.0));
        }
        if ch.clusters * self.cs() > MAX_DIR_BYTES {
            return Err(Error::limit(format!(
                "directory is larger than {MAX_DIR_BYTES} bytes (or its chain loops)"
            ))
            .structure("directory cluster chain")
            .at(node.0)
            .inode(node.0));
        }
        let mut buf = vec![0u8; (ch.clusters * self.cs()) as usize];
        for r in &ch.runs {
            let at = self.bpb.cluster_offset(r.cluster);
            let from = (r.index * self.cs()) as usize;
            let to = from + (u64::from(r.len) * self.cs()) as usize;
            self.dev
                .read_exact_at(at, &mut buf[from..to])
                .map_err(|e| Error::from(e).structure("directory").at(at).inode(node.0))?;
        }
        Ok((buf, Some(ch)))
    }

    /// The live entries of directory `node` with their node ids.
    fn entries(&self, node: NodeId) -> Result<Vec<(NodeId, Entry)>> {
        let (bytes, ch) = self.dir_bytes(node)?;
        let (list, _) = parse_dir(&bytes, self.fat32());
        let mut out = Vec::with_capacity(list.len());
        for e in list {
            let id = match &ch {
                None => self.bpb.root_offset + e.pos as u64,
                Some(ch) => match self.chain_offset(ch, e.pos as u64) {
                    Some((o, _)) => o,
                    None => continue,
                },
            };
            out.push((NodeId(id), e));
        }
        Ok(out)
    }

    fn dir_metadata(&self, node: NodeId, times: Option<&RawEntry>) -> Result<Metadata> {
        // A directory whose contents cannot be read keeps the metadata of its entry (size 0,
        // no subdirectories counted), so paths through it still resolve; `read_dir` reports
        // the damage.
        let (size, subdirs) = match self.dir_bytes(node) {
            Ok((bytes, _)) => {
                let (list, _) = parse_dir(&bytes, self.fat32());
                let subdirs = list.iter().filter(|e| e.raw.is_dir()).count();
                (bytes.len() as u64, subdirs)
            }
            Err(_) if times.is_some() => (0, 0),
            Err(e) => return Err(e),
        };
        let mut m = self.base_metadata(node, FileType::Directory, size, times);
        m.nlink = 2u32.saturating_add(u32::try_from(subdirs).unwrap_or(u32::MAX));
        Ok(m)
    }

    fn base_metadata(
        &self,
        node: NodeId,
        file_type: FileType,
        size: u64,
        e: Option<&RawEntry>,
    ) -> Metadata {
        let ro =
            file_type == FileType::Regular && e.is_some_and(|e| e.attr & dir::attr::READ_ONLY != 0);
        let mtime = e.map(|e| dos_time(e.wrt_date, e.wrt_time, 0));
        Metadata {
            file_type,
            size,
            mode: if ro { 0o555 } else { 0o755 },
            uid: 0,
            gid: 0,
            nlink: 1,
            inode: node.0,
            atime: e.map(|e| dos_time(e.acc_date, 0, 0)),
            mtime,
            ctime: mtime,
            crtime: e.map(|e| dos_time(e.crt_date, e.crt_time, e.crt_cs)),
            rdev: None,
            allocated: size.div_ceil(self.cs()) * self.cs(),
        }
    }
}

impl Filesystem for FatFs {
    fn info(&self) -> FsInfo {
        FsInfo {
            fs_type: "vfat".into(),
            label: self.label.clone(),
            uuid: self
                .bpb
                .serial
                .map(|s| format!("{:04X}-{:04X}", s >> 16, s & 0xFFFF))
                .unwrap_or_default(),
            block_size: self.bpb.cluster_size,
            size: self.bpb.total_bytes,
            free: None,
            notes: self.notes.clone(),
        }
    }

    fn root(&self) -> NodeId {
        ROOT
    }

    fn metadata(&self, node: NodeId) -> Result<Metadata> {
        if node == ROOT {
            return self.dir_metadata(node, None);
        }
        let e = self.entry(node).map_err(|e| e.inode(node.0))?;
        if e.is_dir() {
            self.dir_metadata(node, Some(&e))
        } else {
            Ok(self.base_metadata(node, FileType::Regular, u64::from(e.size), Some(&e)))
        }
    }

    fn read_dir(&self, dir: NodeId) -> Result<Vec<DirEntry>> {
        Ok(self
            .entries(dir)?
            .into_iter()
            .map(|(node, e)| DirEntry {
                file_type: if e.raw.is_dir() {
                    FileType::Directory
                } else {
                    FileType::Regular
                },
                name: e.name.into_bytes(),
                node,
            })
            .collect())
    }

    /// Case-insensitive, on the long name and on the 8.3 name, as vfat does.
    fn lookup(&self, dir: NodeId, name: &[u8]) -> Result<Option<NodeId>> {
        let Ok(name) = std::str::from_utf8(name) else {
            return Ok(None);
        };
        Ok(self
            .entries(dir)?
            .into_iter()
            .find(|(_, e)| lower_eq(&e.name, name) || lower_eq(&e.short, name))
            .map(|(n, _)| n))
    }

    fn read_at(&self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if node == ROOT {
            return Err(Error::new(ErrorKind::IsADirectory, "is a directory").inode(node.0));
        }
        let e = self.entry(node).map_err(|e| e.inode(node.0))?;
        if e.is_dir() {
            return Err(Error::new(ErrorKind::IsADirectory, "is a directory").inode(node.0));
        }
        let size = u64::from(e.size);
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        let want = (size - offset).min(buf.len() as u64) as usize;
        let ch = self.file_chain(node, e.cluster, size)?;
        let mut done = 0usize;
        while done < want {
            let pos = offset + done as u64;
            let Some((at, avail)) = self.chain_offset(&ch, pos) else {
                let why = ch.broken.clone().unwrap_or_else(|| {
                    format!("the cluster chain ends before the file size ({size} bytes)")
                });
                return Err(corrupt_at("file cluster chain", node.0, why).inode(node.0));
            };
            let n = (want - done).min(usize::try_from(avail).unwrap_or(usize::MAX));
            self.dev
                .read_exact_at(at, &mut buf[done..done + n])
                .map_err(|e| Error::from(e).structure("file data").at(at).inode(node.0))?;
            done += n;
        }
        Ok(want)
    }

    fn read_link(&self, node: NodeId) -> Result<Vec<u8>> {
        Err(Error::new(ErrorKind::InvalidInput, "FAT has no symbolic links").inode(node.0))
    }

    fn xattrs(&self, node: NodeId) -> Result<Vec<Xattr>> {
        let _ = node;
        Ok(Vec::new())
    }
}

/// Fuzzing entry point: opens `data` as a FAT image and walks it with bounded effort
/// (metadata, lookup, reads at the start and the end of each file). Never panics on any
/// input; that is what the fuzz target and the hostile tests check.
#[doc(hidden)]
pub fn fuzz_walk(data: &[u8]) {
    let dev: Arc<dyn BlockDevice> = Arc::new(guestctl_block::MemoryDevice::new(data.to_vec()));
    if let Ok(fs) = FatFs::open(dev, &OpenOptions::default()) {
        crate::fuzz_walk_tree(&fs);
    }
}
