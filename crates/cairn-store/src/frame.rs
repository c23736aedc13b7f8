//! The journal frame the store writes: one batch of one account's records.
//!
//! Layout: `[u32 header length][zstd(postcard(FrameHeader))][record][record]...`, each record
//! compressed on its own (see `dict`). The header carries each record's eventID hash, event
//! time, category and compressed length; the lookup attributes are read from the records.

use serde::{Deserialize, Serialize};

use cairn_event::{Category, EventMeta};

use crate::StoreError;

/// The attributes the index keeps postings for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attr {
    EventName,
    EventSource,
    ReadOnly,
    Username,
    ResourceType,
    ResourceName,
    AccessKeyId,
    /// `awsRegion` (a Cairn extension key).
    AwsRegion,
    /// `errorCode` (a Cairn extension key); a record without one is in no ErrorCode list.
    ErrorCode,
    /// `sourceIPAddress` (a Cairn extension key).
    SourceIpAddress,
    /// An ARN: indexed as the resource names derived from it, never looked up as such.
    ResourceArn,
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
            "AwsRegion" => Attr::AwsRegion,
            "ErrorCode" => Attr::ErrorCode,
            "SourceIpAddress" => Attr::SourceIpAddress,
            _ => return None,
        })
    }

    /// Whether a record has at most one value of this attribute, so that the events of two
    /// values never overlap.
    pub fn single_valued(self) -> bool {
        !matches!(
            self,
            Attr::ResourceType | Attr::ResourceName | Attr::ResourceArn
        )
    }
}

/// The attribute values of one record that the index keeps.
pub fn attributes(meta: &EventMeta) -> Vec<(Attr, &str)> {
    let mut attrs: Vec<(Attr, &str)> = Vec::with_capacity(16);
    fn push<'a>(attrs: &mut Vec<(Attr, &'a str)>, a: Attr, v: Option<&'a str>) {
        if let Some(v) = v.filter(|v| !v.is_empty() && !attrs.contains(&(a, v))) {
            attrs.push((a, v));
        }
    }
    push(&mut attrs, Attr::EventName, Some(&meta.event_name));
    push(&mut attrs, Attr::EventSource, Some(&meta.event_source));
    push(
        &mut attrs,
        Attr::ReadOnly,
        meta.read_only.map(|r| if r { "true" } else { "false" }),
    );
    push(&mut attrs, Attr::Username, meta.username.as_deref());
    push(&mut attrs, Attr::AccessKeyId, meta.access_key_id.as_deref());
    push(&mut attrs, Attr::AwsRegion, meta.region.as_deref());
    push(&mut attrs, Attr::ErrorCode, meta.error_code.as_deref());
    push(&mut attrs, Attr::SourceIpAddress, meta.source_ip.as_deref());
    for r in &meta.resources {
        push(&mut attrs, Attr::ResourceType, r.resource_type.as_deref());
        // A name derived from an ARN comes with the ARN's names (cached per ARN) when indexing.
        let from_arn = meta
            .resource_arns
            .iter()
            .any(|a| cairn_event::arn_display_name(a) == r.name);
        if !from_arn {
            push(&mut attrs, Attr::ResourceName, Some(&r.name));
        }
    }
    for arn in &meta.resource_arns {
        push(&mut attrs, Attr::ResourceArn, Some(arn));
    }
    attrs
}

/// A frame header: per record, its eventID hash, event time, category and compressed length,
/// column by column so that it compresses well. The lookup attributes are not repeated here:
/// a restart reads them from the records themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameHeader {
    pub version: u8,
    pub account: String,
    pub stored_ms: i64,
    pub first_seq: u64,
    /// Compression dictionary of the records (0: none).
    pub dict: u32,
    /// eventID hashes.
    pub hashes: Vec<[u8; 8]>,
    /// Event times in ms, each as the difference from the previous one (the first from 0).
    pub time_deltas: Vec<i64>,
    pub categories: Vec<Category>,
    /// Compressed length of each record.
    pub lens: Vec<u32>,
}

/// One record of a frame, as the index sees it.
pub struct Entry<'a> {
    pub id_hash: u64,
    pub time_ms: i64,
    pub category: Category,
    pub attrs: Vec<(Attr, &'a str)>,
}

impl FrameHeader {
    /// Builds the header of a frame from the records' metadata, eventID hashes and compressed
    /// lengths.
    pub fn build(
        account: &str,
        stored_ms: i64,
        first_seq: u64,
        dict: u32,
        records: &[(&EventMeta, u64, u32)],
    ) -> FrameHeader {
        let mut prev_time = 0i64;
        let mut h = FrameHeader {
            version: 4,
            account: account.to_owned(),
            stored_ms,
            first_seq,
            dict,
            hashes: Vec::with_capacity(records.len()),
            time_deltas: Vec::with_capacity(records.len()),
            categories: Vec::with_capacity(records.len()),
            lens: Vec::with_capacity(records.len()),
        };
        for (meta, hash, len) in records {
            h.hashes.push(hash.to_le_bytes());
            h.time_deltas.push(meta.time_ms.wrapping_sub(prev_time));
            prev_time = meta.time_ms;
            h.categories.push(meta.category);
            h.lens.push(*len);
        }
        h
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// The records as the index sees them, with the attributes of their metadata (a record
    /// whose metadata is missing is indexed by time and eventID only).
    pub fn entries<'a>(&self, metas: &'a [Option<EventMeta>]) -> Vec<Entry<'a>> {
        let mut time = 0i64;
        (0..self.len())
            .map(|i| {
                time = time.wrapping_add(self.time_deltas[i]);
                Entry {
                    id_hash: u64::from_le_bytes(self.hashes[i]),
                    time_ms: time,
                    category: self.categories[i],
                    attrs: metas
                        .get(i)
                        .and_then(Option::as_ref)
                        .map(attributes)
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    fn check(&self) -> Result<(), StoreError> {
        let n = self.len();
        if self.time_deltas.len() == n && self.categories.len() == n && self.lens.len() == n {
            Ok(())
        } else {
            Err(StoreError::Decode("frame header columns disagree".into()))
        }
    }
}

const ZSTD_LEVEL: i32 = 3;

/// Encodes a frame; returns the payload and where the records start within it.
pub fn encode(header: &FrameHeader, records: &[Vec<u8>]) -> Result<(Vec<u8>, usize), StoreError> {
    let head = postcard::to_stdvec(header).map_err(|e| StoreError::Encode(e.to_string()))?;
    let head = zstd::bulk::compress(&head, ZSTD_LEVEL).map_err(StoreError::Compress)?;
    let total: usize = records.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(4 + head.len() + total);
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&head);
    let start = out.len();
    for r in records {
        out.extend_from_slice(r);
    }
    Ok((out, start))
}

/// Decodes a frame's header; returns it and where the records start within the payload.
pub fn decode_header(payload: &[u8]) -> Result<(FrameHeader, usize), StoreError> {
    let bad = || StoreError::Decode("truncated frame".into());
    let len_bytes: [u8; 4] = payload
        .get(..4)
        .ok_or_else(bad)?
        .try_into()
        .map_err(|_| bad())?;
    let head_len = u32::from_le_bytes(len_bytes) as usize;
    let head = payload.get(4..4 + head_len).ok_or_else(bad)?;
    let raw = zstd::stream::decode_all(head).map_err(StoreError::Compress)?;
    let header: FrameHeader =
        postcard::from_bytes(&raw).map_err(|e| StoreError::Decode(e.to_string()))?;
    header.check()?;
    let total: usize = header.lens.iter().map(|l| *l as usize).sum();
    if payload.len() != 4 + head_len + total {
        return Err(StoreError::Decode(
            "frame length does not match its header".into(),
        ));
    }
    Ok((header, 4 + head_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let n = cairn_event::normalise(
            br#"{"eventID":"e","eventTime":"2020-01-01T00:00:00Z","eventName":"X","eventSource":"s","resources":[{"ARN":"arn:aws:s3:::b/k","type":"AWS::S3::Object"}]}"#,
            "123456789012",
            0,
        )
        .unwrap();
        let header = FrameHeader::build(
            "123456789012",
            5,
            7,
            0,
            &[(&n.meta, 42, 3), (&n.meta, 43, 2)],
        );
        let (payload, start) = encode(&header, &[b"abc".to_vec(), b"de".to_vec()]).unwrap();
        let (back, start2) = decode_header(&payload).unwrap();
        assert_eq!(back, header);
        assert_eq!(start, start2);
        assert_eq!(&payload[start..], b"abcde");
        let metas = [Some(n.meta.clone()), None];
        let entries = back.entries(&metas);
        assert_eq!(entries[1].time_ms, n.meta.time_ms);
        assert_eq!(entries[1].id_hash, 43);
        assert!(entries[1].attrs.is_empty());
        assert!(
            entries[0]
                .attrs
                .contains(&(Attr::ResourceArn, "arn:aws:s3:::b/k"))
        );
        // The name derived from the ARN is not listed twice.
        assert!(
            !entries[0]
                .attrs
                .iter()
                .any(|(a, _)| *a == Attr::ResourceName)
        );
        assert!(entries[0].attrs.contains(&(Attr::EventName, "X")));
        assert!(decode_header(&payload[..payload.len() - 1]).is_err());
    }
}
