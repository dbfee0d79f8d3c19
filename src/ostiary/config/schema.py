"""The configuration schema: one YAML file, validated before it is ever served.

Pydantic models with `extra="forbid"`, so a misspelt key is an error with its location rather than
a silently ignored setting. Secrets are `SecretStr`: they never appear in a repr, a log line or an
error message.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

ProviderName = Literal["openai", "azure", "anthropic", "mock"]
Strategy = Literal["weighted", "priority", "latency", "least_busy"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(Strict):
    connect: float = Field(5.0, gt=0, description="seconds to open a connection")
    first_token: float = Field(60.0, gt=0, description="seconds until the first byte (stream) or headers")
    total: float = Field(600.0, gt=0, description="seconds for the whole upstream call")


class Retry(Strict):
    attempts: int = Field(3, ge=1, le=10, description="tries per deployment, the first one included")
    backoff_base: float = Field(0.1, ge=0, description="seconds; the n-th retry waits U(0, base*2^n)")
    backoff_max: float = Field(5.0, ge=0)
    retry_after_max: float = Field(10.0, ge=0, description="longest Retry-After the gateway will honour")


class Breaker(Strict):
    failure_ratio: float = Field(0.5, gt=0, le=1)
    window: float = Field(30.0, gt=0, description="seconds of outcomes considered")
    min_requests: int = Field(5, ge=1, description="outcomes needed in the window before it can open")
    cooldown: float = Field(10.0, gt=0, description="seconds open before a half-open probe")


class MockAnswer(Strict):
    when: str = Field(description="a regular expression searched in the last user message")
    reply: str

    @field_validator("when")
    @classmethod
    def _regex(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"not a regular expression: {e}") from None
        return v


class MockBehaviour(Strict):
    """For tests, demos and drills with the built-in mock model: known answers and injected failures."""

    answers: list[MockAnswer] = Field(default_factory=list, description="the first that matches answers")
    error_rate: float = Field(0.0, ge=0, le=1, description="share of calls that fail (deterministic per request)")
    error_status: int = Field(500, ge=400, le=599)


class Deployment(Strict):
    provider: ProviderName
    model: str = Field(min_length=1, description="the upstream model (Azure: the deployment name)")
    id: str | None = Field(None, description="a stable name for metrics and the audit trail")
    api_base: str | None = None
    api_key: SecretStr | None = None
    api_key_file: Path | None = None
    api_version: str | None = None
    weight: float = Field(1.0, gt=0)
    priority: int = 0
    timeouts: Timeouts | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    mock: MockBehaviour | None = Field(None, description="provider mock only: known answers, injected failures")

    @field_validator("api_base")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.startswith(("http://", "https://")) or len(v) < 10:
            raise ValueError("must be an http:// or https:// URL")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _provider_needs(self) -> Deployment:
        if self.provider == "azure":
            if not self.api_base:
                raise ValueError("azure needs api_base (https://NAME.openai.azure.com)")
            if not self.api_version:
                raise ValueError("azure needs api_version (e.g. 2024-10-21)")
        if self.api_key is not None and self.api_key_file is not None:
            raise ValueError("set api_key or api_key_file, not both")
        if self.mock is not None and self.provider != "mock":
            raise ValueError("mock settings apply to provider mock only")
        return self

    @cached_property
    def name(self) -> str:
        return self.id or f"{self.provider}:{self.model}@{self.api_base or 'default'}"


class Route(Strict):
    name: str = Field(min_length=1, description="the model name clients send")
    tags: dict[str, str] = Field(default_factory=dict, description="attributes authorization policies see")
    strategy: Strategy = "priority"
    deployments: list[Deployment] = Field(min_length=1)
    fallbacks: list[str] = Field(default_factory=list, description="other routes tried when all fail")
    retry: Retry | None = None
    description: str | None = None


class Server(Strict):
    host: str = "127.0.0.1"
    port: int = Field(4000, ge=1, le=65535)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    max_messages: int = Field(2048, ge=1)
    data_dir: Path = Path(".ostiary")
    # The embedded default lets loopback clients in without a key so a first call just works;
    # later issues add keys and issuers, after which every request authenticates.
    allow_anonymous_loopback: bool = True


Algorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
Scope = Literal["chat", "embeddings", "admin"]


class Claims(Strict):
    tenant: str = Field("tenant", description="claim holding the tenant")
    user: str = Field("sub", description="claim holding the user")
    roles: str = Field("roles", description="claim holding a role or a list of roles")
    team: str | None = Field(None, description="claim holding the team (budgets count per team)")


class Issuer(Strict):
    """An OIDC issuer whose bearer JWTs the gateway accepts."""

    issuer: str = Field(min_length=1, description="the exact `iss` of its tokens")
    audience: str = Field(min_length=1, description="the `aud` tokens must carry")
    jwks_url: str | None = None
    jwks_file: Path | None = None
    # Asymmetric only: an HMAC algorithm would let anyone holding the public key mint tokens.
    algorithms: list[Algorithm] = Field(default_factory=lambda: list[Algorithm](["RS256", "ES256"]), min_length=1)
    leeway: float = Field(60.0, ge=0, le=600, description="clock skew allowed on exp/nbf/iat, seconds")
    claims: Claims = Claims()
    default_tenant: str | None = Field(None, description="tenant for tokens without the tenant claim")
    scopes: list[Scope] = Field(default_factory=lambda: list[Scope](["chat", "embeddings"]))
    clearance: Literal["public", "internal", "confidential", "restricted"] = "internal"

    @model_validator(mode="after")
    def _one_key_source(self) -> Issuer:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("set exactly one of jwks_url and jwks_file")
        return self


class Identity(Strict):
    # HMAC secret for API-key hashes. Required with database_url (every replica must hash alike);
    # on the embedded default it is generated once into the data directory.
    key_secret: SecretStr | None = None
    refresh_seconds: float = Field(0.5, gt=0, le=60, description="how often replicas look for key changes")
    issuers: list[Issuer] = Field(default_factory=list)


class Quota(Strict):
    rpm: int | None = Field(None, ge=1, description="requests per minute; a burst of up to rpm, refilled continuously")
    tpm: int | None = Field(None, ge=1, description="tokens per minute, input and output together")
    input_tpm: int | None = Field(None, ge=1, description="input (prompt) tokens per minute")
    output_tpm: int | None = Field(None, ge=1, description="output (completion) tokens per minute")
    concurrent: int | None = Field(None, ge=1, description="requests in flight at once")

    @model_validator(mode="after")
    def _something(self) -> Quota:
        if all(v is None for v in (self.rpm, self.tpm, self.input_tpm, self.output_tpm, self.concurrent)):
            raise ValueError("set at least one of rpm, tpm, input_tpm, output_tpm, concurrent")
        return self


class Loop(Strict):
    """Runaway-loop protection: one caller sending the same prompt over and over."""

    max_repeats: int = Field(ge=1, description="identical prompts from one principal allowed per window")
    window_seconds: float = Field(60.0, gt=0)


class Limits(Strict):
    """Default limits, each counted per principal key, user, tenant or route. The admin API can set
    other limits for one key, user, team or tenant (they replace the default for that scope)."""

    key: Quota | None = None
    user: Quota | None = None
    tenant: Quota | None = None
    route: Quota | None = None
    loop: Loop | None = None
    output_reserve: int = Field(4096, ge=1, description="output tokens reserved (token limits, budgets) for a "
                                "request that sets no max_tokens; under a budget it is also sent as its max_tokens")


class Webhooked(Strict):
    webhook_url: str | None = Field(None, description="receives the events as JSON POSTs")
    webhook_secret: SecretStr | None = Field(None, description="signs webhook bodies (x-ostiary-signature)")

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v


class Budgets(Webhooked):
    """How budgets (set per tenant, team, user or key through the admin API) are counted; the webhook
    receives a POST when spend crosses a threshold."""

    timezone: str = Field("UTC", description="the zone whose calendar days and months budget periods follow")
    stream_step: int = Field(256, ge=1, description="output tokens a stream reserves at a time past its estimate")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Europe/Paris)") from None
        return v


class ModelPrice(Strict):
    """USD per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(None, ge=0, description="unset: the input price")


class Authorization(Strict):
    """Cedar policies deciding who may call which route. Unset: every authenticated caller may use
    every route its key allows. Set: Cedar's default applies (deny unless a policy permits)."""

    policies: str | None = None
    policies_file: Path | None = None

    @field_validator("policies")
    @classmethod
    def _parse(cls, v: str | None) -> str | None:
        if v is not None:
            import cedarpy

            try:
                cedarpy.PolicySet.from_str(v)
            except ValueError as e:
                raise ValueError(f"invalid Cedar policies: {e}") from None
        return v

    @model_validator(mode="after")
    def _one_source(self) -> Authorization:
        if self.policies is not None and self.policies_file is not None:
            raise ValueError("set policies or policies_file, not both")
        return self


ScannerName = Literal["pii", "secrets", "injection", "toxicity", "topics", "canary", "exfiltration", "json_schema"]
Action = Literal["allow", "redact", "block", "flag", "escalate"]
Segment = Literal["system", "user", "assistant", "tool"]
InjectionDetector = Literal["rules+linear", "embeddings", "rules+linear+embeddings"]
_SPAN_SCANNERS = ("pii", "secrets")


class Check(Strict):
    """One scanner in a guardrail policy, with what to do when it finds something."""

    scanner: ScannerName
    action: Action = "block"
    threshold: float = Field(0.5, ge=0, le=1, description="findings scoring below are ignored")
    entities: list[str] | None = Field(None, description="pii, secrets: only these types (default: all)")
    segments: list[Segment] | None = Field(None, description="input: the message roles scanned (default: all)")
    terms: list[str] = Field(default_factory=list, description="topics: words or phrases that are off limits")
    examples: list[str] = Field(default_factory=list, description="topics: sentences describing what is off "
                                "limits, matched by meaning (needs the embeddings extra)")
    similarity: float = Field(0.5, gt=0, lt=1, description="topics: the cosine similarity to an example from "
                              "which a text matches it")
    detector: InjectionDetector = Field("rules+linear", description="injection: rules+linear (default), "
                                        "embeddings, or rules+linear+embeddings (both need the embeddings extra)")
    allow_hosts: list[str] = Field(default_factory=list, description="exfiltration: hosts links may point to")
    fail_open: bool = Field(False, description="let the request through when the scanner fails or is too slow")
    retry: bool = Field(False, description="json_schema: one corrective retry before blocking (not on streams)")

    @model_validator(mode="after")
    def _fits(self) -> Check:
        if self.action == "redact" and self.scanner not in _SPAN_SCANNERS:
            raise ValueError(f"redact needs a scanner that finds values (pii, secrets), not {self.scanner}")
        if self.scanner == "topics" and not (self.terms or self.examples):
            raise ValueError("topics needs terms or examples")
        if self.examples and self.scanner != "topics":
            raise ValueError(f"examples apply to the topics scanner, not {self.scanner}")
        if self.detector != "rules+linear" and self.scanner != "injection":
            raise ValueError(f"detector applies to the injection scanner, not {self.scanner}")
        if self.examples or self.detector != "rules+linear":
            # Checked here, so that `config check` and every load say it, not the first request. Only a
            # package probe: config does not load the model.
            from ostiary.guardrails import embed

            if not embed.available():
                what = "topics examples" if self.examples else f"detector {self.detector!r}"
                raise ValueError(str(embed.EmbeddingsUnavailable(what)))
        if self.scanner == "json_schema" and self.action != "block":
            raise ValueError("json_schema blocks an answer that does not match (set retry: true to ask once more)")
        return self


class GuardrailPolicy(Strict):
    input: list[Check] = Field(default_factory=list, description="scanned before the request leaves")
    output: list[Check] = Field(default_factory=list, description="scanned before the answer is returned")
    review_timeout_seconds: float = Field(300.0, gt=0, le=3600, description="escalate: how long a request "
                                          "waits for a reviewer before it is refused")
    restore: bool = Field(True, description="put values redacted from the prompt back into the answer")
    timeout_ms: float = Field(50.0, gt=0, description="a scanner slower than this counts as failed")
    max_chars: int = Field(1_000_000, ge=1, description="longer texts count as a failed scan (fail-closed)")
    audit_raw: bool = Field(False, description="also keep the prompt as sent, before redaction, in the audit "
                            "event (encrypted under the data subject's key like all content)")

    @field_validator("output")
    @classmethod
    def _no_output_escalation(cls, v: list[Check]) -> list[Check]:
        if any(c.action == "escalate" for c in v):
            raise ValueError("escalate applies to input checks only (an answer cannot wait for a reviewer "
                             "while its stream is open); use block or redact on the output")
        return v

    @field_validator("input")
    @classmethod
    def _schema_is_output(cls, v: list[Check]) -> list[Check]:
        if any(c.scanner in ("json_schema", "canary") for c in v):
            raise ValueError("json_schema and canary check answers: put them under output")
        return v


class Guardrails(Strict):
    """Named policies and where they apply: a key's `guardrails` tag, else its route, else its
    tenant, else `default`."""

    policies: dict[str, GuardrailPolicy] = Field(default_factory=dict)
    default: str | None = None
    routes: dict[str, str] = Field(default_factory=dict, description="route -> policy")
    tenants: dict[str, str] = Field(default_factory=dict, description="tenant -> policy")

    @model_validator(mode="after")
    def _known(self) -> Guardrails:
        named = [("default", self.default)] if self.default else []
        named += [(f"routes.{k}", v) for k, v in self.routes.items()]
        named += [(f"tenants.{k}", v) for k, v in self.tenants.items()]
        for where, name in named:
            if name not in self.policies:
                raise ValueError(f"{where}: no guardrail policy {name!r} (known: {', '.join(self.policies) or 'none'})")
        return self


class Retention(Strict):
    content_days: int = Field(180, ge=1, description="days personal content (prompts, answers, user ids) is kept; "
                              "shredded a month at a time, by deleting that month's data keys")


class Siem(Strict):
    url: str = Field(pattern=r"^(tcp|tls)://[^\s/:]+:\d{1,5}$", description="tcp://host:port or tls://host:port "
                     "(syslog over TLS, RFC 5425)")
    format: Literal["syslog", "cef", "jsonl"] = "syslog"
    ca_file: Path | None = Field(None, description="CA bundle that signs the receiver's certificate (tls://)")
    name: str = Field("siem", min_length=1, max_length=100, description="names the delivery cursor")


class Audit(Strict):
    """The tamper-evident audit trail (audit/)."""

    enabled: bool = True
    spool_dir: Path | None = Field(None, description="durable local spool; default: <server.data_dir>/audit")
    fsync: bool = Field(True, description="fsync each batch before acknowledging (off: faster, may lose the "
                        "last acknowledged requests on a power cut; never on a process crash)")
    origin: str = Field("ostiary/audit", min_length=1, max_length=200, pattern=r"^[^\s+]+$",
                        description="the log's name in its checkpoints")
    checkpoint_every: int = Field(1000, ge=1, description="sign a checkpoint every N events ...")
    checkpoint_seconds: float = Field(10.0, gt=0, description="... or every T seconds when the log grew")
    signing_key_file: Path | None = Field(None, description="Ed25519 note signing key; default: "
                                          "<data_dir>/audit/signing.key, created on first start")
    verifier_keys: list[str] = Field(default_factory=list, description="earlier signers' verifier keys, "
                                     "still trusted by `audit verify` after a key change")
    master_key_file: Path | None = Field(None, description="32-byte key wrapping the per-subject data keys; "
                                         "default: <data_dir>/audit/master.key, created on first start")
    master_key_env: str | None = Field(None, description="environment variable holding the master key instead")
    witness_dir: Path | None = Field(None, description="every checkpoint is also written here (a directory a "
                                     "database administrator cannot rewrite)")
    witness_url: str | None = Field(None, pattern=r"^https?://", description="every checkpoint note is also "
                                    "POSTed here (text/plain), e.g. to a transparency witness or an archive")
    retention: Retention = Retention()
    siem: Siem | None = Field(None, description="stream every event and checkpoint to a SIEM, at least once, "
                              "in order; one replica at a time sends (a lease in the store)")


class Telemetry(Strict):
    """Metrics (GET /metrics, Prometheus text format) and traces (OpenTelemetry over OTLP/HTTP)."""

    metrics_public: bool = Field(True, description="serve /metrics without a credential, like /healthz (the "
                                 "default binds loopback); false: only a key or token with the admin scope "
                                 "and the role admin or auditor (metrics name every tenant and route)")
    otlp_endpoint: str | None = Field(None, description="OTLP/HTTP collector (http://host:4318, or the full "
                                      ".../v1/traces URL): one span per request; needs the 'otel' extra; "
                                      "read at start (a change takes effect on restart)")
    otlp_headers: dict[str, SecretStr] = Field(default_factory=dict, description="headers sent to the collector")
    otlp_sample_ratio: float = Field(1.0, ge=0, le=1, description="share of requests without a sampled "
                                     "caller span that are traced (a caller's sampled flag is followed)")
    service_name: str = Field("ostiary", min_length=1, description="the spans' service.name")

    @model_validator(mode="after")
    def _otel_installed(self) -> Telemetry:
        if self.otlp_endpoint is None:
            return self
        if not self.otlp_endpoint.startswith(("http://", "https://")):
            raise ValueError("otlp_endpoint must be an http:// or https:// URL")
        import importlib.util

        try:
            found = all(importlib.util.find_spec(m) is not None for m in (
                "opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http.trace_exporter"))
        except ImportError:
            found = False
        if not found:
            raise ValueError("otlp_endpoint needs the OpenTelemetry packages of the 'otel' extra: "
                             "pip install 'ostiary[otel]'")
        return self


class PromptSettings(Strict):
    protected_labels: list[str] = Field(default_factory=lambda: ["production"], description="labels that move "
                                        "only to a version with a passing evaluation run (`ostiary eval run`) on "
                                        "record, unless an admin forces it")


class ReleaseSettings(Webhooked):
    """Progressive releases (llmops/releases.py); the webhook receives the controller's decisions: a
    rollback, a pause for a person, a step, a promotion."""


class Config(Strict):
    database_url: str | None = Field(None, description="PostgreSQL URL; unset: SQLite in server.data_dir")
    redis_url: str | None = Field(None, description="Redis URL: limits shared by every replica")
    limits: Limits = Limits()
    budgets: Budgets = Budgets()
    pricing: dict[str, ModelPrice] = Field(default_factory=dict, description="per model; overrides the defaults")
    guardrails: Guardrails = Guardrails()
    audit: Audit = Audit()
    prompts: PromptSettings = PromptSettings()
    releases: ReleaseSettings = ReleaseSettings()
    telemetry: Telemetry = Telemetry()
    authorization: Authorization = Authorization()
    identity: Identity = Identity()
    server: Server = Server()
    timeouts: Timeouts = Timeouts()
    retry: Retry = Retry()
    breaker: Breaker = Breaker()
    routes: list[Route] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_deployment_per_name(self) -> Config:
        # A deployment is known by its name everywhere (health, breakers, metrics, the audit trail):
        # two different deployments must not share one.
        # (Weight and priority are each route's own choice and may differ.)
        seen: dict[str, dict[str, object]] = {}
        for i, route in enumerate(self.routes):
            for j, d in enumerate(route.deployments):
                settings = d.model_dump(exclude={"weight", "priority"})
                if seen.setdefault(d.name, settings) != settings:
                    raise ValueError(f"routes[{i}].deployments[{j}]: another deployment is also named {d.name!r} "
                                     "with different settings; give them distinct ids")
        return self

    @model_validator(mode="after")
    def _shared_secret(self) -> Config:
        if self.database_url and self.identity.key_secret is None:
            raise ValueError("identity.key_secret is required with database_url: every replica must "
                             "hash API keys with the same secret (e.g. key_secret: ${OSTIARY_KEY_SECRET})")
        a = self.audit
        if self.database_url and a.enabled and (a.signing_key_file is None or (
                a.master_key_file is None and a.master_key_env is None)):
            raise ValueError("audit.signing_key_file and audit.master_key_file (or master_key_env) are required with "
                             "database_url: every replica must sign checkpoints and wrap data keys with the same keys "
                             "(`ostiary audit keygen DIR` writes both)")
        if self.database_url and not self.database_url.startswith(("postgresql://", "postgresql+psycopg://")):
            raise ValueError("database_url must be a postgresql:// URL (SQLite is the default without it)")
        return self
