//! Device discovery on a machine without a GPU (CI's): each backend answers with a clear error
//! naming what is missing, and `auto` falls back to the CPU.

use rocmforge::device::{self, DeviceError};

#[test]
fn cpu_and_auto_without_a_gpu_need_no_device() {
    assert!(device::open("cpu").unwrap().is_none());
    if device::open("cuda").is_err() && device::open("hip").is_err() {
        assert!(device::open("auto").unwrap().is_none(), "auto falls back to the CPU");
    }
}

#[test]
fn a_missing_gpu_is_a_clear_error_naming_the_backend() {
    for (name, backend) in [("hip", "hip"), ("cuda", "cuda")] {
        match device::open(name) {
            Ok(Some(d)) => println!("{name}: a real device is present ({})", d.name()),
            Ok(None) => panic!("{name} never means the CPU"),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.starts_with(backend), "{msg}");
                assert!(
                    matches!(e, DeviceError::LibraryNotFound { .. } | DeviceError::NoDevice { .. }),
                    "{name}: {e:?}"
                );
            }
        }
    }
    let e = device::open("tpu").expect_err("an unknown device is refused").to_string();
    assert!(e.contains("cpu, cuda, hip or auto"), "{e}");
}

#[test]
fn hip_found_here_reports_that_no_amd_gpu_answered() {
    // Debian's ROCm 5.2 packages (installed by scripts/install_deps.sh) provide libamdhip64.
    if std::env::var("ROCMFORGE_REQUIRE_HIPRTC").as_deref() != Ok("1") {
        return;
    }
    let e = device::open("hip").expect_err("no AMD GPU on this machine");
    assert!(matches!(e, DeviceError::NoDevice { backend: "hip", .. }), "{e:?}");
    assert!(e.to_string().contains("no AMD GPU answered"), "{e}");
}
