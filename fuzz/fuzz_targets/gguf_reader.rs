//! Any byte string is either a valid GGUF file or a typed error: never a panic, a hang or an
//! allocation the input did not pay for (see rocmforge::fuzzing).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rocmforge::fuzzing::walk_untrusted_gguf(data));
