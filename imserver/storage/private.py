"""The data directory and the database hold every message, direct ones included:
only the server's own user may read them.

At start the data directory is created 0700 and the database file 0600 (SQLite
gives its -wal and -shm files the database's mode); an existing directory or
file that others can read or write is tightened, with a log line.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from ..config import Config

log = logging.getLogger("imserver")

DIR_MODE = 0o700
FILE_MODE = 0o600
DB_COMPANIONS = ("-wal", "-shm", "-journal")


def _tighten(path: Path, mode: int) -> None:
    """chmod `path` to `mode` when it grants more than `mode` does; logs the change."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if current & ~mode:
        try:
            os.chmod(path, current & mode)
        except OSError as exc:
            log.warning("%s is readable by others (mode %o) and could not be tightened: %s",
                        path, current, exc.strerror)
            return
        log.warning("tightened the permissions of %s from %o to %o", path, current, current & mode)


def _private_dir(path: Path) -> None:
    if path.is_dir():
        _tighten(path, DIR_MODE)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(mode=DIR_MODE, exist_ok=True)
    os.chmod(path, DIR_MODE)  # mkdir's mode passes through the umask


def secure_data_files(config: Config) -> None:
    """Create or tighten the data directory and the database files (see the module doc)."""
    sqlite = config.storage.backend == "sqlite"
    db = None if not sqlite or config.storage_path == ":memory:" else Path(config.storage_path)
    if not config.auth.secret or (db is not None and db.parent == config.data_path):
        _private_dir(config.data_path)
    if db is None:
        return
    if not db.parent.exists():
        _private_dir(db.parent)
    try:
        # An empty file is an empty database to SQLite; created here, it starts 0600.
        os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        _tighten(db, FILE_MODE)
    except OSError:
        return  # the store reports what is wrong with the path
    for suffix in DB_COMPANIONS:
        _tighten(Path(f"{db}{suffix}"), FILE_MODE)
    secret = config.data_path / "secret.key"
    _tighten(secret, FILE_MODE)
