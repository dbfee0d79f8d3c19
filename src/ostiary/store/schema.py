"""The relational schema, as SQLAlchemy Core tables: one schema for SQLite and PostgreSQL.

Migrations (store/migrations, Alembic) create and evolve it; these definitions are what the code
queries with. Times are timezone-aware UTC.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# One row. `key_generation` grows on every change to what the request path reads from memory (keys,
# users, budgets, limit overrides), so replicas notice any change with one cheap query and reload.
meta = sa.Table(
    "ostiary_meta",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key_generation", sa.BigInteger, nullable=False, server_default="0"),
)

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),  # the visible prefix, e.g. "ost-3kq9x2mf"
    sa.Column("hash", sa.String(64), nullable=False, unique=True),  # HMAC-SHA256 of the whole key
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False, index=True),
    sa.Column("user_id", sa.String(200), nullable=True),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("models", sa.JSON, nullable=True),  # null: every route
    sa.Column("clearance", sa.String(32), nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("rotated_to", sa.String(40), nullable=True),  # set on the old key of a rotation
    # The id of the first key of a rotation chain: successors share its limits, budget and spend.
    sa.Column("lineage", sa.String(40), nullable=True),
)

# People and services of a tenant. A key may name a user; the user's team then counts for budgets.
users = sa.Table(
    "users",
    metadata,
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("team", sa.String(200), nullable=True),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# A spending cap for one scope: "tenant:acme", "team:acme/risk", "user:acme/alice", "key:ost-...".
budgets = sa.Table(
    "budgets",
    metadata,
    sa.Column("scope", sa.String(300), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
    sa.Column("amount_usd", sa.Float, nullable=False),
    sa.Column("period", sa.String(16), nullable=False),  # day, month or total
    sa.Column("thresholds", sa.JSON, nullable=False),  # percentages that fire the webhook, e.g. [50, 80, 100]
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Rate limits for one scope (same scope names as budgets), replacing the config's default for it.
limit_overrides = sa.Table(
    "limit_overrides",
    metadata,
    sa.Column("scope", sa.String(300), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
    sa.Column("rpm", sa.Integer, nullable=True),
    sa.Column("tpm", sa.Integer, nullable=True),
    sa.Column("input_tpm", sa.Integer, nullable=True),
    sa.Column("output_tpm", sa.Integer, nullable=True),
    sa.Column("concurrent", sa.Integer, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Usage, appended in aggregates: one row per (minute, tenant, team, user, key, route, deployment)
# per flush of one replica. Reports and budget baselines SUM over it. `minute` is UTC; every time
# zone offset is a whole number of minutes, so a day or month in any zone is a range of minutes.
usage = sa.Table(
    "usage",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
    sa.Column("day", sa.String(10), nullable=False),  # the UTC date of `minute`, for reports by day
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("team", sa.String(200), nullable=True),
    sa.Column("user_id", sa.String(200), nullable=True),
    sa.Column("key_id", sa.String(200), nullable=True),  # the key id or token subject
    sa.Column("model", sa.String(200), nullable=False),  # the route the client asked for
    sa.Column("deployment", sa.String(200), nullable=True),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("errors", sa.Integer, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cached_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Index("ix_usage_tenant_minute", "tenant_id", "minute"),
    sa.Index("ix_usage_minute", "minute"),
    sa.Index("ix_usage_key_minute", "key_id", "minute"),  # a key's budget baseline
)

# Administrative changes (who changed what), written in the transaction of the change; the audit
# trail (issue 5) takes them over into its tamper-evident log.
admin_events = sa.Table(
    "admin_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),  # the principal's subject, or "cli"
    sa.Column("actor_tenant", sa.String(64), nullable=True),
    sa.Column("action", sa.String(64), nullable=False),  # e.g. key.create, budget.set, user.role
    sa.Column("tenant_id", sa.String(64), nullable=True, index=True),
    sa.Column("target", sa.String(300), nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
)

# Requests a guardrail policy escalated to a person: the request waits until a reviewer approves or
# denies it through the admin API, or until the policy's review timeout. `excerpt` is the flagged
# text with the values span scanners found replaced by typed placeholders.
reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
    sa.Column("principal", sa.String(300), nullable=False),
    sa.Column("request_id", sa.String(200), nullable=False),
    sa.Column("route", sa.String(200), nullable=False),
    sa.Column("policy", sa.String(200), nullable=False),
    sa.Column("policy_version", sa.String(40), nullable=False),
    sa.Column("scanner", sa.String(40), nullable=False),
    sa.Column("segment", sa.String(20), nullable=False),
    sa.Column("entities", sa.JSON, nullable=False),
    sa.Column("excerpt", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending, approved, denied, expired
    sa.Column("decided_by", sa.String(300), nullable=True),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("note", sa.String(1000), nullable=True),
    sa.Column("user_id", sa.String(200), nullable=True),  # 0004: so that an erasure finds the review
)

# The audit trail (audit/): one row per event, in log order. `body` is the event's JSON as hashed
# (`leaf` = RFC 6962 leaf hash of its UTF-8 bytes); personal content inside it is encrypted per data
# subject, whose pseudonym is `subject`. Triggers refuse UPDATE, DELETE and TRUNCATE.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("uid", sa.String(32), nullable=False, unique=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),  # exports select by time
    sa.Column("kind", sa.String(16), nullable=False),  # request, admin, erasure, retention, hold, verify
    sa.Column("request_id", sa.String(200), nullable=True, index=True),
    sa.Column("tenant_id", sa.String(64), nullable=True, index=True),
    sa.Column("subject", sa.String(32), nullable=True, index=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("leaf", sa.String(64), nullable=False),
)

# One row: the log's size and Merkle frontier (so an append needs no re-reading), the last admin
# event taken over, and the last checkpoint. Updated under the append lock; derivable from the log.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("frontier", sa.JSON, nullable=False),
    sa.Column("admin_cursor", sa.BigInteger, nullable=False),
    sa.Column("checkpoint_size", sa.BigInteger, nullable=False),
    sa.Column("checkpoint_at", sa.DateTime(timezone=True), nullable=True),
)

# Signed checkpoints (C2SP tlog-checkpoint notes), append-only like the log.
audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("root", sa.String(64), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

# Roots of complete aligned subtrees of the log (audit/tiles.py), append-only: proofs read them.
audit_tiles = sa.Table(
    "audit_tiles",
    metadata,
    sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# Data keys, one per subject and month (wrapped by the master key). Deleting them is the erasure.
audit_keys = sa.Table(
    "audit_keys",
    metadata,
    sa.Column("kid", sa.String(80), primary_key=True),
    sa.Column("subject", sa.String(32), nullable=False, index=True),
    sa.Column("period", sa.String(7), nullable=False, index=True),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Streaming exports (SIEM): how far each has delivered, and which replica holds its lease.
audit_exports = sa.Table(
    "audit_exports",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("cursor", sa.BigInteger, nullable=False),  # the next event index to send
    sa.Column("checkpoint_cursor", sa.BigInteger, nullable=False),  # the largest checkpoint size sent
    sa.Column("owner", sa.String(100), nullable=False),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
)

# Legal holds: a subject's pseudonym, or "*" for everything; retention does not shred what is held.
audit_holds = sa.Table(
    "audit_holds",
    metadata,
    sa.Column("subject", sa.String(40), primary_key=True),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Feedback on an answer, from the principal who made the request (or its tenant admin).
feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("request_id", sa.String(200), nullable=False, index=True),
    sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
    sa.Column("principal", sa.String(300), nullable=False),
    sa.Column("subject", sa.String(32), nullable=False, index=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("label", sa.String(100), nullable=True),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# The prompt registry (llmops/prompts.py): versions never change; labels point at one version.
prompt_versions = sa.Table(
    "prompt_versions",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("template", sa.JSON, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),  # sha256 of the template as stored
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
)

prompt_labels = sa.Table(
    "prompt_labels",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("label", sa.String(100), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)

# Evaluation runs (llmops/evaluate.py): the gate's verdict per suite, target and dataset.
eval_runs = sa.Table(
    "eval_runs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("suite", sa.String(200), nullable=False, index=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("target", sa.JSON, nullable=False),  # route, prompt (and the version it resolved to)
    sa.Column("dataset_sha256", sa.String(64), nullable=False),
    sa.Column("summary", sa.JSON, nullable=False),  # per assertion: mean, interval, threshold, pass; signatures
    sa.Column("created_by", sa.String(200), nullable=False),
)

# Progressive releases (llmops/releases.py): one pointer changed in steps, analysed, promoted or rolled back.
releases = sa.Table(
    "releases",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),  # prompt | route | guardrails
    sa.Column("target", sa.String(200), nullable=False),  # NAME@LABEL, or a route name
    sa.Column("baseline", sa.String(200), nullable=True),  # the pointer's value when the release was made
    sa.Column("candidate", sa.String(200), nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),  # steps, stickiness, timing, analysis rules
    sa.Column("state", sa.String(20), nullable=False),  # pending running paused promoted rolled_back
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("reason", sa.String(1000), nullable=True),
    # "KIND:TARGET" while pending, running or paused, NULL after: at most one active release per pointer.
    sa.Column("active_key", sa.String(240), nullable=True, unique=True),
    sa.Column("revision", sa.Integer, nullable=False),  # every change bumps it (compare-and-set)
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Per replica and arm, the cumulative outcome counts of a release's calls (summed for the analysis).
release_stats = sa.Table(
    "release_stats",
    metadata,
    sa.Column("release_id", sa.String(40), primary_key=True),
    sa.Column("replica", sa.String(40), primary_key=True),
    sa.Column("arm", sa.String(20), primary_key=True),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Route and guardrail pointers moved by promoted releases (a prompt's pointer is its label).
release_pointers = sa.Table(
    "release_pointers",
    metadata,
    sa.Column("key", sa.String(240), primary_key=True),  # "route:NAME" or "guardrails:ROUTE"
    sa.Column("value", sa.String(200), nullable=False),
    sa.Column("release_id", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
