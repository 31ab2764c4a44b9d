//! Directory entries: 8.3 entries, VFAT long-name entries (checksum checked) and DOS times.
//! I/O-free: [`parse_dir`] turns the bytes of a whole directory into entries.

use crate::Timestamp;

/// Attribute bits of a directory entry.
pub(crate) mod attr {
    pub const READ_ONLY: u8 = 0x01;
    pub const VOLUME_ID: u8 = 0x08;
    pub const DIRECTORY: u8 = 0x10;
    pub const LONG_NAME: u8 = 0x0F;
}

/// A short (8.3) directory entry, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEntry {
    pub name: [u8; 11],
    pub attr: u8,
    pub nt_flags: u8,
    pub crt_cs: u8,
    pub crt_time: u16,
    pub crt_date: u16,
    pub acc_date: u16,
    pub cluster: u32,
    pub wrt_time: u16,
    pub wrt_date: u16,
    pub size: u32,
}

impl RawEntry {
    /// Decodes one 32-byte entry.
    pub fn parse(b: &[u8; 32], fat32: bool) -> RawEntry {
        let le16 = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let mut name = [0u8; 11];
        name.copy_from_slice(&b[0..11]);
        let hi = if fat32 { u32::from(le16(20)) } else { 0 };
        RawEntry {
            name,
            attr: b[11],
            nt_flags: b[12],
            crt_cs: b[13],
            crt_time: le16(14),
            crt_date: le16(16),
            acc_date: le16(18),
            cluster: (hi << 16) | u32::from(le16(26)),
            wrt_time: le16(22),
            wrt_date: le16(24),
            size: u32::from_le_bytes([b[28], b[29], b[30], b[31]]),
        }
    }
    /// Whether the entry is a directory.
    pub fn is_dir(&self) -> bool {
        self.attr & attr::DIRECTORY != 0
    }
    /// Whether the entry is free (deleted or never used).
    pub fn is_free(&self) -> bool {
        self.name[0] == 0 || self.name[0] == 0xE5
    }
    /// Whether the entry is a long-name slot.
    pub fn is_lfn(&self) -> bool {
        self.attr & 0x3F == attr::LONG_NAME
    }
    /// Whether the entry is the volume label.
    pub fn is_label(&self) -> bool {
        !self.is_lfn() && self.attr & attr::VOLUME_ID != 0
    }
    /// Whether the entry is `.` or `..`.
    pub fn is_dot(&self) -> bool {
        &self.name == b".          " || &self.name == b"..         "
    }
    /// The 8.3 name as Linux shows it: codepage 437, lower-cased parts where the NT flags
    /// (0x08 base, 0x10 extension) say so.
    pub fn short_name(&self) -> String {
        let mut raw = self.name;
        if raw[0] == 0x05 {
            raw[0] = 0xE5;
        }
        let base_len = raw[..8]
            .iter()
            .rposition(|&c| c != b' ')
            .map_or(0, |p| p + 1);
        let ext_len = raw[8..]
            .iter()
            .rposition(|&c| c != b' ')
            .map_or(0, |p| p + 1);
        let mut s = String::with_capacity(12);
        let push = |s: &mut String, bytes: &[u8], lower: bool| {
            for &c in bytes {
                let c = if lower { c.to_ascii_lowercase() } else { c };
                s.push(cp437(c));
            }
        };
        push(&mut s, &raw[..base_len], self.nt_flags & 0x08 != 0);
        if ext_len > 0 {
            s.push('.');
            push(&mut s, &raw[8..8 + ext_len], self.nt_flags & 0x10 != 0);
        }
        s
    }
    /// The checksum of the 8.3 name that long-name slots carry.
    pub fn lfn_checksum(&self) -> u8 {
        self.name
            .iter()
            .fold(0u8, |sum, &c| sum.rotate_right(1).wrapping_add(c))
    }
}

/// The upper half of code page 437 (Linux's default `codepage=437`).
const CP437_HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{a0}";

/// A code page 437 byte as a character.
pub(crate) fn cp437(c: u8) -> char {
    if c < 0x80 {
        char::from(c)
    } else {
        CP437_HIGH
            .chars()
            .nth(usize::from(c - 0x80))
            .unwrap_or(char::REPLACEMENT_CHARACTER)
    }
}

/// One live entry of a directory.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Byte offset of the short entry inside the directory's bytes.
    pub pos: usize,
    /// The long name when a valid long-name sequence precedes the entry, else the 8.3 name.
    pub name: String,
    /// The 8.3 name.
    pub short: String,
    pub raw: RawEntry,
}

/// A long name being assembled from its slots (which come last-first).
struct Lfn {
    checksum: u8,
    next: u8,
    units: Vec<u16>,
}

/// Decodes the units of one long-name slot, in order.
fn lfn_units(b: &[u8]) -> [u16; 13] {
    let mut u = [0u16; 13];
    let offs = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
    for (i, &o) in offs.iter().enumerate() {
        u[i] = u16::from_le_bytes([b[o], b[o + 1]]);
    }
    u
}

/// The live entries of a directory (no free, label, long-name or `.`/`..` entries), in
/// on-disk order. Like Linux, a zero first byte is skipped rather than ending the scan.
/// Returns the entries and the label found (if any, for the root).
pub(crate) fn parse_dir(bytes: &[u8], fat32: bool) -> (Vec<Entry>, Option<[u8; 11]>) {
    let mut out = Vec::new();
    let mut label = None;
    let mut lfn: Option<Lfn> = None;
    for (i, chunk) in bytes.chunks_exact(32).enumerate() {
        let Ok(b) = <&[u8; 32]>::try_from(chunk) else {
            break;
        };
        let raw = RawEntry::parse(b, fat32);
        if raw.is_free() {
            lfn = None;
            continue;
        }
        if raw.is_lfn() {
            let ord = b[0];
            let seq = ord & 0x1F;
            let units = lfn_units(b);
            if ord & 0x40 != 0 {
                if seq == 0 || seq > 20 {
                    lfn = None;
                    continue;
                }
                let mut v = Vec::with_capacity(usize::from(seq) * 13);
                v.extend_from_slice(&units);
                lfn = Some(Lfn {
                    checksum: b[13],
                    next: seq - 1,
                    units: v,
                });
            } else {
                lfn = match lfn.take() {
                    Some(mut l) if seq != 0 && seq == l.next && b[13] == l.checksum => {
                        let mut v = units.to_vec();
                        v.extend_from_slice(&l.units);
                        l.units = v;
                        l.next -= 1;
                        Some(l)
                    }
                    _ => None,
                };
            }
            continue;
        }
        let pending = lfn.take();
        if raw.is_label() {
            if label.is_none() {
                label = Some(raw.name);
            }
            continue;
        }
        if raw.is_dot() {
            continue;
        }
        let short = raw.short_name();
        let long = pending
            .filter(|l| l.next == 0 && l.checksum == raw.lfn_checksum())
            .and_then(|l| decode_lfn(&l.units));
        out.push(Entry {
            pos: i * 32,
            name: long.unwrap_or_else(|| short.clone()),
            short,
            raw,
        });
    }
    (out, label)
}

/// UTF-16 units up to the first NUL, as a string; `None` when empty.
fn decode_lfn(units: &[u16]) -> Option<String> {
    let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
    let units = &units[..end];
    // Trailing 0xFFFF padding only appears after a NUL, but tolerate it without one.
    let end = units
        .iter()
        .rposition(|&u| u != 0xFFFF)
        .map_or(0, |p| p + 1);
    if end == 0 {
        return None;
    }
    Some(
        char::decode_utf16(units[..end].iter().copied())
            .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect(),
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1..=12).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A DOS date and time (and creation centiseconds, 0..=199) as UTC, the way Linux converts
/// them: month and day 0 count as 1, other fields are added without range checks.
pub(crate) fn dos_time(date: u16, time: u16, cs: u8) -> Timestamp {
    let year = 1980 + i64::from(date >> 9);
    let month = u32::from((date >> 5) & 0x0F).clamp(1, 12);
    let day = u32::from(date & 0x1F).max(1);
    let days = days_from_civil(year, month, 1) + i64::from(day) - 1;
    let secs = i64::from(time >> 11) * 3600
        + i64::from((time >> 5) & 0x3F) * 60
        + i64::from(time & 0x1F) * 2;
    let cs = u32::from(cs.min(199));
    Timestamp {
        secs: days * 86_400 + secs + i64::from(cs / 100),
        nanos: (cs % 100) * 10_000_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short(name: &[u8; 11], attr: u8, nt: u8) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[..11].copy_from_slice(name);
        b[11] = attr;
        b[12] = nt;
        b
    }

    fn lfn_slot(ord: u8, sum: u8, chars: &[u16; 13]) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0] = ord;
        b[11] = 0x0F;
        b[13] = sum;
        let offs = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
        for (i, &o) in offs.iter().enumerate() {
            b[o..o + 2].copy_from_slice(&chars[i].to_le_bytes());
        }
        b
    }

    fn units(s: &str) -> Vec<u16> {
        let mut v: Vec<u16> = s.encode_utf16().collect();
        v.push(0);
        while v.len() % 13 != 0 {
            v.push(0xFFFF);
        }
        v
    }

    #[test]
    fn long_name_with_checksum() {
        let sfn = short(b"LONGFI~1TXT", 0x20, 0);
        let sum = RawEntry::parse(&sfn, false).lfn_checksum();
        let u = units("a long file name.txt");
        let mut dir = Vec::new();
        let slots: Vec<[u16; 13]> = u
            .chunks(13)
            .map(|c| c.try_into().expect("13 units"))
            .collect();
        for (i, s) in slots.iter().enumerate().rev() {
            let ord = (i as u8 + 1) | if i == slots.len() - 1 { 0x40 } else { 0 };
            dir.extend_from_slice(&lfn_slot(ord, sum, s));
        }
        dir.extend_from_slice(&sfn);
        let (e, _) = parse_dir(&dir, false);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].name, "a long file name.txt");
        assert_eq!(e[0].short, "LONGFI~1.TXT");
        assert_eq!(e[0].pos, dir.len() - 32);
        // A wrong checksum falls back to the 8.3 name.
        let n = dir.len();
        dir[n - 32] = b'X';
        let (e, _) = parse_dir(&dir, false);
        assert_eq!(e[0].name, "XONGFI~1.TXT");
    }

    #[test]
    fn nt_lowercase_flags_label_dots_and_deleted() {
        let mut dir = Vec::new();
        dir.extend_from_slice(&short(b"MYDISK     ", 0x08, 0));
        dir.extend_from_slice(&short(b".          ", 0x10, 0));
        dir.extend_from_slice(&short(b"README  TXT", 0x20, 0x08));
        dir.extend_from_slice(&short(b"MAKEFILE   ", 0x20, 0x18));
        dir.extend_from_slice(&short(b"\xE5ELETED TXT", 0x20, 0));
        dir.extend_from_slice(&short(b"A       C  ", 0x20, 0x10));
        let (e, label) = parse_dir(&dir, false);
        assert_eq!(label.as_ref(), Some(b"MYDISK     "));
        let names: Vec<_> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["readme.TXT", "makefile", "A.c"]);
    }

    #[test]
    fn dos_times() {
        // 2020-02-29 13:45:58
        let date = ((2020 - 1980) << 9) | (2 << 5) | 29;
        let time = (13 << 11) | (45 << 5) | 29;
        let t = dos_time(date, time, 150);
        assert_eq!(t.secs, 1_582_983_958 + 1);
        assert_eq!(t.nanos, 500_000_000);
        assert_eq!(dos_time(0, 0, 0).secs, 315_532_800);
    }

    #[test]
    fn cp437_names() {
        let e = RawEntry::parse(&short(b"\x05\x81BER   TXT", 0x20, 0), false);
        assert_eq!(e.short_name(), "σüBER.TXT");
    }
}
