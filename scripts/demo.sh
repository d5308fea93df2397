#!/usr/bin/env bash
# README's first command: build Trove (installing Debian packages if missing),
# start a local cluster (broker, one ingestor, two scorer shards) under
# `trovectl up` supervision, and feed it demo traffic from several simulated
# sources while printing progress. The cluster keeps running afterwards;
# stop it with `build/trovectl down --dir trove-data`.
#
# Environment: TROVE_DIR (default ./trove-data), TROVE_DEMO_EVENTS (default
# 100000), TROVE_DEMO_RATE (events/s, default 5000), TROVE_PORT_BASE (7400).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${TROVE_DIR:-$PWD/trove-data}
EVENTS=${TROVE_DEMO_EVENTS:-100000}
RATE=${TROVE_DEMO_RATE:-5000}

bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target trovectl trove-broker trove-ingestor trove-scorer trove-load >/dev/null

build/trovectl up --dir "$DIR" --port-base "${TROVE_PORT_BASE:-7400}" --detach
build/trovectl status --dir "$DIR"
echo
echo "Feeding $EVENTS demo events at $RATE events/s from sources web, mobile, game, partner..."
build/trove-load --dir "$DIR" --events "$EVENTS" --rate "$RATE" --users 1000 --dup-ratio 0.05 \
    --ooo-ratio 0.05 --sources web,mobile,game,partner --awards --report-every 1
echo
# One real coin and user to look at.
sample=$(build/trovectl tail --dir "$DIR" --from-start --count 1 --json 2>/dev/null || true)
user=$(jq -r '.user // empty' <<<"$sample" 2>/dev/null || true)
coin=$(jq -r '.id // empty' <<<"$sample" 2>/dev/null || true)
cat <<TXT
The cluster is still running (data in $DIR). Try:
  build/trovectl status  --dir $DIR
  build/trovectl tail    --dir $DIR
  build/trovectl balance --dir $DIR ${user:-<user>}
  build/trovectl coins   --dir $DIR ${user:-<user>}
  build/trovectl coin    --dir $DIR ${coin:-<coin id>}
  curl -s -H "Authorization: Bearer \$(cat $DIR/web.key)" http://127.0.0.1:$((${TROVE_PORT_BASE:-7400} + 250))/v1/users/${user:-<user>}/balance
  build/trovectl down    --dir $DIR
The operator console: http://127.0.0.1:$((${TROVE_PORT_BASE:-7400} + 250))/console/ (it asks for a key with
the admin scope: docs/console.md says how to make one); live awards:
  curl -N -H "Authorization: Bearer \$(cat $DIR/web.key)" http://127.0.0.1:$((${TROVE_PORT_BASE:-7400} + 250))/v1/awards/stream
TXT
