//! The CPU as a `Device`: host allocations, and each kernel's op run by the CPU reference
//! (exec/cpu.rs) on the arguments the GPU kernel would get. It lets the GPU executor — its plan,
//! buffer offsets, prefill passes and decode replay — run and be tested on any machine. Every
//! pointer is checked against its allocation; a bad one is an error, never a stray access.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Arg, DevPtr, Device, DeviceError, Kernel};
use crate::exec::cpu;
use crate::jit::Target;
use crate::kernels::{ElementwiseOp, KernelSpec, RopeKind};

#[derive(Default)]
pub struct CpuDevice {
    /// Allocations by start address (u64 words keep every buffer 8-byte aligned).
    memory: Mutex<BTreeMap<u64, Box<[u64]>>>,
}

fn host(msg: impl Into<String>) -> DeviceError {
    DeviceError::Host(msg.into())
}

impl CpuDevice {
    pub fn new() -> CpuDevice {
        CpuDevice::default()
    }

    /// Runs `f` on the bytes [p, p + len) of the allocation holding them.
    fn with_bytes<R>(&self, p: DevPtr, len: Option<usize>, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, DeviceError> {
        let mut mem = self.memory.lock().expect("memory lock");
        let (&start, buf) =
            mem.range_mut(..=p.0).next_back().ok_or_else(|| host(format!("{:#x} is not allocated", p.0)))?;
        // SAFETY: viewing an initialised u64 buffer as bytes (alignment 1, same length × 8).
        let bytes = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), buf.len() * 8) };
        let off = (p.0 - start) as usize;
        let len = len.unwrap_or(bytes.len().saturating_sub(off));
        let region = bytes.get_mut(off..off.checked_add(len).ok_or_else(|| host("length overflows"))?);
        region.map(f).ok_or_else(|| host(format!("{len} bytes at {:#x} run past their allocation", p.0)))
    }

    fn read(&self, p: DevPtr, len: Option<usize>) -> Result<Vec<u8>, DeviceError> {
        self.with_bytes(p, len, |b| b.to_vec())
    }

    fn f32s(&self, p: DevPtr, n: usize) -> Result<Vec<f32>, DeviceError> {
        Ok(self.read(p, Some(n * 4))?.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4"))).collect())
    }

    fn i32s(&self, p: DevPtr, n: usize) -> Result<Vec<i32>, DeviceError> {
        Ok(self.read(p, Some(n * 4))?.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4"))).collect())
    }

    fn write_f32s(&self, p: DevPtr, v: &[f32]) -> Result<(), DeviceError> {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.upload(p, &bytes)
    }
}

/// The launch arguments, typed.
struct Args<'a>(&'a [Arg]);

impl Args<'_> {
    fn ptr(&self, i: usize) -> Result<DevPtr, DeviceError> {
        match self.0.get(i) {
            Some(Arg::Ptr(p)) => Ok(*p),
            other => Err(host(format!("argument {i} should be a pointer, is {other:?}"))),
        }
    }
    fn int(&self, i: usize) -> Result<usize, DeviceError> {
        match self.0.get(i) {
            Some(Arg::I32(v)) if *v >= 0 => Ok(*v as usize),
            other => Err(host(format!("argument {i} should be a count, is {other:?}"))),
        }
    }
    fn float(&self, i: usize) -> Result<f32, DeviceError> {
        match self.0.get(i) {
            Some(Arg::F32(v)) => Ok(*v),
            other => Err(host(format!("argument {i} should be a float, is {other:?}"))),
        }
    }
}

impl Device for CpuDevice {
    fn backend(&self) -> &'static str {
        "cpu"
    }

    fn name(&self) -> &str {
        "host CPU (reference kernels)"
    }

    fn target(&self) -> Option<&Target> {
        None
    }

    fn alloc(&self, bytes: usize) -> Result<DevPtr, DeviceError> {
        let buf = vec![0u64; bytes.div_ceil(8).max(1)].into_boxed_slice();
        let p = buf.as_ptr() as u64;
        self.memory.lock().expect("memory lock").insert(p, buf);
        Ok(DevPtr(p))
    }

    fn free(&self, ptr: DevPtr) {
        self.memory.lock().expect("memory lock").remove(&ptr.0);
    }

    fn upload(&self, dst: DevPtr, src: &[u8]) -> Result<(), DeviceError> {
        self.with_bytes(dst, Some(src.len()), |b| b.copy_from_slice(src))
    }

    fn download(&self, src: DevPtr, dst: &mut [u8]) -> Result<(), DeviceError> {
        self.with_bytes(src, Some(dst.len()), |b| dst.copy_from_slice(b))
    }

    fn copy(&self, dst: DevPtr, src: DevPtr, bytes: usize) -> Result<(), DeviceError> {
        let data = self.read(src, Some(bytes))?;
        self.upload(dst, &data)
    }

    fn load_kernel(&self, spec: &KernelSpec, _code: &[u8], entry: &str) -> Result<Kernel, DeviceError> {
        Ok(Kernel { handle: 0, entry: entry.to_string(), spec: *spec })
    }

    fn launch(&self, kernel: &Kernel, grid: [u32; 3], _block: [u32; 3], args: &[Arg]) -> Result<(), DeviceError> {
        let a = Args(args);
        let q = |e: crate::quant::QuantError| host(format!("{}: {e}", kernel.entry));
        match kernel.spec {
            KernelSpec::Embedding { wtype, n_embd } => {
                let n = grid[0] as usize;
                let table = self.read(a.ptr(0)?, None)?;
                let ids: Vec<u32> = self.i32s(a.ptr(1)?, n)?.into_iter().map(|i| i as u32).collect();
                let mut out = vec![0f32; n * n_embd as usize];
                let rows = table.len() / wtype.row_bytes(n_embd as u64).unwrap_or(1).max(1) as usize;
                if let Some(&bad) = ids.iter().find(|&&i| i as usize >= rows) {
                    return Err(host(format!("{}: token {bad} beyond {rows} rows", kernel.entry)));
                }
                cpu::embed(wtype, &table, n_embd as usize, &ids, a.float(3)?, &mut out).map_err(q)?;
                self.write_f32s(a.ptr(2)?, &out)
            }
            KernelSpec::RmsNorm { n, add_one } => {
                let (rows, n) = (grid[0] as usize, n as usize);
                let x = self.f32s(a.ptr(0)?, rows * n)?;
                let mut w = self.f32s(a.ptr(1)?, n)?;
                if add_one {
                    w.iter_mut().for_each(|v| *v += 1.0);
                }
                let mut y = vec![0f32; rows * n];
                cpu::rms_norm(&x, &w, n, a.float(3)?, &mut y);
                self.write_f32s(a.ptr(2)?, &y)
            }
            KernelSpec::Rope { head_dim, rope_dims, kind } => {
                let (tokens, heads) = (grid[0] as usize, a.int(2)?);
                let n = tokens * heads * head_dim as usize;
                let mut x = self.f32s(a.ptr(0)?, n)?;
                let pos: Vec<u32> = self.i32s(a.ptr(1)?, tokens)?.into_iter().map(|p| p as u32).collect();
                let neox = kind == RopeKind::Neox;
                // Argument 5: rope_dims/2 frequency divisors, or null for none.
                let ff = match a.ptr(5)? {
                    DevPtr(0) => None,
                    p => Some(self.f32s(p, rope_dims as usize / 2)?),
                };
                let (hd, rd) = (head_dim as usize, rope_dims as usize);
                cpu::rope(&mut x, &pos, heads, hd, rd, neox, a.float(3)?, a.float(4)?, ff.as_deref());
                self.write_f32s(a.ptr(0)?, &x)
            }
            KernelSpec::MatVec { wtype, k } | KernelSpec::MatMul { wtype, k } => {
                let rows = a.int(3)?;
                let tokens = if matches!(kernel.spec, KernelSpec::MatVec { .. }) { 1 } else { a.int(4)? };
                let w = self.read(a.ptr(0)?, Some(wtype.row_bytes(k as u64).unwrap_or(0) as usize * rows))?;
                let x = self.f32s(a.ptr(1)?, tokens * k as usize)?;
                let mut y = vec![0f32; tokens * rows];
                cpu::linear(wtype, &w, k as usize, rows, &x, &mut y).map_err(q)?;
                self.write_f32s(a.ptr(2)?, &y)
            }
            KernelSpec::Attention { head_dim, gqa, .. } => {
                let (n_head, nq, pos0) = (a.int(4)?, grid[1] as usize, a.int(5)?);
                let (hd, n_kv) = (head_dim as usize, a.int(4)? / gqa as usize);
                let q_all = self.f32s(a.ptr(0)?, nq * n_head * hd)?;
                let kc = self.f32s(a.ptr(1)?, (pos0 + nq) * n_kv * hd)?;
                let vc = self.f32s(a.ptr(2)?, (pos0 + nq) * n_kv * hd)?;
                let cap = a.float(7)?;
                let window = a.int(8)?;
                let shape = cpu::AttnShape {
                    n_head,
                    n_head_kv: n_kv,
                    head_dim: hd,
                    head_dim_v: hd,
                    scale: a.float(6)?,
                    softcap: matches!(kernel.spec, KernelSpec::Attention { softcap: true, .. }).then_some(cap),
                    window: matches!(kernel.spec, KernelSpec::Attention { sliding_window: true, .. })
                        .then_some(window as u32),
                };
                let mut out = vec![0f32; q_all.len()];
                cpu::attention(&q_all, &kc, &vc, pos0, &shape, &mut out);
                self.write_f32s(a.ptr(3)?, &out)
            }
            KernelSpec::Softmax => {
                let (rows, n) = (grid[0] as usize, a.int(2)?);
                let mut x = self.f32s(a.ptr(0)?, rows * n)?;
                x.chunks_exact_mut(n).for_each(cpu::softmax);
                self.write_f32s(a.ptr(1)?, &x)
            }
            KernelSpec::Glu { kind } => {
                let n = a.int(3)?;
                let (g, u) = (self.f32s(a.ptr(0)?, n)?, self.f32s(a.ptr(1)?, n)?);
                let mut out = vec![0f32; n];
                cpu::glu(&g, &u, kind, &mut out);
                self.write_f32s(a.ptr(2)?, &out)
            }
            KernelSpec::Elementwise { op } => {
                let (n, cols, s) = (a.int(3)?, a.int(4)?, a.float(5)?);
                let x = self.f32s(a.ptr(0)?, n)?;
                let b_len = match op {
                    ElementwiseOp::Add => n,
                    ElementwiseOp::AddBias => cols,
                    ElementwiseOp::Scale | ElementwiseOp::Softcap => 0,
                };
                let b = self.f32s(a.ptr(1)?, b_len)?;
                let y: Vec<f32> = (0..n)
                    .map(|i| match op {
                        ElementwiseOp::Add => x[i] + b[i],
                        ElementwiseOp::AddBias => x[i] + b[i % cols],
                        ElementwiseOp::Scale => x[i] * s,
                        ElementwiseOp::Softcap => s * (x[i] / s).tanh(),
                    })
                    .collect();
                self.write_f32s(a.ptr(2)?, &y)
            }
            KernelSpec::KvAppend => {
                let (row, n, pos0) = (a.int(4)?, a.int(5)?, a.int(6)?);
                let (k, v) = (self.read(a.ptr(0)?, Some(row * n * 4))?, self.read(a.ptr(1)?, Some(row * n * 4))?);
                self.upload(a.ptr(2)?.offset(pos0 * row * 4), &k)?;
                self.upload(a.ptr(3)?.offset(pos0 * row * 4), &v)
            }
            KernelSpec::Argmax => {
                let x = self.f32s(a.ptr(0)?, a.int(2)?)?;
                self.upload(a.ptr(1)?, &(cpu::argmax(&x) as i32).to_le_bytes())
            }
        }
    }

    fn synchronize(&self) -> Result<(), DeviceError> {
        Ok(())
    }

    fn memory_used(&self) -> Result<u64, DeviceError> {
        Ok(self.memory.lock().expect("memory lock").values().map(|b| b.len() as u64 * 8).sum())
    }
}
