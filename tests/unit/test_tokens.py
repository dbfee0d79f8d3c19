"""Bearer JWT verification against a JWKS file and a JWKS URL served locally."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ostiary.config.schema import Issuer
from ostiary.errors import Unauthenticated
from ostiary.identity.tokens import TokenVerifier
from ostiary.providers.http import HttpPool

ISS, AUD = "https://idp.test/realms/bank", "ostiary"


class Keys:
    def __init__(self) -> None:
        self.private: dict[str, Any] = {}

    def add(self, kid: str, kind: str = "rsa") -> None:
        self.private[kid] = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "rsa"
                             else ec.generate_private_key(ec.SECP256R1()))

    def jwks(self) -> bytes:
        out = []
        for kid, key in self.private.items():
            alg = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else jwt.algorithms.ECAlgorithm
            jwk = json.loads(alg.to_jwk(key.public_key()))
            out.append({**jwk, "kid": kid, "use": "sig"})
        return json.dumps({"keys": out}).encode()

    def token(self, kid: str | None = "k1", alg: str = "RS256", **claims: Any) -> str:
        body = {"iss": ISS, "aud": AUD, "sub": "u-42", "tenant": "acme", "exp": int(time.time()) + 300,
                "roles": ["auditor"], **claims}
        body = {k: v for k, v in body.items() if v is not None}
        headers = {"kid": kid} if kid else {}
        return jwt.encode(body, self.private[kid or "k1"], algorithm=alg, headers=headers)


@pytest.fixture
def keys() -> Keys:
    k = Keys()
    k.add("k1")
    return k


@pytest.fixture
def jwks_server(keys: Keys) -> Iterator[tuple[str, list[int]]]:
    hits = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits[0] += 1
            body = keys.jwks()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/certs", hits
    server.shutdown()


def verifier(**kw: Any) -> TokenVerifier:
    return TokenVerifier([Issuer(issuer=ISS, audience=AUD, **kw)], HttpPool())


async def test_a_valid_token_maps_its_claims(keys: Keys, tmp_path: Path) -> None:
    (tmp_path / "jwks.json").write_bytes(keys.jwks())
    v = verifier(jwks_file=tmp_path / "jwks.json")
    p = await v.verify(keys.token())
    assert (p.kind, p.tenant, p.user, p.subject, p.role) == ("jwt", "acme", "u-42", "u-42", "auditor")
    assert p.scopes == {"chat", "embeddings"}


async def test_claim_mapping_and_default_tenant(keys: Keys, tmp_path: Path) -> None:
    (tmp_path / "jwks.json").write_bytes(keys.jwks())
    v = verifier(jwks_file=tmp_path / "jwks.json", default_tenant="public-sector",
                 claims={"tenant": "org", "user": "email", "roles": "role", "team": "dept"})
    p = await v.verify(keys.token(tenant=None, email="a@b.test", role="tenant_admin", dept="risk"))
    assert (p.tenant, p.user, p.role, p.team) == ("public-sector", "a@b.test", "tenant_admin", "risk")
    with pytest.raises(Unauthenticated, match="no 'tenant' claim"):
        await verifier(jwks_file=tmp_path / "jwks.json").verify(keys.token(tenant=None))


def _tamper(token: str) -> str:
    head, body, sig = token.split(".")
    return f"{head}.{body}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"


@pytest.mark.parametrize("make, code", [
    (lambda k: k.token(exp=int(time.time()) - 3600), "token_expired"),
    (lambda k: k.token(aud="someone-else"), "invalid_audience"),
    (lambda k: k.token(iss="https://evil.test"), "untrusted_issuer"),
    (lambda k: k.token(exp=None), "invalid_token"),  # exp is required
    (lambda k: _tamper(k.token()), "invalid_signature"),
    (lambda k: "eyJhbGciOiJub25lIn0." + k.token().split(".")[1] + ".", "algorithm_not_allowed"),  # alg: none
    (lambda k: "eyJhbGciOiJI.not-a-token.x", "invalid_token"),
])
async def test_bad_tokens_are_401_with_a_clear_code(keys: Keys, tmp_path: Path, make: Any, code: str) -> None:
    (tmp_path / "jwks.json").write_bytes(keys.jwks())
    with pytest.raises(Unauthenticated) as e:
        await verifier(jwks_file=tmp_path / "jwks.json").verify(make(keys))
    assert e.value.code == code and e.value.status == 401


async def test_hmac_signed_with_the_public_key_is_refused(keys: Keys, tmp_path: Path) -> None:
    """Algorithm confusion: an HS256 token keyed with the (public) RSA key must not verify."""
    (tmp_path / "jwks.json").write_bytes(keys.jwks())
    forged = jwt.encode({"iss": ISS, "aud": AUD, "exp": int(time.time()) + 60, "tenant": "acme"},
                        "a-shared-secret-of-32-bytes-or-more", algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(Unauthenticated) as e:
        await verifier(jwks_file=tmp_path / "jwks.json").verify(forged)
    assert e.value.code == "algorithm_not_allowed"


async def test_leeway_accepts_small_clock_skew(keys: Keys, tmp_path: Path) -> None:
    (tmp_path / "jwks.json").write_bytes(keys.jwks())
    token = keys.token(exp=int(time.time()) - 30)
    assert (await verifier(jwks_file=tmp_path / "jwks.json", leeway=60).verify(token)).tenant == "acme"
    with pytest.raises(Unauthenticated):
        await verifier(jwks_file=tmp_path / "jwks.json", leeway=0).verify(token)


async def test_jwks_url_is_cached_and_refetched_for_an_unknown_kid(keys: Keys, jwks_server: Any) -> None:
    url, hits = jwks_server
    v = verifier(jwks_url=url, algorithms=["RS256", "ES256"])
    assert (await v.verify(keys.token())).tenant == "acme"
    assert (await v.verify(keys.token(sub="other"))).subject == "other"
    assert hits[0] == 1  # one fetch serves many tokens
    keys.add("k2", kind="ec")  # the issuer rotates its signing key
    fresh = keys.token(kid="k2", alg="ES256")
    with pytest.raises(Unauthenticated) as e:  # within MIN_REFETCH of the last fetch: not refetched yet
        await v.verify(fresh)
    assert e.value.code == "unknown_signing_key" and hits[0] == 1
    await asyncio.sleep(2.1)
    assert (await v.verify(fresh)).tenant == "acme" and hits[0] == 2


def test_config_refuses_symmetric_algorithms_and_two_key_sources(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Issuer(issuer=ISS, audience=AUD, jwks_url="http://x", algorithms=["HS256"])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="exactly one"):
        Issuer(issuer=ISS, audience=AUD, jwks_url="http://x", jwks_file=tmp_path / "j.json")
