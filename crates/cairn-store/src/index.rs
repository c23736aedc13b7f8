//! The in-memory index of the event history, per account.
//!
//! Every stored event has a slot (event time, where its record is). For the events of each
//! category class (API activity, Insights) there is one list of all slots, and one posting
//! list per attribute value, each in (event time, sequence) order, so that a newest-first
//! lookup walks a list backwards from its cursor and stops after a page.
//!
//! A posting list is a few sorted runs plus a small unsorted tail, kept like an LSM tree: an
//! event that arrives in time order is appended to the newest run; one that does not (imports,
//! clocks that disagree) waits in the tail, which is sorted into a run of its own once it
//! fills up, and runs of similar size are merged. So there are O(log n) runs, inserts cost
//! O(log n) amortised, and a value seen once costs one small list, not one per time bucket.
//!
//! Region, error code and source IP are in the records but not indexed in memory yet.

use std::borrow::Cow;
use std::collections::VecDeque;

use hashbrown::HashMap;

use cairn_event::{Category, EventMeta};
use cairn_journal::FrameLoc;

use crate::frame::{Attr, FrameHeader};

/// Sort key of an event: event time in milliseconds, then the journal sequence number.
pub type Key = (i64, u64);

pub fn id_hash(event_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(event_id.as_bytes())
}

fn short(hash: u64) -> u32 {
    (hash >> 32) as u32
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

const TAIL_MAX: usize = 64;

/// One posting list: sorted runs and an unsorted tail.
#[derive(Default)]
struct Postings {
    runs: Vec<Vec<u32>>,
    tail: Vec<u32>,
    len: usize,
}

fn merge(a: &[u32], b: &[u32], t: &SlotTable) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if t.key(a[i]) < t.key(b[j]) {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

impl Postings {
    fn push(&mut self, slot: u32, key: Key, t: &SlotTable) {
        self.len += 1;
        let after = |run: &Vec<u32>| run.last().is_none_or(|l| t.key(*l) < key);
        let append = self.tail.is_empty()
            && match self.runs.as_slice() {
                [] => true,
                [only] => after(only),
                [.., prev, last] => last.len() * 2 < prev.len() && after(last),
            };
        if append {
            match self.runs.last_mut() {
                Some(last) => last.push(slot),
                None => self.runs.push(vec![slot]),
            }
            return;
        }
        self.tail.push(slot);
        if self.tail.len() >= TAIL_MAX {
            self.flush(t);
        }
    }

    fn flush(&mut self, t: &SlotTable) {
        let mut run = std::mem::take(&mut self.tail);
        run.sort_unstable_by_key(|s| t.key(*s));
        self.runs.push(run);
        while self.runs.len() >= 2 {
            let n = self.runs.len();
            if self.runs[n - 2].len() > 2 * self.runs[n - 1].len() {
                break;
            }
            let (Some(b), Some(a)) = (self.runs.pop(), self.runs.pop()) else {
                break;
            };
            self.runs.push(merge(&a, &b, t));
        }
    }

    /// The runs, and the tail sorted, as lists to walk.
    fn lists(&self, t: &SlotTable) -> Vec<Cow<'_, [u32]>> {
        let mut out: Vec<Cow<[u32]>> = self
            .runs
            .iter()
            .map(|r| Cow::Borrowed(r.as_slice()))
            .collect();
        if !self.tail.is_empty() {
            let mut tail = self.tail.clone();
            tail.sort_unstable_by_key(|s| t.key(*s));
            out.push(Cow::Owned(tail));
        }
        out
    }

    fn retain_from(&mut self, base: u32) {
        for r in &mut self.runs {
            r.retain(|s| *s >= base);
        }
        self.runs.retain(|r| !r.is_empty());
        self.tail.retain(|s| *s >= base);
        self.len = self.runs.iter().map(Vec::len).sum::<usize>() + self.tail.len();
    }
}

/// A resolved filter: the attribute must equal one of the values (interned ids).
pub struct Filter {
    pub attr: Attr,
    pub values: Vec<u32>,
}

/// Walks several sorted lists together, newest first, from below an exclusive bound.
struct Cursor<'a> {
    lists: Vec<Cow<'a, [u32]>>,
    pos: Vec<usize>,
    last: Option<Key>,
}

impl<'a> Cursor<'a> {
    fn new(lists: Vec<Cow<'a, [u32]>>, hi: Key, t: &SlotTable) -> Cursor<'a> {
        let pos = lists
            .iter()
            .map(|l| l.partition_point(|s| t.key(*s) < hi))
            .collect();
        Cursor {
            lists,
            pos,
            last: None,
        }
    }

    /// The next slot, newest first (a slot in several lists comes once).
    fn next(&mut self, t: &SlotTable) -> Option<(Key, u32)> {
        loop {
            let mut best: Option<(Key, usize)> = None;
            for (i, l) in self.lists.iter().enumerate() {
                if self.pos[i] > 0 {
                    let k = t.key(l[self.pos[i] - 1]);
                    if best.is_none_or(|(b, _)| k > b) {
                        best = Some((k, i));
                    }
                }
            }
            let (k, i) = best?;
            self.pos[i] -= 1;
            if self.last == Some(k) {
                continue;
            }
            self.last = Some(k);
            return Some((k, self.lists[i][self.pos[i]]));
        }
    }

    /// Whether some list holds `key`. Keys asked must not increase from call to call: the
    /// positions only move down (by galloping), so a walk costs O(log gap) a step.
    fn contains(&mut self, key: Key, t: &SlotTable) -> bool {
        let mut found = false;
        for (i, l) in self.lists.iter().enumerate() {
            let pos = self.pos[i];
            // Gallop down to a position whose element is below `key`.
            let mut step = 1;
            let mut lo = pos;
            while lo > 0 && t.key(l[lo - 1]) >= key {
                lo = pos.saturating_sub(step);
                step *= 2;
            }
            // Elements in [lo, pos) straddle `key`: find the first not below it.
            let p = lo + l[lo..pos].partition_point(|s| t.key(*s) < key);
            if p < pos && t.key(l[p]) == key {
                found = true;
            }
            self.pos[i] = p;
        }
        found
    }

    fn len(&self) -> usize {
        self.lists.iter().map(|l| l.len()).sum()
    }
}

/// One account's event history.
#[derive(Default)]
pub struct AccountIndex {
    table: SlotTable,
    /// Slot of the first event with each 32-bit eventID hash. 32 bits keep the map small;
    /// every match is confirmed against the stored record, so collisions (about one per
    /// 400,000 events at 10 M) cost a read, never a wrong answer.
    ids: HashMap<u32, u32>,
    /// Further slots whose eventID hash matches an earlier one.
    collisions: HashMap<u32, Vec<u32>>,
    strings: HashMap<Box<str>, u32>,
    /// The interned resource names each interned ARN stands for.
    arn_names: HashMap<u32, Box<[u32]>>,
    /// Per category class (0: API activity, 1: Insights): all slots, and per value.
    all: [Postings; 2],
    by_value: [HashMap<(Attr, u32), Postings>; 2],
}

fn class(insights: bool) -> usize {
    usize::from(insights)
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
        let hash = short(hash);
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
    pub fn add_frame(
        &mut self,
        loc: FrameLoc,
        records_start: u64,
        header: &FrameHeader,
        metas: &[Option<EventMeta>],
    ) {
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
        for (rec, e) in header.entries(metas).into_iter().enumerate() {
            let slot = self.table.next_slot();
            self.table.slots.push_back(Slot {
                time_ms: e.time_ms,
                frame,
                rec: rec as u32,
            });
            let hash = short(e.id_hash);
            if let Some(first) = self.ids.get(&hash).copied() {
                if first != slot {
                    self.collisions.entry(hash).or_default().push(slot);
                }
            } else {
                self.ids.insert(hash, slot);
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
            let c = class(e.category == Category::Insight);
            self.all[c].push(slot, key, &self.table);
            for a in attrs {
                self.by_value[c]
                    .entry(a)
                    .or_default()
                    .push(slot, key, &self.table);
            }
        }
    }

    /// Cursors for each filter (the union of its values' lists), or `None` when a filter
    /// matches nothing.
    fn cursors(&self, c: usize, filters: &[Filter], hi: Key) -> Option<Vec<Cursor<'_>>> {
        let mut out = Vec::with_capacity(filters.len());
        for f in filters {
            let lists: Vec<Cow<[u32]>> = f
                .values
                .iter()
                .filter_map(|v| self.by_value[c].get(&(f.attr, *v)))
                .flat_map(|p| p.lists(&self.table))
                .collect();
            if lists.is_empty() {
                return None;
            }
            out.push(Cursor::new(lists, hi, &self.table));
        }
        Some(out)
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
        let c = class(insights);
        let t = &self.table;
        let Some(mut cursors) = self.cursors(c, filters, hi) else {
            return out;
        };
        // Walk the shortest list; check the others as it goes.
        let mut driver = match (0..cursors.len()).min_by_key(|i| cursors[*i].len()) {
            Some(i) => cursors.swap_remove(i),
            None => Cursor::new(self.all[c].lists(t), hi, t),
        };
        while out.len() < limit {
            let Some((k, s)) = driver.next(t) else { break };
            if k < lo {
                break;
            }
            if cursors.iter_mut().all(|o| o.contains(k, t)) {
                out.push((k, s));
            }
        }
        out
    }

    /// Whether a slot (found by eventID) is of the class asked and matches the filters.
    pub fn slot_matches(&self, insights: bool, slot: u32, filters: &[Filter]) -> bool {
        let c = class(insights);
        let t = &self.table;
        let key = t.key(slot);
        let above = (key.0, key.1 + 1);
        let in_class = Cursor::new(self.all[c].lists(t), above, t).contains(key, t);
        in_class
            && self
                .cursors(c, filters, above)
                .is_some_and(|mut cs| cs.iter_mut().all(|cur| cur.contains(key, t)))
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
        for c in 0..2 {
            self.all[c].retain_from(base);
            self.by_value[c].retain(|_, p| {
                p.retain_from(base);
                p.len > 0
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
