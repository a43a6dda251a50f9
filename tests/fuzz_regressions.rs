//! Replays every input the fuzzer once crashed on (fuzz/regressions/), through the fuzz target's
//! own body.

#[test]
fn past_fuzzer_crashes_stay_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions should exist") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        rocmforge::fuzzing::walk_untrusted_gguf(&data);
        n += 1;
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
}
