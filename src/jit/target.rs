//! Compile targets, always explicit: `gfx90a`, `gfx90a:sramecc+:xnack-`, `gfx1030`, `sm_90`.

use std::fmt;
use std::str::FromStr;

use crate::kernels::{Dialect, RenderTarget};

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// An AMD GPU: processor (`gfx90a`) and target features as written (`sramecc+`, `xnack-`).
    Amd { processor: String, features: Vec<String> },
    /// An NVIDIA GPU: compute capability ×10 (90 for sm_90) and an optional `a`/`f` suffix.
    Nvidia { sm: u32, suffix: Option<char> },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TargetError {
    #[error("unknown target {0:?}: expected an AMD processor such as gfx906, gfx90a, gfx90a:sramecc+:xnack-, gfx1030, or an NVIDIA one such as sm_80, sm_90")]
    Unknown(String),
    #[error("target {target:?}: unknown feature {feature:?} (AMD targets take sramecc+/- and xnack+/-)")]
    UnknownFeature { target: String, feature: String },
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
        let mut features = Vec::new();
        for f in parts {
            let valid = matches!(f, "sramecc+" | "sramecc-" | "xnack+" | "xnack-");
            if !valid {
                return Err(TargetError::UnknownFeature { target: s.to_string(), feature: f.to_string() });
            }
            features.push(f.to_string());
        }
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
        match self {
            Target::Amd { processor, .. } if processor.len() == 6 => 64, // gfx9xx, gfx8xx
            Target::Amd { .. } => 32,                                    // gfx10xx, gfx11xx, gfx12xx
            Target::Nvidia { .. } => 32,
        }
    }

    pub fn render_target(&self) -> RenderTarget {
        RenderTarget { dialect: self.dialect(), warp_size: self.warp_size() }
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
        assert_eq!(Target::parse_list("gfx906, gfx90a,sm_90").unwrap().len(), 3);
    }
}
