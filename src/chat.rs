//! Chat prompt formats: ChatML (SmolLM2, Qwen2) and Gemma's turns, chosen from the file's
//! `tokenizer.chat_template` (or, when a file has none, from its architecture). We recognise the
//! template's format and render it ourselves rather than run Jinja.

use crate::gguf::Metadata;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message { role: role.into(), content: content.into() }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatFormat {
    /// `<|im_start|>role\ncontent<|im_end|>\n`; `default_system` is inserted when the first
    /// message is not a system message, as the template does.
    ChatMl { default_system: Option<String> },
    /// `<start_of_turn>user\ncontent<end_of_turn>\n`; system text is prepended to the first user
    /// turn, `assistant` is called `model`.
    Gemma,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("no chat format for this model: its tokenizer.chat_template is neither ChatML nor Gemma's turns{0}; use a plain prompt (without --chat)")]
pub struct UnknownChatFormat(String);

impl ChatFormat {
    /// The format the model's metadata asks for.
    pub fn from_metadata(md: &Metadata) -> Result<ChatFormat, UnknownChatFormat> {
        let template = md.opt_str("tokenizer.chat_template").ok().flatten();
        let arch = md.opt_str("general.architecture").ok().flatten().unwrap_or("");
        match template {
            Some(t) if t.contains("<|im_start|>") => Ok(ChatFormat::ChatMl { default_system: default_system(t) }),
            Some(t) if t.contains("<start_of_turn>") => Ok(ChatFormat::Gemma),
            None if arch.starts_with("gemma") => Ok(ChatFormat::Gemma),
            None if arch == "qwen2" => Ok(ChatFormat::ChatMl { default_system: None }),
            Some(_) => Err(UnknownChatFormat(String::new())),
            None => Err(UnknownChatFormat(" (the file has none)".into())),
        }
    }

    /// The prompt text for `messages`, ending where the assistant's reply begins.
    pub fn render(&self, messages: &[Message]) -> String {
        let mut out = String::new();
        match self {
            ChatFormat::ChatMl { default_system } => {
                if let (Some(sys), Some(first)) = (default_system, messages.first()) {
                    if first.role != "system" {
                        out.push_str(&format!("<|im_start|>system\n{sys}<|im_end|>\n"));
                    }
                }
                for m in messages {
                    out.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content));
                }
                out.push_str("<|im_start|>assistant\n");
            }
            ChatFormat::Gemma => {
                let mut system = String::new();
                for m in messages {
                    match m.role.as_str() {
                        "system" => {
                            system.push_str(&m.content);
                            system.push_str("\n\n");
                        }
                        role => {
                            let role = if role == "assistant" { "model" } else { role };
                            let content = format!("{}{}", std::mem::take(&mut system), m.content);
                            out.push_str(&format!("<start_of_turn>{role}\n{content}<end_of_turn>\n"));
                        }
                    }
                }
                out.push_str("<start_of_turn>model\n");
            }
        }
        out
    }
}

/// The system prompt a ChatML template inserts by default (SmolLM2's names itself), if any.
fn default_system(template: &str) -> Option<String> {
    let start = template
        .find("<|im_start|>system\\n")
        .map(|i| i + "<|im_start|>system\\n".len())
        .or_else(|| template.find("<|im_start|>system\n").map(|i| i + "<|im_start|>system\n".len()))?;
    let end = template[start..].find("<|im_end|>")? + start;
    let text = &template[start..end];
    // A literal, not a variable like `{{ message['content'] }}`.
    (!text.contains("{{") && !text.contains('\'')).then(|| text.replace("\\n", "\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_inserts_the_templates_default_system_prompt() {
        let f = ChatFormat::ChatMl { default_system: default_system(SMOLLM2) };
        assert_eq!(
            f.render(&[Message::new("user", "Hi")]),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let own = f.render(&[Message::new("system", "Be brief."), Message::new("user", "Hi")]);
        assert!(own.starts_with("<|im_start|>system\nBe brief.<|im_end|>"), "{own}");
    }

    #[test]
    fn gemma_folds_system_into_the_first_user_turn() {
        let s = ChatFormat::Gemma.render(&[
            Message::new("system", "Be brief."),
            Message::new("user", "Hi"),
            Message::new("assistant", "Hello"),
        ]);
        assert_eq!(s, "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n<start_of_turn>model\n");
    }
}
