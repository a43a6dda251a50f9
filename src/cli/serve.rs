//! `rocmforge serve`: an OpenAI-compatible HTTP server (`/v1/chat/completions`, `/v1/completions`,
//! `/v1/models`, `/health`) on one model. Requests queue for the model's one session (a bounded
//! queue; past it, 503); a client that disconnects cancels its generation; a bad request gets a 400
//! with an OpenAI-style error body. Kernels are compiled before the port opens.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use rocmforge::chat::{Message, RenderOptions};
use rocmforge::exec::{FinishReason, GenerateParams, SamplerConfig};
use rocmforge::llm::{CancelHandle, Event, Finished, Llm, LlmError, LlmOptions};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::progress::JitProgress;
use super::{DeviceArg, Result};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The GGUF model file.
    pub model: PathBuf,
    /// Address to listen on (loopback by default; use 0.0.0.0 to accept other machines).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0: any free port; the address is printed on stderr).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// KV cache positions, prompt and answer together (default: the model's training context,
    /// at most 4096).
    #[arg(long)]
    pub ctx: Option<usize>,
    /// Requests that may wait while one is answered; more get 503.
    #[arg(long, default_value_t = 32)]
    pub queue: usize,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_body: usize,
    /// The model id clients use (default: the file name without .gguf).
    #[arg(long)]
    pub alias: Option<String>,
    #[command(flatten)]
    pub device: DeviceArg,
}

struct App {
    llm: Llm,
    max_body: usize,
    id: String,
    created: u64,
    counter: AtomicU64,
}

pub fn main(a: ServeArgs) -> Result<ExitCode> {
    if a.queue == 0 {
        return Err("--queue must be at least 1".into());
    }
    let addr: SocketAddr = format!("{}:{}", a.host, a.port)
        .parse()
        .or_else(|_| format!("[{}]:{}", a.host, a.port).parse())
        .map_err(|_| format!("--host {:?}: not an IP address", a.host))?;
    let progress = JitProgress::new();
    let options = LlmOptions {
        device: a.device.choice()?,
        context: a.ctx,
        queue: a.queue,
        kv: a.device.kv,
        gpu_precision: a.device.gpu_precision,
        ..Default::default()
    }
    .progress(progress.for_llm());
    // Everything is compiled and loaded before the port opens.
    let llm = Llm::open_with(&a.model, options)?;
    let info = llm.info().clone();
    let app = Arc::new(App {
        id: a.alias.unwrap_or_else(|| info.name.clone()),
        created: now(),
        counter: AtomicU64::new(0),
        max_body: a.max_body,
        llm,
    });
    let router = Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::disable()) // read_body enforces --max-body
        .with_state(app.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr()?;
        eprintln!(
            "serving {} ({}, {} on {}, context {}) on http://{local}  (model id {:?}; Ctrl-C stops)",
            info.path.display(),
            info.architecture,
            info.name,
            info.device,
            info.context,
            app.id
        );
        axum::serve(listener, router).with_graceful_shutdown(shutdown_signal()).await?;
        eprintln!("stopped");
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// An OpenAI-style error: `{"error": {"message", "type", "param", "code"}}`.
struct ApiError {
    status: StatusCode,
    message: String,
    param: Option<&'static str>,
    code: Option<&'static str>,
}

impl ApiError {
    fn bad(message: impl Into<String>, param: Option<&'static str>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into(), param, code: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = match self.status.as_u16() {
            500.. => "server_error",
            _ => "invalid_request_error",
        };
        let body = json!({"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}});
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        r
    }
}

impl From<LlmError> for ApiError {
    fn from(e: LlmError) -> ApiError {
        let message = e.to_string();
        let (status, param, code) = match e {
            LlmError::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, None, Some("server_busy")),
            LlmError::PromptTooLong { .. } => {
                (StatusCode::BAD_REQUEST, Some("messages"), Some("context_length_exceeded"))
            }
            LlmError::EmptyPrompt => (StatusCode::BAD_REQUEST, Some("prompt"), None),
            LlmError::Sampler(s) => (
                StatusCode::BAD_REQUEST,
                Some(match s.name {
                    "repeat_penalty" => "repetition_penalty",
                    other => other,
                }),
                None,
            ),
            LlmError::Chat(rocmforge::chat::ChatError::Refused(_)) => (StatusCode::BAD_REQUEST, Some("messages"), None),
            LlmError::Chat(rocmforge::chat::ChatError::NoFormat(_)) => {
                (StatusCode::BAD_REQUEST, Some("messages"), Some("no_chat_template"))
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, None, None),
        };
        ApiError { status, message, param, code }
    }
}

async fn not_found() -> ApiError {
    ApiError { status: StatusCode::NOT_FOUND, message: "no such endpoint".into(), param: None, code: None }
}

async fn method_not_allowed() -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: "this endpoint does not take that method".into(),
        param: None,
        code: None,
    }
}

async fn health(State(app): State<Arc<App>>) -> Json<Value> {
    let c = app.llm.counters();
    Json(json!({"status": "ok", "requests": {"completed": c.completed, "cancelled": c.cancelled,
                                             "failed": c.failed, "refused_busy": c.busy}}))
}

fn model_object(app: &App) -> Value {
    json!({"id": app.id, "object": "model", "created": app.created, "owned_by": "rocmforge",
           "meta": {"context": app.llm.info().context, "architecture": app.llm.info().architecture,
                    "device": app.llm.info().device}})
}

async fn models(State(app): State<Arc<App>>) -> Json<Value> {
    Json(json!({"object": "list", "data": [model_object(&app)]}))
}

async fn model(State(app): State<Arc<App>>, Path(id): Path<String>) -> std::result::Result<Json<Value>, ApiError> {
    if id != app.id {
        return Err(unknown_model(&app, &id));
    }
    Ok(Json(model_object(&app)))
}

fn unknown_model(app: &App, id: &str) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("the model {id:?} does not exist; this server has {:?}", app.id),
        param: Some("model"),
        code: Some("model_not_found"),
    }
}

/// A request body of at most `limit` bytes. A larger one is still read (up to a bound) before the
/// 413, so a client that sends it whole gets the answer rather than a reset connection.
async fn read_body(body: Body, limit: usize) -> std::result::Result<Bytes, ApiError> {
    let drain_up_to = limit.saturating_mul(4).max(64 << 20);
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad(format!("reading the request body failed: {e}"), None))?;
        total = total.saturating_add(chunk.len());
        if total <= limit {
            buf.extend_from_slice(&chunk);
        } else if total > drain_up_to {
            break;
        }
    }
    if total > limit {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!(
                "the request body is {total} bytes or more; this server takes at most {limit} (--max-body)"
            ),
            param: None,
            code: None,
        });
    }
    Ok(buf.into())
}

/// The JSON object of a request body, or the error a client should see.
async fn parse_body(app: &App, body: Body) -> std::result::Result<Map<String, Value>, ApiError> {
    let bytes = read_body(body, app.max_body).await?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad("the request body must be a JSON object", None)),
        Err(e) => Err(ApiError::bad(format!("the request body is not valid JSON: {e}"), None)),
    }
}

/// Typed access to a request's fields, each error naming its field.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }
    fn f32(&self, key: &'static str) -> std::result::Result<Option<f32>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(|x| Some(x as f32))
                .ok_or_else(|| ApiError::bad(format!("{key} must be a number"), Some(key))),
        }
    }
    fn int(&self, key: &'static str) -> std::result::Result<Option<i64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                v.as_i64().map(Some).ok_or_else(|| ApiError::bad(format!("{key} must be an integer"), Some(key)))
            }
        }
    }
    fn bool(&self, key: &'static str) -> std::result::Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(false),
            Some(v) => v.as_bool().ok_or_else(|| ApiError::bad(format!("{key} must be true or false"), Some(key))),
        }
    }
}

/// What both endpoints share: model, sampling, length, stop strings, streaming.
struct Common {
    params: GenerateParams,
    max_tokens_given: bool,
    stream: bool,
    include_usage: bool,
}

fn common(app: &App, f: &Fields) -> std::result::Result<Common, ApiError> {
    if let Some(m) = f.get("model") {
        let m = m.as_str().ok_or_else(|| ApiError::bad("model must be a string", Some("model")))?;
        if m != app.id {
            return Err(unknown_model(app, m));
        }
    }
    let n = f.int("n")?.unwrap_or(1);
    if n != 1 {
        return Err(ApiError::bad(format!("n = {n}: this server makes one choice per request"), Some("n")));
    }
    for (key, what) in [("logprobs", "log probabilities"), ("echo", "echo")] {
        if f.get(key).and_then(Value::as_bool) == Some(true) {
            return Err(ApiError::bad(
                format!("{what} are not supported"),
                Some(if key == "echo" { "echo" } else { "logprobs" }),
            ));
        }
    }
    if f.get("tools").and_then(Value::as_array).is_some_and(|t| !t.is_empty()) {
        return Err(ApiError::bad("tools are not supported", Some("tools")));
    }
    let d = SamplerConfig::default();
    let mut sampler = SamplerConfig {
        temperature: f.f32("temperature")?.unwrap_or(d.temperature),
        top_p: f.f32("top_p")?.unwrap_or(d.top_p),
        min_p: f.f32("min_p")?.unwrap_or(d.min_p),
        presence_penalty: f.f32("presence_penalty")?.unwrap_or(0.0),
        frequency_penalty: f.f32("frequency_penalty")?.unwrap_or(0.0),
        repeat_penalty: match f.f32("repetition_penalty")? {
            Some(p) => p,
            None => f.f32("repeat_penalty")?.unwrap_or(1.0),
        },
        ..d
    };
    if let Some(k) = f.int("top_k")? {
        sampler.top_k = usize::try_from(k)
            .map_err(|_| ApiError::bad(format!("top_k = {k}: must be 0 (off) or more"), Some("top_k")))?;
    }
    sampler.seed = match f.get("seed") {
        None => fresh_seed(app),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_i64().map(|s| s as u64))
            .ok_or_else(|| ApiError::bad("seed must be an integer", Some("seed")))?,
    };
    sampler.validate().map_err(|e| ApiError::from(LlmError::Sampler(e)))?;
    let max_tokens = match (f.int("max_completion_tokens")?, f.int("max_tokens")?) {
        (Some(m), _) | (None, Some(m)) => {
            let param = if f.get("max_completion_tokens").is_some() { "max_completion_tokens" } else { "max_tokens" };
            if m < 1 {
                return Err(ApiError::bad(format!("{param} = {m}: must be at least 1"), Some(param)));
            }
            Some(m as usize)
        }
        (None, None) => None,
    };
    let stop = match f.get("stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.len() <= 16 => a
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::bad("stop must be a string or an array of strings", Some("stop")))?,
        Some(_) => return Err(ApiError::bad("stop must be a string or an array of at most 16 strings", Some("stop"))),
    };
    let stream = f.bool("stream")?;
    let include_usage =
        f.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
    Ok(Common {
        params: GenerateParams { max_tokens: max_tokens.unwrap_or(usize::MAX), sampler, stop },
        max_tokens_given: max_tokens.is_some(),
        stream,
        include_usage,
    })
}

/// A seed for requests that give none: different each time, as OpenAI's are.
fn fresh_seed(app: &App) -> u64 {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    t ^ app.counter.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn messages(f: &Fields) -> std::result::Result<Vec<Message>, ApiError> {
    let list = f
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad("messages must be an array of {role, content} objects", Some("messages")))?;
    if list.is_empty() {
        return Err(ApiError::bad("messages is empty", Some("messages")));
    }
    list.iter()
        .map(|m| {
            let role = m
                .get("role")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad("every message needs a role", Some("messages")))?;
            let role = match role {
                "developer" => "system", // OpenAI's newer name for it
                r @ ("system" | "user" | "assistant" | "tool") => r,
                other => return Err(ApiError::bad(format!("unknown role {other:?}"), Some("messages"))),
            };
            let content = match m.get("content") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => {
                    let mut text = String::new();
                    for p in parts {
                        match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                            (Some("text"), Some(t)) => text.push_str(t),
                            (kind, _) => {
                                return Err(ApiError::bad(
                                    format!("content part of type {kind:?}: only text parts are supported"),
                                    Some("messages"),
                                ))
                            }
                        }
                    }
                    text
                }
                Some(_) => {
                    return Err(ApiError::bad("message content must be a string or a list of parts", Some("messages")))
                }
            };
            Ok(Message::new(role, &content))
        })
        .collect()
}

fn finish_reason(r: FinishReason) -> &'static str {
    match r {
        FinishReason::EndOfText | FinishReason::StopString => "stop",
        FinishReason::MaxTokens => "length",
    }
}

fn usage(f: &Finished) -> Value {
    json!({"prompt_tokens": f.prompt_tokens, "completion_tokens": f.completion_tokens,
           "total_tokens": f.prompt_tokens + f.completion_tokens})
}

/// Cancels the request when dropped: the response finished, or the client went away.
struct CancelOnDrop(CancelHandle);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Chat,
    Text,
}

async fn chat_completions(State(app): State<Arc<App>>, body: Body) -> std::result::Result<Response, ApiError> {
    let map = parse_body(&app, body).await?;
    let f = Fields(&map);
    let common = common(&app, &f)?;
    let messages = messages(&f)?;
    let llm = app.llm.clone();
    let ids =
        tokio::task::spawn_blocking(move || llm.chat_tokens(&messages, &RenderOptions::default())).await.map_err(
            |e| ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: e.to_string(), param: None, code: None },
        )??;
    respond(app, Kind::Chat, ids, common).await
}

async fn completions(State(app): State<Arc<App>>, body: Body) -> std::result::Result<Response, ApiError> {
    let map = parse_body(&app, body).await?;
    let f = Fields(&map);
    let common = common(&app, &f)?;
    let prompt = match f.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => a[0].as_str().unwrap_or_default().to_string(),
        _ => return Err(ApiError::bad("prompt must be a string (or an array of one string)", Some("prompt"))),
    };
    if f.get("suffix").is_some() {
        return Err(ApiError::bad("suffix is not supported", Some("suffix")));
    }
    let llm = app.llm.clone();
    let ids = tokio::task::spawn_blocking(move || llm.prompt_tokens(&prompt)).await.map_err(|e| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: e.to_string(),
        param: None,
        code: None,
    })?;
    respond(app, Kind::Text, ids, common).await
}

/// Queues the request and answers: one JSON body, or server-sent events as tokens come.
async fn respond(app: Arc<App>, kind: Kind, ids: Vec<u32>, c: Common) -> std::result::Result<Response, ApiError> {
    let context = app.llm.info().context;
    if ids.len() >= context {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            message: format!(
                "the prompt is {} tokens; this server's context holds {context}, and at least one must be left for the answer",
                ids.len()
            ),
            param: Some(if kind == Kind::Chat { "messages" } else { "prompt" }),
            code: Some("context_length_exceeded"),
        });
    }
    if c.max_tokens_given && ids.len() + c.params.max_tokens > context {
        // As OpenAI does: the answer would not fit, so say so rather than cut it short.
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            message: format!(
                "the prompt ({} tokens) plus max_tokens ({}) exceeds this server's context of {context} tokens",
                ids.len(),
                c.params.max_tokens
            ),
            param: Some("max_tokens"),
            code: Some("context_length_exceeded"),
        });
    }
    let (tx, rx) = unbounded_channel();
    let cancel = app.llm.submit(ids, c.params, Box::new(move |e| tx.send(e).is_ok()))?;
    let guard = CancelOnDrop(cancel);
    let n = app.counter.fetch_add(1, Ordering::Relaxed);
    let id = match kind {
        Kind::Chat => format!("chatcmpl-{:x}{n}", now()),
        Kind::Text => format!("cmpl-{:x}{n}", now()),
    };
    let created = now();
    if c.stream {
        let stream = SseStream {
            rx,
            _guard: guard,
            kind,
            id,
            created,
            model: app.id.clone(),
            include_usage: c.include_usage,
            state: SseState::Start,
        };
        let events = futures_util::stream::unfold(stream, |mut s| async move {
            let event = s.next_event().await?;
            Some((Ok::<_, Infallible>(event), s))
        });
        return Ok(Sse::new(events).into_response());
    }
    collect(rx, guard, kind, id, created, &app.id).await
}

async fn collect(
    mut rx: UnboundedReceiver<Event>,
    _guard: CancelOnDrop,
    kind: Kind,
    id: String,
    created: u64,
    model: &str,
) -> std::result::Result<Response, ApiError> {
    let mut text = String::new();
    let finished = loop {
        match rx.recv().await {
            Some(Event::Token(t)) => text.push_str(&t.text),
            Some(Event::Done(f)) => break f,
            Some(Event::Failed(e)) => return Err(e.into()),
            None => return Err(LlmError::WorkerGone.into()),
        }
    };
    let reason = finish_reason(finished.reason);
    let body = match kind {
        Kind::Chat => json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "logprobs": null, "finish_reason": reason}],
            "usage": usage(&finished),
        }),
        Kind::Text => json!({
            "id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": reason}],
            "usage": usage(&finished),
        }),
    };
    Ok(Json(body).into_response())
}

/// The server-sent events of one streamed answer: a role chunk (chat), one chunk per piece of text,
/// a last chunk with the finish reason, a usage chunk when asked, then `[DONE]`.
struct SseStream {
    rx: UnboundedReceiver<Event>,
    /// Dropped with the stream, which the server does when the client disconnects.
    _guard: CancelOnDrop,
    kind: Kind,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    state: SseState,
}

enum SseState {
    Start,
    Streaming,
    Usage(Value),
    Done,
    Over,
}

impl SseStream {
    fn chunk(&self, delta: Option<&str>, reason: Option<&str>) -> SseEvent {
        let choices = match self.kind {
            Kind::Chat => {
                let delta = match (&self.state, delta) {
                    (SseState::Start, _) => json!({"role": "assistant", "content": ""}),
                    (_, Some(t)) => json!({"content": t}),
                    (_, None) => json!({}),
                };
                json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": reason}])
            }
            Kind::Text => json!([{"index": 0, "text": delta.unwrap_or(""), "logprobs": null, "finish_reason": reason}]),
        };
        self.event(choices, None)
    }

    fn event(&self, choices: Value, usage: Option<Value>) -> SseEvent {
        let object = if self.kind == Kind::Chat { "chat.completion.chunk" } else { "text_completion" };
        let mut body =
            json!({"id": self.id, "object": object, "created": self.created, "model": self.model, "choices": choices});
        if let Some(u) = usage {
            body["usage"] = u;
        }
        SseEvent::default().data(body.to_string())
    }

    async fn next_event(&mut self) -> Option<SseEvent> {
        match std::mem::replace(&mut self.state, SseState::Streaming) {
            SseState::Start if self.kind == Kind::Chat => {
                self.state = SseState::Start;
                let e = self.chunk(None, None);
                self.state = SseState::Streaming;
                return Some(e);
            }
            SseState::Start | SseState::Streaming => {}
            SseState::Usage(u) => {
                self.state = SseState::Done;
                return Some(self.event(json!([]), Some(u)));
            }
            SseState::Done => {
                self.state = SseState::Over;
                return Some(SseEvent::default().data("[DONE]"));
            }
            SseState::Over => {
                self.state = SseState::Over;
                return None;
            }
        }
        loop {
            match self.rx.recv().await {
                Some(Event::Token(t)) if t.text.is_empty() => continue,
                Some(Event::Token(t)) => return Some(self.chunk(Some(&t.text), None)),
                Some(Event::Done(f)) => {
                    let last = self.chunk(None, Some(finish_reason(f.reason)));
                    self.state = if self.include_usage { SseState::Usage(usage(&f)) } else { SseState::Done };
                    return Some(last);
                }
                Some(Event::Failed(e)) => {
                    self.state = SseState::Done;
                    let err = ApiError::from(e);
                    let body = json!({"error": {"message": err.message, "type": "server_error", "param": null, "code": err.code}});
                    return Some(SseEvent::default().data(body.to_string()));
                }
                None => {
                    self.state = SseState::Over;
                    return None;
                }
            }
        }
    }
}
