//! Zero-copy fetch responses: record bytes go from segment files to the socket with
//! `sendfile(2)`, never through the broker's memory.
//!
//! The fetch handler puts a 16-byte marker in each partition's `records` field in place of
//! the data and hands over the file ranges ([`FileRegion`]) in the same order. After the
//! response is encoded, [`splice`] finds each marker, rewrites the length prefix in front of
//! it (an `INT32` before Fetch v12, an unsigned varint of length + 1 from v12 on) for the real
//! length, and the connection writes the pieces in order: encoded bytes, file range, encoded
//! bytes, … The frame size covers the real lengths. Markers carry a per-response random
//! nonce and the prefix is checked, so response content cannot be mistaken for one.
//!
//! Small ranges are the exception: a consumer at the tail fetches a few KiB per partition,
//! and there one `sendfile` per partition plus one `send` per encoded piece between them
//! cost more than copying the bytes. A range of at most [`INLINE_REGION_MAX`] bytes is read
//! from the page cache into the response (up to [`INLINE_BUDGET`] bytes per response), and
//! neighbouring bytes are merged, so such a response leaves in one `send`.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;

pub(crate) const MARKER_LEN: usize = 16;
/// The largest file range copied into the response instead of sent with `sendfile`.
pub(crate) const INLINE_REGION_MAX: u64 = 64 * 1024;
/// The most file bytes one response copies; the ranges after it go by `sendfile`.
pub(crate) const INLINE_BUDGET: u64 = 1024 * 1024;

/// A byte range of a segment file to send as a partition's records.
#[derive(Clone, Debug)]
pub(crate) struct FileRegion {
    pub(crate) file: Arc<File>,
    pub(crate) position: u64,
    pub(crate) len: u64,
}

/// Makes the markers of one response.
#[derive(Debug)]
pub(crate) struct Markers {
    nonce: [u8; 8],
}

impl Markers {
    pub(crate) fn new() -> Markers {
        Markers {
            nonce: *uuid::Uuid::new_v4()
                .as_bytes()
                .first_chunk()
                .expect("16 bytes"),
        }
    }

    pub(crate) fn marker(&self, index: usize) -> Bytes {
        let mut m = BytesMut::with_capacity(MARKER_LEN);
        m.put_slice(b"WZC!");
        m.put_u32(index as u32);
        m.put_slice(&self.nonce);
        m.freeze()
    }
}

/// One piece of a response on the wire.
#[derive(Debug)]
pub(crate) enum Piece {
    Bytes(Bytes),
    File(FileRegion),
}

fn unsigned_varint(mut v: u64, out: &mut BytesMut) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// Splits an encoded response frame (size prefix included) at the markers of `regions`,
/// fixing the length prefixes and the frame size. `flexible` is whether the records field is
/// compact (Fetch v12+). Small regions are read into the bytes around them (see the module
/// docs); the pieces returned alternate between bytes and file ranges.
pub(crate) fn splice(
    frame: Bytes,
    markers: &Markers,
    regions: Vec<FileRegion>,
    flexible: bool,
) -> io::Result<Vec<Piece>> {
    let invalid = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("zero-copy splice: {what}"),
        )
    };
    let (prefix_len, expected): (usize, &[u8]) = if flexible {
        (1, &[MARKER_LEN as u8 + 1])
    } else {
        (4, &[0, 0, 0, MARKER_LEN as u8])
    };
    let length_prefix = |len: u64, out: &mut BytesMut| -> io::Result<()> {
        if flexible {
            unsigned_varint(len + 1, out);
        } else {
            out.put_i32(i32::try_from(len).map_err(|_| invalid("records over 2 GiB"))?);
        }
        Ok(())
    };
    // The frame size with the real lengths, known before the first byte goes out.
    let mut total = frame.len() as u64 - 4;
    let mut scratch = BytesMut::with_capacity(8);
    for region in &regions {
        scratch.clear();
        length_prefix(region.len, &mut scratch)?;
        total += scratch.len() as u64 + region.len;
    }
    let placeholders = (regions.len() * (prefix_len + MARKER_LEN)) as u64;
    let total = total
        .checked_sub(placeholders)
        .ok_or_else(|| invalid("marker not found"))?;
    let size = i32::try_from(total).map_err(|_| invalid("response over 2 GiB"))?;

    let mut pieces = Vec::with_capacity(regions.len() * 2 + 1);
    // Bytes not yet pushed as a piece: encoded parts, length prefixes and inlined records.
    let mut pending = BytesMut::with_capacity(frame.len() + 64);
    pending.put_i32(size);
    let mut inlined = 0u64;
    let mut cursor = 4usize;
    for (i, region) in regions.into_iter().enumerate() {
        let marker = markers.marker(i);
        let at = cursor
            + frame[cursor..]
                .windows(MARKER_LEN)
                .position(|w| w == &marker[..])
                .ok_or_else(|| invalid("marker not found"))?;
        if at < cursor + prefix_len || &frame[at - prefix_len..at] != expected {
            return Err(invalid("unexpected length prefix"));
        }
        pending.put_slice(&frame[cursor..at - prefix_len]);
        length_prefix(region.len, &mut pending)?;
        if region.len <= INLINE_REGION_MAX && inlined + region.len <= INLINE_BUDGET {
            inline(&region, &mut pending)?;
            inlined += region.len;
        } else {
            pieces.push(Piece::Bytes(pending.split().freeze()));
            pieces.push(Piece::File(region));
        }
        cursor = at + MARKER_LEN;
    }
    pending.put_slice(&frame[cursor..]);
    pieces.push(Piece::Bytes(pending.freeze()));
    Ok(pieces)
}

/// Appends the bytes of `region` to `out`, read from the page cache.
fn inline(region: &FileRegion, out: &mut BytesMut) -> io::Result<()> {
    let start = out.len();
    let len = region.len as usize;
    out.reserve(len);
    // Zero-filled first: cheap beside the syscall this replaces.
    out.resize(start + len, 0);
    FileExt::read_exact_at(&*region.file, &mut out[start..], region.position).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            // Truncated under us, as `send_region` reports it.
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment shorter than the fetch range",
            )
        } else {
            e
        }
    })
}

/// Writes the pieces in order: bytes with `write_all`, file ranges with `sendfile(2)`.
pub(crate) async fn write_pieces(write: &mut OwnedWriteHalf, pieces: Vec<Piece>) -> io::Result<()> {
    // The socket has TCP_NODELAY, so each small encoded piece would leave as its own segment
    // between the file ranges. Corking holds them until the response is complete: fewer,
    // fuller segments, and less work on both ends.
    let corked = pieces.len() > 1 && set_cork(write, true).is_ok();
    let result = async {
        for piece in pieces {
            match piece {
                Piece::Bytes(b) => write.write_all(&b).await?,
                Piece::File(region) => send_region(write, &region).await?,
            }
        }
        Ok(())
    }
    .await;
    if corked {
        // Uncorking pushes out whatever is still held.
        set_cork(write, false)?;
    }
    result
}

fn set_cork(write: &OwnedWriteHalf, on: bool) -> io::Result<()> {
    socket2::SockRef::from(write.as_ref()).set_tcp_cork(on)
}

async fn send_region(write: &mut OwnedWriteHalf, region: &FileRegion) -> io::Result<()> {
    let stream = write.as_ref();
    let mut offset = region.position as i64;
    let end = (region.position + region.len) as i64;
    while offset < end {
        stream.writable().await?;
        let count = (end - offset) as usize;
        let sent = stream.try_io(Interest::WRITABLE, || {
            nix::sys::sendfile::sendfile(
                stream.as_fd(),
                region.file.as_fd(),
                Some(&mut offset),
                count,
            )
            .map_err(io::Error::from)
        });
        match sent {
            // The file ended early (truncated under us): the frame promised more bytes than
            // exist, so the connection cannot continue.
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment shorter than the fetch range",
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn region(bytes: &[u8]) -> (tempfile::NamedTempFile, FileRegion) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        let file = Arc::new(f.reopen().unwrap());
        (
            f,
            FileRegion {
                file,
                position: 2,
                len: (bytes.len() - 2) as u64,
            },
        )
    }

    fn flatten(pieces: &[Piece]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in pieces {
            match p {
                Piece::Bytes(b) => out.extend_from_slice(b),
                Piece::File(r) => {
                    let mut buf = vec![0u8; r.len as usize];
                    std::os::unix::fs::FileExt::read_exact_at(&*r.file, &mut buf, r.position)
                        .unwrap();
                    out.extend_from_slice(&buf);
                }
            }
        }
        out
    }

    #[test]
    fn splicing_gives_the_frame_inline_records_would_give() {
        for flexible in [false, true] {
            let markers = Markers::new();
            let data: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
            let (_keep, r) = region(&data);
            // A frame: size, some header bytes, length prefix + marker, trailing bytes.
            let mut frame = BytesMut::new();
            frame.put_i32(0);
            frame.put_slice(b"head");
            if flexible {
                frame.put_u8(17)
            } else {
                frame.put_i32(16)
            }
            frame.put_slice(&markers.marker(0));
            frame.put_slice(b"tail");
            let n = frame.len() as i32 - 4;
            frame[..4].copy_from_slice(&n.to_be_bytes());
            let pieces = splice(frame.freeze(), &markers, vec![r], flexible).unwrap();

            let mut expected = BytesMut::new();
            expected.put_i32(0);
            expected.put_slice(b"head");
            if flexible {
                unsigned_varint(299, &mut expected);
            } else {
                expected.put_i32(298);
            }
            expected.put_slice(&data[2..]);
            expected.put_slice(b"tail");
            let n = expected.len() as i32 - 4;
            expected[..4].copy_from_slice(&n.to_be_bytes());
            assert_eq!(flatten(&pieces), expected.to_vec(), "flexible={flexible}");
        }
    }

    /// A frame with one placeholder per region between `sep` bytes, and the frame the same
    /// response would be with the records inline.
    fn frames(markers: &Markers, regions: &[FileRegion], flexible: bool) -> (Bytes, Vec<u8>) {
        let mut frame = BytesMut::new();
        let mut expected = BytesMut::new();
        frame.put_i32(0);
        expected.put_i32(0);
        for (i, r) in regions.iter().enumerate() {
            frame.put_slice(b"sep");
            expected.put_slice(b"sep");
            if flexible {
                frame.put_u8(17);
                unsigned_varint(r.len + 1, &mut expected);
            } else {
                frame.put_i32(16);
                expected.put_i32(r.len as i32);
            }
            frame.put_slice(&markers.marker(i));
            let mut buf = vec![0u8; r.len as usize];
            std::os::unix::fs::FileExt::read_exact_at(&*r.file, &mut buf, r.position).unwrap();
            expected.put_slice(&buf);
        }
        frame.put_slice(b"end");
        expected.put_slice(b"end");
        let n = frame.len() as i32 - 4;
        frame[..4].copy_from_slice(&n.to_be_bytes());
        let n = expected.len() as i32 - 4;
        expected[..4].copy_from_slice(&n.to_be_bytes());
        (frame.freeze(), expected.to_vec())
    }

    fn kinds(pieces: &[Piece]) -> String {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Bytes(_) => 'B',
                Piece::File(_) => 'F',
            })
            .collect()
    }

    #[test]
    fn small_regions_are_inlined_into_one_piece_and_large_ones_sent_from_the_file() {
        let small: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let large: Vec<u8> = (0..(INLINE_REGION_MAX as u32 + 3))
            .map(|i| (i * 13) as u8)
            .collect();
        for flexible in [false, true] {
            let markers = Markers::new();
            let (_a, a) = region(&small);
            let (_b, b) = region(&small);
            let regions = vec![a.clone(), b];
            let (frame, expected) = frames(&markers, &regions, flexible);
            let pieces = splice(frame, &markers, regions, flexible).unwrap();
            assert_eq!(kinds(&pieces), "B", "flexible={flexible}");
            assert_eq!(flatten(&pieces), expected);

            let (_c, c) = region(&large);
            assert_eq!(c.len, INLINE_REGION_MAX + 1);
            let regions = vec![a.clone(), c, a.clone()];
            let (frame, expected) = frames(&markers, &regions, flexible);
            let pieces = splice(frame, &markers, regions, flexible).unwrap();
            assert_eq!(kinds(&pieces), "BFB", "flexible={flexible}");
            assert_eq!(flatten(&pieces), expected);
        }
    }

    #[test]
    fn inlining_stops_at_the_budget() {
        let data = vec![5u8; INLINE_REGION_MAX as usize + 2];
        let (_f, r) = region(&data);
        let count = (INLINE_BUDGET / INLINE_REGION_MAX) as usize + 2;
        let regions = vec![r; count];
        let markers = Markers::new();
        let (frame, expected) = frames(&markers, &regions, true);
        let pieces = splice(frame, &markers, regions, true).unwrap();
        let files = pieces
            .iter()
            .filter(|p| matches!(p, Piece::File(_)))
            .count();
        assert_eq!(files, 2, "{}", kinds(&pieces));
        assert_eq!(flatten(&pieces), expected);
    }

    #[test]
    fn a_region_past_the_end_of_its_file_is_an_error() {
        let (_f, mut r) = region(&[1, 2, 3, 4, 5, 6]);
        r.len += 10;
        let markers = Markers::new();
        let (frame, _) = {
            // Build the frame by hand: the expected bytes cannot be read.
            let mut frame = BytesMut::new();
            frame.put_i32(0);
            frame.put_i32(16);
            frame.put_slice(&markers.marker(0));
            let n = frame.len() as i32 - 4;
            frame[..4].copy_from_slice(&n.to_be_bytes());
            (frame.freeze(), ())
        };
        let err = splice(frame, &markers, vec![r], false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_frame_without_its_marker_is_refused() {
        let markers = Markers::new();
        let (_keep, r) = region(&[1, 2, 3, 4]);
        let mut frame = BytesMut::new();
        frame.put_i32(4);
        frame.put_slice(b"none");
        assert!(splice(frame.freeze(), &markers, vec![r], false).is_err());
    }
}
