//! A bounded reader for zip archives (PKWARE APPNOTE 6.3), written for scanning:
//!
//! 1. the end-of-central-directory record is searched in the last 64 KiB + 22 bytes;
//! 2. zip64 sizes and offsets are honoured (PyTorch writes zip64 for large checkpoints);
//! 3. every count, size and offset is bounded by the archive size and [`limits`];
//! 4. member data is read by position: stored members directly, deflated ones through a
//!    decoder capped at the caller's limit, so a zip bomb costs at most that limit;
//! 5. data before the first header shifts every offset by as much ([`ZipArchive::open_anywhere`],
//!    as Python's `zipfile` computes it), and the local headers can be read on their own
//!    ([`ZipArchive::local_members`]) to find members the central directory does not list.
//!
//! Flags, CRCs and names are not validated: PyTorch's loader does not validate them either, and
//! a scanner must see what the loader sees.

use std::io::Read;

use super::reader::{le_u16, le_u32, le_u64};
use super::{limits, FormatError, ProbeInput};

const FORMAT: &str = "zip";
const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
/// The local file header signature as bytes.
pub const LOCAL_MAGIC: &[u8; 4] = b"PK\x03\x04";

/// One member of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipMember {
    /// Name as stored (forward slashes).
    pub name: String,
    /// Compression method (0 stored, 8 deflate, others unsupported).
    pub method: u16,
    /// Compressed size.
    pub compressed_size: u64,
    /// Uncompressed size.
    pub size: u64,
    /// Offset of the local file header.
    pub local_offset: u64,
}

/// The central directory of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipArchive {
    /// Members in central-directory order.
    pub members: Vec<ZipMember>,
}

fn eocd_position(input: &ProbeInput<'_>) -> Result<Option<(u64, Vec<u8>)>, FormatError> {
    let tail_len = input.size.min(65_535 + 22);
    let start = input.size - tail_len;
    let tail = input.read_exact_at(FORMAT, start, tail_len)?;
    let mut i = tail.len().saturating_sub(22);
    loop {
        if le_u32(&tail, i) == Some(EOCD_SIG) {
            return Ok(Some((start + i as u64, tail)));
        }
        if i == 0 {
            return Ok(None);
        }
        i -= 1;
    }
}

impl ZipArchive {
    /// Reads the central directory. `Ok(None)` when the content does not start like a zip;
    /// an error when it does but the directory is missing or out of bounds.
    pub fn open(input: &ProbeInput<'_>) -> Result<Option<Self>, FormatError> {
        if input.head.get(..4) != Some(LOCAL_MAGIC.as_slice()) {
            return Ok(None);
        }
        Self::open_anywhere(input)
    }

    /// Whether the content ends with an end-of-central-directory record (a zip, possibly with
    /// data before its first header, as self-extracting archives and polyglots have).
    pub fn has_eocd(input: &ProbeInput<'_>) -> bool {
        input.size >= 22 && matches!(eocd_position(input), Ok(Some(_)))
    }

    /// Reads the central directory wherever the archive starts. Data before the first header
    /// shifts every offset; as Python's `zipfile` does, the shift is the distance between
    /// where the directory is and where the end record says it is.
    pub fn open_anywhere(input: &ProbeInput<'_>) -> Result<Option<Self>, FormatError> {
        let Some((eocd, tail)) = eocd_position(input)? else {
            return Err(FormatError::invalid(FORMAT, "no end of central directory record"));
        };
        let tail_start = input.size - tail.len() as u64;
        let at = usize::try_from(eocd - tail_start).unwrap_or(0);
        let mut count = u64::from(le_u16(&tail, at + 10).unwrap_or(0));
        let mut cd_size = u64::from(le_u32(&tail, at + 12).unwrap_or(0));
        let mut cd_offset = u64::from(le_u32(&tail, at + 16).unwrap_or(0));
        let mut zip64 = false;
        if (count == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff) && eocd >= 20 {
            let loc = input.read_exact_at(FORMAT, eocd - 20, 20)?;
            if le_u32(&loc, 0) == Some(ZIP64_LOCATOR_SIG) {
                let rec_off = le_u64(&loc, 8).unwrap_or(u64::MAX);
                if rec_off.saturating_add(56) > input.size {
                    return Err(FormatError::bound(FORMAT, "zip64 record offset", rec_off, input.size));
                }
                let rec = input.read_exact_at(FORMAT, rec_off, 56)?;
                if le_u32(&rec, 0) != Some(ZIP64_EOCD_SIG) {
                    return Err(FormatError::invalid(FORMAT, "bad zip64 end of central directory"));
                }
                count = le_u64(&rec, 32).unwrap_or(0);
                cd_size = le_u64(&rec, 40).unwrap_or(0);
                cd_offset = le_u64(&rec, 48).unwrap_or(0);
                zip64 = true;
            }
        }
        let shift = if zip64 { 0 } else { eocd.saturating_sub(cd_offset.saturating_add(cd_size)) };
        let cd_offset = cd_offset.saturating_add(shift);
        if count > limits::MAX_ENTRIES {
            return Err(FormatError::bound(FORMAT, "member count", count, limits::MAX_ENTRIES));
        }
        if cd_size > limits::MAX_HEADER_BYTES || cd_offset.saturating_add(cd_size) > input.size {
            return Err(FormatError::bound(FORMAT, "central directory", cd_offset.saturating_add(cd_size), input.size));
        }
        let cd = input.read_exact_at(FORMAT, cd_offset, cd_size)?;
        let mut members = Vec::with_capacity(usize::try_from(count.min(4096)).unwrap_or(0));
        let mut p = 0usize;
        while le_u32(&cd, p) == Some(CENTRAL_SIG) && (members.len() as u64) < count.max(1) * 2 {
            let field16 = |o: usize| le_u16(&cd, p + o).unwrap_or(0);
            let field32 = |o: usize| le_u32(&cd, p + o).unwrap_or(0);
            let method = field16(10);
            let mut compressed_size = u64::from(field32(20));
            let mut size = u64::from(field32(24));
            let name_len = usize::from(field16(28));
            let extra_len = usize::from(field16(30));
            let comment_len = usize::from(field16(32));
            let mut local_offset = u64::from(field32(42));
            let name_start = p + 46;
            let Some(name) = cd.get(name_start..name_start + name_len) else {
                return Err(FormatError::truncated(FORMAT, "central directory name"));
            };
            let name = String::from_utf8_lossy(name).into_owned();
            // Zip64 extended information: present values replace the 0xffffffff ones in order.
            let extra = cd.get(name_start + name_len..name_start + name_len + extra_len).unwrap_or_default();
            let mut e = 0usize;
            while e + 4 <= extra.len() {
                let id = le_u16(extra, e).unwrap_or(0);
                let len = usize::from(le_u16(extra, e + 2).unwrap_or(0));
                if id == 0x0001 {
                    let mut q = e + 4;
                    for slot in [&mut size, &mut compressed_size, &mut local_offset] {
                        if *slot == 0xffff_ffff {
                            if let Some(v) = le_u64(extra, q) {
                                *slot = v;
                                q += 8;
                            }
                        }
                    }
                }
                e += 4 + len;
            }
            let local_offset = local_offset.saturating_add(shift);
            members.push(ZipMember { name, method, compressed_size, size, local_offset });
            p = name_start + name_len + extra_len + comment_len;
        }
        Ok(Some(Self { members }))
    }

    /// The members the local headers show, read one after another from the first local header
    /// (at most `max`): what a streaming extractor sees, whatever the central directory lists.
    /// The walk stops at the first byte that is not a local header, and at a member whose size
    /// the header leaves to a data descriptor unless it is deflated (the stream ends itself; at
    /// most `max_inflate` bytes are inflated in all to find where such members end; how many
    /// is returned beside the members, for the caller's budget).
    pub fn local_members(input: &ProbeInput<'_>, start: u64, max: usize, max_inflate: u64) -> (Vec<ZipMember>, u64) {
        let mut out = Vec::new();
        let mut at = start;
        let mut inflated = 0u64;
        while out.len() < max {
            let Ok(header) = input.read_exact_at(FORMAT, at, 30) else { break };
            if le_u32(&header, 0) != Some(LOCAL_SIG) {
                break;
            }
            let field16 = |o: usize| le_u16(&header, o).unwrap_or(0);
            let flags = field16(6);
            let method = field16(8);
            let mut compressed_size = u64::from(le_u32(&header, 18).unwrap_or(0));
            let mut size = u64::from(le_u32(&header, 22).unwrap_or(0));
            let name_len = u64::from(field16(26));
            let extra_len = u64::from(field16(28));
            let Ok(name) = input.read_exact_at(FORMAT, at + 30, name_len) else { break };
            let name = String::from_utf8_lossy(&name).into_owned();
            let data = at + 30 + name_len + extra_len;
            if compressed_size == 0xffff_ffff || size == 0xffff_ffff {
                if let Ok(extra) = input.read_exact_at(FORMAT, at + 30 + name_len, extra_len) {
                    if le_u16(&extra, 0) == Some(0x0001) {
                        size = le_u64(&extra, 4).unwrap_or(size);
                        compressed_size = le_u64(&extra, 12).unwrap_or(compressed_size);
                    }
                }
            }
            let descriptor = flags & 0x0008 != 0 && compressed_size == 0;
            if descriptor {
                if method != 8 {
                    break;
                }
                compressed_size = input.size.saturating_sub(data);
            }
            out.push(ZipMember { name, method, compressed_size, size, local_offset: at });
            if descriptor {
                // The deflate stream ends itself; its length is what the decoder consumed.
                let reader = super::compress::SourceReader { src: input.source, pos: data };
                let mut decoder = flate2::read::DeflateDecoder::new(reader);
                let left = max_inflate.saturating_sub(inflated);
                match std::io::copy(&mut decoder.by_ref().take(left), &mut std::io::sink()) {
                    Ok(n) if n < left => inflated += n,
                    _ => break,
                }
                let end = data + decoder.total_in();
                // The descriptor: optional signature, CRC, sizes (4 or 8 bytes each).
                let sig = input.read_exact_at(FORMAT, end, 4).ok().and_then(|b| le_u32(&b, 0));
                at = end + if sig == Some(0x0807_4b50) { 16 } else { 12 };
                continue;
            }
            at = match data.checked_add(compressed_size) {
                Some(next) if next <= input.size => next,
                _ => break,
            };
        }
        (out, inflated)
    }

    /// The member named exactly `name`.
    pub fn member(&self, name: &str) -> Option<&ZipMember> {
        self.members.iter().find(|m| m.name == name)
    }

    /// Reads up to `max` uncompressed bytes of `member`. Data larger than `max` is cut there.
    pub fn read(&self, input: &ProbeInput<'_>, member: &ZipMember, max: usize) -> Result<Vec<u8>, FormatError> {
        let header = input.read_exact_at(FORMAT, member.local_offset, 30)?;
        if le_u32(&header, 0) != Some(LOCAL_SIG) {
            return Err(FormatError::invalid(
                FORMAT,
                format!("member {:?}: no local header at {}", member.name, member.local_offset),
            ));
        }
        let name_len = u64::from(le_u16(&header, 26).unwrap_or(0));
        let extra_len = u64::from(le_u16(&header, 28).unwrap_or(0));
        let data = member.local_offset + 30 + name_len + extra_len;
        let avail = input.size.saturating_sub(data).min(member.compressed_size);
        match member.method {
            0 => input.read_exact_at(FORMAT, data, avail.min(max as u64)),
            8 => {
                let reader = super::compress::SourceReader { src: input.source, pos: data };
                // Sized from the header (bounded by `max`): no doubling past what is kept.
                let mut out = Vec::with_capacity(usize::try_from(member.size).unwrap_or(max).min(max));
                flate2::read::DeflateDecoder::new(reader.take(avail))
                    .take(max as u64)
                    .read_to_end(&mut out)
                    .map_err(|e| FormatError::invalid(FORMAT, format!("member {:?}: {e}", member.name)))?;
                Ok(out)
            }
            m => Err(FormatError::invalid(
                FORMAT,
                format!("member {:?}: unsupported compression method {m}", member.name),
            )),
        }
    }
}
