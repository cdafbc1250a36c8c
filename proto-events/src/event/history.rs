//! Facts about the log itself rather than about the inbox.
//!
//! Stream: `history`.

use serde::{Deserialize, Serialize};

/// `switchboard import --rechain` stored a copy of a history under new hashes and commit times:
/// the copy's own hash chain did not verify (an edited or partial export) or was not to be
/// kept, so the store chained the events anew. Recorded before the imported events (so that a
/// store whose import stopped half-way says so too): an auditor sees that the hashes after it
/// are not the original history's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRechained {
    /// Who ran the import, as they named themselves on the command line (`--by`): the import runs
    /// outside the API, with no signed-in user.
    pub by: String,
    /// Why (`--reason`).
    pub reason: String,
    /// How many events the import was to write, right after this one.
    pub events: u64,
    /// The first input position whose hash did not verify, and why; `None` when the input's chain
    /// verified and was re-hashed anyway.
    pub broken_at: Option<BrokenChain>,
    /// The hash the input's last event claimed (lower-case hex), if it had one.
    pub input_head_hash: Option<String>,
}

/// Where an imported chain stopped verifying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenChain {
    /// The input's position of the first event that did not verify.
    pub position: u64,
    /// What was wrong there.
    pub reason: String,
}
