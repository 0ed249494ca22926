"""SQLite helpers shared by the data stores, the live journal and the paper account: one way to
connect (WAL journal, autocommit, explicit transactions) and one transaction context."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(
    path: str | Path, *, synchronous: str = "NORMAL", rows: bool = True, timeout: float = 5.0, schema: str | None = None
) -> sqlite3.Connection:
    """Open (creating folders) a database in autocommit mode with a WAL journal.

    ``synchronous="NORMAL"`` is durable across a crash of the process (the OS holds the WAL);
    ``"FULL"`` also across a power cut. ``rows``: rows as ``sqlite3.Row`` (else tuples).
    ``schema``: SQL run once on opening (``CREATE TABLE IF NOT EXISTS ...``). A file that is not a
    SQLite database, a truncated one or a folder raises :class:`DatabaseFileError` (one line naming
    the file) instead of a ``sqlite3.DatabaseError`` later on.
    """
    path = Path(path)
    if path.is_dir():
        raise DatabaseFileError(f"{path} is a folder, not a database file")
    problem = sqlite_problem(path) if path.is_file() else None
    if problem:
        raise DatabaseFileError(f"{path}: {problem}; move it away or use another file")
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    if rows:
        db.row_factory = sqlite3.Row
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        if schema:
            db.executescript(schema)
    except sqlite3.DatabaseError as exc:  # damaged past its header
        db.close()
        raise DatabaseFileError(
            f"{path} is not a usable SQLite database ({exc}); move it away or use another file"
        ) from None
    return db


SQLITE_MAGIC = b"SQLite format 3\x00"


class DatabaseFileError(ValueError):
    """A file that should hold one of the project's SQLite databases cannot be used (not SQLite, truncated)."""


def sqlite_problem(path: Path) -> str | None:
    """Why the file at ``path`` is not a usable SQLite database (from its 100-byte header, without
    opening it), or None. An empty file is fine (SQLite treats it as a new database)."""
    size = path.stat().st_size
    if size == 0:
        return None
    with open(path, "rb") as fh:
        header = fh.read(100)
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        return "not a SQLite database (wrong header)"
    page = int.from_bytes(header[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(header[28:32], "big")
    valid_for, changes = header[92:96], header[24:28]
    if page < 512 or page & (page - 1):
        return f"not a SQLite database (page size {page})"
    if size % page:
        return f"truncated SQLite database ({size} bytes is not a whole number of {page}-byte pages)"
    if valid_for == changes and pages and size < pages * page:
        return f"truncated SQLite database ({size} bytes, its header says {pages * page})"
    return None


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
