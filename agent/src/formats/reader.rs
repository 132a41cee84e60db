//! A bounded, buffered, little-endian cursor over a [`Source`].
//!
//! Parsers read through it so that every length is checked against the content size before a
//! byte is allocated, and a truncated file is an error naming what was being read.

use super::{limits, FormatError, Source};

/// Size of the read-ahead window.
const WINDOW: usize = 64 * 1024;

/// Sequential reader with positioned refills.
pub struct Cursor<'a> {
    /// The content.
    src: &'a dyn Source,
    /// Content size fixed at open.
    size: u64,
    /// Offset of the next byte to return.
    pos: u64,
    /// Buffered window starting at `window_start`.
    window: Vec<u8>,
    /// Content offset of `window[0]`.
    window_start: u64,
    /// Format name for error messages.
    format: &'static str,
}

impl std::fmt::Debug for Cursor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor").field("pos", &self.pos).field("size", &self.size).finish()
    }
}

impl<'a> Cursor<'a> {
    /// A cursor at `pos`.
    pub fn new(format: &'static str, src: &'a dyn Source, size: u64, pos: u64) -> Self {
        Self { src, size, pos, window: Vec::new(), window_start: 0, format }
    }

    /// Current offset.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Bytes left before the end of the content.
    pub fn remaining(&self) -> u64 {
        self.size.saturating_sub(self.pos)
    }

    /// Moves to an absolute offset (must not pass the end).
    pub fn seek(&mut self, pos: u64) -> Result<(), FormatError> {
        if pos > self.size {
            return Err(FormatError::truncated(self.format, format!("seek to {pos} past end {}", self.size)));
        }
        self.pos = pos;
        Ok(())
    }

    /// Skips `n` bytes, failing if that passes the end.
    pub fn skip(&mut self, n: u64, what: &str) -> Result<(), FormatError> {
        if n > self.remaining() {
            return Err(FormatError::truncated(
                self.format,
                format!("{what}: {n} bytes needed, {} left", self.remaining()),
            ));
        }
        self.pos += n;
        Ok(())
    }

    fn fill(&mut self, need: usize, what: &str) -> Result<usize, FormatError> {
        if (need as u64) > self.remaining() {
            return Err(FormatError::truncated(self.format, format!("{what} at offset {}", self.pos)));
        }
        let in_window =
            self.pos >= self.window_start && self.pos + need as u64 <= self.window_start + self.window.len() as u64;
        if !in_window {
            let len = (WINDOW.max(need) as u64).min(self.remaining());
            let len = usize::try_from(len).unwrap_or(WINDOW);
            self.window.resize(len, 0);
            let mut filled = 0usize;
            while filled < len {
                let dst = self.window.get_mut(filled..).unwrap_or_default();
                let n = self
                    .src
                    .read_at(dst, self.pos + filled as u64)
                    .map_err(|e| FormatError::Io { format: self.format, what: e.to_string() })?;
                if n == 0 {
                    return Err(FormatError::truncated(
                        self.format,
                        format!("{what}: file shrank at offset {}", self.pos + filled as u64),
                    ));
                }
                filled += n;
            }
            self.window_start = self.pos;
        }
        Ok(usize::try_from(self.pos - self.window_start).unwrap_or(0))
    }

    /// Borrows the next `n` bytes (`n` at most the window size) and advances.
    pub fn take(&mut self, n: usize, what: &str) -> Result<&[u8], FormatError> {
        let at = self.fill(n, what)?;
        self.pos += n as u64;
        self.window.get(at..at + n).ok_or_else(|| FormatError::truncated(self.format, what.to_string()))
    }

    /// Reads `n` bytes into a new vector, bounded by `limits::MAX_STRING` and the content size.
    pub fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>, FormatError> {
        if n > limits::MAX_STRING {
            return Err(FormatError::bound(self.format, format!("{what} length"), n, limits::MAX_STRING));
        }
        if n > self.remaining() {
            return Err(FormatError::truncated(
                self.format,
                format!("{what}: {n} bytes needed, {} left", self.remaining()),
            ));
        }
        let mut out = Vec::with_capacity(n as usize);
        let mut left = n as usize;
        while left > 0 {
            let chunk = left.min(WINDOW);
            out.extend_from_slice(self.take(chunk, what)?);
            left -= chunk;
        }
        Ok(out)
    }

    /// Reads one byte.
    pub fn u8(&mut self, what: &str) -> Result<u8, FormatError> {
        Ok(self.take(1, what)?.first().copied().unwrap_or(0))
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], FormatError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// Reads a little-endian u16.
    pub fn u16(&mut self, what: &str) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    /// Reads a little-endian u32.
    pub fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// Reads a little-endian u64.
    pub fn u64(&mut self, what: &str) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
}

/// Reads a little-endian u32 from `bytes` at `at`, if present.
pub fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// Reads a little-endian u16 from `bytes` at `at`, if present.
pub fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b: [u8; 2] = bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_le_bytes(b))
}

/// Reads a little-endian u64 from `bytes` at `at`, if present.
pub fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}
