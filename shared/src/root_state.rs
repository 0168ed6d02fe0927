//! Where an eon's on-chain root stands, from the columns the chain follower fills
//! (`root_commitments.onchain_*`) and the newest final block it stored.

use crate::models::RootCommitment;

impl RootCommitment {
    /// The on-chain state of this eon's root when the chain is at `final_head`
    /// (the newest final block the follower stored): `None` until its commit is
    /// final.
    pub fn onchain_state(&self, final_head: Option<i64>) -> Option<OnchainRootState> {
        self.onchain_root.as_ref()?;
        if let Some(block) = self.onchain_cancelled_block {
            return Some(OnchainRootState::Cancelled { block });
        }
        if let Some(eon) = self.onchain_replaced_by {
            return Some(OnchainRootState::Replaced { by_eon: eon });
        }
        match (self.onchain_claimable_block, final_head) {
            (Some(from), Some(head)) if head >= from => Some(OnchainRootState::Claimable { from }),
            (Some(until), _) => Some(OnchainRootState::Pending { until }),
            // A commit recorded before challenge windows existed paid at once.
            (None, _) => Some(OnchainRootState::Claimable {
                from: self.onchain_block.unwrap_or_default(),
            }),
        }
    }
}

/// Where an eon's on-chain root stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnchainRootState {
    /// In its challenge window: claimable from block `until` unless cancelled or
    /// replaced before.
    Pending {
        /// The first block where claims may use it.
        until: i64,
    },
    /// Claims may use it (while no newer root has matured) from block `from`.
    Claimable {
        /// The block its window ended.
        from: i64,
    },
    /// The guardian cancelled it in block `block`; it never paid.
    Cancelled {
        /// The block of `RootCancelled`.
        block: i64,
    },
    /// A newer eon's root replaced it in its window; it never paid (the newer
    /// root's cumulative amounts include it).
    Replaced {
        /// The eon that replaced it.
        by_eon: i64,
    },
}

impl OnchainRootState {
    /// Its name in the API: `pending`, `claimable`, `cancelled` or `replaced`.
    pub fn name(self) -> &'static str {
        match self {
            OnchainRootState::Pending { .. } => "pending",
            OnchainRootState::Claimable { .. } => "claimable",
            OnchainRootState::Cancelled { .. } => "cancelled",
            OnchainRootState::Replaced { .. } => "replaced",
        }
    }
}
