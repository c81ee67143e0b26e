//! The local Hugging Face hub cache, read the way `huggingface_hub` lays it out, without ever
//! touching the network.
//!
//! Models (cdr-models) and datasets (cdr-data) are both looked up here; the resolver lives in
//! this leaf crate because cdr-data must not depend on cdr-models (burn, tokenizers) to read a
//! dataset, and both already depend on cdr-types.
//!
//! Layout (huggingface_hub's cache): `<cache>/{models,datasets}--{org}--{name}/` holds
//! `refs/<ref name>` (a file naming a commit) and `snapshots/<commit>/` (the files of that commit).

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Which kind of hub repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoKind {
    /// A model repository (`models--org--name`).
    Model,
    /// A dataset repository (`datasets--org--name`).
    Dataset,
}

impl RepoKind {
    fn prefix(self) -> &'static str {
        match self {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
        }
    }
}

/// A hub repository id, `org/name`, with an optional `@revision` (a branch or tag name, or a
/// commit hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubId {
    /// `org`.
    pub org: String,
    /// `name`.
    pub name: String,
    /// The ref name or commit after `@`; `None` means `main`.
    pub revision: Option<String>,
}

impl HubId {
    /// Parses `org/name` or `org/name@revision`; `None` when `spec` does not have that shape
    /// (a path with more components, an empty part, characters the hub does not allow).
    pub fn parse(spec: &str) -> Option<HubId> {
        let (repo, revision) = match spec.split_once('@') {
            Some((repo, revision)) => (repo, Some(revision)),
            None => (spec, None),
        };
        let (org, name) = repo.split_once('/')?;
        // The hub allows letters, digits, `-`, `_` and `.` in both parts.
        let valid = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !valid(org) || !valid(name) {
            return None;
        }
        let revision = match revision {
            None => None,
            // A ref name becomes a path under `refs/`; it must not climb out of it.
            Some(r)
                if !r.is_empty()
                    && Path::new(r)
                        .components()
                        .all(|c| matches!(c, Component::Normal(_))) =>
            {
                Some(r.to_owned())
            }
            Some(_) => return None,
        };
        Some(HubId {
            org: org.to_owned(),
            name: name.to_owned(),
            revision,
        })
    }

    /// `org/name`, without the revision.
    pub fn repo(&self) -> String {
        format!("{}/{}", self.org, self.name)
    }
}

impl fmt::Display for HubId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.org, self.name)?;
        if let Some(r) = &self.revision {
            write!(f, "@{r}")?;
        }
        Ok(())
    }
}

/// Why a repository could not be found in the local cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubError {
    /// No cache directory could be determined (no `HF_HUB_CACHE`, `HF_HOME`, `XDG_CACHE_HOME`
    /// or `HOME`).
    NoCache,
    /// The repository is not in the cache.
    NotCached {
        /// `org/name`.
        repo: String,
        /// The cache looked in.
        cache: PathBuf,
        /// Whether `HF_HUB_OFFLINE` is on.
        offline: bool,
    },
    /// The repository is cached, but not at this revision.
    NoRevision {
        /// `org/name`.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// The repository's cache directory.
        dir: PathBuf,
    },
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubError::NoCache => f.write_str(
                "no Hugging Face cache directory: set HF_HUB_CACHE or HF_HOME (or HOME)",
            ),
            HubError::NotCached {
                repo,
                cache,
                offline,
            } => {
                write!(
                    f,
                    "`{repo}` is not in the local Hugging Face cache ({})",
                    cache.display()
                )?;
                // cdr never downloads, offline or not; say how to fill the cache.
                if *offline {
                    f.write_str("; HF_HUB_OFFLINE is set, so download it on a connected machine")
                } else {
                    f.write_str("; cdr reads only the cache: download it first (`hf download`)")
                }
            }
            HubError::NoRevision {
                repo,
                revision,
                dir,
            } => write!(
                f,
                "`{repo}` is cached ({}) but not at revision `{revision}` (no refs/{revision} \
                 and no snapshots/{revision})",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for HubError {}

/// The hub cache directory as huggingface_hub picks it: `HF_HUB_CACHE` (or the older
/// `HUGGINGFACE_HUB_CACHE`), else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
/// `~/.cache/huggingface/hub`. Empty variables count as unset.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("HF_HUB_CACHE")
        .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
        .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| var("XDG_CACHE_HOME").map(|c| c.join("huggingface").join("hub")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("huggingface").join("hub")))
}

/// Whether `HF_HUB_OFFLINE` is on (`1`, `on`, `yes` or `true`, any case, as huggingface_hub
/// reads it). cdr never downloads either way; this only changes what errors advise.
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "on" | "yes" | "true"
        )
    })
}

/// The snapshot directory of `id` in the cache: the commit `refs/<revision>` names (default
/// `main`), or `snapshots/<revision>` when the revision is a commit hash. Without a revision and
/// without `refs/main` (a cache filled by hand), the only snapshot, if there is one.
pub fn snapshot(kind: RepoKind, id: &HubId) -> Result<PathBuf, HubError> {
    let cache = cache_dir().ok_or(HubError::NoCache)?;
    let dir = cache.join(format!("{}--{}--{}", kind.prefix(), id.org, id.name));
    if !dir.is_dir() {
        return Err(HubError::NotCached {
            repo: id.repo(),
            cache,
            offline: offline(),
        });
    }
    let snapshots = dir.join("snapshots");
    let revision = id.revision.as_deref().unwrap_or("main");
    let by_ref = std::fs::read_to_string(dir.join("refs").join(revision))
        .ok()
        .map(|commit| snapshots.join(commit.trim()))
        .filter(|p| p.is_dir());
    let by_commit = || Some(snapshots.join(revision)).filter(|p| p.is_dir());
    let only = || {
        if id.revision.is_some() {
            return None;
        }
        let mut all = std::fs::read_dir(&snapshots)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir());
        let first = all.next()?;
        all.next().is_none().then_some(first)
    };
    by_ref
        .or_else(by_commit)
        .or_else(only)
        .ok_or_else(|| HubError::NoRevision {
            repo: id.repo(),
            revision: revision.to_owned(),
            dir,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_and_revisions() {
        let id = HubId::parse("org/name@v1.0").unwrap();
        assert_eq!((id.org.as_str(), id.name.as_str()), ("org", "name"));
        assert_eq!(id.revision.as_deref(), Some("v1.0"));
        assert_eq!(id.to_string(), "org/name@v1.0");
        assert_eq!(HubId::parse("org/name").unwrap().revision, None);
        assert_eq!(
            HubId::parse("o/n@refs/pr/1").unwrap().revision.as_deref(),
            Some("refs/pr/1")
        );
        for bad in [
            "name",
            "a/b/c",
            "/abs",
            "org/",
            "../x",
            "o/n@",
            "o/n@../../etc",
            "o/n m",
            "./x.jsonl",
        ] {
            assert_eq!(HubId::parse(bad), None, "{bad}");
        }
    }
}
