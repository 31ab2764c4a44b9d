//! The device model [`crate::Guestfs::launch`] builds once and every later call shares:
//! disks, partitions (MBR, GPT, BSD), LVM2 logical volumes, what the probe found on each,
//! the filesystems opened so far (each opened once), and the one mount-tree builder used by
//! inspection, the API and the CLI.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use crate::{block::BlockDevice, formats::ImageInfo, fs, inspect, part, Error, Result};

/// A device: a whole disk, one of its partitions, or a logical volume.
#[derive(Debug, Clone)]
pub struct DeviceEntry {
    /// `/dev/sda`, `/dev/sda1`, `/dev/VG/LV`.
    pub name: String,
    /// Its bytes.
    pub device: Arc<dyn BlockDevice>,
    /// The partition it is, if any.
    pub partition: Option<part::Partition>,
    /// The disk's identifier: MBR signature (8 hex digits) or GPT disk GUID.
    pub disk_id: Option<String>,
    /// An LVM2 logical volume (`/dev/VG/LV`) rather than a disk or partition.
    pub logical_volume: bool,
    /// Index of the drive it is on (`None` for a logical volume).
    pub disk: Option<usize>,
}

/// One filesystem (or recognised container) on one device, as `guestctl filesystems` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FilesystemEntry {
    /// libguestfs-style device name: `/dev/sda1`, or `/dev/sda` for a whole-disk filesystem.
    pub device: String,
    /// `ext4`, `vfat`, `ntfs`, `swap`, ... (`unknown` when nothing was recognised).
    #[serde(rename = "type")]
    pub fs_type: String,
    /// Volume label ("" when none).
    pub label: String,
    /// UUID or serial ("" when none).
    pub uuid: String,
    /// Size of the device in bytes.
    pub size: u64,
    /// Partition type (MBR byte as `0x83`, or GPT type GUID).
    pub part_type: Option<String>,
    /// GPT partition name.
    pub part_name: Option<String>,
    /// Whether guestctl reads the files inside.
    pub readable: bool,
}

/// A device found and not opened: an LVM2 logical volume of a kind guestctl does not map
/// (thin, raid, snapshot) or whose physical volumes are missing, or a physical volume whose
/// LVM metadata cannot be read.
#[derive(Debug, Clone)]
pub(crate) struct Unopened {
    pub(crate) name: String,
    /// The logical volume's size (`None` for a physical volume, listed with its own size).
    pub(crate) size: Option<u64>,
    pub(crate) unreadable: inspect::Unreadable,
}

/// One launched drive.
#[derive(Debug)]
pub(crate) struct Disk {
    pub(crate) device: Arc<dyn BlockDevice>,
    /// What the image header said (`None` for a drive added as a device).
    pub(crate) info: Option<ImageInfo>,
    /// Partition table scheme: `msdos`, `gpt`, `bsd` (libguestfs's names); `None`: no table.
    pub(crate) scheme: Option<&'static str>,
}

/// Everything `launch` found, built once.
#[derive(Debug)]
pub(crate) struct Model {
    pub(crate) disks: Vec<Disk>,
    pub(crate) devices: Vec<DeviceEntry>,
    pub(crate) unopened: Vec<Unopened>,
    /// The probe of every device that can carry a filesystem (device order).
    pub(crate) entries: Vec<FilesystemEntry>,
    /// Volume groups and their logical volumes (`/dev/VG/LV`, visible ones).
    pub(crate) vgs: Vec<(String, Vec<String>)>,
    /// Devices carrying an LVM2 physical volume.
    pub(crate) pvs: Vec<String>,
    /// What scanning noted (backup GPT used, LVM problems, ...).
    pub(crate) notes: Vec<String>,
    /// Filesystems opened so far, by device and options: each is opened once.
    opened: Mutex<HashMap<(String, bool), Arc<dyn fs::Filesystem>>>,
    /// The inspector's candidates (filesystems opened), built on first use.
    candidates: OnceLock<Vec<inspect::Candidate>>,
    /// Inspection without and with applications, on first use.
    pub(crate) oses: OnceLock<Vec<inspect::OsInfo>>,
    pub(crate) oses_apps: OnceLock<Vec<inspect::OsInfo>>,
}

fn scheme_name(s: part::Scheme) -> &'static str {
    match s {
        part::Scheme::Mbr => "msdos",
        part::Scheme::Gpt => "gpt",
        part::Scheme::Bsd => "bsd",
    }
}

impl Model {
    /// Scans every disk's partition table once, assembles LVM, probes every device once.
    pub(crate) fn build(
        drives: Vec<(PathBuf, Arc<dyn BlockDevice>, Option<ImageInfo>)>,
    ) -> Result<Model> {
        let mut notes = Vec::new();
        let mut devices = Vec::new();
        let mut disks = Vec::with_capacity(drives.len());
        for (i, (path, disk, info)) in drives.into_iter().enumerate() {
            let name = part::disk_name(i);
            let table = part::scan(disk.as_ref())
                .map_err(|e| Error::from(e.path(path.clone())).with_device(name.clone()))?;
            notes.extend(table.notes.iter().map(|n| format!("{name}: {n}")));
            devices.push(DeviceEntry {
                name: name.clone(),
                device: disk.clone(),
                partition: None,
                disk_id: table.disk_id.clone(),
                logical_volume: false,
                disk: Some(i),
            });
            for p in table.partitions.iter().filter(|p| !p.extended) {
                match part::open_partition(disk.clone(), p) {
                    Ok(slice) => devices.push(DeviceEntry {
                        name: part::partition_name(i, p.number),
                        device: Arc::new(slice),
                        partition: Some(p.clone()),
                        disk_id: table.disk_id.clone(),
                        logical_volume: false,
                        disk: Some(i),
                    }),
                    Err(e) => notes.push(format!("{name}{}: {e}", p.number)),
                }
            }
            disks.push(Disk {
                device: disk,
                info,
                scheme: table.scheme.map(scheme_name),
            });
        }
        let mut model = Model {
            disks,
            devices,
            unopened: Vec::new(),
            entries: Vec::new(),
            vgs: Vec::new(),
            pvs: Vec::new(),
            notes,
            opened: Mutex::new(HashMap::new()),
            candidates: OnceLock::new(),
            oses: OnceLock::new(),
            oses_apps: OnceLock::new(),
        };
        model.add_logical_volumes();
        model.entries = filesystems_of(&model.devices);
        model.pvs = model
            .entries
            .iter()
            .filter(|e| e.fs_type == "LVM2_member")
            .map(|e| e.device.clone())
            .collect();
        Ok(model)
    }

    /// Appends the LVM2 logical volumes found on partitions (and whole disks without a
    /// table) as `/dev/VG/LV`, like libguestfs. What cannot be opened (thin, raid, snapshot
    /// LVs, missing PVs, unreadable PV metadata) goes to the notes and to `unopened`.
    fn add_logical_volumes(&mut self) {
        let with_table: std::collections::HashSet<String> = self
            .devices
            .iter()
            .filter(|d| d.partition.is_some())
            .map(|d| d.name.trim_end_matches(char::is_numeric).to_string())
            .collect();
        let pvs: Vec<(String, Arc<dyn BlockDevice>)> = self
            .devices
            .iter()
            .filter(|d| d.partition.is_some() || !with_table.contains(&d.name))
            .map(|d| (d.name.clone(), d.device.clone()))
            .collect();
        let report = match part::lvm::scan_report(&pvs) {
            Ok(r) => r,
            Err(e) => {
                self.notes.push(format!("LVM: {e}"));
                return;
            }
        };
        for (dev, e) in report.problems {
            self.notes.push(format!("{dev}: LVM: {e}"));
            self.unopened.push(Unopened {
                name: dev,
                size: None,
                unreadable: inspect::Unreadable {
                    what: fs::probe::describe("LVM2_member"),
                    why: format!("its LVM metadata cannot be read: {e}"),
                },
            });
        }
        for vg in report.groups {
            self.notes
                .extend(vg.notes.iter().map(|n| format!("LVM {}: {n}", vg.name())));
            let mut lvs = Vec::new();
            for lv in vg.lvs.iter().filter(|l| l.visible()) {
                let name = format!("/dev/{}/{}", vg.name(), lv.name());
                lvs.push(name.clone());
                match vg.open_lv(lv.name()) {
                    Ok(device) => self.devices.push(DeviceEntry {
                        name,
                        device,
                        partition: None,
                        disk_id: None,
                        logical_volume: true,
                        disk: None,
                    }),
                    Err(e) => {
                        self.notes.push(format!("{name}: {e}"));
                        self.unopened.push(Unopened {
                            name,
                            size: Some(lv.size),
                            unreadable: inspect::Unreadable {
                                what: "LVM2 logical volume".into(),
                                why: format!("guestctl cannot open it: {e}"),
                            },
                        });
                    }
                }
            }
            self.vgs.push((vg.name().to_string(), lvs));
        }
    }

    /// The device named `name` (`/dev/sda1`, `/dev/VG/LV`; `/dev/hda1` and `/dev/vda1` are
    /// accepted for `/dev/sda1`, as libguestfs does).
    pub(crate) fn device(&self, name: &str) -> Result<&DeviceEntry> {
        let canon = canonical_device_name(name);
        self.devices
            .iter()
            .find(|d| d.name == canon)
            .ok_or_else(|| Error::not_found("no such device").with_device(name))
    }

    /// The probe of the device named `name`.
    pub(crate) fn entry(&self, name: &str) -> Option<&FilesystemEntry> {
        let canon = canonical_device_name(name);
        self.entries.iter().find(|e| e.device == canon)
    }

    /// The filesystem on `device`, opened once per (device, journal replay) and shared.
    pub(crate) fn open_fs(
        &self,
        device: &str,
        replay: bool,
    ) -> std::result::Result<Arc<dyn fs::Filesystem>, fs::Error> {
        let d = self
            .device(device)
            .map_err(|_| fs::Error::new(fs::ErrorKind::NotFound, format!("no device {device}")))?;
        let key = (d.name.clone(), replay);
        if let Ok(cache) = self.opened.lock() {
            if let Some(f) = cache.get(&key) {
                return Ok(f.clone());
            }
        }
        let opts = fs::OpenOptions::default().replay_journal(replay);
        let name = &d.name;
        let f = fs::open(d.device.clone(), &opts).map_err(|e| {
            if e.kind() == fs::ErrorKind::Unsupported && e.structure_name().is_none() {
                fs::Error::unsupported(format!("{name}: {}", e.message()))
            } else {
                e
            }
        })?;
        if let Ok(mut cache) = self.opened.lock() {
            cache.insert(key, f.clone());
        }
        Ok(f)
    }

    /// The inspector's candidates, built (filesystems opened) once.
    pub(crate) fn candidates(&self) -> &[inspect::Candidate] {
        self.candidates.get_or_init(|| self.build_candidates())
    }

    /// Inspection results, computed once (with applications when `apps`).
    pub(crate) fn oses(&self, apps: bool) -> &[inspect::OsInfo] {
        let cell = if apps { &self.oses_apps } else { &self.oses };
        cell.get_or_init(|| {
            inspect::inspect(
                self.candidates(),
                &inspect::InspectOptions { applications: apps },
            )
        })
    }

    /// One candidate per entry (same order), then one per unopened device not among them.
    fn build_candidates(&self) -> Vec<inspect::Candidate> {
        let mut out = Vec::with_capacity(self.entries.len() + self.unopened.len());
        for f in &self.entries {
            let dev = self.devices.iter().find(|d| d.name == f.device);
            let (part_uuid, part_label) =
                match dev.and_then(|d| d.partition.as_ref().map(|p| (d, p))) {
                    Some((d, p)) => match (&p.part_guid, &d.disk_id) {
                        (Some(g), _) => (g.clone(), p.name.clone().unwrap_or_default()),
                        (None, Some(id)) => (
                            format!("{}-{:02}", id.to_ascii_lowercase(), p.number),
                            String::new(),
                        ),
                        (None, None) => (String::new(), String::new()),
                    },
                    None => (String::new(), String::new()),
                };
            let unreadable = |why: String| inspect::Unreadable {
                what: fs::probe::describe(&f.fs_type),
                why,
            };
            let (fs, unreadable) = match dev {
                Some(d) if f.readable => match self.open_fs(&d.name, true) {
                    Ok(fs) => (Some(fs), None),
                    Err(e) => (None, Some(unreadable(format!("cannot be opened: {e}")))),
                },
                _ if fs::probe::hides_files(&f.fs_type, f.readable) && f.fs_type != "unknown" => {
                    (None, Some(unreadable("guestctl cannot read it".into())))
                }
                _ => (None, None),
            };
            let unreadable = unreadable.or_else(|| {
                self.unopened
                    .iter()
                    .find(|u| u.name == f.device)
                    .map(|u| u.unreadable.clone())
            });
            out.push(inspect::Candidate {
                device: f.device.clone(),
                fs,
                fs_type: f.fs_type.clone(),
                label: f.label.clone(),
                uuid: f.uuid.clone(),
                part_uuid,
                part_label,
                disk_id: dev
                    .and_then(|d| d.disk_id.clone())
                    .unwrap_or_default()
                    .to_ascii_lowercase(),
                part_start: dev.and_then(|d| d.partition.as_ref().map(|p| p.start)),
                bsd_partition: dev
                    .and_then(|d| d.partition.as_ref())
                    .filter(|p| p.bsd_fstype.is_some())
                    .and_then(|p| p.name.clone())
                    .unwrap_or_default(),
                unreadable,
            });
        }
        for u in self.unopened_alone() {
            out.push(inspect::Candidate {
                device: u.name.clone(),
                fs_type: "unknown".into(),
                unreadable: Some(u.unreadable.clone()),
                ..inspect::Candidate::default()
            });
        }
        out
    }

    /// The unopened devices that are not among the probed entries (logical volumes).
    pub(crate) fn unopened_alone(&self) -> impl Iterator<Item = &Unopened> {
        self.unopened
            .iter()
            .filter(|u| !self.entries.iter().any(|f| f.device == u.name))
    }

    /// Each unreadable device with what it is and why.
    pub(crate) fn unreadable(&self) -> Vec<(String, inspect::Unreadable)> {
        self.candidates()
            .iter()
            .filter_map(|c| c.unreadable.clone().map(|u| (c.device.clone(), u)))
            .collect()
    }
}

/// `/dev/hda1`, `/dev/vda1`, `/dev/xvda1` → `/dev/sda1` (libguestfs accepts them all).
pub(crate) fn canonical_device_name(name: &str) -> String {
    for prefix in ["/dev/hd", "/dev/vd", "/dev/xvd"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            if rest.starts_with(|c: char| c.is_ascii_lowercase()) {
                return format!("/dev/sd{rest}");
            }
        }
    }
    name.to_string()
}

/// The filesystems on `devices` (whole disks only when they have no partition table).
fn filesystems_of(devices: &[DeviceEntry]) -> Vec<FilesystemEntry> {
    let partitioned: std::collections::HashSet<String> = devices
        .iter()
        .filter_map(|d| {
            d.partition
                .as_ref()
                .map(|_| d.name.trim_end_matches(char::is_numeric).to_string())
        })
        .collect();
    let mut out = Vec::new();
    for d in devices {
        if d.partition.is_none() && partitioned.contains(&d.name) {
            continue;
        }
        let probe = fs::probe::probe(d.device.as_ref());
        if d.partition.is_none() && !d.logical_volume && probe.is_none() {
            continue;
        }
        let (fs_type, label, uuid, readable) = match probe {
            Some(p) => (p.fs_type, p.label, p.uuid, p.readable),
            None => ("unknown".into(), String::new(), String::new(), false),
        };
        out.push(FilesystemEntry {
            device: d.name.clone(),
            fs_type,
            label,
            uuid,
            size: d.device.size(),
            part_type: d.partition.as_ref().map(part_type_string),
            part_name: d.partition.as_ref().and_then(|p| p.name.clone()),
            readable,
        });
    }
    out
}

/// A partition's type as `guestctl filesystems` prints it: GPT type GUID, `0x83`, `bsd:7`.
pub(crate) fn part_type_string(p: &part::Partition) -> String {
    match (&p.type_guid, p.mbr_type, p.bsd_fstype) {
        (Some(g), _, _) => g.clone(),
        (None, Some(t), _) => format!("0x{t:02x}"),
        (None, None, Some(t)) => format!("bsd:{t}"),
        _ => String::new(),
    }
}

/// The one mount-tree builder: `root` with each `(mountpoint, device, filesystem)` of
/// `others` mounted on it, parents first whatever the order given (a mountpoint must be a
/// directory of the tree by then, like `mount(8)`). A mount that fails is an error when
/// `strict`, otherwise it goes to `notes` and is left out.
pub(crate) fn build_tree(
    root: Arc<dyn fs::Filesystem>,
    others: &[(String, String, Arc<dyn fs::Filesystem>)],
    strict: bool,
    notes: &mut Vec<String>,
) -> std::result::Result<Arc<dyn fs::Filesystem>, fs::Error> {
    if others.is_empty() {
        return Ok(root);
    }
    let mut sorted: Vec<&(String, String, Arc<dyn fs::Filesystem>)> = others.iter().collect();
    sorted.sort_by_key(|(mp, _, _)| mount_depth(mp));
    let mut tree = fs::mount::MountTree::new(root);
    for (mp, dev, f) in sorted {
        if let Err(e) = tree.mount(mp, f.clone()) {
            if strict {
                return Err(
                    fs::Error::new(e.kind(), format!("cannot mount {dev} on {mp}")).with_source(e),
                );
            }
            notes.push(format!("cannot mount {dev} on {mp}: {e}"));
        }
    }
    Ok(Arc::new(tree))
}

/// How deep a mountpoint is: `/` 0, `/boot` 1, `/boot/efi` 2.
pub(crate) fn mount_depth(mp: &str) -> usize {
    mp.split('/').filter(|c| !c.is_empty()).count()
}

/// `os`'s tree: its root with the fstab filesystems guestctl reads mounted on it (parents
/// first); what cannot be mounted goes to `notes`. `None` when the root is not opened.
pub(crate) fn tree_of(
    os: &inspect::OsInfo,
    candidates: &[inspect::Candidate],
    notes: &mut Vec<String>,
) -> Option<Arc<dyn fs::Filesystem>> {
    let find = |dev: &str| candidates.iter().find(|c| c.device == dev);
    let root = find(&os.root).and_then(|c| c.fs.clone())?;
    let mut others = Vec::new();
    for (mp, dev) in os.mountpoints.iter().filter(|(mp, _)| mp.as_str() != "/") {
        match find(dev).map(|c| (&c.fs, &c.unreadable)) {
            Some((Some(f), _)) => others.push((mp.clone(), dev.clone(), f.clone())),
            Some((None, Some(u))) => notes.push(format!("{dev} on {mp}: {u}, left out")),
            _ => notes.push(format!("{dev} on {mp}: not readable, left out")),
        }
    }
    build_tree(root, &others, false, notes).ok()
}
