# Service supervision for run.sh (sourced; bash 5.1 or later).
#
#   supervise_start [--essential] NAME COMMAND...   start COMMAND now, supervised
#   supervise_wait                                  block until stopped; then stop all
#   supervise_stop                                  stop every supervised service
#
# Each service runs under its own small loop (a subshell): when the service exits,
# the loop says so and starts it again after a delay that doubles from
# RESTART_BACKOFF_INITIAL_SECONDS (1) up to RESTART_BACKOFF_MAX_SECONDS (30); a
# service that stayed up RESTART_RESET_AFTER_SECONDS (60) starts over at the initial
# delay. The other services keep running meanwhile. An --essential service is not
# restarted (the dev chain: a new anvil would be an empty chain): its exit stops
# everything, as any exit did before supervision.
#
# Stopping (SIGINT/SIGTERM to the shell that sourced this, or supervise_stop) sends
# SIGTERM to every loop; a loop then stops its service (SIGKILL after
# RESTART_STOP_TIMEOUT_SECONDS, 30) and never restarts it. Output is prefixed with
# [NAME]; the supervisor's own lines start with `==>` and go to its stderr.

# The supervisor's messages go to the stderr it was sourced with, never through a
# service's prefixer.
exec {_SUP_LOG_FD}>&2
_SUP_LOOPS=()
_SUP_PREFIXERS=()

_sup_say() { printf '==> %s\n' "$*" >&"$_SUP_LOG_FD"; }

# Reads a whole-seconds setting, refusing anything but an integer in 1..86400 (a
# typo must not turn into a busy restart loop or a service never restarted).
_sup_seconds() {
    local var=$1 default=$2 value
    value=${!var:-$default}
    if ! [[ $value =~ ^[0-9]+$ ]] || ((value < 1 || value > 86400)); then
        printf 'supervise: %s=%q is invalid: must be whole seconds between 1 and 86400\n' \
            "$var" "$value" >&"$_SUP_LOG_FD"
        return 1
    fi
    printf '%s' "$value"
}

# Reads and checks every setting; run.sh calls it before starting anything.
supervise_settings() {
    _SUP_INITIAL=$(_sup_seconds RESTART_BACKOFF_INITIAL_SECONDS 1) || return 1
    _SUP_MAX=$(_sup_seconds RESTART_BACKOFF_MAX_SECONDS 30) || return 1
    _SUP_RESET=$(_sup_seconds RESTART_RESET_AFTER_SECONDS 60) || return 1
    _SUP_STOP_TIMEOUT=$(_sup_seconds RESTART_STOP_TIMEOUT_SECONDS 30) || return 1
    ((_SUP_MAX >= _SUP_INITIAL)) || _SUP_MAX=$_SUP_INITIAL
}

# The loop around one service; runs in its own subshell.
_sup_loop() {
    local name=$1 essential=$2
    shift 2
    # A non-zero status here is information, not a reason for this loop to end.
    set +e
    local child='' sleeper='' stopping='' status=0 restarts=0 waited
    local delay=$_SUP_INITIAL started
    _sup_loop_stop() {
        stopping=1
        [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null
        [ -n "$child" ] && kill -TERM "$child" 2>/dev/null
    }
    trap _sup_loop_stop TERM INT
    while :; do
        started=$SECONDS
        "$@" &
        child=$!
        # (stderr: not bash's own "Killed" report; the loop reports the exit below.)
        wait "$child" 2>/dev/null
        status=$?
        # A trap interrupts `wait` (status > 128) while the service is still running.
        while ((status > 128)) && kill -0 "$child" 2>/dev/null; do
            if [ -n "$stopping" ]; then
                # A service that ignores SIGTERM is killed, so stopping always ends.
                waited=0
                while kill -0 "$child" 2>/dev/null && ((waited < _SUP_STOP_TIMEOUT * 5)); do
                    sleep 0.2
                    waited=$((waited + 1))
                done
                kill -KILL "$child" 2>/dev/null
            fi
            wait "$child" 2>/dev/null
            status=$?
        done
        child=''
        [ -n "$stopping" ] && exit 0
        if [ "$essential" = 1 ]; then
            _sup_say "$name exited (status $status); it is not restarted: stopping everything"
            exit $((status == 0 ? 1 : status))
        fi
        ((SECONDS - started >= _SUP_RESET)) && delay=$_SUP_INITIAL
        restarts=$((restarts + 1))
        _sup_say "$name exited (status $status); restarting in $delay s (restart $restarts)"
        sleep "$delay" &
        sleeper=$!
        wait "$sleeper" 2>/dev/null
        sleeper=''
        [ -n "$stopping" ] && exit 0
        delay=$((delay * 2 > _SUP_MAX ? _SUP_MAX : delay * 2))
    done
}

# Starts "$@" under supervision, its output prefixed with [NAME].
supervise_start() {
    local essential=0
    if [ "$1" = --essential ]; then
        essential=1
        shift
    fi
    local name=$1
    shift
    [ -n "${_SUP_INITIAL:-}" ] || supervise_settings || return 1
    local out
    # The prefixer ignores Ctrl-C (the terminal sends it to every process): it ends
    # when its service and loop close the pipe, so the services' shutdown is shown.
    exec {out}> >(trap '' INT TERM; exec sed -u "s/^/[$name] /")
    _SUP_PREFIXERS+=("$!")
    _sup_loop "$name" "$essential" "$@" >&"$out" 2>&1 &
    _SUP_LOOPS+=("$!")
    exec {out}>&-
}

# Blocks until an essential service exits (returns its status) or the shell's
# INT/TERM trap stops everything; stops every service before returning.
supervise_wait() {
    local status=0
    if [ ${#_SUP_LOOPS[@]} -gt 0 ]; then
        wait -n "${_SUP_LOOPS[@]}" || status=$?
    fi
    supervise_stop
    return "$status"
}

# Stops every supervised service and waits for them and their prefixers.
supervise_stop() {
    [ ${#_SUP_LOOPS[@]} -gt 0 ] || return 0
    # Taken first, so a second signal arriving meanwhile finds nothing left to stop.
    local loops=("${_SUP_LOOPS[@]}") prefixers=("${_SUP_PREFIXERS[@]}")
    _SUP_LOOPS=()
    _SUP_PREFIXERS=()
    _sup_say "stopping ${#loops[@]} services"
    kill -TERM "${loops[@]}" 2>/dev/null || true
    wait "${loops[@]}" 2>/dev/null || true
    wait "${prefixers[@]}" 2>/dev/null || true
}
