//! Int8 matrix products on one core: weight GB/s for one token (decode) and int8 GOP/s for 64
//! tokens (prefill), per weight type and instruction set, beside the core's memory read
//! bandwidth. `cargo bench --bench int8_gemm [-- FILTER]` (FILTER matches the type name);
//! `cargo bench --bench int8_gemm -- --model FILE` streams every int8 matrix of a model file once,
//! as a decode step does.

use std::time::Instant;

use rocmforge::dtype::GgmlType;
use rocmforge::quant::{gemm_q8_1_with, Isa, Kernel, Q8Rows};

fn random_blocks(ty: GgmlType, n_blocks: usize) -> Vec<u8> {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let bb = ty.block_bytes();
    let mut bytes: Vec<u8> = (0..n_blocks * bb)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 32) as u8
        })
        .collect();
    let fields: &[usize] = match ty {
        GgmlType::Q6_K => &[208],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        _ => &[0],
    };
    for b in 0..n_blocks {
        for &f in fields {
            bytes[b * bb + f..b * bb + f + 2].copy_from_slice(&half::f16::from_f32(0.01).to_le_bytes());
        }
    }
    bytes
}

fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

/// Every 2-D int8 tensor of a model file dotted with one token, in file order (as one decode
/// step reads them), on one core: weight GB/s over the whole pass.
fn model_pass(path: &str) {
    let f = rocmforge::gguf::GgufFile::open(path).expect("a GGUF file");
    let tensors: Vec<_> =
        f.tensors.iter().filter(|t| t.shape.len() == 2 && rocmforge::quant::simd::int8_supported(t.ty)).collect();
    let acts: Vec<Q8Rows> = tensors
        .iter()
        .map(|t| {
            let k = t.row_len() as usize;
            let x: Vec<f32> = (0..k).map(|i| ((i * 7919) % 201) as f32 / 100.0 - 1.0).collect();
            let mut a = Q8Rows::new();
            a.quantize(&x, k);
            a
        })
        .collect();
    let bytes: u64 = tensors.iter().map(|t| t.n_bytes).sum();
    let mut out = vec![0f32; tensors.iter().map(|t| t.shape[1] as usize).max().unwrap_or(0)];
    let isa = Isa::best();
    let t = best_of(10, || {
        for (t, a) in tensors.iter().zip(&acts) {
            let rows = t.shape[1] as usize;
            rocmforge::quant::gemm_q8_1(isa, t.ty, f.tensor_data(t), t.row_len() as usize, a, &mut out[..rows])
                .unwrap();
        }
    });
    println!(
        "{path}: {} tensors, {:.1} MB a pass from the file's mapping: {:.2} GB/s on one core ({:.2} ms, {})",
        tensors.len(),
        bytes as f64 / 1e6,
        bytes as f64 / t / 1e9,
        t * 1e3,
        isa.name()
    );
}

fn main() {
    if let Some(path) = std::env::args().skip_while(|a| a != "--model").nth(1) {
        return model_pass(&path);
    }
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_default();
    let buf = vec![1u64; 1 << 26];
    let t = best_of(3, || {
        std::hint::black_box(buf.iter().fold(0u64, |a, &b| a ^ b));
    });
    println!("one core reads {:.1} GB/s from a 512 MiB buffer", (buf.len() * 8) as f64 / t / 1e9);
    let cases = [
        (GgmlType::Q8_0, 576, 49152),
        (GgmlType::Q5_0, 576, 1536),
        (GgmlType::Q4_1, 576, 1536),
        (GgmlType::Q4_K, 1536, 576),
        (GgmlType::Q6_K, 1536, 576),
        (GgmlType::Q5_K, 2048, 2048),
        (GgmlType::Q4_0, 4096, 4096),
        (GgmlType::Q5_1, 576, 1536),
    ];
    for (ty, k, rows) in cases {
        if !ty.name().contains(filter.as_str()) {
            continue;
        }
        // Several copies so decode reads from memory, not from cache, as in a model.
        let copies = (256usize << 20) / (rows * k / ty.block_elems() * ty.block_bytes()).max(1);
        let copies = copies.clamp(1, 64);
        let w = random_blocks(ty, copies * rows * k / ty.block_elems());
        let per = w.len() / copies;
        for (isa, kernel) in
            Isa::available().into_iter().flat_map(|i| [(i, Kernel::Fused), (i, Kernel::Unpacked), (i, Kernel::Amx)])
        {
            if isa != Isa::Avx512Vnni && kernel != Kernel::Unpacked {
                continue;
            }
            let x: Vec<f32> = (0..64 * k).map(|i| ((i * 7919) % 201) as f32 / 100.0 - 1.0).collect();
            let mut one = Q8Rows::new();
            one.quantize(&x[..k], k);
            let mut out = vec![0f32; rows * 64];
            let mut c = 0;
            let reps = if isa == Isa::Portable { 2 } else { 20 };
            let t1 = best_of(reps, || {
                c = (c + 1) % copies;
                gemm_q8_1_with(isa, kernel, ty, &w[c * per..(c + 1) * per], k, &one, &mut out[..rows]).unwrap();
            });
            let mut many = Q8Rows::new();
            many.quantize(&x, k);
            let t64 = best_of(reps, || {
                gemm_q8_1_with(isa, kernel, ty, &w[..per], k, &many, &mut out).unwrap();
            });
            println!(
                "{:5} k {k:5} rows {rows:6} {:12} {:8}: decode {:6.2} GB/s of weights ({:7.1} µs) | 64 tokens {:6.1} GOP/s",
                ty.name(),
                isa.name(),
                format!("{kernel:?}"),
                per as f64 / t1 / 1e9,
                t1 * 1e6,
                2.0 * (rows * k * 64) as f64 / t64 / 1e9
            );
        }
    }
}
