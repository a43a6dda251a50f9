//! `rocmforge run` as a user meets it: sampling flags out of range and a context too small for the
//! prompt are clear errors before anything streams; a closed stdout (`| head`) ends it quietly.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

fn rocmforge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rocmforge"))
}

#[test]
fn sampling_flags_out_of_range_are_refused_naming_the_flag() {
    for (flag, value, name) in [
        ("--temp", "nan", "--temp NaN"),
        ("--temp=-1", "", "--temp -1"),
        ("--top-p", "1.5", "--top-p 1.5"),
        ("--min-p", "2", "--min-p 2"),
        ("--repeat-penalty", "0", "--repeat-penalty 0"),
        ("--repeat-penalty", "inf", "--repeat-penalty inf"),
    ] {
        let mut cmd = rocmforge();
        cmd.args(["run", "model.gguf", "-p", "hi", flag]);
        if !value.is_empty() {
            cmd.arg(value);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flag} {value}: {err}");
        assert!(err.contains(name) && err.contains("must be"), "{flag} {value}: {err}");
    }
}

#[test]
fn a_context_smaller_than_the_prompt_is_an_error_before_streaming() {
    let Some(model) = common::model("SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    let out = rocmforge()
        .args(["run", "--device", "cpu", "--ctx", "4", "-p", "The quick brown fox jumps over the lazy dog"])
        .arg(&model)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--ctx 4 cannot hold the prompt: it is 9 tokens"), "{err}");
    assert!(out.stdout.is_empty(), "nothing streamed: {:?}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn a_closed_stdout_ends_the_run_without_a_panic() {
    let Some(model) = common::model("SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    let mut child = rocmforge()
        .args(["run", "--device", "cpu", "--temp", "0", "-n", "64", "-p", "Once upon a time"])
        .arg(&model)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 4];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take()); // as `| head -c 4` does
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert!(status.success() || status.signal() == Some(13), "a quiet end (0 or SIGPIPE): {status:?} {err}");
    }
    assert_eq!(&first, b"Once");
}

#[test]
fn help_lists_chat_and_serve_with_their_model_argument_explained() {
    let out = rocmforge().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("chat") && help.contains("serve"), "{help}");
    for sub in ["run", "chat", "serve", "bench", "inspect", "warm", "kernels", "logits"] {
        let out = rocmforge().args([sub, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        // `<MODEL>` and its help, on one line or (clap's long layout) the next.
        let lines: Vec<&str> = help.lines().skip_while(|l| !l.starts_with("Arguments:")).skip(1).take(2).collect();
        let text = lines.join(" ");
        assert!(text.contains("<MODEL>") && text.contains("GGUF"), "{sub}: {lines:?}");
    }
}
