//! Compile targets, always explicit: `gfx90a`, `gfx90a:sramecc+:xnack-`, `gfx1030`, `sm_90`.
//!
//! An AMD target is checked against the capability table (`capability.rs`) when it is parsed: a
//! processor rocmforge does not know, or a feature the processor does not have (`gfx1030:xnack+`),
//! is refused here with the reason, before any compiler sees it.

use std::fmt;
use std::str::FromStr;

use super::capability::{amd_processor, nvidia_caps, nvidia_shared_max, AMD_PROCESSORS};
use crate::kernels::{Dialect, DotI8, MatrixUnit, RenderTarget};

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// An AMD GPU: processor (`gfx90a`) and target features in LLVM's canonical order
    /// (`sramecc±` before `xnack±`), each at most once.
    Amd { processor: String, features: Vec<String> },
    /// An NVIDIA GPU: compute capability ×10 (90 for sm_90) and an optional `a`/`f` suffix.
    Nvidia { sm: u32, suffix: Option<char> },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TargetError {
    #[error("unknown target {0:?}: expected an AMD processor such as gfx906, gfx90a, gfx90a:sramecc+:xnack-, gfx1030, or an NVIDIA one such as sm_80, sm_90")]
    Unknown(String),
    #[error("target {target:?}: {processor} is not an AMD processor rocmforge knows (it knows {known})")]
    UnknownProcessor { target: String, processor: String, known: String },
    #[error("target {target:?}: unknown feature {feature:?} (AMD targets take sramecc+/- and xnack+/-)")]
    UnknownFeature { target: String, feature: String },
    #[error("target {target:?}: {processor} has no {feature} feature (processors with it: {with})")]
    UnsupportedFeature { target: String, processor: String, feature: &'static str, with: String },
    #[error("target {target:?}: the {feature} feature is given twice")]
    DuplicateFeature { target: String, feature: &'static str },
}

impl FromStr for Target {
    type Err = TargetError;
    fn from_str(s: &str) -> Result<Target, TargetError> {
        let unknown = || TargetError::Unknown(s.to_string());
        if let Some(rest) = s.strip_prefix("sm_") {
            let (digits, suffix) = match rest.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
                Some((i, c)) if i + c.len_utf8() == rest.len() && (c == 'a' || c == 'f') => (&rest[..i], Some(c)),
                Some(_) => return Err(unknown()),
                None => (rest, None),
            };
            let sm: u32 = digits.parse().map_err(|_| unknown())?;
            if !(30..=200).contains(&sm) {
                return Err(unknown());
            }
            return Ok(Target::Nvidia { sm, suffix });
        }
        let mut parts = s.split(':');
        let processor = parts.next().unwrap_or_default();
        let hex = processor.strip_prefix("gfx").ok_or_else(unknown)?;
        if !(3..=4).contains(&hex.len()) || !hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) {
            return Err(unknown());
        }
        let row = amd_processor(processor).ok_or_else(|| TargetError::UnknownProcessor {
            target: s.to_string(),
            processor: processor.to_string(),
            known: AMD_PROCESSORS.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
        })?;
        // (sramecc, xnack): each at most once; printed back in LLVM's canonical order.
        let mut given: [Option<char>; 2] = [None, None];
        for f in parts {
            let (name, slot, has) = match f.get(..f.len().saturating_sub(1)) {
                Some("sramecc") => ("sramecc", 0, row.sramecc),
                Some("xnack") => ("xnack", 1, row.xnack),
                _ => return Err(TargetError::UnknownFeature { target: s.to_string(), feature: f.to_string() }),
            };
            let sign = f
                .chars()
                .last()
                .filter(|c| *c == '+' || *c == '-')
                .ok_or_else(|| TargetError::UnknownFeature { target: s.to_string(), feature: f.to_string() })?;
            if !has {
                let with = AMD_PROCESSORS
                    .iter()
                    .filter(|p| if slot == 0 { p.sramecc } else { p.xnack })
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(TargetError::UnsupportedFeature {
                    target: s.to_string(),
                    processor: processor.to_string(),
                    feature: name,
                    with,
                });
            }
            if given[slot].replace(sign).is_some() {
                return Err(TargetError::DuplicateFeature { target: s.to_string(), feature: name });
            }
        }
        let features = ["sramecc", "xnack"]
            .iter()
            .zip(given)
            .filter_map(|(name, sign)| sign.map(|c| format!("{name}{c}")))
            .collect();
        Ok(Target::Amd { processor: processor.to_string(), features })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Amd { processor, features } => {
                f.write_str(processor)?;
                for feat in features {
                    write!(f, ":{feat}")?;
                }
                Ok(())
            }
            Target::Nvidia { sm, suffix } => {
                write!(f, "sm_{sm}")?;
                if let Some(c) = suffix {
                    write!(f, "{c}")?;
                }
                Ok(())
            }
        }
    }
}

impl Target {
    /// Parses a comma-separated list (`gfx906,gfx90a,sm_90`).
    pub fn parse_list(s: &str) -> Result<Vec<Target>, TargetError> {
        s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::parse).collect()
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Target::Amd { .. } => Dialect::Hip,
            Target::Nvidia { .. } => Dialect::Cuda,
        }
    }

    /// Threads per warp (wavefront): 64 on GCN/CDNA (gfx9 and older), 32 on RDNA (gfx10 and
    /// newer, compiled in their default wave32 mode) and on NVIDIA.
    pub fn warp_size(&self) -> u32 {
        self.render_target().warp_size
    }

    /// What the target can do, from the capability table, as the renderer writes it into kernels.
    pub fn render_target(&self) -> RenderTarget {
        match self {
            Target::Amd { processor, .. } => {
                // Parsing admits only processors in the table; a hand-built Target outside it gets
                // the most conservative capabilities its generation allows.
                let (warp_size, dot_i8, matrix) = match amd_processor(processor) {
                    Some(p) => (p.warp_size, p.dot_i8, p.matrix),
                    None => (if processor.len() == 6 { 64 } else { 32 }, DotI8::None, MatrixUnit::None),
                };
                // 64 KiB of LDS a workgroup on every AMD GPU in the table (gfx950 has more; not used).
                RenderTarget {
                    dialect: Dialect::Hip,
                    warp_size,
                    dot_i8,
                    matrix,
                    pdl: false,
                    shared_max: 64 * 1024,
                    wgmma: false,
                }
            }
            Target::Nvidia { sm, .. } => {
                let (dot_i8, matrix, pdl) = nvidia_caps(*sm);
                RenderTarget {
                    dialect: Dialect::Cuda,
                    warp_size: 32,
                    dot_i8,
                    matrix,
                    pdl,
                    shared_max: nvidia_shared_max(*sm),
                    wgmma: *sm == 90,
                }
            }
        }
    }

    /// The processor without features (`gfx90a` for `gfx90a:xnack-`), or `sm_90`.
    pub fn processor(&self) -> String {
        match self {
            Target::Amd { processor, .. } => processor.clone(),
            Target::Nvidia { .. } => self.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print_back() {
        for s in ["gfx906", "gfx90a", "gfx90a:sramecc+:xnack-", "gfx1030", "gfx1100", "sm_90", "sm_90a", "sm_120"] {
            assert_eq!(s.parse::<Target>().unwrap().to_string(), s);
        }
        assert_eq!("gfx906".parse::<Target>().unwrap().warp_size(), 64);
        assert_eq!("gfx1030".parse::<Target>().unwrap().warp_size(), 32);
        assert_eq!("sm_90".parse::<Target>().unwrap().warp_size(), 32);
    }

    #[test]
    fn malformed_targets_are_refused_with_examples() {
        for s in ["", "gfx", "gfx9", "gfx90A", "GFX906", "sm_", "sm_9x", "sm_90b", "cuda", "gfx12345"] {
            let e = s.parse::<Target>().unwrap_err();
            assert!(e.to_string().contains("gfx90a"), "{s}: {e}");
        }
        assert!(matches!("gfx90a:fast+".parse::<Target>(), Err(TargetError::UnknownFeature { .. })));
        assert!(matches!("gfx90a:xnack".parse::<Target>(), Err(TargetError::UnknownFeature { .. })));
        assert!(matches!("gfx90a:xnack+:xnack-".parse::<Target>(), Err(TargetError::DuplicateFeature { .. })));
        assert_eq!(Target::parse_list("gfx906, gfx90a,sm_90").unwrap().len(), 3);
    }

    #[test]
    fn features_a_processor_lacks_are_refused_by_name() {
        for (s, feature) in [("gfx1030:xnack+", "xnack"), ("gfx803:sramecc+", "sramecc"), ("gfx1100:xnack-", "xnack")] {
            let e = s.parse::<Target>().unwrap_err();
            assert!(matches!(e, TargetError::UnsupportedFeature { feature: f, .. } if f == feature), "{s}: {e}");
            assert!(e.to_string().contains("gfx90a"), "the error lists processors that have it: {e}");
        }
        let e = "gfx1234".parse::<Target>().unwrap_err();
        assert!(matches!(e, TargetError::UnknownProcessor { .. }) && e.to_string().contains("gfx1201"), "{e}");
    }

    #[test]
    fn features_print_in_canonical_order() {
        let t: Target = "gfx90a:xnack-:sramecc+".parse().unwrap();
        assert_eq!(t.to_string(), "gfx90a:sramecc+:xnack-");
        assert_eq!(t, "gfx90a:sramecc+:xnack-".parse().unwrap());
    }

    #[test]
    fn capabilities_come_from_the_table() {
        let rt = |s: &str| s.parse::<Target>().unwrap().render_target();
        assert_eq!(rt("gfx90a").matrix, MatrixUnit::Mfma { cdna: 2 });
        assert_eq!(rt("gfx906").dot_i8, DotI8::Sdot4);
        assert_eq!(rt("gfx1201").dot_i8, DotI8::Sudot4);
        assert_eq!(rt("gfx1100").matrix, MatrixUnit::Wmma { rdna: 3 });
        assert_eq!(rt("gfx803").dot_i8, DotI8::None);
        assert!(rt("sm_90").pdl && !rt("sm_80").pdl && rt("sm_80").matrix == MatrixUnit::MmaSync);
        assert_eq!(rt("sm_61").dot_i8, DotI8::Dp4a);
    }
}
