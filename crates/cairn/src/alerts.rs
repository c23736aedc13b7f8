//! `cairn serve`'s rules and alerts: the targets and webhook secret from the flags, the
//! rules worker, the alert log and its dispatcher.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cairn_api::rules::Alerting;
use cairn_rules::{Dispatcher, Outbox, Registry, Rules, SendOptions, Target};

/// What the flags say.
pub struct Setup {
    pub targets: Vec<Target>,
    pub send: SendOptions,
    pub notification_webhook: Option<String>,
    /// Where the generated webhook secret is kept (None: given by flag or environment).
    pub secret_file: Option<std::path::PathBuf>,
}

impl Setup {
    pub fn from_args(
        data_dir: &Path,
        targets: &[String],
        secret: Option<&str>,
        attempts: u32,
        backoff: &str,
        notification_webhook: Option<&str>,
    ) -> Result<Setup> {
        let targets = targets
            .iter()
            .map(|t| Target::parse(t).map_err(anyhow::Error::msg))
            .collect::<Result<Vec<_>>>()
            .context("--alert-target")?;
        if attempts == 0 || attempts > 100 {
            bail!("--alert-attempts must be between 1 and 100");
        }
        let backoff_ms = crate::parse_duration(backoff, 1, "--alert-backoff")?;
        if let Some(url) = notification_webhook {
            Target::parse(&format!("webhook={url}"))
                .map_err(anyhow::Error::msg)
                .context("--notification-webhook")?;
        }
        let (secret, secret_file) = match secret {
            Some(s) if !s.is_empty() => (s.as_bytes().to_vec(), None),
            Some(_) => bail!("--alert-webhook-secret must not be empty"),
            None => {
                let path = data_dir.join("rules").join("webhook.secret");
                (load_or_make_secret(&path)?, Some(path))
            }
        };
        Ok(Setup {
            targets,
            send: SendOptions {
                attempts,
                backoff: Duration::from_millis(backoff_ms as u64),
                secret,
                ..SendOptions::default()
            },
            notification_webhook: notification_webhook.map(str::to_owned),
            secret_file,
        })
    }

    /// Opens the registry (default pack, rules folder), the alert log, the worker and the
    /// dispatcher.
    pub fn open(
        &self,
        data_dir: &Path,
        store: Arc<cairn_store::Store>,
        rules_dir: Option<&Path>,
        default_pack: bool,
    ) -> Result<Arc<Alerting>> {
        let mut shared = if default_pack {
            cairn_rules::pack::default_pack()
        } else {
            Vec::new()
        };
        let mut refused = Vec::new();
        if let Some(dir) = rules_dir {
            if !dir.is_dir() {
                bail!("--rules-dir {}: not a folder", dir.display());
            }
            let (specs, bad) = cairn_rules::registry::load_folder(dir);
            shared.extend(specs);
            refused = bad;
        }
        let registry =
            Arc::new(Registry::open(Some(data_dir), shared, refused).map_err(anyhow::Error::msg)?);
        for r in registry.refused() {
            tracing::warn!(file = %r.file.display(), reason = %r.reason, "rule not loaded");
        }
        let dir = data_dir.join("rules");
        let outbox = Arc::new(
            Outbox::open(Some(&dir))
                .with_context(|| format!("cannot open the alert log in {}", dir.display()))?,
        );
        let rules = Arc::new(Rules::open(
            data_dir,
            store,
            registry.clone(),
            outbox.clone(),
            cairn_rules::Options::default(),
        )?);
        let console_base = Arc::new(parking_lot::RwLock::new(String::new()));
        let dispatcher = Arc::new(Dispatcher::new(
            Some(&dir),
            outbox.clone(),
            self.targets.clone(),
            self.send.clone(),
            console_base.clone(),
        ));
        Ok(Arc::new(Alerting {
            rules,
            registry,
            outbox,
            dispatcher,
            console_base,
        }))
    }
}

fn load_or_make_secret(path: &Path) -> Result<Vec<u8>> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let secret = hex::encode(bytes);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        f.write_all(secret.as_bytes())?;
        f.sync_all()?;
    }
    Ok(secret.into_bytes())
}

/// The lines of the start banner about rules.
pub fn print_banner(a: &Alerting, setup: &Setup) {
    let shared = a.registry.shared();
    let pack = shared
        .iter()
        .filter(|r| r.spec.origin == cairn_rules::Origin::Default)
        .count();
    let folder = shared.len() - pack;
    println!(
        "  Rules:             {pack} default{}; alerts at /console/rules",
        if folder > 0 {
            format!(", {folder} from the rules folder")
        } else {
            String::new()
        }
    );
    for r in a.registry.refused() {
        println!("    not loaded: {}: {}", r.file.display(), r.reason);
    }
    if setup.targets.is_empty() {
        println!(
            "  Alert targets:     none (add --alert-target webhook=URL, slack=URL, file=PATH or stdout)"
        );
    } else {
        let names: Vec<String> = setup.targets.iter().map(Target::display).collect();
        println!("  Alert targets:     {}", names.join(", "));
        if let Some(path) = &setup.secret_file {
            println!("  Webhook secret:    in {}", path.display());
        }
    }
}
