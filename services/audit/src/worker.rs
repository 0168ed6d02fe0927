//! The `audit_eon` consumer and the sweep that audits eons still without a report.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data, WorkerBuilder};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use overlaps_shared::jobs::{self, AuditEon};
use overlaps_shared::service::Infrastructure;

use crate::audit::{self, AuditError, AuditReport};
use crate::config::AuditPolicy;

/// What the audit job handler needs.
#[derive(Debug)]
pub struct Auditor {
    /// PostgreSQL and Redis.
    pub infra: Infrastructure,
    /// The rules to re-apply.
    pub policy: AuditPolicy,
}

impl Auditor {
    /// Audits eon `eon` and stores its report.
    pub async fn audit(&self, eon: i64) -> overlaps_shared::Result<AuditReport> {
        let policy = self.policy.clone();
        self.infra
            .db
            .run(move |conn| {
                let report = audit::audit_eon(conn, eon, &policy).map_err(shared_error)?;
                audit::store_report(conn, &report).map_err(shared_error)?;
                Ok(report)
            })
            .await
    }
}

fn shared_error(err: AuditError) -> overlaps_shared::Error {
    match err {
        AuditError::Database(db) => overlaps_shared::Error::Database(db),
        AuditError::Alert(shared) => shared,
        other => overlaps_shared::Error::Queue(other.to_string()),
    }
}

/// Consumes `audit_eon` jobs until the process stops, and every `sweep` audits
/// closed eons that have no report yet (a lost job, or a fresh audit process).
pub async fn run(auditor: Arc<Auditor>, sweep: Duration) {
    let consume = jobs::keep_running("audit-eon", || {
        let queue = jobs::consumer::<AuditEon>(auditor.infra.redis.clone(), &auditor.infra.keys);
        WorkerBuilder::new(jobs::worker_name("audit-eon"))
            .backend(queue)
            .data(Arc::clone(&auditor))
            .build(audit_eon)
            .run()
    });
    let sweeping = async {
        loop {
            tokio::time::sleep(sweep).await;
            let unaudited = auditor
                .infra
                .db
                .run(|conn| {
                    #[derive(QueryableByName)]
                    struct Number {
                        #[diesel(sql_type = BigInt)]
                        number: i64,
                    }
                    let rows: Vec<Number> = diesel::sql_query(
                        "SELECT e.number FROM eons e JOIN root_commitments c ON c.eon = e.number \
                         LEFT JOIN audit_reports a ON a.eon = e.number \
                         WHERE a.eon IS NULL \
                            OR (c.onchain_root IS NOT NULL AND a.checked->>'onchain' = 'not_yet_onchain') \
                         ORDER BY e.number",
                    )
                    .load(conn)?;
                    Ok(rows.into_iter().map(|r| r.number).collect::<Vec<_>>())
                })
                .await;
            match unaudited {
                Ok(eons) => {
                    for eon in eons {
                        log_outcome(eon, auditor.audit(eon).await);
                    }
                }
                Err(err) => tracing::warn!(error = %err, "audit sweep failed"),
            }
        }
    };
    tokio::join!(consume, sweeping);
}

fn log_outcome(eon: i64, outcome: overlaps_shared::Result<AuditReport>) {
    match outcome {
        Ok(report) if report.ok => {
            tracing::info!(eon, checked = ?report.checked, "eon audited: no mismatch")
        }
        Ok(report) => tracing::error!(
            eon,
            mismatches = report.mismatches.len(),
            "eon audited: MISMATCHES (operator alerted)"
        ),
        Err(err) => tracing::error!(eon, error = %err, "eon audit failed"),
    }
}

/// Audits one eon (idempotent: the report is replaced by an identical one).
#[tracing::instrument(skip_all, fields(eon = job.eon))]
pub async fn audit_eon(job: AuditEon, auditor: Data<Arc<Auditor>>) -> Result<(), BoxDynError> {
    let outcome = auditor.audit(job.eon).await;
    let failed = outcome.as_ref().err().map(ToString::to_string);
    log_outcome(job.eon, outcome);
    match failed {
        Some(err) => Err(err.into()),
        None => Ok(()),
    }
}
