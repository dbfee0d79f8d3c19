"""Bearer JWTs from configured OIDC issuers: signature, issuer, audience, expiry, algorithm.

Signing keys come from the issuer's JWKS (a URL, cached and fetched again when a token names an
unknown `kid`, at most every `MIN_REFETCH` seconds; or a file). Verified tokens are remembered
until they expire, so a client reusing its token costs one dict lookup, not a signature check.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import jwt

from ostiary.config.schema import Issuer, Timeouts
from ostiary.errors import Unauthenticated
from ostiary.identity.principal import ROLES, Principal
from ostiary.providers.http import HttpPool

log = logging.getLogger("ostiary.identity")
MIN_REFETCH = 2.0  # seconds between two JWKS fetches of one issuer (a flood of bad kids stays cheap)
CACHE_MAX = 10_000
_FETCH_TIMEOUTS = Timeouts(connect=5, first_token=10, total=10)


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2 and credential.startswith("eyJ")


class Jwks:
    def __init__(self, issuer: Issuer, pool: HttpPool) -> None:
        self.issuer = issuer
        self.pool = pool
        self.keys: dict[str | None, Any] = {}
        self.fetched_at = float("-inf")
        if issuer.jwks_file is not None:
            self._install(issuer.jwks_file.read_bytes())

    def _install(self, raw: bytes) -> None:
        keys = {}
        for jwk in jwt.PyJWKSet.from_json(raw.decode()).keys:
            keys[jwk.key_id] = jwk.key
        self.keys = keys

    async def key(self, kid: str | None) -> Any:
        if kid not in self.keys and self.issuer.jwks_url and time.monotonic() - self.fetched_at >= MIN_REFETCH:
            await self._fetch()
        if kid not in self.keys and kid is None and len(self.keys) == 1:
            return next(iter(self.keys.values()))  # a JWKS of one key may be used by kid-less tokens
        if kid not in self.keys:
            raise Unauthenticated(f"The token's signing key ({kid}) is not in the issuer's key set.",
                                  code="unknown_signing_key")
        return self.keys[kid]

    async def _fetch(self) -> None:
        self.fetched_at = time.monotonic()
        assert self.issuer.jwks_url is not None
        try:
            req = (self.pool.client(_FETCH_TIMEOUTS).get(self.issuer.jwks_url)
                   .timeout(timedelta(seconds=_FETCH_TIMEOUTS.total)).build())
            resp = await req.send()
            raw = (await resp.bytes()).to_bytes()
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            self._install(raw)
        except Exception as e:  # noqa: BLE001 - keep the keys we had; the token will fail on its kid
            log.warning("could not fetch the JWKS of %s: %s", self.issuer.issuer, e)


class TokenVerifier:
    def __init__(self, issuers: list[Issuer], pool: HttpPool) -> None:
        self.issuers = {i.issuer: (i, Jwks(i, pool)) for i in issuers}
        self._verified: dict[str, tuple[Principal, float]] = {}

    def __bool__(self) -> bool:
        return bool(self.issuers)

    async def verify(self, token: str) -> Principal:
        hit = self._verified.get(token)
        if hit is not None and hit[1] > time.time():
            return hit[0]
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise Unauthenticated("The bearer token is not a well-formed JWT.", code="invalid_token") from None
        entry = self.issuers.get(str(unverified.get("iss")))
        if entry is None:
            raise Unauthenticated(f"Tokens from the issuer {unverified.get('iss')!r} are not accepted here.",
                                  code="untrusted_issuer")
        issuer, jwks = entry
        if header.get("alg") not in issuer.algorithms:
            raise Unauthenticated(f"The token's algorithm {header.get('alg')!r} is not allowed "
                                  f"(allowed: {', '.join(issuer.algorithms)}).", code="algorithm_not_allowed")
        key = await jwks.key(header.get("kid"))
        try:
            claims = jwt.decode(token, key=key, algorithms=list(issuer.algorithms), audience=issuer.audience,
                                issuer=issuer.issuer, leeway=issuer.leeway,
                                options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("The bearer token has expired.", code="token_expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(f"The bearer token is not meant for this gateway (audience must be "
                                  f"{issuer.audience!r}).", code="invalid_audience") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("The bearer token's signature does not verify.", code="invalid_signature") from None
        except jwt.InvalidTokenError as e:
            raise Unauthenticated(f"The bearer token is not valid: {e}.", code="invalid_token") from None
        principal = _principal(issuer, claims)
        if len(self._verified) >= CACHE_MAX:
            self._verified.clear()
        self._verified[token] = (principal, float(claims["exp"]))
        return principal


def _principal(issuer: Issuer, claims: dict[str, Any]) -> Principal:
    tenant = claims.get(issuer.claims.tenant) or issuer.default_tenant
    if not tenant:
        raise Unauthenticated(f"The token has no {issuer.claims.tenant!r} claim and the issuer has no "
                              "default_tenant.", code="no_tenant")
    raw_roles = claims.get(issuer.claims.roles) or []
    roles = [raw_roles] if isinstance(raw_roles, str) else list(raw_roles)
    role = next((r for r in ROLES if r in roles), "developer")
    user = claims.get(issuer.claims.user)
    team = claims.get(issuer.claims.team) if issuer.claims.team else None
    return Principal(kind="jwt", subject=str(claims.get("sub", "")), tenant=str(tenant),
                     user=None if user is None else str(user), role=role, scopes=frozenset(issuer.scopes),
                     models=None, clearance=issuer.clearance, team=None if team is None else str(team))
