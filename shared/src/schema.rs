//! Diesel table definitions, mirroring `migrations/` (checked by `tests/schema.rs`).
#![allow(missing_docs)]

diesel::table! {
    users (id) {
        id -> Int8,
        email -> Text,
        name -> Text,
        role -> Text,
        created_at -> Timestamptz,
        max_sites -> Nullable<Int4>,
        max_checks_per_day -> Nullable<Int8>,
        time_zone -> Nullable<Text>,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Int8,
        user_id -> Int8,
        name -> Text,
        key_prefix -> Text,
        key_hash -> Bytea,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    websites (id) {
        id -> Int8,
        owner_id -> Int8,
        name -> Text,
        url -> Text,
        method -> Text,
        interval_seconds -> Int4,
        timeout_ms -> Int4,
        quorum -> Int2,
        keyword -> Nullable<Text>,
        enabled -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        last_scheduled_at -> Nullable<Timestamptz>,
        canary -> Bool,
        assertions -> Jsonb,
    }
}

diesel::table! {
    alert_channels (id) {
        id -> Int8,
        owner_id -> Int8,
        website_id -> Nullable<Int8>,
        kind -> Text,
        target -> Text,
        secret -> Nullable<Text>,
        enabled -> Bool,
        created_at -> Timestamptz,
        confirmed_at -> Nullable<Timestamptz>,
        confirmation_hash -> Nullable<Bytea>,
        confirmation_expires_at -> Nullable<Timestamptz>,
        reminder_minutes -> Nullable<Int4>,
        reminder_max -> Nullable<Int4>,
    }
}

diesel::table! {
    validators (id) {
        id -> Int8,
        public_key -> Bytea,
        payout_address -> Nullable<Bytea>,
        reputation -> Int4,
        checks_done -> Int8,
        checks_agreed -> Int8,
        checks_missed -> Int8,
        credited -> Numeric,
        claimed -> Numeric,
        first_seen_at -> Timestamptz,
        last_seen_at -> Timestamptz,
    }
}

diesel::table! {
    rounds (number) {
        number -> Int8,
        seed -> Bytea,
        opened_at -> Timestamptz,
        deadline_at -> Timestamptz,
        closed_at -> Nullable<Timestamptz>,
        degraded -> Bool,
        results_hash -> Nullable<Bytea>,
        chain_hash -> Nullable<Bytea>,
        seed_results_round -> Nullable<Int8>,
        candidates -> Jsonb,
        close_enqueued_at -> Nullable<Timestamptz>,
        seed_reveal -> Nullable<Bytea>,
        canary_key -> Nullable<Bytea>,
    }
}

diesel::table! {
    seed_chains (epoch) {
        epoch -> Int8,
        first_round -> Int8,
        rounds -> Int4,
        tip -> Bytea,
        anchor -> Bytea,
        committed_at -> Timestamptz,
    }
}

diesel::table! {
    check_assignments (id) {
        id -> Int8,
        round_number -> Int8,
        website_id -> Int8,
        validator_id -> Int8,
        server_instance -> Text,
        due_at -> Timestamptz,
        deadline_at -> Timestamptz,
        state -> Text,
        answered_at -> Nullable<Timestamptz>,
        spec_hash -> Nullable<Bytea>,
        max_response_ms -> Nullable<Int4>,
    }
}

diesel::table! {
    ticks (received_at, assignment_id) {
        assignment_id -> Int8,
        round_number -> Int8,
        website_id -> Int8,
        validator_id -> Int8,
        status -> Text,
        http_status -> Nullable<Int2>,
        latency_ms -> Int4,
        failure -> Nullable<Text>,
        tls_expires_at -> Nullable<Timestamptz>,
        checked_at -> Timestamptz,
        received_at -> Timestamptz,
        signature -> Bytea,
        protocol_version -> Int2,
        spec_hash -> Nullable<Bytea>,
    }
}

diesel::table! {
    website_status (website_id) {
        website_id -> Int8,
        state -> Text,
        since -> Timestamptz,
        last_round -> Nullable<Int8>,
        pending_state -> Nullable<Text>,
        pending_count -> Int4,
        tls_expires_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    incidents (id) {
        id -> Int8,
        website_id -> Int8,
        opened_at -> Timestamptz,
        opened_round -> Int8,
        resolved_at -> Nullable<Timestamptz>,
        resolved_round -> Nullable<Int8>,
        cause -> Text,
        evidence -> Jsonb,
        opened_in_maintenance -> Bool,
    }
}

diesel::table! {
    website_hourly_rollups (website_id, hour) {
        website_id -> Int8,
        hour -> Timestamptz,
        checks -> Int4,
        up -> Int4,
        down -> Int4,
        unknown_rounds -> Int4,
        latency_p50_ms -> Nullable<Int4>,
        latency_p95_ms -> Nullable<Int4>,
        latency_p99_ms -> Nullable<Int4>,
        maintenance_checks -> Int4,
        degraded_checks -> Int4,
    }
}

diesel::table! {
    alert_outbox (id) {
        id -> Int8,
        channel_id -> Nullable<Int8>,
        incident_id -> Nullable<Int8>,
        kind -> Text,
        dedup_key -> Text,
        payload -> Jsonb,
        state -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    validator_credits (round_number, validator_id) {
        round_number -> Int8,
        validator_id -> Int8,
        checks -> Int4,
        amount -> Numeric,
    }
}

diesel::table! {
    eons (number) {
        number -> Int8,
        first_round -> Int8,
        last_round -> Int8,
        closed_at -> Timestamptz,
    }
}

diesel::table! {
    root_commitments (eon) {
        eon -> Int8,
        root -> Bytea,
        total -> Numeric,
        leaf_count -> Int4,
        excluded_count -> Int4,
        created_at -> Timestamptz,
        onchain_root -> Nullable<Bytea>,
        onchain_block -> Nullable<Int8>,
        onchain_claimable_block -> Nullable<Int8>,
        onchain_cancelled_block -> Nullable<Int8>,
        onchain_replaced_by -> Nullable<Int8>,
    }
}

diesel::table! {
    merkle_leaves (eon, leaf_index) {
        eon -> Int8,
        leaf_index -> Int4,
        payout_address -> Bytea,
        cumulative -> Numeric,
    }
}

diesel::table! {
    merkle_nodes (eon, layer, chunk) {
        eon -> Int8,
        layer -> Int2,
        chunk -> Int4,
        hashes -> Bytea,
    }
}

diesel::table! {
    validator_rewards (validator_id, eon) {
        eon -> Int8,
        validator_id -> Int8,
        payout_address -> Nullable<Bytea>,
        earned -> Numeric,
        cumulative -> Numeric,
        attributed -> Numeric,
    }
}

diesel::table! {
    ethereum_transactions (id) {
        id -> Int8,
        tag -> Text,
        from_address -> Bytea,
        to_address -> Bytea,
        data -> Bytea,
        value -> Numeric,
        nonce -> Nullable<Int8>,
        state -> Text,
        mined_block -> Nullable<Int8>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    ethereum_transaction_attempts (id) {
        id -> Int8,
        transaction_id -> Int8,
        tx_hash -> Bytea,
        nonce -> Int8,
        max_fee_per_gas -> Numeric,
        max_priority_fee_per_gas -> Numeric,
        gas_limit -> Int8,
        broadcast_at -> Timestamptz,
        broadcast_block -> Int8,
        mined_block -> Nullable<Int8>,
        mined_block_hash -> Nullable<Bytea>,
    }
}

diesel::table! {
    chain_blocks (number) {
        number -> Int8,
        hash -> Bytea,
        parent_hash -> Bytea,
        timestamp -> Timestamptz,
        finalized -> Bool,
    }
}

diesel::table! {
    contract_events (id) {
        id -> Int8,
        block_number -> Int8,
        block_hash -> Bytea,
        tx_hash -> Bytea,
        log_index -> Int4,
        kind -> Text,
        eon -> Nullable<Int8>,
        account -> Nullable<Bytea>,
        amount -> Nullable<Numeric>,
        data -> Jsonb,
    }
}

diesel::table! {
    audit_reports (eon) {
        eon -> Int8,
        created_at -> Timestamptz,
        ok -> Bool,
        checked -> Jsonb,
        mismatches -> Jsonb,
    }
}

diesel::table! {
    target_host_checks (host, round_number) {
        host -> Text,
        round_number -> Int8,
        opened_at -> Timestamptz,
        checks -> Int4,
    }
}

diesel::table! {
    canary_chains (epoch) {
        epoch -> Int8,
        first_round -> Int8,
        rounds -> Int4,
        rate_bp -> Int4,
        tip -> Bytea,
        anchor -> Bytea,
        committed_at -> Timestamptz,
    }
}

diesel::table! {
    canary_assignments (assignment_id) {
        assignment_id -> Int8,
        round_number -> Int8,
        validator_id -> Int8,
        mode -> Text,
        keyword -> Nullable<Text>,
        url -> Text,
        timeout_ms -> Int4,
        outcome -> Nullable<Text>,
        forfeited -> Numeric,
    }
}

diesel::table! {
    validator_stakes (public_key, staker) {
        public_key -> Bytea,
        staker -> Bytea,
        amount -> Numeric,
        unbonding_until -> Nullable<Timestamptz>,
        block_number -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    validator_allowlist (public_key) {
        public_key -> Bytea,
        note -> Text,
        added_by -> Nullable<Int8>,
        added_at -> Timestamptz,
    }
}

diesel::table! {
    maintenance_windows (id) {
        id -> Int8,
        website_id -> Int8,
        kind -> Text,
        starts_at -> Nullable<Timestamptz>,
        ends_at -> Nullable<Timestamptz>,
        weekday -> Nullable<Int2>,
        start_time -> Nullable<Time>,
        duration_minutes -> Nullable<Int4>,
        time_zone -> Text,
        note -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(websites -> users (owner_id));
diesel::joinable!(alert_channels -> users (owner_id));
diesel::joinable!(alert_channels -> websites (website_id));
diesel::joinable!(check_assignments -> rounds (round_number));
diesel::joinable!(check_assignments -> websites (website_id));
diesel::joinable!(check_assignments -> validators (validator_id));
diesel::joinable!(website_status -> websites (website_id));
diesel::joinable!(incidents -> websites (website_id));
diesel::joinable!(website_hourly_rollups -> websites (website_id));
diesel::joinable!(maintenance_windows -> websites (website_id));
diesel::joinable!(alert_outbox -> alert_channels (channel_id));
diesel::joinable!(alert_outbox -> incidents (incident_id));
diesel::joinable!(validator_credits -> rounds (round_number));
diesel::joinable!(validator_credits -> validators (validator_id));
diesel::joinable!(root_commitments -> eons (eon));
diesel::joinable!(merkle_leaves -> eons (eon));
diesel::joinable!(merkle_nodes -> eons (eon));
diesel::joinable!(validator_rewards -> eons (eon));
diesel::joinable!(validator_rewards -> validators (validator_id));
diesel::joinable!(ethereum_transaction_attempts -> ethereum_transactions (transaction_id));
diesel::joinable!(contract_events -> chain_blocks (block_number));
diesel::joinable!(audit_reports -> eons (eon));
diesel::joinable!(canary_assignments -> check_assignments (assignment_id));
diesel::joinable!(canary_assignments -> rounds (round_number));
diesel::joinable!(canary_assignments -> validators (validator_id));
diesel::joinable!(status_pages -> users (owner_id));
diesel::joinable!(status_page_sites -> status_pages (page_id));
diesel::joinable!(status_page_sites -> websites (website_id));

diesel::table! {
    status_pages (id) {
        id -> Int8,
        owner_id -> Int8,
        slug -> Text,
        title -> Text,
        description -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    status_page_sites (page_id, website_id) {
        page_id -> Int8,
        website_id -> Int8,
        position -> Int4,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    users,
    api_keys,
    websites,
    alert_channels,
    validators,
    rounds,
    seed_chains,
    check_assignments,
    ticks,
    website_status,
    incidents,
    website_hourly_rollups,
    alert_outbox,
    validator_credits,
    eons,
    root_commitments,
    merkle_leaves,
    merkle_nodes,
    validator_rewards,
    ethereum_transactions,
    ethereum_transaction_attempts,
    chain_blocks,
    contract_events,
    audit_reports,
    canary_chains,
    canary_assignments,
    target_host_checks,
    validator_stakes,
    validator_allowlist,
    maintenance_windows,
    status_pages,
    status_page_sites,
);
