//! Channels: where `PutAuditEvents` writes. Kept in `<data-dir>/channels.json`; every account
//! has a channel named `default`.

use std::path::{Path, PathBuf};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::input::{Input, paging_token, parse_paging_token};
use cairn_iam::write_private;

const MAX_CHANNELS: usize = 25;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Channel {
    pub arn: String,
    pub account_id: String,
    pub name: String,
    pub source: String,
    pub destinations: Vec<Value>,
    pub tags: Vec<Value>,
}

impl Channel {
    pub fn id(&self) -> &str {
        self.arn.rsplit('/').next().unwrap_or(&self.arn)
    }
}

pub struct Channels {
    path: PathBuf,
    region: String,
    list: RwLock<Vec<Channel>>,
}

fn channel_arn(region: &str, account: &str) -> String {
    format!(
        "arn:aws:cloudtrail:{region}:{account}:channel/{}",
        uuid::Uuid::new_v4()
    )
}

impl Channels {
    pub fn open(data_dir: &Path, region: &str, accounts: &[String]) -> Result<Channels, String> {
        let path = data_dir.join("channels.json");
        let list: Vec<Channel> = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| format!("{} is not a valid channel file: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let channels = Channels {
            path,
            region: region.to_owned(),
            list: RwLock::new(list),
        };
        let mut changed = false;
        {
            let mut list = channels.list.write();
            for a in accounts {
                if !list
                    .iter()
                    .any(|c| &c.account_id == a && c.name == "default")
                {
                    list.push(Channel {
                        arn: channel_arn(region, a),
                        account_id: a.clone(),
                        name: "default".into(),
                        source: "Custom".into(),
                        destinations: Vec::new(),
                        tags: Vec::new(),
                    });
                    changed = true;
                }
            }
        }
        if changed {
            channels.save().map_err(|e| e.message)?;
        }
        Ok(channels)
    }

    fn save(&self) -> Result<(), ApiError> {
        let bytes = serde_json::to_vec_pretty(&*self.list.read())
            .map_err(|e| ApiError::internal(e.to_string()))?;
        write_private(&self.path, &bytes)
            .map_err(|e| ApiError::internal(format!("cannot save channels: {e}")))
    }

    /// Changes a channel's tags (`{"Key", "Value"}` objects) and saves them.
    pub fn update_tags(
        &self,
        arn: &str,
        change: impl FnOnce(&mut Vec<Value>) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        {
            let mut list = self.list.write();
            let channel = list.iter_mut().find(|c| c.arn == arn).ok_or_else(|| {
                ApiError::new(
                    "ChannelNotFoundException",
                    404,
                    format!("Channel {arn} not found"),
                )
            })?;
            change(&mut channel.tags)?;
        }
        self.save()
    }

    /// Finds a channel of the account by ARN or by its id. The error codes differ between the
    /// `cloudtrail` and `cloudtrail-data` models, so the caller names them.
    pub fn resolve(
        &self,
        account: &str,
        reference: &str,
        invalid_code: &'static str,
        not_found_code: &'static str,
    ) -> Result<Channel, ApiError> {
        let valid_arn = reference.starts_with("arn:")
            && reference.split(':').nth(2) == Some("cloudtrail")
            && reference.contains(":channel/");
        let valid_id = !reference.starts_with("arn:")
            && !reference.is_empty()
            && reference.len() <= 256
            && reference
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid_arn && !valid_id {
            return Err(ApiError::bad(
                invalid_code,
                format!(
                    "{reference:?} is not a channel ARN (arn:aws:cloudtrail:<region>:<account>:channel/<id>) or channel id"
                ),
            ));
        }
        self.list
            .read()
            .iter()
            .find(|c| c.account_id == account && (c.arn == reference || c.id() == reference))
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    not_found_code,
                    404,
                    format!("Channel {reference} not found for account {account}"),
                )
            })
    }

    pub fn create(&self, caller: &Caller, input: &Input) -> Result<Value, ApiError> {
        let name = input.req_str("Name")?;
        if name.len() < 3
            || name.len() > 128
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(ApiError::bad(
                "InvalidParameterException",
                format!(
                    "Channel name {name:?} is invalid: use 3 to 128 letters, digits, periods, underscores or hyphens"
                ),
            ));
        }
        let source = input.req_str("Source")?;
        if source.is_empty() || source.len() > 256 {
            return Err(ApiError::bad(
                "InvalidSourceException",
                "Source must be 1 to 256 characters, for example Custom",
            ));
        }
        let destinations = input.list("Destinations")?.unwrap_or_default();
        for d in &destinations {
            let t = d.get("Type").and_then(Value::as_str).unwrap_or_default();
            let loc = d
                .get("Location")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !matches!(t, "EVENT_DATA_STORE" | "AWS_SERVICE") || loc.is_empty() {
                return Err(ApiError::bad(
                    "InvalidParameterException",
                    "each destination needs Type EVENT_DATA_STORE or AWS_SERVICE and a Location",
                ));
            }
        }
        let tags = input.list("Tags")?.unwrap_or_default();
        let mut list = self.list.write();
        if list
            .iter()
            .any(|c| c.account_id == caller.account_id && c.name == name)
        {
            return Err(ApiError::bad(
                "ChannelAlreadyExistsException",
                format!(
                    "Channel {name} already exists for account {}",
                    caller.account_id
                ),
            ));
        }
        if list
            .iter()
            .filter(|c| c.account_id == caller.account_id)
            .count()
            >= MAX_CHANNELS
        {
            return Err(ApiError::bad(
                "ChannelMaxLimitExceededException",
                format!("An account can have at most {MAX_CHANNELS} channels"),
            ));
        }
        let channel = Channel {
            arn: channel_arn(&self.region, &caller.account_id),
            account_id: caller.account_id.clone(),
            name: name.to_owned(),
            source: source.to_owned(),
            destinations,
            tags,
        };
        list.push(channel.clone());
        drop(list);
        self.save()?;
        Ok(json!({
            "ChannelArn": channel.arn,
            "Name": channel.name,
            "Source": channel.source,
            "Destinations": channel.destinations,
            "Tags": channel.tags,
        }))
    }

    /// The channel a `cloudtrail` request names in its `Channel` member.
    fn named(&self, caller: &Caller, input: &Input) -> Result<Channel, ApiError> {
        self.resolve(
            &caller.account_id,
            input.req_str("Channel")?,
            "ChannelARNInvalidException",
            "ChannelNotFoundException",
        )
    }

    pub fn get(&self, caller: &Caller, input: &Input) -> Result<Value, ApiError> {
        let c = self.named(caller, input)?;
        Ok(json!({
            "ChannelArn": c.arn,
            "Name": c.name,
            "Source": c.source,
            "SourceConfig": {"ApplyToAllRegions": true, "AdvancedEventSelectors": []},
            "Destinations": c.destinations,
            "IngestionStatus": {},
        }))
    }

    pub fn list(&self, caller: &Caller, input: &Input) -> Result<Value, ApiError> {
        let max = input
            .int_in("MaxResults", 1, 1000, "InvalidParameterException")?
            .unwrap_or(1000) as usize;
        let start = match input.opt_str("NextToken")? {
            Some(t) => parse_paging_token(t, "channels")?,
            None => 0,
        };
        let list = self.list.read();
        let mine: Vec<&Channel> = list
            .iter()
            .filter(|c| c.account_id == caller.account_id)
            .collect();
        let page: Vec<Value> = mine
            .iter()
            .skip(start)
            .take(max)
            .map(|c| json!({"ChannelArn": c.arn, "Name": c.name}))
            .collect();
        let mut out = json!({ "Channels": page });
        if start + max < mine.len() {
            out["NextToken"] = Value::String(paging_token(start + max, "channels"));
        }
        Ok(out)
    }

    pub fn delete(&self, caller: &Caller, input: &Input) -> Result<Value, ApiError> {
        let c = self.named(caller, input)?;
        self.list.write().retain(|x| x.arn != c.arn);
        self.save()?;
        Ok(json!({}))
    }
}
