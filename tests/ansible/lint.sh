#!/usr/bin/env bash
# Fast checks of the Ansible deployment (ctest ansible/lint, ~50 s; the
# multi-host test is tests/ansible/multihost.sh):
#   1. ansible-playbook --syntax-check of every playbook
#   2. ansible-lint (production profile, offline) of ansible/ and tests/ansible/
#   3. the production example inventory renders without error (render.yml,
#      connection local: nothing is contacted), with CURVE (the default) and
#      with trove_curve=false; both cluster configs load in the real config
#      loader (trove-ingestor); the CURVE one says curve = yes and names
#      each server's key, the other says nothing of CURVE; each daemon
#      passes the exposure check with them (10.20.0.x: allowed by
#      trove/allow_unauthenticated) and is refused without that line when it
#      binds a plain endpoint (with CURVE: /metrics only); every systemd
#      unit passes `systemd-analyze verify` with no output at all (it exits
#      0 on some errors, so any output fails)
#   4. a broken inventory (inventories/bad) is reported, mistake by mistake
#
# usage: tests/ansible/lint.sh BUILD_DIR
# Exit 0 when everything passed, 1 otherwise, 77 when a tool is missing
# (scripts/install-deps.sh installs them all).
set -uo pipefail
export LC_ALL=C.UTF-8 ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 NO_COLOR=1

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd) || exit 1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
for tool in ansible-playbook ansible-lint systemd-analyze; do
    if ! command -v "$tool" >/dev/null; then
        echo "SKIP: $tool is not installed (scripts/install-deps.sh installs it)"
        exit 77
    fi
done
WORK=$(mktemp -d /tmp/trove-ansible-lint-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export ANSIBLE_LOCAL_TEMP=$WORK/tmp ANSIBLE_ROLES_PATH=$REPO/ansible/roles
FAILED=0
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
ok() { echo "ok: $*"; }

# 1. syntax
for playbook in site.yml upgrade.yml chaos.yml backup.yml restore.yml; do
    if out=$(cd "$REPO/ansible" && ansible-playbook -i inventories/production --syntax-check "$playbook" 2>&1); then
        ok "syntax-check $playbook"
    else
        fail "syntax-check $playbook"; echo "$out"
    fi
done

# 2. lint (--offline: no schema refresh or collection install over the network)
if out=$(cd "$REPO/ansible" && ansible-lint --offline --nocolor 2>&1); then
    ok "ansible-lint ansible/: $(tail -n 1 <<<"$out")"
else
    fail "ansible-lint ansible/"; echo "$out"
fi
if out=$(cd "$HERE" && ansible-lint --offline --nocolor -c "$REPO/ansible/.ansible-lint" render.yml 2>&1); then
    ok "ansible-lint tests/ansible/render.yml: $(tail -n 1 <<<"$out")"
else
    fail "ansible-lint tests/ansible/render.yml"; echo "$out"
fi

# 3. the production example, rendered; units point at this build's executables
mkdir -p "$WORK/prod-curve" "$WORK/prod-plain" "$WORK/opt/current/bin"
for prog in trove-broker trove-ingestor trove-scorer trove-reconciler trovectl; do
    ln -s "$BUILD/$prog" "$WORK/opt/current/bin/$prog"
done
# Twice: as the example says (CURVE on, the default) and with trove_curve=false.
for variant in curve plain; do
    extra=()
    [ "$variant" = plain ] && extra=(-e trove_curve=false)
    if out=$(cd "$HERE" && ansible-playbook -i "$REPO/ansible/inventories/production" render.yml \
                -e trove_render_dir="$WORK/prod-$variant" -e trove_prefix="$WORK/opt" "${extra[@]}" 2>&1); then
        ok "production inventory rendered ($variant): $(find "$WORK/prod-$variant" -name '*.service' | wc -l) units, $(find "$WORK/prod-$variant" -name trove.cfg | wc -l) configs"
    else
        fail "render the production inventory ($variant)"; echo "$out"
    fi
    configs=$(find "$WORK/prod-$variant" -name trove.cfg -exec b2sum {} + | cut -d' ' -f1 | sort -u | wc -l)
    [ "$configs" -eq 1 ] && ok "every host gets the same cluster config ($variant)" || fail "$configs different cluster configs ($variant)"
done
cfg=$(find "$WORK/prod-curve" -name trove.cfg | head -n 1)
plain=$(find "$WORK/prod-plain" -name trove.cfg | head -n 1)
# An ingestor name that is not in the config: the loader parses and checks the
# whole file (shard map, sections, with CURVE every server's key) and stops
# before binding anything.
for c in "$cfg" "$plain"; do
    out=$("$BUILD/trove-ingestor" --config "$c" --name config-check 2>&1)
    if grep -q "ingestor 'config-check' is not in" <<<"$out"; then
        ok "the rendered config loads (trove_cfg_load): ${c#"$WORK"/}"
    else
        fail "the rendered config does not load: ${c#"$WORK"/}: $out"
    fi
done
# CURVE: trove/curve = yes, the curve section, and the key of every server,
# each the key of the host that runs it (render.yml's placeholder keys: the
# SHA-1 of the host name); none of it with trove_curve=false.
for h in "$WORK"/prod-curve/*/; do
    h=$(basename "$h")
    echo "$h $(printf '%s' "$h" | sha1sum | cut -d' ' -f1)"
done > "$WORK/keys.txt"
if out=$(awk -v keys="$WORK/keys.txt" '
        BEGIN { while ((getline l < keys) > 0) { split(l, a, " "); key[a[1]] = a[2] } }
        /^[^ #]/ { s = $1 }
        s == "trove" && $1 == "curve" && $3 == "yes" { on = 1 }
        s == "curve" && $1 == "cert" && $3 == "\"/etc/trove/curve/host.cert\"" { cert = 1 }
        s == "curve" && $1 == "peers" && $3 == "\"/etc/trove/curve/peers\"" { peers = 1 }
        /^#   Host / { host = $3; sub(/[.]$/, "", host) }
        /^    #   host / { host = $3; sub(/;$/, "", host); rec = /its reconciler on host/ ? $NF : "" }
        s != "curve" && $1 == "endpoint" { servers++ }
        s == "scorer" && $1 == "events" { servers++ }
        $1 == "reconcile" { recs++ }
        s == "broker" && $1 == "pub" { servers++ }
        function check(h) { v = $3; gsub(/"/, "", v); if (v != key[h]) { print $1 " " v " (" s ") is not the key of host " h; bad = 1 } }
        $1 == "curve_key" { n++; check(host) }
        $1 == "reconcile_key" { r++; check(rec) }
        END {
            if (!on) print "no curve = yes in the trove section"
            if (!cert || !peers) print "no curve section with cert and peers in " FILENAME
            if (n != servers) print n " curve_key for " servers " servers"
            if (r != recs) print r " reconcile_key for " recs " reconcilers"
            exit !(on && cert && peers && n == servers && r == recs && !bad)
        }' "$cfg"); then
    ok "CURVE in the rendered config: curve = yes, the curve section, $(grep -c 'curve_key = ' "$cfg") curve_key and $(grep -c 'reconcile_key = ' "$cfg") reconcile_key, each its host's"
else
    fail "CURVE settings of the rendered config: $out"
fi
grep -q curve "$plain" && fail "trove_curve=false still renders CURVE settings: $(grep curve "$plain")"
# The exposure check (lib/daemon/trove_harden, docs/security.md "Hardening"): the
# production hosts bind 10.20.0.x. /metrics is plain HTTP, and so is every
# ZeroMQ endpoint without CURVE: each daemon must start past the check with
# trove/allow_unauthenticated = yes (a warning per plain endpoint), and
# refuse the same config without that line when it binds any; with CURVE
# the reconciler (no /metrics) needs no flag. Each daemon runs on a copy
# whose paths point into $WORK (with CURVE, a certificate made by this
# build's `trovectl curve new`) inside a private network namespace holding
# only loopback (scripts/loopback-only.sh --guard): it stops on its own when
# it cannot bind the 10.20.0.x address, and must not have tried to reach
# any other host before that (daemons bind before they connect).
mkdir -m 0700 -p "$WORK/curve/peers"
if ! out=$("$BUILD/trovectl" curve new "$WORK/curve/host.cert" --name lint 2>&1); then
    fail "trovectl curve new: $out"
fi
# exposure LABEL CFG MODE: MODE all (no CURVE: every endpoint is plain) or
# metrics (CURVE: /metrics only).
exposure() {
    local label=$1 config=$2 mode=$3 datadir daemon prog args out refused warned plainwarned expected
    datadir=$(sed -n 's#^ *rules = "\(/.*\)/rules"$#\1#p' "$config")
    sed -e "s#\"${datadir:-/var/lib/trove}/#\"$WORK/var/#" -e "s#\"/etc/trove/curve/#\"$WORK/curve/#" "$config" > "$WORK/exposed-$label.cfg"
    grep -v '^[[:space:]]*allow_unauthenticated = yes' "$WORK/exposed-$label.cfg" > "$WORK/refused-$label.cfg"
    if awk '/^[^ #]/ {s = $1} s == "trove" && $1 == "allow_unauthenticated" && $3 == "yes" {f = 1} END {exit !f}' "$config"; then
        ok "the rendered config ($label) says trove/allow_unauthenticated = yes"
    else
        fail "the rendered config ($label) has no allow_unauthenticated = yes in its trove section"
    fi
    for daemon in "trove-broker" "trove-ingestor --name i0" "trove-scorer --shard s0" "trove-reconciler --shard s0"; do
        read -r prog args <<<"$daemon"
        # shellcheck disable=SC2086  # $args: an option and its value
        out=$(timeout 10 "$REPO/scripts/loopback-only.sh" --guard "$BUILD/$prog" --config "$WORK/exposed-$label.cfg" $args 2>&1)
        # shellcheck disable=SC2086
        refused=$(timeout 10 "$REPO/scripts/loopback-only.sh" --guard "$BUILD/$prog" --config "$WORK/refused-$label.cfg" $args 2>&1)
        if grep -q "loopback-only: FAIL" <<<"$out"$'\n'"$refused"; then
            fail "$daemon ($label) tried to reach another host before it stopped: $(grep -h 'loopback-only' <<<"$out"$'\n'"$refused")"
            continue
        elif ! grep -q "loopback-only: no attempt" <<<"$out" || ! grep -q "loopback-only: no attempt" <<<"$refused"; then
            fail "$daemon ($label) did not run in a loopback-only namespace: $out $refused"
            continue
        fi
        warned=$(grep -c 'without authentication' <<<"$out")
        plainwarned=$(grep 'without authentication' <<<"$out" | grep -vc ': metrics ')
        if grep -q "has no authentication" <<<"$out"; then
            fail "$daemon ($label) did not pass the exposure check with the rendered config: $out"
        elif [ "$mode" = all ]; then
            if [ "$warned" -eq 0 ]; then
                fail "$daemon ($label): no endpoint warned: $out"
            elif ! grep -q "reachable from other hosts and has no authentication" <<<"$refused"; then
                fail "$daemon ($label) started without trove/allow_unauthenticated: $refused"
            else
                ok "$daemon ($label): exposure check passed ($warned endpoints warned), refused without the flag"
            fi
        else
            expected=1
            [ "$prog" = trove-reconciler ] && expected=0
            if [ "$warned" -ne "$expected" ] || [ "$plainwarned" -ne 0 ]; then
                fail "$daemon ($label): $warned endpoints warned ($plainwarned not /metrics), expected $expected (/metrics only): $out"
            elif [ "$expected" -eq 1 ] && ! grep -q ": metrics .* is reachable from other hosts and has no authentication" <<<"$refused"; then
                fail "$daemon ($label) started without trove/allow_unauthenticated: $refused"
            elif [ "$expected" -eq 0 ] && grep -q "has no authentication" <<<"$refused"; then
                fail "$daemon ($label) refused its CURVE endpoints without trove/allow_unauthenticated: $refused"
            elif [ "$expected" -eq 1 ]; then
                ok "$daemon ($label): exposure check passed (only /metrics warned), refused without the flag"
            else
                ok "$daemon ($label): exposure check passed (nothing warned: CURVE endpoints only), with or without the flag"
            fi
        fi
    done
}
exposure curve "$cfg" metrics
exposure plain "$plain" all
nunits=0
for unit in "$WORK"/prod-curve/*/*.service; do
    [ -e "$unit" ] || continue
    nunits=$((nunits + 1))
    out=$(cd "$(dirname "$unit")" && systemd-analyze verify "./$(basename "$unit")" 2>&1)
    [ -z "$out" ] || fail "systemd-analyze verify ${unit#"$WORK"/prod-curve/}: $out"
done
[ "$nunits" -gt 0 ] && ok "systemd-analyze verify: $nunits units, no output" || fail "no unit rendered"

# 4. mistakes in an inventory are reported
mkdir -p "$WORK/bad"
(cd "$HERE" && ansible-playbook -i inventories/bad render.yml -e trove_render_dir="$WORK/bad" \
    -e trove_expect_errors=1 > "$WORK/bad.log" 2>&1) || { fail "render the bad inventory"; cat "$WORK/bad.log"; }
for expected in "group brokers must hold exactly one host" \
                "ingestor ingest-1 must be named i0 .. i99" \
                "scorer shard s0 is given to more than one host" \
                "reconciler for s5, which is not a scorer shard" \
                "trove_address scorer-a.example is not an IPv4 address" \
                "10.9.9.9 is outside 127.0.0.0/8"; do
    grep -qF "$expected" "$WORK/bad/errors.txt" 2>/dev/null || fail "bad inventory: no error '$expected'"
done
[ "$FAILED" -eq 0 ] && ok "the bad inventory's $(wc -l < "$WORK/bad/errors.txt") mistakes are reported"

echo
if [ "$FAILED" -eq 0 ]; then echo "ansible lint: PASS"; exit 0; fi
echo "ansible lint: FAIL ($FAILED)"
exit 1
