//! A minimal read-only SQLite 3 reader: enough to list the rows of one table (the rpm
//! database's `Packages`). Pure functions over the database file's bytes.
//!
//! Follows the documented file format (sqlite.org/fileformat2.html): the 100-byte header,
//! table b-trees (interior 0x05 and leaf 0x0D pages), cells with varints, payload overflow
//! chains and the record format. Every page number, cell offset, payload size and chain is
//! checked; each page is visited at most once, so a cycle cannot loop.

use std::collections::HashSet;

/// Why a database could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteError(pub String);

impl std::fmt::Display for SqliteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sqlite: {}", self.0)
    }
}

impl std::error::Error for SqliteError {}

type Result<T> = std::result::Result<T, SqliteError>;

fn err<T>(m: impl Into<String>) -> Result<T> {
    Err(SqliteError(m.into()))
}

/// One column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// NULL (also an `INTEGER PRIMARY KEY` column, whose value is the rowid).
    Null,
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text (as stored; UTF-8 databases only are decoded).
    Text(String),
    /// A blob.
    Blob(Vec<u8>),
}

/// The most rows returned from one table.
pub const MAX_ROWS: usize = 1_000_000;
const MAX_DEPTH: usize = 64;

struct Db<'a> {
    data: &'a [u8],
    page_size: usize,
    usable: usize,
    pages: u64,
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    b.get(at..at + 2)
        .map(|s| usize::from(u16::from_be_bytes([s[0], s[1]])))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// A SQLite varint at `at`: (value, length).
fn varint(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for i in 0..9 {
        let byte = *b.get(at + i)?;
        if i == 8 {
            return Some(((v << 8) | u64::from(byte), 9));
        }
        v = (v << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

impl<'a> Db<'a> {
    fn open(data: &'a [u8]) -> Result<Db<'a>> {
        if data.len() < 100 || &data[..16] != b"SQLite format 3\0" {
            return err("not a SQLite 3 database (bad header)");
        }
        let page_size = match be16(data, 16) {
            Some(1) => 65536,
            Some(n) if n >= 512 && n.is_power_of_two() && n <= 32768 => n,
            other => return err(format!("bad page size {other:?}")),
        };
        let reserved = usize::from(data[20]);
        let usable = page_size
            .checked_sub(reserved)
            .filter(|&u| u >= 480)
            .ok_or_else(|| SqliteError(format!("{reserved} reserved bytes per page")))?;
        if be32(data, 56) != Some(1) && be32(data, 56) != Some(0) {
            return err("only UTF-8 databases are read");
        }
        let pages = (data.len() / page_size) as u64;
        Ok(Db {
            data,
            page_size,
            usable,
            pages,
        })
    }

    fn page(&self, n: u32) -> Result<&'a [u8]> {
        if n == 0 || u64::from(n) > self.pages {
            return err(format!("page {n} outside the {} page file", self.pages));
        }
        let start = (n as usize - 1) * self.page_size;
        Ok(&self.data[start..start + self.page_size])
    }

    /// The payload of a cell: `local` bytes at `at` in `page`, then the overflow chain.
    fn payload(
        &self,
        page: &[u8],
        at: usize,
        size: u64,
        seen: &mut HashSet<u32>,
    ) -> Result<Vec<u8>> {
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= self.data.len())
            .ok_or_else(|| {
                SqliteError(format!("payload of {size} bytes is larger than the file"))
            })?;
        let u = self.usable;
        let x = u - 35;
        let local = if size <= x {
            size
        } else {
            let m = ((u - 12) * 32 / 255) - 23;
            let k = m + ((size - m) % (u - 4));
            if k <= x {
                k
            } else {
                m
            }
        };
        // Grow as pages arrive: a lying size must not reserve memory up front.
        let mut out = Vec::with_capacity(local);
        out.extend_from_slice(
            page.get(at..at + local)
                .ok_or_else(|| SqliteError(format!("cell at {at} runs past its page")))?,
        );
        if local < size {
            let mut next = be32(page, at + local)
                .ok_or_else(|| SqliteError("overflow pointer past the page".into()))?;
            while out.len() < size {
                if !seen.insert(next) {
                    return err(format!("overflow page {next} used twice (a cycle)"));
                }
                let p = self.page(next)?;
                let take = (size - out.len()).min(u - 4);
                out.extend_from_slice(&p[4..4 + take]);
                next = be32(p, 0).unwrap_or(0);
            }
        }
        Ok(out)
    }

    /// Every row (rowid, payload) of the table b-tree rooted at `root`.
    fn table_rows(&self, root: u32) -> Result<Vec<(i64, Vec<u8>)>> {
        let mut rows = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![(root, 0usize)];
        while let Some((n, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                return err("b-tree deeper than 64");
            }
            if !seen.insert(n) {
                return err(format!("page {n} reached twice (a cycle)"));
            }
            let page = self.page(n)?;
            let hdr = if n == 1 { 100 } else { 0 };
            let kind = page[hdr];
            let cells = be16(page, hdr + 3).unwrap_or(0);
            let header_len = match kind {
                0x0D => 8,
                0x05 => 12,
                other => {
                    return err(format!(
                        "page {n}: type {other:#x} is not a table b-tree page"
                    ))
                }
            };
            let mut children = Vec::new();
            for i in 0..cells {
                let ptr = be16(page, hdr + header_len + 2 * i).ok_or_else(|| {
                    SqliteError(format!("page {n}: cell pointer {i} past the page"))
                })?;
                if ptr >= self.usable {
                    return err(format!("page {n}: cell {i} at {ptr} past the usable area"));
                }
                if kind == 0x05 {
                    let child = be32(page, ptr)
                        .ok_or_else(|| SqliteError(format!("page {n}: cell {i} truncated")))?;
                    children.push(child);
                } else {
                    let (size, a) = varint(page, ptr)
                        .ok_or_else(|| SqliteError(format!("page {n}: cell {i} truncated")))?;
                    let (rowid, b) = varint(page, ptr + a)
                        .ok_or_else(|| SqliteError(format!("page {n}: cell {i} truncated")))?;
                    let payload = self.payload(page, ptr + a + b, size, &mut seen)?;
                    if rows.len() >= MAX_ROWS {
                        return err(format!("more than {MAX_ROWS} rows"));
                    }
                    rows.push((rowid as i64, payload));
                }
            }
            if kind == 0x05 {
                let right = be32(page, hdr + 8)
                    .ok_or_else(|| SqliteError(format!("page {n}: header truncated")))?;
                children.push(right);
                // Visit left to right: push in reverse.
                for c in children.into_iter().rev() {
                    stack.push((c, depth + 1));
                }
            }
        }
        Ok(rows)
    }
}

/// Decodes a record (the row's payload) into column values.
pub fn decode_record(p: &[u8]) -> Result<Vec<Value>> {
    let (hlen, mut at) =
        varint(p, 0).ok_or_else(|| SqliteError("record header truncated".into()))?;
    let hlen = usize::try_from(hlen)
        .ok()
        .filter(|&h| h <= p.len())
        .ok_or_else(|| SqliteError("record header longer than the record".into()))?;
    let mut types = Vec::new();
    while at < hlen {
        let (t, n) = varint(p, at).ok_or_else(|| SqliteError("record header truncated".into()))?;
        types.push(t);
        at += n;
    }
    let mut body = hlen;
    let mut out = Vec::with_capacity(types.len());
    for t in types {
        let len = match t {
            0 | 8 | 9 => 0,
            1..=4 => t as usize,
            5 => 6,
            6 | 7 => 8,
            10 | 11 => return err("reserved serial type"),
            n => ((n - 12) / 2) as usize,
        };
        let bytes = p
            .get(body..body.saturating_add(len))
            .ok_or_else(|| SqliteError("record value past its end".into()))?;
        body += len;
        let int = |b: &[u8]| {
            let mut v: i64 = if b.first().is_some_and(|&x| x & 0x80 != 0) {
                -1
            } else {
                0
            };
            for &x in b {
                v = (v << 8) | i64::from(x);
            }
            v
        };
        out.push(match t {
            0 => Value::Null,
            8 => Value::Int(0),
            9 => Value::Int(1),
            1..=6 => Value::Int(int(bytes)),
            7 => Value::Float(f64::from_bits(int(bytes) as u64)),
            n if n % 2 == 0 => Value::Blob(bytes.to_vec()),
            _ => Value::Text(String::from_utf8_lossy(bytes).into_owned()),
        });
    }
    Ok(out)
}

/// The rows of table `name` (case-insensitive) as `(rowid, columns)`.
pub fn read_table(db: &[u8], name: &str) -> Result<Vec<(i64, Vec<Value>)>> {
    let db = Db::open(db)?;
    let mut root = None;
    for (_, payload) in db.table_rows(1)? {
        let cols = decode_record(&payload)?;
        if let (Some(Value::Text(kind)), Some(Value::Text(tname)), Some(Value::Int(page))) =
            (cols.first(), cols.get(1), cols.get(3))
        {
            if kind == "table" && tname.eq_ignore_ascii_case(name) {
                root = u32::try_from(*page).ok();
            }
        }
    }
    let Some(root) = root else {
        return err(format!("no table {name}"));
    };
    db.table_rows(root)?
        .into_iter()
        .map(|(rowid, p)| decode_record(&p).map(|c| (rowid, c)))
        .collect()
}

/// The column names of a `CREATE TABLE` statement, in order (constraints skipped, quotes
/// removed). Only what SQLite stores in `sqlite_master.sql` needs to be understood.
pub fn column_names(create_sql: &str) -> Vec<String> {
    let (Some(open), Some(close)) = (create_sql.find('('), create_sql.rfind(')')) else {
        return Vec::new();
    };
    if close <= open {
        return Vec::new();
    }
    let body = &create_sql[open + 1..close];
    let mut items = Vec::new();
    let (mut depth, mut start, mut quote) = (0i32, 0usize, None::<char>);
    for (i, ch) in body.char_indices() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(ch),
            (None, '[') => quote = Some(']'),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                items.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&body[start..]);
    items
        .into_iter()
        .filter_map(|item| {
            let item = item.trim();
            let first: String = if let Some(rest) = item.strip_prefix(['"', '`', '[', '\'']) {
                rest.chars()
                    .take_while(|&c| !matches!(c, '"' | '`' | ']' | '\''))
                    .collect()
            } else {
                item.split(|c: char| c.is_whitespace() || c == '(')
                    .next()?
                    .to_string()
            };
            let upper = first.to_ascii_uppercase();
            let constraint = !item.starts_with(['"', '`', '[', '\''])
                && matches!(
                    upper.as_str(),
                    "CONSTRAINT" | "PRIMARY" | "UNIQUE" | "CHECK" | "FOREIGN"
                );
            (!constraint && !first.is_empty()).then_some(first)
        })
        .collect()
}

/// A table's rows as `(rowid, columns)`.
pub type Rows = Vec<(i64, Vec<Value>)>;

/// Like [`read_table`], with the table's column names (from its `CREATE TABLE`).
pub fn read_table_with_columns(db: &[u8], name: &str) -> Result<(Vec<String>, Rows)> {
    let d = Db::open(db)?;
    let mut columns = Vec::new();
    for (_, payload) in d.table_rows(1)? {
        let cols = decode_record(&payload)?;
        if let (Some(Value::Text(kind)), Some(Value::Text(tname)), Some(Value::Text(sql))) =
            (cols.first(), cols.get(1), cols.get(4))
        {
            if kind == "table" && tname.eq_ignore_ascii_case(name) {
                columns = column_names(sql);
            }
        }
    }
    Ok((columns, read_table(db, name)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_table_columns() {
        assert_eq!(
            column_names(
                "CREATE TABLE packages (id INTEGER PRIMARY KEY, origin TEXT NOT NULL, \"name\" TEXT, \
                 [version] TEXT, price DECIMAL(10, 2), UNIQUE(name, version), CONSTRAINT c CHECK (id > 0))"
            ),
            ["id", "origin", "name", "version", "price"]
        );
        assert!(column_names("garbage").is_empty());
    }

    #[test]
    fn varints() {
        assert_eq!(varint(&[0x05], 0), Some((5, 1)));
        assert_eq!(varint(&[0x81, 0x00], 0), Some((128, 2)));
        assert_eq!(varint(&[0xff; 9], 0), Some((u64::MAX, 9)));
        assert_eq!(varint(&[0x81], 0), None);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(read_table(b"", "Packages").is_err());
        let mut d = b"SQLite format 3\0".to_vec();
        d.resize(4096, 0xff);
        assert!(read_table(&d, "Packages").is_err());
        assert!(decode_record(&[0x7f]).is_err());
    }
}
