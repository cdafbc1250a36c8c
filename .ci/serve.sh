# Sourced by the CI scripts that need a running server: `start_server BINARY DATA_DIR [ARGS...]`
# starts `BINARY serve` on a free loopback port with DATA_DIR as its data directory (and ARGS,
# e.g. --demo), waits until it answers /livez and /readyz, and sets `url` (its GraphQL endpoint),
# `server_out` (its standard output: the banner) and `server`; `stop_server` ends it. Callers
# trap EXIT to call `stop_server`.

server=""
url=""
server_out=""

start_server() {
    local binary="$1" data="$2"
    shift 2
    server_out="$data.stdout"
    # Port 0: the banner names the port the server bound.
    "$binary" serve --data-dir "$data" --listen 127.0.0.1:0 --log-level warn "$@" \
        >"$server_out" 2>"$data.stderr" &
    server=$!
    # Generous: a --demo start seeds four weeks of history first.
    for _ in $(seq 1 6000); do
        url="$(sed -n 's|.*GraphiQL *\(http://[^ ]*/graphql\).*|\1|p' "$server_out" | head -n 1)"
        # Live, then ready: the read models have caught up with the history (a --demo start
        # seeds it first; an example run before that finds no conversation yet).
        if [ -n "$url" ] && curl -sf "${url%/graphql}/livez" >/dev/null \
            && curl -sf "${url%/graphql}/readyz" >/dev/null; then
            return 0
        fi
        if ! kill -0 "$server" 2>/dev/null; then
            echo "switchboard serve exited:" >&2
            cat "$data.stderr" >&2
            return 1
        fi
        url=""
        sleep 0.1
    done
    echo "switchboard serve was not live and ready within 10 minutes" >&2
    cat "$data.stderr" >&2
    return 1
}

stop_server() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
        server=""
    fi
}
