# HTTPS on the ingestor's listener (issue 23 item 5), against a real cluster:
#   - tls_cert/tls_key: curl submits an event and reads a balance over
#     HTTPS, checking the certificate against its own CA file;
#   - the protocol and ciphers are the documented defaults (TLS 1.3 or 1.2,
#     AEAD); TLS 1.1 and a CBC-only client are refused;
#   - plain HTTP on the HTTPS port gets no answer;
#   - SIGHUP with a new certificate: new connections get it (its
#     fingerprint), without a restart; a pair whose key is not the
#     certificate's is refused at reload (logged, the old one kept) and at
#     start (a clear error naming the files);
#   - a client that connects and sends nothing is closed at the head
#     deadline and counted (the door cannot read an encrypted head).
source "$(dirname "$0")/lib.sh"
INGESTOR="$BUILD/trove-ingestor"
command -v curl >/dev/null || fail "curl is needed"
command -v openssl >/dev/null || fail "openssl is needed (scripts/install-deps.sh)"

# --- certificates: two self-signed for 127.0.0.1 ------------------------------
CERTS="$WORK/certs"
mkdir -p "$CERTS"
mkcert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=trove-test-$1" -addext "subjectAltName=IP:127.0.0.1" \
        -keyout "$CERTS/$1.key" -out "$CERTS/$1.crt" 2>/dev/null || fail "openssl cannot make certificate $1"
}
mkcert a
mkcert b
fingerprint() { openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2; }
FP_A=$(fingerprint "$CERTS/a.crt")
FP_B=$(fingerprint "$CERTS/b.crt")
cp "$CERTS/a.crt" "$CERTS/live.crt"
cp "$CERTS/a.key" "$CERTS/live.key"

new_key() { "$INGESTOR" --new-key | awk '$1 == "key" {print $3}'; }
hash_of() { echo "$1" | "$INGESTOR" --hash-key; }
KEY=$(new_key)
P=$PORT_BASE
HTTPS_PORT=$((P + 250))
BASE="https://127.0.0.1:$HTTPS_PORT"
write_cfg() {   # FILE CERT KEY
    cat >"$1" <<CFG
trove
    partitions = 256
    rules = "$DIR/rules"
    sync = full
limits
    http_header_timeout_s = 2
sources
    web
        keys = "$(hash_of "$KEY")=events:write+users:read"
broker
    pub = "tcp://127.0.0.1:$((P + 1))"
    sub = "tcp://127.0.0.1:$((P + 2))"
    control = "tcp://127.0.0.1:$((P + 3))"
ingestor
    i0
        endpoint = "tcp://127.0.0.1:$((P + 10))"
        metrics = "127.0.0.1:$((P + 210))"
        http = "127.0.0.1:$HTTPS_PORT"
        http_threads = 4
        tls_cert = "$2"
        tls_key = "$3"
scorer
    s0
        events = "tcp://127.0.0.1:$((P + 20))"
        query = "tcp://127.0.0.1:$((P + 21))"
        partitions = "0-255"
        data = "$DIR/data/s0"
CFG
}

# --- a key that is not the certificate's: a clear error at start --------------
write_cfg "$WORK/bad.cfg" "$CERTS/a.crt" "$CERTS/b.key"
set +e
out=$(timeout 20 "$INGESTOR" --config "$WORK/bad.cfg" --name i0 2>&1)
rc=$?
set -e
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "the ingestor started (exit $rc) on a key that is not its certificate's"
grep -q "a.crt" <<<"$out" && grep -q "b.key" <<<"$out" || fail "the start error does not name both files: $out"
log "refused at start: $(grep -o 'tls: .*' <<<"$out" | head -1)"

# --- the cluster on HTTPS -----------------------------------------------------
mkdir -p "$DIR"
write_cfg "$DIR/trove.cfg" "$CERTS/live.crt" "$CERTS/live.key"
cluster_up
wait_healthy
CURL=(curl -sS --cacert "$CERTS/a.crt" -H "Authorization: Bearer $KEY")
deadline=$((SECONDS + 30))
until [ "$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$BASE/v1/users/u1/balance" 2>/dev/null)" = 200 ]; do
    [ $SECONDS -lt $deadline ] || fail "no HTTPS answer on $BASE"
    sleep 0.2
done
grep -q "https ingest and queries on" "$DIR/logs/i0.log" || fail "the ingestor does not say it serves HTTPS"

NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
code=$("${CURL[@]}" -o "$WORK/post.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data "{\"id\":\"t1\",\"user\":\"u1\",\"type\":\"purchase\",\"ts\":\"$NOW\"}" "$BASE/v1/events")
[ "$code" = 200 ] || fail "POST over HTTPS: $code $(cat "$WORK/post.json")"
jq -e '.accepted == 1' "$WORK/post.json" >/dev/null || fail "POST over HTTPS: $(cat "$WORK/post.json")"
bal=$("${CURL[@]}" "$BASE/v1/users/u1/balance" | jq -r .balance)
[ "$bal" = 5 ] || fail "balance over HTTPS is $bal, want 5 (one purchase of the demo hunt)"
log "HTTPS: event accepted, balance 5"

# --- protocol and ciphers ------------------------------------------------------
s_client() { timeout 10 openssl s_client -connect "127.0.0.1:$HTTPS_PORT" -CAfile "$CERTS/a.crt" "$@" </dev/null 2>&1 || true; }
out=$(s_client)
grep -Eq "Protocol *: *TLSv1\.3|New, TLSv1\.3" <<<"$out" || fail "not TLS 1.3 by default: $(grep -E 'Protocol|Cipher' <<<"$out" | head -3)"
grep -q "Verify return code: 0 (ok)" <<<"$out" || fail "the certificate does not verify"
out=$(s_client -tls1_2)
grep -Eq "Cipher *: *ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)" <<<"$out" \
    || fail "TLS 1.2 did not pick an AEAD ECDHE cipher: $(grep -E 'Cipher' <<<"$out" | head -2)"
out=$(s_client -tls1_2 -cipher 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA')
grep -Eq "Cipher *: *(0000|\(NONE\))|no shared cipher|handshake failure|alert" <<<"$out" \
    || fail "a CBC-only client was served: $(grep -E 'Cipher' <<<"$out" | head -2)"
# TLS 1.1 from a client that allows it (security level 0): refused. The same
# client at TLS 1.2 gets in, so the refusal is the server's.
out=$(s_client -tls1_2 -cipher 'DEFAULT:@SECLEVEL=0')
grep -Eq "Cipher *: *ECDHE" <<<"$out" || fail "the TLS 1.1 probe's client cannot connect at TLS 1.2 either"
out=$(s_client -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0')
grep -Eq "Cipher *: *0000|Cipher is \(NONE\)" <<<"$out" || fail "TLS 1.1 was served: $(grep -E 'Protocol|Cipher' <<<"$out" | head -3)"
log "TLS 1.3 by default, TLS 1.2 with AEAD ECDHE only; CBC and TLS 1.1 refused"

# --- plain HTTP on the HTTPS port: no HTTP answer -------------------------------
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$HTTPS_PORT/v1/users/u1/balance" || true)
[ "$code" = 000 ] || fail "plain HTTP on the HTTPS port got an HTTP answer: $code"

# --- a silent client: closed at the head deadline, counted ---------------------
refused_before=$(curl -s "http://127.0.0.1:$((P + 210))/metrics" | awk '/^trove_ingestor_http_refused_total\{reason="header_timeout"\}/ {print $2}')
python3 - "$HTTPS_PORT" <<'PY' || fail "a silent connection was not closed at the head deadline"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(15)
start = time.monotonic()
try:
    data = s.recv(1)          # nothing was sent: the server closes
except (ConnectionResetError, socket.timeout) as e:
    data = b"" if isinstance(e, ConnectionResetError) else None
if data != b"":
    sys.exit(1)
print(f"closed after {time.monotonic() - start:.1f} s", file=sys.stderr)
PY
deadline=$((SECONDS + 10))
while :; do
    refused=$(curl -s "http://127.0.0.1:$((P + 210))/metrics" | awk '/^trove_ingestor_http_refused_total\{reason="header_timeout"\}/ {print $2}')
    [ "${refused:-0}" -gt "${refused_before:-0}" ] && break
    [ $SECONDS -lt $deadline ] || fail "the silent connection was not counted as header_timeout (${refused:-none})"
    sleep 0.2
done
log "a silent TLS connection was closed at the head deadline and counted"

# --- SIGHUP: a renewed certificate without a restart ---------------------------
served_fp() {
    s_client -showcerts | openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2
}
[ "$(served_fp)" = "$FP_A" ] || fail "the served certificate is not a.crt"
pid=$(cat "$DIR/pids/i0.pid")
# a mismatched pair first: refused, logged, a.crt still served
cp "$CERTS/b.crt" "$CERTS/live.crt"
kill -HUP "$pid"
deadline=$((SECONDS + 10))
until grep -q "tls reload refused" "$DIR/logs/i0.log"; do
    [ $SECONDS -lt $deadline ] || fail "a mismatched pair at reload was not refused in the log"
    sleep 0.1
done
[ "$(served_fp)" = "$FP_A" ] || fail "after a refused reload the served certificate changed"
cp "$CERTS/b.key" "$CERTS/live.key"
kill -HUP "$pid"
deadline=$((SECONDS + 10))
until [ "$(served_fp)" = "$FP_B" ]; do
    [ $SECONDS -lt $deadline ] || fail "after SIGHUP the new certificate is not served"
    sleep 0.2
done
[ "$(cat "$DIR/pids/i0.pid")" = "$pid" ] || fail "the ingestor restarted instead of reloading"
bal=$(curl -sS --cacert "$CERTS/b.crt" -H "Authorization: Bearer $KEY" "$BASE/v1/users/u1/balance" | jq -r .balance)
[ "$bal" = 5 ] || fail "balance with the new certificate is $bal, want 5"
log "SIGHUP: a mismatched pair refused (a.crt kept), then b.crt served by the same process"

cluster_down_checked
log "PASS"
