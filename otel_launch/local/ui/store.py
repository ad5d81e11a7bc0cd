"""The trace viewer's store: spans in SQLite (standard library), assembled into traces as they arrive.

Spans of one trace come from several processes at different times; each arrival updates
the trace's summary (start, end, span count, errors, root). The root is the span without a
parent, whichever arrived first (until it comes, the earliest span whose parent is missing).
Traces are listed in the order they arrived, newest first. Each resource is stored once
(keyed by its content) and shared by the spans that name it.

Bounded on disk, by count and by bytes: at most ``max_traces`` traces and ``max_bytes`` of
database and write-ahead log together (the oldest received traces are evicted, and the space
they held is given back to the file system: incremental vacuum, WAL checkpoint with
truncation). The bounds hold inside one export too: it is written in transactions of at most
``commit_bytes`` (evicting between them), and of its new traces only the last ``max_traces``
are written (the others are refused up front: they would be evicted at once). One trace
holds at most ``max_spans_per_trace`` spans and an eighth of ``max_bytes``, its resources
counted once (more are refused and counted).

Bounded in age too: :meth:`TraceStore.expire` evicts the traces no span has reached for
``max_age_s`` seconds (the server calls it every minute). :class:`telemetry.Store` adds metric
points and log records to the same file, under the same bounds, through two hooks:
``_evict_others`` (the byte bound, once no trace is left to evict) and ``_expire_others``, and
``_rolled_back`` to forget what they counted in a transaction that was rolled back.

One bad span never costs the others: each trace of an export is written in a savepoint of its
own, a span that would close a loop of parents is refused, and :meth:`TraceStore.add_export`
says which spans it refused and why (for OTLP's partial success). Reads use a connection of
their own (WAL readers never wait for the writer) and stop after ``query_seconds``.

The file is marked as ours (``PRAGMA application_id``): a store of an older schema starts
afresh (it is a cache), any other file (a Django ``db.sqlite3`` given by mistake) is refused
untouched with :class:`NotAStore`. ``:memory:`` is a temporary file, removed on close, so that
reads and writes still use two connections.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from otel_launch.local.receiver import KIND_NAMES, MiB, ReceivedSpan, Rejected, closes_cycle

APPLICATION_ID = int.from_bytes(b"OTLu", "big")  # PRAGMA application_id of every store otel-launch writes
SCHEMA_VERSION = 4
WAL_BYTES = 4 * MiB  # the write-ahead log is cut back to this after checkpoints
SERVICE_CHARS = 256  # a span's service name as listed and filtered
SERVICES_LISTED = 1000  # /api/services
SERVICES_A_TRACE = 20  # a trace's summary
JSON_PIECE = 256 * 1024  # a trace's JSON is sent in pieces of about this many bytes
_OUR_TABLES = {"traces", "spans", "resources", "series", "points", "logs"}
DAY_S = 24 * 3600

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
    bytes INTEGER NOT NULL DEFAULT 0,
    received_ns INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS traces_seq ON traces (seq);
CREATE TABLE IF NOT EXISTS resources (
    id INTEGER PRIMARY KEY,
    digest BLOB NOT NULL UNIQUE,
    json TEXT NOT NULL,
    bytes INTEGER NOT NULL
);
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
    resource INTEGER NOT NULL,
    scope TEXT NOT NULL,
    dropped_attributes INTEGER NOT NULL DEFAULT 0,
    dropped_events INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS spans_service ON spans (service);
CREATE INDEX IF NOT EXISTS spans_resource ON spans (resource);
"""
_COLUMNS = 17
# A trace's services, at most SERVICES_A_TRACE of them, as a JSON array (names may hold commas).
_SERVICES = (
    "(SELECT json_group_array(service) FROM (SELECT DISTINCT service FROM spans s WHERE s.trace_id = t.trace_id "
    f"ORDER BY service LIMIT {SERVICES_A_TRACE})) AS services"
)


def default_db_path() -> Path:
    """A file under the user's cache directory (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "otel-launch" / "traces.sqlite3"


def _dumps(value: Any) -> str:
    # Decoding wrote non-finite doubles as strings; a NaN that got here all the same refuses its trace.
    return json.dumps(value, default=repr, ensure_ascii=False, allow_nan=False)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class QueryTooLong(Exception):
    """A read ran past its time bound (a search over a large store)."""


class NotAStore(Exception):
    """The file cannot be a trace store: not SQLite, another program's database, or not writable."""


class TraceStore:
    """Spans by trace, in one SQLite database; safe to use from the receiver's and the web's threads."""

    def __init__(
        self,
        path: str | Path = ":memory:",
        max_traces: int = 1000,
        max_spans_per_trace: int = 5000,
        max_bytes: int = 256 * MiB,
        query_seconds: float = 5.0,
        max_age_s: float = DAY_S,
    ):
        self._temp_dir = None
        if str(path) == ":memory:":
            self._temp_dir = tempfile.mkdtemp(prefix="otel-launch-ui-")
            path = Path(self._temp_dir) / "traces.sqlite3"
        self.path = str(path)
        self.max_traces = max_traces
        self.max_spans_per_trace = max_spans_per_trace
        self.max_bytes = max_bytes
        self.max_trace_bytes = max_bytes // 8
        self.wal_room = min(WAL_BYTES, max_bytes // 8)
        self.commit_bytes = self.wal_room // 4  # row bytes written between commits within one export
        self.query_seconds = query_seconds
        self.max_age_s = max_age_s
        self.started_afresh = False  # the file held an older schema: its traces were dropped
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        # id(resource dict) -> (it, row id, bytes), within one export
        self._resource_ids: dict[int, tuple[dict, int, int]] = {}
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise NotAStore(f"{self.path[:200]}: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            with self._write_lock:
                self._open_schema()
                self._seq = self._db.execute("SELECT coalesce(max(seq), 0) FROM traces").fetchone()[0]
            self._reader = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except (NotAStore, sqlite3.Error) as exc:
            self._db.close()
            raise NotAStore(str(exc) if isinstance(exc, NotAStore) else f"{self.path[:200]}: {exc}") from None
        self._db.row_factory = sqlite3.Row
        self._reader.row_factory = sqlite3.Row
        self._reader.execute("PRAGMA query_only = 1")
        self._deadline = 0.0
        self._reader.set_progress_handler(lambda: int(time.monotonic() > self._deadline), 20_000)

    def _open_schema(self) -> None:
        db = self._db
        db.execute("PRAGMA busy_timeout = 5000")
        tables = {
            row[0]
            for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        }
        ours = db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        if tables and not ours and not self._older_store(tables):
            shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            raise NotAStore(
                f"{self.path[:200]} is not an otel-launch trace store (it holds tables {shown[:200]}); "
                "it was left untouched: name a new file, or leave --db out"
            )
        if tables and (not ours or db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION):
            for table in tables:  # an older otel-launch's store: it is a cache, start afresh
                db.execute(f'DROP TABLE IF EXISTS "{table}"')
            self.started_afresh = True
        if db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect on an empty file, or by VACUUM
            db.execute("VACUUM")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")  # WAL: consistent after a crash, the last commits may be lost
        db.execute(f"PRAGMA journal_size_limit = {WAL_BYTES}")
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _older_store(self, tables: set[str]) -> bool:
        """Whether a file without our mark is a store of an older otel-launch: its tables and key columns."""
        if not tables <= _OUR_TABLES or not {"traces", "spans"} <= tables:
            return False
        traces, spans = ({row[1] for row in self._db.execute(f"PRAGMA table_info({t})")} for t in ("traces", "spans"))
        return {"trace_id", "seq", "root_name"} <= traces and {"span_id", "parent_span_id"} <= spans

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            self._reader.close()
            self._db.close()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    # -- writing -------------------------------------------------------------------------------

    def add(self, spans: list[ReceivedSpan]) -> Rejected:
        """Store the (checked) spans of one export; the spans refused, by reason."""
        return self.add_export([spans], (span.trace_id for span in reversed(spans)))

    def add_export(self, batches: Iterable[list[ReceivedSpan]], trace_ids_from_last: Iterable[str] = ()) -> Rejected:
        """Store one export, given in batches of (checked) spans, each trace on its own; the spans
        refused, by reason. ``trace_ids_from_last``, the trace id of each of its spans, the last
        first, lets the new traces the bound would evict at once be refused up front."""
        rejected = Rejected()
        with self._write_lock:
            kept_new = self._newest_new_traces(trace_ids_from_last)
            try:
                for batch in batches:
                    self._add_batch(batch, kept_new, rejected)
            finally:
                self._resource_ids.clear()
        return rejected

    def _newest_new_traces(self, trace_ids_from_last: Iterable[str]) -> set[str] | None:
        """The last ``max_traces`` traces of an export that the store does not hold yet, when it has
        more (None: it has no more, all are written). Reads as few ids as that takes."""
        seen: set[str] = set()
        newest: set[str] = set()
        for trace_id in trace_ids_from_last:
            if trace_id in seen:
                continue
            seen.add(trace_id)
            if not self._db.execute("SELECT 1 FROM traces WHERE trace_id = ?", (trace_id,)).fetchone():
                newest.add(trace_id)
                if len(newest) == self.max_traces:
                    return newest
        return None

    def _add_batch(self, spans: list[ReceivedSpan], kept_new: set[str] | None, rejected: Rejected) -> None:
        db = self._db
        by_trace: dict[str, list[ReceivedSpan]] = {}
        for span in spans:
            by_trace.setdefault(span.trace_id, []).append(span)
        written = 0
        with self._transaction():
            for trace_id, trace_spans in by_trace.items():
                if (
                    kept_new is not None
                    and trace_id not in kept_new
                    and not db.execute("SELECT 1 FROM traces WHERE trace_id = ?", (trace_id,)).fetchone()
                ):
                    reason = f"in new traces before the last {self.max_traces} of the export (the store's bound)"
                    rejected.add(reason, len(trace_spans))
                    continue
                written += self._add_trace(trace_id, trace_spans, rejected)
                if written >= self.commit_bytes:  # keep the log and the file within the bound mid-export
                    self._evict_over_count()
                    db.execute("COMMIT")
                    self._within_bytes()
                    db.execute("BEGIN IMMEDIATE")
                    written = 0
            self._evict_over_count()
        self._within_bytes()

    def _add_trace(self, trace_id: str, spans: list[ReceivedSpan], rejected: Rejected) -> int:
        """Write one trace's spans in a savepoint of its own; the row bytes written."""
        pending: dict[int, tuple[dict, int, int]] = {}
        self._db.execute("SAVEPOINT one_trace")
        try:
            written = self._add_trace_spans(trace_id, spans, rejected, pending)
        except (sqlite3.Error, ValueError, OverflowError, TypeError) as exc:
            self._db.execute("ROLLBACK TO one_trace")
            rejected.add(f"in a trace that could not be stored ({type(exc).__name__})", len(spans))
            written, pending = 0, {}
        self._db.execute("RELEASE one_trace")
        self._resource_ids.update(pending)
        return written

    def _resource(self, resource: dict, pending: dict[int, tuple[dict, int, int]]) -> tuple[int, int]:
        """The row id of a span's resource, stored once by content, and its bytes."""
        known = self._resource_ids.get(id(resource)) or pending.get(id(resource))
        if known is not None:
            return known[1], known[2]
        text = _dumps(resource)
        size = len(text.encode("utf-8", "surrogatepass")) + 100
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        self._db.execute("INSERT OR IGNORE INTO resources (digest, json, bytes) VALUES (?, ?, ?)", (digest, text, size))
        row_id = self._db.execute("SELECT id FROM resources WHERE digest = ?", (digest,)).fetchone()[0]
        pending[id(resource)] = (resource, row_id, size)  # the dict is held, so that its id is not reused meanwhile
        return row_id, size

    def _add_trace_spans(
        self, trace_id: str, spans: list[ReceivedSpan], rejected: Rejected, pending: dict[int, tuple[dict, int, int]]
    ) -> int:
        db = self._db
        parent_of, size_of, resources = {}, {}, set()
        for span_id, parent_id, size, resource in db.execute(
            "SELECT span_id, parent_span_id, bytes, resource FROM spans WHERE trace_id = ?", (trace_id,)
        ):
            parent_of[span_id], size_of[span_id] = parent_id, size
            resources.add(resource)
        held = db.execute("SELECT bytes FROM traces WHERE trace_id = ?", (trace_id,)).fetchone()
        held = held[0] if held else 0
        stored, dropped, rows, written = len(parent_of), 0, [], 0
        for span in spans:
            if span.parent_span_id and closes_cycle(span.span_id, span.parent_span_id, parent_of):
                rejected.add("closing a loop of parents")
                continue
            replaces = span.span_id in parent_of
            if not replaces and stored >= self.max_spans_per_trace:  # refused before it costs a serialisation
                dropped += 1
                rejected.add(f"beyond the {self.max_spans_per_trace} spans a trace holds")
                continue
            resource, resource_size = self._resource(span.resource, pending)
            extra = resource_size if resource not in resources else 0
            row = self._row(span, resource)
            if not replaces and held + row[-1] + extra > self.max_trace_bytes:
                dropped += 1
                rejected.add(f"beyond the {self.max_trace_bytes} bytes a trace holds")
                continue
            parent_of[span.span_id] = span.parent_span_id
            resources.add(resource)
            stored += 0 if replaces else 1
            held += row[-1] + extra - size_of.get(span.span_id, 0)
            size_of[span.span_id] = row[-1]
            written += row[-1] + extra
            rows.append(row)
        db.executemany(f"INSERT OR REPLACE INTO spans VALUES ({', '.join('?' * _COLUMNS)})", rows)
        summary = db.execute(
            "SELECT min(start_ns), max(end_ns), count(*), sum(status = 'ERROR'), sum(bytes) + (SELECT "
            "coalesce(sum(r.bytes), 0) FROM resources r WHERE r.id IN (SELECT resource FROM spans WHERE trace_id = ?)) "
            "FROM spans WHERE trace_id = ?",
            (trace_id, trace_id),
        ).fetchone()
        if summary[2] == 0:  # nothing stored (refused, or the trace is full)
            db.execute("UPDATE traces SET dropped_spans = dropped_spans + ? WHERE trace_id = ?", (dropped, trace_id))
            return written
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
        now = time.time_ns()
        if exists:
            db.execute(
                "UPDATE traces SET start_ns = ?, end_ns = ?, span_count = ?, error_count = ?, dropped_spans = "
                "dropped_spans + ?, root_name = ?, root_service = ?, bytes = ?, received_ns = ? WHERE trace_id = ?",
                (start, end, count, errors, dropped, root[0], root[1], size, now, trace_id),
            )
        else:
            self._seq += 1
            db.execute(
                "INSERT INTO traces VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (trace_id, self._seq, start, end, count, errors, dropped, root[0], root[1], size, now),
            )
        return written

    @staticmethod
    def _row(s: ReceivedSpan, resource: int) -> tuple:
        service = s.service[:SERVICE_CHARS]
        text = (s.name, service, s.status_message, _dumps(s.attributes), _dumps(s.events), s.scope)
        # What the row costs on disk: its text, the ids (in the index too) and SQLite's per-row cost.
        size = sum(len(t.encode("utf-8", "surrogatepass")) for t in text) + 2 * (len(s.trace_id) + len(s.span_id)) + 90
        ids = (s.trace_id, s.span_id, s.parent_span_id)
        times = (s.kind, service, s.start_ns, s.end_ns, s.status, s.status_message)
        return (*ids, s.name, *times, text[3], text[4], resource, s.scope, s.dropped_attributes, s.dropped_events, size)

    def _evict(self, trace_ids: list[str]) -> None:
        self._db.executemany("DELETE FROM spans WHERE trace_id = ?", [(t,) for t in trace_ids])
        self._db.executemany("DELETE FROM traces WHERE trace_id = ?", [(t,) for t in trace_ids])
        self._forget_resources()

    def _forget_resources(self) -> None:
        """Delete the resources no span names any more."""
        self._db.execute("DELETE FROM resources WHERE NOT EXISTS (SELECT 1 FROM spans WHERE resource = resources.id)")
        self._resource_ids.clear()  # the export's memo may name a deleted row

    def _evict_others(self, keep: float) -> list[str]:
        """Evict the oldest rows of what else the store holds, down to ``keep`` of it; what was
        evicted (empty: nothing else is held). The trace store holds nothing else."""
        return []

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` to ``COMMIT``). On any exception it is rolled
        back and :meth:`_rolled_back` forgets what memory kept of its rows; the exception goes on.
        A block may commit and begin again inside (to stay within the bounds mid-export)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._rolled_back()
            raise

    def _rolled_back(self) -> None:
        """After a rollback: forget what was kept in memory of the rows the transaction had changed."""
        self._resource_ids.clear()

    def expire(self, now_ns: int | None = None) -> None:
        """Evict what arrived more than ``max_age_s`` ago, and give the space back."""
        cutoff = (time.time_ns() if now_ns is None else now_ns) - int(self.max_age_s * 1e9)
        with self._write_lock:
            with self._transaction():
                old = [
                    row[0] for row in self._db.execute("SELECT trace_id FROM traces WHERE received_ns < ?", (cutoff,))
                ]
                if old:
                    self._evict(old)
                expired = self._expire_others(cutoff) or bool(old)
            if expired:
                self._db.executescript("PRAGMA incremental_vacuum;")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def _expire_others(self, cutoff_ns: int) -> bool:
        """Evict the other signals' rows received before ``cutoff_ns``; whether any were."""
        return False

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
        room = self.max_bytes - self.wal_room
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
            with self._transaction():
                if oldest:
                    self._evict(oldest)
                else:
                    self._forget_resources()  # resources whose spans were all refused
                    oldest = self._evict_others(0.8 * room / pages)  # no trace left: the other signals give way
            # Each step of this pragma frees one page; execute() steps once, executescript() to the end.
            self._db.executescript("PRAGMA incremental_vacuum;")
            evicted = True
            if not oldest:
                break
        if evicted or self._wal_bytes() > self.wal_room:
            # A reader's snapshot may hold the log for a moment; the next write truncates it then.
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    # -- reading -------------------------------------------------------------------------------

    def _read(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        return self._reads((sql, params))[0]

    def _reads(self, *statements: tuple[str, tuple]) -> list[list[sqlite3.Row]]:
        """The rows of each statement, from one snapshot, within ``query_seconds`` (else QueryTooLong)."""
        with self._read_lock:
            self._deadline = time.monotonic() + self.query_seconds
            self._reader.execute("BEGIN")
            try:
                return [self._reader.execute(sql, params).fetchall() for sql, params in statements]
            except sqlite3.OperationalError as exc:
                if "interrupted" in str(exc):
                    raise QueryTooLong(f"the query took longer than {self.query_seconds:g} s") from None
                raise
            finally:
                self._reader.execute("COMMIT")

    def list_traces(
        self,
        service: str | None = None,
        status: str | None = None,
        min_duration_ms: float | None = None,
        q: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Trace summaries, the last received first, filtered: any span of ``service``; ``status``
        "error" or "ok"; at least ``min_duration_ms``; ``q`` in a span name or attribute value."""
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
            f"SELECT t.*, {_SERVICES} FROM traces t"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY t.seq DESC LIMIT ?"
        )
        return [self._summary(row) for row in self._read(sql, (*params, limit))]

    @staticmethod
    def _summary(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "trace_id": row["trace_id"],
            "root_name": row["root_name"],
            "root_service": row["root_service"],
            "services": json.loads(row["services"] or "[]"),
            "start_unix_nano": row["start_ns"],
            "duration_ms": round((row["end_ns"] - row["start_ns"]) / 1e6, 3),
            "span_count": row["span_count"],
            "error_count": row["error_count"],
            "dropped_spans": row["dropped_spans"],
        }

    def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        """:meth:`trace_json`, read back: the trace as a dict; None if unknown."""
        pieces = self.trace_json(trace_id)
        return None if pieces is None else json.loads(b"".join(pieces))

    def trace_json(self, trace_id: str) -> Iterator[bytes] | None:
        """Every span of the trace, by start time, with the trace's summary and its resources (each
        once, by the key its spans name in ``resource_id``), as JSON in pieces of about
        ``JSON_PIECE`` bytes; None if unknown. The rows are read at once (one snapshot, within
        ``query_seconds``); the JSON is made as the pieces are taken, the stored attributes and
        events as they are, so that a trace costs its rows and a piece, not a parsed copy."""
        summary, spans, resources = self._reads(
            (f"SELECT t.*, {_SERVICES} FROM traces t WHERE trace_id = ?", (trace_id,)),
            ("SELECT * FROM spans WHERE trace_id = ? ORDER BY start_ns", (trace_id,)),
            (
                "SELECT id, json FROM resources WHERE id IN (SELECT resource FROM spans WHERE trace_id = ?)",
                (trace_id,),
            ),
        )
        if not summary:
            return None
        head = json.dumps(self._summary(summary[0]), ensure_ascii=False)[:-1]
        head += ', "resources": {' + ", ".join(f'"{row["id"]}": {row["json"]}' for row in resources) + '}, "spans": ['
        spans.reverse()  # taken from the end, so that each row goes once written
        return self._pieces(head, spans)

    def _pieces(self, head: str, spans_last_first: list[sqlite3.Row]) -> Iterator[bytes]:
        parts, size = [head], len(head)
        while spans_last_first:
            parts.append(self._span_json(spans_last_first.pop()) + (", " if spans_last_first else ""))
            size += len(parts[-1])
            if size >= JSON_PIECE:
                yield "".join(parts).encode()
                parts, size = [], 0
        parts.append("]}")
        yield "".join(parts).encode()

    @staticmethod
    def _span_json(row: sqlite3.Row) -> str:
        fields = {
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
            "resource_id": str(row["resource"]),
            "scope": row["scope"],
            "dropped_attributes_count": row["dropped_attributes"],
            "dropped_events_count": row["dropped_events"],
        }
        # The attributes and events were stored as JSON (finite numbers only): written out as stored.
        stored = f', "attributes": {row["attributes"]}, "events": {row["events"]}}}'
        return json.dumps(fields, ensure_ascii=False)[:-1] + stored

    def services(self) -> list[str]:
        """The services seen, the first :data:`SERVICES_LISTED` by name."""
        return [
            row[0] for row in self._read(f"SELECT DISTINCT service FROM spans ORDER BY service LIMIT {SERVICES_LISTED}")
        ]

    def trace_count(self) -> int:
        return self._read("SELECT count(*) FROM traces")[0][0]
