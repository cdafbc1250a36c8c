//! A compact binary encoding for what a read model packs into one BLOB column instead of a
//! column each: unsigned integers as LEB128 varints, signed ones zigzagged first, byte strings
//! and text behind their length, UUIDs as their 16 bytes.
//!
//! What costs a read model most while it is built from the log is per row and per column
//! (binding each value, building the record, inserting it), so rows that are only ever read
//! whole, such as a timeline entry or an audit entry, are cheaper written as one value.
//! [`Unpack`] reads back what the `put_` functions wrote and answers `None` for anything
//! malformed (truncated, too long, not UTF-8), never panics. The functions are `#[inline]`:
//! they run per field, in other crates, which could not inline them otherwise.

/// Appends `value` as LEB128 (seven bits a byte, low first).
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends a signed value, zigzagged so that small negative values stay short.
#[inline]
pub fn put_signed(out: &mut Vec<u8>, value: i64) {
    put_varint(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// Appends `bytes` behind their length.
#[inline]
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends `text` behind its length.
#[inline]
pub fn put_str(out: &mut Vec<u8>, text: &str) {
    put_bytes(out, text.as_bytes());
}

/// Appends a UUID's 16 bytes.
#[inline]
pub fn put_id(out: &mut Vec<u8>, id: &[u8; 16]) {
    out.extend_from_slice(id);
}

/// An optional field: `Some(None)` when `present` is false, else what `read` gives, wrapped
/// (`None` when it is malformed). With `?`, reads a field a presence bit announces.
#[inline]
pub fn optional<T>(present: bool, read: impl FnOnce() -> Option<T>) -> Option<Option<T>> {
    if present {
        read().map(Some)
    } else {
        Some(None)
    }
}

/// Reads what the `put_` functions wrote, front to back.
#[derive(Debug, Clone, Copy)]
pub struct Unpack<'a>(&'a [u8]);

impl<'a> Unpack<'a> {
    /// Starts reading `bytes`.
    #[inline]
    pub fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    /// Whether everything has been read.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One byte.
    #[inline]
    pub fn byte(&mut self) -> Option<u8> {
        let (&byte, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(byte)
    }

    /// A value written by [`put_varint`].
    #[inline]
    pub fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        let mut shift = 0u32;
        loop {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                return Some(value);
            }
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
    }

    /// A value written by [`put_signed`].
    #[inline]
    pub fn signed(&mut self) -> Option<i64> {
        let value = self.varint()?;
        Some(((value >> 1) as i64) ^ -((value & 1) as i64))
    }

    /// Bytes written by [`put_bytes`].
    #[inline]
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        let (taken, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(taken)
    }

    /// Text written by [`put_str`].
    #[inline]
    pub fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    /// A UUID written by [`put_id`].
    #[inline]
    pub fn id(&mut self) -> Option<[u8; 16]> {
        let (taken, rest) = self.0.split_at_checked(16)?;
        self.0 = rest;
        taken.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_as_written() {
        let mut out = Vec::new();
        let unsigned = [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX];
        let signed = [0, -1, 1, -64, 64, i64::MIN, i64::MAX];
        for value in unsigned {
            put_varint(&mut out, value);
        }
        for value in signed {
            put_signed(&mut out, value);
        }
        put_str(&mut out, "héllo");
        put_bytes(&mut out, &[]);
        put_id(&mut out, &[7; 16]);

        let mut input = Unpack::new(&out);
        for value in unsigned {
            assert_eq!(input.varint(), Some(value));
        }
        for value in signed {
            assert_eq!(input.signed(), Some(value));
        }
        assert_eq!(input.str(), Some("héllo"));
        assert_eq!(input.bytes(), Some(&[][..]));
        assert_eq!(input.id(), Some([7; 16]));
        assert!(input.is_empty());
        assert_eq!(input.byte(), None);
    }

    #[test]
    fn malformed_input_reads_as_none() {
        // A varint that never ends, one longer than 64 bits, a length beyond the input, text
        // that is not UTF-8, a UUID cut short.
        assert_eq!(Unpack::new(&[0x80, 0x80]).varint(), None);
        assert_eq!(Unpack::new(&[0xff; 11]).varint(), None);
        assert_eq!(Unpack::new(&[5, b'a']).bytes(), None);
        assert_eq!(Unpack::new(&[2, 0xc3, 0x28]).str(), None);
        assert_eq!(Unpack::new(&[1; 15]).id(), None);
    }
}
