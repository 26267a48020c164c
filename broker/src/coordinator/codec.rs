//! The encodings of Kafka's internal record schemas (`__consumer_offsets`,
//! `__transaction_state`): big-endian integers, `int16`/`int32` length prefixes in classic
//! versions, and in flexible versions compact (unsigned varint, length + 1) lengths and
//! tagged fields. A [`Reader`] refuses truncated input, lengths longer than what is left and
//! invalid UTF-8 with a [`CodecError`] naming what was read and where; it never panics.

use bytes::{BufMut, Bytes};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("{what} is truncated: {needed} bytes needed at byte {at}")]
    Truncated {
        what: &'static str,
        at: usize,
        needed: usize,
    },
    #[error("{what} has unsupported schema version {version}")]
    UnsupportedVersion { what: &'static str, version: i16 },
    #[error("{what} has an invalid length {length} at byte {at}")]
    InvalidLength {
        what: &'static str,
        at: usize,
        length: i64,
    },
    #[error("{what} holds a string that is not UTF-8 at byte {at}")]
    InvalidUtf8 { what: &'static str, at: usize },
    #[error("{what} holds null where a value is required, at byte {at}")]
    UnexpectedNull { what: &'static str, at: usize },
}

pub(crate) struct Writer {
    buf: Vec<u8>,
    flexible: bool,
}

impl Writer {
    pub(crate) fn new(flexible: bool) -> Self {
        Writer {
            buf: Vec::new(),
            flexible,
        }
    }

    pub(crate) fn finish(self) -> Bytes {
        Bytes::from(self.buf)
    }

    pub(crate) fn i8(&mut self, v: i8) {
        self.buf.put_i8(v);
    }

    /// Bytes as they are (a tagged field's prepared contents).
    pub(crate) fn raw(&mut self, b: &[u8]) {
        self.buf.put_slice(b);
    }

    pub(crate) fn i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    pub(crate) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    /// A length prefix: `int16`/`int32` or compact (length + 1, 0 for null).
    pub(crate) fn length(&mut self, len: Option<usize>, wide: bool) {
        if self.flexible {
            self.varint(len.map_or(0, |l| l as u64 + 1));
        } else {
            let len = len.map_or(-1, |l| l as i64);
            if wide {
                self.i32(len as i32);
            } else {
                self.i16(len as i16);
            }
        }
    }

    pub(crate) fn nullable_string(&mut self, s: Option<&str>) {
        self.length(s.map(str::len), false);
        if let Some(s) = s {
            self.buf.put_slice(s.as_bytes());
        }
    }

    pub(crate) fn string(&mut self, s: &str) {
        self.nullable_string(Some(s));
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.length(Some(b.len()), true);
        self.buf.put_slice(b);
    }

    pub(crate) fn array_len(&mut self, n: usize) {
        self.length(Some(n), true);
    }

    pub(crate) fn tagged_fields(&mut self) {
        if self.flexible {
            self.varint(0);
        }
    }
}

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
    flexible: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str, flexible: bool) -> Self {
        Reader {
            buf,
            pos: 0,
            what,
            flexible,
        }
    }

    /// How many bytes have been read.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(CodecError::Truncated {
                what: self.what,
                at: self.pos,
                needed: n,
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    pub(crate) fn i16(&mut self) -> Result<i16, CodecError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, CodecError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub(crate) fn varint(&mut self) -> Result<u64, CodecError> {
        let at = self.pos;
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        // Kafka's unsigned varints are 32-bit: at most 5 bytes.
        Err(CodecError::InvalidLength {
            what: self.what,
            at,
            length: -1,
        })
    }

    /// A length prefix; `None` for null.
    pub(crate) fn length(&mut self, wide: bool) -> Result<Option<usize>, CodecError> {
        let at = self.pos;
        let len = if self.flexible {
            self.varint()? as i64 - 1
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        match len {
            -1 => Ok(None),
            // Every element takes at least one byte: a longer count is garbage, refused before
            // anything is allocated for it.
            len if len >= 0 && (len as usize) <= self.buf.len() - self.pos => {
                Ok(Some(len as usize))
            }
            length => Err(CodecError::InvalidLength {
                what: self.what,
                at,
                length,
            }),
        }
    }

    pub(crate) fn required(&mut self, wide: bool) -> Result<usize, CodecError> {
        let at = self.pos;
        self.length(wide)?.ok_or(CodecError::UnexpectedNull {
            what: self.what,
            at,
        })
    }

    pub(crate) fn nullable_string(&mut self) -> Result<Option<String>, CodecError> {
        let Some(len) = self.length(false)? else {
            return Ok(None);
        };
        let at = self.pos;
        let raw = self.take(len)?;
        let s = std::str::from_utf8(raw).map_err(|_| CodecError::InvalidUtf8 {
            what: self.what,
            at,
        })?;
        Ok(Some(s.to_owned()))
    }

    pub(crate) fn string(&mut self) -> Result<String, CodecError> {
        let at = self.pos;
        self.nullable_string()?.ok_or(CodecError::UnexpectedNull {
            what: self.what,
            at,
        })
    }

    pub(crate) fn bytes(&mut self) -> Result<Bytes, CodecError> {
        let len = self.required(true)?;
        Ok(Bytes::copy_from_slice(self.take(len)?))
    }

    pub(crate) fn array_len(&mut self) -> Result<usize, CodecError> {
        self.required(true)
    }

    pub(crate) fn skip_tagged_fields(&mut self) -> Result<(), CodecError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.varint()?;
        for _ in 0..count {
            self.varint()?;
            let size = self.varint()?;
            self.take(size as usize)?;
        }
        Ok(())
    }
}
