//! Chat prompts: the model file's own `tokenizer.chat_template` rendered with a Jinja engine
//! (minijinja, set up as Hugging Face transformers sets up Jinja2: `trim_blocks`, `lstrip_blocks`,
//! loop controls, `raise_exception`, `strftime_now`, Python's string methods, a `tojson` that
//! writes what `json.dumps` writes), so Llama 3, Mistral, Qwen and Gemma files get the prompt they
//! were trained on. Files without a template fall back to the built-in ChatML and Gemma formats.
//! `tests/chat_templates.rs` holds the rendering to what transformers renders for six families.

use std::collections::BTreeMap;

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, ErrorKind, Value};

use crate::gguf::{Array, Metadata};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user`, `assistant` (or `tool`, for templates that know it).
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message { role: role.into(), content: content.into() }
    }
}

/// The built-in formats, for files that carry no template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatFormat {
    /// `<|im_start|>role\ncontent<|im_end|>\n`; `default_system` is inserted when the first
    /// message is not a system message.
    ChatMl { default_system: Option<String> },
    /// `<start_of_turn>user\ncontent<end_of_turn>\n`; system text is prepended to the first user
    /// turn, `assistant` is called `model`.
    Gemma,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum ChatError {
    #[error("no chat format for this model: the file has no tokenizer.chat_template and its architecture {0:?} has no built-in format; use a plain prompt")]
    NoFormat(String),
    #[error("the model's chat template does not parse: {0}")]
    Syntax(String),
    /// The template refused the conversation (`raise_exception`), e.g. roles that do not alternate.
    #[error("the chat template refused these messages: {0}")]
    Refused(String),
    #[error("rendering the chat template failed: {0}")]
    Render(String),
}

impl ChatFormat {
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

/// How to render: whether to open the assistant's turn, and extra variables some templates read
/// (`enable_thinking` for Qwen3, `date_string` for Llama 3.x).
#[derive(Clone, Debug)]
pub struct RenderOptions {
    pub add_generation_prompt: bool,
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions { add_generation_prompt: true, extra: BTreeMap::new() }
    }
}

/// A model's chat template, ready to render (compiled once; `Send + Sync`).
pub struct ChatTemplate {
    kind: Kind,
}

enum Kind {
    Jinja { env: Box<Environment<'static>>, bos_token: String, eos_token: String },
    Builtin(ChatFormat),
}

const NAME: &str = "chat_template";

impl ChatTemplate {
    /// The file's `tokenizer.chat_template` with its BOS/EOS token texts, else a built-in format
    /// chosen by architecture (gemma*: Gemma turns; qwen2: ChatML).
    pub fn from_metadata(md: &Metadata) -> Result<ChatTemplate, ChatError> {
        if let Some(source) = md.opt_str("tokenizer.chat_template").ok().flatten() {
            let token = |key: &str| -> String {
                let id = md.opt(key, Metadata::get_u32).ok().flatten();
                match (id, md.get("tokenizer.ggml.tokens").and_then(|v| v.as_array())) {
                    (Some(id), Some(Array::String(tokens))) => {
                        tokens.get(id as usize).map(|t| String::from_utf8_lossy(t).into_owned()).unwrap_or_default()
                    }
                    _ => String::new(),
                }
            };
            return ChatTemplate::jinja(
                source,
                &token("tokenizer.ggml.bos_token_id"),
                &token("tokenizer.ggml.eos_token_id"),
            );
        }
        let arch = md.opt_str("general.architecture").ok().flatten().unwrap_or("");
        match arch {
            a if a.starts_with("gemma") => Ok(ChatTemplate::builtin(ChatFormat::Gemma)),
            "qwen2" => Ok(ChatTemplate::builtin(ChatFormat::ChatMl { default_system: None })),
            other => Err(ChatError::NoFormat(other.to_string())),
        }
    }

    /// A Jinja template (Hugging Face's `chat_template` dialect) with the model's BOS and EOS texts.
    pub fn jinja(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate, ChatError> {
        let mut env = Environment::new();
        // transformers renders with trim_blocks and lstrip_blocks; Jinja2 drops one trailing newline.
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()
            .map_err(|e| ChatError::Syntax(e.to_string()))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> Result<Value, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, RAISED.to_string() + &message))
        });
        env.add_function("strftime_now", |format: String| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            strftime(&format, now)
        });
        env.add_filter("tojson", tojson);
        env.add_template_owned(NAME, source.to_string()).map_err(|e| ChatError::Syntax(describe(&e)))?;
        Ok(ChatTemplate {
            kind: Kind::Jinja {
                env: Box::new(env),
                bos_token: bos_token.to_string(),
                eos_token: eos_token.to_string(),
            },
        })
    }

    pub fn builtin(format: ChatFormat) -> ChatTemplate {
        ChatTemplate { kind: Kind::Builtin(format) }
    }

    /// Is this the file's own template (rather than a built-in fallback)?
    pub fn is_from_file(&self) -> bool {
        matches!(self.kind, Kind::Jinja { .. })
    }

    /// The BOS text the template may write at its start (empty when it has none).
    pub fn bos_token(&self) -> &str {
        match &self.kind {
            Kind::Jinja { bos_token, .. } => bos_token,
            Kind::Builtin(_) => "",
        }
    }

    /// The prompt for `messages`, ending (with `add_generation_prompt`) where the reply begins.
    pub fn render(&self, messages: &[Message], options: &RenderOptions) -> Result<String, ChatError> {
        match &self.kind {
            Kind::Builtin(f) => Ok(f.render(messages)),
            Kind::Jinja { env, bos_token, eos_token } => {
                let messages: Vec<Value> = messages
                    .iter()
                    .map(|m| {
                        let mut map = BTreeMap::new();
                        map.insert("role", Value::from(m.role.as_str()));
                        map.insert("content", Value::from(m.content.as_str()));
                        Value::from(map)
                    })
                    .collect();
                let mut ctx: BTreeMap<String, Value> = BTreeMap::new();
                for (k, v) in &options.extra {
                    ctx.insert(k.clone(), json_to_value(v));
                }
                ctx.insert("messages".into(), Value::from(messages));
                ctx.insert("add_generation_prompt".into(), Value::from(options.add_generation_prompt));
                ctx.insert("bos_token".into(), Value::from(bos_token.as_str()));
                ctx.insert("eos_token".into(), Value::from(eos_token.as_str()));
                let template = env.get_template(NAME).map_err(|e| ChatError::Syntax(describe(&e)))?;
                template.render(Value::from(ctx)).map_err(|e| {
                    let text = describe(&e);
                    match text.find(RAISED) {
                        Some(i) => {
                            let rest = &text[i + RAISED.len()..];
                            ChatError::Refused(rest.split(" (in ").next().unwrap_or(rest).trim().to_string())
                        }
                        None => ChatError::Render(text),
                    }
                })
            }
        }
    }
}

/// Marks errors the template raised itself, as opposed to engine errors.
const RAISED: &str = "template raised: ";

fn describe(e: &minijinja::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

fn json_to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(f)) => Value::from(f),
            _ => Value::from(()),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(a) => Value::from(a.iter().map(json_to_value).collect::<Vec<_>>()),
        serde_json::Value::Object(o) => {
            Value::from(o.iter().map(|(k, v)| (k.clone(), json_to_value(v))).collect::<BTreeMap<String, Value>>())
        }
    }
}

/// `tojson` as transformers defines it: Python's `json.dumps(x, ensure_ascii=False, indent=…,
/// separators=…, sort_keys=…)`: `", "` and `": "` between items unless indented, non-ASCII kept.
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<Value> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let (item_sep, key_sep) = match separators {
        Some(s) => (
            s.get_item(&Value::from(0))?.as_str().unwrap_or(", ").to_string(),
            s.get_item(&Value::from(1))?.as_str().unwrap_or(": ").to_string(),
        ),
        None if indent.is_some() => (",".to_string(), ": ".to_string()),
        None => (", ".to_string(), ": ".to_string()),
    };
    let style = JsonStyle { indent, item_sep, key_sep, sort_keys: sort_keys.unwrap_or(false) };
    let mut out = String::new();
    write_json(&value, &style, 0, &mut out)?;
    Ok(Value::from_safe_string(out))
}

struct JsonStyle {
    indent: Option<usize>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
}

fn write_json(v: &Value, style: &JsonStyle, depth: usize, out: &mut String) -> Result<(), minijinja::Error> {
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = style.indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&v.to_string()),
        ValueKind::String => json_string(v.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&style.item_sep);
                }
                newline(out, depth + 1);
                write_json(item, style, depth + 1, out)?;
            }
            newline(out, depth);
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if style.sort_keys {
                keys.sort_by_key(|k| k.to_string());
            }
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(&style.item_sep);
                }
                newline(out, depth + 1);
                json_string(&key.to_string(), out);
                out.push_str(&style.key_sep);
                write_json(&v.get_item(key)?, style, depth + 1, out)?;
            }
            newline(out, depth);
            out.push('}');
        }
        other => {
            return Err(minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson cannot write a {other}")))
        }
    }
    Ok(())
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `strftime` for a UTC instant (seconds since 1970), with the directives chat templates use:
/// `%d %e %m %y %Y %b %B %a %A %H %I %M %S %p %j %%`. Other directives are written as they are.
pub fn strftime(format: &str, unix_seconds: i64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday (index 3)
    let day_of_year = days - days_from_civil(y, 1, 1) + 1;
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('e') => out.push_str(&format!("{d:2}")),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('y') => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            Some('Y') => out.push_str(&y.to_string()),
            Some('b') => out.push_str(&MONTHS[m as usize - 1][..3]),
            Some('B') => out.push_str(MONTHS[m as usize - 1]),
            Some('a') => out.push_str(&DAYS[weekday][..3]),
            Some('A') => out.push_str(DAYS[weekday]),
            Some('H') => out.push_str(&format!("{hh:02}")),
            Some('I') => out.push_str(&format!("{:02}", (hh + 11) % 12 + 1)),
            Some('M') => out.push_str(&format!("{mm:02}")),
            Some('S') => out.push_str(&format!("{ss:02}")),
            Some('p') => out.push_str(if hh < 12 { "AM" } else { "PM" }),
            Some('j') => out.push_str(&format!("{day_of_year:03}")),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Howard Hinnant's `civil_from_days`: (year, month 1–12, day 1–31) of a day count from 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The inverse: days from 1970-01-01 to a civil date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemma_folds_system_into_the_first_user_turn() {
        let s = ChatFormat::Gemma.render(&[
            Message::new("system", "Be brief."),
            Message::new("user", "Hi"),
            Message::new("assistant", "Hello"),
        ]);
        assert_eq!(s, "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n<start_of_turn>model\n");
    }

    #[test]
    fn civil_dates_round_trip_over_four_centuries() {
        for days in (-200_000..200_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn raise_exception_becomes_a_refusal_with_the_templates_words() {
        let t = ChatTemplate::jinja("{{ raise_exception('no system role, please') }}", "", "").unwrap();
        assert_eq!(
            t.render(&[Message::new("system", "x")], &RenderOptions::default()),
            Err(ChatError::Refused("no system role, please".into()))
        );
        assert!(matches!(ChatTemplate::jinja("{% if %}", "", ""), Err(ChatError::Syntax(_))));
    }

    #[test]
    fn tojson_writes_what_python_json_dumps_writes() {
        let t = ChatTemplate::jinja(
            "{{ {'a': [1, 2.5, none, true], 'b': 'é\"\\n'} | tojson }}|{{ [1, {'k': 'v'}] | tojson(indent=2) }}",
            "",
            "",
        )
        .unwrap();
        let s = t.render(&[], &RenderOptions::default()).unwrap();
        // json.dumps({'a': [1, 2.5, None, True], 'b': 'é"\n'}, ensure_ascii=False) and
        // json.dumps([1, {'k': 'v'}], indent=2)
        assert_eq!(s, "{\"a\": [1, 2.5, null, true], \"b\": \"é\\\"\\n\"}|[\n  1,\n  {\n    \"k\": \"v\"\n  }\n]");
    }
}
