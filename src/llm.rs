//! The front door for applications: [`Llm::open`] loads a model on the best device (JIT-compiling
//! its kernels on first use, with progress), and [`Llm::generate`] / [`Llm::chat`] return a
//! [`TokenStream`]: an iterator of tokens that is `Send`, stops at stop strings, and cancels its
//! generation when dropped.
//!
//! Design: sessions borrow their model (`Session<'m>`, `GpuModel<'m>`), so one worker thread owns
//! the whole stack — model, device, kernels, one session with its KV cache — and serves requests
//! from a bounded queue, one at a time. [`Llm`] is a cheap, cloneable, `Send + Sync` handle to it;
//! tokens travel back through a channel. When the next prompt begins with everything the session
//! already holds (a chat that goes on), only the new tokens are prefilled.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use crate::chat::{ChatError, ChatTemplate, Message, RenderOptions};
use crate::device::DeviceError;
use crate::exec::gpu::{GpuModel, GpuSession, DEFAULT_MAX_BATCH};
use crate::exec::{
    ExecError, FinishReason, Forward, GenerateParams, Generated, Generation, GenerationStats, Model, SamplerError,
    Session,
};
use crate::jit::{Engine, JitError, Origin};
use crate::tokenizer::{EncodeOptions, Tokenizer, TokenizerError};

/// Where to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// HIP, else CUDA, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
    Hip,
}

impl DeviceChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
            DeviceChoice::Hip => "hip",
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeviceChoice {
    type Err = LlmError;
    fn from_str(s: &str) -> Result<Self, LlmError> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda),
            "hip" => Ok(DeviceChoice::Hip),
            other => Err(LlmError::UnknownDevice(other.to_string())),
        }
    }
}

/// What can go wrong. The large lower-layer errors are boxed, so a `Result` stays small.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error(transparent)]
    Exec(Box<ExecError>),
    #[error(transparent)]
    Tokenizer(Box<TokenizerError>),
    #[error(transparent)]
    Device(Box<DeviceError>),
    #[error(transparent)]
    Jit(Box<JitError>),
    #[error(transparent)]
    Chat(#[from] ChatError),
    #[error("sampling: {0}")]
    Sampler(#[from] SamplerError),
    #[error("the prompt is {prompt_tokens} tokens; the context holds {context}, and at least one must be left for the answer")]
    PromptTooLong { prompt_tokens: usize, context: usize },
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("busy: {queued} requests are already waiting; try again later")]
    Busy { queued: usize },
    #[error("the model's worker thread has stopped")]
    WorkerGone,
    #[error("unknown device {0:?}: expected auto, cpu, cuda or hip")]
    UnknownDevice(String),
    #[error("context size {0} is too small: at least 2 positions")]
    ContextTooSmall(usize),
}

macro_rules! boxed_from {
    ($($variant:ident($ty:ty)),*) => {$(
        impl From<$ty> for LlmError {
            fn from(e: $ty) -> Self {
                LlmError::$variant(Box::new(e))
            }
        }
    )*};
}
boxed_from!(Exec(ExecError), Tokenizer(TokenizerError), Device(DeviceError), Jit(JitError));

/// What a load is doing, for progress displays.
#[derive(Clone, Debug)]
pub enum LoadProgress<'a> {
    /// A step begins ("loading the model", "compiling kernels and uploading weights", …).
    Stage(&'a str),
    /// Kernel `done` of `total` is ready: `compiled` now, or found in the cache.
    Kernel { done: usize, total: usize, entry: &'a str, compiled: bool },
}

/// A load-progress callback (called on the worker thread).
pub type ProgressFn = dyn Fn(LoadProgress<'_>) + Send + Sync;

/// What was loaded, and where it runs.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub path: PathBuf,
    /// The file name without `.gguf`: the model's id in the HTTP API.
    pub name: String,
    pub architecture: String,
    /// Positions of the session's KV cache: prompt and answer together must fit.
    pub context: usize,
    pub n_ctx_train: usize,
    pub n_vocab: usize,
    /// `cpu`, or the backend and GPU name (`cuda NVIDIA H100 80GB HBM3`).
    pub device: String,
    /// Kernels compiled during this load (0 when all came from the cache, or on the CPU).
    pub kernels_compiled: usize,
    pub kernels_cached: usize,
    pub load_seconds: f64,
}

/// Options for [`Llm::open_with`].
pub struct LlmOptions {
    pub device: DeviceChoice,
    /// KV cache positions (default: the model's training context, at most 4096).
    pub context: Option<usize>,
    /// Requests that may wait while one runs; more are refused with [`LlmError::Busy`].
    pub queue: usize,
    /// Kernel cache root (default: `ROCMFORGE_CACHE_DIR`, else `~/.cache/rocmforge/kernels`).
    pub cache_dir: Option<PathBuf>,
    pub progress: Option<Arc<ProgressFn>>,
    /// The KV cache's precision on a GPU (f16 by default; the CPU keeps f32).
    pub kv: crate::kernels::KvPrecision,
    /// The GPU's decode arithmetic (see [`crate::exec::gpu::GpuPrecision`]; exact unless set).
    pub gpu_precision: crate::exec::gpu::GpuPrecision,
}

impl Default for LlmOptions {
    fn default() -> Self {
        LlmOptions {
            device: DeviceChoice::Auto,
            context: None,
            queue: 32,
            cache_dir: None,
            progress: None,
            kv: Default::default(),
            gpu_precision: Default::default(),
        }
    }
}

impl LlmOptions {
    /// Reports loading progress (called from the worker thread).
    pub fn progress(mut self, f: impl Fn(LoadProgress<'_>) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }
}

/// Why a generation ended, with its token counts and timings.
#[derive(Clone, Debug)]
pub struct Finished {
    pub reason: FinishReason,
    /// Tokens of the prompt (all of them, including any the session already held).
    pub prompt_tokens: usize,
    /// Prompt tokens the session already held, so not prefilled again.
    pub reused_tokens: usize,
    pub completion_tokens: usize,
    pub stats: GenerationStats,
    /// Seconds the request waited in the queue.
    pub queued_seconds: f64,
}

/// What the worker sends a request's sink.
#[derive(Debug)]
pub enum Event {
    Token(Generated),
    Done(Finished),
    Failed(LlmError),
}

/// Stops a request: queued, it is skipped; running, it ends before the next token.
#[derive(Clone, Debug, Default)]
pub struct CancelHandle(Arc<AtomicBool>);

impl CancelHandle {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A request's receiver of events: return `false` to stop the generation (the client left).
pub type Sink = Box<dyn FnMut(Event) -> bool + Send>;

struct Job {
    prompt: Vec<u32>,
    params: GenerateParams,
    cancel: CancelHandle,
    sink: Sink,
    queued: Instant,
}

/// What the worker has done so far (for health checks and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Generations that ran to their end.
    pub completed: u64,
    /// Generations stopped by their caller (a dropped stream, a client that disconnected),
    /// running or still queued.
    pub cancelled: u64,
    pub failed: u64,
    /// Requests refused because the queue was full.
    pub busy: u64,
}

#[derive(Default)]
struct AtomicCounters {
    completed: AtomicU64,
    cancelled: AtomicU64,
    failed: AtomicU64,
    busy: AtomicU64,
}

struct Shared {
    counters: Arc<AtomicCounters>,
    jobs: SyncSender<Job>,
    queue: usize,
    tokenizer: Arc<Tokenizer>,
    template: Result<ChatTemplate, ChatError>,
    info: ModelInfo,
}

/// A loaded model behind its worker thread. Clone it freely; it is `Send + Sync`.
#[derive(Clone)]
pub struct Llm {
    shared: Arc<Shared>,
}

impl fmt::Debug for Llm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Llm").field("info", &self.shared.info).finish()
    }
}

impl Llm {
    /// Loads `path` on `device`: kernels compiled (or read from the cache) for the device's own
    /// target, weights uploaded, one session of the default context opened.
    pub fn open(path: impl AsRef<Path>, device: DeviceChoice) -> Result<Llm, LlmError> {
        Self::open_with(path, LlmOptions { device, ..Default::default() })
    }

    pub fn open_with(path: impl AsRef<Path>, options: LlmOptions) -> Result<Llm, LlmError> {
        if let Some(n) = options.context.filter(|&n| n < 2) {
            return Err(LlmError::ContextTooSmall(n));
        }
        let path = path.as_ref().to_path_buf();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let (jobs_tx, jobs_rx) = mpsc::sync_channel(options.queue);
        let queue = options.queue;
        let counters = Arc::new(AtomicCounters::default());
        let for_worker = counters.clone();
        std::thread::Builder::new()
            .name("rocmforge-llm".into())
            .spawn(move || worker(path, options, ready_tx, jobs_rx, for_worker))
            .map_err(|e| LlmError::from(ExecError::Unsupported(format!("cannot start the worker thread: {e}"))))?;
        let ready = ready_rx.recv().map_err(|_| LlmError::WorkerGone)??;
        Ok(Llm {
            shared: Arc::new(Shared {
                counters,
                jobs: jobs_tx,
                queue,
                tokenizer: ready.tokenizer,
                template: ready.template,
                info: ready.info,
            }),
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.shared.info
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.shared.tokenizer
    }

    /// Requests completed, cancelled, failed and refused so far.
    pub fn counters(&self) -> Counters {
        let c = &self.shared.counters;
        Counters {
            completed: c.completed.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            busy: c.busy.load(Ordering::Relaxed),
        }
    }

    /// The model's chat template (from the file, else a built-in format).
    pub fn chat_template(&self) -> Result<&ChatTemplate, LlmError> {
        self.shared.template.as_ref().map_err(|e| LlmError::Chat(e.clone()))
    }

    /// The prompt text the chat template makes of `messages`.
    pub fn render_chat(&self, messages: &[Message], options: &RenderOptions) -> Result<String, LlmError> {
        Ok(self.chat_template()?.render(messages, options)?)
    }

    /// Token ids for a chat: the template's text, its control tokens parsed, BOS once.
    pub fn chat_tokens(&self, messages: &[Message], options: &RenderOptions) -> Result<Vec<u32>, LlmError> {
        let text = self.render_chat(messages, options)?;
        let template = self.chat_template()?;
        let tok = self.tokenizer();
        // Templates that write BOS themselves (Llama 3, Gemma) would get a second one from the
        // tokenizer: keep the tokenizer's.
        let bos = template.bos_token();
        let text = match text.strip_prefix(bos) {
            Some(rest) if !bos.is_empty() && tok.add_bos && tok.bos.is_some() => rest,
            _ => text.as_str(),
        };
        Ok(tok.encode(text, EncodeOptions::CHAT))
    }

    /// Token ids for a plain prompt (BOS as the file asks; special-token texts stay text).
    pub fn prompt_tokens(&self, prompt: &str) -> Vec<u32> {
        self.tokenizer().encode(prompt, EncodeOptions::PROMPT)
    }

    /// Continues `prompt` (plain text).
    pub fn generate(&self, prompt: &str, params: GenerateParams) -> Result<TokenStream, LlmError> {
        self.stream(self.prompt_tokens(prompt), params)
    }

    /// The assistant's answer to `messages`, rendered with the model's chat template.
    pub fn chat(&self, messages: &[Message], params: GenerateParams) -> Result<TokenStream, LlmError> {
        self.stream(self.chat_tokens(messages, &RenderOptions::default())?, params)
    }

    /// Generates after `prompt` token ids.
    pub fn stream(&self, prompt: Vec<u32>, params: GenerateParams) -> Result<TokenStream, LlmError> {
        let (tx, rx) = mpsc::channel();
        let cancel = self.submit(prompt, params, Box::new(move |e| tx.send(e).is_ok()))?;
        Ok(TokenStream { rx, cancel, finished: None, ended: false })
    }

    /// Queues a request whose events go to `sink` (called on the worker thread). Refused at once
    /// when the prompt cannot fit, a setting is out of range, or the queue is full.
    pub fn submit(&self, prompt: Vec<u32>, params: GenerateParams, sink: Sink) -> Result<CancelHandle, LlmError> {
        params.sampler.validate()?;
        if prompt.is_empty() {
            return Err(LlmError::EmptyPrompt);
        }
        let context = self.shared.info.context;
        if prompt.len() >= context {
            return Err(LlmError::PromptTooLong { prompt_tokens: prompt.len(), context });
        }
        let cancel = CancelHandle::default();
        let job = Job { prompt, params, cancel: cancel.clone(), sink, queued: Instant::now() };
        match self.shared.jobs.try_send(job) {
            Ok(()) => Ok(cancel),
            Err(TrySendError::Full(_)) => {
                self.shared.counters.busy.fetch_add(1, Ordering::Relaxed);
                Err(LlmError::Busy { queued: self.shared.queue })
            }
            Err(TrySendError::Disconnected(_)) => Err(LlmError::WorkerGone),
        }
    }
}

/// The tokens of one generation, as they are made. `Send`; dropping it cancels the generation.
pub struct TokenStream {
    rx: Receiver<Event>,
    cancel: CancelHandle,
    finished: Option<Finished>,
    ended: bool,
}

/// A whole answer: its text, why it ended, and its token counts.
#[derive(Clone, Debug)]
pub struct Completion {
    pub text: String,
    pub finished: Finished,
}

impl TokenStream {
    /// Stops the generation before its next token.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A handle that cancels from elsewhere (another thread, a signal handler's flag).
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// How it ended, once the stream is exhausted (`None` if it was cancelled or failed).
    pub fn finished(&self) -> Option<&Finished> {
        self.finished.as_ref()
    }

    /// Runs to the end and returns the whole text.
    pub fn complete(mut self) -> Result<Completion, LlmError> {
        let mut text = String::new();
        for t in self.by_ref() {
            text.push_str(&t?.text);
        }
        let finished = self.finished.take().ok_or(LlmError::WorkerGone)?;
        Ok(Completion { text, finished })
    }
}

impl Iterator for TokenStream {
    type Item = Result<Generated, LlmError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        let event = self.rx.recv();
        match event {
            Ok(Event::Token(t)) => return Some(Ok(t)),
            Ok(Event::Done(f)) => self.finished = Some(f),
            Ok(Event::Failed(e)) => {
                self.ended = true;
                return Some(Err(e));
            }
            // The worker dropped the request: cancelled by us, or the worker died.
            Err(_) if self.cancel.is_cancelled() => {}
            Err(_) => {
                self.ended = true;
                return Some(Err(LlmError::WorkerGone));
            }
        }
        self.ended = true;
        None
    }
}

impl Drop for TokenStream {
    fn drop(&mut self) {
        if !self.ended {
            self.cancel.cancel();
        }
    }
}

struct Ready {
    tokenizer: Arc<Tokenizer>,
    template: Result<ChatTemplate, ChatError>,
    info: ModelInfo,
}

/// The worker thread: loads everything, reports ready (or the error), then serves jobs until every
/// `Llm` handle is gone.
fn worker(
    path: PathBuf,
    options: LlmOptions,
    ready: SyncSender<Result<Ready, LlmError>>,
    jobs: Receiver<Job>,
    counters: Arc<AtomicCounters>,
) {
    let start = Instant::now();
    let progress = options.progress.clone();
    let stage = |s: &str| {
        if let Some(p) = &progress {
            p(LoadProgress::Stage(s));
        }
    };
    stage("loading the model");
    let model = match Model::load(&path) {
        Ok(m) => m,
        Err(e) => return drop(ready.send(Err(e.into()))),
    };
    let tokenizer = match model.tokenizer() {
        Ok(t) => Arc::new(t),
        Err(e) => return drop(ready.send(Err(e.into()))),
    };
    let gpu = match open_gpu(&model, &options) {
        Ok(g) => g,
        Err(e) => return drop(ready.send(Err(e))),
    };
    let n_ctx_train = model.config.n_ctx_train as usize;
    let context = options.context.unwrap_or(n_ctx_train.min(4096));
    let opened: Result<(Box<dyn Forward + '_>, String), ExecError> = match &gpu {
        Some(g) => GpuSession::new(g, context, DEFAULT_MAX_BATCH)
            .map(|s| (Box::new(s) as Box<dyn Forward>, format!("{} {}", g.device.backend(), g.device.name()))),
        None => Session::new(&model, context).map(|s| (Box::new(s) as Box<dyn Forward>, "cpu".to_string())),
    };
    let (mut session, device) = match opened {
        Ok(s) => s,
        Err(e) => return drop(ready.send(Err(e.into()))),
    };
    let info = ModelInfo {
        name: path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into()),
        path,
        architecture: model.config.arch.name().to_string(),
        context,
        n_ctx_train,
        n_vocab: model.config.n_vocab as usize,
        device,
        kernels_compiled: gpu.as_ref().map_or(0, |g| g.report.kernels_compiled),
        kernels_cached: gpu.as_ref().map_or(0, |g| g.report.kernels_cached),
        load_seconds: start.elapsed().as_secs_f64(),
    };
    let template = ChatTemplate::from_metadata(&model.file.metadata);
    if ready.send(Ok(Ready { tokenizer: tokenizer.clone(), template, info })).is_err() {
        return;
    }
    // Tokens the session's KV cache holds, in order.
    let mut held: Vec<u32> = Vec::new();
    for job in jobs {
        let counter = match serve(session.as_mut(), &tokenizer, context, &mut held, job) {
            Outcome::Completed => &counters.completed,
            Outcome::Cancelled => &counters.cancelled,
            Outcome::Failed => &counters.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Opens the chosen GPU with its kernels and weights; `None` for the CPU.
fn open_gpu<'m>(model: &'m Model, options: &LlmOptions) -> Result<Option<GpuModel<'m>>, LlmError> {
    let Some(dev) = crate::device::open(options.device.as_str())? else { return Ok(None) };
    let mut builder = Engine::builder().targets(dev.target().cloned());
    if let Some(dir) = &options.cache_dir {
        builder = builder.cache_dir(dir);
    }
    if let Some(p) = options.progress.clone() {
        p(LoadProgress::Stage("compiling kernels and uploading weights"));
        builder = builder.progress(move |k| {
            p(LoadProgress::Kernel {
                done: k.done,
                total: k.total,
                entry: &k.kernel.entry,
                compiled: k.kernel.origin == Origin::Compiled,
            })
        });
    }
    let engine = builder.build()?;
    let mut gpu = GpuModel::with_kv(model, dev, &engine, options.kv)?;
    gpu.precision = options.gpu_precision;
    Ok(Some(gpu))
}

enum Outcome {
    Completed,
    Cancelled,
    Failed,
}

/// Runs one job on the session, reusing the cached prefix when the prompt extends it.
fn serve(
    session: &mut dyn Forward,
    tokenizer: &Tokenizer,
    context: usize,
    held: &mut Vec<u32>,
    mut job: Job,
) -> Outcome {
    if job.cancel.is_cancelled() {
        return Outcome::Cancelled; // its client left while it waited
    }
    let queued_seconds = job.queued.elapsed().as_secs_f64();
    let reuse = held.len() < job.prompt.len() && job.prompt.starts_with(held) && session.pos() == held.len();
    if !reuse {
        session.reset();
        held.clear();
    }
    let reused = held.len();
    let mut params = job.params.clone();
    params.max_tokens = params.max_tokens.min(context - job.prompt.len());
    let mut generation = match Generation::new(session, tokenizer, &job.prompt[reused..], params) {
        Ok(g) => g.with_earlier_tokens(&job.prompt[..reused]),
        Err(e) => {
            held.clear();
            (job.sink)(Event::Failed(e.into()));
            return Outcome::Failed;
        }
    };
    let mut failed = None;
    loop {
        if job.cancel.is_cancelled() {
            break;
        }
        match generation.next() {
            Some(Ok(t)) => {
                if !(job.sink)(Event::Token(t)) {
                    job.cancel.cancel();
                    break;
                }
            }
            Some(Err(e)) => {
                failed = Some(e);
                break;
            }
            None => break,
        }
    }
    let reason = generation.finish_reason();
    let stats = generation.stats.clone();
    let history = generation.history().to_vec();
    drop(generation);
    if failed.is_some() {
        held.clear();
    } else {
        // The session holds the history up to its position (the last token may not be fed yet).
        held.clear();
        held.extend_from_slice(&history[..session.pos().min(history.len())]);
    }
    match (failed, reason) {
        (Some(e), _) => {
            (job.sink)(Event::Failed(e.into()));
            Outcome::Failed
        }
        (None, Some(reason)) if !job.cancel.is_cancelled() => {
            let finished = Finished {
                reason,
                prompt_tokens: job.prompt.len(),
                reused_tokens: reused,
                completion_tokens: stats.generated,
                stats,
                queued_seconds,
            };
            (job.sink)(Event::Done(finished));
            Outcome::Completed
        }
        _ => Outcome::Cancelled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}

    #[test]
    fn the_handle_is_send_and_sync_and_the_stream_is_send() {
        assert_send_sync::<Llm>();
        assert_send::<TokenStream>();
        assert_send::<Event>();
    }

    #[test]
    fn device_choices_parse_and_print() {
        for d in [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Cuda, DeviceChoice::Hip] {
            assert_eq!(d.to_string().parse::<DeviceChoice>().unwrap(), d);
        }
        assert!(matches!("tpu".parse::<DeviceChoice>(), Err(LlmError::UnknownDevice(_))));
    }
}
