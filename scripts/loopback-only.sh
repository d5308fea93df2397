#!/usr/bin/env bash
#   Run a command in a private network namespace that holds nothing but
#   loopback (127.0.0.0/8, ::1): whatever the command tries, no packet can
#   reach another machine, and an attempt to reach one fails at once.
#
#   usage: scripts/loopback-only.sh [--guard] [--] COMMAND [ARGS...]
#
#   --guard   also judge the command: every attempt to send to an address
#             that is not loopback (a TCP connect, a UDP datagram, IPv4 or
#             IPv6) fails there with "network unreachable" and is counted
#             by the kernel in that namespace (/proc/net/snmp OutNoRoutes,
#             /proc/net/snmp6 Ip6OutNoRoutes). When the counters moved, say
#             how much and exit 1 even if the command succeeded.
#
#   The namespace is made with `unshare -n` as root, else `unshare -rn` (a
#   user namespace; the command then runs as a mapped root). When neither
#   is allowed, say why and exit 1: nothing runs with the host's network.
#   Otherwise exit with the command's status (or 1 for --guard above).
#   Test scripts use it for every daemon started on a config that names
#   other hosts (tests/ansible/lint.sh), and scripts/test.sh runs the whole
#   suite under --guard (README.md, "Tests never leave the machine").
set -uo pipefail

GUARD=0
if [ "${1:-}" = --guard ]; then GUARD=1; shift; fi
[ "${1:-}" = -- ] && shift
[ $# -gt 0 ] || { sed -n '5,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

#   Inside the namespace: this script again, with the marker set.
if [ "${TROVE_LOOPBACK_INSIDE:-}" = ns ]; then
    unset TROVE_LOOPBACK_INSIDE
    if ! ip link set lo up 2>/dev/null; then
        echo "loopback-only: cannot bring up lo in the new namespace (is iproute2 installed?)" >&2
        exit 1
    fi
    #   Only loopback, nothing else: a namespace that somehow holds another
    #   interface is not what we promised.
    others=$(ip -o link show | awk -F': ' '$2 != "lo" {print $2}')
    if [ -n "$others" ]; then
        echo "loopback-only: the namespace holds interfaces besides lo: $others" >&2
        exit 1
    fi
    noroutes() {
        local v4 v6
        v4=$(awk '$1 == "Ip:" { if (!h) { for (i = 2; i <= NF; i++) if ($i == "OutNoRoutes") c = i; h = 1 } else print $c }' /proc/net/snmp)
        v6=$(awk '$1 == "Ip6OutNoRoutes" {print $2}' /proc/net/snmp6 2>/dev/null)
        echo "${v4:-0} ${v6:-0}"
    }
    read -r before4 before6 < <(noroutes)
    "$@"
    rc=$?
    if [ "$TROVE_LOOPBACK_GUARD" = 1 ]; then
        read -r after4 after6 < <(noroutes)
        d4=$((after4 - before4)) d6=$((after6 - before6))
        if [ "$d4" -ne 0 ] || [ "$d6" -ne 0 ]; then
            echo "loopback-only: FAIL: $d4 IPv4 and $d6 IPv6 attempts to reach an address outside loopback (kernel OutNoRoutes in the test namespace); find them with: strace -f -e trace=connect,sendto,sendmsg" >&2
            exit 1
        fi
        echo "loopback-only: no attempt to reach an address outside loopback (IPv4 and IPv6 OutNoRoutes unchanged)" >&2
    fi
    exit "$rc"
fi

if [ "$(id -u)" -eq 0 ]; then
    ns=(unshare -n)
else
    ns=(unshare -rn)
fi
if ! "${ns[@]}" true 2>/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "loopback-only: cannot make a network namespace (unshare -n failed: a container without CAP_SYS_ADMIN?); refusing to run with the host's network: $*" >&2
    else
        echo "loopback-only: cannot make a network namespace (unshare -rn failed: user namespaces disabled?); run as root, or enable kernel.unprivileged_userns_clone; refusing to run with the host's network: $*" >&2
    fi
    exit 1
fi
exec env TROVE_LOOPBACK_INSIDE=ns TROVE_LOOPBACK_GUARD=$GUARD "${ns[@]}" bash "$0" "$@"
