//! GGUF metadata values: scalars, strings and (nested) arrays.

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    /// `UINT8`
    U8(u8),
    /// `INT8`
    I8(i8),
    /// `UINT16`
    U16(u16),
    /// `INT16`
    I16(i16),
    /// `UINT32`
    U32(u32),
    /// `INT32`
    I32(i32),
    /// `UINT64`
    U64(u64),
    /// `INT64`
    I64(i64),
    /// `FLOAT32`
    F32(f32),
    /// `FLOAT64`
    F64(f64),
    /// `BOOL`
    Bool(bool),
    /// `STRING`
    String(String),
    /// `ARRAY`
    Array(MetadataArray),
}

/// A metadata array; every element has the same type.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataArray {
    /// Array of `UINT8`.
    U8(Vec<u8>),
    /// Array of `INT8`.
    I8(Vec<i8>),
    /// Array of `UINT16`.
    U16(Vec<u16>),
    /// Array of `INT16`.
    I16(Vec<i16>),
    /// Array of `UINT32`.
    U32(Vec<u32>),
    /// Array of `INT32`.
    I32(Vec<i32>),
    /// Array of `UINT64`.
    U64(Vec<u64>),
    /// Array of `INT64`.
    I64(Vec<i64>),
    /// Array of `FLOAT32`.
    F32(Vec<f32>),
    /// Array of `FLOAT64`.
    F64(Vec<f64>),
    /// Array of `BOOL`.
    Bool(Vec<bool>),
    /// Array of `STRING`.
    String(Vec<String>),
    /// Array of arrays.
    Array(Vec<MetadataArray>),
}

impl MetadataValue {
    /// The GGUF name of the value's type, such as `"uint32"` or `"array of string"`.
    pub fn type_name(&self) -> &'static str {
        match self {
            MetadataValue::U8(_) => "uint8",
            MetadataValue::I8(_) => "int8",
            MetadataValue::U16(_) => "uint16",
            MetadataValue::I16(_) => "int16",
            MetadataValue::U32(_) => "uint32",
            MetadataValue::I32(_) => "int32",
            MetadataValue::U64(_) => "uint64",
            MetadataValue::I64(_) => "int64",
            MetadataValue::F32(_) => "float32",
            MetadataValue::F64(_) => "float64",
            MetadataValue::Bool(_) => "bool",
            MetadataValue::String(_) => "string",
            MetadataValue::Array(array) => array.type_name(),
        }
    }

    /// The value as an integer, if it is one of the integer types.
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            MetadataValue::U8(v) => v.into(),
            MetadataValue::I8(v) => v.into(),
            MetadataValue::U16(v) => v.into(),
            MetadataValue::I16(v) => v.into(),
            MetadataValue::U32(v) => v.into(),
            MetadataValue::I32(v) => v.into(),
            MetadataValue::U64(v) => v.into(),
            MetadataValue::I64(v) => v.into(),
            _ => return None,
        })
    }
}

impl MetadataArray {
    /// The GGUF name of the array's type, such as `"array of string"`.
    pub fn type_name(&self) -> &'static str {
        match self {
            MetadataArray::U8(_) => "array of uint8",
            MetadataArray::I8(_) => "array of int8",
            MetadataArray::U16(_) => "array of uint16",
            MetadataArray::I16(_) => "array of int16",
            MetadataArray::U32(_) => "array of uint32",
            MetadataArray::I32(_) => "array of int32",
            MetadataArray::U64(_) => "array of uint64",
            MetadataArray::I64(_) => "array of int64",
            MetadataArray::F32(_) => "array of float32",
            MetadataArray::F64(_) => "array of float64",
            MetadataArray::Bool(_) => "array of bool",
            MetadataArray::String(_) => "array of string",
            MetadataArray::Array(_) => "array of arrays",
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            MetadataArray::U8(v) => v.len(),
            MetadataArray::I8(v) => v.len(),
            MetadataArray::U16(v) => v.len(),
            MetadataArray::I16(v) => v.len(),
            MetadataArray::U32(v) => v.len(),
            MetadataArray::I32(v) => v.len(),
            MetadataArray::U64(v) => v.len(),
            MetadataArray::I64(v) => v.len(),
            MetadataArray::F32(v) => v.len(),
            MetadataArray::F64(v) => v.len(),
            MetadataArray::Bool(v) => v.len(),
            MetadataArray::String(v) => v.len(),
            MetadataArray::Array(v) => v.len(),
        }
    }

    /// Whether the array has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as integers, if this is an array of an integer type.
    pub fn to_i64s(&self) -> Option<Vec<i64>> {
        fn conv<T: Copy + TryInto<i64>>(v: &[T]) -> Option<Vec<i64>> {
            v.iter().map(|&x| x.try_into().ok()).collect()
        }
        match self {
            MetadataArray::U8(v) => conv(v),
            MetadataArray::I8(v) => conv(v),
            MetadataArray::U16(v) => conv(v),
            MetadataArray::I16(v) => conv(v),
            MetadataArray::U32(v) => conv(v),
            MetadataArray::I32(v) => conv(v),
            MetadataArray::U64(v) => conv(v),
            MetadataArray::I64(v) => conv(v),
            _ => None,
        }
    }
}
