//! The buffer plan: one f32 buffer per `Buf`, sized for a pass of up to `max_tokens` tokens and
//! reused by every layer, plus the KV cache shape.

use super::Buf;
use crate::model::ModelConfig;

/// A buffer's row width (floats per token); `Logits` has one row whatever the pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferSize {
    pub width: usize,
    pub one_row: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferPlan {
    pub sizes: Vec<(Buf, BufferSize)>,
    /// Floats per cached position per layer: n_head_kv · head_dim (K) and · head_dim_v (V).
    pub kv_width: usize,
    pub v_width: usize,
    pub n_layer: usize,
}

impl BufferPlan {
    pub fn new(cfg: &ModelConfig) -> BufferPlan {
        let w = |width: u32| BufferSize { width: width as usize, one_row: false };
        let sizes = vec![
            (Buf::Hidden, w(cfg.n_embd)),
            (Buf::Normed, w(cfg.n_embd)),
            (Buf::Q, w(cfg.n_head * cfg.head_dim)),
            (Buf::K, w(cfg.n_head_kv * cfg.head_dim)),
            (Buf::V, w(cfg.n_head_kv * cfg.head_dim_v)),
            (Buf::AttnOut, w(cfg.n_head * cfg.head_dim_v)),
            (Buf::Proj, w(cfg.n_embd)),
            (Buf::Gate, w(cfg.n_ff)),
            (Buf::Up, w(cfg.n_ff)),
            (Buf::Act, w(cfg.n_ff)),
            (Buf::Logits, BufferSize { width: cfg.n_vocab as usize, one_row: true }),
        ];
        BufferPlan {
            sizes,
            kv_width: (cfg.n_head_kv * cfg.head_dim) as usize,
            v_width: (cfg.n_head_kv * cfg.head_dim_v) as usize,
            n_layer: cfg.n_layer as usize,
        }
    }

    pub fn width(&self, buf: Buf) -> usize {
        self.sizes.iter().find(|(b, _)| *b == buf).map(|(_, s)| s.width).expect("every Buf is planned")
    }

    /// Floats a pass of `tokens` needs in `buf`.
    pub fn len(&self, buf: Buf, tokens: usize) -> usize {
        let (_, s) = self.sizes.iter().find(|(b, _)| *b == buf).expect("every Buf is planned");
        if s.one_row {
            s.width
        } else {
            s.width * tokens
        }
    }

    /// Bytes of the f32 KV cache for `capacity` positions.
    pub fn kv_bytes(&self, capacity: usize) -> usize {
        self.n_layer * capacity * (self.kv_width + self.v_width) * 4
    }
}
