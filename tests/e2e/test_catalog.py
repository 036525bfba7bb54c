"""Merchant data: the built-in catalog, AGENTD_CATALOG files, SIGHUP reload
(a bad file keeps the old catalog), `agentd catalog import DIR`, and the
database commands (migrate, backup)."""

import json
import signal
import sqlite3

from agentd_harness import run_cli

UCP = {"UCP-Agent": 'profile="https://platform.example/profile"'}


def small_catalog(price="2.50", pid="TEST-1", stock=5):
    return {
        "currency": "USD",
        "products": [{
            "productID": pid, "sku": pid, "name": "Test Widget", "description": "a widget",
            "brand": "Acme", "image": "https://example.com/w.png", "category": "Widgets",
            "gtin": "00000000000001",
            "offers": {"price": price, "priceCurrency": "USD",
                       "availability": "https://schema.org/InStock"},
            "inventory": {"quantity": stock},
        }],
        "shipping_rates": [{"id": "std-ship", "country_code": "default",
                            "service_level": "standard", "price": 500, "title": "Standard"}],
        "discounts": [],
        "tax_rates": [],
    }


def create(srv, pid, qty=1):
    return srv.request("POST", "/checkout-sessions", headers=UCP,
                       json={"line_items": [{"item": {"id": pid}, "quantity": qty}]})


def test_builtin_catalog_sells_the_ucp_sample_ids(server):
    for pid in ("BISC-001", "STRAW-001", "CHIPS-001", "SW-CHIPS-001", "O-COOKIES-001",
                "NUTRIBAR-001"):
        r = create(server, pid)
        assert r.status_code == 201, (pid, r.text)
        assert r.json()["line_items"][0]["item"]["id"] == pid


def test_catalog_file_and_sighup_reload(agentd, tmp_path):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(small_catalog(price="2.50")))
    srv = agentd(env={"AGENTD_CATALOG": str(path)})
    r = create(srv, "TEST-1")
    assert r.status_code == 201
    assert r.json()["line_items"][0]["item"]["price"] == 250
    assert create(srv, "BISC-001").status_code == 400   # not in this catalog

    # a valid new file: SIGHUP swaps it in
    path.write_text(json.dumps(small_catalog(price="3.75")))
    mark = srv.mark()
    srv.send_signal(signal.SIGHUP)
    assert srv.wait_log(lambda l: "catalog reloaded" in l["msg"], timeout=3)
    assert create(srv, "TEST-1").json()["line_items"][0]["item"]["price"] == 375

    # a broken file: the old catalog stays and the log says why
    path.write_text('{"currency": "USD", "products": [{"productID": "X"}]}')
    srv.send_signal(signal.SIGHUP)
    line = srv.wait_log(lambda l: "catalog not reloaded" in l["msg"], timeout=3)
    assert line is not None and line["level"] == "error"
    assert "products[0]" in line["msg"]
    assert create(srv, "TEST-1").json()["line_items"][0]["item"]["price"] == 375
    assert srv.running
    del mark


def test_bad_catalog_refuses_to_start(agentd, tmp_path):
    path = tmp_path / "catalog.json"
    path.write_text("{not json")
    srv = agentd(env={"AGENTD_CATALOG": str(path)}, wait_ready=False)
    rc = srv.wait(timeout=5)
    assert rc not in (0, None)
    assert "cannot load the catalog" in srv.log_text()


def test_catalog_import_cli(agentd, tmp_path):
    data = tmp_path / "data"
    csv = tmp_path / "csv"
    csv.mkdir()
    (csv / "products.csv").write_text(
        'id,title,price,image_url,extra\nIMP-1,"Imported, Thing",1234,https://e.x/i.png,zz\n')
    (csv / "inventory.csv").write_text("product_id,quantity\nIMP-1,2\n")
    (csv / "shipping_rates.csv").write_text(
        "id,country_code,service_level,price,title\nstd-ship,default,standard,300,Standard\n")
    env = {"AGENTD_DATA_DIR": str(data)}
    p = run_cli(["catalog", "import", str(csv)], env=env)
    assert p.returncode == 0, p.stderr
    assert "imported 1 products" in p.stdout
    db = sqlite3.connect(str(data / "agentd.db"))
    assert db.execute("SELECT quantity FROM stock WHERE product_id='IMP-1'").fetchone() == (2,)
    db.close()

    srv = agentd(env=env)
    r = create(srv, "IMP-1", 2)
    assert r.status_code == 201, r.text
    assert r.json()["line_items"][0]["item"]["title"] == "Imported, Thing"
    assert create(srv, "IMP-1", 3).status_code == 400        # only 2 in stock
    assert create(srv, "BISC-001").status_code == 400        # the demo catalog is replaced


def test_catalog_import_errors_name_file_line_field(tmp_path):
    csv = tmp_path / "csv"
    csv.mkdir()
    (csv / "products.csv").write_text("id,title,price,image_url\nA-1,Thing,abc,\n")
    p = run_cli(["catalog", "import", str(csv)], env={"AGENTD_DATA_DIR": str(tmp_path / "d")})
    assert p.returncode == 1
    assert "products.csv:2: price" in p.stderr


def test_migrate_and_backup(tmp_path):
    env = {"AGENTD_DATA_DIR": str(tmp_path / "d")}
    p = run_cli(["migrate"], env=env)
    assert p.returncode == 0 and p.stdout.startswith("schema version ")
    again = run_cli(["migrate"], env=env)
    assert again.stdout == p.stdout
    dest = tmp_path / "backup.db"
    b = run_cli(["backup", str(dest)], env=env)
    assert b.returncode == 0, b.stderr
    db = sqlite3.connect(str(dest))
    version = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert p.stdout.strip().endswith(version)
    db.close()
