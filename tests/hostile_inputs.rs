//! Issue 12's hostile inputs to the command line, each written as the attack or input it is: FIFOs
//! and devices given as files, sizes that overflow or exceed memory, options out of range, an
//! output path that is the model, NaN sampling parameters, model values the forward pass cannot
//! use, and a system that refuses threads. Each must get a clear error (exit 1) naming the
//! problem: never a panic (101), an abort (134), a hang, or a write where none was asked for.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rocmforge::dtype::GgmlType;
use rocmforge::gguf::{Array, GgufWriter, Value};

fn rocmforge() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rocmforge"));
    c.env("ROCMFORGE_CACHE_DIR", std::env::temp_dir().join("rocmforge-hostile-cache")).stdin(Stdio::null());
    c
}

/// Runs a command, failing the test if it takes more than `secs` (a hang).
fn run_within(mut c: Command, secs: u64) -> Output {
    let child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            panic!("{c:?} hung for {secs} s");
        }
    }
}

/// Exit code 1 with stderr containing every one of `says`; prints what it measured.
fn assert_refused(out: &Output, what: &str, says: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    println!("{what}: exit {:?}: {}", out.status.code(), err.trim());
    assert_eq!(out.status.code(), Some(1), "{what}: a clean refusal, not a crash: {err}");
    for s in says {
        assert!(err.contains(s), "{what}: the error names {s:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{what}: {err}");
}

/// A tiny llama with a SentencePiece vocabulary (enough for `run`), its metadata adjustable.
fn tiny_model(path: &Path, edit: impl FnOnce(&mut GgufWriter)) {
    let (n_embd, n_ff, n_vocab) = (256u64, 512u64, 64u64);
    let n_layer = 2;
    let mut w = GgufWriter::new();
    let mut tokens: Vec<Vec<u8>> = vec![b"<unk>".to_vec(), b"<s>".to_vec(), b"</s>".to_vec(), "▁".as_bytes().to_vec()];
    for c in b'a'..=b'z' {
        tokens.push(vec![c]);
        tokens.push(format!("▁{}", c as char).into_bytes());
    }
    while tokens.len() < n_vocab as usize {
        tokens.push(format!("<extra{}>", tokens.len()).into_bytes());
    }
    w.set_str("general.architecture", "llama")
        .set_u32("llama.block_count", n_layer)
        .set_u32("llama.context_length", 256)
        .set_u32("llama.embedding_length", n_embd as u32)
        .set_u32("llama.feed_forward_length", n_ff as u32)
        .set_u32("llama.attention.head_count", 4)
        .set_u32("llama.attention.head_count_kv", 2)
        .set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
        .set_str("tokenizer.ggml.model", "llama")
        .set("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)))
        .set_u32("tokenizer.ggml.bos_token_id", 1)
        .set_u32("tokenizer.ggml.eos_token_id", 2);
    edit(&mut w);
    let mut seed = 7u32;
    let mut bytes = |ty: GgmlType, cols: u64, rows: u64| -> Vec<u8> {
        let n = (ty.row_bytes(cols).unwrap() * rows) as usize;
        (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                ((seed >> 24) as u8) & 0x3b
            })
            .collect()
    };
    w.add_tensor("token_embd.weight", &[n_embd, n_vocab], GgmlType::Q8_0, bytes(GgmlType::Q8_0, n_embd, n_vocab));
    for i in 0..n_layer {
        let p = format!("blk.{i}");
        w.add_f32(&format!("{p}.attn_norm.weight"), &[n_embd], &vec![1.0; n_embd as usize]);
        w.add_f32(&format!("{p}.ffn_norm.weight"), &[n_embd], &vec![1.0; n_embd as usize]);
        for (name, cols, rows) in [
            ("attn_q", n_embd, n_embd),
            ("attn_k", n_embd, n_embd / 2),
            ("attn_v", n_embd, n_embd / 2),
            ("attn_output", n_embd, n_embd),
            ("ffn_gate", n_embd, n_ff),
            ("ffn_up", n_embd, n_ff),
            ("ffn_down", n_ff, n_embd),
        ] {
            w.add_tensor(
                &format!("{p}.{name}.weight"),
                &[cols, rows],
                GgmlType::Q8_0,
                bytes(GgmlType::Q8_0, cols, rows),
            );
        }
    }
    w.add_f32("output_norm.weight", &[n_embd], &vec![1.0; n_embd as usize]);
    w.add_tensor("output.weight", &[n_embd, n_vocab], GgmlType::Q8_0, bytes(GgmlType::Q8_0, n_embd, n_vocab));
    w.write_to(path).expect("the tiny model is written");
}

fn model_in(dir: &Path, name: &str, edit: impl FnOnce(&mut GgufWriter)) -> PathBuf {
    let path = dir.join(name);
    tiny_model(&path, edit);
    path
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(rustix::fs::CWD, path, rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o600), 0)
        .unwrap();
}

#[test]
fn the_tiny_model_runs_so_the_refusals_below_are_about_their_input() {
    let dir = common::temp_dir("hostile-ok");
    let model = model_in(&dir, "ok.gguf", |_| {});
    let mut c = rocmforge();
    c.args(["run", "--device", "cpu", "-n", "4", "-p", "abc"]).arg(&model);
    let out = run_within(c, 120);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_fifo_given_as_the_model_is_refused_not_waited_on() {
    let dir = common::temp_dir("hostile-fifo-model");
    let fifo = dir.join("model.gguf");
    mkfifo(&fifo);
    for args in
        [&["inspect"][..], &["run", "--device", "cpu", "-p", "hi"], &["kernels"], &["warm", "--target", "gfx90a"]]
    {
        let mut c = rocmforge();
        c.args(args).arg(&fifo);
        assert_refused(&run_within(c, 20), &format!("{args:?} on a FIFO"), &["FIFO", "model.gguf"]);
    }
}

#[test]
fn a_symlink_to_dev_zero_given_as_the_model_is_refused_not_read_forever() {
    let dir = common::temp_dir("hostile-devzero");
    let link = dir.join("model.gguf");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    let mut c = rocmforge();
    c.arg("inspect").arg(&link);
    assert_refused(&run_within(c, 20), "a model linked to /dev/zero", &["device"]);
}

#[test]
fn a_fifo_given_as_the_logits_token_file_is_refused_not_waited_on() {
    let dir = common::temp_dir("hostile-fifo-tokens");
    let model = model_in(&dir, "m.gguf", |_| {});
    let fifo = dir.join("tokens.bin");
    mkfifo(&fifo);
    let mut c = rocmforge();
    c.args(["logits", "--device", "cpu", "--out"]).arg(dir.join("out.bin")).arg("--tokens").arg(&fifo).arg(&model);
    assert_refused(&run_within(c, 60), "logits --tokens FIFO", &["FIFO", "tokens.bin"]);
    assert!(!dir.join("out.bin").exists());
}

#[test]
fn a_context_of_4_billion_tokens_is_refused_naming_the_memory_it_needs_and_the_limit() {
    let dir = common::temp_dir("hostile-ctx");
    let model = model_in(&dir, "huge-ctx.gguf", |w| {
        w.set_u32("llama.context_length", u32::MAX);
    });
    // 2 layers × (128 + 128) f32 per position: 2 KiB a position, so 10^8 positions is 205 GB
    // (more where the host has more: twice what it has available) and 4·10^9 is 8 TB.
    let available_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:")?.split_whitespace().next()?.parse().ok())
        .unwrap();
    let n = (available_kib * 1024 * 2 / 2048).max(100_000_000).to_string();
    let cases: [(String, [&str; 2]); 2] =
        [(format!("-n {n}"), ["-n", &n]), ("--ctx 4000000000".into(), ["--ctx", "4000000000"])];
    for (what, args) in &cases {
        let mut c = rocmforge();
        c.args(["run", "--device", "cpu", "-p", "abc"]).args(args).arg(&model);
        assert_refused(&run_within(c, 60), what, &["KV cache", "needs", "GiB", "available"]);
    }
}

#[test]
fn counts_that_overflow_or_exceed_any_context_are_refused_before_anything_runs() {
    let cases: [(&str, &[&str], &[&str]); 5] = [
        (
            "-n 2^64-1",
            &["run", "-n", "18446744073709551615", "-p", "x", "m.gguf"],
            &["-n 18446744073709551615", "at most"],
        ),
        ("--ctx 0", &["run", "--ctx", "0", "-p", "x", "m.gguf"], &["--ctx 0"]),
        ("--ctx 2^40", &["run", "--ctx", "1099511627776", "-p", "x", "m.gguf"], &["--ctx 1099511627776", "at most"]),
        ("bench --prompt 2^62", &["bench", "--prompt", "4611686018427387904", "m.gguf"], &["--prompt", "at most"]),
        ("bench --reps 0", &["bench", "--reps", "0", "m.gguf"], &["--reps 0"]),
    ];
    for (what, args, says) in cases {
        let mut c = rocmforge();
        c.args(args);
        assert_refused(&run_within(c, 20), what, says);
    }
}

#[test]
fn jobs_far_beyond_the_cores_or_zero_are_refused_before_any_process_starts() {
    let dir = common::temp_dir("hostile-jobs");
    let model = model_in(&dir, "m.gguf", |_| {});
    for (jobs, says) in [("100000", &["--jobs 100000", "too many", "at most"][..]), ("0", &["--jobs 0"][..])] {
        let mut c = rocmforge();
        c.env("ROCMFORGE_CACHE_DIR", dir.join("cache"))
            .args(["warm", "--target", "gfx90a", "--jobs", jobs])
            .arg(&model);
        let start = std::time::Instant::now();
        assert_refused(&run_within(c, 20), &format!("warm --jobs {jobs}"), says);
        assert!(start.elapsed() < Duration::from_secs(10), "refused at once");
        assert!(!dir.join("cache").exists(), "nothing compiled");
    }
}

#[test]
fn logits_out_refuses_to_overwrite_the_model_it_reads() {
    let dir = common::temp_dir("hostile-out");
    let model = model_in(&dir, "m.gguf", |_| {});
    let before = std::fs::read(&model).unwrap();
    let alias = dir.join("alias.gguf");
    std::os::unix::fs::symlink(&model, &alias).unwrap();
    let spelled_otherwise = dir.join(".").join("m.gguf");
    for (flag, out) in [("--out", &model), ("--out", &alias), ("--out", &spelled_otherwise), ("--tokens-out", &model)] {
        let mut c = rocmforge();
        c.args(["logits", "--device", "cpu", "-p", "abc"]);
        if flag == "--tokens-out" {
            c.arg("--out").arg(dir.join("logits.bin"));
        }
        c.arg(flag).arg(out).arg(&model);
        assert_refused(
            &run_within(c, 60),
            &format!("logits {flag} {}", out.display()),
            &[flag, "model file", "refusing"],
        );
        assert_eq!(std::fs::read(&model).unwrap(), before, "the model is untouched");
    }
}

#[test]
fn nan_or_out_of_range_sampling_parameters_are_refused() {
    let cases: [(&str, &str); 8] = [
        ("--repeat-penalty", "nan"),
        ("--repeat-penalty", "0"),
        ("--temp", "nan"),
        ("--temp", "-1"),
        ("--temp", "inf"),
        ("--top-p", "nan"),
        ("--top-p", "1.5"),
        ("--min-p", "-0.5"),
    ];
    for (flag, value) in cases {
        let mut c = rocmforge();
        c.args(["run", "--device", "cpu", "-p", "Hi", &format!("{flag}={value}"), "m.gguf"]);
        assert_refused(&run_within(c, 20), &format!("{flag} {value}"), &[flag]);
    }
}

#[test]
fn model_values_the_forward_pass_cannot_use_are_refused_at_load_naming_the_key() {
    let dir = common::temp_dir("hostile-values");
    const EPS: &str = "llama.attention.layer_norm_rms_epsilon";
    let eps = EPS;
    type Edit = Box<dyn Fn(&mut GgufWriter)>;
    let cases: Vec<(&str, Edit, &[&str])> = vec![
        (
            "eps NaN",
            Box::new(move |w| {
                w.set_f32(eps, f32::NAN);
            }),
            &[EPS, "NaN"],
        ),
        (
            "eps negative",
            Box::new(move |w| {
                w.set_f32(eps, -1e-5);
            }),
            &[EPS, "greater than 0"],
        ),
        (
            "eps infinite",
            Box::new(move |w| {
                w.set_f32(eps, f32::INFINITY);
            }),
            &[EPS, "inf"],
        ),
        (
            "eps zero",
            Box::new(move |w| {
                w.set_f32(eps, 0.0);
            }),
            &[EPS],
        ),
        (
            "rope base NaN",
            Box::new(|w| {
                w.set_f32("llama.rope.freq_base", f32::NAN);
            }),
            &["llama.rope.freq_base"],
        ),
        (
            "rope base negative",
            Box::new(|w| {
                w.set_f32("llama.rope.freq_base", -10000.0);
            }),
            &["llama.rope.freq_base"],
        ),
        (
            "rope scaling factor NaN",
            Box::new(|w| {
                w.set_str("llama.rope.scaling.type", "linear").set_f32("llama.rope.scaling.factor", f32::NAN);
            }),
            &["llama.rope.scaling.factor"],
        ),
        (
            "block_count 1 of the 2 layers the file holds",
            Box::new(|w| {
                w.set_u32("llama.block_count", 1);
            }),
            &["llama.block_count", "holds 2 layers"],
        ),
        (
            "block_count 3 with 2 layers in the file",
            Box::new(|w| {
                w.set_u32("llama.block_count", 3);
            }),
            &["llama.block_count"],
        ),
    ];
    for (i, (what, edit, says)) in cases.into_iter().enumerate() {
        let model = model_in(&dir, &format!("m{i}.gguf"), |w| edit(w));
        for args in [&["run", "--device", "cpu", "-p", "Hi"][..], &["kernels"]] {
            let mut c = rocmforge();
            c.args(args).arg(&model);
            assert_refused(&run_within(c, 60), &format!("{what} ({})", args[0]), says);
        }
    }
}

/// As root, runs the binary as user `nobody` allowed a single process: no thread, no child can be
/// created. (Root itself is exempt from RLIMIT_NPROC.)
fn as_nobody_without_threads(args: &[&str], dir: &Path) -> Option<Output> {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipping: dropping to another user with a process limit needs root (CI runs as root)");
        return None;
    }
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "prlimit", "--nproc=1", "--"])
        .arg(env!("CARGO_BIN_EXE_rocmforge"))
        .args(args)
        .env("ROCMFORGE_CACHE_DIR", dir.join("cache"))
        .env("HOME", dir);
    Some(run_within(c, 300))
}

#[test]
fn a_system_that_refuses_threads_gets_an_error_from_run_and_a_slower_warm_never_a_panic() {
    let dir = common::temp_dir("hostile-nproc");
    rustix::fs::chown(&dir, Some(rustix::process::Uid::from_raw(65534)), None).ok();
    let model = model_in(&dir, "m.gguf", |_| {});
    let m = model.to_str().unwrap();
    let Some(out) = as_nobody_without_threads(&["run", "--device", "cpu", "-n", "2", "-p", "abc", m], &dir) else {
        return;
    };
    assert_refused(&out, "run with no thread allowed", &["cannot start a worker thread", "ulimit -u"]);
    if common::hiprtc().is_none() {
        return;
    }
    let out = as_nobody_without_threads(&["warm", "--target", "gfx90a", "--jobs", "2", m], &dir).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    println!("warm with no process or thread allowed: exit {:?}: {}", out.status.code(), err.trim());
    assert!(matches!(out.status.code(), Some(0) | Some(1)), "no panic or abort: {err}");
    assert!(!err.contains("panicked"), "{err}");
}
