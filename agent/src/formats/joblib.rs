//! Compressed joblib files (`joblib/compressor.py`, `numpy_pickle.py`).
//!
//! `joblib.dump(..., compress=...)` wraps the pickle stream in one of: zlib (`78`), gzip
//! (`1F 8B`), bz2 (`BZh`), xz (`FD 37 7A 58 5A 00`), lzma-alone (`5D 00 00`), lz4 frame
//! (`04 22 4D 18`); joblib before 0.10 wrote `ZF` + a hex length + zlib. The prober decompresses
//! at most [`limits::MAX_SNIFF_DECOMPRESSED`] bytes and requires a valid pickle start there.
//! Plain (uncompressed) joblib files are pickles carrying `NumpyArrayWrapper` and are reported
//! by the pickle prober.

use std::io::{Read, Write};

use super::{limits, pickle, Detection, FormatError, ModelFormat, ProbeInput, Source};

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
    buf: Vec<u8>,
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

/// Identifies a compressed joblib file.
pub fn probe(input: &ProbeInput<'_>) -> Result<Option<Detection>, FormatError> {
    let Some(scheme) = compression_of(input.head) else {
        return Ok(None);
    };
    let (scheme, offset) = if scheme == "zlib_legacy" {
        // `ZF0x<hex length>` padded with spaces, then the zlib stream.
        let start = input.head.iter().skip(2).position(|&b| b == 0x78).map(|p| p + 2);
        match start {
            Some(s) if s <= 32 => ("zlib", s as u64),
            _ => return Ok(None),
        }
    } else {
        (scheme, 0)
    };
    let Ok(plain) = decompress_prefix(input.source, offset, scheme, limits::MAX_SNIFF_DECOMPRESSED) else {
        return Ok(None);
    };
    let inner = ProbeInput {
        source: &plain.as_slice(),
        size: plain.len() as u64,
        head: plain.get(..plain.len().min(super::HEAD_LEN)).unwrap_or_default(),
        name: input.name,
    };
    let summary = match pickle::summarize(&inner) {
        Ok(Some(s)) => s,
        // The sniff cut the stream: a pickle that was valid up to the cut still counts.
        Err(FormatError::Truncated { .. }) if plain.len() >= limits::MAX_SNIFF_DECOMPRESSED => {
            let md = super::ModelMetadata { compression: Some(scheme.into()), ..super::ModelMetadata::default() };
            return Ok(Some(Detection { format: ModelFormat::Joblib, metadata: md }));
        }
        _ => return Ok(None),
    };
    let mut md = pickle::metadata(&summary);
    md.compression = Some(if offset > 0 { "zlib".into() } else { scheme.into() });
    Ok(Some(Detection { format: ModelFormat::Joblib, metadata: md }))
}
