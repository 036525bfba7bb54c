"""The store over the REST API: data survives a restart and a SIGKILL in the
middle of a stream of writes, and a store that cannot write (disk full,
file made immutable) answers 503 + Retry-After, turns /readyz 503 while
/healthz stays 200, and recovers once the fault is gone."""

import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import uuid

import pytest
import requests

from agentd_harness import Server
from ucp_client import (Client, check_checkout, check_error, db_path, full_body, lines,
                        unique_profile)


def integrity_ok(data_dir):
    con = sqlite3.connect(f"file:{data_dir / 'agentd.db'}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


def test_data_survives_a_restart(agentd):
    a = agentd()
    c = Client(a, unique_profile("restart"))
    ids = {}
    for i in range(6):
        ids[c.create_ok(full_body([("BISC-001", i + 1)]))["id"]] = "ready"
    done = c.purchase([("CHIPS-001", 2)])
    canceled = c.create_ok(full_body([("STRAW-001", 1)]))["id"]
    assert c.cancel(canceled).status_code == 200
    edited = c.create_ok({"line_items": lines(("BISC-001", 1))})["id"]
    assert c.update(edited, {"line_items": lines(("BISC-001", 7))}).status_code == 200
    key = "restart-" + uuid.uuid4().hex
    replay = c.create(full_body([("NUTRIBAR-001", 1)]), key=key)
    assert replay.status_code == 201
    everything = list(ids) + [done["id"], canceled, edited, replay.json()["id"]]
    before = {cid: c.get(cid).text for cid in everything}
    order_before = c.order(done["order"]["id"]).text

    assert a.stop() == 0
    b = agentd(env={"AGENTD_DATA_DIR": a.data_dir})
    c2 = Client(b, c.profile)
    for cid in everything:
        r = c2.get(cid)
        assert r.status_code == 200, (cid, r.text)
        check_checkout(r.json())
        # byte for byte: the stored document is served as it was written
        # (URLs included: they are the ones the session was created under)
        assert r.text == before[cid], cid
    assert c2.get(done["id"]).json()["status"] == "completed"
    assert c2.get(canceled).json()["status"] == "canceled"
    assert c2.get(edited).json()["line_items"][0]["quantity"] == 7
    r = c2.order(done["order"]["id"])
    assert r.status_code == 200 and r.text == order_before
    # the idempotency record survived too: the retry replays the first answer
    r = c2.create(full_body([("NUTRIBAR-001", 1)]), key=key)
    assert r.status_code == 201 and r.headers.get("Idempotent-Replayed") == "true"
    assert r.content == replay.content
    # stock taken by the order stays taken: 200 CHIPS-001 in the catalog
    check_error(c2.create({"line_items": lines(("CHIPS-001", 199))}), 400, "out_of_stock")
    assert c2.create({"line_items": lines(("CHIPS-001", 198))}).status_code == 201
    # and a completed checkout is still immutable
    check_error(c2.cancel(done["id"]), 409, "not_modifiable")


def test_sigkill_during_writes_loses_no_acknowledged_checkout(agentd, tmp_path):
    victim = Server(workdir=tmp_path / "victim")
    victim.start()
    profile = unique_profile("kill")
    acked, failures, stop = [], [], threading.Event()
    lock = threading.Lock()

    def writer(n):
        c = Client(victim, profile, timeout=5)
        i = 0
        while not stop.is_set():
            i += 1
            try:
                r = c.create(full_body([("BISC-001", 1 + (i % 5))], email=f"w{n}-{i}@example.com"))
            except requests.RequestException:
                return                      # the server is gone
            if r.status_code == 201:
                with lock:
                    acked.append((r.json()["id"], 1 + (i % 5)))
            else:
                failures.append((r.status_code, r.text[:200]))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)
        os.kill(victim.proc.pid, signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        stop.set()
        for t in threads:
            t.join(10)
    finally:
        stop.set()
        victim.kill()
    assert not failures, failures[:3]
    assert len(acked) > 50, f"only {len(acked)} checkouts acknowledged in a second"

    assert integrity_ok(victim.data_dir)
    srv = agentd(env={"AGENTD_DATA_DIR": victim.data_dir})
    c = Client(srv, profile)
    missing = []
    for cid, qty in acked:
        r = c.get(cid)
        if r.status_code != 200:
            missing.append((cid, r.status_code))
            continue
        doc = check_checkout(r.json())
        assert doc["line_items"][0]["quantity"] == qty and doc["status"] == "ready_for_complete"
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged checkouts lost: {missing[:5]}"
    # and the reopened store takes writes
    assert c.purchase([("BISC-001", 1)])["status"] == "completed"


# ---- fault injection: a store that cannot write ----

def _require_root():
    if os.geteuid() != 0:
        pytest.skip("fault injection needs root (mount, chattr)")


class Tmpfs:
    def __init__(self, path, size):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")

    def fill(self):
        """Writes a filler file until the filesystem is full."""
        filler = self.path / "filler"
        # unbuffered: a buffered file keeps the part of the last block that
        # did not fit and raises ENOSPC again when it is closed, whenever the
        # free space is not a multiple of the block (so it depended on how
        # many bytes the database happened to hold)
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        return filler

    def umount(self):
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


@pytest.fixture
def tmpfs(tmp_path):
    _require_root()
    fs = Tmpfs(tmp_path / "small-disk", "8m")
    yield fs
    fs.umount()


@pytest.fixture
def immutable(tmp_path):
    """chattr +i / -i on files; always undone, so the test's tmp dir can go."""
    _require_root()
    if not shutil.which("chattr"):
        pytest.skip("chattr is not installed")
    marked = []

    def set_(paths, on):
        for p in paths:
            r = subprocess.run(["chattr", "+i" if on else "-i", str(p)], capture_output=True,
                               text=True)
            if r.returncode != 0:
                pytest.skip(f"chattr does not work on this filesystem: {r.stderr.strip()}")
            if on:
                marked.append(p)
    yield set_
    for p in marked:
        subprocess.run(["chattr", "-i", str(p)], capture_output=True)


def _wait_status(srv, path, want, timeout=10.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = srv.get(path, timeout=2)
        if last.status_code == want:
            return last
        time.sleep(0.05)
    raise AssertionError(f"{path} stayed {last.status_code if last is not None else '?'}, "
                         f"want {want}: {last.text if last is not None else ''}")


def _check_unwritable(srv, c, existing):
    """Writes fail as 503 + Retry-After, readiness fails, liveness and reads
    do not. Returns after the first failed write."""
    refused = None
    for i in range(400):
        r = c.create(full_body([("BISC-001", 1)], email=f"fault{i}@example.com"))
        if r.status_code != 201:
            refused = r
            break
    assert refused is not None, "every write succeeded on a store that cannot write"
    err = check_error(refused, 503)
    assert err["code"] == "io_error", err
    assert refused.headers.get("Retry-After") == "1"
    # the next writes fail the same way
    for op in (lambda: c.create(full_body()),
               lambda: c.update(existing, {"line_items": lines(("BISC-001", 3))})):
        r = op()
        check_error(r, 503)
        assert r.headers.get("Retry-After") == "1"
    ready = _wait_status(srv, "/readyz", 503)
    assert ready.json()["status"] == "not_ready"
    assert any("store" in why for why in ready.json()["reasons"]), ready.json()
    assert srv.get("/healthz").status_code == 200
    # reads still work
    r = c.get(existing)
    assert r.status_code == 200 and r.json()["line_items"][0]["quantity"] == 1


def _check_recovered(srv, c, existing):
    _wait_status(srv, "/readyz", 200)
    assert c.create(full_body()).status_code == 201
    r = c.update(existing, {"line_items": lines(("BISC-001", 4))})
    assert r.status_code == 200, r.text
    assert c.get(existing).json()["line_items"][0]["quantity"] == 4


def test_disk_full(agentd, tmpfs):
    srv = agentd(env={"AGENTD_DATA_DIR": tmpfs.path})
    c = Client(srv, unique_profile("full"))
    existing = c.create_ok(full_body([("BISC-001", 1)]))["id"]
    filler = tmpfs.fill()
    _check_unwritable(srv, c, existing)
    filler.unlink()
    _check_recovered(srv, c, existing)
    assert integrity_ok(tmpfs.path)


def test_database_files_made_immutable(agentd, immutable):
    srv = agentd()
    c = Client(srv, unique_profile("ro"))
    existing = c.create_ok(full_body([("BISC-001", 1)]))["id"]
    files = [p for p in (db_path(srv), db_path(srv).with_name("agentd.db-wal")) if p.exists()]
    immutable(files, True)
    _check_unwritable(srv, c, existing)
    immutable(files, False)
    _check_recovered(srv, c, existing)
    assert integrity_ok(srv.data_dir)
