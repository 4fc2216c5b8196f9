"""The store's schema, created and migrated by numbered steps tracked in PRAGMA user_version."""

from __future__ import annotations

import logging

import sqlite_utils

from appliance.store import view

log = logging.getLogger(__name__)

# Each step is plain SQL run in one transaction together with its user_version bump, so a crash
# mid-migration leaves the previous version intact. Append new steps; never edit a released one.
MIGRATIONS: list[str] = [
    # 1: readings. Channel names are stored once; a reading row is then four numbers, which keeps
    # the bytes written per reading (and SD card wear) small.
    """
    CREATE TABLE channels (
        id INTEGER PRIMARY KEY,
        device TEXT NOT NULL,
        channel TEXT NOT NULL,
        unit TEXT NOT NULL DEFAULT '',
        UNIQUE (device, channel)
    );
    CREATE TABLE readings (
        id INTEGER PRIMARY KEY,
        channel_id INTEGER NOT NULL REFERENCES channels(id),
        ts REAL NOT NULL,
        value REAL,
        quality INTEGER NOT NULL
    );
    CREATE INDEX readings_channel_ts ON readings (channel_id, ts);
    """,
    # 2: events. Few rows, read by id (GET /api/v1/events?since=ID) and by time.
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        kind TEXT NOT NULL,
        severity TEXT NOT NULL,
        source TEXT NOT NULL,
        message TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_ts ON events (ts);
    """,
    # 3: the outbox. Every record carries its priority class (0 critical .. 3 background); per stream and
    # class a cursor says how far records are in batches, and batches stay until the upstream has them.
    # The store's id names this file upstream: a new file starts its batch sequences at 1 again.
    """
    ALTER TABLE readings ADD COLUMN prio INTEGER NOT NULL DEFAULT 2;
    CREATE INDEX readings_outbox ON readings (prio, id);
    ALTER TABLE events ADD COLUMN prio INTEGER NOT NULL DEFAULT 2;
    CREATE INDEX events_outbox ON events (prio, id);
    CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    INSERT INTO store_meta VALUES ('store_id', lower(hex(randomblob(8))));
    CREATE TABLE outbox_cursor (
        stream TEXT NOT NULL,
        prio INTEGER NOT NULL,
        batched_id INTEGER NOT NULL DEFAULT 0,
        next_seq INTEGER NOT NULL DEFAULT 1,
        thinned INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (stream, prio)
    ) WITHOUT ROWID;
    CREATE TABLE outbox_batches (
        stream TEXT NOT NULL,
        prio INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        first_id INTEGER NOT NULL,
        last_id INTEGER NOT NULL,
        count INTEGER NOT NULL,
        created REAL NOT NULL,
        payload BLOB NOT NULL,
        PRIMARY KEY (stream, prio, seq)
    ) WITHOUT ROWID;
    """,
    # 4: evidence. A file the QC pipeline kept (a reject's thumbnail or frame), named by an event; the file
    # stays in the evidence folder, the row puts it in the outbox with a class of its own.
    """
    CREATE TABLE evidence (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        event_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        prio INTEGER NOT NULL
    );
    CREATE INDEX evidence_outbox ON evidence (prio, id);
    """,
    # 5: flash wear. Readings are packed, a row per channel and flush (chunks.py), each class's rows
    # together (`place`: the class, then the first id), so that the outbox reads a class in place and
    # the quota, evicting a class's oldest, frees whole pages. The rows of before stay where they are
    # (renamed, read through the readings view, view.py), so an existing file needs no rewrite. Two
    # indexes nothing reads go: each insert paid for them. `spool_applied`: the journal's
    # newest generation already in this file (spool.py). The outbox's cursors and batches share a table,
    # so that keeping a batch and moving its class's cursor write one page, not two: a class's cursor is
    # its row of seq 0 (first_id: the last record batched, last_id: the next batch's seq, count: records
    # thinned since the last batch); a batch's payload is kept aside until a clean stop (outbox.py).
    """
    ALTER TABLE readings RENAME TO reading_rows;
    DROP INDEX readings_channel_ts;
    DROP INDEX events_ts;
    CREATE TABLE reading_chunks (
        place INTEGER PRIMARY KEY,
        first_id INTEGER NOT NULL,
        last_id INTEGER NOT NULL,
        prio INTEGER NOT NULL,
        channel_id INTEGER NOT NULL REFERENCES channels(id),
        n INTEGER NOT NULL,
        stride INTEGER NOT NULL,
        t0 INTEGER NOT NULL,
        step INTEGER NOT NULL,
        tw INTEGER NOT NULL,
        ts BLOB,
        kind INTEGER NOT NULL,
        vw INTEGER NOT NULL,
        base INTEGER NOT NULL,
        scale REAL,
        vals BLOB,
        flags BLOB,
        texts TEXT
    );
    INSERT INTO store_meta VALUES ('spool_applied', '0');
    CREATE TABLE outbox (
        stream TEXT NOT NULL,
        prio INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        first_id INTEGER NOT NULL,
        last_id INTEGER NOT NULL,
        count INTEGER NOT NULL,
        created REAL NOT NULL,
        payload BLOB NOT NULL,
        PRIMARY KEY (stream, prio, seq)
    ) WITHOUT ROWID;
    INSERT INTO outbox SELECT stream, prio, 0, batched_id, next_seq, thinned, 0, x'' FROM outbox_cursor;
    INSERT INTO outbox SELECT stream, prio, seq, first_id, last_id, count, created, payload
        FROM outbox_batches;
    DROP TABLE outbox_cursor;
    DROP TABLE outbox_batches;
    """
    + view.create_sql(),
]
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The database was written by a newer release; refusing to touch it."""


def schema_version(db: sqlite_utils.Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def check_not_newer(db: sqlite_utils.Database) -> None:
    found = schema_version(db)
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(f"database schema is version {found}; this release knows up to {SCHEMA_VERSION}")


def migrate(db: sqlite_utils.Database) -> int:
    """Bring the schema to SCHEMA_VERSION; returns the version found. Needs an autocommit connection."""
    check_not_newer(db)
    found = schema_version(db)
    for version in range(found + 1, SCHEMA_VERSION + 1):
        script = f"BEGIN IMMEDIATE; {MIGRATIONS[version - 1]}; PRAGMA user_version = {version}; COMMIT;"
        try:
            db.conn.executescript(script)
        except BaseException:
            if db.conn.in_transaction:
                db.conn.rollback()
            raise
        log.info("store schema migrated to version %d", version)
    return found
