//! Key and value names: decoding and case-insensitive comparison.

/// Decodes a name stored in a hive: Latin-1 (one byte per character) when `compressed`,
/// UTF-16LE otherwise. Unpaired surrogates and a trailing odd byte become U+FFFD.
pub(crate) fn decode_name(bytes: &[u8], compressed: bool) -> String {
    if compressed {
        bytes.iter().map(|&b| char::from(b)).collect()
    } else {
        decode_utf16_lossy(bytes)
    }
}

/// UTF-16LE to `String`, replacing unpaired surrogates and an odd trailing byte with U+FFFD.
pub(crate) fn decode_utf16_lossy(bytes: &[u8]) -> String {
    let units = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]));
    let mut s: String = char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    if bytes.len() % 2 == 1 {
        s.push(char::REPLACEMENT_CHARACTER);
    }
    s
}

/// Upper-cases one UTF-16 code unit the way registry name comparison does: characters of the
/// Basic Multilingual Plane with a single-character uppercase form in the BMP are mapped;
/// everything else (surrogates, characters whose uppercase is several characters like `ß`)
/// stays as it is. Characters outside the BMP are therefore compared case-sensitively, as
/// Windows does.
pub fn upcase_utf16(unit: u16) -> u16 {
    if unit < 0x80 {
        return (unit as u8).to_ascii_uppercase() as u16;
    }
    let Some(c) = char::from_u32(unit as u32) else {
        return unit;
    };
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) if (u as u32) <= 0xFFFF => u as u32 as u16,
        _ => unit,
    }
}

fn upcased_units(s: &str) -> impl Iterator<Item = u16> + '_ {
    s.encode_utf16().map(upcase_utf16)
}

/// Compares two names case-insensitively, unit by unit after [`upcase_utf16`].
pub fn names_equal(a: &str, b: &str) -> bool {
    upcased_units(a).eq(upcased_units(b))
}

/// Orders two stored names as registry subkey lists are sorted (upper-cased UTF-16 units).
pub(crate) fn units_cmp(a: &[u16], b: &[u16]) -> std::cmp::Ordering {
    a.iter()
        .map(|&u| upcase_utf16(u))
        .cmp(b.iter().map(|&u| upcase_utf16(u)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_folding() {
        assert!(names_equal("ControlSet001", "CONTROLSET001"));
        assert!(names_equal("Привет", "пРИВЕТ"));
        assert!(names_equal("\u{ff21}", "\u{ff41}"));
        // Outside the BMP: case-sensitive, like Windows.
        assert!(!names_equal("\u{10410}", "\u{10438}"));
        // ß has no single-character uppercase: kept.
        assert!(!names_equal("ß", "SS"));
        assert!(!names_equal("a", "ab"));
    }

    #[test]
    fn lossy_decoding() {
        assert_eq!(decode_utf16_lossy(b"t\x00\x00\xd8a\x00"), "t\u{fffd}a");
        assert_eq!(decode_utf16_lossy(b"a\x00b"), "a\u{fffd}");
        assert_eq!(decode_name(b"\xe4\xf6", true), "äö");
    }
}
