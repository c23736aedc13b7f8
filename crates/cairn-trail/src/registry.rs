//! The trails of every account, kept in `<data-dir>/trails/trails.json`. Every change is
//! written whole and atomically (temporary file, fsync, rename, fsync of the folder) before
//! it becomes visible, so a crash leaves either the old or the new list.
//!
//! Rules kept here, atomically with the change: a trail's name is unique among the trails an
//! account sees in a region (its own and the shadows of multi-region trails), and a region
//! holds at most [`MAX_TRAILS_PER_REGION`] of them.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;

use crate::config::Trail;

/// CloudTrail's quota of trails per region (multi-region trails count in every region).
pub const MAX_TRAILS_PER_REGION: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("Trail {name} already exists for customer: {account}")]
    AlreadyExists { name: String, account: String },
    #[error(
        "User: {account} already has {max} trails in {region}; delete a trail or make it single-region first"
    )]
    TooMany {
        account: String,
        region: String,
        max: usize,
    },
    #[error("Unknown trail: {name} for the user: {account}")]
    NotFound { name: String, account: String },
    #[error("cannot save {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode the trail list: {0}")]
    Encode(#[from] serde_json::Error),
}

pub struct Trails {
    path: PathBuf,
    list: RwLock<Vec<Trail>>,
}

/// How many trails of `account` count against `region`'s quota: those whose home region it
/// is, and the multi-region trails of other home regions.
pub fn count_in_region(trails: &[Trail], account: &str, region: &str) -> usize {
    trails
        .iter()
        .filter(|t| t.account_id == account && t.visible_in(region))
        .count()
}

/// Whether two trails of one account would share a name in some region.
fn clash(a: &Trail, b: &Trail) -> bool {
    a.account_id == b.account_id
        && a.name == b.name
        && (a.home_region == b.home_region || a.multi_region || b.multi_region)
}

/// Checks `t` against the others (every trail but `t` itself): unique name, and the quota of
/// every region where `t` shows that has trails (or is its home).
fn check_against(others: &[Trail], t: &Trail) -> Result<(), RegistryError> {
    if others.iter().any(|o| clash(o, t)) {
        return Err(RegistryError::AlreadyExists {
            name: t.name.clone(),
            account: t.account_id.clone(),
        });
    }
    let mut regions: BTreeSet<&str> = BTreeSet::new();
    regions.insert(&t.home_region);
    if t.multi_region {
        regions.extend(
            others
                .iter()
                .filter(|o| o.account_id == t.account_id)
                .map(|o| o.home_region.as_str()),
        );
    }
    for r in regions {
        if count_in_region(others, &t.account_id, r) >= MAX_TRAILS_PER_REGION {
            return Err(RegistryError::TooMany {
                account: t.account_id.clone(),
                region: r.to_owned(),
                max: MAX_TRAILS_PER_REGION,
            });
        }
    }
    Ok(())
}

fn same(t: &Trail, account: &str, home_region: &str, name: &str) -> bool {
    t.account_id == account && t.home_region == home_region && t.name == name
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync of
/// the folder.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl Trails {
    pub fn open(data_dir: &Path) -> Result<Trails, String> {
        let dir = data_dir.join("trails");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
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

    /// The trails of one account, in the order they were created.
    pub fn of_account(&self, account: &str) -> Vec<Trail> {
        self.list
            .read()
            .iter()
            .filter(|t| t.account_id == account)
            .cloned()
            .collect()
    }

    /// One trail by its home region and name.
    pub fn get(&self, account: &str, home_region: &str, name: &str) -> Option<Trail> {
        self.list
            .read()
            .iter()
            .find(|t| same(t, account, home_region, name))
            .cloned()
    }

    fn save(&self, list: &[Trail]) -> Result<(), RegistryError> {
        let bytes = serde_json::to_vec_pretty(list)?;
        write_atomic(&self.path, &bytes).map_err(|source| RegistryError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Whether [`Trails::create`] would take the trail now (it checks again as it adds it).
    pub fn check_new(&self, trail: &Trail) -> Result<(), RegistryError> {
        check_against(&self.list.read(), trail)
    }

    /// Adds a trail, refusing a name already used where it would show and a full region.
    pub fn create(&self, trail: Trail) -> Result<Trail, RegistryError> {
        let mut list = self.list.write();
        check_against(&list, &trail)?;
        let mut next = list.clone();
        next.push(trail.clone());
        self.save(&next)?;
        *list = next;
        Ok(trail)
    }

    /// Changes a trail with `f` (which may refuse the change); a trail that becomes
    /// multi-region is checked against the other regions' names and quotas. Returns the
    /// trail as changed.
    pub fn update<E: From<RegistryError>>(
        &self,
        account: &str,
        home_region: &str,
        name: &str,
        f: impl FnOnce(&mut Trail) -> Result<(), E>,
    ) -> Result<Trail, E> {
        let mut list = self.list.write();
        let Some(i) = list
            .iter()
            .position(|t| same(t, account, home_region, name))
        else {
            return Err(RegistryError::NotFound {
                name: name.to_owned(),
                account: account.to_owned(),
            }
            .into());
        };
        let mut next = list.clone();
        let before_multi = next[i].multi_region;
        f(&mut next[i])?;
        // What identifies a trail cannot change.
        next[i].account_id = account.to_owned();
        next[i].home_region = home_region.to_owned();
        next[i].name = name.to_owned();
        let changed = next[i].clone();
        if changed.multi_region && !before_multi {
            let mut others = next.clone();
            others.remove(i);
            check_against(&others, &changed)?;
        }
        self.save(&next)?;
        *list = next;
        Ok(changed)
    }

    /// Removes a trail; returns it.
    pub fn delete(
        &self,
        account: &str,
        home_region: &str,
        name: &str,
    ) -> Result<Trail, RegistryError> {
        let mut list = self.list.write();
        let Some(i) = list
            .iter()
            .position(|t| same(t, account, home_region, name))
        else {
            return Err(RegistryError::NotFound {
                name: name.to_owned(),
                account: account.to_owned(),
            });
        };
        let mut next = list.clone();
        let removed = next.remove(i);
        self.save(&next)?;
        *list = next;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(account: &str, region: &str, name: &str, multi: bool) -> Trail {
        Trail {
            multi_region: multi,
            ..Trail::new(account, region, name, "bucket")
        }
    }

    const A: &str = "111122223333";

    #[test]
    fn crud_persists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let trails = Trails::open(dir.path()).expect("open");
        trails
            .create(trail(A, "us-east-1", "one", false))
            .expect("create");
        trails
            .create(trail(A, "us-east-1", "two", true))
            .expect("create");
        let t = trails
            .update::<RegistryError>(A, "us-east-1", "one", |t| {
                t.logging = true;
                t.name = "renamed".into();
                Ok(())
            })
            .expect("update");
        assert!(t.logging);
        assert_eq!(t.name, "one", "the name cannot change");
        let reopened = Trails::open(dir.path()).expect("reopen");
        let names: Vec<String> = reopened.snapshot().into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["one", "two"]);
        assert!(reopened.get(A, "us-east-1", "one").expect("there").logging);
        reopened.delete(A, "us-east-1", "one").expect("delete");
        assert!(matches!(
            reopened.delete(A, "us-east-1", "one"),
            Err(RegistryError::NotFound { .. })
        ));
        let again = Trails::open(dir.path()).expect("reopen");
        assert_eq!(again.snapshot().len(), 1);
        assert!(!dir.path().join("trails/trails.json.tmp").exists());
    }

    #[test]
    fn names_are_unique_where_trails_show() {
        let dir = tempfile::tempdir().expect("tempdir");
        let trails = Trails::open(dir.path()).expect("open");
        trails
            .create(trail(A, "us-east-1", "x", false))
            .expect("create");
        // Same name in another region is fine for single-region trails...
        trails
            .create(trail(A, "us-west-2", "x", false))
            .expect("create");
        // ...and in another account.
        trails
            .create(trail("444455556666", "us-east-1", "x", true))
            .expect("create");
        assert!(matches!(
            trails.create(trail(A, "us-east-1", "x", false)),
            Err(RegistryError::AlreadyExists { .. })
        ));
        // A multi-region trail would clash with the one in us-west-2.
        assert!(matches!(
            trails.create(trail(A, "eu-west-1", "x", true)),
            Err(RegistryError::AlreadyExists { .. })
        ));
        let r = trails.update::<RegistryError>(A, "us-east-1", "x", |t| {
            t.multi_region = true;
            Ok(())
        });
        assert!(matches!(r, Err(RegistryError::AlreadyExists { .. })));
        assert!(!trails.get(A, "us-east-1", "x").expect("there").multi_region);
    }

    #[test]
    fn five_per_region() {
        let dir = tempfile::tempdir().expect("tempdir");
        let trails = Trails::open(dir.path()).expect("open");
        for i in 0..4 {
            trails
                .create(trail(A, "us-east-1", &format!("t{i}"), false))
                .expect("create");
        }
        trails
            .create(trail(A, "us-west-2", "multi", true))
            .expect("create");
        assert_eq!(count_in_region(&trails.snapshot(), A, "us-east-1"), 5);
        assert!(matches!(
            trails.create(trail(A, "us-east-1", "t5", false)),
            Err(RegistryError::TooMany { .. })
        ));
        // us-west-2 has room for single-region trails, but not for another multi-region one
        // (it would be the sixth in us-east-1).
        trails
            .create(trail(A, "us-west-2", "w1", false))
            .expect("create");
        assert!(matches!(
            trails.create(trail(A, "us-west-2", "m2", true)),
            Err(RegistryError::TooMany { .. })
        ));
        let r = trails.update::<RegistryError>(A, "us-west-2", "w1", |t| {
            t.multi_region = true;
            Ok(())
        });
        assert!(matches!(r, Err(RegistryError::TooMany { .. })));
        // Other accounts have their own quota.
        trails
            .create(trail("444455556666", "us-east-1", "t0", false))
            .expect("create");
    }
}
