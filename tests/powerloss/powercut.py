#!/usr/bin/env python3
"""powercut.py - apply a simulated power cut to the files a dead cluster wrote.

TEST ONLY. Run after every process that ran with tests/powerloss/
powerloss_shim.c preloaded was SIGKILLed: it reads the shim's journals
(JOURNAL_DIR/journal-PID) and leaves each journaled file as a disk may hold
it after the power went:

  --mode all   every write that no completed fsync/fdatasync of its file
               covered is undone (its pre-image put back, the file cut back
               to its synced size), and every file created since the last
               fsync of its directory is deleted;
  --mode torn  each 512-byte sector those writes touched independently
               keeps its newest bytes or goes back to its synced bytes
               (torn and reordered writes), and each such created file is
               deleted or kept, at random (--seed).

The journals are removed afterwards unless --keep. Prints one line per file
it changed and a summary. Exit 0, or 2 on unreadable journals (the test
must not guess).
"""
import argparse
import os
import random
import struct
import sys

SECTOR = 512


def read_journal(path):
    """Yield (type, seq, path, fields, blob) records of one journal."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        # A record cut short by the kill can only be the last one, and the
        # write it announced had not begun (the shim writes after it).
        if pos + 17 > len(data):
            return
        (total,) = struct.unpack_from("<I", data, pos)
        if total < 17:
            raise ValueError(f"{path}: bad record size {total} at {pos}")
        if pos + total > len(data):
            return
        rtype = chr(data[pos + 4])
        (seq,) = struct.unpack_from("<Q", data, pos + 5)
        (plen,) = struct.unpack_from("<I", data, pos + 13)
        p = pos + 17
        fpath = data[p:p + plen].decode()
        p += plen
        nfields = {"W": 4, "T": 3, "S": 1, "D": 1, "C": 0}.get(rtype)
        if nfields is None:
            raise ValueError(f"{path}: unknown record type {rtype!r} at {pos}")
        fields = struct.unpack_from("<%dQ" % nfields, data, p)
        p += 8 * nfields
        yield rtype, seq, fpath, fields, data[p:pos + total]
        pos += total


def undo_all(cur, ops):
    """The file as its last sync left it: undo ops (newest first)."""
    cur = bytearray(cur)
    for rtype, fields, blob in reversed(ops):
        if rtype == "W":
            off, length, size_before, prelen = fields
            end = off + prelen
            if len(cur) < end:
                cur.extend(b"\0" * (end - len(cur)))
            cur[off:end] = blob[:prelen]
            del cur[size_before:]
        else:  # T
            new_size, size_before, prelen = fields
            if size_before > new_size:
                del cur[new_size:]
                cur.extend(blob[:prelen])
            else:
                del cur[size_before:]
    return cur


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("journal_dir")
    ap.add_argument("--mode", choices=["all", "torn"], default="all")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the journals")
    args = ap.parse_args()
    rng = random.Random(args.seed)

    journals = sorted(os.path.join(args.journal_dir, n) for n in os.listdir(args.journal_dir)
                      if n.startswith("journal-"))
    files = {}      # path -> {"journal", "ops": [(seq, type, fields, blob)], "synced": seq, "created": seq}
    dir_synced = {}  # (journal, dir path) -> covered seq
    try:
        for j in journals:
            for rtype, seq, fpath, fields, blob in read_journal(j):
                if rtype == "D":
                    key = (j, fpath)
                    dir_synced[key] = max(dir_synced.get(key, 0), fields[0])
                    continue
                st = files.setdefault(fpath, {"journal": j, "ops": [], "synced": 0, "created": None})
                if st["journal"] != j:
                    # Two processes wrote one file in one round: their
                    # records have no common order, so the cut is unknowable.
                    raise ValueError(f"{fpath} is in two journals ({st['journal']}, {j})")
                if rtype == "S":
                    st["synced"] = max(st["synced"], fields[0])
                elif rtype == "C":
                    st["created"] = seq
                else:
                    st["ops"].append((seq, rtype, fields, blob))
    except (ValueError, UnicodeDecodeError, struct.error) as e:
        print(f"powercut: unreadable journal: {e}", file=sys.stderr)
        return 2

    changed = deleted = 0
    restored_bytes = 0
    for fpath in sorted(files):
        st = files[fpath]
        if not os.path.exists(fpath):
            continue  # unlinked later (unlink is not modelled)
        created = st["created"]
        if created is not None:
            parent = os.path.dirname(fpath)
            durable = dir_synced.get((st["journal"], parent), 0) >= created
            if not durable and (args.mode == "all" or rng.random() < 0.5):
                os.unlink(fpath)
                deleted += 1
                print(f"  deleted {fpath} (created, its directory never synced after)")
                continue
        ops = [(t, f, b) for seq, t, f, b in st["ops"] if seq > st["synced"]]
        if not ops:
            continue
        with open(fpath, "rb") as f:
            latest = f.read()
        base = undo_all(latest, ops)
        if args.mode == "all" or any(t == "T" for t, _, _ in ops):
            out = base
            lost = "all"
        else:
            sectors = set()
            for t, fields, _ in ops:
                off, length = fields[0], fields[1]
                for s in range(off // SECTOR, (off + max(length, 1) - 1) // SECTOR + 1):
                    sectors.add(s)
            kept = {s for s in sectors if rng.random() < 0.5}
            final_len = len(base)
            for s in kept:
                final_len = max(final_len, min((s + 1) * SECTOR, len(latest)))
            out = bytearray(latest[:final_len])
            if len(out) < final_len:
                out.extend(b"\0" * (final_len - len(out)))
            for s in sectors - kept:
                a, b = s * SECTOR, min((s + 1) * SECTOR, final_len)
                if a >= final_len:
                    continue
                chunk = bytes(base[a:b])
                out[a:b] = chunk + b"\0" * ((b - a) - len(chunk))
            lost = f"{len(sectors) - len(kept)} of {len(sectors)} sectors"
        if bytes(out) != latest:
            with open(fpath, "r+b") as f:
                f.write(out)
                f.truncate(len(out))
            changed += 1
            restored_bytes += sum(f[1] for t, f, _ in ops if t == "W")
            print(f"  {fpath}: {len(ops)} unsynced writes undone ({lost}); size {len(latest)} -> {len(out)}")
    print(f"powercut ({args.mode}, seed {args.seed}): {len(journals)} journals, {len(files)} files, "
          f"{changed} changed ({restored_bytes} bytes of unsynced writes), {deleted} deleted")
    if not args.keep:
        for j in journals:
            os.unlink(j)
    return 0


if __name__ == "__main__":
    sys.exit(main())
