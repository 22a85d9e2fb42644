#!/usr/bin/env bash
# Run a real single-node Apache Kafka broker (KRaft, broker+controller) on 127.0.0.1
# without Docker: the broker's jars come from Maven Central (kafka-pom.xml beside this file).
#
# Usage: deploy/local/kafka.sh fetch|start|stop|status|logs [-f]
# Exit codes: 0 ok (status: running), 1 failed (status: stopped), 2 usage, 3 a port is busy.
#
# Environment (all optional):
#   KAFKA_BOOTSTRAP_SERVERS  use this existing cluster: start/stop do nothing, status probes it
#   KAFKA_VERSION            broker version from Maven Central (default 4.1.1)
#   FUNNEL_CACHE_DIR         jar cache outside git (default ~/.cache/shop-funnel)
#   KAFKA_DATA_DIR           config, storage, logs, PID file (default <repo>/.data/kafka)
#   KAFKA_PORT               client port (default 19092)
#   KAFKA_CONTROLLER_PORT    KRaft controller port (default 19093)
#   KAFKA_HEAP               JVM max heap (default 1g)
#   KAFKA_OPTS               extra JVM options
#   KAFKA_START_TIMEOUT      seconds to wait for the broker to answer (default 60)
#   KAFKA_OWNER_PID          stop the broker once this process exits (test fixtures use it
#                            so that a killed test run leaves no broker behind)
#   KAFKA_LOG_LINES          lines `logs` prints (default 100)
#   KAFKA_GROUP_INITIAL_DELAY_MS  how long a new consumer group's first rebalance waits
#                            for more members (default 0: one worker; Kafka's own is 3000)
#   PYTHON                   interpreter for the readiness probe (default python3; stdlib only)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
readonly SCRIPT_DIR REPO_ROOT
readonly POM="$SCRIPT_DIR/kafka-pom.xml"
readonly READY_PROBE="$SCRIPT_DIR/kafka_ready.py"

readonly KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
readonly CACHE_DIR="${FUNNEL_CACHE_DIR:-$HOME/.cache/shop-funnel}"
readonly LIBS_DIR="$CACHE_DIR/kafka-$KAFKA_VERSION/libs"
readonly FETCH_MARKER="$LIBS_DIR/.fetch-complete"

# Absolute and canonical: the broker's command line embeds it, and broker_pid matches on it.
DATA_DIR="$(realpath -m "${KAFKA_DATA_DIR:-$REPO_ROOT/.data/kafka}")"
readonly DATA_DIR
readonly HOST=127.0.0.1
readonly PORT="${KAFKA_PORT:-19092}"
readonly CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
readonly HEAP="${KAFKA_HEAP:-1g}"
readonly START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
readonly GROUP_INITIAL_DELAY_MS="${KAFKA_GROUP_INITIAL_DELAY_MS:-0}"
readonly PYTHON="${PYTHON:-python3}"
readonly STOP_TIMEOUT=30
# A distinct exit code for "a port is busy", so callers that chose ports can pick others.
readonly EXIT_PORT_BUSY=3
readonly PORT_BUSY_FIX="a port is busy"

readonly PID_FILE="$DATA_DIR/kafka.pid"
readonly WATCHDOG_PID_FILE="$DATA_DIR/owner-watchdog.pid"
# Address of the broker this data dir runs, so stop/status find it without the start env.
readonly BOOTSTRAP_FILE="$DATA_DIR/bootstrap"
readonly LOG_FILE="$DATA_DIR/server.log"
# JVM output that log4j never sees: bad options, class-loading errors, crashes.
readonly STDOUT_FILE="$DATA_DIR/stdout.log"
readonly FORMAT_LOG="$DATA_DIR/format.log"
readonly STORAGE_DIR="$DATA_DIR/storage"

log() { printf '[kafka.sh] %s\n' "$*"; }
err() { printf '[kafka.sh] ERROR: %s\n' "$*" >&2; }
die() {
    err "$1"
    shift
    local hint
    for hint in "$@"; do printf '[kafka.sh]   fix: %s\n' "$hint" >&2; done
    exit "${DIE_EXIT_CODE:-1}"
}

elapsed_since() { # START_EPOCHREALTIME -> seconds with one decimal
    awk -v start="$1" -v now="$EPOCHREALTIME" 'BEGIN { printf "%.1f", now - start }'
}

# ---------------------------------------------------------------------------- fetch

fetch_fingerprint() {
    # The marker records what was fetched, so editing the pom or the version refetches.
    { printf '%s\n' "$KAFKA_VERSION"; cat "$POM"; } | sha256sum | cut -d' ' -f1
}

libs_are_fetched() {
    [[ -f "$FETCH_MARKER" && "$(cat "$FETCH_MARKER")" == "$(fetch_fingerprint)" ]]
}

cmd_fetch() {
    if libs_are_fetched; then
        log "jars for Kafka $KAFKA_VERSION already in $LIBS_DIR"
        return 0
    fi
    command -v mvn >/dev/null 2>&1 ||
        die "mvn (Maven) not found; it resolves the broker jars from Maven Central" \
            "apt-get install -y maven"
    mkdir -p "$(dirname "$LIBS_DIR")"
    # Two brokers starting at once on a cold cache must not fetch into the same folder.
    {
        flock -w 600 8 || die "another fetch holds $LIBS_DIR.lock for more than 600 s"
        libs_are_fetched || fetch_with_maven
    } 8>"$LIBS_DIR.lock"
}

fetch_with_maven() {
    local started="$EPOCHREALTIME" staging
    # Download beside the target and rename, so an interrupted fetch never looks complete.
    staging="$(mktemp -d "$LIBS_DIR.tmp.XXXXXX")"
    log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS_DIR"
    if ! mvn -B -q -f "$POM" dependency:copy-dependencies \
        -Dkafka.version="$KAFKA_VERSION" \
        -DincludeScope=runtime \
        -DoutputDirectory="$staging" >"$staging.mvn.log" 2>&1; then
        tail -n 30 "$staging.mvn.log" >&2 || true
        rm -rf "$staging" "$staging.mvn.log"
        die "Maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION" \
            "check that Maven Central is reachable and that KAFKA_VERSION exists there"
    fi
    rm -f "$staging.mvn.log"
    if [[ ! -f "$staging/kafka_2.13-$KAFKA_VERSION.jar" ]]; then
        rm -rf "$staging"
        die "Maven finished but kafka_2.13-$KAFKA_VERSION.jar was not among the fetched jars"
    fi
    fetch_fingerprint >"$staging/.fetch-complete"
    rm -rf "$LIBS_DIR"
    mv -T "$staging" "$LIBS_DIR"
    log "fetched $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars in $(elapsed_since "$started") s"
}

# ---------------------------------------------------------------------- process state

# PID of the broker serving DATA_DIR, or nothing. The command-line check guards against a
# stale PID file whose number now belongs to an unrelated process.
broker_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
        grep -qF "kafka.Kafka $DATA_DIR/server.properties" || return 1
    printf '%s\n' "$pid"
}

recorded_bootstrap() {
    if [[ -f "$BOOTSTRAP_FILE" ]]; then cat "$BOOTSTRAP_FILE"; else printf '%s:%s\n' "$HOST" "$PORT"; fi
}

broker_answers() { # BOOTSTRAP
    "$PYTHON" "$READY_PROBE" "$1" 2
}

port_in_use() { # PORT
    (: <"/dev/tcp/$HOST/$1") 2>/dev/null
}

# ------------------------------------------------------------------------ diagnostics

show_log_tail() {
    if [[ -s "$LOG_FILE" ]]; then
        err "last 30 lines of $LOG_FILE:"
        tail -n 30 "$LOG_FILE" >&2
        # The cause is often far above the tail, before a dump of the whole config.
        if grep -qE '^\[[^]]*\] (ERROR|FATAL) ' "$LOG_FILE"; then
            err "first errors in $LOG_FILE:"
            grep -m 3 -A 1 -E '^\[[^]]*\] (ERROR|FATAL) ' "$LOG_FILE" >&2 || true
        fi
    fi
    if [[ -s "$STDOUT_FILE" ]]; then
        err "last 30 lines of $STDOUT_FILE:"
        tail -n 30 "$STDOUT_FILE" >&2
    fi
}

likely_fix() {
    local logs=("$LOG_FILE" "$STDOUT_FILE" "$FORMAT_LOG")
    local existing=()
    local f
    for f in "${logs[@]}"; do [[ -f "$f" ]] && existing+=("$f"); done
    ((${#existing[@]})) || existing=(/dev/null)
    if grep -qsE 'Address already in use|BindException' "${existing[@]}"; then
        echo "$PORT_BUSY_FIX: set KAFKA_PORT / KAFKA_CONTROLLER_PORT to free ports (now $PORT / $CONTROLLER_PORT)"
    elif grep -qsE "InconsistentClusterIdException|[Ii]nvalid cluster.id|doesn't match|meta\.properties|not formatted" "${existing[@]}"; then
        echo "stale or mismatched KRaft storage: stop the broker and delete the data dir: rm -rf '$DATA_DIR'"
    elif grep -qsE 'UnsupportedClassVersionError' "${existing[@]}"; then
        echo "Java is too old (Kafka 4 needs 17+): apt-get install -y openjdk-17-jre-headless"
    elif grep -qsE 'OutOfMemoryError|Could not reserve|Invalid maximum heap size|Cannot allocate memory' "${existing[@]}"; then
        echo "the JVM could not get its heap: set KAFKA_HEAP lower (now $HEAP)"
    elif grep -qsE 'ClassNotFoundException|NoClassDefFoundError' "${existing[@]}"; then
        echo "incomplete jar cache: rm -rf '$LIBS_DIR' and run: $0 fetch"
    else
        echo "read the full logs in $DATA_DIR (server.log, stdout.log)"
    fi
}

fail_start() { # MESSAGE
    err "$1"
    show_log_tail
    local fix
    fix="$(likely_fix)"
    printf '[kafka.sh]   likely fix: %s\n' "$fix" >&2
    [[ "$fix" == "$PORT_BUSY_FIX"* ]] && exit "$EXIT_PORT_BUSY"
    exit 1
}

# ---------------------------------------------------------------------------- start

require_java() {
    command -v java >/dev/null 2>&1 ||
        die "java not found; Kafka $KAFKA_VERSION needs Java 17 or newer" \
            "apt-get install -y openjdk-17-jre-headless"
    local major
    major="$(java -version 2>&1 | sed -nE '1s/.*version "([0-9]+).*/\1/p')"
    if [[ -n "$major" && "$major" -lt 17 ]]; then
        die "java $major found; Kafka $KAFKA_VERSION needs Java 17 or newer" \
            "apt-get install -y openjdk-17-jre-headless"
    fi
}

require_python() {
    command -v "$PYTHON" >/dev/null 2>&1 ||
        die "'$PYTHON' not found; it runs the readiness probe (standard library only)" \
            "set PYTHON to a Python 3 interpreter"
}

write_server_properties() {
    cat >"$DATA_DIR/server.properties" <<EOF
# Written by deploy/local/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$STORAGE_DIR
num.partitions=4
# One node: internal topics cannot have more replicas than brokers.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer internal partitions than the default 50: the first group join and the first
# transaction create these topics, and on a laptop that is seconds of waiting.
offsets.topic.num.partitions=8
transaction.state.log.num.partitions=8
# One worker by default: do not hold the first rebalance back. Workers started together
# want Kafka's 3000: else the first to join takes every partition, then gives half up.
group.initial.rebalance.delay.ms=$GROUP_INITIAL_DELAY_MS
EOF
}

write_log4j_config() {
    cat >"$DATA_DIR/log4j2.yaml" <<EOF
# Written by deploy/local/kafka.sh on every start.
Configuration:
  Appenders:
    RollingFile:
      name: ServerLog
      fileName: "$LOG_FILE"
      filePattern: "$LOG_FILE.%i"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
      Policies:
        SizeBasedTriggeringPolicy:
          size: 50MB
      DefaultRolloverStrategy:
        max: 3
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: ServerLog
    Logger:
      # Per-request and per-partition state chatter drowns the useful lines.
      - name: kafka.request.logger
        level: WARN
      - name: state.change.logger
        level: WARN
EOF
}

random_cluster_id() {
    # A Kafka Uuid string: 16 random bytes, URL-safe base64 without padding (22 chars).
    # Like Kafka's own Uuid.randomUuid, never one starting with "-": the storage tool's
    # argument parser would take it for an option.
    local id="-"
    while [[ "$id" == -* ]]; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    done
    printf '%s\n' "$id"
}

format_storage_once() {
    [[ -f "$STORAGE_DIR/meta.properties" ]] && return 0
    local cluster_id
    cluster_id="$(random_cluster_id)"
    log "formatting KRaft storage in $STORAGE_DIR (cluster id $cluster_id)"
    # No --standalone: the quorum is given statically by controller.quorum.voters.
    if ! java -cp "$LIBS_DIR/*" kafka.tools.StorageTool format \
        -t "$cluster_id" -c "$DATA_DIR/server.properties" >"$FORMAT_LOG" 2>&1; then
        err "formatting KRaft storage failed:"
        tail -n 30 "$FORMAT_LOG" >&2
        printf '[kafka.sh]   likely fix: %s\n' "$(likely_fix)" >&2
        exit 1
    fi
}

launch_broker() {
    rm -f "$PID_FILE"
    # Keep one previous log, so diagnosis and the printed tail only see this run.
    [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.previous"
    : >"$STDOUT_FILE"
    # setsid detaches the broker from the caller's terminal and signals; the inner shell
    # records its own PID and then becomes java, so the PID file names the JVM itself.
    # 9>&- keeps the start lock from leaking into the long-lived broker.
    # shellcheck disable=SC2086,SC2016  # KAFKA_OPTS is a list of JVM options; $$ is the inner shell's
    (cd "$DATA_DIR" && exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
        java -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
        -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$DATA_DIR/log4j2.yaml" \
        ${KAFKA_OPTS:-} \
        -cp "$LIBS_DIR/*" kafka.Kafka "$DATA_DIR/server.properties" \
        >"$STDOUT_FILE" 2>&1 </dev/null 9>&-) &
    local waited=0
    until [[ -s "$PID_FILE" ]]; do
        ((waited++ < 100)) || fail_start "the broker process did not start"
        sleep 0.05
    done
}

start_owner_watchdog() { # BROKER_PID
    [[ -n "${KAFKA_OWNER_PID:-}" ]] || return 0
    # Also exits on its own once the broker is gone; `stop` ends it at once.
    # shellcheck disable=SC2016  # expanded by the inner shell
    setsid bash -c '
        echo $$ >"$0"
        owner=$1 broker=$2
        while kill -0 "$owner" 2>/dev/null && kill -0 "$broker" 2>/dev/null; do sleep 1; done
        kill -TERM "$broker" 2>/dev/null || true
    ' "$WATCHDOG_PID_FILE" "$KAFKA_OWNER_PID" "$1" >/dev/null 2>&1 </dev/null 9>&- &
}

stop_owner_watchdog() {
    [[ -f "$WATCHDOG_PID_FILE" ]] || return 0
    local pid
    pid="$(cat "$WATCHDOG_PID_FILE" 2>/dev/null || true)"
    if [[ "$pid" =~ ^[0-9]+$ ]] && grep -qs 'owner=' "/proc/$pid/cmdline"; then
        kill -TERM "$pid" 2>/dev/null || true
    fi
    rm -f "$WATCHDOG_PID_FILE"
}

wait_until_ready() { # PID
    local pid="$1" bootstrap deadline
    bootstrap="$(recorded_bootstrap)"
    deadline=$((SECONDS + START_TIMEOUT))
    until broker_answers "$bootstrap"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            fail_start "the broker exited during startup"
        fi
        if ((SECONDS >= deadline)); then
            stop_pid "$pid"
            rm -f "$PID_FILE"
            fail_start "the broker did not answer on $bootstrap within ${START_TIMEOUT}s (stopped it)"
        fi
        sleep 0.25
    done
}

take_lock() {
    mkdir -p "$DATA_DIR"
    exec 9>"$DATA_DIR/.lock"
    flock -w 120 9 || die "another kafka.sh holds $DATA_DIR/.lock for more than 120 s"
}

cmd_start() {
    if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
        log "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS is set: using that existing cluster, starting nothing"
        return 0
    fi
    local started="$EPOCHREALTIME" pid
    [[ "$GROUP_INITIAL_DELAY_MS" =~ ^[0-9]+$ ]] ||
        die "KAFKA_GROUP_INITIAL_DELAY_MS is '$GROUP_INITIAL_DELAY_MS', not a whole number of milliseconds" \
            "unset it (0), or set it to e.g. 3000 (Kafka's default) when several workers start together"
    require_python
    take_lock
    if pid="$(broker_pid)"; then
        wait_until_ready "$pid"
        log "already running (pid $pid) at $(recorded_bootstrap)"
        return 0
    fi
    rm -f "$PID_FILE"
    require_java
    cmd_fetch
    local port
    for port in "$PORT" "$CONTROLLER_PORT"; do
        if port_in_use "$port"; then
            DIE_EXIT_CODE="$EXIT_PORT_BUSY" die "port $port on $HOST is already in use by another process" \
                "set KAFKA_PORT / KAFKA_CONTROLLER_PORT to free ports (now $PORT / $CONTROLLER_PORT)" \
                "or stop whatever listens there (ss -ltnp 'sport = :$port')"
        fi
    done
    local launch_started="$EPOCHREALTIME"
    write_server_properties
    write_log4j_config
    printf '%s:%s\n' "$HOST" "$PORT" >"$BOOTSTRAP_FILE"
    format_storage_once
    launch_broker
    pid="$(cat "$PID_FILE")"
    start_owner_watchdog "$pid"
    wait_until_ready "$pid"
    log "started Kafka $KAFKA_VERSION (pid $pid) at $HOST:$PORT in $(elapsed_since "$launch_started") s" \
        "($(elapsed_since "$started") s including checks and fetch); data in $DATA_DIR"
}

# ----------------------------------------------------------------------------- stop

stop_pid() { # PID
    local pid="$1" deadline
    kill -TERM "$pid" 2>/dev/null || return 0
    deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            err "broker (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    # SIGKILL is asynchronous: wait until the kernel has really removed the process.
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

cmd_stop() {
    if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
        log "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS is set: not managed here, stopping nothing"
        return 0
    fi
    [[ -d "$DATA_DIR" ]] || { log "not running (no data dir $DATA_DIR)"; return 0; }
    take_lock
    local pid started="$EPOCHREALTIME"
    if ! pid="$(broker_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    stop_owner_watchdog
    stop_pid "$pid"
    rm -f "$PID_FILE"
    log "stopped (pid $pid) in $(elapsed_since "$started") s"
}

# --------------------------------------------------------------------- status, logs

cmd_status() {
    if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
        require_python
        if broker_answers "$KAFKA_BOOTSTRAP_SERVERS"; then
            log "running (existing cluster) at $KAFKA_BOOTSTRAP_SERVERS"
            return 0
        fi
        log "stopped: existing cluster at $KAFKA_BOOTSTRAP_SERVERS does not answer"
        return 1
    fi
    local pid
    if pid="$(broker_pid)"; then
        local bootstrap
        bootstrap="$(recorded_bootstrap)"
        if command -v "$PYTHON" >/dev/null 2>&1 && ! broker_answers "$bootstrap"; then
            log "starting (pid $pid) at $bootstrap: process alive, not answering yet"
            return 1
        fi
        log "running (pid $pid) at $bootstrap"
        return 0
    fi
    log "stopped (data dir $DATA_DIR)"
    return 1
}

cmd_logs() {
    [[ -f "$LOG_FILE" ]] || die "no log yet at $LOG_FILE" "start the broker: $0 start"
    if [[ "${1:-}" == "-f" ]]; then
        exec tail -n 100 -F "$LOG_FILE"
    fi
    tail -n "${KAFKA_LOG_LINES:-100}" "$LOG_FILE"
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

main() {
    local command="${1:-}"
    shift || true
    case "$command" in
    fetch) cmd_fetch ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    logs) cmd_logs "$@" ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
