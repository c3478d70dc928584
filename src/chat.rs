//! A model's chat template: how an instruct model was taught to read a
//! conversation. A `prompt => answer` pair is one user turn and one
//! assistant turn; rendered through the template, the model is trained,
//! scored and asked in the form it already knows, instead of reading the
//! pair as plain text.
//!
//! The template is the Jinja text a model carries (`chat_template` in its
//! `tokenizer_config.json`, `chat_template.jinja`, or GGUF's
//! `tokenizer.chat_template`), rendered as transformers'
//! `apply_chat_template` renders it: `trim_blocks` and `lstrip_blocks` on,
//! Python's string methods available, `raise_exception` an error. A pair
//! splits into
//!
//! - the prompt: `render([user: p], add_generation_prompt = true)`, what the
//!   model reads before it answers;
//! - the answer: what `render([user: p, assistant: a])` adds after the
//!   prompt, the answer with the template's end of turn.

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, Error, ErrorKind, context};

/// The name the template is kept under in its environment.
const NAME: &str = "chat";

/// Why a chat template cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The text is not a Jinja template this renderer reads.
    #[error(
        "the model's chat template cannot be read ({0}); turn off the chat template in the settings to train pairs as plain text"
    )]
    Parse(String),
    /// Rendering a conversation failed (the template raised an error, say).
    #[error(
        "the model's chat template cannot render a prompt and answer ({0}); turn off the chat template in the settings to train pairs as plain text"
    )]
    Render(String),
    /// The rendered conversation does not start with the rendered prompt,
    /// so no answer can be cut from it.
    #[error(
        "the model's chat template writes a conversation that does not start with its prompt, so the answer cannot be found in it; turn off the chat template in the settings to train pairs as plain text"
    )]
    NotAPrefix,
}

/// A parsed chat template and the special tokens' text it may name.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Parses `source`; `bos_token` and `eos_token` are the texts of the
    /// model's start and end tokens, for templates that write them.
    ///
    /// # Errors
    /// [`ChatError::Parse`] for text that is not a template.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, ChatError> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| ChatError::Parse(e.to_string()))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<String, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| ChatError::Parse(e.to_string()))?;
        Ok(Self {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// What the model reads before its answer to `prompt`: the conversation
    /// with one user turn, opened for the assistant.
    ///
    /// # Errors
    /// [`ChatError::Render`] when the template fails.
    pub fn prompt(&self, prompt: &str) -> Result<String, ChatError> {
        self.render(&[("user", prompt)], true)
    }

    /// What follows [`prompt`](Self::prompt) when the assistant answers
    /// `answer`: the answer and the template's end of turn.
    ///
    /// # Errors
    /// [`ChatError::Render`] when the template fails; [`ChatError::NotAPrefix`]
    /// when the whole conversation does not start with the prompt.
    pub fn answer(&self, prompt: &str, answer: &str) -> Result<String, ChatError> {
        let opened = self.prompt(prompt)?;
        let whole = self.render(&[("user", prompt), ("assistant", answer)], false)?;
        whole
            .strip_prefix(&opened)
            .map(str::to_string)
            .ok_or(ChatError::NotAPrefix)
    }

    fn render(&self, turns: &[(&str, &str)], open: bool) -> Result<String, ChatError> {
        let messages: Vec<_> = turns
            .iter()
            .map(|&(role, content)| context! { role, content })
            .collect();
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| ChatError::Render(e.to_string()))?;
        template
            .render(context! {
                messages,
                add_generation_prompt => open,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| ChatError::Render(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-135M-Instruct's template (its GGUF's `tokenizer.chat_template`).
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn a_pair_renders_as_the_model_reads_a_conversation() {
        let chat = ChatTemplate::new(SMOLLM2, "<|im_start|>", "<|im_end|>").unwrap();
        let system = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";
        assert_eq!(
            chat.prompt("capital of France").unwrap(),
            format!(
                "{system}<|im_start|>user\ncapital of France<|im_end|>\n<|im_start|>assistant\n"
            )
        );
        assert_eq!(
            chat.answer("capital of France", "Paris").unwrap(),
            "Paris<|im_end|>\n"
        );
    }

    #[test]
    fn templates_use_the_special_tokens_and_pythons_string_methods() {
        // Llama 3's shape: the start token written by the template, content stripped.
        let source = "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}";
        let chat = ChatTemplate::new(source, "<|begin_of_text|>", "<|eot_id|>").unwrap();
        assert!(
            chat.prompt(" hi ")
                .unwrap()
                .starts_with("<|begin_of_text|><|start_header_id|>user")
        );
        assert_eq!(chat.answer("hi", " yes ").unwrap(), "yes<|eot_id|>");
        let pythonic = ChatTemplate::new(
            "{% for m in messages %}{{ m.content.strip().upper() }};{% endfor %}",
            "",
            "",
        )
        .unwrap();
        assert_eq!(pythonic.answer(" a ", " b ").unwrap(), "B;");
    }

    #[test]
    fn a_bad_or_failing_template_says_what_to_do() {
        let bad = ChatTemplate::new("{% for m in messages %}", "", "").unwrap_err();
        assert!(matches!(bad, ChatError::Parse(_)), "{bad}");
        let raising =
            ChatTemplate::new("{{ raise_exception('only system turns') }}", "", "").unwrap();
        let error = raising.prompt("x").unwrap_err();
        assert!(error.to_string().contains("only system turns"), "{error}");
        assert!(
            error.to_string().contains("turn off the chat template"),
            "{error}"
        );
        // An answer the template writes before the prompt cannot be cut out.
        let reordered = ChatTemplate::new(
            "{% if not add_generation_prompt %}{{ messages[-1].content }}{% endif %}{{ messages[0].content }}",
            "",
            "",
        )
        .unwrap();
        assert!(matches!(
            reordered.answer("p", "a"),
            Err(ChatError::NotAPrefix)
        ));
    }
}
