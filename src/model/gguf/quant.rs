//! ggml's tensor types and their block formats turned into f32 (`ggml.h`,
//! `dequantize_row_*` in ggml-quants.c).

use super::*;

/// A ggml tensor type, as numbered in `ggml.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// IEEE half float.
    F16,
    /// Blocks of 32: f16 scale, 16 bytes of 4-bit values.
    Q4_0,
    /// Blocks of 32: f16 scale, f16 minimum, 16 bytes of 4-bit values.
    Q4_1,
    /// Blocks of 32: f16 scale, 32 × i8.
    Q8_0,
    /// bfloat16.
    BF16,
    /// Any other type, known by name or not (not readable here).
    Other {
        /// ggml's number for the type.
        id: u32,
        /// ggml's name for it, or `"unknown"`.
        name: &'static str,
        /// (elements per block, bytes per block), when known.
        block: Option<(u64, u64)>,
    },
}

impl GgmlType {
    /// The type with ggml's number `id`.
    pub fn from_id(id: u32) -> GgmlType {
        let other = |name, block| GgmlType::Other { id, name, block };
        match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            4 => other("Q4_2", None),
            5 => other("Q4_3", None),
            6 => other("Q5_0", Some((32, 22))),
            7 => other("Q5_1", Some((32, 24))),
            8 => GgmlType::Q8_0,
            9 => other("Q8_1", Some((32, 36))),
            10 => other("Q2_K", Some((256, 84))),
            11 => other("Q3_K", Some((256, 110))),
            12 => other("Q4_K", Some((256, 144))),
            13 => other("Q5_K", Some((256, 176))),
            14 => other("Q6_K", Some((256, 210))),
            15 => other("Q8_K", Some((256, 292))),
            16 => other("IQ2_XXS", Some((256, 66))),
            17 => other("IQ2_XS", Some((256, 74))),
            18 => other("IQ3_XXS", Some((256, 98))),
            19 => other("IQ1_S", Some((256, 50))),
            20 => other("IQ4_NL", Some((32, 18))),
            21 => other("IQ3_S", Some((256, 110))),
            22 => other("IQ2_S", Some((256, 82))),
            23 => other("IQ4_XS", Some((256, 136))),
            24 => other("I8", Some((1, 1))),
            25 => other("I16", Some((1, 2))),
            26 => other("I32", Some((1, 4))),
            27 => other("I64", Some((1, 8))),
            28 => other("F64", Some((1, 8))),
            29 => other("IQ1_M", Some((256, 56))),
            30 => GgmlType::BF16,
            31 => other("Q4_0_4_4", None),
            32 => other("Q4_0_4_8", None),
            33 => other("Q4_0_8_8", None),
            34 => other("TQ1_0", Some((256, 54))),
            35 => other("TQ2_0", Some((256, 66))),
            36 => other("IQ4_NL_4_4", None),
            37 => other("IQ4_NL_4_8", None),
            38 => other("IQ4_NL_8_8", None),
            39 => other("MXFP4", Some((32, 17))),
            _ => other("unknown", None),
        }
    }

    /// ggml's name for the type, such as `"Q4_1"`.
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::BF16 => "BF16",
            GgmlType::Other { name, .. } => name,
        }
    }

    /// (elements per block, bytes per block), when known.
    pub fn block(self) -> Option<(u64, u64)> {
        match self {
            GgmlType::F32 => Some((1, 4)),
            GgmlType::F16 | GgmlType::BF16 => Some((1, 2)),
            GgmlType::Q4_0 => Some((32, 18)),
            GgmlType::Q4_1 => Some((32, 20)),
            GgmlType::Q8_0 => Some((32, 34)),
            GgmlType::Other { block, .. } => block,
        }
    }

    /// Whether [`Gguf::tensor_f32`] can read tensors of this type.
    pub fn is_supported(self) -> bool {
        !matches!(self, GgmlType::Other { .. })
    }
}

/// Dequantises `raw`, stored as `ty`, into `n` f32 values.
pub(super) fn dequantize(ty: GgmlType, raw: &[u8], n: usize, name: &str) -> Result<Vec<f32>> {
    let mut out: Vec<f32> = Vec::with_capacity(n);
    match ty {
        GgmlType::F32 => {
            let (words, _) = raw.as_chunks::<4>();
            out.extend(words.iter().map(|w| f32::from_le_bytes(*w)));
        }
        GgmlType::F16 => {
            let (halves, _) = raw.as_chunks::<2>();
            out.extend(halves.iter().map(|h| half::f16::from_le_bytes(*h).to_f32()));
        }
        GgmlType::BF16 => {
            let (halves, _) = raw.as_chunks::<2>();
            out.extend(
                halves
                    .iter()
                    .map(|h| half::bf16::from_le_bytes(*h).to_f32()),
            );
        }
        GgmlType::Q8_0 => {
            // block_q8_0 { ggml_half d; int8_t qs[32]; }: y[j] = qs[j] * d
            let (blocks, _) = raw.as_chunks::<34>();
            for block in blocks {
                let [d0, d1, qs @ ..] = block;
                let d = half::f16::from_le_bytes([*d0, *d1]).to_f32();
                out.extend(qs.iter().map(|&q| f32::from(q as i8) * d));
            }
        }
        GgmlType::Q4_0 => {
            // block_q4_0 { ggml_half d; uint8_t qs[16]; }:
            // y[j] = ((qs[j] & 0xF) - 8) * d, y[j + 16] = ((qs[j] >> 4) - 8) * d
            let (blocks, _) = raw.as_chunks::<18>();
            for block in blocks {
                let [d0, d1, qs @ ..] = block;
                let d = half::f16::from_le_bytes([*d0, *d1]).to_f32();
                out.extend(qs.iter().map(|&q| f32::from(i16::from(q & 0x0F) - 8) * d));
                out.extend(qs.iter().map(|&q| f32::from(i16::from(q >> 4) - 8) * d));
            }
        }
        GgmlType::Q4_1 => {
            // block_q4_1 { ggml_half d; ggml_half m; uint8_t qs[16]; }:
            // y[j] = (qs[j] & 0xF) * d + m, y[j + 16] = (qs[j] >> 4) * d + m
            let (blocks, _) = raw.as_chunks::<20>();
            for block in blocks {
                let [d0, d1, m0, m1, qs @ ..] = block;
                let d = half::f16::from_le_bytes([*d0, *d1]).to_f32();
                let m = half::f16::from_le_bytes([*m0, *m1]).to_f32();
                out.extend(qs.iter().map(|&q| f32::from(q & 0x0F) * d + m));
                out.extend(qs.iter().map(|&q| f32::from(q >> 4) * d + m));
            }
        }
        GgmlType::Other {
            name: type_name, ..
        } => {
            return Err(GgufError::UnsupportedTensorType {
                name: name.to_owned(),
                ggml_type: type_name,
            });
        }
    }
    if out.len() != n {
        return Err(corrupt(format!(
            "tensor \"{name}\" holds {} values, expected {n}",
            out.len()
        )));
    }
    Ok(out)
}
