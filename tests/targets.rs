//! Thirty target strings through `rocmforge warm`, each in a process of its own: valid processors
//! and feature sets compile (when the loaded hipRTC's HIP release has them), everything else exits
//! 1 with an error naming the target and the reason. None may abort the process: ROCm 5.2's hipRTC
//! aborts (rc 134, inside comgr) on a processor or feature it does not know, so a target that
//! reached it would show here as a signal instead of exit code 1.

mod common;

use std::process::Command;

/// What a target string should do.
enum Expect {
    /// Compiles when the loaded hipRTC is at least this HIP (major, minor); before that, exits 1
    /// saying which HIP it needs.
    CompilesFrom((u32, u32)),
    /// Exits 1, the error containing this text, whatever hipRTC is loaded.
    Refused(&'static str),
    /// Compiles up to this HIP (major, minor), and is refused after it.
    CompilesFromUntil((u32, u32), (u32, u32)),
}

use Expect::*;

const CASES: [(&str, Expect); 30] = [
    // Valid on ROCm 5.2 (feature sets as LLVM's processor table allows them).
    ("gfx906", CompilesFrom((5, 0))),
    ("gfx90a", CompilesFrom((5, 0))),
    ("gfx1030", CompilesFrom((5, 0))),
    ("gfx803", CompilesFrom((5, 0))),
    ("gfx900:xnack+", CompilesFrom((5, 0))),
    ("gfx906:sramecc+", CompilesFrom((5, 0))),
    ("gfx906:xnack-", CompilesFrom((5, 0))),
    ("gfx908:sramecc-", CompilesFrom((5, 0))),
    ("gfx90a:sramecc+:xnack-", CompilesFrom((5, 0))),
    ("gfx90a:xnack-:sramecc+", CompilesFrom((5, 0))),
    ("gfx1010:xnack+", CompilesFrom((5, 0))),
    // Valid processors that need a newer HIP than 5.2, or were dropped by a newer one.
    ("gfx942", CompilesFrom((5, 4))),
    ("gfx942:xnack+", CompilesFrom((5, 4))),
    ("gfx1100", CompilesFrom((5, 4))),
    ("gfx1151", CompilesFrom((6, 2))),
    ("gfx1201", CompilesFrom((6, 3))),
    ("gfx950", CompilesFrom((6, 4))),
    ("gfx940", CompilesFromUntil((5, 4), (6, 3))),
    // Features the processor does not have (ROCm 5.2 aborts on each).
    ("gfx1030:xnack+", Refused("gfx1030 has no xnack feature")),
    ("gfx1030:xnack-", Refused("gfx1030 has no xnack feature")),
    ("gfx803:sramecc+", Refused("gfx803 has no sramecc feature")),
    ("gfx803:xnack+", Refused("gfx803 has no xnack feature")),
    ("gfx1100:xnack-", Refused("gfx1100 has no xnack feature")),
    ("gfx1201:sramecc+", Refused("gfx1201 has no sramecc feature")),
    // Processors rocmforge does not know.
    ("gfx1250", Refused("gfx1250 is not an AMD processor rocmforge knows")),
    ("gfx1234", Refused("gfx1234 is not an AMD processor rocmforge knows")),
    ("gfx600", Refused("gfx600 is not an AMD processor rocmforge knows")),
    // Malformed.
    ("gfx90a:xnack+:xnack-", Refused("the xnack feature is given twice")),
    ("gfx90a:fast+", Refused("unknown feature \"fast+\"")),
    ("GFX906", Refused("unknown target \"GFX906\"")),
];

#[test]
fn thirty_target_strings_compile_or_exit_one_and_none_aborts() {
    let Some(rtc) = common::hiprtc() else { return };
    let hip = rtc.hip_version().expect("the loaded hipRTC's HIP release is known");
    let hip = (hip.major, hip.minor);
    drop(rtc);
    let dir = common::temp_dir("targets");
    let model = dir.join("tiny.gguf");
    common::write_tiny_llama(&model);
    let mut compiled = 0;
    for (i, (target, expect)) in CASES.iter().enumerate() {
        // A cache of its own per string, so each compile is really a compile.
        let cache = dir.join(format!("cache-{i}"));
        let out = Command::new(env!("CARGO_BIN_EXE_rocmforge"))
            .args(["warm", "--target", target, "--cache-dir"])
            .arg(&cache)
            .arg(&model)
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let error = stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
        println!("{target:<24} exit {:?} {}", out.status.code(), if error.is_empty() { "compiled" } else { error });
        assert!(out.status.code().is_some(), "{target}: killed by a signal (an abort): {stderr}");
        let processor = target.split(':').next().unwrap_or_default();
        let refusal = match *expect {
            CompilesFrom(min) if hip >= min => None,
            CompilesFrom(min) => Some(format!("{processor} needs HIP {}.{} or newer", min.0, min.1)),
            CompilesFromUntil(min, _) if hip < min => Some(format!("needs HIP {}.{} or newer", min.0, min.1)),
            CompilesFromUntil(_, max) if hip > max => Some(format!("was dropped after HIP {}.{}", max.0, max.1)),
            CompilesFromUntil(..) => None,
            Refused(says) => Some(says.to_string()),
        };
        match refusal {
            None => {
                assert_eq!(out.status.code(), Some(0), "{target} should compile:\n{stderr}");
                assert!(stdout.contains(" compiled, 0 cached"), "{target}: {stdout}");
                compiled += 1;
            }
            Some(says) => {
                assert_eq!(out.status.code(), Some(1), "{target} should be refused with exit 1:\n{stdout}{stderr}");
                assert!(error.contains(&says), "{target}: the error should say {says:?}:\n{stderr}");
                assert!(!stderr.contains("panicked"), "{target}: {stderr}");
                let entries = std::fs::read_dir(cache.join("v1")).map(|d| d.count()).unwrap_or(0);
                assert_eq!(entries, 0, "{target}: nothing is compiled before a refusal");
            }
        }
    }
    println!("{compiled} of {} target strings compiled with HIP {}.{}", CASES.len(), hip.0, hip.1);
    assert!(compiled >= 11, "every valid ROCm 5.2 target compiles");
    std::fs::remove_dir_all(&dir).unwrap();
}
