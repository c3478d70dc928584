//! Bounds-checked little-endian reads of a GGUF file's header, metadata and tensor table.

use super::*;

/// A cursor over the file; every read checks the bytes are there first.
pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    pub(super) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let slice = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end));
        match slice {
            Some(slice) => {
                self.pos += n;
                Ok(slice)
            }
            None => Err(GgufError::Truncated {
                what: what.to_owned(),
                offset: self.pos as u64,
                needed: n as u64,
                available: self.remaining() as u64,
            }),
        }
    }

    pub(super) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let offset = self.pos;
        let slice = self.take(N, what)?;
        <[u8; N]>::try_from(slice).map_err(|_| GgufError::Truncated {
            what: what.to_owned(),
            offset: offset as u64,
            needed: N as u64,
            available: slice.len() as u64,
        })
    }

    pub(super) fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(u8::from_le_bytes(self.array(what)?))
    }
    pub(super) fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(super) fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Reads a count and checks that `count * min_size` bytes can still follow.
    pub(super) fn count(&mut self, what: &str, min_size: u64, max: u64) -> Result<u64> {
        let offset = self.pos;
        let count = self.u64(what)?;
        if count > max {
            return Err(too_large(what, count, max));
        }
        let needed = count.saturating_mul(min_size);
        if needed > self.remaining() as u64 {
            return Err(GgufError::Truncated {
                what: format!("{count} × {what}"),
                offset: offset as u64,
                needed,
                available: self.remaining() as u64,
            });
        }
        Ok(count)
    }

    pub(super) fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u64(what)?;
        let len = to_usize(len, what)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| corrupt(format!("{what} is not valid UTF-8")))
    }
}

/// Reads `n` values; the capacity reserved upfront is bounded whatever `n` the file claims.
pub(super) fn read_vec<T>(
    r: &mut Reader<'_>,
    n: usize,
    mut one: impl FnMut(&mut Reader<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(n.min(MAX_RESERVE));
    for _ in 0..n {
        out.push(one(r)?);
    }
    Ok(out)
}

/// Fewest bytes one value of GGUF value type `ty` takes, or `None` for an unknown type.
pub(super) fn min_value_size(ty: u32) -> Option<u64> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 => 8,
        9 => 12,
        10..=12 => 8,
        _ => return None,
    })
}

pub(super) fn read_value(
    r: &mut Reader<'_>,
    ty: u32,
    what: &str,
    depth: u32,
) -> Result<MetadataValue> {
    Ok(match ty {
        0 => MetadataValue::U8(r.u8(what)?),
        1 => MetadataValue::I8(i8::from_le_bytes(r.array(what)?)),
        2 => MetadataValue::U16(u16::from_le_bytes(r.array(what)?)),
        3 => MetadataValue::I16(i16::from_le_bytes(r.array(what)?)),
        4 => MetadataValue::U32(r.u32(what)?),
        5 => MetadataValue::I32(i32::from_le_bytes(r.array(what)?)),
        6 => MetadataValue::F32(f32::from_le_bytes(r.array(what)?)),
        7 => MetadataValue::Bool(r.u8(what)? != 0),
        8 => MetadataValue::String(r.string(what)?),
        9 => MetadataValue::Array(read_array(r, what, depth + 1)?),
        10 => MetadataValue::U64(r.u64(what)?),
        11 => MetadataValue::I64(i64::from_le_bytes(r.array(what)?)),
        12 => MetadataValue::F64(f64::from_le_bytes(r.array(what)?)),
        _ => return Err(corrupt(format!("{what} has unknown value type {ty}"))),
    })
}

pub(super) fn read_array(r: &mut Reader<'_>, what: &str, depth: u32) -> Result<MetadataArray> {
    if depth > MAX_ARRAY_DEPTH {
        return Err(too_large(
            format!("the array nesting depth of {what}"),
            depth.into(),
            MAX_ARRAY_DEPTH.into(),
        ));
    }
    let ty = r.u32(what)?;
    let Some(min_size) = min_value_size(ty) else {
        return Err(corrupt(format!(
            "{what} is an array of unknown value type {ty}"
        )));
    };
    let n = r.count(&format!("elements of {what}"), min_size, MAX_ARRAY_LEN)?;
    let n = to_usize(n, what)?;
    Ok(match ty {
        0 => MetadataArray::U8(r.take(n, what)?.to_vec()),
        1 => MetadataArray::I8(read_vec(r, n, |r| Ok(i8::from_le_bytes(r.array(what)?)))?),
        2 => MetadataArray::U16(read_vec(r, n, |r| Ok(u16::from_le_bytes(r.array(what)?)))?),
        3 => MetadataArray::I16(read_vec(r, n, |r| Ok(i16::from_le_bytes(r.array(what)?)))?),
        4 => MetadataArray::U32(read_vec(r, n, |r| r.u32(what))?),
        5 => MetadataArray::I32(read_vec(r, n, |r| Ok(i32::from_le_bytes(r.array(what)?)))?),
        6 => MetadataArray::F32(read_vec(r, n, |r| Ok(f32::from_le_bytes(r.array(what)?)))?),
        7 => MetadataArray::Bool(read_vec(r, n, |r| Ok(r.u8(what)? != 0))?),
        8 => MetadataArray::String(read_vec(r, n, |r| r.string(what))?),
        9 => MetadataArray::Array(read_vec(r, n, |r| read_array(r, what, depth + 1))?),
        10 => MetadataArray::U64(read_vec(r, n, |r| r.u64(what))?),
        11 => MetadataArray::I64(read_vec(r, n, |r| Ok(i64::from_le_bytes(r.array(what)?)))?),
        12 => MetadataArray::F64(read_vec(r, n, |r| Ok(f64::from_le_bytes(r.array(what)?)))?),
        _ => {
            return Err(corrupt(format!(
                "{what} is an array of unknown value type {ty}"
            )));
        }
    })
}
