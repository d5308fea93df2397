#!/usr/bin/python3
"""The operator console in headless Chromium (tests/integration/test_console.sh).

Drives Debian's chromium through its chromedriver (started here on a given
127.0.0.1 port, so Selenium never looks for a driver on the network) and
checks what the page shows against answers the shell test fetched from the
query API with curl. Every wait is bounded; each step leaves a screenshot.
Chromium gets every flag that turns off a background service, and every
host name but 127.0.0.1 resolves to nothing: the page talks to the
ingestor only.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import ssl
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.file_detector import UselessFileDetector
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",  # CI runs as root in a container
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--no-pings",
    "--safebrowsing-disable-auto-update",
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,"
    "CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions,NetworkTimeServiceQuerying",
    "--no-proxy-server",
    "--dns-prefetch-disable",
    "--password-store=basic",
    "--use-mock-keychain",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--remote-debugging-address=127.0.0.1",
]


def fail(msg):
    print(f"FAIL (browser): {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    # After the overview, touch READY and wait (bounded) for GO: the shell
    # test then sends the known events and fetches the expected answers.
    for a in ("url", "key", "profile", "artifacts", "ready", "go"):
        ap.add_argument(f"--{a}", required=True)
    # overview: the refusals, then rates while the live events arrive
    for a in ("wrong-key", "bad-key", "live-events", "web-key"):
        ap.add_argument(f"--{a}")
    # pages: what the query API answered (fetched by the shell test with curl)
    for a in ("board", "coin", "balance", "hunt-file", "preview"):
        ap.add_argument(f"--{a}")
    ap.add_argument("--chromedriver-port", type=int, required=True)
    # tests/noroute: LD_PRELOADed into chromedriver and the Chromium it
    # starts, so the browser's own probes of the internet (its IPv6
    # reachability check) fail in-process; each refusal is logged there.
    ap.add_argument("--noroute-shim", required=True)
    ap.add_argument("--noroute-log", required=True)
    # base64 SHA-256 of the HTTPS certificate's public key: Chromium trusts it
    ap.add_argument("--spki")
    # ... and the same certificate's file, for the events this script sends
    ap.add_argument("--cafile")
    args = ap.parse_args()
    # Stopped by the shell test (its failure, timeout): still quit Chromium.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    api = args.url.rsplit("/console/", 1)[0]

    driver_proc = subprocess.Popen(
        ["chromedriver", f"--port={args.chromedriver_port}", "--allowed-ips=127.0.0.1",
         f"--log-path={args.profile}.chromedriver.log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, LD_PRELOAD=args.noroute_shim, TROVE_NOROUTE_LOG=args.noroute_log))
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", args.chromedriver_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or driver_proc.poll() is not None:
                    fail("chromedriver did not start")
                time.sleep(0.1)
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for f in CHROMIUM_FLAGS:
            opts.add_argument(f)
        opts.add_argument(f"--user-data-dir={args.profile}")
        if args.spki:
            opts.add_argument(f"--ignore-certificate-errors-spki-list={args.spki}")
        driver = webdriver.Remote(command_executor=f"http://127.0.0.1:{args.chromedriver_port}", options=opts)
        try:
            overview(driver, args, api)
            open(args.ready, "w").close()
            deadline = time.monotonic() + 60
            while not os.path.exists(args.go):
                if time.monotonic() > deadline:
                    fail(f"no {args.go} from the shell test within 60 s")
                time.sleep(0.05)
            pages(driver, args)
        except BaseException:
            driver.save_screenshot(f"{args.artifacts}/failed.png")
            raise
        finally:
            driver.quit()
    finally:
        driver_proc.terminate()
        try:
            driver_proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            driver_proc.kill()
            driver_proc.wait()


T0 = time.monotonic()  # for TROVE_BROWSER_TRACE=1: when each wait began


def wait_for(driver, what, cond, timeout=15):
    if "TROVE_BROWSER_TRACE" in os.environ:
        print(f"{time.monotonic() - T0:6.2f} s: waiting for {what}", file=sys.stderr)
    try:
        # Rows re-rendered between two reads are stale: read again.
        return WebDriverWait(driver, timeout, poll_frequency=0.1,
                             ignored_exceptions=[StaleElementReferenceException]).until(lambda d: cond(d))
    except Exception:
        fail(f"{what} (not seen within {timeout} s)")


def text(driver, element_id):
    return driver.find_element(By.ID, element_id).text


def use_key(driver, key):
    field = driver.find_element(By.ID, "key")
    field.clear()
    field.send_keys(key)
    driver.find_element(By.ID, "key-save").click()


def overview(driver, args, api):
    shot = lambda name: driver.save_screenshot(f"{args.artifacts}/{name}.png")
    driver.get(args.url)
    wait_for(driver, "the page asks for a key", lambda d: d.find_element(By.ID, "auth").get_attribute("data-state") == "none")
    shot("0-no-key")

    # A key of no source: 401, said on the page.
    use_key(driver, args.bad_key)
    wait_for(driver, "a 401 for a key of no source",
             lambda d: d.find_element(By.ID, "auth").get_attribute("data-state") == "unauthorized")
    if "401" not in text(driver, "auth"):
        fail(f"the refusal does not say 401: {text(driver, 'auth')}")
    shot("1-refused-401")
    # A real key without the admin scope: 403.
    use_key(driver, args.wrong_key)
    wait_for(driver, "a 403 for a key without admin",
             lambda d: d.find_element(By.ID, "auth").get_attribute("data-state") == "forbidden")
    if "403" not in text(driver, "auth") or "admin" not in text(driver, "auth"):
        fail(f"the refusal does not say 403 and admin: {text(driver, 'auth')}")
    shot("2-refused-403")

    # The operator key: the overview samples /metrics; events sent now show as rates.
    use_key(driver, args.key)
    wait_for(driver, "the key accepted", lambda d: d.find_element(By.ID, "auth").get_attribute("data-state") == "ok")
    if driver.execute_script("return sessionStorage.getItem('trove.operatorKey')") != args.key:
        fail("the key is not kept in sessionStorage")
    wait_for(driver, "a first overview sample",
             lambda d: int(d.find_element(By.ID, "view-overview").get_attribute("data-samples") or 0) >= 1)
    events = open(args.live_events, "rb").read()
    req = urllib.request.Request(f"{api}/v1/events", data=events, method="POST",
                                 headers={"Authorization": f"Bearer {args.web_key}",
                                          "Content-Type": "application/json"})
    ctx = ssl.create_default_context(cafile=args.cafile) if args.cafile else None
    with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
        answer = json.load(resp)
        if answer["accepted"] != len(json.loads(events)):
            fail(f"live events not all accepted: {answer}")

    def rate(d, element_id):
        v = d.find_element(By.ID, element_id).get_attribute("data-value")
        return float(v) if v else 0.0
    wait_for(driver, "a nonzero event rate", lambda d: rate(d, "rate-events") > 0, timeout=20)
    wait_for(driver, "a nonzero coin rate", lambda d: rate(d, "rate-awards") > 0, timeout=20)
    rows = driver.execute_script("return [...document.querySelectorAll('#shards tbody tr')]"
                                 ".map(r => [r.dataset.shard, r.dataset.up, r.innerText])")
    if sorted(r[0] for r in rows) != ["s0", "s1"] or any(r[1] != "1" for r in rows):
        fail(f"the shard table: {rows}")
    shot("3-overview")
    print(f"browser: refusals and overview, screenshots in {args.artifacts}", file=sys.stderr)


def pages(driver, args):
    shot = lambda name: driver.save_screenshot(f"{args.artifacts}/{name}.png")
    board = json.load(open(args.board))
    coin = json.load(open(args.coin))
    balance = json.load(open(args.balance))
    # A reload keeps the key (sessionStorage) and asks for none.
    driver.get(args.url)
    wait_for(driver, "the key kept after a reload",
             lambda d: d.find_element(By.ID, "auth").get_attribute("data-state") == "ok")

    # Leaderboard: exactly the entries the query API gave.
    driver.find_element(By.CSS_SELECTOR, "nav button[data-view=boards]").click()
    driver.find_element(By.ID, "board-show").click()
    want = [(str(e["rank"]), e["user"], str(e["score"])) for e in board["entries"]]

    def board_rows(d):  # in one script: the table is read at one instant
        return [tuple(r) for r in d.execute_script(
            "return [...document.querySelectorAll('#board tbody tr')]"
            ".map(r => [r.dataset.rank, r.dataset.user, r.dataset.score])")]
    wait_for(driver, f"the board {want}", lambda d: board_rows(d) == want)
    visible = [tuple(td.text for td in r.find_elements(By.TAG_NAME, "td"))
               for r in driver.find_elements(By.CSS_SELECTOR, "#board tbody tr")]
    if visible != want:
        fail(f"the board shows {visible}, want {want}")
    shot("4-leaderboard")
    # Around a user: the user's row is marked.
    driver.find_element(By.ID, "board-user").send_keys("bob")
    driver.find_element(By.ID, "board-show").click()
    wait_for(driver, "the board around bob",
             lambda d: [r.get_attribute("data-user") for r in d.find_elements(By.CSS_SELECTOR, "#board tbody tr.me")] == ["bob"])
    shot("5-around")

    # Player page (from the board's link): balance, and the coin's events.
    user = coin["coin"]["user"]
    driver.find_element(By.ID, "board-user").clear()
    driver.find_element(By.ID, "board-show").click()
    wait_for(driver, "the top board again",
             lambda d: text(d, "board-status").startswith("demo all:") and board_rows(d) == want)
    driver.find_element(By.CSS_SELECTOR, f"#board tbody tr[data-user='{user}'] a").click()
    wait_for(driver, f"{user}'s balance",
             lambda d: d.find_element(By.ID, "player-balance").get_attribute("data-value") == str(balance["balance"]))
    button = wait_for(driver, f"coin {coin['coin']['id']} listed",
                      lambda d: d.find_element(By.CSS_SELECTOR, f"#player-coins tr[data-coin='{coin['coin']['id']}'] button"))
    button.click()
    want_events = [e["id"] for e in coin["events"]]
    wait_for(driver, f"the coin's events {want_events}",
             lambda d: d.execute_script(
                 f"return [...document.querySelectorAll(\"tr.provenance[data-coin='{coin['coin']['id']}'] tbody tr\")]"
                 ".map(r => r.dataset.event)") == want_events)
    shot("6-player")

    # Rule preview: upload the hunt file; the rows are the route's answer.
    preview = json.load(open(args.preview))
    driver.find_element(By.CSS_SELECTOR, "nav button[data-view=preview]").click()
    # chromedriver runs here: give it the path, do not upload a copy.
    driver.file_detector = UselessFileDetector()
    driver.find_element(By.ID, "preview-file").send_keys(args.hunt_file)
    driver.find_element(By.ID, "preview-run").click()
    want_rules = [[r["hunt"], r["rule"], str(r["mint"]), str(r["revoke"]), str(r["coins_delta"])]
                  for r in preview["rules"]]
    wait_for(driver, f"the preview per rule {want_rules}",
             lambda d: d.execute_script("return [...document.querySelectorAll('#preview-rules tbody tr')]"
                                        ".map(r => [...r.cells].map(c => c.textContent))") == want_rules,
             timeout=30)
    shot("7-preview")

    # Reconciler view: one row per shard.
    driver.find_element(By.CSS_SELECTOR, "nav button[data-view=reconciler]").click()
    wait_for(driver, "a report row per shard",
             lambda d: sorted(d.execute_script("return [...document.querySelectorAll('#reports tbody tr')]"
                                               ".map(r => r.dataset.shard)")) == ["s0", "s1"])
    shot("8-reconciler")
    print(f"browser: leaderboard, player and reconciler pages, screenshots in {args.artifacts}", file=sys.stderr)


if __name__ == "__main__":
    main()
