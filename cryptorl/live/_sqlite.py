"""SQLite helpers shared by the journal and the paper account: one connection, explicit transactions."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating folders) a database in autocommit mode, WAL journal; rows as ``sqlite3.Row``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    # durable across a crash of the process (the OS holds the WAL); after a power cut the last
    # commits may be lost, never corrupted - and the exchange look-up by client id covers that
    db.execute("PRAGMA synchronous=NORMAL")
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
