//! The LVM2 metadata text format (lvm2's config syntax): `name = value` assignments and
//! `name { ... }` sections; values are integers, floats, `"strings"` (with `\"` and `\\`
//! escapes) or `[ ... ]` arrays of those; `#` starts a comment that runs to the end of the line.
//!
//! [`parse`] is a pure function over bytes, bounded in input size, nesting depth and node count.

use guestctl_block::Error;

use super::{Result, MAX_DEPTH, MAX_TEXT};

/// The most values (assignments, sections, array elements) one text may hold.
pub const MAX_NODES: usize = 1 << 18;

/// A value of the text format.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// A string (escapes resolved).
    Str(String),
    /// An array of scalars.
    Array(Vec<Value>),
    /// A nested section.
    Section(Section),
}

/// A section: its entries in file order (names may repeat; lookups take the first).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Section {
    /// `(name, value)` pairs in order.
    pub entries: Vec<(String, Value)>,
}

impl Section {
    /// The first value named `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
    /// The first subsection named `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        match self.get(name) {
            Some(Value::Section(s)) => Some(s),
            _ => None,
        }
    }
    /// The integer named `name`.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }
    /// The string named `name`.
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }
    /// The array named `name`.
    pub fn array(&self, name: &str) -> Option<&[Value]> {
        match self.get(name) {
            Some(Value::Array(a)) => Some(a),
            _ => None,
        }
    }
    /// Subsections in order.
    pub fn sections(&self) -> impl Iterator<Item = (&str, &Section)> {
        self.entries.iter().filter_map(|(k, v)| match v {
            Value::Section(s) => Some((k.as_str(), s)),
            _ => None,
        })
    }
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    nodes: usize,
}

fn err(pos: usize, msg: impl Into<String>) -> Error {
    Error::corrupt(format!("{} (text byte {pos})", msg.into())).structure("LVM2 metadata text")
}

/// Parses a whole text into its top-level section. A NUL byte ends the text (lvm2 pads the
/// metadata buffer with NULs).
pub fn parse(text: &[u8]) -> Result<Section> {
    if text.len() > MAX_TEXT {
        return Err(Error::refused(format!(
            "metadata text of {} bytes is larger than the {MAX_TEXT}-byte limit",
            text.len()
        ))
        .structure("LVM2 metadata text"));
    }
    let end = text.iter().position(|&c| c == 0).unwrap_or(text.len());
    let mut p = Parser {
        b: &text[..end],
        pos: 0,
        nodes: 0,
    };
    let s = p.section_body(0, false)?;
    Ok(s)
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'+' | b'-' | b'/' | b'@')
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while let Some(&c) = self.b.get(self.pos) {
            if c == b'#' {
                while let Some(&c) = self.b.get(self.pos) {
                    if c == b'\n' {
                        break;
                    }
                    self.pos += 1;
                }
            } else if c.is_ascii_whitespace() {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.b.get(self.pos).copied()
    }

    fn count(&mut self) -> Result<()> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(err(self.pos, format!("more than {MAX_NODES} values")));
        }
        Ok(())
    }

    fn section_body(&mut self, depth: usize, braced: bool) -> Result<Section> {
        if depth > MAX_DEPTH {
            return Err(err(
                self.pos,
                format!("sections nested deeper than {MAX_DEPTH}"),
            ));
        }
        let mut s = Section::default();
        loop {
            match self.peek() {
                None if braced => return Err(err(self.pos, "section not closed with '}'")),
                None => return Ok(s),
                Some(b'}') if braced => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some(_) => {}
            }
            let name = self.ident()?;
            self.count()?;
            match self.peek() {
                Some(b'=') => {
                    self.pos += 1;
                    let v = self.value(depth)?;
                    s.entries.push((name, v));
                }
                Some(b'{') => {
                    self.pos += 1;
                    let sub = self.section_body(depth + 1, true)?;
                    s.entries.push((name, Value::Section(sub)));
                }
                _ => {
                    return Err(err(
                        self.pos,
                        format!("expected '=' or '{{' after {name:?}"),
                    ))
                }
            }
        }
    }

    fn ident(&mut self) -> Result<String> {
        let start = self.pos;
        while self.b.get(self.pos).is_some_and(|&c| is_ident(c)) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(err(
                self.pos,
                format!(
                    "expected a name, found {:?}",
                    self.b.get(self.pos).map(|&c| c as char)
                ),
            ));
        }
        Ok(String::from_utf8_lossy(&self.b[start..self.pos]).into_owned())
    }

    fn value(&mut self, depth: usize) -> Result<Value> {
        match self.peek() {
            Some(b'[') => {
                if depth + 1 > MAX_DEPTH {
                    return Err(err(self.pos, "arrays nested too deep"));
                }
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    match self.peek() {
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Value::Array(items));
                        }
                        Some(b',') if !items.is_empty() => {
                            self.pos += 1;
                        }
                        None => return Err(err(self.pos, "array not closed with ']'")),
                        _ => {}
                    }
                    if self.peek() == Some(b']') {
                        continue;
                    }
                    self.count()?;
                    let v = self.scalar()?;
                    items.push(v);
                }
            }
            _ => self.scalar(),
        }
    }

    fn scalar(&mut self) -> Result<Value> {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                let mut out = Vec::new();
                loop {
                    match self.b.get(self.pos) {
                        None => return Err(err(self.pos, "string not closed")),
                        Some(b'"') => {
                            self.pos += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let Some(&c) = self.b.get(self.pos + 1) else {
                                return Err(err(self.pos, "string not closed"));
                            };
                            out.push(c);
                            self.pos += 2;
                        }
                        Some(&c) => {
                            out.push(c);
                            self.pos += 1;
                        }
                    }
                }
                Ok(Value::Str(String::from_utf8_lossy(&out).into_owned()))
            }
            Some(c) if c.is_ascii_digit() || c == b'-' || c == b'+' || c == b'.' => {
                let start = self.pos;
                while self
                    .b
                    .get(self.pos)
                    .is_some_and(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.'))
                {
                    self.pos += 1;
                }
                let t = String::from_utf8_lossy(&self.b[start..self.pos]).into_owned();
                if let Ok(i) = t.parse::<i64>() {
                    Ok(Value::Int(i))
                } else if t.contains('.') {
                    t.parse::<f64>()
                        .map(Value::Float)
                        .map_err(|_| err(start, format!("bad number {t:?}")))
                } else {
                    Err(err(start, format!("bad number {t:?}")))
                }
            }
            other => Err(err(
                self.pos,
                format!("expected a value, found {:?}", other.map(|c| c as char)),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basics() {
        let t = br#"# comment
vg { id = "a\"b" # trailing
  n = -5 f = 1.5 arr = ["x", 1, "y",] empty = [] nested { k = 0 } }
contents = "Text Format Volume Group"
"#;
        let s = parse(t).expect("parse");
        let vg = s.section("vg").expect("vg");
        assert_eq!(vg.str("id"), Some("a\"b"));
        assert_eq!(vg.int("n"), Some(-5));
        assert_eq!(vg.get("f"), Some(&Value::Float(1.5)));
        assert_eq!(
            vg.array("arr"),
            Some(
                &[
                    Value::Str("x".into()),
                    Value::Int(1),
                    Value::Str("y".into())
                ][..]
            )
        );
        assert_eq!(vg.array("empty"), Some(&[][..]));
        assert_eq!(vg.section("nested").and_then(|n| n.int("k")), Some(0));
        assert_eq!(s.str("contents"), Some("Text Format Volume Group"));
    }
}
