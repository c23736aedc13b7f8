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
//! Counting events per time bucket (the console's histogram) needs no walk when the events
//! counted are one list or disjoint lists (no filter, or one attribute that a record has at
//! most one value of): each sorted run is cut at the bucket boundaries by binary search.
//! Otherwise the shortest filter list is walked as a lookup walks it.

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

/// Where an event sorts among its account's events: event time, then slot number. Slots are
/// numbered in journal order, as sequence numbers are, so this is the order of [`Key`]
/// without going through the frame for the sequence number.
type Pos = (i64, u64);

#[derive(Debug, Clone)]
struct FrameInfo {
    loc: FrameLoc,
    first_seq: u64,
    /// The slot of the first record.
    first_slot: u32,
    /// Offset of the first record in the segment file.
    records_start: u64,
    dict: u32,
    /// End of each record, relative to `records_start`.
    ends: Box<[u32]>,
}

impl FrameInfo {
    fn end_seq(&self) -> u64 {
        self.first_seq + self.ends.len() as u64
    }
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

/// The events of an account in slot order: each one's event time (8 bytes a slot), and the
/// frames, each with its first slot, to find a slot's record by binary search.
#[derive(Default)]
struct SlotTable {
    times: VecDeque<i64>,
    slot_base: u32,
    frames: VecDeque<FrameInfo>,
}

impl SlotTable {
    fn time(&self, s: u32) -> i64 {
        self.times[(s - self.slot_base) as usize]
    }

    fn key(&self, s: u32) -> Pos {
        (self.time(s), u64::from(s))
    }

    fn frame_of(&self, s: u32) -> &FrameInfo {
        let i = self.frames.partition_point(|f| f.first_slot <= s);
        &self.frames[i - 1]
    }

    fn loc(&self, s: u32) -> RecordLoc {
        let frame = self.frame_of(s);
        let i = (s - frame.first_slot) as usize;
        let start = if i == 0 { 0 } else { frame.ends[i - 1] };
        RecordLoc {
            segment: frame.loc.segment,
            offset: frame.records_start + u64::from(start),
            len: frame.ends[i] - start,
            dict: frame.dict,
            key: (self.time(s), frame.first_seq + i as u64),
        }
    }

    /// The position that sorts as `key` does among the account's events: the first slot
    /// whose sequence number is `key`'s or later stands for it.
    fn pos(&self, key: Key) -> Pos {
        let (time, seq) = key;
        let i = self.frames.partition_point(|f| f.end_seq() <= seq);
        let slot = match self.frames.get(i) {
            Some(f) if seq >= f.first_seq => f.first_slot + (seq - f.first_seq) as u32,
            Some(f) => f.first_slot,
            None => self.next_slot(),
        };
        (time, u64::from(slot))
    }

    fn next_slot(&self) -> u32 {
        self.slot_base + self.times.len() as u32
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
    fn push(&mut self, slot: u32, key: Pos, t: &SlotTable) {
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

    /// Adds, per bucket, the entries whose event time lies in it.
    fn count_into(&self, t: &SlotTable, tally: &mut Tally) {
        let Some(first) = tally.bounds.first().copied() else {
            return;
        };
        for run in &self.runs {
            // The position of each edge, searching only what is left of the run.
            let mut at = run.partition_point(|s| t.time(*s) < first);
            for (i, edge) in tally.bounds[1..].iter().enumerate() {
                let n = run[at..].partition_point(|s| t.time(*s) < *edge);
                tally.counts[i] += n as u64;
                at += n;
                if at == run.len() {
                    break;
                }
            }
        }
        for s in &self.tail {
            tally.add(t.time(*s));
        }
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
    last: Option<Pos>,
}

impl<'a> Cursor<'a> {
    fn new(lists: Vec<Cow<'a, [u32]>>, hi: Pos, t: &SlotTable) -> Cursor<'a> {
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
    fn next(&mut self, t: &SlotTable) -> Option<(Pos, u32)> {
        loop {
            let mut best: Option<(Pos, usize)> = None;
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
    fn contains(&mut self, key: Pos, t: &SlotTable) -> bool {
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

    /// How many entries (counting an entry in several lists each time) lie below the
    /// cursor's position and at or above `lo`.
    fn len_from(&self, lo: Pos, t: &SlotTable) -> usize {
        self.lists
            .iter()
            .zip(&self.pos)
            .map(|(l, p)| p - l[..*p].partition_point(|s| t.key(*s) < lo))
            .sum()
    }
}

/// Per-bucket counts being filled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// The buckets' edges, increasing: bucket `i` is `[bounds[i], bounds[i + 1])`.
    pub bounds: Vec<i64>,
    /// One count per bucket.
    pub counts: Vec<u64>,
}

impl Tally {
    /// A tally of the buckets between these edges, all zero.
    pub fn new(bounds: Vec<i64>) -> Tally {
        let counts = vec![0; bounds.len().saturating_sub(1)];
        Tally { bounds, counts }
    }

    /// Counts an event at `time` (nothing outside the buckets).
    pub fn add(&mut self, time: i64) {
        let i = self.bounds.partition_point(|b| *b <= time);
        if i > 0 && i < self.bounds.len() {
            self.counts[i - 1] += 1;
        }
    }
}

/// Where a counting walk got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walked {
    /// Every event from `lo` on was counted.
    Done,
    /// The walk stopped at its step limit: events with keys from this one on (and below the
    /// `hi` it was given) are counted; resume below it.
    Stopped(Key),
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
        self.table.times.is_empty()
    }

    /// Adds one frame's events. `records_start` is the file offset of its first record.
    pub fn add_frame(
        &mut self,
        loc: FrameLoc,
        records_start: u64,
        header: &FrameHeader,
        metas: &[Option<EventMeta>],
    ) {
        // Slot order must be sequence order (see `Pos`): the journal hands frames out so.
        debug_assert!(
            self.table
                .frames
                .back()
                .is_none_or(|f| f.end_seq() <= header.first_seq)
        );
        let first_slot = self.table.next_slot();
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
            first_slot,
            records_start,
            dict: header.dict,
            ends,
        });
        for e in header.entries(metas) {
            let slot = self.table.next_slot();
            self.table.times.push_back(e.time_ms);
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
            let key = self.table.key(slot);
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
    fn cursors(&self, c: usize, filters: &[Filter], hi: Pos) -> Option<Vec<Cursor<'_>>> {
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

    /// The slots of up to `limit` events with `lo <= key < hi` matching all filters, newest
    /// first.
    pub fn query(
        &self,
        insights: bool,
        filters: &[Filter],
        lo: Key,
        hi: Key,
        limit: usize,
    ) -> Vec<u32> {
        let mut out = Vec::new();
        let t = &self.table;
        let (lo, hi) = (t.pos(lo), t.pos(hi));
        if hi <= lo {
            return out;
        }
        let c = class(insights);
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
                out.push(s);
            }
        }
        out
    }

    /// Whether per-bucket counts of the events matching `filters` can be read from the
    /// posting lists' runs without a walk: with no filter, or with one filter whose lists
    /// never share an event (one value, or an attribute a record has one value of at most).
    pub fn countable_without_walk(filters: &[Filter]) -> bool {
        match filters {
            [] => true,
            [f] => f.values.len() == 1 || f.attr.single_valued(),
            _ => false,
        }
    }

    /// Counts the events matching `filters`, which must be countable without a walk.
    pub fn count_lists(&self, insights: bool, filters: &[Filter], tally: &mut Tally) {
        let c = class(insights);
        match filters {
            [] => self.all[c].count_into(&self.table, tally),
            [f] => {
                for v in &f.values {
                    if let Some(p) = self.by_value[c].get(&(f.attr, *v)) {
                        p.count_into(&self.table, tally);
                    }
                }
            }
            _ => debug_assert!(false, "several filters need a walk"),
        }
    }

    /// How many steps a counting walk from below `hi` down to `lo` takes: the entries of the
    /// shortest filter's lists in that range (of all events, without filters).
    pub fn walk_len(&self, insights: bool, filters: &[Filter], lo: Key, hi: Key) -> usize {
        let c = class(insights);
        let t = &self.table;
        let (lo, hi) = (t.pos(lo), t.pos(hi));
        match self.cursors(c, filters, hi) {
            None => 0,
            Some(cursors) if cursors.is_empty() => {
                Cursor::new(self.all[c].lists(t), hi, t).len_from(lo, t)
            }
            Some(cursors) => cursors
                .iter()
                .map(|cur| cur.len_from(lo, t))
                .min()
                .unwrap_or(0),
        }
    }

    /// Counts the events with `lo <= key < hi` matching all filters, walking the filter
    /// list with the fewest entries in that range newest first, for at most `max_steps` steps.
    pub fn count_walk(
        &self,
        insights: bool,
        filters: &[Filter],
        (lo, hi): (Key, Key),
        tally: &mut Tally,
        max_steps: usize,
    ) -> Walked {
        let t = &self.table;
        let (lo, hi) = (t.pos(lo), t.pos(hi));
        if hi <= lo {
            return Walked::Done;
        }
        let c = class(insights);
        let Some(mut cursors) = self.cursors(c, filters, hi) else {
            return Walked::Done;
        };
        let mut driver = match (0..cursors.len()).min_by_key(|i| cursors[*i].len_from(lo, t)) {
            Some(i) => cursors.swap_remove(i),
            None => Cursor::new(self.all[c].lists(t), hi, t),
        };
        let mut steps = 0;
        while let Some((k, s)) = driver.next(t) {
            if k < lo {
                return Walked::Done;
            }
            if cursors.iter_mut().all(|o| o.contains(k, t)) {
                tally.add(k.0);
            }
            steps += 1;
            if steps >= max_steps {
                return Walked::Stopped(t.loc(s).key);
            }
        }
        Walked::Done
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
        }
        let first_kept = t.frames.front().map_or(t.next_slot(), |f| f.first_slot);
        let dropped = (first_kept - t.slot_base) as usize;
        t.times.drain(..dropped);
        t.slot_base = first_kept;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An account's index with `frames` frames of `per` events each, frame `f` in segment `f`
    /// and its sequence numbers after a gap (other accounts' events), event `i` at minute `i`.
    fn index(frames: u64, per: u64) -> AccountIndex {
        let mut acct = AccountIndex::default();
        for f in 0..frames {
            let metas: Vec<EventMeta> = (0..per)
                .map(|r| {
                    let i = f * per + r;
                    let raw = format!(
                        r#"{{"eventID":"e{i}","eventTime":"{}","eventName":"N{}","eventSource":"s","awsRegion":"r{}"}}"#,
                        cairn_event::format_event_time(i as i64 * 60_000),
                        i % 2,
                        i % 3
                    );
                    cairn_event::normalise(raw.as_bytes(), "111122223333", 0)
                        .unwrap()
                        .meta
                })
                .collect();
            let recs: Vec<(&EventMeta, u64, u32)> = metas
                .iter()
                .map(|m| (m, id_hash(&m.event_id), 10))
                .collect();
            let header = FrameHeader::build("111122223333", 0, f * (per + 5), 0, &recs);
            let loc = FrameLoc {
                segment: f,
                offset: 0,
                len: 0,
            };
            let metas: Vec<Option<EventMeta>> = metas.into_iter().map(Some).collect();
            acct.add_frame(loc, 100, &header, &metas);
        }
        acct
    }

    fn filter(acct: &AccountIndex, attr: Attr, value: &str) -> Filter {
        Filter {
            attr,
            values: vec![acct.value_id(value).unwrap()],
        }
    }

    fn minutes(acct: &AccountIndex, slots: &[u32]) -> Vec<i64> {
        slots.iter().map(|s| acct.loc(*s).key.0 / 60_000).collect()
    }

    #[test]
    fn keys_bound_by_sequence_number_and_survive_retention() {
        let mut acct = index(4, 3);
        let all = acct.query(false, &[], (i64::MIN, 0), (i64::MAX, 0), 100);
        assert_eq!(minutes(&acct, &all), (0..12).rev().collect::<Vec<_>>());
        // Each record is where its frame says, with its own sequence number.
        let loc = acct.loc(all[0]);
        assert_eq!(
            (loc.segment, loc.offset, loc.len, loc.key.1),
            (3, 120, 10, 3 * 8 + 2)
        );
        // Resuming below an event's key (time, seq) leaves that event out, and only it.
        let below = acct.query(false, &[], (i64::MIN, 0), loc.key, 100);
        assert_eq!(below, all[1..]);
        // A sequence number of another account's event (in a gap) bounds as well.
        let gap = acct.query(false, &[], (i64::MIN, 0), (11 * 60_000, 3 * 8 - 1), 100);
        assert_eq!(minutes(&acct, &gap), (0..11).rev().collect::<Vec<_>>());

        assert_eq!(acct.purge_before(2), 6);
        let kept = acct.query(false, &[], (i64::MIN, 0), (i64::MAX, 0), 100);
        assert_eq!(minutes(&acct, &kept), (6..12).rev().collect::<Vec<_>>());
        assert!(acct.slots_for_id(id_hash("e5")).is_empty());
        assert_eq!(acct.slots_for_id(id_hash("e6")), [kept[5]]);
        let n1 = filter(&acct, Attr::EventName, "N1");
        let got = acct.query(false, &[n1], (i64::MIN, 0), (i64::MAX, 0), 100);
        assert_eq!(minutes(&acct, &got), [11, 9, 7]);
        // A key of a dropped event still bounds.
        let old = acct.query(false, &[], (i64::MIN, 0), (3 * 60_000, 5), 100);
        assert!(old.is_empty());

        let mut tally = Tally::new(vec![0, 8 * 60_000, 10 * 60_000, 11 * 60_000]);
        acct.count_lists(false, &[], &mut tally);
        assert_eq!(tally.counts, [2, 2, 1]);
        assert_eq!(acct.purge_before(9), 6);
        assert!(acct.is_empty());
        assert!(
            acct.query(false, &[], (i64::MIN, 0), (i64::MAX, 0), 100)
                .is_empty()
        );
    }

    #[test]
    fn counting_walks_stop_where_asked_and_resume() {
        let acct = index(10, 10);
        let filters = [
            filter(&acct, Attr::EventName, "N0"),
            filter(&acct, Attr::AwsRegion, "r1"),
        ];
        assert!(!AccountIndex::countable_without_walk(&filters));
        assert!(AccountIndex::countable_without_walk(&filters[..1]));
        let bounds: Vec<i64> = (0..=10).map(|i| i * 600_000).collect();
        let mut whole = Tally::new(bounds.clone());
        let range = ((0, 0), (i64::MAX, 0));
        assert_eq!(
            acct.count_walk(false, &filters, range, &mut whole, usize::MAX),
            Walked::Done
        );
        // Minutes that are even and 1 modulo 3: 4, 10, 16, ...
        let expected: Vec<u64> = (0..10)
            .map(|b| (b * 10..b * 10 + 10).filter(|m| m % 6 == 4).count() as u64)
            .collect();
        assert_eq!(whole.counts, expected);
        let mut steps = Tally::new(bounds);
        let mut hi = range.1;
        let mut walks = 0;
        while let Walked::Stopped(at) =
            acct.count_walk(false, &filters, (range.0, hi), &mut steps, 3)
        {
            assert!(at < hi);
            hi = at;
            walks += 1;
        }
        assert_eq!(steps, whole);
        assert!(walks >= 5, "{walks}");
        // A walk goes along the shorter list: region r1's 33 events, not N0's 50.
        assert_eq!(acct.walk_len(false, &filters, range.0, range.1), 33);
    }
}
