//! Decompression of clusters and grains into fixed-size buffers, with per-thread contexts.

use std::cell::RefCell;

use flate2::{Decompress, FlushDecompress, Status};
use guestctl_block::{Error, Result};

/// How compressed data is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// Raw deflate (qcow2 zlib clusters).
    RawDeflate,
    /// zlib-framed deflate (vmdk grains).
    Zlib,
    /// zstd frames (qcow2 compression_type=zstd).
    Zstd,
}

thread_local! {
    static RAW_DEFLATE: RefCell<Decompress> = RefCell::new(Decompress::new(false));
    static ZLIB: RefCell<Decompress> = RefCell::new(Decompress::new(true));
    static ZSTD: RefCell<Option<zstd::stream::raw::Decoder<'static>>> = const { RefCell::new(None) };
}

/// Decompresses `input` into all of `out`; trailing input (sector padding) is ignored.
/// Returns how many bytes of `out` were produced; callers decide whether short output is an
/// error (qcow2: yes, vmdk: the last grain may be short).
pub(crate) fn decompress(codec: Codec, input: &[u8], out: &mut [u8]) -> Result<usize> {
    match codec {
        Codec::RawDeflate => RAW_DEFLATE.with(|d| inflate(&mut d.borrow_mut(), false, input, out)),
        Codec::Zlib => ZLIB.with(|d| inflate(&mut d.borrow_mut(), true, input, out)),
        Codec::Zstd => ZSTD.with(|d| unzstd(&mut d.borrow_mut(), input, out)),
    }
}

fn inflate(d: &mut Decompress, zlib_header: bool, input: &[u8], out: &mut [u8]) -> Result<usize> {
    d.reset(zlib_header);
    loop {
        let (cin, cout) = (d.total_in() as usize, d.total_out() as usize);
        if cout >= out.len() {
            return Ok(cout);
        }
        let status = d
            .decompress(&input[cin..], &mut out[cout..], FlushDecompress::Finish)
            .map_err(|e| Error::corrupt("compressed data is not valid deflate").with_source(e))?;
        let (nin, nout) = (d.total_in() as usize, d.total_out() as usize);
        match status {
            Status::StreamEnd => return Ok(nout),
            _ if nin == cin && nout == cout => return Ok(nout),
            _ => {}
        }
    }
}

fn unzstd(
    slot: &mut Option<zstd::stream::raw::Decoder<'static>>,
    input: &[u8],
    out: &mut [u8],
) -> Result<usize> {
    use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
    let dec = match slot {
        Some(d) => {
            d.reinit()
                .map_err(|e| Error::corrupt("cannot reset zstd decoder").with_source(e))?;
            d
        }
        None => slot.insert(
            zstd::stream::raw::Decoder::new()
                .map_err(|e| Error::corrupt("cannot create zstd decoder").with_source(e))?,
        ),
    };
    let mut inb = InBuffer::around(input);
    let mut outb = OutBuffer::around(out);
    while outb.pos() < outb.capacity() {
        let (ip, op) = (inb.pos, outb.pos());
        let r = dec
            .run(&mut inb, &mut outb)
            .map_err(|e| Error::corrupt("compressed data is not valid zstd").with_source(e))?;
        if inb.pos == ip && outb.pos() == op {
            break;
        }
        if r == 0 && inb.pos >= input.len() {
            break;
        }
    }
    Ok(outb.pos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn raw_deflate_with_padding() {
        let data: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&data).expect("enc");
        let mut c = enc.finish().expect("finish");
        c.extend_from_slice(&[0xAB; 300]);
        let mut out = vec![0u8; 65536];
        assert_eq!(
            decompress(Codec::RawDeflate, &c, &mut out).expect("ok"),
            65536
        );
        assert_eq!(out, data);
        // Truncated input gives short output, not a panic.
        let mut out2 = vec![0u8; 65536];
        let n = decompress(Codec::RawDeflate, &c[..c.len() / 3], &mut out2).unwrap_or(0);
        assert!(n < 65536);
    }

    #[test]
    fn zstd_roundtrip_and_garbage() {
        let data = vec![5u8; 4096];
        let mut c = zstd::bulk::compress(&data, 3).expect("zstd");
        c.extend_from_slice(&[0; 100]);
        let mut out = vec![0u8; 4096];
        assert_eq!(decompress(Codec::Zstd, &c, &mut out).expect("ok"), 4096);
        assert_eq!(out, data);
        assert!(decompress(Codec::Zstd, &[1, 2, 3, 4, 5, 6, 7, 8], &mut out).is_err());
    }
}
