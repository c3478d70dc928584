//! ggml's block formats turned into f32 (`dequantize_row_*` in ggml-quants.c).

use super::*;

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
