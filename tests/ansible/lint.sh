#!/usr/bin/env bash
# Fast checks of the Ansible deployment (ctest ansible/lint, ~30 s; the
# multi-host test is tests/ansible/multihost.sh):
#   1. ansible-playbook --syntax-check of every playbook
#   2. ansible-lint (production profile, offline) of ansible/ and tests/ansible/
#   3. the production example inventory renders without error (render.yml,
#      connection local: nothing is contacted); its cluster config loads in
#      the real config loader (trove-ingestor); each daemon passes the
#      exposure check with it (10.20.0.x: allowed by trove/allow_unauthenticated)
#      and is refused without that line; every systemd unit passes
#      `systemd-analyze verify` with no output at all (it exits 0 on some
#      errors, so any output fails)
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
for playbook in site.yml upgrade.yml chaos.yml; do
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
mkdir -p "$WORK/prod" "$WORK/opt/current/bin"
for prog in trove-broker trove-ingestor trove-scorer trove-reconciler trovectl; do
    ln -s "$BUILD/$prog" "$WORK/opt/current/bin/$prog"
done
if out=$(cd "$HERE" && ansible-playbook -i "$REPO/ansible/inventories/production" render.yml \
            -e trove_render_dir="$WORK/prod" -e trove_prefix="$WORK/opt" 2>&1); then
    ok "production inventory rendered: $(find "$WORK/prod" -name '*.service' | wc -l) units, $(find "$WORK/prod" -name trove.cfg | wc -l) configs"
else
    fail "render the production inventory"; echo "$out"
fi
configs=$(find "$WORK/prod" -name trove.cfg -exec b2sum {} + | cut -d' ' -f1 | sort -u | wc -l)
[ "$configs" -eq 1 ] && ok "every host gets the same cluster config" || fail "$configs different cluster configs"
cfg=$(find "$WORK/prod" -name trove.cfg | head -n 1)
# An ingestor name that is not in the config: the loader parses and checks the
# whole file (shard map, sections) and stops before binding anything.
out=$("$BUILD/trove-ingestor" --config "$cfg" --name config-check 2>&1)
if grep -q "ingestor 'config-check' is not in" <<<"$out"; then
    ok "the rendered config loads (trove_cfg_load)"
else
    fail "the rendered config does not load: $out"
fi
# The exposure check (lib/trove_harden, docs/security.md "Hardening"): the
# production hosts bind 10.20.0.x, so each daemon must start past it with
# trove/allow_unauthenticated = yes (a warning per endpoint), and refuse the
# same config without that line. Each stage runs on a copy whose paths point
# into $WORK; it stops on its own when it cannot bind the 10.20.0.x address
# (timeout: in case this machine has it).
datadir=$(sed -n 's#^ *rules = "\(/.*\)/rules"$#\1#p' "$cfg")
sed "s#\"${datadir:-/var/lib/trove}/#\"$WORK/var/#" "$cfg" > "$WORK/exposed.cfg"
grep -v '^[[:space:]]*allow_unauthenticated = yes' "$WORK/exposed.cfg" > "$WORK/refused.cfg"
if awk '/^[^ #]/ {s = $1} s == "trove" && $1 == "allow_unauthenticated" && $3 == "yes" {f = 1} END {exit !f}' "$cfg"; then
    ok "the rendered config says trove/allow_unauthenticated = yes"
else
    fail "the rendered config has no allow_unauthenticated = yes in its trove section"
fi
for daemon in "trove-broker" "trove-ingestor --name i0" "trove-scorer --shard s0" "trove-reconciler --shard s0"; do
    read -r prog args <<<"$daemon"
    # shellcheck disable=SC2086  # $args: an option and its value
    out=$(timeout 10 "$BUILD/$prog" --config "$WORK/exposed.cfg" $args 2>&1)
    # shellcheck disable=SC2086
    refused=$(timeout 10 "$BUILD/$prog" --config "$WORK/refused.cfg" $args 2>&1)
    if grep -q "has no authentication" <<<"$out" || ! grep -q "(trove/allow_unauthenticated = yes)" <<<"$out"; then
        fail "$daemon did not pass the exposure check with the rendered config: $out"
    elif ! grep -q "reachable from other hosts and has no authentication" <<<"$refused"; then
        fail "$daemon started without trove/allow_unauthenticated: $refused"
    else
        ok "$daemon: exposure check passed ($(grep -c 'without authentication' <<<"$out") endpoints warned), refused without the flag"
    fi
done
nunits=0
for unit in "$WORK"/prod/*/*.service; do
    [ -e "$unit" ] || continue
    nunits=$((nunits + 1))
    out=$(cd "$(dirname "$unit")" && systemd-analyze verify "./$(basename "$unit")" 2>&1)
    [ -z "$out" ] || fail "systemd-analyze verify ${unit#"$WORK"/prod/}: $out"
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
