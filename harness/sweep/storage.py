"""Optuna storages: a journal file under the study's runs folder by default, any RDB URL on request.

The storage is opened (and, for an RDB, connected to) before any trial runs, so an unreachable
server or a missing folder is one clear line instead of a traceback in the middle of a sweep.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, MissingDependencyError, require

JOURNAL_FILENAME = "optuna.log"
_RDB_SCHEMES = ("postgresql", "postgres", "mysql", "sqlite", "mariadb", "oracle", "mssql")


@dataclass
class OpenedStorage:
    """An opened storage and how to name it in logs, manifests and messages (no password)."""

    storage: Any
    label: str  # the URL with its password hidden, or the journal file path
    kind: str  # "journal" | "rdb"

    @property
    def has_heartbeat(self) -> bool:
        return self.kind == "rdb"


def redact(url: str) -> str:
    """``postgresql://u:secret@h/db`` → ``postgresql://u:***@h/db``."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def default_journal(runs_dir: str | Path, study: str) -> Path:
    return Path(runs_dir) / study / JOURNAL_FILENAME


def is_rdb_url(url: str) -> bool:
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    return scheme in _RDB_SCHEMES


def open_storage(url: str | None, runs_dir: str | Path, study: str, *, heartbeat_s: int = 10,
                 grace_s: int = 30, max_retries: int = 2) -> OpenedStorage:
    """Open ``url`` (RDB URL or journal path; None = the default journal) or raise one ConfigError line."""
    if url is None:
        path = default_journal(runs_dir, study)
        path.parent.mkdir(parents=True, exist_ok=True)
        return _journal(path)
    if "://" in url and not is_rdb_url(url):
        raise ConfigError(f"storage '{redact(url)}': unknown scheme; give an RDB URL (postgresql://, mysql://, "
                          f"sqlite:///) or a journal file path")
    if "://" not in url:
        path = Path(url)
        if not path.parent.is_dir():
            raise ConfigError(f"storage '{url}': folder '{path.parent}' does not exist")
        return _journal(path)
    return _rdb(url, heartbeat_s, grace_s, max_retries)


def _journal(path: Path) -> OpenedStorage:
    import optuna

    backend = optuna.storages.journal.JournalFileBackend(str(path))
    return OpenedStorage(optuna.storages.JournalStorage(backend), str(path), "journal")


def _rdb(url: str, heartbeat_s: int, grace_s: int, max_retries: int) -> OpenedStorage:
    import optuna
    import sqlalchemy.exc

    url = _with_postgres_driver(url)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith(("postgresql", "postgres", "mysql")):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        with warnings.catch_warnings():  # heartbeat and its retry callback are flagged experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = _rdb_storage(url, engine_kwargs, heartbeat_s, grace_s, max_retries)
    except ImportError as exc:
        raise MissingDependencyError(f"storage '{redact(url)}': no database driver ({exc}); "
                                     f"pip install psycopg2-binary (PostgreSQL) or pymysql (MySQL)") from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as exc:
        first = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        raise ConfigError(f"storage '{redact(url)}': cannot connect: {first}") from None
    return OpenedStorage(storage, redact(url), "rdb")


def _rdb_storage(url: str, engine_kwargs: dict[str, Any], heartbeat_s: int, grace_s: int, max_retries: int) -> Any:
    import optuna

    return optuna.storages.RDBStorage(
        url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_s, grace_period=grace_s,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retries),
    )


def _with_postgres_driver(url: str) -> str:
    """SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3; use psycopg2 when only it is installed."""
    scheme, rest = url.split("://", 1)
    if scheme not in ("postgresql", "postgres"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is not None:
        return f"postgresql+psycopg://{rest}"
    require("psycopg2", feature="PostgreSQL storages")
    return f"postgresql+psycopg2://{rest}"
