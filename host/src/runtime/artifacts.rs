//! Compiled components on disk, keyed by the source's sha256 and the engine's compatibility hash,
//! so a restart (or another host sharing the directory) loads native code instead of compiling.
//!
//! Artifacts are written to a temporary file and renamed into place, so a crash never leaves a
//! half-written artifact under a real name. One that fails to load (another wasmtime version, a
//! different CPU feature set, corruption) is ignored and recompiled from the stored source.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct ArtifactCache {
    dir: PathBuf,
    compatibility: String,
}

impl ArtifactCache {
    pub fn new(dir: PathBuf, engine: &Engine) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir).with_context(|| {
            format!("could not create the artifact directory {}", dir.display())
        })?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ArtifactCache {
            dir,
            compatibility: format!("{:016x}", hasher.finish()),
        })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{sha256}-{}.cwasm", self.compatibility))
    }

    pub fn store(&self, sha256: &str, artifact: &[u8]) -> anyhow::Result<()> {
        let path = self.path(sha256);
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)
            .context("could not create a temporary artifact file")?;
        file.write_all(artifact)
            .and_then(|()| file.as_file().sync_all())
            .context("could not write the compiled artifact")?;
        file.persist(&path)
            .with_context(|| format!("could not move the artifact to {}", path.display()))?;
        Ok(())
    }

    pub fn load(&self, sha256: &str, engine: &Engine) -> Option<Component> {
        let path = self.path(sha256);
        if !path.exists() {
            return None;
        }
        // SAFETY: only this host writes into its artifact directory, always from the output of
        // `Engine::precompile_component`; wasmtime itself rejects artifacts built for another
        // engine configuration or version.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), error = format!("{error:#}"), "ignoring an unusable compiled artifact; recompiling");
                None
            }
        }
    }

    pub fn remove(&self, sha256: &str) {
        let path = self.path(sha256);
        if let Err(error) = std::fs::remove_file(&path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), %error, "could not remove a compiled artifact");
        }
    }
}
