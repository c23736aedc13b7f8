//! The journal frame the store writes: one batch of one account's records.
//!
//! Layout: `[u32 header length][zstd(postcard(FrameHeader))][zstd(records block)]`, where the
//! records block is `[u32 count][u32 length × count][record bytes...]`. The header carries the
//! lookup attributes, so a restart rebuilds the index without decompressing or parsing a record.

use serde::{Deserialize, Serialize};

use cairn_event::{Category, EventMeta};

use crate::StoreError;

/// The attributes the index keeps postings for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum Attr {
    EventName = 0,
    EventSource = 1,
    ReadOnly = 2,
    Username = 3,
    ResourceType = 4,
    ResourceName = 5,
    AccessKeyId = 6,
    Region = 7,
    ErrorCode = 8,
    SourceIp = 9,
}

impl Attr {
    /// The LookupEvents `AttributeKey` for this attribute, where it has one.
    pub fn from_lookup_key(key: &str) -> Option<Attr> {
        Some(match key {
            "EventName" => Attr::EventName,
            "EventSource" => Attr::EventSource,
            "ReadOnly" => Attr::ReadOnly,
            "Username" => Attr::Username,
            "ResourceType" => Attr::ResourceType,
            "ResourceName" => Attr::ResourceName,
            "AccessKeyId" => Attr::AccessKeyId,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub event_id: String,
    pub time_ms: i64,
    pub category: Category,
    pub attrs: Vec<(Attr, String)>,
}

impl IndexEntry {
    pub fn from_meta(meta: &EventMeta) -> IndexEntry {
        let mut attrs = Vec::with_capacity(8 + meta.resource_names.len());
        let mut add = |a: Attr, v: Option<&str>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                attrs.push((a, v.to_owned()));
            }
        };
        add(Attr::EventName, Some(&meta.event_name));
        add(Attr::EventSource, Some(&meta.event_source));
        add(
            Attr::ReadOnly,
            meta.read_only.map(|r| if r { "true" } else { "false" }),
        );
        add(Attr::Username, meta.username.as_deref());
        add(Attr::AccessKeyId, meta.access_key_id.as_deref());
        add(Attr::Region, meta.region.as_deref());
        add(Attr::ErrorCode, meta.error_code.as_deref());
        add(Attr::SourceIp, meta.source_ip.as_deref());
        let mut types: Vec<&str> = Vec::new();
        for r in &meta.resources {
            if let Some(t) = r.resource_type.as_deref()
                && !types.contains(&t)
            {
                types.push(t);
            }
        }
        for t in types {
            add(Attr::ResourceType, Some(t));
        }
        for n in &meta.resource_names {
            add(Attr::ResourceName, Some(n));
        }
        IndexEntry {
            event_id: meta.event_id.clone(),
            time_ms: meta.time_ms,
            category: meta.category,
            attrs,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameHeader {
    pub version: u8,
    pub account: String,
    pub stored_ms: i64,
    pub first_seq: u64,
    pub entries: Vec<IndexEntry>,
}

const ZSTD_LEVEL: i32 = 3;

pub fn encode(header: &FrameHeader, records: &[&[u8]]) -> Result<Vec<u8>, StoreError> {
    let head = postcard::to_stdvec(header).map_err(|e| StoreError::Encode(e.to_string()))?;
    let head = zstd::bulk::compress(&head, ZSTD_LEVEL).map_err(StoreError::Compress)?;
    let total: usize = records.iter().map(|r| r.len()).sum();
    let mut block = Vec::with_capacity(4 + 4 * records.len() + total);
    block.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for r in records {
        block.extend_from_slice(&(r.len() as u32).to_le_bytes());
    }
    for r in records {
        block.extend_from_slice(r);
    }
    let body = zstd::bulk::compress(&block, ZSTD_LEVEL).map_err(StoreError::Compress)?;
    let mut out = Vec::with_capacity(4 + head.len() + body.len() + 8);
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&head);
    // The decompressed size, so decoding can allocate once.
    out.extend_from_slice(&(block.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

fn split(payload: &[u8]) -> Result<(&[u8], usize, &[u8]), StoreError> {
    let bad = || StoreError::Decode("truncated frame".into());
    let head_len = u32::from_le_bytes(
        payload
            .get(..4)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    ) as usize;
    let head = payload.get(4..4 + head_len).ok_or_else(bad)?;
    let rest = payload.get(4 + head_len..).ok_or_else(bad)?;
    let size = u64::from_le_bytes(
        rest.get(..8)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    );
    Ok((head, size as usize, &rest[8..]))
}

pub fn decode_header(payload: &[u8]) -> Result<FrameHeader, StoreError> {
    let (head, _, _) = split(payload)?;
    let raw = zstd::stream::decode_all(head).map_err(StoreError::Compress)?;
    postcard::from_bytes(&raw).map_err(|e| StoreError::Decode(e.to_string()))
}

/// A decompressed records block.
pub struct Records {
    block: Vec<u8>,
    offsets: Vec<(u32, u32)>,
}

impl Records {
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let (start, len) = *self.offsets.get(i)?;
        self.block.get(start as usize..(start + len) as usize)
    }

    pub fn bytes(&self) -> usize {
        self.block.len()
    }
}

pub fn decode_records(payload: &[u8]) -> Result<Records, StoreError> {
    let (_, size, body) = split(payload)?;
    let block = zstd::bulk::decompress(body, size).map_err(StoreError::Compress)?;
    let bad = || StoreError::Decode("corrupt records block".into());
    let word = |i: usize| -> Result<u32, StoreError> {
        Ok(u32::from_le_bytes(
            block
                .get(i..i + 4)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        ))
    };
    let count = word(0)? as usize;
    let mut offsets = Vec::with_capacity(count);
    let mut at = 4 + 4 * count as u32;
    for i in 0..count {
        let len = word(4 + 4 * i)?;
        offsets.push((at, len));
        at = at.checked_add(len).ok_or_else(bad)?;
    }
    if at as usize != block.len() {
        return Err(bad());
    }
    Ok(Records { block, offsets })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let header = FrameHeader {
            version: 1,
            account: "123456789012".into(),
            stored_ms: 5,
            first_seq: 7,
            entries: vec![IndexEntry {
                event_id: "e".into(),
                time_ms: 9,
                category: Category::Management,
                attrs: vec![(Attr::EventName, "X".into())],
            }],
        };
        let payload = encode(&header, &[b"{\"a\":1}", b"{}"]).unwrap();
        assert_eq!(decode_header(&payload).unwrap(), header);
        let r = decode_records(&payload).unwrap();
        assert_eq!(r.get(0), Some(&b"{\"a\":1}"[..]));
        assert_eq!(r.get(1), Some(&b"{}"[..]));
        assert_eq!(r.get(2), None);
        assert!(decode_records(&payload[..payload.len() - 1]).is_err());
    }
}
