//! Memory-mapped safetensors checkpoints, single-file or sharded.
//!
//! Each tensor is converted straight from the mapping into the compute dtype, and the pages already
//! converted are released (`MADV_DONTNEED`) chunk by chunk, so loading never holds the file and the
//! converted weights in memory at once: peak RSS stays near the size of the converted weights.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use burn::tensor::TensorData;
use memmap2::{Mmap, UncheckedAdvice};
use safetensors::{Dtype, SafeTensors, tensor::Metadata};
use serde::Deserialize;

use crate::error::{ModelError, Result};
use crate::weights::{RawTensor, StoredDtype, WeightSource};

pub const SINGLE_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// One mapped `.safetensors` file with its parsed header.
struct MappedFile {
    path: PathBuf,
    mmap: Mmap,
    data_start: usize,
    metadata: Metadata,
}

impl MappedFile {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
        // SAFETY: the mapping is read-only; a checkpoint modified while it is being loaded is outside
        // what any loader (including transformers') can defend against.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
        let (header_len, metadata) =
            SafeTensors::read_metadata(&mmap).map_err(|e| ModelError::Checkpoint {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            data_start: 8 + header_len,
            metadata,
        })
    }

    fn names(&self) -> impl Iterator<Item = String> + '_ {
        self.metadata.tensors().into_keys()
    }

    fn raw<'a>(
        &'a self,
        name: &str,
        consumed: &'a dyn Fn(std::ops::Range<usize>),
    ) -> Result<Option<RawTensor<'a>>> {
        let Some(info) = self.metadata.info(name) else {
            return Ok(None);
        };
        let dtype = match info.dtype {
            Dtype::F32 => StoredDtype::F32,
            Dtype::F16 => StoredDtype::F16,
            Dtype::BF16 => StoredDtype::BF16,
            other => {
                return Err(ModelError::UnsupportedDtype {
                    name: name.to_string(),
                    path: self.path.clone(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        let (start, end) = info.data_offsets;
        // read_metadata checked that the offsets are contiguous and end at the end of the file.
        let bytes = self
            .mmap
            .get(self.data_start + start..self.data_start + end)
            .ok_or_else(|| ModelError::Checkpoint {
                path: self.path.clone(),
                message: format!("tensor `{name}` lies outside the file"),
            })?;
        Ok(Some(RawTensor {
            dtype,
            shape: info.shape.clone(),
            bytes,
            consumed: Some(consumed),
        }))
    }

    /// Drops the mapped pages of file bytes `range` (widened to whole pages).
    fn release_bytes(&self, range: std::ops::Range<usize>) {
        let page = 4096;
        let start = range.start / page * page;
        let end = range.end.min(self.mmap.len());
        if end > start {
            // SAFETY: the mapping is private and read-only, and no borrow of this range outlives the
            // conversion that precedes this call; dropped pages are re-read from the file if touched.
            let _ = unsafe {
                self.mmap
                    .unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }
}

#[derive(Deserialize)]
struct Index {
    weight_map: HashMap<String, String>,
}

/// The safetensors weights of a model directory.
pub struct SafetensorsWeights {
    location: PathBuf,
    files: Vec<MappedFile>,
    /// Tensor name -> index into `files`.
    owner: HashMap<String, usize>,
}

impl SafetensorsWeights {
    /// Opens `dir/model.safetensors`, or the shards listed in `dir/model.safetensors.index.json`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let index_path = dir.join(INDEX_FILE);
        if index_path.is_file() {
            return Self::open_index(&index_path);
        }
        let single = dir.join(SINGLE_FILE);
        if single.is_file() {
            return Self::open_files(&single, std::slice::from_ref(&single));
        }
        Err(ModelError::NoWeights {
            path: dir.to_path_buf(),
        })
    }

    /// Opens the shards of an index file; every shard it names must exist and hold its tensors.
    pub fn open_index(index_path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(index_path).map_err(|e| ModelError::io(index_path, e))?;
        let index: Index = serde_json::from_str(&text).map_err(|e| ModelError::Checkpoint {
            path: index_path.to_path_buf(),
            message: e.to_string(),
        })?;
        let dir = index_path.parent().unwrap_or(Path::new("."));
        let shards: BTreeSet<&String> = index.weight_map.values().collect();
        let paths: Vec<PathBuf> = shards.iter().map(|s| dir.join(s)).collect();
        let weights = Self::open_files(index_path, &paths)?;
        for (name, shard) in &index.weight_map {
            let path = dir.join(shard);
            let held = weights
                .owner
                .get(name)
                .is_some_and(|&i| weights.files[i].path == path);
            if !held {
                return Err(ModelError::MissingTensor {
                    name: name.clone(),
                    path,
                });
            }
        }
        Ok(weights)
    }

    /// Opens the given files as one checkpoint.
    pub fn open_files(location: &Path, paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut owner = HashMap::new();
        for path in paths {
            let file = MappedFile::open(path)?;
            for name in file.names() {
                if owner.insert(name.clone(), files.len()).is_some() {
                    return Err(ModelError::Checkpoint {
                        path: path.clone(),
                        message: format!("tensor `{name}` appears in more than one shard"),
                    });
                }
            }
            files.push(file);
        }
        Ok(Self {
            location: location.to_path_buf(),
            files,
            owner,
        })
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.owner.keys().cloned().collect();
        names.sort();
        names
    }

    /// The stored dtype of every tensor.
    pub fn dtypes(&self) -> Vec<Dtype> {
        self.files
            .iter()
            .flat_map(|f| f.metadata.tensors().into_values().map(|t| t.dtype))
            .collect()
    }

    /// Total bytes of tensor data across all files.
    pub fn stored_bytes(&self) -> usize {
        self.files.iter().map(|f| f.mmap.len() - f.data_start).sum()
    }
}

impl WeightSource for SafetensorsWeights {
    fn location(&self) -> &Path {
        &self.location
    }

    fn file_of(&self, name: &str) -> PathBuf {
        self.owner
            .get(name)
            .map(|&i| self.files[i].path.clone())
            .unwrap_or_else(|| self.location.clone())
    }

    fn contains(&self, name: &str) -> bool {
        self.owner.contains_key(name)
    }

    fn with_tensor(
        &self,
        name: &str,
        f: &mut dyn FnMut(RawTensor<'_>) -> Result<TensorData>,
    ) -> Result<Option<TensorData>> {
        let Some(&i) = self.owner.get(name) else {
            return Ok(None);
        };
        let file = &self.files[i];
        let base = file.data_start + file.metadata.info(name).map_or(0, |t| t.data_offsets.0);
        let consumed = |r: std::ops::Range<usize>| file.release_bytes(base + r.start..base + r.end);
        match file.raw(name, &consumed)? {
            Some(raw) => f(raw).map(Some),
            None => Ok(None),
        }
    }
}
