"""JWT / OIDC bearer tokens (AGENTD_OIDC_*, AGENTD_JWT_HS256_SECRET): an
issuer on loopback serves discovery and a JWKS; valid RS256, ES256 and HS256
tokens act as their `sub`; every forged token is 401 invalid_token; a rotated
key is picked up by a refetch on the unknown kid, which is rate-limited; a JWKS
that cannot be fetched is 503; a JWT principal's checkout is not another's."""

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from agentd_harness import assert_error_response, free_port, run_cli
from ucp_client import Client, check_error, unique_profile

AUD = "agentd-test"
SECRET = "hs256-secret-for-tests-0123456789abcdef"


class Issuer:
    """An OIDC issuer on 127.0.0.1: discovery and a JWKS whose keys can change."""

    def __init__(self):
        self.keys = []          # public JWK dicts
        self.hits = {"jwks": 0, "discovery": 0}
        self.delay = 0.0        # seconds each answer waits (a slow or hung issuer)
        self.fail = False       # answer 500
        self.claimed = None     # the issuer its discovery document names (None: its own URL)
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                time.sleep(issuer.delay)
                if issuer.fail:
                    self.send_error(500)
                elif self.path == "/.well-known/openid-configuration":
                    issuer.hits["discovery"] += 1
                    body = {"issuer": issuer.claimed or issuer.url,
                            "jwks_uri": issuer.url + "/jwks.json"}
                elif self.path == "/jwks.json":
                    issuer.hits["jwks"] += 1
                    body = {"keys": list(issuer.keys)}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def publish(self, *pairs):
        """pairs of (kid, private key): the JWKS becomes their public halves."""
        keys = []
        for kid, k in pairs:
            alg = RSAAlgorithm if isinstance(k, rsa.RSAPrivateKey) else ECAlgorithm
            d = json.loads(alg.to_jwk(k.public_key()))
            if alg is ECAlgorithm:
                # RFC 7518 6.2.1.2: x and y are the full 32 bytes. python-jwt
                # 2.6 drops leading zero bytes (about 1 key in 100), which
                # agentd refuses as a malformed key
                nums = k.public_key().public_numbers()
                for name, v in (("x", nums.x), ("y", nums.y)):
                    d[name] = base64.urlsafe_b64encode(v.to_bytes(32, "big")).rstrip(b"=").decode()
            d.update(kid=kid, use="sig")
            keys.append(d)
        self.keys = keys

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


RSA1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC1 = ec.generate_private_key(ec.SECP256R1())


def claims(iss, sub="jwt-user", **over):
    now = int(time.time())
    c = {"iss": iss, "aud": AUD, "sub": sub, "iat": now, "exp": now + 300}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def token(key, alg, kid, payload):
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid} if kid else None)


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def hand_made(header, payload, key=None):
    """A token signed by hand (HMAC with key) or unsigned: what a forger sends."""
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    sig = b64(hmac.new(key, signing.encode(), hashlib.sha256).digest()) if key else ""
    return signing + "." + sig


def bearer(t):
    return {"Authorization": f"Bearer {t}"}


def assert_invalid_token(r):
    assert_error_response(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="agentd", error="invalid_token"'


@pytest.fixture(scope="module")
def issuer():
    i = Issuer()
    i.publish(("r1", RSA1), ("e1", EC1))
    yield i
    i.close()


@pytest.fixture(scope="module")
def srv(module_agentd, issuer):
    # discovery (no AGENTD_OIDC_JWKS_URL); refetch on any unknown kid
    return module_agentd(env={"AGENTD_AUTH": "on", "AGENTD_OIDC_ISSUER": issuer.url,
                              "AGENTD_OIDC_AUDIENCE": AUD, "AGENTD_JWT_HS256_SECRET": SECRET,
                              "AGENTD_OIDC_JWKS_REFRESH": "0s"})


def test_valid_rs256_es256_hs256_tokens_act_as_sub(srv, issuer):
    for t in (token(RSA1, "RS256", "r1", claims(issuer.url)),
              token(EC1, "ES256", "e1", claims(issuer.url)),
              token(SECRET, "HS256", None, claims(issuer.url))):
        r = srv.get("/openapi.json", headers=bearer(t))
        assert r.status_code == 200, r.text
    assert issuer.hits["discovery"] >= 1 and issuer.hits["jwks"] >= 1
    # the principal is `sub`: an API key of the same principal sees the checkout
    t = token(RSA1, "RS256", "r1", claims(issuer.url, sub="jwt-alice"))
    c = Client(srv, unique_profile("jwt"), key=t)
    cid = c.ready([("BISC-001", 1)])["id"]
    same = Client(srv, c.profile, key=srv.principal_key("jwt-alice"))
    assert same.get(cid).status_code == 200
    other = Client(srv, c.profile, key=srv.principal_key("jwt-bob"))
    check_error(other.get(cid), 404, "not_found")


def test_a_jwt_principals_checkout_is_not_another_jwts(srv, issuer):
    alice = Client(srv, unique_profile("a"), key=token(EC1, "ES256", "e1",
                                                       claims(issuer.url, sub="idp|alice")))
    cid = alice.ready([("BISC-001", 1)])["id"]
    mallory = Client(srv, alice.profile, key=token(SECRET, "HS256", None,
                                                   claims(issuer.url, sub="idp|mallory")))
    check_error(mallory.get(cid), 404, "not_found")
    check_error(mallory.cancel(cid), 404, "not_found")
    assert alice.get(cid).status_code == 200


def test_forged_tokens_are_401_invalid_token(srv, issuer):
    iss = issuer.url
    now = int(time.time())
    rsa_pem = RSA1.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    rsa_jwk = json.dumps(issuer.keys[0]).encode()
    good = token(RSA1, "RS256", "r1", claims(iss))
    head, payload, sig = good.split(".")
    forged = {
        "alg none": hand_made({"alg": "none", "kid": "r1"}, claims(iss)),
        "alg none with a signature": hand_made({"alg": "none"}, claims(iss)) + "c2ln",
        "HS256 keyed with the RSA public key (PEM)": hand_made({"alg": "HS256", "kid": "r1"},
                                                                claims(iss), rsa_pem),
        "HS256 keyed with the RSA JWK": hand_made({"alg": "HS256", "kid": "r1"},
                                                  claims(iss), rsa_jwk),
        "unknown kid": token(RSA2, "RS256", "nobody", claims(iss)),
        "known kid, another key": token(RSA2, "RS256", "r1", claims(iss)),
        "ES256 naming the RSA key": token(EC1, "ES256", "r1", claims(iss)),
        "wrong audience": token(RSA1, "RS256", "r1", claims(iss, aud="someone-else")),
        "wrong issuer": token(RSA1, "RS256", "r1", claims("https://evil.example")),
        "expired": token(RSA1, "RS256", "r1", claims(iss, exp=now - 3600)),
        "nbf ahead": token(RSA1, "RS256", "r1", claims(iss, nbf=now + 3600)),
        "no sub": token(RSA1, "RS256", "r1", claims(iss, sub=None)),
        "no exp": token(RSA1, "RS256", "r1", claims(iss, exp=None)),
        "HS256 with another secret": token("x" * 40, "HS256", None, claims(iss)),
        "payload swapped": head + "." + b64(json.dumps(claims(iss, sub="admin")).encode()) + "." + sig,
        "bad signature": head + "." + payload + "." + sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB"),
        "malformed": "abc.def",
        "four segments": good + ".x",
    }
    for name, t in forged.items():
        r = srv.get("/openapi.json", headers=bearer(t))
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert_invalid_token(r)
    assert srv.get("/openapi.json", headers=bearer(good)).status_code == 200
    # no token reaches the log
    text = srv.log_text()
    assert good not in text and SECRET not in text


def test_scopes_come_from_the_scope_claim(srv, issuer):
    chat_only = token(RSA1, "RS256", "r1", claims(issuer.url, scope="openid chat"))
    c = Client(srv, unique_profile("s"), key=chat_only)
    r = c.create({"line_items": [{"item": {"id": "BISC-001"}, "quantity": 1}]})
    assert r.status_code == 403, r.text
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    # no admin without naming it; with it, /health opens
    plain = token(RSA1, "RS256", "r1", claims(issuer.url))
    assert srv.get("/health", headers=bearer(plain)).status_code == 403
    admin = token(RSA1, "RS256", "r1", claims(issuer.url, scope="admin"))
    assert srv.get("/health", headers=bearer(admin)).status_code == 200


def test_scopes_also_come_from_an_scp_claim(srv, issuer):
    # some identity providers send scopes as "scp", a list (or a string)
    listed = token(RSA1, "RS256", "r1", claims(issuer.url, scp=["chat", "admin"]))
    assert srv.get("/health", headers=bearer(listed)).status_code == 200
    c = Client(srv, unique_profile("s"), key=listed)
    assert c.create({"line_items": [{"item": {"id": "BISC-001"}, "quantity": 1}]}).status_code == 403
    spaced = token(RSA1, "RS256", "r1", claims(issuer.url, scp="ucp admin"))
    assert srv.get("/health", headers=bearer(spaced)).status_code == 200


def test_a_discovery_document_naming_another_issuer_is_refused(agentd):
    # OpenID Connect Discovery 1.0, 4.3: the issuer it names must be the one asked
    odd = Issuer()
    odd.publish(("r1", RSA1))
    odd.claimed = "https://evil.example"
    try:
        s = agentd(env={"AGENTD_AUTH": "on", "AGENTD_OIDC_ISSUER": odd.url,
                        "AGENTD_OIDC_AUDIENCE": AUD})
        r = s.get("/openapi.json", headers=bearer(token(RSA1, "RS256", "r1", claims(odd.url))))
        assert_error_response(r, 503, "unavailable")
        assert odd.hits["jwks"] == 0           # its jwks_uri was never followed
        assert "names issuer" in s.log_text()
    finally:
        odd.close()


def test_a_rotated_key_is_picked_up_by_a_refetch(srv, issuer):
    before = issuer.hits["jwks"]
    issuer.publish(("r2", RSA2), ("e1", EC1))
    try:
        t = token(RSA2, "RS256", "r2", claims(issuer.url, sub="rotated"))
        r = srv.get("/openapi.json", headers=bearer(t))
        assert r.status_code == 200, r.text
        assert issuer.hits["jwks"] == before + 1
        # the retired key is gone after the refetch
        old = token(RSA1, "RS256", "r1", claims(issuer.url))
        assert_invalid_token(srv.get("/openapi.json", headers=bearer(old)))
    finally:
        issuer.publish(("r1", RSA1), ("e1", EC1))


def test_unknown_kids_refetch_at_most_once_per_interval(agentd, issuer):
    s = agentd(env={"AGENTD_AUTH": "on", "AGENTD_OIDC_ISSUER": issuer.url,
                    "AGENTD_OIDC_JWKS_URL": issuer.url + "/jwks.json",
                    "AGENTD_OIDC_AUDIENCE": AUD, "AGENTD_OIDC_JWKS_REFRESH": "1h",
                    "AGENTD_THREADS": "1"})
    disc, before = issuer.hits["discovery"], issuer.hits["jwks"]
    ok = token(RSA1, "RS256", "r1", claims(issuer.url))
    assert s.get("/openapi.json", headers=bearer(ok)).status_code == 200
    assert issuer.hits["jwks"] == before + 1
    for i in range(5):
        t = token(RSA2, "RS256", f"k{i}", claims(issuer.url))
        assert_invalid_token(s.get("/openapi.json", headers=bearer(t)))
    assert issuer.hits["jwks"] == before + 1     # no fetch per unknown kid
    assert issuer.hits["discovery"] == disc      # the JWKS URL was configured
    # HS256 is off without a secret
    hs = token(SECRET, "HS256", None, claims(issuer.url))
    assert_invalid_token(s.get("/openapi.json", headers=bearer(hs)))


def test_requests_waiting_on_a_fetch_resume_when_it_ends(agentd):
    slow = Issuer()
    slow.publish(("r1", RSA1))
    slow.delay = 0.5
    try:
        s = agentd(env={"AGENTD_AUTH": "on", "AGENTD_OIDC_ISSUER": slow.url,
                        "AGENTD_OIDC_JWKS_URL": slow.url + "/jwks.json",
                        "AGENTD_OIDC_AUDIENCE": AUD, "AGENTD_OIDC_JWKS_REFRESH": "1h",
                        "AGENTD_THREADS": "1"})
        t = token(RSA1, "RS256", "r1", claims(slow.url))
        results = []

        def call():
            results.append(s.get("/openapi.json", headers=bearer(t), timeout=20).status_code)
        threads = [threading.Thread(target=call) for _ in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert results == [200] * 6
        assert slow.hits["jwks"] == 1       # one fetch served every waiter
    finally:
        slow.close()


def test_a_hung_jwks_fetch_ends_in_503_not_a_hang(agentd):
    hung = Issuer()
    hung.publish(("r1", RSA1))
    hung.delay = 8.0                        # past the 5 s fetch timeout
    try:
        s = agentd(env={"AGENTD_AUTH": "on", "AGENTD_OIDC_ISSUER": hung.url,
                        "AGENTD_OIDC_AUDIENCE": AUD})
        r = s.get("/openapi.json", headers=bearer(token(RSA1, "RS256", "r1", claims(hung.url))),
                  timeout=30)
        assert_error_response(r, 503, "unavailable")
        # the loop kept serving meanwhile, and still does
        assert s.get("/healthz").status_code == 200
    finally:
        hung.delay = 0
        hung.close()


def test_without_any_keys_a_failed_fetch_is_retried_soon(agentd):
    flaky = Issuer()
    flaky.publish(("r1", RSA1))
    flaky.fail = True
    try:
        s = agentd(env={"AGENTD_AUTH": "on", "AGENTD_OIDC_ISSUER": flaky.url,
                        "AGENTD_OIDC_JWKS_URL": flaky.url + "/jwks.json",
                        "AGENTD_OIDC_AUDIENCE": AUD, "AGENTD_OIDC_JWKS_REFRESH": "1h",
                        "AGENTD_THREADS": "1"})
        t = token(RSA1, "RS256", "r1", claims(flaky.url))
        r = s.get("/openapi.json", headers=bearer(t))
        assert_error_response(r, 503, "unavailable")
        assert r.headers["Retry-After"] == "5"
        flaky.fail = False
        # the hour between refreshes is for a known key set; with none, Retry-After holds
        time.sleep(5.2)
        assert s.get("/openapi.json", headers=bearer(t)).status_code == 200
        assert flaky.hits["jwks"] == 1     # the failed first answer was not counted as a hit
    finally:
        flaky.close()


def test_an_unreachable_jwks_is_503_and_hs256_still_works(agentd):
    dead = f"http://127.0.0.1:{free_port()}"
    s = agentd(env={"AGENTD_AUTH": "on", "AGENTD_OIDC_ISSUER": dead,
                    "AGENTD_OIDC_AUDIENCE": AUD, "AGENTD_JWT_HS256_SECRET": SECRET})
    r = s.get("/openapi.json", headers=bearer(token(RSA1, "RS256", "r1", claims(dead))))
    assert_error_response(r, 503, "unavailable")
    assert r.headers.get("Retry-After")
    hs = token(SECRET, "HS256", None, claims(dead))
    assert s.get("/openapi.json", headers=bearer(hs)).status_code == 200
    assert "jwks: fetching" in s.log_text()


def test_config_refuses_remote_http_issuers():
    p = run_cli(["check-config"], env={"AGENTD_OIDC_ISSUER": "http://idp.example",
                                     "AGENTD_OIDC_AUDIENCE": AUD})
    assert p.returncode != 0
    assert "AGENTD_OIDC_ISSUER=http://idp.example: must be an https:// URL" in p.stdout + p.stderr
