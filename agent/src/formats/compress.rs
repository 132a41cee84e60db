//! Decompressing the start of a compressed stream, bounded, for the formats that wrap one:
//! compressed joblib files ([`super::joblib`]), `zlib.decompress` arguments inside a pickle
//! ([`super::pickle`]), deflated zip members ([`super::zip`] reads through [`SourceReader`]) and
//! the safety analysis of a whole compressed joblib file.
//!
//! 1. [`compression_of`] names the scheme from the leading bytes (the schemes joblib writes);
//! 2. [`decompress_prefix`] decompresses at most `cap` bytes: output beyond the cap is refused,
//!    so a bomb costs at most `cap` bytes of memory, and a stream that breaks after some output
//!    yields that output (the caller judges whether a prefix is enough).

use std::io::{Read, Write};

use super::Source;

/// A `Read` over a [`Source`].
pub struct SourceReader<'a> {
    /// The content.
    pub src: &'a dyn Source,
    /// Next offset to read.
    pub pos: u64,
}

impl std::fmt::Debug for SourceReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceReader").field("pos", &self.pos).finish()
    }
}

impl Read for SourceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.src.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A writer that keeps the first `cap` bytes and then refuses more.
struct Capped {
    /// The bytes kept so far.
    buf: Vec<u8>,
    /// Most bytes kept.
    cap: usize,
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = self.cap.saturating_sub(self.buf.len());
        if room == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "decompression cap reached"));
        }
        let n = room.min(data.len());
        self.buf.extend_from_slice(data.get(..n).unwrap_or_default());
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Compression schemes joblib writes, by leading bytes.
pub fn compression_of(head: &[u8]) -> Option<&'static str> {
    match head {
        [0x1f, 0x8b, 0x08, ..] => Some("gzip"),
        [b'B', b'Z', b'h', b'1'..=b'9', ..] => Some("bz2"),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Some("xz"),
        [0x5d, 0x00, 0x00, ..] => Some("lzma"),
        [0x04, 0x22, 0x4d, 0x18, ..] => Some("lz4"),
        [b'Z', b'F', b'0', b'x', ..] => Some("zlib_legacy"),
        [a, b, ..] if *a & 0x0f == 8 && *a >> 4 <= 7 && (u16::from(*a) << 8 | u16::from(*b)) % 31 == 0 => Some("zlib"),
        _ => None,
    }
}

/// Decompresses at most `cap` bytes of the stream starting at `offset`.
pub fn decompress_prefix(src: &dyn Source, offset: u64, scheme: &str, cap: usize) -> Result<Vec<u8>, String> {
    let reader = SourceReader { src, pos: offset };
    let mut out = Capped { buf: Vec::new(), cap };
    let result = match scheme {
        "zlib" => {
            std::io::copy(&mut flate2::read::ZlibDecoder::new(reader), &mut out).map(|_| ()).map_err(|e| e.to_string())
        }
        "gzip" => std::io::copy(&mut flate2::read::MultiGzDecoder::new(reader), &mut out)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        "bz2" => {
            std::io::copy(&mut bzip2::read::BzDecoder::new(reader), &mut out).map(|_| ()).map_err(|e| e.to_string())
        }
        "lz4" => std::io::copy(&mut lz4_flex::frame::FrameDecoder::new(reader), &mut out)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        "xz" => lzma_rs::xz_decompress(&mut std::io::BufReader::new(reader), &mut out).map_err(|e| e.to_string()),
        "lzma" => lzma_rs::lzma_decompress(&mut std::io::BufReader::new(reader), &mut out).map_err(|e| e.to_string()),
        other => Err(format!("unknown compression {other}")),
    };
    match result {
        Ok(()) => Ok(out.buf),
        // Hitting the cap is the normal end of a sniff.
        Err(_) if out.buf.len() >= cap => Ok(out.buf),
        Err(e) if !out.buf.is_empty() => {
            tracing::debug!(scheme, error = %e, "decompression stopped early");
            Ok(out.buf)
        }
        Err(e) => Err(e),
    }
}
