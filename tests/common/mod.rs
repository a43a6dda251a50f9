//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// The model cache `scripts/fetch_models.py` fills: `$ROCMFORGE_MODELS`, else
/// `$XDG_CACHE_HOME/rocmforge/models`, else `~/.cache/rocmforge/models`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ROCMFORGE_MODELS") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
    base.join("rocmforge").join("models")
}

/// A fetched model file, or `None` (with a note) when it is absent. With
/// `ROCMFORGE_REQUIRE_MODELS=1` (the README's test command sets it) absence is a failure, so a
/// broken fetch cannot turn these tests into silent passes.
#[allow(dead_code)]
pub fn model(relative: &str) -> Option<PathBuf> {
    let path = models_dir().join(relative);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("ROCMFORGE_REQUIRE_MODELS").as_deref() == Ok("1") {
        panic!("{} is missing: run scripts/fetch_models.py", path.display());
    }
    eprintln!("skipping: {} is absent (run scripts/fetch_models.py)", path.display());
    None
}
