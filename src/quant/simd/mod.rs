//! Matrix products of quantized weight rows with Q8_1 activations (and of float weight rows with
//! f32 activations) on the instruction sets of the host, chosen at run time.
//!
//! [`Isa::Portable`] is the scalar reference of `vec_dot`, block by block. The SIMD
//! kernels first unpack a weight row into one form shared by every format (biased unsigned
//! bytes, a scale per 4 weights, an offset per 32; see [`VecDotQ8_1::unpack`]), then dot that row
//! with every activation row it is asked for, so a row is unpacked once per matrix product
//! however many tokens it meets. Their integer sums are those of the reference, exactly; their
//! f32 combine adds the same terms in another order.
//!
//! Q4_0, Q5_0, Q8_0 and IQ4_NL weights meeting ggml-cpu's Q8_0 rows take llama.cpp's own f32
//! order instead ([`super::q8_0_lanes`]), on every instruction set and kernel shape, bit for bit.

use std::sync::OnceLock;

use super::q8_1::{Q8Rows, QK8_1};
use super::vec_dot::{SumTerm, VecDotQ8_1};
use super::{
    blocks, Block, BlockBF16, BlockF16, BlockF32, BlockIQ4NL, BlockIQ4XS, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0,
    BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, QuantError,
};
use crate::dtype::GgmlType;

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_amx;
#[cfg(target_arch = "x86_64")]
mod x86_fused;
#[cfg(target_arch = "x86_64")]
mod x86_q8_0_lanes;

/// Which SIMD kernel shape a product uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// The fastest shape here: AMX where usable, else fused where there are fused kernels (they
    /// were measured faster at every token count, see benches/int8_gemm.rs), else unpacked.
    Auto,
    /// Weights unpacked in registers and dotted at once, up to 8 tokens a pass (AVX-512 VNNI;
    /// elsewhere the unpacked shape).
    Fused,
    /// Each row unpacked once into a buffer, then dotted with every token.
    Unpacked,
    /// AMX-INT8 tile products for whole groups of 16 weight rows and 16 tokens, the fused
    /// kernels for the rest (where AMX is usable; elsewhere as `Fused`).
    Amx,
}

/// Whether AMX-INT8 tile products run here: an x86-64 Linux host with AMX-TILE and AMX-INT8,
/// the OS managing their state, and this process granted it (asked once). `ROCMFORGE_NO_AMX=1`
/// turns it off.
pub fn amx_usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| {
        if std::env::var_os("ROCMFORGE_NO_AMX").is_some() || !Isa::Avx512Vnni.supported() {
            return false;
        }
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            use std::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
            #[allow(unused_unsafe)]
            // SAFETY: CPUID is present on every x86-64 processor.
            let (l1, l7) = unsafe { (__cpuid(1), __cpuid_count(7, 0)) };
            let (tile, int8, osxsave) = (l7.edx & (1 << 24) != 0, l7.edx & (1 << 25) != 0, l1.ecx & (1 << 27) != 0);
            if !(tile && int8 && osxsave) {
                return false;
            }
            #[target_feature(enable = "xsave")]
            unsafe fn xcr0() -> u64 {
                _xgetbv(0)
            }
            // SAFETY: OSXSAVE (checked above) means XGETBV is enabled.
            let xcr0 = unsafe { xcr0() };
            if xcr0 & (3 << 17) != 3 << 17 {
                return false;
            }
            const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
            const XFEATURE_XTILEDATA: libc::c_long = 18;
            // SAFETY: a plain system call with integer arguments; it only changes this process's
            // permitted extended state.
            unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        false
    })
}

/// Where a product writes: value (weight row r, activation row t) at
/// `r·row_stride + t·tok_stride` of a borrowed slice. Splitting by weight rows gives views of
/// disjoint elements, so the halves can be filled on different threads.
pub struct OutMatrix<'a> {
    ptr: std::ptr::NonNull<f32>,
    rows: usize,
    toks: usize,
    row_stride: usize,
    tok_stride: usize,
    _borrow: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: an OutMatrix is an exclusive borrow of its elements (as `&mut [f32]`): views made by
// `split_rows` never share an element, so moving one to another thread cannot race.
unsafe impl Send for OutMatrix<'_> {}

impl<'a> OutMatrix<'a> {
    /// `out[r·toks + t]`: each weight row's tokens together.
    pub fn by_row(out: &'a mut [f32], rows: usize, toks: usize) -> OutMatrix<'a> {
        assert_eq!(out.len(), rows * toks, "one output per weight row and activation row");
        OutMatrix::new(out, rows, toks, toks, 1)
    }

    /// `out[t·ld + r]` (ld ≥ rows): each token's outputs together, as activations are laid out.
    pub fn by_token(out: &'a mut [f32], rows: usize, toks: usize, ld: usize) -> OutMatrix<'a> {
        assert!(ld >= rows && (toks == 0 || (toks - 1) * ld + rows <= out.len()), "outputs fit the slice");
        OutMatrix::new(out, rows, toks, 1, ld)
    }

    fn new(out: &'a mut [f32], rows: usize, toks: usize, row_stride: usize, tok_stride: usize) -> OutMatrix<'a> {
        let ptr = std::ptr::NonNull::new(out.as_mut_ptr()).expect("slices are non-null");
        OutMatrix { ptr, rows, toks, row_stride, tok_stride, _borrow: std::marker::PhantomData }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn toks(&self) -> usize {
        self.toks
    }

    /// The first `at` weight rows and the rest.
    pub fn split_rows(self, at: usize) -> (OutMatrix<'a>, OutMatrix<'a>) {
        assert!(at <= self.rows);
        let first = OutMatrix { rows: at, ..self };
        // SAFETY: row `at` starts `at·row_stride` elements in, inside the borrowed slice (its
        // elements exist when rows remain; with none left the pointer is never written through).
        let ptr = if at < self.rows { unsafe { self.ptr.add(at * self.row_stride) } } else { self.ptr };
        let rest = OutMatrix { ptr, rows: self.rows - at, ..self };
        (first, rest)
    }

    /// Rows `rows` of this view, borrowed.
    pub fn sub_rows(&mut self, rows: std::ops::Range<usize>) -> OutMatrix<'_> {
        assert!(rows.start <= rows.end && rows.end <= self.rows);
        // SAFETY: row `rows.start` is inside the view when any row of the range is; an empty
        // range's pointer is never written through.
        let ptr = if rows.start < self.rows { unsafe { self.ptr.add(rows.start * self.row_stride) } } else { self.ptr };
        OutMatrix { ptr, rows: rows.end - rows.start, _borrow: std::marker::PhantomData, ..*self }
    }

    /// Writes value (r, t).
    #[inline]
    pub fn set(&mut self, r: usize, t: usize, v: f32) {
        assert!(r < self.rows && t < self.toks, "({r}, {t}) outside {}×{}", self.rows, self.toks);
        // SAFETY: in bounds by the assert and the constructors' checks; the view owns the element.
        unsafe { self.ptr.add(r * self.row_stride + t * self.tok_stride).write(v) }
    }

    /// Writes row r's values for tokens t0.. from `v`.
    #[inline]
    pub fn set_row(&mut self, r: usize, t0: usize, v: &[f32]) {
        for (j, &x) in v.iter().enumerate() {
            self.set(r, t0 + j, x);
        }
    }
}

/// An instruction set the kernels are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Plain Rust, the scalar reference (every machine).
    Portable,
    /// x86-64 AVX2 + FMA + F16C: 256-bit `maddubs` integer dots.
    Avx2,
    /// x86-64 AVX-512 (F, BW, DQ, VL) with VNNI: 512-bit `vpdpbusd`.
    Avx512Vnni,
    /// aarch64 NEON: widening 8-bit multiplies.
    Neon,
    /// aarch64 NEON with the dot-product extension (`sdot`).
    NeonDotprod,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512Vnni => "avx512-vnni",
            Isa::Neon => "neon",
            Isa::NeonDotprod => "neon-dotprod",
        }
    }

    /// Whether this host can run the kernels of `self`.
    pub fn supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => {
                Isa::Avx2.supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512dq")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[cfg(target_arch = "aarch64")]
            Isa::NeonDotprod => {
                std::arch::is_aarch64_feature_detected!("neon") && std::arch::is_aarch64_feature_detected!("dotprod")
            }
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Every instruction set this host runs, the portable one first.
    pub fn available() -> Vec<Isa> {
        [Isa::Portable, Isa::Avx2, Isa::Avx512Vnni, Isa::Neon, Isa::NeonDotprod]
            .into_iter()
            .filter(|i| i.supported())
            .collect()
    }

    /// The fastest instruction set this host runs (detected once).
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| *Isa::available().last().expect("the portable path is always available"))
    }
}

/// Whether [`gemm_q8_1`] takes weights of type `ty`.
pub fn int8_supported(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q8_0
            | GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q5_0
            | GgmlType::Q5_1
            | GgmlType::Q4_K
            | GgmlType::Q5_K
            | GgmlType::Q6_K
            | GgmlType::Q2_K
            | GgmlType::Q3_K
            | GgmlType::IQ4_NL
            | GgmlType::IQ4_XS
    )
}

/// Whether [`gemm_f32`] takes weights of type `ty`.
pub fn float_supported(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

/// One weight row in the unpacked form the SIMD kernels read (reused from row to row).
#[derive(Default)]
pub(crate) struct Unpacked {
    /// Values in the row.
    pub k: usize,
    /// [k] biased unsigned weight integers.
    pub u: Vec<u8>,
    /// [k/4] the scale of each group of 4.
    pub lane_scale: Vec<f32>,
    /// [k/32] the coefficient of each activation block's sum term ([k/16], one per half block,
    /// for [`SumTerm::DSum16`]).
    pub offset: Vec<f32>,
    pub bias: u8,
    pub sum_term: SumTerm,
}

impl Unpacked {
    pub fn reshape(&mut self, k: usize, bias: u8, sum_term: SumTerm) {
        self.k = k;
        self.u.resize(k, 0);
        self.lane_scale.resize(k / 4, 0.0);
        self.offset.resize(k / sum_term.group(), 0.0);
        self.bias = bias;
        self.sum_term = sum_term;
    }

    /// The portable unpack of one row of blocks.
    pub fn unpack_blocks<B: VecDotQ8_1>(&mut self, row: &[B]) {
        let k = row.len() * B::ELEMS;
        self.reshape(k, B::BIAS, B::SUM_TERM);
        let (e, l, o) = (B::ELEMS, B::ELEMS / 4, B::ELEMS / B::SUM_TERM.group());
        for (i, b) in row.iter().enumerate() {
            b.unpack(
                &mut self.u[i * e..(i + 1) * e],
                &mut self.lane_scale[i * l..(i + 1) * l],
                &mut self.offset[i * o..(i + 1) * o],
            );
        }
    }

    /// The portable dot of the unpacked row with activation row `t`, lane by lane in the
    /// order the SIMD kernels use for one 4-weight lane (tests compare the unpack through it).
    pub fn dot_portable(&self, a: &Q8Rows, t: usize) -> f32 {
        let k = self.k;
        let qs = &a.qs[t * k..(t + 1) * k];
        let mut acc = 0f32;
        for lane in 0..k / 4 {
            let l: i32 = (4 * lane..4 * lane + 4).map(|j| (self.u[j] as i32 - self.bias as i32) * qs[j] as i32).sum();
            acc += l as f32 * (self.lane_scale[lane] * a.d_lanes[t * k / 4 + lane]);
        }
        acc + self.offset.iter().zip(self.sums(a, t)).map(|(o, s)| o * s).sum::<f32>()
    }

    /// The activation sums row `t` of `a` offers this row's offsets (empty without a sum term).
    pub fn sums<'a>(&self, a: &'a Q8Rows, t: usize) -> &'a [f32] {
        let n = self.offset.len();
        match self.sum_term {
            SumTerm::None => &[],
            SumTerm::S => &a.s[t * n..(t + 1) * n],
            SumTerm::DSum => &a.dsum[t * n..(t + 1) * n],
            SumTerm::DSum16 => &a.dsum16[t * n..(t + 1) * n],
        }
    }
}

/// Σ w·a over one row of blocks against activation row `t` (the scalar reference).
pub fn vec_dot_row<B: VecDotQ8_1>(row: &[B], a: &Q8Rows, t: usize) -> f32 {
    let per = B::ELEMS / QK8_1;
    row.iter().enumerate().map(|(i, b)| b.vec_dot_q8_1(a.slice(t, i * per, per))).sum()
}

/// The same with the magnitude of the terms (for error bounds in tests).
pub fn vec_dot_row_terms<B: VecDotQ8_1>(row: &[B], a: &Q8Rows, t: usize) -> (f32, f32) {
    let per = B::ELEMS / QK8_1;
    row.iter().enumerate().fold((0.0, 0.0), |(v, m), (i, b)| {
        let terms = b.vec_dot_q8_1_terms(a.slice(t, i * per, per));
        (v + terms.value, m + terms.magnitude)
    })
}

macro_rules! by_int8_type {
    ($ty:expr, $f:ident, $($arg:expr),*) => {
        match $ty {
            GgmlType::Q8_0 => $f::<BlockQ8_0>($($arg),*),
            GgmlType::Q4_0 => $f::<BlockQ4_0>($($arg),*),
            GgmlType::Q4_1 => $f::<BlockQ4_1>($($arg),*),
            GgmlType::Q5_0 => $f::<BlockQ5_0>($($arg),*),
            GgmlType::Q5_1 => $f::<BlockQ5_1>($($arg),*),
            GgmlType::Q4_K => $f::<BlockQ4K>($($arg),*),
            GgmlType::Q5_K => $f::<BlockQ5K>($($arg),*),
            GgmlType::Q6_K => $f::<BlockQ6K>($($arg),*),
            GgmlType::Q2_K => $f::<BlockQ2K>($($arg),*),
            GgmlType::Q3_K => $f::<BlockQ3K>($($arg),*),
            GgmlType::IQ4_NL => $f::<BlockIQ4NL>($($arg),*),
            GgmlType::IQ4_XS => $f::<BlockIQ4XS>($($arg),*),
            other => Err(QuantError::Unsupported(other)),
        }
    };
}

/// Checks that `w` holds whole rows of `k` values of `ty` and returns the row count.
fn rows_of(ty: GgmlType, w: &[u8], k: usize) -> Result<usize, QuantError> {
    let (elems, bytes) = (ty.block_elems(), ty.block_bytes());
    if k == 0 || !k.is_multiple_of(elems) || (int8_supported(ty) && !k.is_multiple_of(QK8_1)) {
        return Err(QuantError::PartialOutput { ty, n_elems: k, block_elems: elems.max(QK8_1) });
    }
    let row_bytes = k / elems * bytes;
    if !w.len().is_multiple_of(row_bytes) {
        return Err(QuantError::PartialBlock { ty, len: w.len(), block_bytes: row_bytes });
    }
    Ok(w.len() / row_bytes)
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Unpacked> = std::cell::RefCell::new(Unpacked::default());
}

thread_local! {
    static ROW_OUT: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn gemm_q8_1_as<B: VecDotQ8_1>(
    isa: Isa,
    kernel: Kernel,
    w: &[u8],
    k: usize,
    a: &Q8Rows,
    out: &mut OutMatrix<'_>,
) -> Result<(), QuantError> {
    let row_blocks = blocks::<B>(w)?;
    let n = a.n();
    if super::q8_0_lanes::applies(B::TYPE, a.format()) {
        // llama.cpp's own f32 order, on every kernel shape (AMX tiles sum whole blocks in one
        // integer, not its lanes of four, so they do not take these rows).
        let iq4_nl_one = B::TYPE == GgmlType::IQ4_NL && n == 1;
        match isa {
            _ if iq4_nl_one => {
                for (r, row) in row_blocks.chunks_exact(k / QK8_1).enumerate() {
                    out.set(r, 0, super::q8_0_lanes::dot_row(row, a, 0));
                }
            }
            // SAFETY: `gemm_q8_1_into` asserted the instruction set runs here and checked shapes.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni if n >= x86_q8_0_lanes::PANEL_MIN_TOKENS && kernel != Kernel::Fused => unsafe {
                x86_q8_0_lanes::gemm_panels_avx512(B::TYPE, w, k, a, out, 0..n)
            },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => unsafe { x86_q8_0_lanes::gemm_avx512(B::TYPE, w, k, a, out, 0..n) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { x86_q8_0_lanes::gemm_avx2(B::TYPE, w, k, a, out, 0..n) },
            _ => {
                for (r, row) in row_blocks.chunks_exact(k / QK8_1).enumerate() {
                    for t in 0..n {
                        out.set(r, t, super::q8_0_lanes::dot_row(row, a, t));
                    }
                }
            }
        }
        return Ok(());
    }
    if B::TYPE == GgmlType::Q2_K && super::q2_k_ggml::applies(a.format()) {
        // llama.cpp's own f32 order (its tiled product or its vec_dot by the pass's tokens).
        let rows = blocks::<BlockQ2K>(w)?;
        super::q2_k_ggml::gemm(rows, k / crate::dtype::QK_K, a, |r, t, v| out.set(r, t, v));
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512Vnni && kernel != Kernel::Unpacked {
        let rows = out.rows();
        let row_bytes = w.len() / rows.max(1);
        let per_row = k / B::ELEMS;
        // SAFETY (all blocks): `gemm_q8_1_into` asserted AVX-512 VNNI runs here and checked the
        // shapes; AMX only where `amx_usable()` said so.
        let (r_done, t_done) = if kernel != Kernel::Fused && amx_usable() {
            unsafe { x86_amx::gemm(B::TYPE, w, k, a, out) }
        } else {
            (0, 0)
        };
        let fused = x86_fused::has_kernel(B::TYPE);
        if t_done < n && r_done > 0 {
            let sub = &mut out.sub_rows(0..r_done);
            if fused {
                unsafe { x86_fused::gemm(B::TYPE, &w[..r_done * row_bytes], k, a, sub, t_done..n) };
            } else {
                unpacked_rows(isa, &row_blocks[..r_done * per_row], per_row, a, t_done..n, sub);
            }
        }
        let sub = &mut out.sub_rows(r_done..rows);
        if fused {
            unsafe { x86_fused::gemm(B::TYPE, &w[r_done * row_bytes..], k, a, sub, 0..n) };
        } else {
            unpacked_rows(isa, &row_blocks[r_done * per_row..], per_row, a, 0..n, sub);
        }
        return Ok(());
    }
    let _ = kernel;
    unpacked_rows(isa, row_blocks, k / B::ELEMS, a, 0..n, out);
    Ok(())
}

/// Rows of `per_row` blocks against activation rows `toks` of `a`, each row unpacked once (or
/// the scalar reference on the portable path); token t of row r goes to (r, t) of `out`.
fn unpacked_rows<B: VecDotQ8_1>(
    isa: Isa,
    row_blocks: &[B],
    per_row: usize,
    a: &Q8Rows,
    toks: std::ops::Range<usize>,
    out: &mut OutMatrix<'_>,
) {
    ROW_OUT.with(|buf| {
        let mut o = buf.borrow_mut();
        o.resize(toks.len(), 0.0);
        for (r, row) in row_blocks.chunks_exact(per_row).enumerate() {
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 | Isa::Avx512Vnni => {
                    SCRATCH.with(|s| x86::row_q8_1::<B>(isa, row, a, toks.clone(), &mut s.borrow_mut(), &mut o))
                }
                #[cfg(target_arch = "aarch64")]
                Isa::Neon | Isa::NeonDotprod => {
                    assert_eq!(toks, 0..a.n(), "the NEON kernels take every token");
                    SCRATCH.with(|s| neon::row_q8_1::<B>(isa, row, a, &mut s.borrow_mut(), &mut o))
                }
                _ => {
                    for (v, t) in o.iter_mut().zip(toks.clone()) {
                        *v = vec_dot_row(row, a, t);
                    }
                }
            }
            out.set_row(r, toks.start, &o);
        }
    });
}

/// out[r·n + t] = Σ_j W[r, j]·a[t, j] for every row r of the quantized weights `w` (rows of `k`
/// values of `ty`) and every activation row t of `a` (n of them), on `isa`.
pub fn gemm_q8_1(isa: Isa, ty: GgmlType, w: &[u8], k: usize, a: &Q8Rows, out: &mut [f32]) -> Result<(), QuantError> {
    gemm_q8_1_with(isa, Kernel::Auto, ty, w, k, a, out)
}

/// [`gemm_q8_1`] with the kernel shape chosen (tests run each one).
pub fn gemm_q8_1_with(
    isa: Isa,
    kernel: Kernel,
    ty: GgmlType,
    w: &[u8],
    k: usize,
    a: &Q8Rows,
    out: &mut [f32],
) -> Result<(), QuantError> {
    let rows = rows_of(ty, w, k)?;
    if out.len() != rows * a.n() {
        return Err(QuantError::LengthMismatch { ty, blocks: rows, have: rows * a.n(), want: out.len() });
    }
    gemm_q8_1_into(isa, kernel, ty, w, k, a, &mut OutMatrix::by_row(out, rows, a.n()))
}

/// The quantized product into any [`OutMatrix`] (one row of it per weight row of `w`).
pub fn gemm_q8_1_into(
    isa: Isa,
    kernel: Kernel,
    ty: GgmlType,
    w: &[u8],
    k: usize,
    a: &Q8Rows,
    out: &mut OutMatrix<'_>,
) -> Result<(), QuantError> {
    if !int8_supported(ty) {
        return Err(QuantError::Unsupported(ty));
    }
    let rows = rows_of(ty, w, k)?;
    assert!(isa.supported(), "{} does not run on this host", isa.name());
    if a.k() != k || out.rows() != rows || out.toks() != a.n() {
        return Err(QuantError::LengthMismatch {
            ty,
            blocks: rows,
            have: a.k() * a.n(),
            want: out.rows() * out.toks(),
        });
    }
    by_int8_type!(ty, gemm_q8_1_as, isa, kernel, w, k, a, out)
}

/// out[r·n + t] = Σ_j W[r, j]·x[t, j] for float weights (F32, F16, BF16) and f32 activations
/// `x` (`[n][k]`).
pub fn gemm_f32(isa: Isa, ty: GgmlType, w: &[u8], k: usize, x: &[f32], out: &mut [f32]) -> Result<(), QuantError> {
    let rows = rows_of(ty, w, k)?;
    let n = x.len() / k;
    if out.len() != rows * n {
        return Err(QuantError::LengthMismatch { ty, blocks: rows, have: rows * n, want: out.len() });
    }
    gemm_f32_into(isa, ty, w, k, x, &mut OutMatrix::by_row(out, rows, n))
}

/// The float product into any [`OutMatrix`].
pub fn gemm_f32_into(
    isa: Isa,
    ty: GgmlType,
    w: &[u8],
    k: usize,
    x: &[f32],
    out: &mut OutMatrix<'_>,
) -> Result<(), QuantError> {
    if !float_supported(ty) {
        return Err(QuantError::Unsupported(ty));
    }
    let rows = rows_of(ty, w, k)?;
    assert!(isa.supported(), "{} does not run on this host", isa.name());
    let n = x.len() / k;
    if x.len() != n * k || out.rows() != rows || out.toks() != n {
        return Err(QuantError::LengthMismatch { ty, blocks: rows, have: x.len(), want: out.rows() * out.toks() });
    }
    let row_bytes = w.len() / rows;
    ROW_OUT.with(|buf| {
        let mut o = buf.borrow_mut();
        o.resize(n, 0.0);
        for r in 0..rows {
            let row = &w[r * row_bytes..(r + 1) * row_bytes];
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 | Isa::Avx512Vnni => x86::row_f32(isa, ty, row, x, &mut o),
                #[cfg(target_arch = "aarch64")]
                Isa::Neon | Isa::NeonDotprod => neon::row_f32(ty, row, x, &mut o),
                _ => {
                    for (t, v) in o.iter_mut().enumerate() {
                        *v = float_dot_portable(ty, row, &x[t * k..(t + 1) * k]);
                    }
                }
            }
            out.set_row(r, 0, &o);
        }
    });
    Ok(())
}

/// Σ w·x for one float row, the weights widened exactly, four accumulators.
fn float_dot_portable(ty: GgmlType, row: &[u8], x: &[f32]) -> f32 {
    fn go<B: Block>(row: &[u8], x: &[f32]) -> f32 {
        let b = blocks::<B>(row).expect("whole values");
        let mut w = [0f32; 1];
        let mut acc = [0f32; 4];
        for (i, (blk, &xv)) in b.iter().zip(x).enumerate() {
            blk.dequantize(&mut w);
            acc[i % 4] += w[0] * xv;
        }
        (acc[0] + acc[1]) + (acc[2] + acc[3])
    }
    match ty {
        GgmlType::F32 => go::<BlockF32>(row, x),
        GgmlType::F16 => go::<BlockF16>(row, x),
        _ => go::<BlockBF16>(row, x),
    }
}

/// The portable unpack of `row` (weights of type `ty`, `k` values), dotted lane by lane with each
/// activation row: the unpacked form the SIMD kernels read, checked without SIMD.
pub fn unpacked_dot_portable(ty: GgmlType, row: &[u8], k: usize, a: &Q8Rows) -> Result<Vec<f32>, QuantError> {
    fn go<B: VecDotQ8_1>(row: &[u8], a: &Q8Rows) -> Result<Vec<f32>, QuantError> {
        let mut un = Unpacked::default();
        un.unpack_blocks(blocks::<B>(row)?);
        Ok((0..a.n()).map(|t| un.dot_portable(a, t)).collect())
    }
    rows_of(ty, row, k)?;
    by_int8_type!(ty, go, row, a)
}
