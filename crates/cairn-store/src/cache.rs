//! A bounded cache of decompressed frames, so a page of lookups that falls in a few frames
//! decompresses each once. Eviction is first-in first-out, by decompressed bytes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use cairn_journal::FrameLoc;

use crate::StoreError;
use crate::frame::Records;

struct Inner {
    map: HashMap<FrameLoc, Arc<Records>>,
    order: VecDeque<FrameLoc>,
    bytes: usize,
}

pub struct FrameCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

impl FrameCache {
    pub fn new(capacity: usize) -> FrameCache {
        FrameCache {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
            capacity,
        }
    }

    pub fn get_or_load(
        &self,
        loc: FrameLoc,
        load: impl FnOnce() -> Result<Records, StoreError>,
    ) -> Result<Arc<Records>, StoreError> {
        if let Some(r) = self.inner.lock().map.get(&loc) {
            return Ok(r.clone());
        }
        let records = Arc::new(load()?);
        let mut inner = self.inner.lock();
        if inner.map.insert(loc, records.clone()).is_none() {
            inner.order.push_back(loc);
            inner.bytes += records.bytes();
        }
        while inner.bytes > self.capacity && inner.order.len() > 1 {
            if let Some(old) = inner.order.pop_front()
                && let Some(r) = inner.map.remove(&old)
            {
                inner.bytes -= r.bytes();
            }
        }
        Ok(records)
    }
}
