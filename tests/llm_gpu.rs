//! `Llm` on a real GPU (run by scripts/gpu_tests.sh on the GPU machine): kernels JIT-compiled for
//! the device, a chat answered, the second turn prefilled from the first's cache, a dropped stream
//! cancelled without disturbing the next request.

mod common;

use rocmforge::chat::Message;
use rocmforge::exec::{FinishReason, GenerateParams, SamplerConfig};
use rocmforge::llm::{DeviceChoice, Llm, LlmOptions};

#[test]
#[ignore = "needs a GPU: run with scripts/gpu_tests.sh run"]
fn llm_chats_on_the_gpu_and_reuses_the_cache_between_turns() {
    let Some(model) = common::model("SmolLM2-135M-Instruct.Q4_1.gguf") else { return };
    let cache = common::temp_dir("llm-gpu");
    let kernels = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = kernels.clone();
    let options =
        LlmOptions { device: DeviceChoice::Auto, context: Some(1024), cache_dir: Some(cache), ..Default::default() }
            .progress(move |p| {
                if let rocmforge::llm::LoadProgress::Kernel { .. } = p {
                    seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
    let llm = Llm::open_with(&model, options).unwrap();
    let info = llm.info().clone();
    println!("{info:?}");
    assert_ne!(info.device, "cpu", "a GPU was found");
    let n = common::kernels_needed(&model);
    assert_eq!(info.kernels_compiled, n, "a fresh cache compiles every kernel");
    assert_eq!(kernels.load(std::sync::atomic::Ordering::Relaxed), n, "progress saw each kernel");

    let params = GenerateParams { max_tokens: 32, sampler: SamplerConfig::greedy(), ..Default::default() };
    let mut history = vec![Message::new("user", "What is the capital of France?")];
    let first = llm.chat(&history, params.clone()).unwrap().complete().unwrap();
    println!("{:?} {:?}", first.text, first.finished);
    assert!(first.text.contains("Paris"), "{}", first.text);
    assert_eq!(first.finished.reason, FinishReason::EndOfText);
    history.push(Message::new("assistant", &first.text));
    history.push(Message::new("user", "And what is the capital of Italy?"));
    let second = llm.chat(&history, params.clone()).unwrap().complete().unwrap();
    println!("{:?} {:?}", second.text, second.finished);
    assert!(second.text.contains("Rome"), "{}", second.text);
    assert!(second.finished.reused_tokens > 20, "{:?}", second.finished);

    let mut long = llm.generate("Once upon a time", GenerateParams { max_tokens: 500, ..params.clone() }).unwrap();
    long.next().unwrap().unwrap();
    drop(long);
    let after = llm.chat(&history[..1], params).unwrap().complete().unwrap();
    assert_eq!(after.text, first.text, "the same question after a cancelled stream, the same greedy answer");
    // The worker counts a request just after its last event: wait for it (bounded).
    let mut c = llm.counters();
    for _ in 0..200 {
        if c.completed == 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        c = llm.counters();
    }
    assert_eq!((c.completed, c.cancelled, c.failed), (3, 1, 0), "{c:?}");
}
