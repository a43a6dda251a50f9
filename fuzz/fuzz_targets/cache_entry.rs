//! Any byte string, as a kernel cache entry or a code object, is either accepted whole or a typed
//! bad entry: never a panic, a hang or an allocation the input did not pay for (see
//! rocmforge::fuzzing::walk_untrusted_cache_entry).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rocmforge::fuzzing::walk_untrusted_cache_entry(data));
