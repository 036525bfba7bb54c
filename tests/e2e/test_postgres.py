"""agentd on PostgreSQL (AGENTD_DB=postgres://...): the /chat demo purchase
and a UCP checkout store their rows there, and both survive a SIGKILL and a
restart; /readyz answers from the database."""

import os
import signal
import subprocess

from agentd_harness import Server, agentd_bin
from test_chat import SHIP_TO, pay_data, turn
from ucp_client import Client, unique_profile


def test_chat_purchase_and_ucp_checkout_survive_sigkill(postgres_server, agentd, tmp_path):
    url = postgres_server.database("agentd_e2e")
    # a password (the cluster trusts loopback, so any will do): a secret
    # that must reach no log
    env = {"AGENTD_DB": url.replace("://agentd@", "://agentd:s3cret-pw@")}
    a = Server(env=env, workdir=tmp_path / "victim")  # outside the factory: it dies by SIGKILL
    a.start()
    try:
        purchase_kill_restart(a, postgres_server, url, agentd, env)
    finally:
        a.kill()


def purchase_kill_restart(a, postgres_server, url, agentd, env):
    assert a.get("/readyz").status_code == 200

    sid = turn(a, "add 2 BISC-001")["session_id"]
    turn(a, SHIP_TO, sid)
    turn(a, "standard shipping", sid)
    paid = turn(a, "pay", sid, data=pay_data())["checkout"]
    assert paid["status"] == "completed", paid.get("messages")
    chat_order = paid["order"]["id"]

    c = Client(a, unique_profile("pg"))
    done = c.purchase([("CHIPS-001", 2)])
    ucp_order = done["order"]["id"]
    co_before = c.get(done["id"]).text
    order_before = c.order(ucp_order).text

    # the rows are PostgreSQL's, not a file's
    assert postgres_server.query(url, "SELECT count(*) FROM orders") == "2"
    assert postgres_server.query(url, f"SELECT count(*) FROM sessions WHERE id = '{sid}'") == "1"

    os.kill(a.proc.pid, signal.SIGKILL)  # nothing flushed on the way out
    a.proc.wait(timeout=10)
    b = agentd(env=env)
    c2 = Client(b, c.profile)
    r = c2.get(done["id"])
    assert r.status_code == 200 and r.text == co_before
    r = c2.order(ucp_order)
    assert r.status_code == 200 and r.text == order_before
    assert c2.order(chat_order).status_code == 200
    # the chat session goes on where it was
    d = turn(b, "what's in my cart", sid)
    assert d["checkout"]["order"]["id"] == chat_order
    assert b.get("/readyz").status_code == 200
    assert "s3cret-pw" not in a.log_text() + b.log_text()


def test_backup_points_to_postgres_tools(postgres_server, tmp_path):
    url = postgres_server.database("agentd_backup")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTD_")}
    env.update(AGENTD_DB=url, AGENTD_DATA_DIR=str(tmp_path))
    r = subprocess.run([agentd_bin(), "backup", str(tmp_path / "copy.db")], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "pg_dump" in r.stderr, r.stderr
    assert not (tmp_path / "copy.db").exists()
