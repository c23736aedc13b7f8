//! cairn-journal
