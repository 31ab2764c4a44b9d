//! LZNT1 decompression of one NTFS compression unit (pure, no I/O).
//!
//! A compressed `$DATA` attribute is cut into compression units of `2^compression_unit`
//! clusters (16 in practice). A unit whose clusters are all sparse reads as zeros, a fully
//! allocated unit is stored as is, and any other unit holds a sequence of LZNT1 chunks in its
//! allocated clusters. Each chunk starts with a little-endian `u16` header: bits 0..12 are the
//! chunk's stored length minus one (header excluded), bits 12..15 the signature (3), bit 15
//! set when the chunk is compressed. A chunk stands for 4096 bytes of output; an uncompressed
//! chunk is copied, a compressed one is a sequence of groups: one flag byte, then eight items,
//! a literal byte for a clear bit, a two-byte back-reference for a set bit. The back-reference
//! splits its 16 bits into offset and length depending on how many bytes the chunk has already
//! produced (12 length bits while fewer than 16 bytes are out, one fewer each time that count
//! doubles). A zero header ends the unit; output past the last chunk reads as zeros.

use std::fmt;

/// Bytes of output one LZNT1 chunk stands for.
pub const CHUNK_SIZE: usize = 4096;

/// Why a compression unit could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lznt1Error {
    /// Offset in the compressed input of the chunk (or token) that is wrong.
    pub offset: usize,
    /// What is wrong.
    pub message: &'static str,
}

impl fmt::Display for Lznt1Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LZNT1 data at byte {:#x}: {}", self.offset, self.message)
    }
}

impl std::error::Error for Lznt1Error {}

fn err(offset: usize, message: &'static str) -> Lznt1Error {
    Lznt1Error { offset, message }
}

/// Decompresses the LZNT1 chunks in `input` into `out`, which is the whole unit's output
/// (`clusters * cluster_size` bytes). Every byte of `out` is written: what no chunk covers is
/// zero. Fails on a chunk whose stored length runs past `input`, a back-reference before the
/// start of its chunk, or more chunks than `out` has room for.
pub fn decompress_unit(input: &[u8], out: &mut [u8]) -> Result<(), Lznt1Error> {
    out.fill(0);
    let mut ip = 0usize;
    let mut op = 0usize;
    while ip + 2 <= input.len() {
        let header = u16::from_le_bytes([input[ip], input[ip + 1]]);
        if header == 0 {
            break;
        }
        let stored = usize::from(header & 0x0FFF) + 1;
        let start = ip + 2;
        let end = start
            .checked_add(stored)
            .filter(|&e| e <= input.len())
            .ok_or_else(|| err(ip, "chunk length runs past the end of the compression unit"))?;
        if op >= out.len() {
            return Err(err(
                ip,
                "more chunks than the compression unit has room for",
            ));
        }
        let chunk_out_len = CHUNK_SIZE.min(out.len() - op);
        let dst = &mut out[op..op + chunk_out_len];
        if header & 0x8000 == 0 {
            let n = stored.min(dst.len());
            dst[..n].copy_from_slice(&input[start..start + n]);
        } else {
            decompress_chunk(&input[start..end], dst)
                .map_err(|e| err(start + e.offset, e.message))?;
        }
        op += CHUNK_SIZE;
        ip = end;
    }
    Ok(())
}

/// Decompresses one compressed chunk body into `dst` (at most 4096 bytes); returns the
/// number of bytes produced.
pub fn decompress_chunk(src: &[u8], dst: &mut [u8]) -> Result<usize, Lznt1Error> {
    let mut ip = 0usize;
    let mut op = 0usize;
    while ip < src.len() {
        let flags = src[ip];
        ip += 1;
        for bit in 0..8 {
            if ip >= src.len() {
                return Ok(op);
            }
            if flags & (1 << bit) == 0 {
                if op >= dst.len() {
                    return Err(err(ip, "literal past the end of the 4096-byte chunk"));
                }
                dst[op] = src[ip];
                op += 1;
                ip += 1;
            } else {
                if ip + 2 > src.len() {
                    return Err(err(ip, "back-reference cut off at the end of the chunk"));
                }
                let token = u16::from_le_bytes([src[ip], src[ip + 1]]);
                if op == 0 {
                    return Err(err(ip, "back-reference at the start of a chunk"));
                }
                let (offset, length) = split_token(token, op);
                if offset > op {
                    return Err(err(ip, "back-reference before the start of the chunk"));
                }
                if length > dst.len() - op {
                    return Err(err(
                        ip,
                        "back-reference past the end of the 4096-byte chunk",
                    ));
                }
                for _ in 0..length {
                    dst[op] = dst[op - offset];
                    op += 1;
                }
                ip += 2;
            }
        }
    }
    Ok(op)
}

/// Splits a back-reference token into (offset, length) for a chunk that has produced `pos`
/// bytes (`pos >= 1`).
fn split_token(token: u16, pos: usize) -> (usize, usize) {
    let mut len_bits = 12u32;
    let mut p = pos - 1;
    while p >= 0x10 {
        len_bits -= 1;
        p >>= 1;
    }
    let len_mask = (1u16 << len_bits) - 1;
    let offset = usize::from(token >> len_bits) + 1;
    let length = usize::from(token & len_mask) + 3;
    (offset, length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncompressed_chunk_is_copied_and_rest_zero() {
        let mut input = vec![0x03u8 /* len-1 = 3 */, 0x30];
        input.extend_from_slice(b"abcd");
        let mut out = vec![0xAAu8; 8192];
        decompress_unit(&input, &mut out).expect("valid");
        assert_eq!(&out[..4], b"abcd");
        assert!(out[4..].iter().all(|&b| b == 0));
    }

    #[test]
    fn compressed_chunk_with_back_reference() {
        // "abcabcabc": literals a,b,c then a token offset 3 length 6 at pos 3.
        // pos 3: 12 length bits; token = ((3-1) << 12) | (6-3).
        let token: u16 = (2 << 12) | 3;
        let mut body = vec![0b0000_1000u8, b'a', b'b', b'c'];
        body.extend_from_slice(&token.to_le_bytes());
        let header: u16 = 0xB000 | (body.len() as u16 - 1);
        let mut input = header.to_le_bytes().to_vec();
        input.extend_from_slice(&body);
        let mut out = vec![0u8; 4096];
        decompress_unit(&input, &mut out).expect("valid");
        assert_eq!(&out[..9], b"abcabcabc");
        assert!(out[9..].iter().all(|&b| b == 0));
    }

    #[test]
    fn chunk_claiming_more_than_it_has_is_an_error() {
        let input = [0xFFu8, 0xBF, 0x00, 0x41];
        let mut out = vec![0u8; 65536];
        let e = decompress_unit(&input, &mut out).expect_err("short");
        assert_eq!(e.offset, 0);
        assert!(e.message.contains("past the end"));
    }

    #[test]
    fn back_reference_before_chunk_start_is_an_error() {
        let token: u16 = 5 << 12; // offset 6 at pos 1
        let mut body = vec![0b10u8, b'a'];
        body.extend_from_slice(&token.to_le_bytes());
        let header: u16 = 0xB000 | (body.len() as u16 - 1);
        let mut input = header.to_le_bytes().to_vec();
        input.extend_from_slice(&body);
        let mut out = vec![0u8; 4096];
        assert!(decompress_unit(&input, &mut out).is_err());
    }

    #[test]
    fn too_many_chunks_is_an_error() {
        let mut input = Vec::new();
        for _ in 0..3 {
            input.extend_from_slice(&[0x00, 0x30, b'x']);
        }
        let mut out = vec![0u8; 8192];
        assert!(decompress_unit(&input, &mut out).is_err());
    }

    #[test]
    fn token_split_shrinks_length_bits() {
        assert_eq!(split_token(0x0000, 1), (1, 3));
        assert_eq!(split_token(0x1000, 16), (2, 3));
        // pos 17: 11 length bits
        assert_eq!(split_token(0x0800, 17), (2, 3));
        assert_eq!(split_token(0xFFFF, 4096), (4096, 18));
    }
}
