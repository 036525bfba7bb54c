"""Native HTTPS (issue 12 item 6): AGENTD_TLS_CERT_FILE/KEY_FILE, TLS 1.2+,
certificate reload on SIGHUP (new connections only; a bad file keeps the old
pair), `agentd probe` over https, and the production refusals of plain HTTP.

Certificates are made here, at test time, with python3-cryptography."""

import datetime
import http.client
import ipaddress
import json
import signal
import socket
import ssl

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agentd_harness import HOST, metric_value, parse_metrics, run_cli


def make_cert(dirpath, name, serial):
    """A self-signed certificate for 127.0.0.1 with this serial: (cert, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agentd-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cpath, kpath = dirpath / f"{name}.crt", dirpath / f"{name}.key"
    cpath.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kpath.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    return cpath, kpath


def tls_env(cpath, kpath, **extra):
    return {"AGENTD_TLS_CERT_FILE": str(cpath), "AGENTD_TLS_KEY_FILE": str(kpath), **extra}


def no_verify():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def peer_serial(sock):
    return x509.load_der_x509_certificate(sock.getpeercert(binary_form=True)).serial_number


def logged(srv, text):
    """The log line holding text, waiting up to 5 s; None if it never came."""
    return srv.wait_log(lambda line: text in json.dumps(line), timeout=5)


def https_conn(srv):
    c = http.client.HTTPSConnection(HOST, srv.port, context=no_verify(), timeout=5)
    c.connect()
    return c


def get_on(conn, path="/healthz"):
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.read()


@pytest.fixture
def certs(tmp_path):
    return make_cert(tmp_path, "a", 1001)


def test_https_answers_verified(agentd, certs):
    srv = agentd(env=tls_env(*certs))
    assert srv.url.startswith("https://")
    r = srv.get("/healthz")  # verified against the test's own certificate
    assert r.status_code == 200
    big = srv.get("/openapi.json")  # a reply larger than one TLS record
    assert big.status_code == 200 and big.json()["openapi"]
    chat = srv.request("POST", "/chat", json={"message": "show me cookies"})
    assert chat.status_code == 200 and chat.json()["session_id"]
    # the listening line says so, and ALPN picks http/1.1
    ctx = no_verify()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection((HOST, srv.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=HOST) as s:
            assert s.selected_alpn_protocol() == "http/1.1"
            assert s.version() in ("TLSv1.2", "TLSv1.3")


def test_plain_http_to_tls_port_fails_and_is_counted(agentd, certs):
    srv = agentd(env=tls_env(*certs))
    with pytest.raises(requests.RequestException):
        requests.get(f"http://{HOST}:{srv.port}/healthz", timeout=5)
    samples = parse_metrics(srv.get("/metrics").text)
    assert metric_value(samples, "agentd_tls_handshake_failures_total") >= 1
    # no key material in the log
    key_pem = certs[1].read_text()
    body = key_pem.splitlines()[1]
    assert body not in srv.log_text()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_tls_versions_refused(agentd, certs, version):
    srv = agentd(env=tls_env(*certs))
    ctx = no_verify()
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # so the client itself would offer them
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = version
    with socket.create_connection((HOST, srv.port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            ctx.wrap_socket(raw, server_hostname=HOST)
    # TLS 1.2 alone is fine
    ctx12 = no_verify()
    ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection((HOST, srv.port), timeout=5) as raw:
        with ctx12.wrap_socket(raw, server_hostname=HOST) as s:
            assert s.version() == "TLSv1.2"


def test_sighup_reloads_cert_for_new_connections(agentd, tmp_path, certs):
    cpath, kpath = certs
    srv = agentd(env=tls_env(cpath, kpath))
    old = https_conn(srv)
    assert get_on(old)[0] == 200
    assert peer_serial(old.sock) == 1001

    nc, nk = make_cert(tmp_path, "b", 2002)
    cpath.write_bytes(nc.read_bytes())
    kpath.write_bytes(nk.read_bytes())
    srv.send_signal(signal.SIGHUP)
    assert logged(srv, "TLS certificate reloaded")

    fresh = https_conn(srv)
    assert peer_serial(fresh.sock) == 2002
    assert get_on(fresh)[0] == 200
    # the live connection keeps its session and still works
    assert get_on(old)[0] == 200
    assert peer_serial(old.sock) == 1001
    old.close()
    fresh.close()


def test_sighup_with_broken_cert_keeps_serving_the_old_one(agentd, certs):
    cpath, kpath = certs
    srv = agentd(env=tls_env(cpath, kpath))
    cpath.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    srv.send_signal(signal.SIGHUP)
    assert logged(srv, "TLS certificate not reloaded")
    assert srv.running
    c = https_conn(srv)
    assert peer_serial(c.sock) == 1001
    assert get_on(c)[0] == 200
    c.close()
    # a key that does not match the certificate is refused the same way
    _, other_key = make_cert(cpath.parent, "other", 3003)
    cpath.write_bytes(make_cert(cpath.parent, "a2", 1001)[0].read_bytes())
    kpath.write_bytes(other_key.read_bytes())
    srv.send_signal(signal.SIGHUP)
    assert logged(srv, "does not match")
    c = https_conn(srv)
    assert peer_serial(c.sock) == 1001 and get_on(c)[0] == 200
    c.close()


def test_bad_cert_at_start_fails_fast(agentd, tmp_path, certs):
    bad = tmp_path / "bad.crt"
    bad.write_text("garbage\n")
    r = run_cli(["check-config"], env=tls_env(bad, certs[1]))
    assert r.returncode == 2
    assert "AGENTD_TLS_CERT_FILE=" in r.stdout and "not a usable PEM certificate" in r.stdout
    srv = agentd(env=tls_env(bad, certs[1]), wait_ready=False)
    assert srv.wait(timeout=10) != 0
    assert "AGENTD_TLS_CERT_FILE" in srv.log_text()
    # one of the pair alone is a config problem
    r = run_cli(["check-config"], env={"AGENTD_TLS_CERT_FILE": str(certs[0])})
    assert r.returncode == 2
    assert "AGENTD_TLS_CERT_FILE is set without AGENTD_TLS_KEY_FILE" in r.stdout
    # a key of another pair
    _, other_key = make_cert(tmp_path, "c", 4004)
    r = run_cli(["check-config"], env=tls_env(certs[0], other_key))
    assert r.returncode == 2 and "does not match the certificate" in r.stdout


def test_probe_over_https(agentd, certs):
    srv = agentd(env=tls_env(*certs))
    env = {"AGENTD_PORT": str(srv.port), "AGENTD_HOST": HOST, **tls_env(*certs)}
    p = run_cli(["probe"], env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"https://{HOST}:{srv.port}/readyz: 200")
    p = run_cli(["probe", f"https://{HOST}:{srv.port}/healthz"])
    assert p.returncode == 0, p.stderr
    # plain http against the TLS port is not a healthy answer
    p = run_cli(["probe", f"http://{HOST}:{srv.port}/healthz"])
    assert p.returncode != 0


PROD = {"AGENTD_ENV": "production", "AGENTD_LLM": "builtin"}
PLAIN = "production: plain HTTP on a non-loopback AGENTD_HOST"
HTTP_URL = "production: AGENTD_PUBLIC_URL is http://"


def test_production_refuses_plain_http_off_loopback(certs):
    r = run_cli(["check-config"], env={**PROD, "AGENTD_HOST": "0.0.0.0"})
    assert r.returncode == 2
    assert PLAIN in r.stdout and "AGENTD_BEHIND_PROXY=1" in r.stdout
    # the derived public URL (http://0.0.0.0:8080) is refused too
    assert HTTP_URL in r.stdout
    # behind a proxy that terminates TLS, with the URL clients use: neither
    r = run_cli(["check-config"], env={**PROD, "AGENTD_HOST": "0.0.0.0",
                                       "AGENTD_BEHIND_PROXY": "1",
                                       "AGENTD_PUBLIC_URL": "https://shop.example.com"})
    assert PLAIN not in r.stdout and HTTP_URL not in r.stdout
    # native TLS: neither
    r = run_cli(["check-config"], env={**PROD, "AGENTD_HOST": "0.0.0.0", **tls_env(*certs)})
    assert PLAIN not in r.stdout and HTTP_URL not in r.stdout
    # loopback: plain is fine
    r = run_cli(["check-config"], env={**PROD, "AGENTD_HOST": "127.0.0.1"})
    assert PLAIN not in r.stdout and HTTP_URL not in r.stdout


def test_production_refuses_http_public_url():
    r = run_cli(["check-config"], env={**PROD, "AGENTD_BEHIND_PROXY": "1",
                                       "AGENTD_PUBLIC_URL": "http://shop.example.com"})
    assert r.returncode == 2
    assert HTTP_URL in r.stdout and "https://" in r.stdout
    r = run_cli(["check-config"], env={**PROD, "AGENTD_PUBLIC_URL": "http://127.0.0.1:8080"})
    assert HTTP_URL not in r.stdout
    # development does not refuse either
    r = run_cli(["check-config"], env={"AGENTD_HOST": "0.0.0.0",
                                       "AGENTD_PUBLIC_URL": "http://shop.example.com"})
    assert PLAIN not in r.stdout and HTTP_URL not in r.stdout


def test_streams_and_guard_rejections_over_tls(agentd, certs):
    srv = agentd(env=tls_env(*certs, AGENTD_MAX_BODY_BYTES="4096"))
    r = srv.request("POST", "/chat", json={"message": "show me cookies", "stream": True},
                    stream=True)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/event-stream")
    text = r.content.decode()
    assert "event:" in text or "data:" in text
    # the guard's own JSON answers go out encrypted too
    big = srv.request("POST", "/chat", data=b"{" + b" " * 8000 + b"}",
                      headers={"Content-Type": "application/json"})
    assert big.status_code == 413
    assert big.json()["error"]["code"] == "payload_too_large"
