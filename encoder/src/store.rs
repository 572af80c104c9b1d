//! The job's temporary storage: chunk files, encoded parts, overlays, thumbnails and the
//! record of finished tasks that lets a restarted job skip work already done.
//!
//! Artifact keys are relative paths checked here, so nothing a task names escapes the root.

use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// A job's working folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating) the folder.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(Error::io("create work folder", &root))?;
        Ok(Self { root })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file behind an artifact key. Keys are relative, without `..`.
    pub fn path(&self, key: &str) -> Result<PathBuf> {
        let rel = Path::new(key);
        let clean = !key.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !clean {
            return Err(Error::Internal(format!("artifact key `{key}` is not a plain relative path")));
        }
        Ok(self.root.join(rel))
    }

    /// A path for writing `key`, with its parent folder created.
    pub fn prepare(&self, key: &str) -> Result<PathBuf> {
        let path = self.path(key)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(Error::io("create folder", parent))?;
        }
        Ok(path)
    }

    /// Writes bytes so that readers see either nothing or the whole file.
    pub fn write_atomic(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.prepare(key)?;
        write_atomic(&path, bytes)
    }

    /// Reads a finished task's recorded output.
    pub fn read_json<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let bytes = fs::read(self.path(key).ok()?).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Records a value as JSON, atomically.
    pub fn write_json<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
        self.write_atomic(key, &bytes)
    }

    /// Removes the whole folder.
    pub fn remove(self) -> Result<()> {
        match fs::remove_dir_all(&self.root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove work folder", &self.root)(e)),
            _ => Ok(()),
        }
    }
}

/// Writes to a sibling temporary file, syncs, then renames over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_sibling(path);
    let mut f = fs::File::create(&tmp).map_err(Error::io("create", &tmp))?;
    f.write_all(bytes).map_err(Error::io("write", &tmp))?;
    f.sync_all().map_err(Error::io("sync", &tmp))?;
    fs::rename(&tmp, path).map_err(Error::io("rename", path))
}

/// `dir/name` -> `dir/.name.PID-N.partial`: where a file is built before it is renamed into
/// place. Unique per writer, so two workers redoing the same task (a redelivered lease) never
/// write into one file; whichever renames last wins, and both wrote a whole file.
pub fn temp_sibling(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}-{n}.partial", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_root() {
        let store = Store { root: PathBuf::from("/nonexistent/job") };
        for bad in ["", "../x", "/etc/passwd", "a/../../b", "./a"] {
            assert!(store.path(bad).is_err(), "{bad}");
        }
        assert!(store.path("chunks/0001.nut").is_ok());
    }
}
