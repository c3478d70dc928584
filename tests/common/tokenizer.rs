//! One test body for the tokenizer, run natively (tests/model.rs) and in the
//! browser (tests/web.rs): ids must equal Python `tokenizers`' on ~300 KB of
//! varied text (tests/fixtures/tokenizer/, made by scripts/make-fixtures.sh).

use mose_lab::tokenizer::Tokenizer;

use super::llama::Reference;

pub const TOKENIZER_JSON: &str = include_str!("../fixtures/tokenizer/tokenizer.json");
pub const TEXT: &str = include_str!("../fixtures/tokenizer/text.txt");
pub const EXPECTED: &[u8] = include_bytes!("../fixtures/tokenizer/expected.safetensors");

/// Encodes the fixture text whole and line by line, and decodes it back.
/// Returns how many ids were compared.
pub fn check_tokenizer() -> usize {
    let tokenizer = Tokenizer::from_json(TOKENIZER_JSON).expect("the tokenizer fixture loads");
    let expected = Reference::parse(EXPECTED);
    let as_u32 = |ids: Vec<i64>| ids.into_iter().map(|id| id as u32).collect::<Vec<u32>>();

    let (_, whole) = expected.ids("ids");
    let whole = as_u32(whole);
    let ids = tokenizer.encode(TEXT, false).expect("encodes");
    if let Some(at) = ids.iter().zip(&whole).position(|(a, b)| a != b) {
        panic!(
            "ids differ from Python's at position {at}: {:?} vs {:?}",
            &ids[at..(at + 8).min(ids.len())],
            &whole[at..(at + 8).min(whole.len())]
        );
    }
    assert_eq!(ids.len(), whole.len(), "number of ids");
    assert_eq!(
        tokenizer.decode(&ids, false).expect("decodes"),
        TEXT,
        "decode(encode(text)) == text"
    );

    let (_, line_ids) = expected.ids("line_ids");
    let (_, offsets) = expected.ids("line_offsets");
    let line_ids = as_u32(line_ids);
    for (i, line) in TEXT
        .split_inclusive('\n')
        .take(offsets.len() - 1)
        .enumerate()
    {
        let want = &line_ids[offsets[i] as usize..offsets[i + 1] as usize];
        assert_eq!(
            tokenizer.encode(line, false).expect("encodes"),
            want,
            "line {i}: {line:?}"
        );
    }

    let special = tokenizer.special();
    assert_eq!(
        special.eos,
        tokenizer.token_id("<|endoftext|>"),
        "eos from the file"
    );
    assert_eq!(
        special.pad,
        tokenizer.token_id("<|pad|>"),
        "pad from the file"
    );
    ids.len() + line_ids.len()
}
