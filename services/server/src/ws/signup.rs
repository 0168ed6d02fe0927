//! Signup: the validator proves it holds a key by signing the hub's fresh nonce.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea};
use overlaps_shared::mutex::{Lease, RedisMutex};
use overlaps_shared::protocol::ErrorCode;
use overlaps_shared::signing::{self, PayoutAddress, PublicKey, SigningError};

use crate::hub::Hub;

/// A validator whose signup was accepted.
#[derive(Debug)]
pub struct SignedUp {
    /// Its id at this hub.
    pub validator_id: i64,
    /// The key every later result must verify with.
    pub key: PublicKey,
    /// The one-live-session-per-key lock, renewed while connected.
    pub lease: Lease,
}

/// Why a signup was refused.
pub type Refusal = (ErrorCode, String);

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

fn refused(code: ErrorCode, err: impl std::fmt::Display) -> Refusal {
    (code, err.to_string())
}

/// Verifies a signup against `nonce` and registers the validator.
pub async fn sign_up(
    hub: &Hub,
    nonce: &[u8; 32],
    public_key: &str,
    payout_address: &str,
    signature: &str,
) -> Result<SignedUp, Refusal> {
    let key: PublicKey = public_key
        .parse()
        .map_err(|e| refused(ErrorCode::BadKey, e))?;
    let payout: PayoutAddress = payout_address
        .parse()
        .map_err(|e: SigningError| refused(ErrorCode::BadPayoutAddress, e))?;
    let signature =
        signing::decode_signature(signature).map_err(|e| refused(ErrorCode::BadSignature, e))?;
    key.verify(
        &signing::signup_bytes(&hub.config.hub_id, nonce, &payout),
        &signature,
    )
    .map_err(|e| refused(ErrorCode::BadSignature, e))?;

    // One live session per key, across every server instance.
    let lock = RedisMutex::new(
        hub.infra.redis.clone(),
        &hub.infra.keys,
        &format!("session:{key}"),
        hub.config.limits.presence_ttl,
    );
    let guard = match lock.try_lock().await {
        Ok(Some(guard)) => guard,
        Ok(None) => {
            return Err(refused(
                ErrorCode::KeyInUse,
                "this key already has a live session; close it first",
            ));
        }
        Err(err) => return Err(unavailable(err)),
    };

    let key_bytes = key.to_bytes().to_vec();
    let payout_bytes = payout.as_bytes().to_vec();
    let validator_id = hub
        .infra
        .db
        .run(move |conn| {
            Ok(diesel::sql_query(
                "INSERT INTO validators (public_key, payout_address) VALUES ($1, $2) \
                 ON CONFLICT (public_key) DO UPDATE \
                 SET payout_address = EXCLUDED.payout_address, last_seen_at = now() \
                 RETURNING id",
            )
            .bind::<Bytea, _>(key_bytes)
            .bind::<Bytea, _>(payout_bytes)
            .get_result::<Id>(conn)?
            .id)
        })
        .await;
    let validator_id = match validator_id {
        Ok(id) => id,
        Err(err) => {
            let _ = guard.release().await;
            return Err(unavailable(err));
        }
    };
    Ok(SignedUp {
        validator_id,
        key,
        lease: guard.into_lease(),
    })
}

fn unavailable(err: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %err, "signup failed on the hub side");
    (
        ErrorCode::Unavailable,
        "the hub cannot register you right now; retry".into(),
    )
}
