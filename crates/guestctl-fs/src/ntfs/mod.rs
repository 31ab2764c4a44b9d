//! NTFS, read-only, on top of the `ntfs` crate (MFT records, attributes, attribute lists,
//! `$I30` indexes, data runs), with our own LZNT1 decompression ([`lznt1`]) and reparse-point
//! parsing ([`reparse`]).
//!
//! What a caller sees, and how it maps to NTFS:
//! - [`NodeId`]: the MFT record number in the low 48 bits. A named data stream (alternate
//!   data stream) of that record is `record | k << 48`, where `k` (1..=0xFFFF) is the 1-based
//!   position of the named `$DATA` attribute among the record's named `$DATA` attributes.
//!   [`Filesystem::lookup`] resolves `name:stream` to such a node; [`Filesystem::streams`]
//!   lists them.
//! - Directory entries: names in the POSIX, Win32 and Win32&DOS namespaces; DOS-only 8.3
//!   aliases are skipped (lookup still accepts them, like Windows). An index entry whose
//!   sequence number does not match the record it points at (a stale entry) is skipped and a
//!   note is kept in [`FsInfo::notes`]. The metafiles (`$MFT`, `$Bitmap`, ... records below
//!   16, `FILE_first_user`) are hidden from the root listing, as ntfs-3g hides them unless
//!   mounted with `show_sys_files`.
//! - Lookup is case-insensitive through the volume's `$UpCase` table (always 64 Ki entries).
//! - Metadata as ntfs-3g shows it without the `permissions` option: mode 0777 for files,
//!   directories and links, uid and gid 0 (the mounting user: root), except that a file with
//!   the read-only attribute loses its write bits (0555). Times from `$STANDARD_INFORMATION`
//!   (100 ns ticks since 1601): mtime, atime, ctime = MFT record change time, crtime. nlink =
//!   the number of non-DOS `$FILE_NAME` attributes. Directory sizes are 0. No xattrs are
//!   reported.
//! - Reparse points: symbolic links and junctions are [`FileType::Symlink`] (target mapping in
//!   [`reparse`]); files with other reparse tags (WOF, dedup, cloud) list normally but
//!   reading their data is refused with the tag named.
//! - File data: resident and non-resident, sparse runs as zeros (through the crate); LZNT1
//!   compressed attributes unit by unit through [`lznt1`]; EFS-encrypted files (attribute
//!   0x4000, an encrypted `$DATA`, or a `$LOGGED_UTILITY_STREAM` named `$EFS`) are refused with
//!   [`ErrorKind::Unsupported`].
//!
//! Bounds: directories ≤ 1 Mi index entries, ≤ 0xFFFF named streams, ≤ 1 Mi data runs per
//! compressed attribute, reparse buffers ≤ 16 KiB, compression units ≤ 256 clusters and
//! 1 MiB, ≤ 4096 attributes per record walk.

mod io;
pub mod lznt1;
pub mod reparse;

use std::io::SeekFrom;
use std::sync::{Arc, Mutex};

use guestctl_block::BlockDevice;
use ntfs::attribute_value::NtfsAttributeValue;
use ntfs::structured_values::{NtfsFileAttributeFlags, NtfsFileNamespace, NtfsStandardInformation};
use ntfs::{
    Ntfs, NtfsAttribute, NtfsAttributeFlags, NtfsAttributeType, NtfsError, NtfsFile, NtfsFileFlags,
    NtfsReadSeek, NtfsTime, UpcaseOrd,
};

use crate::{
    DirEntry, Error, ErrorKind, FileType, Filesystem, FsInfo, Metadata, NodeId, OpenOptions,
    Result, StreamInfo, Timestamp, Xattr,
};
use io::DevReader;
use reparse::Reparse;

const STREAM_SHIFT: u32 = 48;
const RECORD_MASK: u64 = (1 << STREAM_SHIFT) - 1;
const MAX_DIR_ENTRIES: usize = 1 << 20;
const MAX_ATTRIBUTES: usize = 4096;
const MAX_RUNS: usize = 1 << 20;
const MAX_UNIT_BYTES: u64 = 1 << 20;
const MAX_NOTES: usize = 64;
const ROOT_RECORD: u64 = 5;
const FIRST_USER_RECORD: u64 = 16;

/// An open NTFS volume (see the module docs).
pub struct NtfsFs {
    dev: Arc<dyn BlockDevice>,
    ntfs: Ntfs,
    info: FsInfo,
    notes: Mutex<Vec<String>>,
    /// The allocated runs of `$MFT`'s `$DATA` in the base record (device offset, length).
    mft_runs: Vec<(u64, u64)>,
}

impl std::fmt::Debug for NtfsFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtfsFs")
            .field("label", &self.info.label)
            .field("uuid", &self.info.uuid)
            .field("cluster_size", &self.info.block_size)
            .finish()
    }
}

fn ntfs_err(e: NtfsError) -> Error {
    if let NtfsError::Io(io) = &e {
        if let Some(b) = io
            .get_ref()
            .and_then(|s| s.downcast_ref::<guestctl_block::Error>())
        {
            let off = b.offset();
            let mut err = Error::new(ErrorKind::Io, format!("reading the device failed: {b}"));
            if let Some(o) = off {
                err = err.at(o);
            }
            return err;
        }
    }
    Error::corrupt(e.to_string())
}

/// Parts of a [`NodeId`].
fn split(node: NodeId) -> (u64, u16) {
    (node.0 & RECORD_MASK, (node.0 >> STREAM_SHIFT) as u16)
}

fn ntfs_time(t: NtfsTime) -> Option<Timestamp> {
    let ticks = t.nt_timestamp();
    if ticks == 0 {
        return None;
    }
    const EPOCH_DIFF_SECS: i64 = 11_644_473_600;
    let secs = (ticks / 10_000_000) as i64 - EPOCH_DIFF_SECS;
    let nanos = (ticks % 10_000_000) as u32 * 100;
    Some(Timestamp { secs, nanos })
}

/// What a record's attributes say, gathered in one walk.
#[derive(Default)]
struct RecordFacts {
    attrs: u32,
    names: u32,
    efs_stream: bool,
    reparse: Option<Vec<u8>>,
    data_len: Option<u64>,
    data_alloc: u64,
    data_encrypted: bool,
    streams: Vec<(String, u64)>,
}

impl NtfsFs {
    /// Opens the NTFS volume on `dev`: boot sector, `$MFT`, `$UpCase`, the root directory
    /// and `$Volume`'s name.
    pub fn open(dev: Arc<dyn BlockDevice>, opts: &OpenOptions) -> Result<NtfsFs> {
        guard(NodeId(0), || Self::open_inner(dev, opts))
    }

    fn open_inner(dev: Arc<dyn BlockDevice>, opts: &OpenOptions) -> Result<NtfsFs> {
        let _ = opts; // NTFS has no metadata checksums or journal replay here.
                      // Checked here so that a short or foreign device is a plain error, not a panic of
                      // the ntfs crate (which it raises for a boot sector it cannot read whole).
        let mut boot = [0u8; 512];
        if dev.size() < 512
            || dev.read_exact_at(0, &mut boot).is_err()
            || &boot[3..11] != b"NTFS    "
        {
            return Err(
                Error::corrupt("no NTFS boot sector (OEM id \"NTFS    \" at byte 3)")
                    .structure("NTFS boot sector")
                    .at(0),
            );
        }
        let mut r = DevReader::new(dev.as_ref(), &[]);
        let mut ntfs =
            Ntfs::new(&mut r).map_err(|e| ntfs_err(e).structure("NTFS boot sector").at(0))?;
        let mut notes = Vec::new();
        if ntfs.size() > dev.size() {
            notes.push(format!(
                "the boot sector says {} bytes but the device has {}: reads past the end fail",
                ntfs.size(),
                dev.size()
            ));
        }
        ntfs.read_upcase_table(&mut r)
            .map_err(|e| ntfs_err(e).structure("$UpCase").inode(10))?;
        let mft_runs = mft_runs(&ntfs, &mut r, &mut notes)?;
        let mut r = DevReader::new(dev.as_ref(), &mft_runs);
        let root = ntfs.root_directory(&mut r).map_err(|e| {
            ntfs_err(e)
                .structure("root directory MFT record")
                .inode(ROOT_RECORD)
        })?;
        if !root.is_directory() {
            return Err(Error::corrupt("the root MFT record is not a directory").inode(ROOT_RECORD));
        }
        let label = match ntfs.volume_name(&mut r) {
            Some(Ok(v)) => v.name().to_string_lossy(),
            Some(Err(e)) => {
                notes.push(format!("$Volume name unreadable: {e}"));
                String::new()
            }
            None => String::new(),
        };
        let info = FsInfo {
            fs_type: "ntfs".into(),
            label,
            uuid: format!("{:016X}", ntfs.serial_number()),
            block_size: ntfs.cluster_size(),
            size: ntfs.size(),
            free: None,
            notes,
        };
        Ok(NtfsFs {
            dev,
            ntfs,
            info,
            notes: Mutex::new(Vec::new()),
            mft_runs,
        })
    }

    fn reader(&self) -> DevReader<'_> {
        DevReader::new(self.dev.as_ref(), &self.mft_runs)
    }

    fn note(&self, msg: String) {
        if let Ok(mut n) = self.notes.lock() {
            if n.len() < MAX_NOTES {
                n.push(msg);
            }
        }
    }

    /// Loads an in-use MFT record.
    fn file<'a>(&'a self, r: &mut DevReader<'_>, rec: u64) -> Result<NtfsFile<'a>> {
        let f = self
            .ntfs
            .file(r, rec)
            .map_err(|e| ntfs_err(e).structure("MFT record").inode(rec))?;
        if !f.flags().contains(NtfsFileFlags::IN_USE) {
            return Err(Error::new(ErrorKind::NotFound, "MFT record is not in use").inode(rec));
        }
        Ok(f)
    }

    fn std_info(&self, f: &NtfsFile<'_>, rec: u64) -> Result<NtfsStandardInformation> {
        f.info()
            .map_err(|e| ntfs_err(e).structure("$STANDARD_INFORMATION").inode(rec))
    }

    /// Walks the attributes of a record (through `$ATTRIBUTE_LIST`), bounded.
    fn facts(&self, r: &mut DevReader<'_>, f: &NtfsFile<'_>, rec: u64) -> Result<RecordFacts> {
        let mut facts = RecordFacts::default();
        let mut iter = f.attributes();
        let mut count = 0usize;
        while let Some(item) = iter.next(r) {
            count += 1;
            if count > MAX_ATTRIBUTES {
                return Err(
                    Error::limit(format!("more than {MAX_ATTRIBUTES} attributes"))
                        .structure("MFT record attributes")
                        .inode(rec),
                );
            }
            let item = item.map_err(|e| ntfs_err(e).structure("attribute").inode(rec))?;
            let a = item
                .to_attribute()
                .map_err(|e| ntfs_err(e).structure("attribute").inode(rec))?;
            facts.attrs += 1;
            let ty = match a.ty() {
                Ok(t) => t,
                Err(_) => continue,
            };
            let name = a
                .name()
                .map_err(|e| ntfs_err(e).structure("attribute name").inode(rec))?;
            match ty {
                NtfsAttributeType::FileName => {
                    if let Ok(fname) =
                        a.structured_value::<_, ntfs::structured_values::NtfsFileName>(r)
                    {
                        if fname.namespace() != NtfsFileNamespace::Dos {
                            facts.names += 1;
                        }
                    }
                }
                NtfsAttributeType::LoggedUtilityStream if name.to_string_lossy() == "$EFS" => {
                    facts.efs_stream = true;
                }
                NtfsAttributeType::ReparsePoint => {
                    let len = a.value_length();
                    if len > reparse::MAX_REPARSE_SIZE as u64 {
                        return Err(Error::limit(format!("reparse data of {len} bytes"))
                            .structure("$REPARSE_POINT")
                            .inode(rec));
                    }
                    let mut buf = vec![0u8; len as usize];
                    let mut v = a
                        .value(r)
                        .map_err(|e| ntfs_err(e).structure("$REPARSE_POINT").inode(rec))?;
                    read_value(&mut v, r, &mut buf)
                        .map_err(|e| e.structure("$REPARSE_POINT").inode(rec))?;
                    facts.reparse = Some(buf);
                }
                NtfsAttributeType::Data => {
                    // Attribute-list pieces of one attribute after the first are merged by
                    // the crate; only the first piece (lowest VCN) carries the length.
                    if name.is_empty() {
                        if facts.data_len.is_none() {
                            facts.data_len = Some(a.value_length());
                            facts.data_encrypted =
                                a.flags().contains(NtfsAttributeFlags::ENCRYPTED);
                            facts.data_alloc = allocated(&a, r);
                        }
                    } else if facts.streams.len() < usize::from(u16::MAX) {
                        let n = name.to_string_lossy();
                        if !facts.streams.iter().any(|(s, _)| *s == n) {
                            facts.streams.push((n, a.value_length()));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(facts)
    }

    /// The type of a record: directory, link (symlink or junction reparse point) or file.
    fn file_type(&self, f: &NtfsFile<'_>, facts: &RecordFacts) -> FileType {
        if let Some(buf) = &facts.reparse {
            if matches!(
                reparse::parse(buf),
                Ok(Reparse::Symlink { .. } | Reparse::MountPoint { .. })
            ) {
                return FileType::Symlink;
            }
        }
        if f.is_directory() {
            FileType::Directory
        } else {
            FileType::Regular
        }
    }

    /// Walks a directory index, calling `each(name, namespace, record)` for every live entry;
    /// stops when `each` returns true.
    fn walk_dir(
        &self,
        r: &mut DevReader<'_>,
        dir: NodeId,
        mut each: impl FnMut(&ntfs::structured_values::NtfsFileName, u64, u16) -> bool,
    ) -> Result<()> {
        let (rec, stream) = split(dir);
        if stream != 0 {
            return Err(
                Error::new(ErrorKind::NotADirectory, "a data stream is not a directory").inode(rec),
            );
        }
        let f = self.file(r, rec)?;
        if !f.is_directory() {
            return Err(Error::new(ErrorKind::NotADirectory, "not a directory").inode(rec));
        }
        let index = f
            .directory_index(r)
            .map_err(|e| ntfs_err(e).structure("$I30 index").inode(rec))?;
        let mut entries = index.entries();
        let mut count = 0usize;
        while let Some(entry) = entries.next(r) {
            count += 1;
            if count > MAX_DIR_ENTRIES {
                return Err(Error::limit(format!(
                    "more than {MAX_DIR_ENTRIES} index entries (or an index loop)"
                ))
                .structure("$I30 index")
                .inode(rec));
            }
            let entry = entry.map_err(|e| ntfs_err(e).structure("$I30 index entry").inode(rec))?;
            let key = match entry.key() {
                Some(Ok(k)) => k,
                Some(Err(e)) => {
                    self.note(format!(
                        "directory {rec}: unreadable index key skipped: {e}"
                    ));
                    continue;
                }
                None => continue,
            };
            let fref = entry.file_reference();
            let child = fref.file_record_number();
            if child == rec || child > RECORD_MASK {
                continue;
            }
            if rec == ROOT_RECORD && child < FIRST_USER_RECORD {
                continue;
            }
            if each(&key, child, fref.sequence_number()) {
                break;
            }
        }
        Ok(())
    }

    /// Whether the index entry's sequence number matches the record (a stale entry does not).
    fn live(&self, r: &mut DevReader<'_>, dir: u64, child: u64, seq: u16) -> bool {
        match self.ntfs.file(r, child) {
            Ok(f) if f.flags().contains(NtfsFileFlags::IN_USE) => {
                if seq == 0 || f.sequence_number() == seq {
                    true
                } else {
                    self.note(format!(
                        "directory {dir}: stale entry for record {child} (sequence {seq}, record has {}) skipped",
                        f.sequence_number()
                    ));
                    false
                }
            }
            Ok(_) => {
                self.note(format!(
                    "directory {dir}: entry for unused record {child} skipped"
                ));
                false
            }
            Err(e) => {
                self.note(format!(
                    "directory {dir}: entry for unreadable record {child} skipped: {e}"
                ));
                false
            }
        }
    }

    /// The `k`-th named `$DATA` attribute (1-based), or the unnamed one for `k == 0`.
    fn data_attr<'n, 'f>(
        &self,
        r: &mut DevReader<'_>,
        f: &'f NtfsFile<'n>,
        rec: u64,
        k: u16,
    ) -> Result<Option<ntfs::NtfsAttributeItem<'n, 'f>>> {
        let mut iter = f.attributes();
        let mut count = 0usize;
        let mut named: Vec<String> = Vec::new();
        while let Some(item) = iter.next(r) {
            count += 1;
            if count > MAX_ATTRIBUTES {
                return Err(
                    Error::limit(format!("more than {MAX_ATTRIBUTES} attributes"))
                        .structure("MFT record attributes")
                        .inode(rec),
                );
            }
            let item = item.map_err(|e| ntfs_err(e).structure("attribute").inode(rec))?;
            let a = item
                .to_attribute()
                .map_err(|e| ntfs_err(e).structure("attribute").inode(rec))?;
            if !matches!(a.ty(), Ok(NtfsAttributeType::Data)) {
                continue;
            }
            let name = a
                .name()
                .map_err(|e| ntfs_err(e).structure("attribute name").inode(rec))?;
            let hit = if k == 0 {
                name.is_empty()
            } else if name.is_empty() {
                false
            } else {
                let n = name.to_string_lossy();
                if named.contains(&n) {
                    false
                } else {
                    named.push(n);
                    named.len() == usize::from(k)
                }
            };
            if hit {
                return Ok(Some(item));
            }
        }
        Ok(None)
    }

    fn read_data(
        &self,
        r: &mut DevReader<'_>,
        a: &NtfsAttribute<'_, '_>,
        rec: u64,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize> {
        if a.flags().contains(NtfsAttributeFlags::ENCRYPTED) {
            return Err(Error::unsupported("the data stream is EFS-encrypted").inode(rec));
        }
        let len = a.value_length();
        if offset >= len || buf.is_empty() {
            return Ok(0);
        }
        let n = usize::try_from((len - offset).min(buf.len() as u64)).unwrap_or(buf.len());
        let buf = &mut buf[..n];
        let mut v = a
            .value(r)
            .map_err(|e| ntfs_err(e).structure("$DATA").inode(rec))?;
        if a.flags().contains(NtfsAttributeFlags::COMPRESSED) {
            if let NtfsAttributeValue::NonResident(nr) = &v {
                let exp = self.compression_unit(a, rec)?;
                let runs = collect_runs(nr.data_runs(), rec)?;
                self.read_compressed(&runs, exp, rec, offset, buf)?;
                return Ok(n);
            }
            if let NtfsAttributeValue::AttributeListNonResident(_) = &v {
                return Err(Error::unsupported(
                    "compressed data stream split over an attribute list",
                )
                .structure("$DATA")
                .inode(rec));
            }
        }
        v.seek(r, SeekFrom::Start(offset))
            .map_err(|e| ntfs_err(e).structure("$DATA").inode(rec))?;
        read_value(&mut v, r, buf).map_err(|e| e.structure("$DATA").inode(rec))?;
        Ok(n)
    }

    /// The compression-unit exponent at byte 0x22 of the non-resident attribute header.
    fn compression_unit(&self, a: &NtfsAttribute<'_, '_>, rec: u64) -> Result<u32> {
        let pos = a
            .position()
            .value()
            .ok_or_else(|| Error::corrupt("attribute has no position").inode(rec))?
            .get();
        let field = pos + 0x22;
        let sector = u64::from(self.ntfs.sector_size().max(512));
        // The last two bytes of every sector of a record hold the update sequence number on
        // disk (the real bytes are in the fixup array): NTFS always uses 16-cluster units.
        if field % sector == sector - 2 {
            return Ok(4);
        }
        let mut b = [0u8; 1];
        self.dev.read_exact_at(field, &mut b)?;
        let exp = u32::from(b[0]);
        let unit = u64::from(self.ntfs.cluster_size()) << exp.min(31);
        if exp == 0 || exp > 8 || unit > MAX_UNIT_BYTES {
            return Err(Error::corrupt(format!(
                "compression unit of 2^{exp} clusters of {} bytes",
                self.ntfs.cluster_size()
            ))
            .structure("compressed $DATA attribute header")
            .at(field)
            .inode(rec));
        }
        Ok(exp)
    }

    fn read_compressed(
        &self,
        runs: &[Run],
        exp: u32,
        rec: u64,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<()> {
        let unit = u64::from(self.ntfs.cluster_size()) << exp;
        let unit_len = unit as usize;
        let mut out = vec![0u8; unit_len];
        let mut input = Vec::with_capacity(unit_len);
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let u = pos / unit;
            let ustart = u * unit;
            let in_unit = (pos - ustart) as usize;
            let take = (unit_len - in_unit).min(buf.len() - done);
            // Gather the unit's clusters: allocated pieces (device offset, length) in order.
            input.clear();
            let mut allocated = 0u64;
            let mut pieces: Vec<(u64, u64)> = Vec::new();
            for run in runs {
                let (rs, re) = (run.start, run.start + run.len);
                let (s, e) = (rs.max(ustart), re.min(ustart + unit));
                if s >= e {
                    continue;
                }
                if let Some(dev_off) = run.dev {
                    pieces.push((dev_off + (s - rs), e - s));
                    allocated += e - s;
                }
            }
            let dst = &mut buf[done..done + take];
            if allocated == 0 {
                dst.fill(0);
            } else if allocated >= unit {
                // Stored uncompressed.
                let mut at = 0u64;
                for (dev_off, len) in &pieces {
                    let (ps, pe) = (at, at + len);
                    let (s, e) = (ps.max(in_unit as u64), pe.min((in_unit + take) as u64));
                    if s < e {
                        let d = (s - in_unit as u64) as usize;
                        self.dev
                            .read_exact_at(dev_off + (s - ps), &mut dst[d..d + (e - s) as usize])?;
                    }
                    at = pe;
                }
            } else {
                for (dev_off, len) in &pieces {
                    let old = input.len();
                    input.resize(old + *len as usize, 0);
                    self.dev.read_exact_at(*dev_off, &mut input[old..])?;
                }
                let first = pieces.first().map(|p| p.0).unwrap_or(0);
                lznt1::decompress_unit(&input, &mut out).map_err(|e| {
                    Error::corrupt(e.to_string())
                        .structure("LZNT1 compression unit")
                        .at(first)
                        .inode(rec)
                })?;
                dst.copy_from_slice(&out[in_unit..in_unit + take]);
            }
            done += take;
        }
        Ok(())
    }

    fn check_readable(
        &self,
        f: &NtfsFile<'_>,
        facts: &RecordFacts,
        rec: u64,
        stream: u16,
    ) -> Result<()> {
        let si = self.std_info(f, rec)?;
        if si
            .file_attributes()
            .contains(NtfsFileAttributeFlags::ENCRYPTED)
            || facts.efs_stream
            || facts.data_encrypted
        {
            return Err(Error::unsupported(
                "the file is EFS-encrypted; its contents cannot be read without the user's key",
            )
            .inode(rec));
        }
        if stream == 0 {
            if let Some(buf) = &facts.reparse {
                match reparse::parse(buf) {
                    Ok(Reparse::Other { tag }) => {
                        return Err(Error::unsupported(format!(
                            "reparse point with tag {tag:#010x} ({}): its data is not in the $DATA stream",
                            reparse::tag_name(tag)
                        ))
                        .structure("$REPARSE_POINT")
                        .inode(rec));
                    }
                    Ok(_) => {
                        return Err(Error::new(
                            ErrorKind::InvalidInput,
                            "a symbolic link or junction has no contents (read its target)",
                        )
                        .inode(rec))
                    }
                    Err(e) => {
                        return Err(Error::corrupt(e.to_string())
                            .structure("$REPARSE_POINT")
                            .inode(rec))
                    }
                }
            }
        }
        Ok(())
    }

    fn find_in_dir(&self, r: &mut DevReader<'_>, dir: NodeId, name: &str) -> Result<Option<u64>> {
        let mut found: Option<(u64, u16)> = None;
        let (dir_rec, _) = split(dir);
        let mut candidates: Vec<(u64, u16)> = Vec::new();
        self.walk_dir(r, dir, |key, child, seq| {
            if key.name().upcase_cmp(&self.ntfs, &name) == std::cmp::Ordering::Equal {
                candidates.push((child, seq));
            }
            false
        })?;
        for (child, seq) in candidates {
            if self.live(r, dir_rec, child, seq) {
                found = Some((child, seq));
                break;
            }
        }
        Ok(found.map(|f| f.0))
    }
}

/// One data run in bytes of the attribute (`start`, `len`) and on the device (`dev`, `None` =
/// sparse).
struct Run {
    start: u64,
    len: u64,
    dev: Option<u64>,
}

fn collect_runs(runs: ntfs::attribute_value::NtfsDataRuns<'_, '_>, rec: u64) -> Result<Vec<Run>> {
    let mut out = Vec::new();
    let mut start = 0u64;
    for run in runs {
        if out.len() >= MAX_RUNS {
            return Err(Error::limit(format!("more than {MAX_RUNS} data runs"))
                .structure("data runs")
                .inode(rec));
        }
        let run = run.map_err(|e| ntfs_err(e).structure("data runs").inode(rec))?;
        let len = run.allocated_size();
        out.push(Run {
            start,
            len,
            dev: run.data_position().value().map(|p| p.get()),
        });
        start = start.checked_add(len).ok_or_else(|| {
            Error::corrupt("data runs overflow")
                .structure("data runs")
                .inode(rec)
        })?;
    }
    Ok(out)
}

/// The runs of `$MFT`'s unnamed `$DATA` attribute in record 0 (for [`DevReader`]'s stitching
/// of records split between runs).
fn mft_runs(
    ntfs: &Ntfs,
    r: &mut DevReader<'_>,
    notes: &mut Vec<String>,
) -> Result<Vec<(u64, u64)>> {
    let mft = ntfs
        .file(r, 0)
        .map_err(|e| ntfs_err(e).structure("$MFT record").inode(0))?;
    let item = mft
        .data(r, "")
        .ok_or_else(|| Error::corrupt("$MFT has no $DATA attribute").inode(0))?
        .map_err(|e| ntfs_err(e).structure("$MFT $DATA").inode(0))?;
    let a = item
        .to_attribute()
        .map_err(|e| ntfs_err(e).structure("$MFT $DATA").inode(0))?;
    let v = a
        .value(r)
        .map_err(|e| ntfs_err(e).structure("$MFT $DATA").inode(0))?;
    let mut out = Vec::new();
    match v {
        NtfsAttributeValue::NonResident(nr) => {
            for run in collect_runs(nr.data_runs(), 0)? {
                if let Some(dev) = run.dev {
                    out.push((dev, run.len));
                }
            }
        }
        NtfsAttributeValue::AttributeListNonResident(_) => notes.push(
            "$MFT's $DATA continues through an attribute list: records past its first piece cannot be read"
                .into(),
        ),
        NtfsAttributeValue::Resident(_) => {
            return Err(Error::corrupt("$MFT's $DATA is resident").inode(0));
        }
    }
    Ok(out)
}

/// Reads exactly `buf.len()` bytes from an attribute value.
fn read_value(
    v: &mut NtfsAttributeValue<'_, '_>,
    r: &mut DevReader<'_>,
    buf: &mut [u8],
) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = v.read(r, &mut buf[done..]).map_err(ntfs_err)?;
        if n == 0 {
            return Err(Error::corrupt("attribute value ends early"));
        }
        done += n;
    }
    Ok(())
}

/// Bytes allocated on disk to a non-resident attribute (sparse runs excluded).
fn allocated(a: &NtfsAttribute<'_, '_>, r: &mut DevReader<'_>) -> u64 {
    match a.value(r) {
        Ok(NtfsAttributeValue::NonResident(nr)) => nr
            .data_runs()
            .take(MAX_RUNS)
            .filter_map(|run| run.ok())
            .filter(|run| run.data_position().value().is_some())
            .map(|run| run.allocated_size())
            .fold(0u64, u64::saturating_add),
        _ => 0,
    }
}

impl NtfsFs {
    fn metadata_inner(&self, node: NodeId) -> Result<Metadata> {
        let (rec, stream) = split(node);
        let mut r = self.reader();
        let f = self.file(&mut r, rec)?;
        let si = self.std_info(&f, rec)?;
        let facts = self.facts(&mut r, &f, rec)?;
        let mut file_type = self.file_type(&f, &facts);
        let mut size = 0;
        let mut alloc = 0;
        if stream != 0 {
            let (_, len) = facts.streams.get(usize::from(stream) - 1).ok_or_else(|| {
                Error::new(ErrorKind::NotFound, format!("no data stream #{stream}")).inode(rec)
            })?;
            file_type = FileType::Regular;
            size = *len;
        } else {
            match file_type {
                FileType::Regular => {
                    size = facts.data_len.unwrap_or(0);
                    alloc = facts.data_alloc;
                }
                FileType::Symlink => {
                    size = self
                        .read_link_inner(node)
                        .map(|t| t.len() as u64)
                        .unwrap_or(0);
                }
                _ => {}
            }
        }
        let attrs = si.file_attributes();
        let mode = if file_type == FileType::Regular
            && attrs.contains(NtfsFileAttributeFlags::READ_ONLY)
        {
            0o555
        } else {
            0o777
        };
        Ok(Metadata {
            file_type,
            size,
            mode,
            uid: 0,
            gid: 0,
            nlink: facts.names.max(1),
            inode: rec,
            atime: ntfs_time(si.access_time()),
            mtime: ntfs_time(si.modification_time()),
            ctime: ntfs_time(si.mft_record_modification_time()),
            crtime: ntfs_time(si.creation_time()),
            rdev: None,
            allocated: alloc,
        })
    }

    fn read_dir_inner(&self, dir: NodeId) -> Result<Vec<DirEntry>> {
        let mut r = self.reader();
        let (dir_rec, _) = split(dir);
        let mut raw: Vec<(Vec<u8>, u64, u16, FileType)> = Vec::new();
        self.walk_dir(&mut r, dir, |key, child, seq| {
            if key.namespace() == NtfsFileNamespace::Dos {
                return false;
            }
            let attrs = key.file_attributes();
            let ft = if attrs.contains(NtfsFileAttributeFlags::REPARSE_POINT) {
                FileType::Unknown
            } else if key.is_directory() {
                FileType::Directory
            } else {
                FileType::Regular
            };
            raw.push((key.name().to_string_lossy().into_bytes(), child, seq, ft));
            false
        })?;
        let mut out = Vec::with_capacity(raw.len());
        for (name, child, seq, file_type) in raw {
            if self.live(&mut r, dir_rec, child, seq) {
                out.push(DirEntry {
                    name,
                    node: NodeId(child),
                    file_type,
                });
            }
        }
        Ok(out)
    }

    fn lookup_inner(&self, dir: NodeId, name: &[u8]) -> Result<Option<NodeId>> {
        let Ok(name) = std::str::from_utf8(name) else {
            return Ok(None);
        };
        let mut r = self.reader();
        if let Some(rec) = self.find_in_dir(&mut r, dir, name)? {
            return Ok(Some(NodeId(rec)));
        }
        let Some((base, stream)) = name.split_once(':') else {
            return Ok(None);
        };
        let stream = stream.strip_suffix(":$DATA").unwrap_or(stream);
        let Some(rec) = self.find_in_dir(&mut r, dir, base)? else {
            return Ok(None);
        };
        if stream.is_empty() {
            return Ok(Some(NodeId(rec)));
        }
        let f = self.file(&mut r, rec)?;
        let facts = self.facts(&mut r, &f, rec)?;
        for (i, (s, _)) in facts.streams.iter().enumerate() {
            let s16: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
            let s_le = nt_string_eq(&self.ntfs, &s16, stream);
            if s_le {
                return Ok(Some(NodeId(rec | ((i as u64 + 1) << STREAM_SHIFT))));
            }
        }
        Ok(None)
    }

    fn read_at_inner(&self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let (rec, stream) = split(node);
        let mut r = self.reader();
        let f = self.file(&mut r, rec)?;
        if stream == 0 && f.is_directory() {
            let facts = self.facts(&mut r, &f, rec)?;
            if self.file_type(&f, &facts) == FileType::Directory {
                return Err(Error::new(ErrorKind::IsADirectory, "is a directory").inode(rec));
            }
        }
        let facts = self.facts(&mut r, &f, rec)?;
        self.check_readable(&f, &facts, rec, stream)?;
        let Some(item) = self.data_attr(&mut r, &f, rec, stream)? else {
            if stream == 0 {
                return Ok(0);
            }
            return Err(
                Error::new(ErrorKind::NotFound, format!("no data stream #{stream}")).inode(rec),
            );
        };
        let a = item
            .to_attribute()
            .map_err(|e| ntfs_err(e).structure("$DATA").inode(rec))?;
        self.read_data(&mut r, &a, rec, offset, buf)
    }

    fn read_link_inner(&self, node: NodeId) -> Result<Vec<u8>> {
        let (rec, _) = split(node);
        let mut r = self.reader();
        let f = self.file(&mut r, rec)?;
        let facts = self.facts(&mut r, &f, rec)?;
        let Some(buf) = &facts.reparse else {
            return Err(Error::new(ErrorKind::InvalidInput, "not a symbolic link").inode(rec));
        };
        let rp = reparse::parse(buf).map_err(|e| {
            Error::corrupt(e.to_string())
                .structure("$REPARSE_POINT")
                .inode(rec)
        })?;
        match rp.link_target() {
            Ok(t) => Ok(t.into_bytes()),
            Err(e) => Err(Error::unsupported(e.message)
                .structure("$REPARSE_POINT")
                .inode(rec)),
        }
    }

    fn streams_inner(&self, node: NodeId) -> Result<Vec<StreamInfo>> {
        let (rec, stream) = split(node);
        if stream != 0 {
            return Ok(Vec::new());
        }
        let mut r = self.reader();
        let f = self.file(&mut r, rec)?;
        let facts = self.facts(&mut r, &f, rec)?;
        Ok(facts
            .streams
            .into_iter()
            .map(|(name, size)| StreamInfo {
                name: name.into_bytes(),
                size,
            })
            .collect())
    }
}

impl Filesystem for NtfsFs {
    fn info(&self) -> FsInfo {
        let mut info = self.info.clone();
        if let Ok(n) = self.notes.lock() {
            info.notes.extend(n.iter().cloned());
        }
        info
    }

    fn root(&self) -> NodeId {
        NodeId(ROOT_RECORD)
    }

    fn metadata(&self, node: NodeId) -> Result<Metadata> {
        guard(node, || self.metadata_inner(node))
    }

    fn read_dir(&self, dir: NodeId) -> Result<Vec<DirEntry>> {
        guard(dir, || self.read_dir_inner(dir))
    }

    fn lookup(&self, dir: NodeId, name: &[u8]) -> Result<Option<NodeId>> {
        guard(dir, || self.lookup_inner(dir, name))
    }

    fn read_at(&self, node: NodeId, offset: u64, buf: &mut [u8]) -> Result<usize> {
        guard(node, || self.read_at_inner(node, offset, buf))
    }

    fn read_link(&self, node: NodeId) -> Result<Vec<u8>> {
        guard(node, || self.read_link_inner(node))
    }

    fn xattrs(&self, node: NodeId) -> Result<Vec<Xattr>> {
        let _ = node;
        Ok(Vec::new())
    }

    fn streams(&self, node: NodeId) -> Result<Vec<StreamInfo>> {
        guard(node, || self.streams_inner(node))
    }
}

/// Runs one operation, turning a panic inside the `ntfs` crate into a corrupt-filesystem
/// error for that node.
///
/// Last resort, measured: the crate (0.4.0) panics on some bit-flipped index records (a
/// slice index out of range in `index_entry.rs` when an entry claims more bytes than its
/// record has). Our own code does not panic on bad input; the crate's state used here is
/// read-only (`&Ntfs`), and the notes mutex is only ever locked with poisoning tolerated, so
/// nothing is left half-updated. The default panic hook still prints the crate's message.
fn guard<T>(node: NodeId, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(
            Error::corrupt("the ntfs crate panicked on this record's metadata (caught)")
                .inode(node.0 & RECORD_MASK),
        ),
    }
}

/// Case-insensitive equality of a UTF-16LE name and a `&str` through `$UpCase`.
fn nt_string_eq(ntfs: &Ntfs, utf16le: &[u8], other: &str) -> bool {
    let s = nt_string::u16strle::U16StrLe(utf16le);
    s.upcase_cmp(ntfs, &other) == std::cmp::Ordering::Equal
}
