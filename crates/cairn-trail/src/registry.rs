//! The trails of every account, kept in `<data-dir>/trails/trails.json`.

use std::path::{Path, PathBuf};

use parking_lot::RwLock;

use crate::config::Trail;

pub struct Trails {
    path: PathBuf,
    list: RwLock<Vec<Trail>>,
}

impl Trails {
    pub fn open(data_dir: &Path) -> Result<Trails, String> {
        let dir = data_dir.join("trails");
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join("trails.json");
        let list: Vec<Trail> = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| format!("{} is not a valid trail file: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(Trails {
            path,
            list: RwLock::new(list),
        })
    }

    /// Every trail of every account, as they are now.
    pub fn snapshot(&self) -> Vec<Trail> {
        self.list.read().clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
