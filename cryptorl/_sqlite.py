"""SQLite helpers shared by the data stores, the live journal and the paper account: one way to
connect (WAL journal, autocommit, explicit transactions) and one transaction context."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: str | Path, *, synchronous: str = "NORMAL", rows: bool = True, timeout: float = 5.0,
            schema: str | None = None) -> sqlite3.Connection:
    """Open (creating folders) a database in autocommit mode with a WAL journal.

    ``synchronous="NORMAL"`` is durable across a crash of the process (the OS holds the WAL);
    ``"FULL"`` also across a power cut. ``rows``: rows as ``sqlite3.Row`` (else tuples).
    ``schema``: SQL run once on opening (``CREATE TABLE IF NOT EXISTS ...``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    if rows:
        db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    if schema:
        db.executescript(schema)
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
