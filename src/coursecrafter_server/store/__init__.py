"""The store port and the adapter chosen by `COURSECRAFTER_DATABASE_URL`."""

from __future__ import annotations

from coursecrafter_server.store.base import Store

__all__ = ["Store", "open_store"]


def open_store(url: str) -> Store:
    """Open the store a database URL names.

    - `sqlite:///relative/path.sqlite3` (three slashes: relative to the working directory) and
      `sqlite:////abs/path.sqlite3` (four: absolute), as SQLAlchemy spells them; this is what
      settings build from an absolute COURSECRAFTER_HOME.
    - `mongodb://host:port/dbname` and `mongodb+srv://…` (database `coursecrafter` by default).
    - `memory://`: the in-memory fake, for tests and demos; nothing survives the process.
    """
    scheme, separator, rest = url.partition("://")
    scheme = scheme.lower()
    if separator and scheme == "memory":
        from coursecrafter_server.store.memory import MemoryStore

        return MemoryStore()
    if separator and scheme == "sqlite":
        return _open_sqlite(rest)
    if separator and scheme in ("mongodb", "mongodb+srv"):
        # Imported here so SQLite deployments never load pymongo.
        from coursecrafter_server.store.mongo import MongoStore

        return MongoStore.from_url(url)
    # Only the scheme is echoed: the rest of a URL may hold a password.
    shown = f"scheme {scheme!r}" if separator else "a URL without a scheme"
    raise ValueError(
        f"unsupported database URL ({shown}): use sqlite:///path/to/file.sqlite3,"
        " mongodb://host:port/dbname, mongodb+srv://… or memory://"
    )


def _open_sqlite(rest: str) -> Store:
    from coursecrafter_server.store.sqlite import SQLiteStore

    path = rest[1:] if rest.startswith("/") else ""
    if not path or "?" in path:
        raise ValueError(
            "a SQLite URL needs a file path and takes no options: sqlite:///relative.sqlite3"
            " or sqlite:////absolute/path.sqlite3"
        )
    if path == ":memory:":
        # Each thread has its own connection, so each would see a different empty database.
        raise ValueError("sqlite:///:memory: is not supported: use memory:// instead")
    return SQLiteStore(path)
