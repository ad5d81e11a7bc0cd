"""The trace viewer's store: spans in SQLite (standard library), assembled into traces as they arrive.

Spans of one trace come from several processes at different times; each arrival updates
the trace's summary (start, end, span count, errors, root). The root is the span without a
parent, whichever arrived first. Bounded: at most ``max_traces`` traces (the oldest received
are dropped) and ``max_spans_per_trace`` spans per trace (more are counted, not stored).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from otel_launch._receiver import ReceivedSpan

KIND_NAMES = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}

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
    root_service TEXT
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
    PRIMARY KEY (trace_id, span_id)
);
"""


def default_db_path() -> Path:
    """A file under the user's cache directory (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "otel-launch" / "traces.sqlite3"


def _dumps(value: Any) -> str:
    return json.dumps(value, default=repr, ensure_ascii=False)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class TraceStore:
    """Spans by trace, in one SQLite database; safe to use from the receiver's and the web's threads."""

    def __init__(self, path: str | Path = ":memory:", max_traces: int = 1000, max_spans_per_trace: int = 5000):
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self.max_traces = max_traces
        self.max_spans_per_trace = max_spans_per_trace
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            self._seq = self._db.execute("SELECT coalesce(max(seq), 0) FROM traces").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing -------------------------------------------------------------------------------

    def add(self, spans: list[ReceivedSpan]) -> None:
        """Store the spans of one export request and update their traces' summaries."""
        by_trace: dict[str, list[ReceivedSpan]] = {}
        for span in spans:
            by_trace.setdefault(span.trace_id, []).append(span)
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for trace_id, trace_spans in by_trace.items():
                    self._add_trace_spans(trace_id, trace_spans)
                self._evict()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _add_trace_spans(self, trace_id: str, spans: list[ReceivedSpan]) -> None:
        db = self._db
        stored = db.execute("SELECT count(*) FROM spans WHERE trace_id = ?", (trace_id,)).fetchone()[0]
        room = max(0, self.max_spans_per_trace - stored)
        kept, dropped = spans[:room], len(spans) - min(room, len(spans))
        db.executemany(
            "INSERT OR REPLACE INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    s.trace_id,
                    s.span_id,
                    s.parent_span_id,
                    s.name,
                    s.kind,
                    s.service,
                    s.start_ns,
                    s.end_ns,
                    s.status,
                    s.status_message,
                    _dumps(s.attributes),
                    _dumps(s.events),
                    _dumps(s.resource),
                    s.scope,
                )
                for s in kept
            ],
        )
        summary = db.execute(
            "SELECT min(start_ns), max(end_ns), count(*), sum(status = 'ERROR') FROM spans WHERE trace_id = ?",
            (trace_id,),
        ).fetchone()
        if summary[2] == 0:  # nothing stored (the trace is full)
            db.execute("UPDATE traces SET dropped_spans = dropped_spans + ? WHERE trace_id = ?", (dropped, trace_id))
            return
        # The root: the span without a parent; until it arrives, the earliest span whose parent is missing.
        root = db.execute(
            "SELECT name, service FROM spans s WHERE trace_id = ? AND (parent_span_id = '' OR NOT EXISTS "
            "(SELECT 1 FROM spans p WHERE p.trace_id = s.trace_id AND p.span_id = s.parent_span_id)) "
            "ORDER BY parent_span_id != '', start_ns LIMIT 1",
            (trace_id,),
        ).fetchone()
        exists = db.execute("SELECT 1 FROM traces WHERE trace_id = ?", (trace_id,)).fetchone()
        if exists:
            db.execute(
                "UPDATE traces SET start_ns = ?, end_ns = ?, span_count = ?, error_count = ?, "
                "dropped_spans = dropped_spans + ?, root_name = ?, root_service = ? WHERE trace_id = ?",
                (*summary, dropped, root["name"], root["service"], trace_id),
            )
        else:
            self._seq += 1
            db.execute(
                "INSERT INTO traces VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (trace_id, self._seq, *summary, dropped, root["name"], root["service"]),
            )

    def _evict(self) -> None:
        over = self._db.execute("SELECT count(*) FROM traces").fetchone()[0] - self.max_traces
        if over <= 0:
            return
        oldest = [row[0] for row in self._db.execute("SELECT trace_id FROM traces ORDER BY seq LIMIT ?", (over,))]
        self._db.executemany("DELETE FROM spans WHERE trace_id = ?", [(t,) for t in oldest])
        self._db.executemany("DELETE FROM traces WHERE trace_id = ?", [(t,) for t in oldest])

    # -- reading -------------------------------------------------------------------------------

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
            params.append(int(min_duration_ms * 1e6))
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
        with self._lock:
            rows = self._db.execute(sql, (*params, limit)).fetchall()
        return [self._summary(row) for row in rows]

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
        with self._lock:
            row = self._db.execute(
                "SELECT t.*, (SELECT group_concat(service, ',') FROM (SELECT DISTINCT service FROM spans s "
                "WHERE s.trace_id = t.trace_id ORDER BY service)) AS services FROM traces t WHERE trace_id = ?",
                (trace_id,),
            ).fetchone()
            if row is None:
                return None
            spans = self._db.execute("SELECT * FROM spans WHERE trace_id = ? ORDER BY start_ns", (trace_id,)).fetchall()
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
        }

    def services(self) -> list[str]:
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT DISTINCT service FROM spans ORDER BY service")]

    def trace_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM traces").fetchone()[0]
