# Hostile frames and events against a running cluster: clear errors, daemons
# keep running, nothing written (tests/integration/badinput.c).
source "$(dirname "$0")/lib.sh"

cluster_up
wait_healthy
"$BUILD/tests/badinput" "$DIR/trove.cfg"
wait_healthy 10
cluster_down_checked
