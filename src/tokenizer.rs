//! A thin typed wrapper over Hugging Face's `tokenizers` crate: loads a
//! `tokenizer.json`, encodes and decodes, and names the special tokens.
//!
//! The same code runs natively and in the browser (the crate is built with
//! `unstable_wasm`, which swaps the C regex engine for fancy-regex);
//! tests/tokenizer.rs and tests/web.rs check that both give the ids Python's
//! `tokenizers` gives on the same text.
//!
//! ```
//! # fn main() -> Result<(), mose_lab::tokenizer::TokenizerError> {
//! let json = include_str!("../tests/fixtures/tokenizer/tokenizer.json");
//! let tokenizer = mose_lab::tokenizer::Tokenizer::from_json(json)?;
//! let ids = tokenizer.encode("The House adjourned.", false)?;
//! assert_eq!(tokenizer.decode(&ids, false)?, "The House adjourned.");
//! # Ok(()) }
//! ```

use serde::{Deserialize, Serialize};

use crate::chat::{ChatError, ChatTemplate};

/// Why a tokenizer could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The file is not a `tokenizer.json` the `tokenizers` crate can read.
    #[error(
        "this is not a valid tokenizer.json ({0}); use the tokenizer.json that came with the model"
    )]
    Load(String),
    /// Encoding failed.
    #[error("could not encode the text: {0}")]
    Encode(String),
    /// Decoding failed (an id outside the vocabulary, for example).
    #[error("could not decode token ids: {0}")]
    Decode(String),
    /// The model's chat template cannot be used.
    #[error(transparent)]
    Chat(#[from] ChatError),
    /// Training a new tokenizer failed.
    #[error("could not train the tokenizer ({0}); check that the corpus holds text")]
    Train(String),
}

/// The token a tokenizer trained by [`Tokenizer::train_bpe`] puts between
/// documents; it starts and ends a sequence, as GPT-2's does.
pub const END_OF_TEXT: &str = "<|endoftext|>";
/// The padding token of a tokenizer trained by [`Tokenizer::train_bpe`].
pub const PADDING: &str = "<|pad|>";

/// The ids of the tokens that start, end and pad a sequence, where the
/// tokenizer (or the model's config) names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecialTokens {
    /// Beginning of sequence.
    pub bos: Option<u32>,
    /// End of sequence: generation stops here.
    pub eos: Option<u32>,
    /// Padding, for batches of unequal length.
    pub pad: Option<u32>,
}

/// Conventional names of special tokens, most specific first. A model's
/// `config.json` ids take precedence ([`Tokenizer::with_special`]).
const BOS_NAMES: &[&str] = &[
    "<|begin_of_text|>",
    "<s>",
    "<|startoftext|>",
    "<bos>",
    "<|endoftext|>",
];
const EOS_NAMES: &[&str] = &[
    "<|end_of_text|>",
    "</s>",
    "<|endoftext|>",
    "<eos>",
    "<|im_end|>",
];
const PAD_NAMES: &[&str] = &["<|pad|>", "<pad>", "[PAD]"];

/// A loaded tokenizer with its special tokens.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    special: SpecialTokens,
    /// How the model reads a conversation, for an instruct model.
    chat: Option<ChatTemplate>,
}

impl Tokenizer {
    /// Loads a `tokenizer.json`. Special tokens are the file's added special
    /// tokens with conventional names (and its padding setting, for pad).
    ///
    /// # Errors
    /// [`TokenizerError::Load`] when the text is not a tokenizer the crate reads.
    pub fn from_json(json: &str) -> Result<Self, TokenizerError> {
        Self::from_bytes(json.as_bytes())
    }

    /// [`from_json`](Self::from_json) for bytes (a file the person picked).
    ///
    /// # Errors
    /// [`TokenizerError::Load`] when the bytes are not a tokenizer the crate reads.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TokenizerError> {
        let inner = tokenizers::Tokenizer::from_bytes(bytes)
            .map_err(|e| TokenizerError::Load(e.to_string()))?;
        let special_named = |names: &[&str]| {
            let added = inner.get_added_tokens_decoder();
            names.iter().find_map(|name| {
                added
                    .iter()
                    .find(|(_, token)| token.special && token.content == *name)
                    .map(|(id, _)| *id)
            })
        };
        let special = SpecialTokens {
            bos: special_named(BOS_NAMES),
            eos: special_named(EOS_NAMES),
            pad: inner
                .get_padding()
                .map(|p| p.pad_id)
                .or_else(|| special_named(PAD_NAMES)),
        };
        Ok(Self {
            inner,
            special,
            chat: None,
        })
    }

    /// Replaces the special tokens the model's config names (`bos_token_id`,
    /// `eos_token_id`, `pad_token_id`); `None` keeps what the file said.
    pub fn with_special(mut self, special: SpecialTokens) -> Self {
        self.special = SpecialTokens {
            bos: special.bos.or(self.special.bos),
            eos: special.eos.or(self.special.eos),
            pad: special.pad.or(self.special.pad),
        };
        self
    }

    /// Adds the model's chat template (`source`, Jinja), which names the
    /// start and end tokens as this tokenizer's special tokens' text. Set
    /// the special tokens first ([`with_special`](Self::with_special)).
    ///
    /// # Errors
    /// [`ChatError::Parse`] for text that is not a template.
    pub fn with_chat_template(mut self, source: &str) -> Result<Self, ChatError> {
        let text = |id: Option<u32>| {
            id.and_then(|id| self.inner.id_to_token(id))
                .unwrap_or_default()
        };
        let (bos, eos) = (text(self.special.bos), text(self.special.eos));
        self.chat = Some(ChatTemplate::new(source, &bos, &eos)?);
        Ok(self)
    }

    /// The model's chat template, if it has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat.as_ref()
    }

    /// The special tokens.
    pub fn special(&self) -> SpecialTokens {
        self.special
    }

    /// The id batches are padded with: the pad token, else the
    /// end-of-sequence token, else 0 (padding is masked out either way).
    pub fn pad_id(&self) -> u32 {
        self.special.pad.or(self.special.eos).unwrap_or(0)
    }

    /// Tokens in the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token written exactly as in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Token ids of `text`; `add_special_tokens` applies the file's
    /// post-processor (a BOS, for example).
    ///
    /// # Errors
    /// [`TokenizerError::Encode`] when the tokenizer's pipeline fails.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TokenizerError> {
        self.inner
            .encode_fast(text, add_special_tokens)
            .map(|encoding| encoding.get_ids().to_vec())
            .map_err(|e| TokenizerError::Encode(e.to_string()))
    }

    /// The text of `ids`; `skip_special_tokens` leaves out special tokens.
    ///
    /// # Errors
    /// [`TokenizerError::Decode`] for ids the vocabulary does not have.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizerError> {
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= self.vocab_size()) {
            return Err(TokenizerError::Decode(format!(
                "id {bad} is outside the vocabulary of {} tokens",
                self.vocab_size()
            )));
        }
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| TokenizerError::Decode(e.to_string()))
    }

    /// Trains a byte-level BPE tokenizer (GPT-2's pre-tokenizer and decoder,
    /// no prefix space) of `vocab_size` tokens on `texts`: [`END_OF_TEXT`] is
    /// id 0, [`PADDING`] id 1, then the 256 byte symbols, then the merges of
    /// pairs seen at least `min_frequency` times. Every byte stays encodable,
    /// so no text is ever out of vocabulary. The same texts give the same
    /// tokenizer.
    ///
    /// # Errors
    /// [`TokenizerError::Train`] when the trainer fails.
    pub fn train_bpe<I, S>(
        texts: I,
        vocab_size: usize,
        min_frequency: u64,
    ) -> Result<Self, TokenizerError>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
    {
        use tokenizers::AddedToken;
        use tokenizers::models::TrainerWrapper;
        use tokenizers::models::bpe::{BPE, BpeTrainer};
        use tokenizers::pre_tokenizers::byte_level::ByteLevel;

        let special = [END_OF_TEXT, PADDING].map(|t| AddedToken::from(t, true));
        let mut trainer = TrainerWrapper::BpeTrainer(
            BpeTrainer::builder()
                .vocab_size(vocab_size)
                .min_frequency(min_frequency)
                .show_progress(false)
                .special_tokens(special.to_vec())
                .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
                .build(),
        );
        let byte_level = ByteLevel::default().add_prefix_space(false);
        let mut inner = tokenizers::Tokenizer::new(BPE::default());
        inner
            .with_pre_tokenizer(Some(byte_level))
            .with_decoder(Some(byte_level));
        inner
            .train(&mut trainer, texts)
            .map_err(|e| TokenizerError::Train(e.to_string()))?;
        let json = inner
            .to_string(false)
            .map_err(|e| TokenizerError::Train(e.to_string()))?;
        Self::from_json(&json)
    }

    /// The `tokenizer.json` text of this tokenizer.
    ///
    /// # Errors
    /// [`TokenizerError::Load`] if the tokenizer cannot be serialised.
    pub fn to_json(&self) -> Result<String, TokenizerError> {
        self.inner
            .to_string(true)
            .map_err(|e| TokenizerError::Load(e.to_string()))
    }
}
