"""SQLite helpers shared by the journal and the paper account: one connection, explicit transactions."""

from __future__ import annotations

import sqlite3
from pathlib import Path


class DatabaseFileError(ValueError):
    """A file that should hold one of our SQLite databases cannot be used (not SQLite, truncated)."""


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating folders) a database in autocommit mode, WAL journal; rows as ``sqlite3.Row``.

    A file that is not a SQLite database, or a damaged one, raises :class:`DatabaseFileError`
    (one line naming the file) instead of a ``sqlite3.DatabaseError`` later on.
    """
    path = Path(path)
    if path.is_dir():
        raise DatabaseFileError(f"{path} is a folder, not a database file")
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.row_factory = sqlite3.Row
    try:
        db.execute("PRAGMA journal_mode=WAL")
        # durable across a crash of the process (the OS holds the WAL); after a power cut the last
        # commits may be lost, never corrupted - and the exchange look-up by client id covers that
        db.execute("PRAGMA synchronous=NORMAL")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        db.close()
        raise DatabaseFileError(f"{path} is not a usable SQLite database ({exc}); move it away or use another file") from None
    if check != "ok":
        db.close()
        raise DatabaseFileError(f"{path} is a damaged SQLite database ({check}); move it away or use another file")
    return db


class transaction:
    """``with transaction(db) as db:`` - BEGIN IMMEDIATE, COMMIT on success, ROLLBACK on error."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
