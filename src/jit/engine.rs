//! `Engine`: the library's entry point for first-run JIT and offline warming. It owns the kernel
//! cache and the compilers (loaded on first need), and compiles a model's kernels for every
//! target, in parallel over the cores, reporting progress through a callback.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::cache::{CacheKey, KernelCache, Origin};
use super::code_object::{amd_kernel_resources, KernelResources};
use super::compiler::{Compiler, JitError};
use super::hiprtc::HipRtc;
use super::nvrtc::Nvrtc;
use super::target::Target;
use crate::kernels::{render, Dialect, KernelSpec};

/// One kernel compiled (or loaded) for one target.
#[derive(Clone, Debug)]
pub struct CompiledKernel {
    pub spec: KernelSpec,
    pub target: Target,
    pub entry: String,
    pub block_threads: u32,
    pub code: Arc<Vec<u8>>,
    pub origin: Origin,
    pub seconds: f64,
}

impl CompiledKernel {
    /// Register, LDS, scratch and spill use, for AMD code objects.
    pub fn resources(&self) -> Option<KernelResources> {
        match self.target {
            Target::Amd { .. } => amd_kernel_resources(&self.code).ok()?.into_iter().find(|k| k.name == self.entry),
            Target::Nvidia { .. } => None,
        }
    }
}

/// Reported after each kernel of a warm.
#[derive(Clone, Debug)]
pub struct Progress<'a> {
    pub done: usize,
    pub total: usize,
    pub kernel: &'a CompiledKernel,
}

type ProgressFn = dyn Fn(&Progress<'_>) + Send + Sync;

/// What a warm did.
#[derive(Debug)]
pub struct WarmReport {
    pub kernels: Vec<CompiledKernel>,
    pub wall: Duration,
}

impl WarmReport {
    pub fn compiled(&self) -> usize {
        self.kernels.iter().filter(|k| k.origin == Origin::Compiled).count()
    }
}

pub struct EngineBuilder {
    cache_dir: Option<PathBuf>,
    memory_only: bool,
    shared_cache: bool,
    targets: Vec<Target>,
    jobs: Option<usize>,
    progress: Option<Box<ProgressFn>>,
}

impl EngineBuilder {
    /// Cache root (default: [`KernelCache::default_root`]).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// The cache folder is shared on purpose (see `cache/README.md`); default:
    /// `ROCMFORGE_CACHE_SHARED=1`.
    pub fn shared_cache(mut self, shared: bool) -> Self {
        self.shared_cache = shared;
        self
    }

    /// Keep compiled kernels in memory only.
    pub fn memory_only(mut self) -> Self {
        self.memory_only = true;
        self
    }

    pub fn target(mut self, target: Target) -> Self {
        self.targets.push(target);
        self
    }

    pub fn targets(mut self, targets: impl IntoIterator<Item = Target>) -> Self {
        self.targets.extend(targets);
        self
    }

    /// Parallel compile jobs (default: the number of cores).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = Some(jobs.max(1));
        self
    }

    /// Called after each kernel is compiled or loaded.
    pub fn progress(mut self, f: impl Fn(&Progress<'_>) + Send + Sync + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Loads the compilers the targets need and checks every target before anything compiles.
    pub fn build(self) -> Result<Engine, JitError> {
        let cache = if self.memory_only {
            KernelCache::memory_only()
        } else {
            KernelCache::open_with(self.cache_dir.unwrap_or_else(KernelCache::default_root), self.shared_cache)
                .map_err(|e| JitError::Cache(e.to_string()))?
        };
        let engine = Engine {
            cache: Arc::new(cache),
            targets: self.targets,
            jobs: self.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
            progress: self.progress,
            hip: OnceLock::new(),
            nvrtc: OnceLock::new(),
        };
        for t in &engine.targets {
            engine.compiler_for(t)?.check_target(t)?;
        }
        Ok(engine)
    }
}

pub struct Engine {
    cache: Arc<KernelCache>,
    targets: Vec<Target>,
    jobs: usize,
    progress: Option<Box<ProgressFn>>,
    hip: OnceLock<Result<Arc<HipRtc>, JitError>>,
    nvrtc: OnceLock<Result<Arc<Nvrtc>, JitError>>,
}

impl Engine {
    pub fn builder() -> EngineBuilder {
        EngineBuilder {
            cache_dir: None,
            memory_only: false,
            shared_cache: KernelCache::shared_from_env(),
            targets: Vec::new(),
            jobs: None,
            progress: None,
        }
    }

    /// The same engine, reporting progress through `f` from now on.
    pub fn with_progress(mut self, f: impl Fn(&Progress<'_>) + Send + Sync + 'static) -> Engine {
        self.progress = Some(Box::new(f));
        self
    }

    pub fn cache(&self) -> &KernelCache {
        &self.cache
    }

    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// The compiler for `target`'s dialect, loaded on first use.
    pub fn compiler_for(&self, target: &Target) -> Result<Arc<dyn Compiler>, JitError> {
        match target.dialect() {
            Dialect::Hip => {
                self.hip.get_or_init(|| HipRtc::load().map(Arc::new)).clone().map(|c| c as Arc<dyn Compiler>)
            }
            Dialect::Cuda => {
                self.nvrtc.get_or_init(|| Nvrtc::load().map(Arc::new)).clone().map(|c| c as Arc<dyn Compiler>)
            }
        }
        .map_err(|e| JitError::NoCompiler { target: target.to_string(), why: e.to_string() })
    }

    /// The cache key `spec` has on `target` (for checks that must not compile).
    pub fn cache_key(&self, spec: &KernelSpec, target: &Target) -> Result<CacheKey, JitError> {
        let compiler = self.compiler_for(target)?;
        let rendered = render(spec, target.render_target()).map_err(|e| spec_error(spec, target, e))?;
        Ok(CacheKey::new(compiler.id(), target, &compiler.options(target), &rendered.source))
    }

    /// One kernel for one target: from memory, the cache, or the compiler.
    pub fn kernel(&self, spec: &KernelSpec, target: &Target) -> Result<CompiledKernel, JitError> {
        let start = Instant::now();
        let compiler = self.compiler_for(target)?;
        let rendered = render(spec, target.render_target()).map_err(|e| spec_error(spec, target, e))?;
        let (code, origin) = self.cache.get_or_compile(compiler.as_ref(), target, &rendered.entry, &rendered.source)?;
        Ok(CompiledKernel {
            spec: *spec,
            target: target.clone(),
            entry: rendered.entry,
            block_threads: rendered.block_threads,
            code,
            origin,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Compiles (or loads) every spec for every target of the engine, `jobs` at a time. Every job
    /// runs; the first failure is returned after all have finished.
    pub fn warm(&self, specs: &[KernelSpec]) -> Result<WarmReport, JitError> {
        let start = Instant::now();
        let jobs: Vec<(&KernelSpec, &Target)> =
            self.targets.iter().flat_map(|t| specs.iter().map(move |s| (s, t))).collect();
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let results: Mutex<Vec<(usize, Result<CompiledKernel, JitError>)>> = Mutex::new(Vec::with_capacity(jobs.len()));
        let work = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(spec, target)) = jobs.get(i) else { break };
            let r = self.kernel(spec, target);
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if let (Ok(k), Some(cb)) = (&r, &self.progress) {
                cb(&Progress { done: n, total: jobs.len(), kernel: k });
            }
            results.lock().expect("results lock").push((i, r));
        };
        std::thread::scope(|scope| {
            // Extra threads are a speed-up, not a need: where the system refuses them (a process
            // limit), the jobs left run on the threads that did start, or on this one.
            for _ in 1..self.jobs.min(jobs.len()).max(1) {
                if std::thread::Builder::new().name("rocmforge-jit".into()).spawn_scoped(scope, work).is_err() {
                    break;
                }
            }
            work();
        });
        let mut results = results.into_inner().expect("results lock");
        results.sort_by_key(|(i, _)| *i);
        let mut kernels = Vec::with_capacity(results.len());
        for (_, r) in results {
            kernels.push(r?);
        }
        Ok(WarmReport { kernels, wall: start.elapsed() })
    }

    /// The (spec, target) pairs with no valid cache entry. Compiles nothing.
    pub fn missing(&self, specs: &[KernelSpec]) -> Result<Vec<(KernelSpec, Target)>, JitError> {
        let mut missing = Vec::new();
        for t in &self.targets {
            for s in specs {
                let compiler = self.compiler_for(t)?;
                let rendered = render(s, t.render_target()).map_err(|e| spec_error(s, t, e))?;
                if !self.cache.has_valid_entry(compiler.as_ref(), t, &rendered.entry, &rendered.source) {
                    missing.push((*s, t.clone()));
                }
            }
        }
        Ok(missing)
    }
}

fn spec_error(spec: &KernelSpec, target: &Target, e: crate::kernels::SpecError) -> JitError {
    JitError::UnsupportedTarget { compiler: "renderer".into(), target: target.to_string(), why: format!("{spec}: {e}") }
}
