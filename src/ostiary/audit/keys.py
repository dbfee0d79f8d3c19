"""Where the audit trail keeps its keys and spool, and opening the log with them.

The gateway, its drainer process and the command line all open the same log with the same signing
key (created on first start in the embedded default; shared files or an environment variable when
replicas share a database).
"""

from __future__ import annotations

import os
from pathlib import Path

from ostiary.audit.checkpoint import Signer
from ostiary.audit.crypto import Keyring, MasterKey
from ostiary.audit.log import AuditLog
from ostiary.config.schema import Audit
from ostiary.store import Store


def audit_paths(cfg: Audit, data_dir: Path) -> tuple[Path, Path, Path]:
    """(spool directory, signing key file, default master key file)."""
    base = data_dir / "audit"
    return (cfg.spool_dir or base, cfg.signing_key_file or base / "signing.key", base / "master.key")


def load_signer(cfg: Audit, data_dir: Path) -> Signer:
    """The note signing key; in the embedded default it is created on first start."""
    _, path, _ = audit_paths(cfg, data_dir)
    if cfg.signing_key_file is None and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(Signer.generate(cfg.origin).key_string() + "\n")
    try:
        return Signer.from_key_string(path.read_text().strip())
    except OSError as e:
        raise ValueError(f"cannot read the audit signing key {path}: {e.strerror}") from None


def load_keyring(cfg: Audit, data_dir: Path) -> Keyring:
    _, _, default = audit_paths(cfg, data_dir)
    return Keyring(MasterKey.load(cfg.master_key_file, cfg.master_key_env, default))


def open_log(cfg: Audit, store: Store, data_dir: Path) -> AuditLog:
    return AuditLog(store, load_signer(cfg, data_dir), cfg.origin, cfg.checkpoint_every, cfg.checkpoint_seconds,
                    cfg.witness_dir, cfg.witness_url)
