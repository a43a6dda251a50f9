//! Progress on stderr for the first-run JIT (run, chat, serve, bench): an indicatif bar when stderr
//! is a terminal; otherwise (a log file, CI) one line when compiling starts and one when it ends.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rocmforge::llm::LoadProgress;

/// Kernel progress, shared by the engine's worker threads.
pub struct JitProgress {
    bar: Mutex<Option<ProgressBar>>,
    tty: bool,
    compiled: AtomicUsize,
    announced: AtomicBool,
    start: Instant,
}

impl JitProgress {
    pub fn new() -> Arc<JitProgress> {
        Arc::new(JitProgress {
            bar: Mutex::new(None),
            tty: std::io::stderr().is_terminal(),
            compiled: AtomicUsize::new(0),
            announced: AtomicBool::new(false),
            start: Instant::now(),
        })
    }

    /// Kernel `done` of `total` is ready (`compiled` now, else from the cache).
    pub fn kernel(&self, done: usize, total: usize, entry: &str, compiled: bool) {
        if compiled {
            self.compiled.fetch_add(1, Ordering::Relaxed);
        }
        let compiled_so_far = self.compiled.load(Ordering::Relaxed);
        if self.tty {
            let mut bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
            let bar = bar.get_or_insert_with(|| {
                let b = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
                if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}") {
                    b.set_style(style.progress_chars("#>-"));
                }
                b.set_prefix("kernels");
                b
            });
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            bar.set_message(format!("{} {entry}", if compiled { "compiled" } else { "cached" }));
        } else if compiled && !self.announced.swap(true, Ordering::Relaxed) {
            eprintln!("compiling kernels for this GPU (first run; later runs read them from the cache)");
        }
        if done == total {
            if let Some(bar) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
                bar.finish_and_clear();
            }
            eprintln!(
                "kernels: {total} ready ({compiled_so_far} compiled, {} cached) in {:.2} s",
                total - compiled_so_far,
                self.start.elapsed().as_secs_f64()
            );
        }
    }

    /// The callback `LlmOptions::progress` takes: stages as lines, kernels on the bar.
    pub fn for_llm(self: &Arc<Self>) -> impl Fn(LoadProgress<'_>) + Send + Sync + 'static {
        let me = self.clone();
        move |p| match p {
            LoadProgress::Stage(s) => eprintln!("{s}"),
            LoadProgress::Kernel { done, total, entry, compiled } => me.kernel(done, total, entry, compiled),
        }
    }

    /// The callback `Engine::builder().progress` takes.
    pub fn for_engine(self: &Arc<Self>) -> impl Fn(&rocmforge::jit::Progress<'_>) + Send + Sync + 'static {
        let me = self.clone();
        move |p| me.kernel(p.done, p.total, &p.kernel.entry, p.kernel.origin == rocmforge::jit::Origin::Compiled)
    }
}
