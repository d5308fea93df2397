#!/usr/bin/env bash
# PID 1 of one fake "host" of the multi-host test (tests/ansible/multihost.sh
# starts it with `unshare --mount --uts --ipc --pid --fork --mount-proc`).
#
# usage: fakehost-init.sh ROOT NAME ADDRESS SSH_PORT runit|supervisord
#
# The host shares the machine's kernel, network namespace and /usr, and has
# its own everything else:
#   - hostname NAME (UTS namespace), its own process tree (PID namespace: its
#     supervisor is PID 1, so `kill` and `pgrep` on it see only its own
#     processes, and killing it ends every process of the host);
#   - its own /etc and /var: overlays of the machine's, written to
#     ROOT/*.upper (users the playbooks create, /etc/trove, /var/lib/trove,
#     service definitions... never touch the real ones);
#   - an empty /opt (ROOT/opt) and /root (ROOT/root), fresh tmpfs /run and /tmp;
#   - an sshd bound to ADDRESS:SSH_PORT only (a loopback address), with the
#     throwaway host key and authorized key multihost.sh made in ROOT/ssh,
#     supervised like the Trove services by the host's supervisor:
#     runsvdir (runit) or supervisord, started here as PID 1, as a
#     container's entrypoint would.
set -euo pipefail
ROOT=$1 NAME=$2 ADDRESS=$3 PORT=$4 SUPERVISOR=$5

hostname "$NAME"
for d in etc var; do
    mkdir -p "$ROOT/$d.upper" "$ROOT/$d.work"
    mount -t overlay "fakehost-$d" -o "lowerdir=/$d,upperdir=$ROOT/$d.upper,workdir=$ROOT/$d.work" "/$d"
done
# Empty /opt and an empty home for root (not the machine's dotfiles).
mkdir -p "$ROOT/opt" "$ROOT/root"
chmod 0700 "$ROOT/root"
mount --bind "$ROOT/opt" /opt
mount --bind "$ROOT/root" /root
mount -t tmpfs -o mode=0755 fakehost-run /run
mkdir -p /run/sshd /run/lock
chmod 0755 /run/sshd

# sshd: this host's address only, keys only, root only (Ansible's user here).
mkdir -p /etc/ssh/fakehost
cp "$ROOT/ssh/host_ed25519_key" "$ROOT/ssh/authorized_keys" /etc/ssh/fakehost/
chmod 0600 /etc/ssh/fakehost/host_ed25519_key
chmod 0644 /etc/ssh/fakehost/authorized_keys
cat > /etc/ssh/fakehost/sshd_config <<EOF
ListenAddress $ADDRESS:$PORT
HostKey /etc/ssh/fakehost/host_ed25519_key
AuthorizedKeysFile /etc/ssh/fakehost/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile none
Subsystem sftp internal-sftp
MaxStartups 100
MaxSessions 100
EOF

# The machine's own services (Debian's ssh, syslog) are not this host's.
rm -rf /etc/service
mkdir -p /etc/service
rm -f /etc/supervisor/conf.d/*

# /tmp last: ROOT may be under /tmp.
mount -t tmpfs -o mode=1777 fakehost-tmp /tmp

case $SUPERVISOR in
    runit)
        mkdir -p /etc/sv/fakehost-sshd
        printf '#!/bin/sh\nexec /usr/sbin/sshd -D -e -f /etc/ssh/fakehost/sshd_config 2>&1\n' > /etc/sv/fakehost-sshd/run
        chmod 0755 /etc/sv/fakehost-sshd/run
        ln -s /etc/sv/fakehost-sshd /etc/service/fakehost-sshd
        exec runsvdir -P /etc/service
        ;;
    supervisord)
        mkdir -p /var/log/supervisor
        cat > /etc/supervisor/conf.d/fakehost-sshd.conf <<'EOF'
[program:fakehost-sshd]
command=/usr/sbin/sshd -D -e -f /etc/ssh/fakehost/sshd_config
autorestart=true
redirect_stderr=true
stdout_logfile=/var/log/supervisor/fakehost-sshd.log
EOF
        # Debian's config: socket /run/supervisor.sock, programs in conf.d.
        exec supervisord -n -c /etc/supervisor/supervisord.conf
        ;;
    *)
        echo "fakehost-init: unknown supervisor $SUPERVISOR" >&2
        exit 2
        ;;
esac
