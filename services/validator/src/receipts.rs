//! The node's own record of the results the hub acknowledged ("receipts"), in a
//! JSON-lines file next to its key. The reward the node expects is computed from
//! it, so it must survive restarts and never depend on what the hub later says.
//!
//! ```text
//! {"kind":"start","started_at_ms":…,"payout_address":"0x…","payout_constant":true}
//! {"kind":"settled","eon":3,"last_round":18,"agreed":12,"expected":"12000000000000"}
//! {"kind":"ack","round":19,"assignment_id":77,"status":"up","signature":"…"}
//! ```
//!
//! Acknowledgements are appended as they arrive; settling an eon folds the receipts
//! of its rounds into the `settled` line and rewrites the file, so it stays small.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use overlaps_shared::eth::U256;
use overlaps_shared::protocol::CheckStatus;
use serde::{Deserialize, Serialize};

/// Why the receipt file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// One result the hub acknowledged as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The round of the assignment.
    pub round: i64,
    /// The assignment answered.
    pub assignment_id: i64,
    /// What this node reported.
    pub status: CheckStatus,
    /// This node's signature over the result, hex.
    pub signature: String,
}

/// The reward expected from every receipt up to an eon's last round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settled {
    /// The eon checked.
    pub eon: u64,
    /// Its last round: receipts up to it are counted here.
    pub last_round: i64,
    /// Receipts that agreed with their site's majority, in all.
    pub agreed: u64,
    /// The cumulative reward they earn, in the chain's smallest unit.
    #[serde(with = "decimal")]
    pub expected: U256,
}

/// When the record began, at which hub and which payout address it has known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start {
    /// When the file was created, Unix milliseconds.
    pub started_at_ms: i64,
    /// The payout address the node had then.
    pub payout_address: String,
    /// No other payout address was used since.
    pub payout_constant: bool,
    /// The hub and the validator id it gave this key, from the first signup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<HubIdentity>,
}

/// Who the receipts were acknowledged by: the hub id and this key's id there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubIdentity {
    /// The hub id from `hello`.
    pub hub_id: String,
    /// The id from `signed_up`.
    pub validator_id: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Line {
    Start(Start),
    Settled(Settled),
    Ack(Receipt),
}

/// U256 as a decimal string: JSON numbers lose precision past 2^53.
mod decimal {
    use overlaps_shared::eth::U256;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        let text = String::deserialize(d)?;
        U256::from_dec_str(&text).map_err(serde::de::Error::custom)
    }
}

/// The receipt file shared by the connection (which records) and the reward check
/// (which settles); a panic elsewhere must not lose the record, so a poisoned lock
/// is taken over.
pub fn lock(shared: &Mutex<ReceiptJournal>) -> MutexGuard<'_, ReceiptJournal> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The receipt file, loaded.
#[derive(Debug)]
pub struct ReceiptJournal {
    path: PathBuf,
    payout: String,
    start: Start,
    settled: Option<Settled>,
    pending: BTreeMap<i64, Receipt>,
    file: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReceiptError + '_ {
    move |source| ReceiptError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl ReceiptJournal {
    /// Opens (or creates) the file at `path` for a node paying to `payout`.
    pub fn open(path: &Path, payout: &str) -> Result<Self, ReceiptError> {
        let (mut start, mut settled, mut pending) = (None, None, BTreeMap::new());
        match File::open(path) {
            Ok(file) => {
                for (number, line) in BufReader::new(file).lines().enumerate() {
                    let line = line.map_err(io(path))?;
                    match serde_json::from_str::<Line>(&line) {
                        Ok(Line::Start(s)) => start = Some(s),
                        Ok(Line::Settled(s)) => settled = Some(s),
                        Ok(Line::Ack(r)) => {
                            pending.insert(r.assignment_id, r);
                        }
                        // A line torn by a crash mid-write: the rewrite below drops it.
                        Err(err) => tracing::warn!(path = %path.display(), line = number + 1,
                            error = %err, "skipped an unreadable receipt line"),
                    }
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(io(path)(err)),
        }
        let mut start = start.unwrap_or_else(|| new_start(payout));
        if !start.payout_address.eq_ignore_ascii_case(payout) {
            start.payout_constant = false;
        }
        if let Some(settled) = &settled {
            pending.retain(|_, r| r.round > settled.last_round);
        }
        let file = rewrite(path, &start, settled.as_ref(), pending.values())?;
        Ok(ReceiptJournal {
            path: path.to_owned(),
            payout: payout.to_owned(),
            start,
            settled,
            pending,
            file,
        })
    }

    /// Appends receipts the hub just acknowledged.
    pub fn record(
        &mut self,
        receipts: impl IntoIterator<Item = Receipt>,
    ) -> Result<(), ReceiptError> {
        let mut text = String::new();
        for receipt in receipts {
            if self
                .settled
                .as_ref()
                .is_some_and(|s| receipt.round <= s.last_round)
            {
                continue;
            }
            text.push_str(&serde_json::to_string(&Line::Ack(receipt.clone())).unwrap_or_default());
            text.push('\n');
            self.pending.insert(receipt.assignment_id, receipt);
        }
        if !text.is_empty() {
            self.file
                .write_all(text.as_bytes())
                .map_err(io(&self.path))?;
        }
        Ok(())
    }

    /// The receipts of rounds up to `last_round` not yet settled.
    pub fn unsettled_through(&self, last_round: i64) -> Vec<Receipt> {
        self.pending
            .values()
            .filter(|r| r.round <= last_round)
            .cloned()
            .collect()
    }

    /// The latest settled expectation, if any.
    pub fn settled(&self) -> Option<&Settled> {
        self.settled.as_ref()
    }

    /// When the record began and which payout address it has known.
    pub fn start(&self) -> &Start {
        &self.start
    }

    /// Records the hub that acknowledges this node's results (at every signup). A hub
    /// that knows this key under another id, or another hub, has none of the recorded
    /// history: the file is kept aside (its path is returned) and a new record begins.
    pub fn bind(&mut self, hub: HubIdentity) -> Result<Option<PathBuf>, ReceiptError> {
        match &self.start.hub {
            Some(known) if *known == hub => return Ok(None),
            None => {
                self.start.hub = Some(hub);
                self.rewrite()?;
                return Ok(None);
            }
            Some(_) => {}
        }
        let aside = self.path.with_extension(format!(
            "receipts.{}",
            chrono::Utc::now().timestamp_millis()
        ));
        std::fs::rename(&self.path, &aside).map_err(io(&aside))?;
        self.start = Start {
            hub: Some(hub),
            ..new_start(&self.payout)
        };
        self.settled = None;
        self.pending.clear();
        self.rewrite()?;
        Ok(Some(aside))
    }

    fn rewrite(&mut self) -> Result<(), ReceiptError> {
        self.file = rewrite(
            &self.path,
            &self.start,
            self.settled.as_ref(),
            self.pending.values(),
        )?;
        Ok(())
    }

    /// Folds the receipts up to `settled.last_round` into `settled` and rewrites the file.
    pub fn settle(&mut self, settled: Settled) -> Result<(), ReceiptError> {
        self.pending.retain(|_, r| r.round > settled.last_round);
        self.settled = Some(settled);
        self.rewrite()
    }
}

fn new_start(payout: &str) -> Start {
    Start {
        started_at_ms: chrono::Utc::now().timestamp_millis(),
        payout_address: payout.to_owned(),
        payout_constant: true,
        hub: None,
    }
}

/// Writes the whole record to a temporary file and renames it over `path`, so a
/// crash leaves either the old file or the new one.
fn rewrite<'a>(
    path: &Path,
    start: &Start,
    settled: Option<&Settled>,
    pending: impl Iterator<Item = &'a Receipt>,
) -> Result<File, ReceiptError> {
    let mut text = serde_json::to_string(&Line::Start(start.clone())).unwrap_or_default();
    text.push('\n');
    if let Some(settled) = settled {
        text.push_str(&serde_json::to_string(&Line::Settled(settled.clone())).unwrap_or_default());
        text.push('\n');
    }
    for receipt in pending {
        text.push_str(&serde_json::to_string(&Line::Ack(receipt.clone())).unwrap_or_default());
        text.push('\n');
    }
    let temporary = path.with_extension("receipts-new");
    let mut file = File::create(&temporary).map_err(io(&temporary))?;
    file.write_all(text.as_bytes()).map_err(io(&temporary))?;
    file.sync_all().map_err(io(&temporary))?;
    std::fs::rename(&temporary, path).map_err(io(path))?;
    OpenOptions::new().append(true).open(path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path() -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        std::env::temp_dir().join(format!("overlaps-receipts-{}-{nanos}", std::process::id()))
    }

    fn receipt(round: i64, assignment_id: i64) -> Receipt {
        Receipt {
            round,
            assignment_id,
            status: CheckStatus::Up,
            signature: "ab".repeat(64),
        }
    }

    const PAYOUT: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

    #[test]
    fn receipts_survive_a_restart_and_settled_ones_are_folded_away() {
        let path = temp_path();
        let mut journal = ReceiptJournal::open(&path, PAYOUT).unwrap();
        let started = journal.start().started_at_ms;
        journal
            .record([receipt(1, 10), receipt(2, 20), receipt(3, 30)])
            .unwrap();
        drop(journal);

        let mut journal = ReceiptJournal::open(&path, PAYOUT).unwrap();
        assert_eq!(journal.start().started_at_ms, started, "the start is kept");
        assert_eq!(
            journal.unsettled_through(2),
            vec![receipt(1, 10), receipt(2, 20)]
        );
        journal
            .settle(Settled {
                eon: 1,
                last_round: 2,
                agreed: 2,
                expected: U256::from(2_000),
            })
            .unwrap();
        // A late acknowledgement of a settled round changes nothing.
        journal.record([receipt(2, 21), receipt(4, 40)]).unwrap();
        drop(journal);

        let journal = ReceiptJournal::open(&path, PAYOUT).unwrap();
        assert_eq!(
            journal.settled().map(|s| s.expected),
            Some(U256::from(2_000))
        );
        assert_eq!(
            journal.unsettled_through(i64::MAX),
            vec![receipt(3, 30), receipt(4, 40)]
        );
        assert!(journal.start().payout_constant);
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(lines, 4, "start, settled and two receipts");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_hub_that_knows_the_key_under_another_id_starts_a_new_record() {
        let path = temp_path();
        let mut journal = ReceiptJournal::open(&path, PAYOUT).unwrap();
        let hub = |id| HubIdentity {
            hub_id: "hub".into(),
            validator_id: id,
        };
        assert_eq!(journal.bind(hub(7)).unwrap(), None);
        journal.record([receipt(1, 10)]).unwrap();
        assert_eq!(journal.bind(hub(7)).unwrap(), None, "the same hub again");
        drop(journal);
        let mut journal = ReceiptJournal::open(&path, PAYOUT).unwrap();
        assert_eq!(journal.start().hub, Some(hub(7)));

        let aside = journal
            .bind(hub(9))
            .unwrap()
            .expect("the old record is kept aside");
        assert!(journal.unsettled_through(i64::MAX).is_empty());
        assert_eq!(journal.start().hub, Some(hub(9)));
        let old = ReceiptJournal::open(&aside, PAYOUT).unwrap();
        assert_eq!(old.unsettled_through(i64::MAX), vec![receipt(1, 10)]);
        drop(old);
        std::fs::remove_file(aside).unwrap();
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_torn_line_is_skipped_and_a_new_payout_address_is_remembered() {
        let path = temp_path();
        let mut journal = ReceiptJournal::open(&path, PAYOUT).unwrap();
        journal.record([receipt(1, 10)]).unwrap();
        drop(journal);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"kind":"ack","round":2,"assignm"#)
            .unwrap();
        drop(file);

        let other = "0x0000000000000000000000000000000000000B0B";
        let journal = ReceiptJournal::open(&path, other).unwrap();
        assert_eq!(journal.unsettled_through(i64::MAX), vec![receipt(1, 10)]);
        assert!(!journal.start().payout_constant);
        drop(journal);
        // Going back does not make the history constant again.
        let journal = ReceiptJournal::open(&path, PAYOUT).unwrap();
        assert!(!journal.start().payout_constant);
        std::fs::remove_file(&path).unwrap();
    }
}
