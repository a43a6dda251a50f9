//! Kernel bundles, the deployer's way to warm once and ship: a tar holding `manifest.json` (for
//! each entry its key, entry point, target, compiler identity, size and sha256) and the entry
//! files themselves (`entries/<key>.rfk`). Import refuses the whole bundle, writing nothing, unless
//! every file is one the manifest lists with that size and sha256, every listed entry is there once,
//! and every entry checks out whole (its header fields hash to its key and match the manifest, its
//! payload is a code object of its target defining its entry point). Nothing in the bundle names a
//! path the importer writes to: entries go where the cache puts their key, through the cache's own
//! safe writes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cache::{check_self_consistent, EntryHeader, KernelCache, MAX_ENTRY_BYTES, SCHEMA};

pub const MANIFEST: &str = "manifest.json";
const FORMAT: &str = "rocmforge-kernel-bundle";
const MAX_MANIFEST_BYTES: u64 = 16 << 20;
/// The most entries one bundle may hold (a model needs a few dozen per target).
pub const MAX_BUNDLE_ENTRIES: usize = 1 << 16;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub schema: u32,
    pub entries: Vec<ManifestEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    pub key: String,
    pub entry: String,
    pub target: String,
    pub compiler: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bundle {path} refused, nothing imported: {why}")]
    Refused { path: PathBuf, why: String },
    #[error("bundle {path} checked, but storing its entries failed: {why}")]
    Store { path: PathBuf, why: String },
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn member_name(key: &str) -> String {
    format!("entries/{key}.rfk")
}

/// Writes `entries` (whole entry files with their headers) and their manifest to `out`, through a
/// temporary file in the same folder renamed into place.
pub fn write_bundle(out: &Path, entries: &[(EntryHeader, Vec<u8>)]) -> Result<Manifest, BundleError> {
    let io = |source| BundleError::Io { path: out.to_path_buf(), source };
    let manifest = Manifest {
        format: FORMAT.into(),
        schema: SCHEMA,
        entries: entries
            .iter()
            .map(|(h, file)| ManifestEntry {
                key: h.key.clone(),
                entry: h.entry.clone(),
                target: h.target.clone(),
                compiler: h.compiler.clone(),
                bytes: file.len() as u64,
                sha256: sha256_hex(file),
            })
            .collect(),
    };
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new().prefix(".rocmforge-bundle-").suffix(".tmp").tempfile_in(dir).map_err(io)?;
    {
        let mut tar = tar::Builder::new(tmp.as_file());
        let mut append = |name: &str, bytes: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, name, bytes)
        };
        append(MANIFEST, &serde_json::to_vec_pretty(&manifest).expect("the manifest serializes")).map_err(io)?;
        for (h, file) in entries {
            append(&member_name(&h.key), file).map_err(io)?;
        }
        tar.finish().map_err(io)?;
    }
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(out).map_err(|e| io(e.error))?;
    Ok(manifest)
}

/// Reads and checks a whole bundle (see the module comment); returns the manifest and the entry
/// files in manifest order. Writes nothing.
pub fn read_bundle(path: &Path) -> Result<(Manifest, Vec<Vec<u8>>), BundleError> {
    let refuse = |why: String| BundleError::Refused { path: path.to_path_buf(), why };
    let (file, _) =
        crate::gguf::open_regular_file(path).map_err(|source| BundleError::Io { path: path.into(), source })?;
    let mut archive = tar::Archive::new(file);
    let members = archive.entries().map_err(|e| refuse(format!("not a tar archive: {e}")))?;
    let mut manifest: Option<Manifest> = None;
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (i, member) in members.enumerate() {
        let member = member.map_err(|e| refuse(format!("member {i}: {e}")))?;
        let name = member.path().map_err(|e| refuse(format!("member {i}: {e}")))?.to_string_lossy().into_owned();
        if member.header().entry_type() != tar::EntryType::Regular {
            return Err(refuse(format!("{name:?} is a {:?}, not a regular file", member.header().entry_type())));
        }
        let size = member.header().size().map_err(|e| refuse(format!("{name:?}: {e}")))?;
        let is_manifest = i == 0 && name == MANIFEST;
        let cap = if is_manifest { MAX_MANIFEST_BYTES } else { MAX_ENTRY_BYTES };
        if size > cap {
            return Err(refuse(format!("{name:?} is {size} bytes, over the {cap}-byte limit")));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        member.take(cap + 1).read_to_end(&mut bytes).map_err(|e| refuse(format!("{name:?}: {e}")))?;
        if bytes.len() as u64 != size {
            return Err(refuse(format!("{name:?} holds {} bytes, its header says {size}", bytes.len())));
        }
        if is_manifest {
            let m: Manifest =
                serde_json::from_slice(&bytes).map_err(|e| refuse(format!("{MANIFEST} is not a manifest: {e}")))?;
            if m.format != FORMAT || m.schema != SCHEMA {
                return Err(refuse(format!(
                    "{MANIFEST} is format {:?} schema {}, expected {FORMAT:?} schema {SCHEMA}",
                    m.format, m.schema
                )));
            }
            if m.entries.len() > MAX_BUNDLE_ENTRIES {
                return Err(refuse(format!("{} entries, over the limit of {MAX_BUNDLE_ENTRIES}", m.entries.len())));
            }
            manifest = Some(m);
            continue;
        }
        let Some(m) = &manifest else {
            return Err(refuse(format!("the first member must be {MANIFEST}, found {name:?}")));
        };
        if files.len() >= m.entries.len() {
            return Err(refuse(format!("{name:?}: more files than the manifest lists")));
        }
        if files.insert(name.clone(), bytes).is_some() {
            return Err(refuse(format!("{name:?} appears twice")));
        }
    }
    let manifest = manifest.ok_or_else(|| refuse(format!("no {MANIFEST}")))?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(manifest.entries.len());
    for m in &manifest.entries {
        if !seen.insert(m.key.clone()) {
            return Err(refuse(format!("the manifest lists key {} twice", m.key)));
        }
        let name = member_name(&m.key);
        let file = files.remove(&name).ok_or_else(|| refuse(format!("{name} is listed but missing")))?;
        if file.len() as u64 != m.bytes || sha256_hex(&file) != m.sha256 {
            return Err(refuse(format!(
                "{name}: {} bytes with sha256 {}, the manifest says {} bytes with sha256 {}",
                file.len(),
                sha256_hex(&file),
                m.bytes,
                m.sha256
            )));
        }
        let (h, _) = check_self_consistent(&file).map_err(|e| refuse(format!("{name}: {e}")))?;
        let claims = [
            ("key", &h.key, &m.key),
            ("entry", &h.entry, &m.entry),
            ("target", &h.target, &m.target),
            ("compiler", &h.compiler, &m.compiler),
        ];
        for (field, found, listed) in claims {
            if found != listed {
                return Err(refuse(format!("{name}: its {field} is {found:?}, the manifest says {listed:?}")));
            }
        }
        out.push(file);
    }
    if let Some(extra) = files.keys().next() {
        return Err(refuse(format!("{extra:?} is not listed in the manifest")));
    }
    Ok((manifest, out))
}

/// Checks a bundle whole, then stores each entry in `cache`. Returns the manifest.
pub fn import_bundle(cache: &KernelCache, path: &Path) -> Result<Manifest, BundleError> {
    let (manifest, files) = read_bundle(path)?;
    for file in &files {
        cache.import_entry(file).map_err(|why| BundleError::Store { path: path.to_path_buf(), why })?;
    }
    Ok(manifest)
}
