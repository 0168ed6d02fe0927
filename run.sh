#!/usr/bin/env bash
# Overlaps: one entry point for operators and developers.
#
#   ./run.sh          dev network: provisions PostgreSQL and Redis, builds, starts
#                     every service; Ctrl-C stops everything it started
#   ./run.sh prod     the six hub services against the .env's real infrastructure
#   ./run.sh test     provisioning as in dev, then fmt, clippy and the test suite
#   ./run.sh bench    the benchmark
#   ./run.sh provision  only make PostgreSQL and Redis ready
#
# Provisioning uses what runs; else starts what is installed; else installs
# (Debian/Ubuntu apt) and starts it without systemd.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"

MODE=${1:-dev}
HUB_SERVICES=(server scheduler accounting audit chain verifier)
# Variables that must be set, and differ from .env.example, in production.
PROD_REQUIRED=(DATABASE_URL REDIS_URL CHAIN_RPC_URL CONTRACT_ADDRESS OPERATOR_PRIVATE_KEY)
PROD_NOT_DEFAULT=(DATABASE_URL OPERATOR_PRIVATE_KEY OPERATOR_API_KEY CANARY_SECRET)
# The dev chain (npm @foundry-rs/anvil): its native binary, not the Node wrapper,
# which would leave the real process orphaned when stopped.
CONTRACTS_DIR=shared/contracts
ANVIL_BIN=$CONTRACTS_DIR/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "root is needed for: $*"; fi
}

APT_UPDATED=
apt_install() {
    command -v apt-get >/dev/null 2>&1 \
        || die "cannot install $* here (no apt-get): install it yourself and run again"
    if [ -z "$APT_UPDATED" ]; then
        say "apt-get update"
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
    say "installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Exports each KEY=value of .env that the environment does not already set.
load_env() {
    if [ ! -f .env ]; then
        [ "$MODE" = prod ] && die ".env is missing: copy .env.example to .env and set the production values"
        cp .env.example .env
        say "created .env from .env.example"
    fi
    local line key value
    while IFS= read -r line || [ -n "$line" ]; do
        [[ $line =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
        key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
        # "quoted" values (as dotenv reads them, for values with spaces).
        [[ $value =~ ^\"(.*)\"$ ]] && value=${BASH_REMATCH[1]}
        [ -n "${!key+x}" ] || export "$key=$value"
    done < .env
}

# Splits DATABASE_URL into PG_USER, PG_PASS, PG_HOST, PG_PORT and PG_DB.
parse_database_url() {
    local re='^postgres(ql)?://([^:@/]+)(:([^@/]*))?@([^:/?]+)(:([0-9]+))?/([^?]+)'
    [[ ${DATABASE_URL:-} =~ $re ]] || die "DATABASE_URL must look like postgres://user:password@host:port/database"
    PG_USER=${BASH_REMATCH[2]}
    PG_PASS=${BASH_REMATCH[4]}
    PG_HOST=${BASH_REMATCH[5]}
    PG_PORT=${BASH_REMATCH[7]:-5432}
    PG_DB=${BASH_REMATCH[8]}
}

is_local() { [[ $1 == 127.0.0.1 || $1 == localhost || $1 == ::1 ]]; }

ensure_postgres() {
    parse_database_url
    command -v pg_isready >/dev/null 2>&1 || apt_install postgresql-client
    if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
        is_local "$PG_HOST" || die "PostgreSQL at $PG_HOST:$PG_PORT is not reachable"
        ls /etc/postgresql/*/main/postgresql.conf >/dev/null 2>&1 || apt_install postgresql
        local version
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        say "starting PostgreSQL $version"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        for _ in $(seq 60); do pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break; sleep 0.5; done
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" || die "PostgreSQL did not start on $PG_HOST:$PG_PORT"
    fi
    ensure_database
}

# Runs psql as a superuser: through POSTGRES_ADMIN_URL (trust auth), else as the
# local postgres system user over the socket (peer auth, Debian's default).
psql_admin() {
    if [ -n "${POSTGRES_ADMIN_URL:-}" ] && psql "$POSTGRES_ADMIN_URL" -qAtX -c 'SELECT 1' >/dev/null 2>&1; then
        psql "$POSTGRES_ADMIN_URL" -v ON_ERROR_STOP=1 -qAtX "$@"
    elif is_local "$PG_HOST" && id postgres >/dev/null 2>&1; then
        as_root runuser -u postgres -- psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -qAtX "$@"
    else
        die "cannot reach PostgreSQL as a superuser to create role $PG_USER; set POSTGRES_ADMIN_URL"
    fi
}

# The project's own role (with CREATEDB: each test makes its own database) and database.
ensure_database() {
    local role_ok db_ok
    role_ok=$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")
    if [ -z "$role_ok" ]; then
        say "creating PostgreSQL role $PG_USER"
        psql_admin -c "CREATE ROLE \"$PG_USER\" LOGIN CREATEDB PASSWORD '$PG_PASS'" >/dev/null
    fi
    db_ok=$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")
    if [ -z "$db_ok" ]; then
        say "creating database $PG_DB"
        psql_admin -c "CREATE DATABASE \"$PG_DB\" OWNER \"$PG_USER\"" >/dev/null
    fi
    psql "$DATABASE_URL" -qAtX -c 'SELECT 1' >/dev/null \
        || die "cannot log in as $PG_USER to $PG_DB (check the password in DATABASE_URL and pg_hba.conf)"
}

ensure_redis() {
    command -v redis-cli >/dev/null 2>&1 || apt_install redis-tools
    redis_up() { redis-cli -u "$REDIS_URL" ping 2>/dev/null | grep -q PONG; }
    if ! redis_up; then
        local re='^rediss?://([^@/]*@)?([^:/]+)(:([0-9]+))?'
        [[ $REDIS_URL =~ $re ]] || die "REDIS_URL must look like redis://host:port"
        local host=${BASH_REMATCH[2]} port=${BASH_REMATCH[4]:-6379}
        is_local "$host" || die "Redis at $host:$port is not reachable"
        command -v redis-server >/dev/null 2>&1 || apt_install redis-server
        say "starting Redis on port $port"
        redis-server --daemonize yes --bind 127.0.0.1 --port "$port" \
            --save '' --appendonly no --dir /tmp --logfile /tmp/overlaps-redis.log
        for _ in $(seq 40); do redis_up && break; sleep 0.25; done
        redis_up || die "Redis did not start on port $port"
    fi
}

ensure_toolchain() {
    command -v cargo >/dev/null 2>&1 || die "cargo is missing: install Rust (rustup) first"
    command -v cc >/dev/null 2>&1 || apt_install gcc libc6-dev
    # diesel links the system libpq.
    [ -e /usr/include/postgresql/libpq-fe.h ] || apt_install libpq-dev
    # openssl-sys (initialising the OpenSSL libpq uses) finds it with pkg-config.
    command -v pkg-config >/dev/null 2>&1 || apt_install pkg-config
    [ -e /usr/include/openssl/ssl.h ] || apt_install libssl-dev
}

# The real SMTP sink the tests deliver e-mail alerts to (Python's aiosmtpd).
ensure_smtp_sink() {
    python3 -c 'import aiosmtpd' 2>/dev/null && return
    command -v python3 >/dev/null 2>&1 || apt_install python3
    say "installing aiosmtpd (the tests' SMTP sink)"
    python3 -m pip install --quiet aiosmtpd 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages aiosmtpd 2>/dev/null \
        || apt_install python3-aiosmtpd
    python3 -c 'import aiosmtpd' || die "aiosmtpd could not be installed"
}

# Node and the contracts' npm packages (solc-js, anvil, OpenZeppelin), as locked.
ensure_contracts() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        apt_install nodejs npm
    fi
    if [ ! -x "$ANVIL_BIN" ] || [ "$CONTRACTS_DIR/package-lock.json" -nt "$CONTRACTS_DIR/node_modules/.package-lock.json" ]; then
        # `npm install` with the lock file installs the locked versions; unlike
        # `npm ci` it tolerates anvil's optional binaries for other platforms,
        # which the registry here does not serve.
        say "npm install (locked) in $CONTRACTS_DIR"
        (cd "$CONTRACTS_DIR" && npm install --no-audit --no-fund --loglevel=error)
    fi
    [ -x "$ANVIL_BIN" ] || die "$ANVIL_BIN is missing after npm install"
}

# A fresh dev chain on CHAIN_RPC_URL's port (a block a second, so confirmations
# advance), the rewards contract deployed by the operator key and funded; its
# address is exported and written to .run/chain.env. The hub's chain records of
# an earlier dev chain are reset: they describe a chain that no longer exists.
start_dev_chain() {
    local profile=$1 url=${CHAIN_RPC_URL:-http://127.0.0.1:8545}
    local re='^https?://([^:/]+):([0-9]+)'
    [[ $url =~ $re ]] || die "CHAIN_RPC_URL must look like http://127.0.0.1:8545 in dev"
    local host=${BASH_REMATCH[1]} port=${BASH_REMATCH[2]}
    is_local "$host" || die "dev mode starts its own chain: CHAIN_RPC_URL must be local"
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
        die "port $port (CHAIN_RPC_URL) is already in use: stop what runs there or change CHAIN_RPC_URL"
    fi
    # An .env from before the chain settings existed still runs: anvil's first
    # well-known dev key is the dev operator.
    export OPERATOR_PRIVATE_KEY=${OPERATOR_PRIVATE_KEY:-0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80}
    # Likewise the guardian (anvil's last account) and a challenge window of 20
    # one-second blocks, which matures well within the dev eon.
    export GUARDIAN_ADDRESS=${GUARDIAN_ADDRESS:-0xa0Ee7A142d267C1f36714E4a8F75612F20a79720}
    export CHALLENGE_BLOCKS=${CHALLENGE_BLOCKS:-20}
    # Not restarted: a new anvil would be an empty chain without the contract, so its
    # exit stops the whole dev network.
    supervise_start --essential anvil "$ANVIL_BIN" --host "$host" --port "$port" --block-time 1 --silent
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && break; sleep 0.1; done
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null || die "anvil did not start on port $port"
    # Stakes unbond in DEV_UNBONDING_SECONDS (120) here, not UNBONDING_SECONDS' week,
    # so `validator unstake` can be tried to the end within minutes.
    local line unbonding=${DEV_UNBONDING_SECONDS:-120}
    line=$(CHAIN_RPC_URL=$url UNBONDING_SECONDS=$unbonding "target/$profile/verifier" deploy --fund "${DEV_CONTRACT_FUNDING_WEI:-100000000000000000000}" | grep '^CONTRACT_ADDRESS=') \
        || die "deploying OverlapsRewards failed"
    mkdir -p .run
    printf '%s\nCHAIN_RPC_URL=%s\n' "$line" "$url" > .run/chain.env
    export "$line" CHAIN_RPC_URL="$url"
    say "dev chain:  $url, OverlapsRewards at ${line#CONTRACT_ADDRESS=} (.run/chain.env)"
    say "custody:    roots claimable $CHALLENGE_BLOCKS blocks after their commit; guardian $GUARDIAN_ADDRESS (verifier guardian status); stakes unbond in $unbonding s"
    psql "$DATABASE_URL" -qAtX >/dev/null 2>&1 <<'SQL' || true
DO $$ BEGIN
  IF to_regclass('ethereum_transactions') IS NOT NULL THEN
    DELETE FROM ethereum_transactions;
    DELETE FROM chain_blocks;
    UPDATE root_commitments SET onchain_root = NULL, onchain_block = NULL;
    UPDATE validators SET claimed = 0;
  END IF;
  IF to_regclass('validator_stakes') IS NOT NULL THEN
    DELETE FROM validator_stakes;
  END IF;
END $$;
SQL
}

ensure_schemathesis() {
    command -v schemathesis >/dev/null 2>&1 && return
    command -v python3 >/dev/null 2>&1 || apt_install python3
    command -v pip3 >/dev/null 2>&1 || python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
    say "installing schemathesis (the API fuzzer)"
    python3 -m pip install --quiet schemathesis 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages schemathesis 2>/dev/null \
        || die "schemathesis could not be installed"
    # pip may have put the script where PATH does not look: the interpreter's own
    # scripts directory (pyenv's shims need a rehash), or the user scheme's bin
    # (~/.local/bin) when it was installed with --user before.
    if ! command -v schemathesis >/dev/null 2>&1; then
        if command -v pyenv >/dev/null 2>&1; then pyenv rehash 2>/dev/null || true; fi
        local dir
        for dir in "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)" \
            "$(python3 -m site --user-base 2>/dev/null)/bin"; do
            if [ -n "$dir" ] && [ -x "$dir/schemathesis" ]; then PATH="$dir:$PATH"; fi
        done
        hash -r
    fi
    command -v schemathesis >/dev/null 2>&1 || die "schemathesis is not on PATH after installing"
}

# Fuzzes the REST API from its own OpenAPI document with schemathesis, against a
# real server binary on a scratch database and Redis prefix, with an operator key:
# no 5xx, and every response (status, content type, body) as documented. Bounded
# by FUZZ_MAX_EXAMPLES per operation and FUZZ_MAX_SECONDS overall.
run_api_fuzz() {
    ensure_schemathesis
    say "schemathesis against the REST API"
    cargo build --bin server
    local fuzz_db="${PG_DB}_fuzz" bind=127.0.0.1:${FUZZ_PORT:-18081} prefix="overlaps-fuzz-$$"
    local key server_log status=0
    key="ovl_fuzz_$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
    server_log=$(mktemp)
    psql "$DATABASE_URL" -qAtX -c "DROP DATABASE IF EXISTS \"$fuzz_db\" WITH (FORCE)" -c "CREATE DATABASE \"$fuzz_db\"" >/dev/null
    DATABASE_URL=${DATABASE_URL%/*}/$fuzz_db REDIS_PREFIX=$prefix SERVER_BIND=$bind \
        SERVER_INSTANCE_ID=fuzz-1 APP_ENV=dev LOG_LEVEL=warn LOG_FORMAT=json \
        OPERATOR_API_KEY=$key API_RATE_LIMIT_PER_KEY=100000 API_RATE_LIMIT_PER_IP=100000 \
        target/debug/server >"$server_log" 2>&1 &
    local server_pid=$!
    CHILDREN+=("$server_pid")
    trap stop_children EXIT
    for _ in $(seq 150); do
        curl -fsS "http://$bind/healthz" >/dev/null 2>&1 && break
        sleep 0.2
    done
    schemathesis run "http://$bind/api-docs/openapi.json" \
        --header "Authorization: Bearer $key" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
        --exclude-path /ws/validator \
        --max-examples "${FUZZ_MAX_EXAMPLES:-25}" --max-time "${FUZZ_MAX_SECONDS:-150}" \
        --workers 2 --generation-allow-x00 false --suppress-health-check all \
        --seed "${FUZZ_SEED:-4242}" || status=$?
    stop_children
    grep -E '"level":"(ERROR|WARN)"' "$server_log" | head -5 || true
    rm -f "$server_log"
    psql "$DATABASE_URL" -qAtX -c "DROP DATABASE IF EXISTS \"$fuzz_db\" WITH (FORCE)" >/dev/null
    redis-cli -u "$REDIS_URL" --scan --pattern "$prefix*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null
    return "$status"
}

provision() {
    load_env
    ensure_toolchain
    ensure_postgres
    ensure_redis
}

# Services run supervised (services/dev/supervise.sh): one that exits is restarted
# with backoff while the others keep running.
# shellcheck source=services/dev/supervise.sh
source "$ROOT/services/dev/supervise.sh"

# The benchmark's and the fuzzer's own processes (not supervised: they run once).
CHILDREN=()
stop_children() {
    trap - INT TERM EXIT
    if [ ${#CHILDREN[@]} -gt 0 ]; then
        say "stopping ${#CHILDREN[@]} processes"
        kill -TERM "${CHILDREN[@]}" 2>/dev/null || true
        wait "${CHILDREN[@]}" 2>/dev/null || true
    fi
}

# Dev validator n is paid to, and stakes from, anvil's account n (1, 2, 3): funded
# accounts whose keys are public. The hub counts a stake only from the key's payout
# address, so in dev PAYOUT_ADDRESS is not used for these three.
DEV_VALIDATOR_PAYOUTS=(
    0x70997970C51812dc3A010C7d01b50e0d17dc79C8
    0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC
    0x90F79bf6EB2c4f870365E785982E1f101E93b906
)
DEV_VALIDATOR_KEYS=(
    0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
    0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a
    0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6
)

# Three local validators for the dev network, each with its own key under .run/,
# each staking MIN_STAKE_WEI on its key from its payout account (every dev chain is
# fresh) before it starts, so the hub admits it from its first round.
start_dev_validators() {
    local profile=$1 n key
    mkdir -p .run
    for n in 1 2 3; do
        key=.run/validator-$n.key
        [ -f "$key" ] || "target/$profile/validator" keygen --key-file "$key" >/dev/null
        PAYOUT_PRIVATE_KEY=${DEV_VALIDATOR_KEYS[n - 1]} "target/$profile/validator" stake \
            --key-file "$key" --payout-address "${DEV_VALIDATOR_PAYOUTS[n - 1]}" \
            --amount "${MIN_STAKE_WEI:-1000000000000000000}" \
            || die "validator-$n could not stake"
    done
    # The hub learns of a stake from the chain service, once CONFIRMATIONS blocks
    # (a second each) have passed: up to 30 s.
    local staked=0
    for _ in $(seq 150); do
        staked=$(psql "$DATABASE_URL" -qAtX -c 'SELECT count(*) FROM validator_stakes' 2>/dev/null || echo 0)
        [ "$staked" -ge 3 ] && break
        sleep 0.2
    done
    if [ "$staked" -ge 3 ]; then
        say "stakes:     the three dev validators staked ${MIN_STAKE_WEI:-1000000000000000000} wei each (validator_stakes)"
    else
        say "stakes:     only $staked of 3 dev stakes recorded after 30 s: is the chain service running?"
    fi
    # Each node connects from a loopback /24 of its own (127.0.101.1, …): the hub never
    # puts two validators of one network into a quorum, in dev as in prod.
    for n in 1 2 3; do
        supervise_start "validator-$n" "target/$profile/validator" run --key-file ".run/validator-$n.key" \
            --hub-url "ws://${SERVER_BIND:-127.0.0.1:8080}/ws/validator" --allow-private-targets \
            --payout-address "${DEV_VALIDATOR_PAYOUTS[n - 1]}" --source-address "127.0.$((100 + n)).1"
    done
}

# Dev sinks and a demo site: alerts land in a local Slack sink and SMTP sink, and
# rounds check a local page you can take down.
start_dev_sinks() {
    ensure_smtp_sink
    mkdir -p .run/demo .run/mail/tmp .run/mail/new .run/mail/cur
    [ -f .run/demo/index.html ] || echo '<h1>Overlaps demo: all healthy</h1>' > .run/demo/index.html
    supervise_start slack-sink python3 services/dev/slack_sink.py 8025 .run/slack.log
    supervise_start mail-sink python3 -m aiosmtpd -n -l 127.0.0.1:1025 -c aiosmtpd.handlers.Mailbox .run/mail
    supervise_start demo-site python3 -m http.server 8090 --bind 127.0.0.1 --directory .run/demo
}

# The demo owner, site and channels (once); the site's interval is one round.
seed_demo() {
    for _ in $(seq 50); do
        psql "$DATABASE_URL" -qAtX -c 'SELECT 1 FROM websites LIMIT 0' >/dev/null 2>&1 && break
        sleep 0.2
    done
    psql "$DATABASE_URL" -qAtX -v ON_ERROR_STOP=1 >/dev/null <<SQL
INSERT INTO users (email, name) VALUES ('demo@overlaps.local', 'Demo owner') ON CONFLICT (email) DO NOTHING;
INSERT INTO websites (owner_id, name, url, interval_seconds, timeout_ms, quorum, keyword)
SELECT id, 'Demo site', 'http://127.0.0.1:8090/', ${ROUND_SECONDS:-30}, 3000, 3, 'healthy'
FROM users WHERE email = 'demo@overlaps.local'
  AND NOT EXISTS (SELECT 1 FROM websites WHERE url = 'http://127.0.0.1:8090/');
INSERT INTO alert_channels (owner_id, kind, target)
SELECT u.id, c.kind, c.target FROM users u,
  (VALUES ('slack', 'http://127.0.0.1:8025/demo'), ('email', 'demo@overlaps.local')) AS c(kind, target)
WHERE u.email = 'demo@overlaps.local'
  AND NOT EXISTS (SELECT 1 FROM alert_channels a WHERE a.owner_id = u.id AND a.kind = c.kind);
INSERT INTO status_pages (owner_id, slug, title, description)
SELECT id, 'demo', 'Overlaps demo', 'The dev network''s demo site, checked by the three local validators.'
FROM users WHERE email = 'demo@overlaps.local'
ON CONFLICT (slug) DO NOTHING;
INSERT INTO status_page_sites (page_id, website_id, position)
SELECT p.id, w.id, 0 FROM status_pages p, websites w
WHERE p.slug = 'demo' AND w.url = 'http://127.0.0.1:8090/'
ON CONFLICT DO NOTHING;
SQL
    DEMO_SITE_ID=$(psql "$DATABASE_URL" -qAtX -c "SELECT id FROM websites WHERE url = 'http://127.0.0.1:8090/' ORDER BY id LIMIT 1")
    # A fresh key of the demo owner at every start, for Swagger UI's Authorize (dev
    # only: it is printed). Keys are stored hashed (SHA-256), so the previous
    # start's key cannot be shown again; it is revoked instead.
    DEV_API_KEY="ovl_$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
    psql "$DATABASE_URL" -qAtX -v ON_ERROR_STOP=1 >/dev/null <<SQL
UPDATE api_keys SET revoked_at = now()
WHERE name = 'dev banner' AND revoked_at IS NULL
  AND user_id = (SELECT id FROM users WHERE email = 'demo@overlaps.local');
INSERT INTO api_keys (user_id, name, key_prefix, key_hash)
SELECT id, 'dev banner', substr('$DEV_API_KEY', 1, 12), sha256(convert_to('$DEV_API_KEY', 'UTF8'))
FROM users WHERE email = 'demo@overlaps.local';
SQL
}

# The scripted outage of the dev demo site (DEMO_OUTAGE=0 turns it off): once
# rounds have settled the site up, its page is taken away for about three rounds
# (DEMO_OUTAGE_ROUNDS) and put back, so the demo status page shows a real
# incident, opened and resolved by the validators, with its signed record.
demo_outage() {
    local round=${ROUND_SECONDS:-30} rounds=${DEMO_OUTAGE_ROUNDS:-3} state=
    for _ in $(seq 300); do
        state=$(psql "$DATABASE_URL" -qAtX -c "SELECT state FROM website_status WHERE website_id = $DEMO_SITE_ID" 2>/dev/null || true)
        [ "$state" = up ] && break
        sleep 1
    done
    if [ "$state" != up ]; then
        say "demo outage: the demo site was not settled up within 5 minutes; no outage"
        return 0
    fi
    say "demo outage: taking the demo site down for about $rounds rounds (DEMO_OUTAGE=0 turns this off)"
    mv .run/demo/index.html .run/demo/index.html.away 2>/dev/null || return 0
    sleep $((round * rounds))
    mv .run/demo/index.html.away .run/demo/index.html
    say "demo outage: the demo site is back; see http://${SERVER_BIND:-127.0.0.1:8080}/status/demo"
}

# Ends the scripted demo outage (if still running) and puts the demo page back.
DEMO_OUTAGE_PID=
stop_demo_outage() {
    if [ -n "$DEMO_OUTAGE_PID" ]; then
        kill "$DEMO_OUTAGE_PID" 2>/dev/null || true
        DEMO_OUTAGE_PID=
    fi
    if [ -f .run/demo/index.html.away ]; then mv .run/demo/index.html.away .run/demo/index.html; fi
}

# Runs the hub services from `target/$1`, each restarted when it exits (with
# backoff), until Ctrl-C or SIGTERM, or until the dev chain exits.
run_services() {
    local profile=$1
    trap 'trap - INT TERM; stop_demo_outage; supervise_stop; exit 130' INT
    trap 'trap - INT TERM; stop_demo_outage; supervise_stop; exit 143' TERM
    trap 'stop_demo_outage; supervise_stop' EXIT
    if [ "$profile" = debug ]; then
        start_dev_sinks
        start_dev_chain "$profile"
        # Known-answer checks; in prod the operator runs `canary` on hosts of their own.
        supervise_start canary "target/$profile/canary"
    fi
    for service in "${HUB_SERVICES[@]}"; do
        # In dev the scheduler starts last, so the first round finds the validators online.
        [ "$profile" = debug ] && [ "$service" = scheduler ] && continue
        supervise_start "$service" "target/$profile/$service"
    done
    if [ "$profile" = debug ]; then
        start_dev_validators "$profile"
        # Up to 15 s for the three validators to appear in presence (Redis).
        for _ in $(seq 75); do
            # Members score their expiry (ms); expired ones linger until pruned.
            [ "$(redis-cli -u "$REDIS_URL" zcount "${REDIS_PREFIX:-overlaps}:presence:online" "$(date +%s%3N)" +inf 2>/dev/null || echo 0)" -ge 3 ] && break
            sleep 0.2
        done
        supervise_start scheduler "target/$profile/scheduler"
        seed_demo
        # A previous run stopped mid-outage left the page away: put it back.
        [ -f .run/demo/index.html.away ] && mv .run/demo/index.html.away .run/demo/index.html
        if [ "${DEMO_OUTAGE:-1}" != 0 ]; then
            demo_outage &
            DEMO_OUTAGE_PID=$!
        fi
        local base="http://${SERVER_BIND:-127.0.0.1:8080}"
        say "demo site:  http://127.0.0.1:8090/ (take it down: rm .run/demo/index.html)"
        say "status:     $base/status/demo (the demo site's public status page, verified in your browser)"
        say "badge:      $base/badges/demo/$DEMO_SITE_ID/status.svg (Markdown: [![status]($base/badges/demo/$DEMO_SITE_ID/status.svg)]($base/status/demo))"
        say "alerts:     Slack sink prints above and in .run/slack.log; e-mail in .run/mail/new/"
        say "Swagger UI: $base/docs (click Authorize and paste the dev API key below)"
        say "dev key:    $DEV_API_KEY (demo owner; DEV ONLY, a new one each start, the previous one revoked)"
    fi
    say "API:        http://${SERVER_BIND:-127.0.0.1:8080}/api/v1"
    say "health:     http://${SERVER_BIND:-127.0.0.1:8080}/readyz"
    say "a service that exits is restarted (backoff ${_SUP_INITIAL} s doubling to ${_SUP_MAX} s); Ctrl-C stops everything"
    # Returns only when an essential service (the dev chain) exited.
    supervise_wait
}

# The benchmark: a release server on a scratch database and Redis prefix, driven by
# `loadgen` (many simulated validators over loopback); prints figures and the ratio
# to the machine's own limits measured in the same run.
run_bench() {
    local profile=${BENCH_PROFILE:-release} flag=--release
    [ "$profile" = release ] || flag=
    # Each simulated validator is a socket on both ends.
    ulimit -Hn 1048576 2>/dev/null || true
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    say "building ($profile)"
    cargo build $flag --bins
    local bench_db="${PG_DB}_bench" bind=127.0.0.1:${BENCH_PORT:-18080} prefix="overlaps-bench-$$"
    psql "$DATABASE_URL" -qAtX -c "DROP DATABASE IF EXISTS \"$bench_db\" WITH (FORCE)" -c "CREATE DATABASE \"$bench_db\"" >/dev/null
    local bench_url=${DATABASE_URL%/*}/$bench_db
    local server_log status=0
    # A fresh operator key per run for the API readers (operators read every site).
    local api_key
    api_key="ovl_bench_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    server_log=${BENCH_SERVER_LOG:-$(mktemp)}
    DATABASE_URL=$bench_url REDIS_PREFIX=$prefix SERVER_BIND=$bind SERVER_INSTANCE_ID=bench-1 \
        HUB_ID=bench-hub LOG_LEVEL=warn LOG_FORMAT=json DATABASE_POOL_SIZE=${BENCH_POOL_SIZE:-16} \
        WS_MAX_CONNECTIONS_PER_IP=1000000 WS_MAX_CONNECTIONS_PER_NETWORK=1000000 \
        WS_MAX_MESSAGES_PER_SECOND=100000 VALIDATOR_ADMISSION=open \
        OPERATOR_API_KEY=$api_key API_RATE_LIMIT_PER_KEY=1000000 API_RATE_LIMIT_PER_IP=1000000 \
        "target/$profile/server" >"$server_log" 2>&1 &
    local server_pid=$!
    CHILDREN+=("$server_pid")
    trap stop_children EXIT
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/${bind%:*}/${bind#*:}") 2>/dev/null && break
        sleep 0.2
    done
    DATABASE_URL=$bench_url REDIS_PREFIX=$prefix HUB_URL="ws://$bind/ws/validator" HUB_ID=bench-hub \
        SERVER_INSTANCE_ID=bench-1 SERVER_PID=$server_pid LOG_LEVEL=warn \
        BENCH_API_URL="http://$bind" BENCH_API_KEY=$api_key \
        "target/$profile/loadgen" || status=$?
    # The server's read caches, as it ran (the API read figures depend on them).
    echo "api_read_cache_ms=${API_READ_CACHE_MS:-1000}"
    stop_children
    echo "ingest_sessions_closed_lease=$(sessions_closed_for_lease "$server_log")"
    grep -E '"level":"(ERROR|WARN)"' "$server_log" | head -5 || true
    [ -n "${BENCH_SERVER_LOG:-}" ] || rm -f "$server_log"
    psql "$DATABASE_URL" -qAtX -c "DROP DATABASE IF EXISTS \"$bench_db\" WITH (FORCE)" >/dev/null
    redis-cli -u "$REDIS_URL" --scan --pattern "$prefix*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null
    return "$status"
}

# The connections benchmark: BENCH_CONN_SERVERS (3) server instances on one scratch
# database and Redis prefix, each held by its own load driver (a process holds at
# most ~20,000 open files here) with BENCH_CONN_TOTAL (50,000) validators in all,
# one check each per BENCH_CONN_ROUND_SECONDS round, every assignment dispatched
# to the instance its validator is connected to.
run_connections_bench() {
    local profile=${BENCH_PROFILE:-release} servers=${BENCH_CONN_SERVERS:-3}
    local total=${BENCH_CONN_TOTAL:-50000} status=0 k flag=--release
    [ "$profile" = release ] || flag=
    cargo build $flag --bins
    ulimit -Hn 1048576 2>/dev/null || true
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    local bench_db="${PG_DB}_connbench" prefix="overlaps-connbench-$$" out
    psql "$DATABASE_URL" -qAtX -c "DROP DATABASE IF EXISTS \"$bench_db\" WITH (FORCE)" -c "CREATE DATABASE \"$bench_db\"" >/dev/null
    local bench_url=${DATABASE_URL%/*}/$bench_db
    out=$(mktemp -d)
    local -a drivers=()
    trap stop_children EXIT
    say "connections: $total validators over $servers server instances"
    for k in $(seq "$servers"); do
        local bind="127.0.0.1:$((${BENCH_PORT:-18080} + 10 + k))"
        DATABASE_URL=$bench_url REDIS_PREFIX=$prefix SERVER_BIND=$bind SERVER_INSTANCE_ID=bench-$k \
            HUB_ID=bench-hub LOG_LEVEL=warn LOG_FORMAT=json DATABASE_POOL_SIZE=8 \
            WS_MAX_CONNECTIONS_PER_IP=1000000 WS_MAX_CONNECTIONS_PER_NETWORK=1000000 \
            WS_MAX_MESSAGES_PER_SECOND=100000 VALIDATOR_ADMISSION=open \
            "target/$profile/server" >"$out/server-$k.log" 2>&1 &
        CHILDREN+=("$!")
        echo "$!" >"$out/server-$k.pid"
        for _ in $(seq 100); do
            (exec 3<>"/dev/tcp/${bind%:*}/${bind#*:}") 2>/dev/null && break
            sleep 0.2
        done
    done
    for k in $(seq "$servers"); do
        local bind="127.0.0.1:$((${BENCH_PORT:-18080} + 10 + k))"
        DATABASE_URL=$bench_url REDIS_PREFIX=$prefix HUB_URL="ws://$bind/ws/validator" HUB_ID=bench-hub \
            SERVER_INSTANCE_ID=bench-$k SERVER_PID="$(cat "$out/server-$k.pid")" LOG_LEVEL=warn \
            BENCH_CONNECTIONS=$((total / servers)) BENCH_CHECKS_PER_VALIDATOR=1 \
            BENCH_ROUND_SECONDS=${BENCH_CONN_ROUND_SECONDS:-10} BENCH_SECONDS=${BENCH_CONN_SECONDS:-30} \
            BENCH_API_READS_PER_S=0 BENCH_MEASURE_LIMITS=false BENCH_ROUND_BASE=$((k * 1000000)) \
            "target/$profile/loadgen" >"$out/driver-$k.out" 2>&1 &
        drivers+=("$!")
    done
    for k in "${!drivers[@]}"; do
        wait "${drivers[$k]}" || status=$?
    done
    # Each instance must stop cleanly after its thousands of connections closed
    # (an exit-time heap corruption showed up only here; see `db` in shared/).
    local exits=() pid code
    for k in $(seq "$servers"); do
        pid=$(cat "$out/server-$k.pid")
        kill -TERM "$pid" 2>/dev/null || true
        code=0
        wait "$pid" || code=$?
        exits+=("$code")
        [ "$code" = 0 ] || status=1
    done
    stop_children
    echo "connections_server_exits=$(IFS=,; echo "${exits[*]}")"
    # Per instance, then the sums over all of them.
    for k in $(seq "$servers"); do
        printf 'instance bench-%s: %s\n' "$k" "$(grep -E '^(connections|rss_per_conn_kib|ingest_lost|ingest_results_per_s)=' "$out/driver-$k.out" | tr '\n' ' ')"
        grep -E '"level":"(ERROR|WARN)"' "$out/server-$k.log" | head -3 || true
        grep -E 'failed' "$out/driver-$k.out" | head -3 || true
    done
    echo "connections_sessions_closed_lease=$(cat "$out"/server-*.log | sessions_closed_for_lease -)"
    awk -F= '/^connections=/ {c += $2} /^ingest_lost=/ {l += $2} /^ingest_results_per_s=/ {r += $2}
        /^rss_per_conn_kib=/ {s += $2; n++}
        END {printf "connections_total=%d\nconnections_rss_per_conn_kib=%.1f\nconnections_results_per_s=%.0f\nconnections_lost=%d\n", c, s / n, r, l}' \
        "$out"/driver-*.out
    rm -rf "$out"
    psql "$DATABASE_URL" -qAtX -c "DROP DATABASE IF EXISTS \"$bench_db\" WITH (FORCE)" >/dev/null
    redis-cli -u "$REDIS_URL" --scan --pattern "$prefix*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null
    return "$status"
}

# The status page benchmark: a release server on a scratch database holding one
# page of 50 sites with 90 days of hourly rollups (108,000 rows) and 20 incidents
# each; times BENCH_STATUS_REQUESTS (100) sequential page loads over loopback
# (curl's total time: the server's time plus a loopback round trip).
run_status_page_bench() {
    local profile=${BENCH_PROFILE:-release} flag=--release status=0
    [ "$profile" = release ] || flag=
    cargo build $flag --bin server
    local bench_db="${PG_DB}_statusbench" bind=127.0.0.1:${BENCH_STATUS_PORT:-18082} prefix="overlaps-statusbench-$$"
    psql "$DATABASE_URL" -qAtX -c "DROP DATABASE IF EXISTS \"$bench_db\" WITH (FORCE)" -c "CREATE DATABASE \"$bench_db\"" >/dev/null
    local bench_url=${DATABASE_URL%/*}/$bench_db
    DATABASE_URL=$bench_url REDIS_PREFIX=$prefix SERVER_BIND=$bind SERVER_INSTANCE_ID=statusbench-1 \
        HUB_ID=bench-hub LOG_LEVEL=warn LOG_FORMAT=json "target/$profile/server" >/dev/null 2>&1 &
    local server_pid=$!
    CHILDREN+=("$server_pid")
    trap stop_children EXIT
    for _ in $(seq 150); do
        curl -fsS "http://$bind/healthz" >/dev/null 2>&1 && break
        sleep 0.2
    done
    # The server ran the migrations; seed what 90 days of a 50-site page leave.
    psql "$bench_url" -qAtX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
INSERT INTO users (email) VALUES ('bench@overlaps.local');
INSERT INTO rounds (number, seed, opened_at, deadline_at, closed_at)
SELECT n, decode(repeat('00', 32), 'hex'), now() - interval '91 days', now() - interval '91 days' + interval '30 seconds', now() - interval '91 days' + interval '31 seconds'
FROM generate_series(1, 3000) n;
INSERT INTO websites (owner_id, name, url, interval_seconds, timeout_ms, quorum)
SELECT u.id, 'Site ' || g, 'https://site' || g || '.example/', 60, 5000, 3
FROM users u, generate_series(1, 50) g WHERE u.email = 'bench@overlaps.local';
INSERT INTO website_hourly_rollups (website_id, hour, checks, up, down, unknown_rounds,
    latency_p50_ms, latency_p95_ms, latency_p99_ms, maintenance_checks)
SELECT w.id, date_trunc('hour', now()) - h * interval '1 hour', 180, 178 - (h % 7 = 0)::int, 2 + (h % 7 = 0)::int, 0,
       100 + h % 50, 300 + h % 90, 500, (h % 100 = 0)::int * 3
FROM websites w, generate_series(0, 90 * 24 - 1) h;
INSERT INTO website_status (website_id, state, last_round) SELECT id, 'up', 3000 FROM websites;
INSERT INTO incidents (website_id, opened_at, opened_round, resolved_at, resolved_round, cause, evidence)
SELECT w.id, now() - k * interval '4 days', k * 100, now() - k * interval '4 days' + interval '10 minutes', k * 100 + 20,
       'timeout', '[{"assignment_id": 1, "validator_id": 1, "state": "answered", "status": "down", "failure": "timeout"},
                    {"assignment_id": 2, "validator_id": 2, "state": "answered", "status": "down", "failure": "timeout"},
                    {"assignment_id": 3, "validator_id": 3, "state": "answered", "status": "up"}]'::jsonb
FROM websites w, generate_series(1, 20) k;
INSERT INTO status_pages (owner_id, slug, title) SELECT id, 'bench', 'Bench' FROM users WHERE email = 'bench@overlaps.local';
INSERT INTO status_page_sites (page_id, website_id, position)
SELECT p.id, w.id, w.id FROM status_pages p, websites w;
ANALYZE;
SQL
    local url="http://$bind/status/bench" n=${BENCH_STATUS_REQUESTS:-100} times cold
    # The first load sums all 90 days; the next ones reuse the settled days.
    cold=$(curl -fsS -o /dev/null -w '%{time_total}' "$url" | awk '{ printf "%.1f", $1 * 1000 }') || status=$?
    times=$(for _ in $(seq "$n"); do curl -fsS -o /dev/null -w '%{time_total}\n' "$url"; done | sort -n)
    local bytes p50 p99
    bytes=$(curl -fsS "$url" | wc -c)
    p50=$(printf '%s\n' "$times" | awk -v n="$n" 'NR == int((n + 1) / 2) { printf "%.1f", $1 * 1000 }')
    p99=$(printf '%s\n' "$times" | awk -v n="$n" 'NR == int(n * 0.99 + 0.5) { printf "%.1f", $1 * 1000 }')
    echo "status_page_sites=50 status_page_days=90 status_page_bytes=$bytes status_page_requests=$n status_page_cold_ms=$cold status_page_p50_ms=$p50 status_page_p99_ms=$p99"
    stop_children
    psql "$DATABASE_URL" -qAtX -c "DROP DATABASE IF EXISTS \"$bench_db\" WITH (FORCE)" >/dev/null
    return "$status"
}

# How many validator sessions a server's log ($1, or - for stdin) says it closed
# because their session lock's lease could not be renewed in time (Redis answering
# late under overload): their validators must reconnect and resend, which the
# simulated ones do not, so their unanswered results count as lost.
sessions_closed_for_lease() {
    grep -E '"message":"lease (renewal failed until the ttl ran out|lost: the lock expired or was taken)"' "$1" \
        | grep -c ':lock:session:' || true
}

# The eon benchmark: BENCH_EON_VALIDATORS validators closed into one eon (tree,
# proofs, storage) on a scratch database, against raw Keccak and COPY rates.
run_eon_bench() {
    local profile=${BENCH_PROFILE:-release} flag=--release status=0 validators
    [ "$profile" = release ] || flag=
    cargo build $flag --bin eonbench
    local bench_db="${PG_DB}_eonbench"
    # Each size on a fresh database, to show how the eon grows (BENCH_EON_VALIDATORS
    # alone runs one size).
    for validators in ${BENCH_EON_VALIDATORS:-10000 100000 1000000}; do
        psql "$DATABASE_URL" -qAtX -c "DROP DATABASE IF EXISTS \"$bench_db\" WITH (FORCE)" -c "CREATE DATABASE \"$bench_db\"" >/dev/null
        DATABASE_URL=${DATABASE_URL%/*}/$bench_db LOG_LEVEL=warn BENCH_EON_VALIDATORS=$validators \
            "target/$profile/eonbench" || status=$?
    done
    psql "$DATABASE_URL" -qAtX -c "DROP DATABASE IF EXISTS \"$bench_db\" WITH (FORCE)" >/dev/null
    return "$status"
}

case "$MODE" in
    dev)
        provision
        supervise_settings || die "fix the RESTART_* setting above"
        ensure_contracts
        say "building"
        cargo build --workspace --bins
        run_services debug
        ;;
    prod)
        load_env
        [ "${APP_ENV:-}" = prod ] || die "APP_ENV must be prod in .env for ./run.sh prod"
        for var in "${PROD_REQUIRED[@]}"; do
            [ -n "${!var:-}" ] || die "$var is required in production"
        done
        for var in "${PROD_NOT_DEFAULT[@]}"; do
            default=$(sed -n "s/^$var=//p" .env.example)
            [ "${!var:-}" != "$default" ] || die "$var still has its dev default from .env.example"
        done
        export LOG_FORMAT=${LOG_FORMAT:-json}
        supervise_settings || die "fix the RESTART_* setting above"
        ensure_toolchain
        cargo build --release --workspace --bins
        run_services release
        ;;
    test)
        provision
        ensure_smtp_sink
        # The faults test runs a Redis server of its own (it kills and restarts it).
        command -v redis-server >/dev/null 2>&1 || apt_install redis-server
        # The contract tests compile with solc-js and start their own anvil chains.
        ensure_contracts
        # The status page's browser test drives Debian's headless Chromium.
        command -v chromium >/dev/null 2>&1 || apt_install chromium
        say "cargo fmt --check"
        cargo fmt --all -- --check
        say "cargo clippy"
        cargo clippy --workspace --all-targets -- -D warnings
        say "cargo test"
        cargo test --workspace --no-fail-fast
        run_api_fuzz
        ;;
    provision)
        # Only PostgreSQL and Redis (used by .ci/run before anything else, and handy alone).
        provision
        say "PostgreSQL and Redis are ready"
        ;;
    bench)
        # BENCH_ONLY=ingest, connections, eon or statuspage runs one of them.
        provision
        case "${BENCH_ONLY:-all}" in
            ingest) run_bench ;;
            connections) run_connections_bench ;;
            eon) run_eon_bench ;;
            statuspage) run_status_page_bench ;;
            all)
                bench_status=0
                run_bench || bench_status=$?
                run_connections_bench || bench_status=$?
                run_eon_bench || bench_status=$?
                run_status_page_bench || bench_status=$?
                exit "$bench_status"
                ;;
            *) die "BENCH_ONLY is one of ingest, connections, eon, statuspage" ;;
        esac
        ;;
    fuzz)
        # Only the API fuzzer (the last step of `test`).
        provision
        run_api_fuzz
        ;;
    *)
        die "usage: ./run.sh [dev|prod|test|bench|fuzz|provision]"
        ;;
esac
