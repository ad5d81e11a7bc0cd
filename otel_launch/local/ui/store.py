"""The trace viewer's store: spans in SQLite (standard library), assembled into traces as they arrive.

Spans of one trace come from several processes at different times; each arrival updates
the trace's summary (start, end, span count, errors, root). The root is the span without a
parent, whichever arrived first (until it comes, the earliest span whose parent is missing).

Bounded on disk, by count and by bytes: at most ``max_traces`` traces and ``max_bytes`` of
database and write-ahead log together (the oldest received traces are evicted, and the space
they held is given back to the file system: incremental vacuum, WAL checkpoint with
truncation); one trace holds at most ``max_spans_per_trace`` spans and an eighth of
``max_bytes`` (more are counted, not stored).

One bad span never costs the others: each trace of an export is written in a savepoint of its
own, a span that would close a loop of parents is refused, and :meth:`TraceStore.add` says
which spans it refused (for OTLP's partial success). Reads use a connection of their own (WAL
readers never wait for the writer) and stop after ``query_seconds``.

``:memory:`` is a temporary file, removed on close, so that reads and writes still use two
connections.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from otel_launch._receiver import MiB, ReceivedSpan, Rejected, closes_cycle

KIND_NAMES = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
SCHEMA_VERSION = 2
WAL_BYTES = 4 * MiB  # the write-ahead log is cut back to this after checkpoints

_SCHEMA = """
CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    dropped_spans INTEGER NOT NULL DEFAULT 0,
    root_name TEXT,
    root_service TEXT,
    bytes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS traces_start ON traces (start_ns);
CREATE INDEX IF NOT EXISTS traces_seq ON traces (seq);
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT NOT NULL,
    name TEXT NOT NULL,
    kind INTEGER NOT NULL,
    service TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT NOT NULL,
    attributes TEXT NOT NULL,
    events TEXT NOT NULL,
    resource TEXT NOT NULL,
    scope TEXT NOT NULL,
    dropped_attributes INTEGER NOT NULL DEFAULT 0,
    dropped_events INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS spans_service ON spans (service);
"""
_COLUMNS = 17


def default_db_path() -> Path:
    """A file under the user's cache directory (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "otel-launch" / "traces.sqlite3"


def _dumps(value: Any) -> str:
    return json.dumps(value, default=repr, ensure_ascii=False)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class QueryTooLong(Exception):
    """A read ran past its time bound (a search over a large store)."""


class TraceStore:
    """Spans by trace, in one SQLite database; safe to use from the receiver's and the web's threads."""

    def __init__(
        self,
        path: str | Path = ":memory:",
        max_traces: int = 1000,
        max_spans_per_trace: int = 5000,
        max_bytes: int = 256 * MiB,
        query_seconds: float = 5.0,
    ):
        self._temp_dir = None
        if str(path) == ":memory:":
            self._temp_dir = tempfile.mkdtemp(prefix="otel-launch-ui-")
            path = Path(self._temp_dir) / "traces.sqlite3"
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self.max_traces = max_traces
        self.max_spans_per_trace = max_spans_per_trace
        self.max_bytes = max_bytes
        self.max_trace_bytes = max_bytes // 8
        self.query_seconds = query_seconds
        self.started_afresh = False  # the file held an older schema: its traces were dropped
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._write_lock:
            self._open_schema()
            self._seq = self._db.execute("SELECT coalesce(max(seq), 0) FROM traces").fetchone()[0]
        self._reader = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._reader.row_factory = sqlite3.Row
        self._reader.execute("PRAGMA query_only = 1")
        self._deadline = 0.0
        self._reader.set_progress_handler(lambda: int(time.monotonic() > self._deadline), 20_000)

    def _open_schema(self) -> None:
        db = self._db
        db.execute("PRAGMA busy_timeout = 5000")
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if tables and version != SCHEMA_VERSION:  # an older otel-launch's store: it is a cache, start afresh
            for table in tables:
                db.execute(f'DROP TABLE IF EXISTS "{table}"')
            self.started_afresh = True
        if db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect on an empty file, or by VACUUM
            db.execute("VACUUM")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")  # WAL: consistent after a crash, the last commits may be lost
        db.execute(f"PRAGMA journal_size_limit = {WAL_BYTES}")
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            self._reader.close()
            self._db.close()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    # -- writing -------------------------------------------------------------------------------

    def add(self, spans: list[ReceivedSpan]) -> Rejected:
        """Store the (checked) spans of one export, each trace on its own; the spans refused, by reason."""
        rejected = Rejected()
        by_trace: dict[str, list[ReceivedSpan]] = {}
        for span in spans:
            by_trace.setdefault(span.trace_id, []).append(span)
        with self._write_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for trace_id, trace_spans in by_trace.items():
                    self._db.execute("SAVEPOINT one_trace")
                    try:
                        self._add_trace_spans(trace_id, trace_spans, rejected)
                    except (sqlite3.Error, ValueError, OverflowError, TypeError) as exc:
                        self._db.execute("ROLLBACK TO one_trace")
                        rejected.add(f"in a trace that could not be stored ({type(exc).__name__})", len(trace_spans))
                    self._db.execute("RELEASE one_trace")
                self._evict_over_count()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._within_bytes()
        return rejected

    def _add_trace_spans(self, trace_id: str, spans: list[ReceivedSpan], rejected: Rejected) -> None:
        db = self._db
        known = db.execute("SELECT span_id, parent_span_id, bytes FROM spans WHERE trace_id = ?", (trace_id,))
        parent_of, size_of = {}, {}
        for span_id, parent_id, size in known:
            parent_of[span_id], size_of[span_id] = parent_id, size
        held = sum(size_of.values())
        stored, dropped, rows = len(parent_of), 0, []
        for span in spans:
            if span.parent_span_id and closes_cycle(span.span_id, span.parent_span_id, parent_of):
                rejected.add("closing a loop of parents")
                continue
            row = self._row(span)
            replaces = span.span_id in parent_of
            if not replaces and (stored >= self.max_spans_per_trace or held + row[-1] > self.max_trace_bytes):
                dropped += 1
                continue
            parent_of[span.span_id] = span.parent_span_id
            stored += 0 if replaces else 1
            held += row[-1] - size_of.get(span.span_id, 0)
            size_of[span.span_id] = row[-1]
            rows.append(row)
        db.executemany(f"INSERT OR REPLACE INTO spans VALUES ({', '.join('?' * _COLUMNS)})", rows)
        summary = db.execute(
            "SELECT min(start_ns), max(end_ns), count(*), sum(status = 'ERROR'), sum(bytes) FROM spans "
            "WHERE trace_id = ?",
            (trace_id,),
        ).fetchone()
        if summary[2] == 0:  # nothing stored (refused, or the trace is full)
            db.execute("UPDATE traces SET dropped_spans = dropped_spans + ? WHERE trace_id = ?", (dropped, trace_id))
            return
        # The root: the span without a parent; until it arrives, the earliest span whose parent is missing.
        root = (
            db.execute(
                "SELECT name, service FROM spans s WHERE trace_id = ? AND (parent_span_id = '' OR NOT EXISTS "
                "(SELECT 1 FROM spans p WHERE p.trace_id = s.trace_id AND p.span_id = s.parent_span_id)) "
                "ORDER BY parent_span_id != '', start_ns LIMIT 1",
                (trace_id,),
            ).fetchone()
            or db.execute(
                "SELECT name, service FROM spans WHERE trace_id = ? ORDER BY start_ns LIMIT 1", (trace_id,)
            ).fetchone()
        )
        start, end, count, errors, size = summary
        exists = db.execute("SELECT 1 FROM traces WHERE trace_id = ?", (trace_id,)).fetchone()
        if exists:
            db.execute(
                "UPDATE traces SET start_ns = ?, end_ns = ?, span_count = ?, error_count = ?, "
                "dropped_spans = dropped_spans + ?, root_name = ?, root_service = ?, bytes = ? WHERE trace_id = ?",
                (start, end, count, errors, dropped, root["name"], root["service"], size, trace_id),
            )
        else:
            self._seq += 1
            db.execute(
                "INSERT INTO traces VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (trace_id, self._seq, start, end, count, errors, dropped, root["name"], root["service"], size),
            )

    @staticmethod
    def _row(s: ReceivedSpan) -> tuple:
        text = (
            s.name,
            s.service,
            s.status_message,
            _dumps(s.attributes),
            _dumps(s.events),
            _dumps(s.resource),
            s.scope,
        )
        # What the row costs on disk: its text, the ids (in the index too) and SQLite's per-row cost.
        size = sum(len(t.encode("utf-8", "surrogatepass")) for t in text) + 2 * (len(s.trace_id) + len(s.span_id)) + 80
        ids = (s.trace_id, s.span_id, s.parent_span_id)
        times = (s.kind, s.service, s.start_ns, s.end_ns, s.status, s.status_message)
        return (*ids, s.name, *times, *text[3:], s.dropped_attributes, s.dropped_events, size)

    def _evict(self, trace_ids: list[str]) -> None:
        self._db.executemany("DELETE FROM spans WHERE trace_id = ?", [(t,) for t in trace_ids])
        self._db.executemany("DELETE FROM traces WHERE trace_id = ?", [(t,) for t in trace_ids])

    def _evict_over_count(self) -> None:
        over = self._db.execute("SELECT count(*) FROM traces").fetchone()[0] - self.max_traces
        if over > 0:
            self._evict(
                [row[0] for row in self._db.execute("SELECT trace_id FROM traces ORDER BY seq LIMIT ?", (over,))]
            )

    # -- the byte bound ------------------------------------------------------------------------

    def disk_bytes(self) -> int:
        """The database's pages plus its write-ahead log, as the bound counts them."""
        return self._page_bytes() + self._wal_bytes()

    def _page_bytes(self) -> int:
        return self._db.execute("PRAGMA page_count").fetchone()[0] * self._db.execute("PRAGMA page_size").fetchone()[0]

    def _wal_bytes(self) -> int:
        try:
            return os.path.getsize(self.path + "-wal")
        except OSError:
            return 0

    def _within_bytes(self) -> None:
        """Evict the oldest traces until the database fits in ``max_bytes`` less room for its log,
        give the space back (incremental vacuum), and cut the log back (checkpoint, truncate)."""
        wal_room = min(WAL_BYTES, self.max_bytes // 8)
        room = self.max_bytes - wal_room
        evicted = False
        for _ in range(8):
            pages = self._page_bytes()
            if pages <= room:
                break
            held = self._db.execute("SELECT coalesce(sum(bytes), 0) FROM traces").fetchone()[0]
            # Down to 80% of the room, in the bytes rows count (pages also hold indexes and slack).
            target = held * 0.8 * room / pages
            oldest, total = [], held
            for trace_id, size in self._db.execute("SELECT trace_id, bytes FROM traces ORDER BY seq").fetchall():
                if total <= target and oldest:
                    break
                oldest.append(trace_id)
                total -= size
            if not oldest:
                break
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._evict(oldest)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            # Each step of this pragma frees one page; execute() steps once, executescript() to the end.
            self._db.executescript("PRAGMA incremental_vacuum;")
            evicted = True
        if evicted or self._wal_bytes() > wal_room:
            # A reader's snapshot may hold the log for a moment; the next write truncates it then.
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    # -- reading -------------------------------------------------------------------------------

    def _read(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._read_lock:
            self._deadline = time.monotonic() + self.query_seconds
            try:
                return self._reader.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if "interrupted" in str(exc):
                    raise QueryTooLong(f"the query took longer than {self.query_seconds:g} s") from None
                raise

    def list_traces(
        self,
        service: str | None = None,
        status: str | None = None,
        min_duration_ms: float | None = None,
        q: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Trace summaries, newest first, filtered: any span of ``service``; ``status`` "error" or "ok";
        at least ``min_duration_ms``; ``q`` in a span name or attribute value."""
        where, params = [], []
        if service:
            where.append("EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = t.trace_id AND s.service = ?)")
            params.append(service)
        if status == "error":
            where.append("t.error_count > 0")
        elif status == "ok":
            where.append("t.error_count = 0")
        if min_duration_ms is not None:
            where.append("t.end_ns - t.start_ns >= ?")
            params.append(min(int(min_duration_ms * 1e6), 2**63 - 1))
        if q:
            where.append(
                "EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = t.trace_id AND (s.name LIKE ? ESCAPE '\\' OR "
                "EXISTS (SELECT 1 FROM json_each(s.attributes) j WHERE j.value LIKE ? ESCAPE '\\')))"
            )
            params += [_like(q), _like(q)]
        sql = (
            "SELECT t.*, (SELECT group_concat(service, ',') FROM (SELECT DISTINCT service FROM spans s "
            "WHERE s.trace_id = t.trace_id ORDER BY service)) AS services FROM traces t"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY t.start_ns DESC LIMIT ?"
        )
        return [self._summary(row) for row in self._read(sql, (*params, limit))]

    @staticmethod
    def _summary(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "trace_id": row["trace_id"],
            "root_name": row["root_name"],
            "root_service": row["root_service"],
            "services": (row["services"] or "").split(",") if row["services"] else [],
            "start_unix_nano": row["start_ns"],
            "duration_ms": round((row["end_ns"] - row["start_ns"]) / 1e6, 3),
            "span_count": row["span_count"],
            "error_count": row["error_count"],
            "dropped_spans": row["dropped_spans"],
        }

    def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        """Every span of the trace, by start time, with the trace's summary; None if unknown."""
        with self._read_lock:
            self._deadline = time.monotonic() + self.query_seconds
            self._reader.execute("BEGIN")  # one snapshot for the summary and the spans
            try:
                row = self._reader.execute(
                    "SELECT t.*, (SELECT group_concat(service, ',') FROM (SELECT DISTINCT service FROM spans s "
                    "WHERE s.trace_id = t.trace_id ORDER BY service)) AS services FROM traces t WHERE trace_id = ?",
                    (trace_id,),
                ).fetchone()
                spans = self._reader.execute(
                    "SELECT * FROM spans WHERE trace_id = ? ORDER BY start_ns", (trace_id,)
                ).fetchall()
            finally:
                self._reader.execute("COMMIT")
        if row is None:
            return None
        return {**self._summary(row), "spans": [self._span(span) for span in spans]}

    @staticmethod
    def _span(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "trace_id": row["trace_id"],
            "span_id": row["span_id"],
            "parent_span_id": row["parent_span_id"] or None,
            "name": row["name"],
            "service": row["service"],
            "kind": KIND_NAMES.get(row["kind"], str(row["kind"])),
            "start_unix_nano": row["start_ns"],
            "end_unix_nano": row["end_ns"],
            "duration_ms": round((row["end_ns"] - row["start_ns"]) / 1e6, 3),
            "status": row["status"],
            "status_message": row["status_message"],
            "attributes": json.loads(row["attributes"]),
            "events": json.loads(row["events"]),
            "resource": json.loads(row["resource"]),
            "scope": row["scope"],
            "dropped_attributes_count": row["dropped_attributes"],
            "dropped_events_count": row["dropped_events"],
        }

    def services(self) -> list[str]:
        return [row[0] for row in self._read("SELECT DISTINCT service FROM spans ORDER BY service")]

    def trace_count(self) -> int:
        return self._read("SELECT count(*) FROM traces")[0][0]
