# Helpers shared by the measuring scripts (daemon-memory.sh, idle-footprint.sh): child processes that
# are stopped in reverse order on exit, and waiting for a line a child prints. Source it after setting
# `work` (the scratch folder) and `keep` (1 keeps it).

pids=()

# Stops the children newest first (the daemon before the simulators it talks to): SIGINT, then up to 5 s
# for each to exit, then SIGKILL. Removes the work folder unless keep=1.
stop_children() {
    local pid i
    for (( i=${#pids[@]}-1; i>=0; i-- )); do kill -INT "${pids[$i]}" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "${keep:-0}" = 1 ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}
trap stop_children EXIT
trap 'exit 130' INT TERM

# await_line FILE PATTERN: waits up to 30 s for a line matching PATTERN in FILE and prints it.
await_line() {
    local file="$1" pattern="$2"
    for _ in $(seq 300); do
        if grep -m1 -E "$pattern" "$file" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "timed out waiting for '$pattern' in $file:" >&2
    cat "$file" >&2
    return 1
}
