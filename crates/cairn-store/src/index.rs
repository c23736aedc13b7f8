//! The in-memory index of the event history, per account.
//!
//! Events are grouped into hourly buckets by event time. Within a bucket, slots are kept in
//! (event time, sequence) order, with a posting list per attribute value in the same order,
//! so a newest-first lookup walks a list backwards from the cursor and stops after a page.
//! Events that arrive out of time order (imports) go to a small unsorted tail that is merged
//! in once it grows past a fraction of the bucket, so the cost stays amortised.

use std::collections::{BTreeMap, VecDeque};

use hashbrown::HashMap;

use cairn_event::Category;
use cairn_journal::FrameLoc;

use crate::frame::{Attr, FrameHeader};

/// Sort key of an event: event time in milliseconds, then the journal sequence number.
pub type Key = (i64, u64);

const HOUR_MS: i64 = 3_600_000;

fn hour(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS)
}

pub fn id_hash(event_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(event_id.as_bytes())
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    time_ms: i64,
    frame: u32,
    rec: u32,
}

#[derive(Debug, Clone)]
struct FrameInfo {
    loc: FrameLoc,
    first_seq: u64,
    /// Offset of the first record in the segment file.
    records_start: u64,
    dict: u32,
    /// End of each record, relative to `records_start`.
    ends: Box<[u32]>,
}

/// Where a stored record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLoc {
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
    pub dict: u32,
    pub key: Key,
}

#[derive(Default)]
struct SlotTable {
    slots: VecDeque<Slot>,
    slot_base: u32,
    frames: VecDeque<FrameInfo>,
    frame_base: u32,
}

impl SlotTable {
    fn slot(&self, s: u32) -> Slot {
        self.slots[(s - self.slot_base) as usize]
    }

    fn frame(&self, f: u32) -> &FrameInfo {
        &self.frames[(f - self.frame_base) as usize]
    }

    fn key(&self, s: u32) -> Key {
        let slot = self.slot(s);
        (
            slot.time_ms,
            self.frame(slot.frame).first_seq + u64::from(slot.rec),
        )
    }

    fn loc(&self, s: u32) -> RecordLoc {
        let slot = self.slot(s);
        let frame = self.frame(slot.frame);
        let i = slot.rec as usize;
        let start = if i == 0 { 0 } else { frame.ends[i - 1] };
        RecordLoc {
            segment: frame.loc.segment,
            offset: frame.records_start + u64::from(start),
            len: frame.ends[i] - start,
            dict: frame.dict,
            key: (slot.time_ms, frame.first_seq + u64::from(slot.rec)),
        }
    }

    fn next_slot(&self) -> u32 {
        self.slot_base + self.slots.len() as u32
    }
}

#[derive(Default)]
struct Bucket {
    sorted: Vec<u32>,
    postings: HashMap<(Attr, u32), Vec<u32>>,
    /// Out-of-order arrivals, unsorted, with postings of their own.
    tail: Vec<u32>,
    tail_postings: HashMap<(Attr, u32), Vec<u32>>,
}

/// A resolved filter: the attribute must equal one of the values (interned ids).
pub struct Filter {
    pub attr: Attr,
    pub values: Vec<u32>,
}

enum List<'a> {
    Borrowed(&'a [u32]),
    Owned(Vec<u32>),
}

impl List<'_> {
    fn as_slice(&self) -> &[u32] {
        match self {
            List::Borrowed(s) => s,
            List::Owned(v) => v,
        }
    }
}

fn contains(list: &[u32], key: Key, table: &SlotTable) -> bool {
    list.binary_search_by(|s| table.key(*s).cmp(&key)).is_ok()
}

impl Bucket {
    fn insert(&mut self, slot: u32, key: Key, attrs: Vec<(Attr, u32)>, table: &SlotTable) {
        let in_order =
            self.tail.is_empty() && self.sorted.last().is_none_or(|last| table.key(*last) < key);
        if in_order {
            self.sorted.push(slot);
            for a in attrs {
                self.postings.entry(a).or_default().push(slot);
            }
            return;
        }
        self.tail.push(slot);
        for a in attrs {
            self.tail_postings.entry(a).or_default().push(slot);
        }
        if self.tail.len() > (self.sorted.len() / 8).max(64) {
            self.merge_tail(table);
        }
    }

    fn merge_tail(&mut self, table: &SlotTable) {
        let mut tail = std::mem::take(&mut self.tail);
        tail.sort_by_key(|s| table.key(*s));
        let merge = |old: &[u32], new: &[u32]| -> Vec<u32> {
            let mut out = Vec::with_capacity(old.len() + new.len());
            let (mut i, mut j) = (0, 0);
            while i < old.len() && j < new.len() {
                if table.key(old[i]) < table.key(new[j]) {
                    out.push(old[i]);
                    i += 1;
                } else {
                    out.push(new[j]);
                    j += 1;
                }
            }
            out.extend_from_slice(&old[i..]);
            out.extend_from_slice(&new[j..]);
            out
        };
        self.sorted = merge(&self.sorted, &tail);
        for (a, mut new) in std::mem::take(&mut self.tail_postings) {
            new.sort_by_key(|s| table.key(*s));
            let list = self.postings.entry(a).or_default();
            *list = merge(list, &new);
        }
    }

    fn list(&self, f: &Filter, table: &SlotTable) -> List<'_> {
        let mut lists: Vec<&[u32]> = f
            .values
            .iter()
            .filter_map(|v| self.postings.get(&(f.attr, *v)).map(Vec::as_slice))
            .collect();
        match lists.len() {
            0 => List::Borrowed(&[]),
            1 => List::Borrowed(lists[0]),
            _ => {
                let mut all: Vec<u32> = lists.drain(..).flatten().copied().collect();
                all.sort_by_key(|s| table.key(*s));
                all.dedup();
                List::Owned(all)
            }
        }
    }

    fn tail_has(&self, slot: u32, f: &Filter) -> bool {
        f.values.iter().any(|v| {
            self.tail_postings
                .get(&(f.attr, *v))
                .is_some_and(|l| l.contains(&slot))
        })
    }

    /// Tail slots matching every filter.
    fn tail_matches(&self, filters: &[Filter]) -> Vec<u32> {
        let Some((first, rest)) = filters.split_first() else {
            return self.tail.clone();
        };
        let mut candidates: Vec<u32> = first
            .values
            .iter()
            .filter_map(|v| self.tail_postings.get(&(first.attr, *v)))
            .flatten()
            .copied()
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        candidates.retain(|s| rest.iter().all(|f| self.tail_has(*s, f)));
        candidates
    }

    /// Whether the slot with this key matches every filter.
    fn matches(&self, slot: u32, key: Key, filters: &[Filter], table: &SlotTable) -> bool {
        if self.tail.contains(&slot) {
            return filters.iter().all(|f| self.tail_has(slot, f));
        }
        filters
            .iter()
            .all(|f| contains(self.list(f, table).as_slice(), key, table))
    }

    /// Appends to `out` up to `limit` matches with `lo <= key < hi`, newest first.
    fn query(
        &self,
        filters: &[Filter],
        lo: Key,
        hi: Key,
        limit: usize,
        table: &SlotTable,
        out: &mut Vec<(Key, u32)>,
    ) {
        let mut found: Vec<(Key, u32)> = Vec::new();
        let lists: Vec<List> = filters.iter().map(|f| self.list(f, table)).collect();
        let (driver, others): (&[u32], Vec<&[u32]>) = if lists.is_empty() {
            (&self.sorted, Vec::new())
        } else {
            let smallest = (0..lists.len())
                .min_by_key(|i| lists[*i].as_slice().len())
                .unwrap_or(0);
            (
                lists[smallest].as_slice(),
                (0..lists.len())
                    .filter(|i| *i != smallest)
                    .map(|i| lists[i].as_slice())
                    .collect(),
            )
        };
        let end = driver.partition_point(|s| table.key(*s) < hi);
        for &s in driver[..end].iter().rev() {
            let k = table.key(s);
            if k < lo || found.len() >= limit {
                break;
            }
            if others.iter().all(|l| contains(l, k, table)) {
                found.push((k, s));
            }
        }
        let mut from_tail = false;
        for s in self.tail_matches(filters) {
            let k = table.key(s);
            if k >= lo && k < hi {
                found.push((k, s));
                from_tail = true;
            }
        }
        if from_tail {
            found.sort_by_key(|f| std::cmp::Reverse(f.0));
            found.truncate(limit);
        }
        out.extend(found);
    }

    fn retain_from(&mut self, base: u32) {
        self.sorted.retain(|s| *s >= base);
        self.tail.retain(|s| *s >= base);
        for postings in [&mut self.postings, &mut self.tail_postings] {
            postings.retain(|_, l| {
                l.retain(|s| *s >= base);
                !l.is_empty()
            });
        }
    }

    fn is_empty(&self) -> bool {
        self.sorted.is_empty() && self.tail.is_empty()
    }
}

/// One account's event history.
#[derive(Default)]
pub struct AccountIndex {
    table: SlotTable,
    ids: HashMap<u64, u32>,
    /// Slots whose eventID hash collides with an earlier, different eventID (vanishingly rare).
    collisions: HashMap<u64, Vec<u32>>,
    strings: HashMap<Box<str>, u32>,
    /// The interned resource names each interned ARN stands for.
    arn_names: HashMap<u32, Box<[u32]>>,
    history: BTreeMap<i64, Bucket>,
    insights: BTreeMap<i64, Bucket>,
}

impl AccountIndex {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(id) = self.strings.get(s) {
            return *id;
        }
        let id = self.strings.len() as u32;
        self.strings.insert(s.into(), id);
        id
    }

    fn names_of_arn(&mut self, arn: &str) -> Box<[u32]> {
        let arn_id = self.intern(arn);
        if let Some(ids) = self.arn_names.get(&arn_id) {
            return ids.clone();
        }
        let mut names = Vec::new();
        cairn_event::arn_aliases(arn, &mut names);
        let ids: Box<[u32]> = names.iter().map(|n| self.intern(n)).collect();
        self.arn_names.insert(arn_id, ids.clone());
        ids
    }

    /// The interned id of a value, if any stored event carries it.
    pub fn value_id(&self, s: &str) -> Option<u32> {
        self.strings.get(s).copied()
    }

    /// Slots already holding an event with this eventID hash.
    pub fn slots_for_id(&self, hash: u64) -> Vec<u32> {
        let mut out: Vec<u32> = self.ids.get(&hash).copied().into_iter().collect();
        if let Some(more) = self.collisions.get(&hash) {
            out.extend(more);
        }
        out
    }

    pub fn loc(&self, slot: u32) -> RecordLoc {
        self.table.loc(slot)
    }

    pub fn is_empty(&self) -> bool {
        self.table.slots.is_empty()
    }

    /// Adds one frame's events. `records_start` is the file offset of its first record.
    pub fn add_frame(&mut self, loc: FrameLoc, records_start: u64, header: &FrameHeader) {
        let frame = self.table.frame_base + self.table.frames.len() as u32;
        let mut end = 0u32;
        let ends: Box<[u32]> = header
            .lens
            .iter()
            .map(|len| {
                end += len;
                end
            })
            .collect();
        self.table.frames.push_back(FrameInfo {
            loc,
            first_seq: header.first_seq,
            records_start,
            dict: header.dict,
            ends,
        });
        for (rec, e) in header.entries().into_iter().enumerate() {
            let slot = self.table.next_slot();
            self.table.slots.push_back(Slot {
                time_ms: e.time_ms,
                frame,
                rec: rec as u32,
            });
            if let Some(first) = self.ids.get(&e.id_hash).copied() {
                if first != slot {
                    self.collisions.entry(e.id_hash).or_default().push(slot);
                }
            } else {
                self.ids.insert(e.id_hash, slot);
            }
            let mut attrs: Vec<(Attr, u32)> = Vec::with_capacity(e.attrs.len() + 4);
            for (a, v) in &e.attrs {
                if *a == Attr::ResourceArn {
                    for id in self.names_of_arn(v).iter() {
                        if !attrs.contains(&(Attr::ResourceName, *id)) {
                            attrs.push((Attr::ResourceName, *id));
                        }
                    }
                } else {
                    let id = self.intern(v);
                    if !attrs.contains(&(*a, id)) {
                        attrs.push((*a, id));
                    }
                }
            }
            let key = (e.time_ms, header.first_seq + rec as u64);
            let buckets = if e.category == Category::Insight {
                &mut self.insights
            } else {
                &mut self.history
            };
            buckets
                .entry(hour(e.time_ms))
                .or_default()
                .insert(slot, key, attrs, &self.table);
        }
    }

    /// Up to `limit` events with `lo <= key < hi` matching all filters, newest first.
    pub fn query(
        &self,
        insights: bool,
        filters: &[Filter],
        lo: Key,
        hi: Key,
        limit: usize,
    ) -> Vec<(Key, u32)> {
        let mut out = Vec::new();
        if hi <= lo {
            return out;
        }
        let buckets = if insights {
            &self.insights
        } else {
            &self.history
        };
        let hi_hour = hour(if hi.1 == 0 { hi.0 - 1 } else { hi.0 });
        for (_, b) in buckets.range(hour(lo.0)..=hi_hour).rev() {
            b.query(filters, lo, hi, limit - out.len(), &self.table, &mut out);
            if out.len() >= limit {
                break;
            }
        }
        out
    }

    /// Whether a slot (found by eventID) matches the filters.
    pub fn slot_matches(&self, insights: bool, slot: u32, filters: &[Filter]) -> bool {
        let key = self.table.key(slot);
        let buckets = if insights {
            &self.insights
        } else {
            &self.history
        };
        buckets.get(&hour(key.0)).is_some_and(|b| {
            b.sorted_or_tail_contains(slot, key, &self.table)
                && b.matches(slot, key, filters, &self.table)
        })
    }

    /// Forgets every event stored in a journal segment older than `first_kept_segment`.
    /// Returns how many events were dropped.
    pub fn purge_before(&mut self, first_kept_segment: u64) -> usize {
        let t = &mut self.table;
        while t
            .frames
            .front()
            .is_some_and(|f| f.loc.segment < first_kept_segment)
        {
            t.frames.pop_front();
            t.frame_base += 1;
        }
        let mut dropped = 0;
        while t.slots.front().is_some_and(|s| s.frame < t.frame_base) {
            t.slots.pop_front();
            t.slot_base += 1;
            dropped += 1;
        }
        if dropped == 0 {
            return 0;
        }
        let base = t.slot_base;
        for buckets in [&mut self.history, &mut self.insights] {
            buckets.retain(|_, b| {
                b.retain_from(base);
                !b.is_empty()
            });
        }
        self.ids.retain(|_, s| *s >= base);
        self.collisions.retain(|_, l| {
            l.retain(|s| *s >= base);
            !l.is_empty()
        });
        dropped
    }
}

impl Bucket {
    fn sorted_or_tail_contains(&self, slot: u32, key: Key, table: &SlotTable) -> bool {
        contains(&self.sorted, key, table) || self.tail.contains(&slot)
    }
}
