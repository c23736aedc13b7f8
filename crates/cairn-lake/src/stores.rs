//! Event data stores: the registry behind CreateEventDataStore and its siblings, kept in
//! `<lake>/stores.json`. Every account has a default store that sees all of its events.

use std::path::{Path, PathBuf};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use cairn_trail::selectors::{EventFacts, Selectors};

use crate::{LakeError, write_atomic};

/// CloudTrail's quota of event data stores per account and region.
pub const MAX_STORES: usize = 10;
/// A deleted store can be restored for this long, then it is gone.
pub const PENDING_DELETION_MS: i64 = 7 * 24 * 3600 * 1000;
/// The default store's name.
pub const DEFAULT_NAME: &str = "cairn-default";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StoreStatus {
    Enabled,
    StoppedIngestion,
    PendingDeletion,
}

impl StoreStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreStatus::Enabled => "ENABLED",
            StoreStatus::StoppedIngestion => "STOPPED_INGESTION",
            StoreStatus::PendingDeletion => "PENDING_DELETION",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventDataStore {
    pub id: String,
    pub account: String,
    pub region: String,
    pub name: String,
    pub status: StoreStatus,
    /// The status to go back to when a deletion is undone.
    #[serde(default)]
    pub status_before_deletion: Option<StoreStatus>,
    /// `AdvancedEventSelectors` as given (echoed back as they came); `None` on the default
    /// store, which keeps every event.
    pub selectors_wire: Option<Value>,
    #[serde(skip)]
    pub selectors: Option<Selectors>,
    /// An Insights event data store: its selectors take `eventCategory` `Insight` only, and
    /// it keeps the account's insight events.
    #[serde(skip)]
    pub insights_only: bool,
    /// `InsightSelectors` put on this (source) store, and the store its insight events go
    /// to (`InsightsDestination`).
    #[serde(default)]
    pub insight_selectors: Vec<Value>,
    #[serde(default)]
    pub insights_destination: Option<String>,
    pub multi_region: bool,
    pub organization: bool,
    pub retention_days: u32,
    pub termination_protection: bool,
    pub billing_mode: String,
    pub kms_key_id: Option<String>,
    pub tags: Vec<Value>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Periods (by the time Cairn stored an event) in which the store ingested:
    /// `[start, end)`, the last one open while ingesting.
    pub ingesting: Vec<(i64, Option<i64>)>,
    pub deleted_ms: Option<i64>,
    pub default: bool,
}

impl EventDataStore {
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:cloudtrail:{}:{}:eventdatastore/{}",
            self.region, self.account, self.id
        )
    }

    /// Whether the store was ingesting at `stored_ms`.
    pub fn ingested_at(&self, stored_ms: i64) -> bool {
        self.ingesting
            .iter()
            .any(|(s, e)| stored_ms >= *s && e.is_none_or(|e| stored_ms < e))
    }

    /// Whether the store ingested everything, ever (only then can a query skip the
    /// ingestion-time test).
    pub fn ingested_always(&self) -> bool {
        self.ingesting.len() == 1 && self.ingesting[0] == (0, None)
    }

    /// Whether a record stored at `stored_ms` with these facts belongs to this store.
    pub fn keeps(&self, facts: &EventFacts, stored_ms: i64) -> bool {
        if self.insights_only {
            return self.ingested_at(stored_ms) && facts.category() == "Insight";
        }
        self.ingested_at(stored_ms) && self.selectors.as_ref().is_none_or(|s| s.matches(facts))
    }

    pub fn to_wire(&self) -> Value {
        let mut v = serde_json::json!({
            "EventDataStoreArn": self.arn(),
            "Name": self.name,
            "Status": self.status.as_str(),
            "MultiRegionEnabled": self.multi_region,
            "OrganizationEnabled": self.organization,
            "RetentionPeriod": self.retention_days,
            "TerminationProtectionEnabled": self.termination_protection,
            "CreatedTimestamp": self.created_ms as f64 / 1000.0,
            "UpdatedTimestamp": self.updated_ms as f64 / 1000.0,
            "BillingMode": self.billing_mode,
        });
        if let Some(s) = &self.selectors_wire {
            v["AdvancedEventSelectors"] = s.clone();
        }
        if let Some(k) = &self.kms_key_id {
            v["KmsKeyId"] = Value::String(k.clone());
        }
        v
    }
}

/// The selectors CloudTrail gives a store created without any: every management event.
pub fn default_selectors_wire() -> Value {
    serde_json::json!([{
        "Name": "Default management events",
        "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]
    }])
}

/// Whether advanced selectors are those of an Insights store: each selects `eventCategory`
/// `Insight` and nothing else.
pub fn is_insights_wire(wire: &Value) -> bool {
    wire.as_array().is_some_and(|list| {
        !list.is_empty()
            && list.iter().all(|sel| {
                sel.get("FieldSelectors")
                    .and_then(Value::as_array)
                    .is_some_and(|fs| {
                        fs.len() == 1
                            && fs[0].get("Field").and_then(Value::as_str) == Some("eventCategory")
                            && fs[0].get("Equals") == Some(&serde_json::json!(["Insight"]))
                            && fs[0]
                                .as_object()
                                .is_some_and(|o| o.keys().all(|k| k == "Field" || k == "Equals"))
                    })
            })
    })
}

/// Reads advanced selectors: (the selectors, whether the store is an Insights store).
fn parse_wire(wire: &Value) -> Result<(Option<Selectors>, bool), LakeError> {
    if is_insights_wire(wire) {
        return Ok((None, true));
    }
    Ok((Some(parse_selectors(wire)?), false))
}

fn parse_selectors(wire: &Value) -> Result<Selectors, LakeError> {
    let list = wire.as_array().ok_or_else(|| {
        LakeError::client(
            "InvalidEventSelectorsException",
            "AdvancedEventSelectors must be a list",
        )
    })?;
    Selectors::from_advanced_wire(list)
        .map_err(|e| LakeError::client("InvalidEventSelectorsException", e.0))
}

/// What CreateEventDataStore asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub name: String,
    pub selectors: Option<Value>,
    pub multi_region: Option<bool>,
    pub organization: Option<bool>,
    pub retention_days: Option<i64>,
    pub termination_protection: Option<bool>,
    pub tags: Vec<Value>,
    pub kms_key_id: Option<String>,
    pub start_ingestion: Option<bool>,
    pub billing_mode: Option<String>,
}

/// What UpdateEventDataStore asks for (members left out stay as they are).
#[derive(Debug, Clone, Default)]
pub struct UpdateRequest {
    pub name: Option<String>,
    pub selectors: Option<Value>,
    pub multi_region: Option<bool>,
    pub organization: Option<bool>,
    pub retention_days: Option<i64>,
    pub termination_protection: Option<bool>,
    pub kms_key_id: Option<String>,
    pub billing_mode: Option<String>,
}

pub struct Registry {
    path: PathBuf,
    region: String,
    list: RwLock<Vec<EventDataStore>>,
}

fn check_name(name: &str) -> Result<(), LakeError> {
    let ok = (3..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(LakeError::client(
            "InvalidParameterException",
            format!(
                "Name '{name}' is not valid: use 3 to 128 letters, digits, periods, underscores or dashes"
            ),
        ))
    }
}

fn check_retention(days: i64, billing: &str) -> Result<u32, LakeError> {
    let max = if billing == "FIXED_RETENTION_PRICING" {
        2557
    } else {
        3653
    };
    if (7..=max).contains(&days) {
        Ok(days as u32)
    } else {
        Err(LakeError::client(
            "InvalidParameterException",
            format!(
                "RetentionPeriod must be between 7 and {max} days with {billing}; {days} was given"
            ),
        ))
    }
}

fn check_billing(mode: &str) -> Result<(), LakeError> {
    if mode == "EXTENDABLE_RETENTION_PRICING" || mode == "FIXED_RETENTION_PRICING" {
        Ok(())
    } else {
        Err(LakeError::client(
            "InvalidParameterException",
            format!(
                "BillingMode must be EXTENDABLE_RETENTION_PRICING or FIXED_RETENTION_PRICING; '{mode}' was given"
            ),
        ))
    }
}

/// The id a reference names: an id, or an event data store ARN.
fn id_of(reference: &str) -> Result<&str, LakeError> {
    if let Some(rest) = reference.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        let ok = parts.len() == 5
            && parts[1] == "cloudtrail"
            && parts[4].starts_with("eventdatastore/")
            && parts[4].len() > "eventdatastore/".len();
        if !ok {
            return Err(LakeError::client(
                "EventDataStoreARNInvalidException",
                format!("'{reference}' is not a valid event data store ARN"),
            ));
        }
        return Ok(&parts[4]["eventdatastore/".len()..]);
    }
    Ok(reference)
}

impl Registry {
    pub fn open(lake_dir: &Path, region: &str) -> Result<Registry, LakeError> {
        let path = lake_dir.join("stores.json");
        let mut list: Vec<EventDataStore> = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                LakeError::Internal(format!("{} is not a valid store list: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(LakeError::Io(path.display().to_string(), e)),
        };
        for s in &mut list {
            if let Some(w) = &s.selectors_wire {
                (s.selectors, s.insights_only) = parse_wire(w)?;
            }
        }
        Ok(Registry {
            path,
            region: region.to_owned(),
            list: RwLock::new(list),
        })
    }

    fn save(&self, list: &[EventDataStore]) -> Result<(), LakeError> {
        let bytes = serde_json::to_vec_pretty(list)
            .map_err(|e| LakeError::Internal(format!("cannot encode the store list: {e}")))?;
        write_atomic(&self.path, &bytes)
    }

    /// Drops stores whose deletion is more than 7 days old.
    fn purge(list: &mut Vec<EventDataStore>, now: i64) -> bool {
        let before = list.len();
        list.retain(|s| s.deleted_ms.is_none_or(|d| now - d < PENDING_DELETION_MS));
        list.len() != before
    }

    /// Makes sure the account has its default store (once: a deleted default is not made
    /// again).
    pub fn ensure_default(&self, account: &str, now: i64) -> Result<(), LakeError> {
        let id = default_id(account);
        if self.list.read().iter().any(|s| s.id == id) {
            return Ok(());
        }
        let mut list = self.list.write();
        if list.iter().any(|s| s.id == id) {
            return Ok(());
        }
        list.push(EventDataStore {
            id,
            account: account.to_owned(),
            region: self.region.clone(),
            name: DEFAULT_NAME.into(),
            status: StoreStatus::Enabled,
            status_before_deletion: None,
            selectors_wire: None,
            selectors: None,
            insights_only: false,
            insight_selectors: Vec::new(),
            insights_destination: None,
            multi_region: true,
            organization: false,
            retention_days: 3653,
            termination_protection: true,
            billing_mode: "EXTENDABLE_RETENTION_PRICING".into(),
            kms_key_id: None,
            tags: Vec::new(),
            created_ms: now,
            updated_ms: now,
            ingesting: vec![(0, None)],
            deleted_ms: None,
            default: true,
        });
        self.save(&list)
    }

    pub fn create(
        &self,
        account: &str,
        req: CreateRequest,
        now: i64,
    ) -> Result<EventDataStore, LakeError> {
        check_name(&req.name)?;
        let billing = req
            .billing_mode
            .clone()
            .unwrap_or_else(|| "EXTENDABLE_RETENTION_PRICING".into());
        check_billing(&billing)?;
        let default_days = if billing == "FIXED_RETENTION_PRICING" {
            2557
        } else {
            366
        };
        let retention = check_retention(req.retention_days.unwrap_or(default_days), &billing)?;
        let wire = req.selectors.clone().unwrap_or_else(default_selectors_wire);
        let (selectors, insights_only) = parse_wire(&wire)?;
        if req.organization == Some(true) {
            return Err(LakeError::client(
                "OrganizationsNotInUseException",
                "organization event data stores are not available: Cairn has no AWS Organizations",
            ));
        }
        let mut list = self.list.write();
        Self::purge(&mut list, now);
        let mine: Vec<&EventDataStore> = list.iter().filter(|s| s.account == account).collect();
        if mine.iter().any(|s| s.name == req.name) {
            return Err(LakeError::client(
                "EventDataStoreAlreadyExistsException",
                format!("An event data store named {} already exists", req.name),
            ));
        }
        if mine.len() >= MAX_STORES {
            return Err(LakeError::client(
                "EventDataStoreMaxLimitExceededException",
                format!("An account can have at most {MAX_STORES} event data stores"),
            ));
        }
        let start = req.start_ingestion.unwrap_or(true);
        let store = EventDataStore {
            id: uuid::Uuid::new_v4().to_string(),
            account: account.to_owned(),
            region: self.region.clone(),
            name: req.name,
            status: if start {
                StoreStatus::Enabled
            } else {
                StoreStatus::StoppedIngestion
            },
            status_before_deletion: None,
            selectors_wire: Some(wire),
            selectors,
            insights_only,
            insight_selectors: Vec::new(),
            insights_destination: None,
            multi_region: req.multi_region.unwrap_or(true),
            organization: false,
            retention_days: retention,
            termination_protection: req.termination_protection.unwrap_or(true),
            billing_mode: billing,
            kms_key_id: req.kms_key_id,
            tags: req.tags,
            created_ms: now,
            updated_ms: now,
            ingesting: if start { vec![(now, None)] } else { Vec::new() },
            deleted_ms: None,
            default: false,
        };
        list.push(store.clone());
        self.save(&list)?;
        Ok(store)
    }

    /// The account's store that `reference` (an id or an ARN) names.
    pub fn get(
        &self,
        account: &str,
        reference: &str,
        now: i64,
    ) -> Result<EventDataStore, LakeError> {
        let id = id_of(reference)?;
        self.list
            .read()
            .iter()
            .find(|s| s.account == account && s.id == id)
            .filter(|s| s.deleted_ms.is_none_or(|d| now - d < PENDING_DELETION_MS))
            .cloned()
            .ok_or_else(|| {
                LakeError::not_found(
                    "EventDataStoreNotFoundException",
                    format!("The specified event data store {reference} was not found"),
                )
            })
    }

    /// The account's stores (pending deletions included), oldest first.
    pub fn list(&self, account: &str, now: i64) -> Vec<EventDataStore> {
        self.list
            .read()
            .iter()
            .filter(|s| s.account == account)
            .filter(|s| s.deleted_ms.is_none_or(|d| now - d < PENDING_DELETION_MS))
            .cloned()
            .collect()
    }

    /// Every account's live stores (for the segment writer and retention).
    pub fn all(&self, now: i64) -> Vec<EventDataStore> {
        self.list
            .read()
            .iter()
            .filter(|s| s.deleted_ms.is_none_or(|d| now - d < PENDING_DELETION_MS))
            .cloned()
            .collect()
    }

    fn change<T>(
        &self,
        account: &str,
        reference: &str,
        now: i64,
        f: impl FnOnce(&mut EventDataStore) -> Result<T, LakeError>,
    ) -> Result<(EventDataStore, T), LakeError> {
        let id = id_of(reference)?.to_owned();
        let mut list = self.list.write();
        Self::purge(&mut list, now);
        let store = list
            .iter_mut()
            .find(|s| s.account == account && s.id == id)
            .ok_or_else(|| {
                LakeError::not_found(
                    "EventDataStoreNotFoundException",
                    format!("The specified event data store {reference} was not found"),
                )
            })?;
        let mut copy = store.clone();
        let out = f(&mut copy)?;
        copy.updated_ms = now;
        *store = copy.clone();
        self.save(&list)?;
        Ok((copy, out))
    }

    pub fn update(
        &self,
        account: &str,
        reference: &str,
        req: UpdateRequest,
        now: i64,
    ) -> Result<EventDataStore, LakeError> {
        if let Some(n) = &req.name {
            check_name(n)?;
            let clash = self.list.read().iter().any(|s| {
                s.account == account && &s.name == n && s.id != id_of(reference).unwrap_or("")
            });
            if clash {
                return Err(LakeError::client(
                    "EventDataStoreAlreadyExistsException",
                    format!("An event data store named {n} already exists"),
                ));
            }
        }
        let selectors = match &req.selectors {
            Some(w) => Some(parse_wire(w)?),
            None => None,
        };
        if req.organization == Some(true) {
            return Err(LakeError::client(
                "OrganizationsNotInUseException",
                "organization event data stores are not available: Cairn has no AWS Organizations",
            ));
        }
        self.change(account, reference, now, |s| {
            if s.status == StoreStatus::PendingDeletion {
                return Err(inactive(s));
            }
            if let Some(b) = &req.billing_mode {
                check_billing(b)?;
                if s.billing_mode == "EXTENDABLE_RETENTION_PRICING" && b == "FIXED_RETENTION_PRICING" {
                    return Err(LakeError::client(
                        "InvalidParameterException",
                        "BillingMode can change from FIXED_RETENTION_PRICING to EXTENDABLE_RETENTION_PRICING, not back",
                    ));
                }
                s.billing_mode = b.clone();
            }
            if let Some(d) = req.retention_days {
                s.retention_days = check_retention(d, &s.billing_mode)?;
            }
            if let Some(n) = req.name {
                s.name = n;
            }
            if let (Some(w), Some(sel)) = (req.selectors, selectors) {
                if s.default {
                    return Err(LakeError::client(
                        "InvalidParameterException",
                        "The default event data store keeps every event of the account; its selectors cannot change",
                    ));
                }
                s.selectors_wire = Some(w);
                (s.selectors, s.insights_only) = sel;
            }
            if let Some(m) = req.multi_region {
                s.multi_region = m;
            }
            if let Some(t) = req.termination_protection {
                s.termination_protection = t;
            }
            if let Some(k) = req.kms_key_id {
                s.kms_key_id = Some(k);
            }
            Ok(())
        })
        .map(|(s, ())| s)
    }

    pub fn delete(&self, account: &str, reference: &str, now: i64) -> Result<(), LakeError> {
        self.change(account, reference, now, |s| {
            if s.status == StoreStatus::PendingDeletion {
                return Err(LakeError::client(
                    "InvalidEventDataStoreStatusException",
                    format!("The event data store {} is already pending deletion", s.arn()),
                ));
            }
            if s.termination_protection {
                return Err(LakeError::client(
                    "EventDataStoreTerminationProtectedException",
                    format!(
                        "The event data store {} has termination protection on; turn it off with UpdateEventDataStore first",
                        s.arn()
                    ),
                ));
            }
            close_window(s, now);
            s.status_before_deletion = Some(s.status);
            s.status = StoreStatus::PendingDeletion;
            s.deleted_ms = Some(now);
            Ok(())
        })
        .map(|_| ())
    }

    pub fn restore(
        &self,
        account: &str,
        reference: &str,
        now: i64,
    ) -> Result<EventDataStore, LakeError> {
        self.change(account, reference, now, |s| {
            if s.status != StoreStatus::PendingDeletion {
                return Err(LakeError::client(
                    "InvalidEventDataStoreStatusException",
                    format!("The event data store {} is not pending deletion", s.arn()),
                ));
            }
            let back = s
                .status_before_deletion
                .take()
                .unwrap_or(StoreStatus::Enabled);
            s.status = back;
            s.deleted_ms = None;
            if back == StoreStatus::Enabled {
                s.ingesting.push((now, None));
            }
            Ok(())
        })
        .map(|(s, ())| s)
    }

    pub fn start_ingestion(
        &self,
        account: &str,
        reference: &str,
        now: i64,
    ) -> Result<(), LakeError> {
        self.change(account, reference, now, |s| match s.status {
            StoreStatus::StoppedIngestion => {
                s.status = StoreStatus::Enabled;
                s.ingesting.push((now, None));
                Ok(())
            }
            other => Err(LakeError::client(
                "InvalidEventDataStoreStatusException",
                format!(
                    "The event data store {} is {}; only a store whose ingestion is stopped can start it",
                    s.arn(),
                    other.as_str()
                ),
            )),
        })
        .map(|_| ())
    }

    pub fn stop_ingestion(
        &self,
        account: &str,
        reference: &str,
        now: i64,
    ) -> Result<(), LakeError> {
        self.change(account, reference, now, |s| match s.status {
            StoreStatus::Enabled => {
                s.status = StoreStatus::StoppedIngestion;
                close_window(s, now);
                Ok(())
            }
            other => Err(LakeError::client(
                "InvalidEventDataStoreStatusException",
                format!(
                    "The event data store {} is {}; only an ingesting store can stop",
                    s.arn(),
                    other.as_str()
                ),
            )),
        })
        .map(|_| ())
    }

    /// Puts `InsightSelectors` on a source store, its insight events going to `destination`
    /// (an ARN); an empty list turns Insights off. The caller has checked the selectors.
    pub fn set_insights(
        &self,
        account: &str,
        source: &str,
        selectors: Vec<Value>,
        destination: Option<String>,
        now: i64,
    ) -> Result<EventDataStore, LakeError> {
        self.change(account, source, now, |s| {
            if s.status == StoreStatus::PendingDeletion {
                return Err(inactive(s));
            }
            s.insights_destination = if selectors.is_empty() {
                None
            } else {
                destination
            };
            s.insight_selectors = selectors;
            Ok(())
        })
        .map(|(s, ())| s)
    }

    /// Tags for AddTags/ListTags/RemoveTags on a store's ARN.
    pub fn set_tags(
        &self,
        account: &str,
        arn: &str,
        tags: Vec<Value>,
        now: i64,
    ) -> Result<(), LakeError> {
        self.change(account, arn, now, |s| {
            s.tags = tags;
            Ok(())
        })
        .map(|_| ())
    }
}

fn close_window(s: &mut EventDataStore, now: i64) {
    if let Some(last) = s.ingesting.last_mut()
        && last.1.is_none()
    {
        last.1 = Some(now);
    }
}

pub(crate) fn inactive(s: &EventDataStore) -> LakeError {
    LakeError::client(
        "InactiveEventDataStoreException",
        format!("The event data store {} is pending deletion", s.arn()),
    )
}

/// The default store's id: the same for an account everywhere.
pub fn default_id(account: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("cairn-default-eds:{account}").as_bytes(),
    )
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle() {
        let d = tempfile::tempdir().unwrap();
        let r = Registry::open(d.path(), "us-east-1").unwrap();
        r.ensure_default("111122223333", 5).unwrap();
        let s = r
            .create(
                "111122223333",
                CreateRequest {
                    name: "mgmt".into(),
                    termination_protection: Some(false),
                    ..Default::default()
                },
                10,
            )
            .unwrap();
        assert_eq!(s.retention_days, 366);
        assert!(s.keeps(&EventFacts::default(), 11));
        assert!(!s.keeps(&EventFacts::default(), 9));
        r.stop_ingestion("111122223333", &s.id, 20).unwrap();
        assert!(r.stop_ingestion("111122223333", &s.id, 21).is_err());
        let s2 = r.get("111122223333", &s.arn(), 22).unwrap();
        assert!(!s2.keeps(&EventFacts::default(), 25));
        assert!(r.get("999988887777", &s.id, 22).is_err());
        r.delete("111122223333", &s.id, 30).unwrap();
        let e = r
            .delete("111122223333", &default_id("111122223333"), 30)
            .unwrap_err();
        assert!(matches!(
            e,
            LakeError::Client {
                code: "EventDataStoreTerminationProtectedException",
                ..
            }
        ));
        let back = Registry::open(d.path(), "us-east-1").unwrap();
        assert_eq!(back.list("111122223333", 31).len(), 2);
        assert_eq!(back.list("111122223333", 31 + PENDING_DELETION_MS).len(), 1);
        let restored = back.restore("111122223333", &s.id, 40).unwrap();
        assert_eq!(restored.status, StoreStatus::StoppedIngestion);
    }
}
