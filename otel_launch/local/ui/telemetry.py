"""The ui's store of metrics and logs, beside the traces, in the same SQLite file and bounds.

Metric points are kept as exported (sums, gauges, histograms with their bucket counts), each
under its series: one metric, one process (the digest of its resource), one attribute set,
one scope, one set of bucket bounds. Log records are kept with their times, severity, body,
attributes and the trace and span they were written in.

Bounds (see :class:`Store`): the traces' ``max_bytes`` holds for the whole file; in it metric
points and log records each take at most a quarter of it (counted in the bytes their rows
hold, the oldest received evicted first), and the traces the rest. The page-level bound of
:class:`TraceStore` evicts traces first; when none is left, the oldest points and records give
way. ``max_age_s`` evicts all three by the time they were received (:meth:`TraceStore.expire`).
What cannot be trusted is refused and counted (OTLP's partial success): more than
``max_series`` distinct series (at the cap, the series quiet for :data:`STALE_S` seconds give way
first: a reloaded process starts new ones), an attribute set over :data:`SERIES_ATTRIBUTE_BYTES`, a
histogram of more than :data:`MAX_BUCKETS` buckets or whose counts do not match its bounds, a
point with a non-finite number or an impossible time, exponential histograms and summaries
(otel-launch exports neither), a log record over :data:`LOG_BYTES`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable
from typing import Any

from otel_launch.local.receiver import FUTURE_NS, INT64_MAX, ReceivedLog, ReceivedPoint, Rejected
from otel_launch.local.ui.series import severity_name, severity_number
from otel_launch.local.ui.store import SERVICE_CHARS, SERVICES_LISTED, TraceStore, _dumps, _like

MAX_SERIES = 10_000  # distinct metric series held; points of new ones beyond are refused
STALE_S = 900  # a series no point has reached for this long gives way to a new one at the cap
SERIES_ATTRIBUTE_BYTES = 4096  # one series' attributes, as JSON
MAX_BUCKETS = 256  # one histogram point
LOG_BYTES = 64 * 1024  # one log record as stored
LOGS_LISTED = 1000  # /api/logs at most
# The database systems (semantic conventions' db.system / db.system.name) whose "statements" are
# not SQL: commands and queries of key-value, document, search and graph stores. The overview's
# slowest statements leave them out (a Celery app's broker would fill the table with BRPOP, LLEN
# and PING); a span with a statement and another system (Django's vendor name of a third-party
# backend, say) or none counts as SQL.
NOT_SQL = (
    "redis", "valkey", "memcached", "mongodb", "elasticsearch", "opensearch", "cassandra", "couchdb", "couchbase",
    "dynamodb", "aws.dynamodb", "cosmosdb", "azure.cosmosdb", "hbase", "neo4j", "geode", "influxdb", "aerospike",
)  # fmt: skip

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    digest BLOB NOT NULL UNIQUE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    unit TEXT NOT NULL,
    description TEXT NOT NULL,
    temporality INTEGER NOT NULL,
    monotonic INTEGER NOT NULL,
    service TEXT NOT NULL,
    process TEXT NOT NULL,
    scope TEXT NOT NULL,
    attributes TEXT NOT NULL,
    bounds TEXT NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS series_name ON series (name, service);
CREATE TABLE IF NOT EXISTS points (
    id INTEGER PRIMARY KEY,
    series INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    time_ns INTEGER NOT NULL,
    value REAL,
    count INTEGER,
    sum REAL,
    min REAL,
    max REAL,
    counts TEXT,
    received_ns INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS points_series_time ON points (series, time_ns);
CREATE INDEX IF NOT EXISTS points_received ON points (received_ns);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY,
    time_ns INTEGER NOT NULL,
    observed_ns INTEGER NOT NULL,
    received_ns INTEGER NOT NULL,
    service TEXT NOT NULL,
    severity_number INTEGER NOT NULL,
    severity TEXT NOT NULL,
    body TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    attributes TEXT NOT NULL,
    scope TEXT NOT NULL,
    flags INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_time ON logs (time_ns);
CREATE INDEX IF NOT EXISTS logs_service ON logs (service, time_ns);
CREATE INDEX IF NOT EXISTS logs_trace ON logs (trace_id);
CREATE INDEX IF NOT EXISTS logs_received ON logs (received_ns);
"""
_TABLES = ("points", "logs")


def _finite(*values: float | None) -> bool:
    return all(value is None or math.isfinite(value) for value in values)


def _hex_id(value: str, size: int) -> str:
    return value if len(value) == 2 * size and value.strip("0") else ""


class Store(TraceStore):
    """Traces (:class:`TraceStore`), metric points and log records, under one byte and one age bound."""

    def __init__(self, *args: Any, max_series: int = MAX_SERIES, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_series = max_series
        self.share_bytes = self.max_bytes // 4  # each of points and logs, in row bytes
        with self._write_lock:
            self._db.executescript(_SCHEMA)
            self._held = {
                table: self._db.execute(f"SELECT coalesce(sum(bytes), 0) FROM {table}").fetchone()[0]
                for table in _TABLES
            }
            self._held["points"] += self._db.execute("SELECT coalesce(sum(bytes), 0) FROM series").fetchone()[0]
            self._series_count = self._db.execute("SELECT count(*) FROM series").fetchone()[0]
        self._series_ids: dict[bytes, int] = {}
        self._stale_checked = 0.0  # when the cap last looked for stale series (monotonic)
        self._processes: dict[int, tuple[dict, str]] = {}  # id(resource) -> (it, its digest), within one export
        self._pending_series: set[int] = set()  # the series of the points of this export (not all written yet)

    # -- writing -------------------------------------------------------------------------------

    def add_points(self, batches: Iterable[list[ReceivedPoint]]) -> Rejected:
        """Store one export's metric points; those refused, by reason."""
        rejected = Rejected(noun="metric point")
        with self._write_lock:
            try:
                for batch in batches:
                    self._write(
                        batch,
                        self._point_row,
                        "INSERT INTO points VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        "points",
                        rejected,
                    )
            finally:
                self._processes.clear()
                self._pending_series.clear()
        return rejected

    def add_logs(self, batches: Iterable[list[ReceivedLog]]) -> Rejected:
        """Store one export's log records; those refused, by reason."""
        rejected = Rejected(noun="log record")
        with self._write_lock:
            for batch in batches:
                sql = "INSERT INTO logs VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                self._write(batch, self._log_row, sql, "logs", rejected)
        return rejected

    def _write(self, items: list, make_row: Any, sql: str, table: str, rejected: Rejected) -> None:
        """Insert the rows of ``items``, committing every ``commit_bytes`` (then within the bounds)."""
        now, written, rows = time.time_ns(), 0, []
        with self._transaction() as db:
            for item in items:
                row = make_row(item, now, rejected)
                if row is None:
                    continue
                rows.append(row)
                written += row[-1]
                if written >= self.commit_bytes:
                    db.executemany(sql, rows)
                    self._held[table] += written
                    self._within_share(table)
                    db.execute("COMMIT")
                    self._within_bytes()
                    db.execute("BEGIN IMMEDIATE")
                    written, rows = 0, []
            db.executemany(sql, rows)
            self._held[table] += written
            self._within_share(table)
        self._within_bytes()

    def _rolled_back(self) -> None:
        """The byte counts and series ids lowered or cached in the rolled-back transaction, read again."""
        super()._rolled_back()
        self._series_ids.clear()
        self._reload_held()

    def _reload_held(self) -> None:
        for table in _TABLES:
            self._held[table] = self._db.execute(f"SELECT coalesce(sum(bytes), 0) FROM {table}").fetchone()[0]
        self._held["points"] += self._db.execute("SELECT coalesce(sum(bytes), 0) FROM series").fetchone()[0]
        self._series_count = self._db.execute("SELECT count(*) FROM series").fetchone()[0]

    def _process(self, resource: dict) -> str:
        known = self._processes.get(id(resource))
        if known is None:
            digest = hashlib.blake2b(_dumps(resource).encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
            known = self._processes[id(resource)] = (resource, digest)
        return known[1]

    def _point_row(self, point: ReceivedPoint, now: int, rejected: Rejected) -> tuple | None:
        reason = self._point_refusal(point, now)
        if reason is not None:
            rejected.add(reason)
            return None
        attributes = _dumps(point.attributes)
        if len(attributes.encode("utf-8", "surrogatepass")) > SERIES_ATTRIBUTE_BYTES:
            rejected.add(f"with attributes over {SERIES_ATTRIBUTE_BYTES} bytes")
            return None
        series = self._series(point, attributes)
        if series is None:
            rejected.add(f"of new series beyond the {self.max_series} the store holds")
            return None
        self._pending_series.add(series)
        histogram = point.kind == "histogram"
        counts = json.dumps(point.bucket_counts) if histogram else None
        size = 100 + (len(counts) if counts else 0)
        value = None if histogram else point.value
        return (series, point.start_ns, point.time_ns, value, point.count if histogram else None,
                point.sum if histogram else None, point.min, point.max, counts, now, size)  # fmt: skip

    @staticmethod
    def _point_refusal(point: ReceivedPoint, now: int) -> str | None:
        if point.kind not in ("sum", "gauge", "histogram"):
            return f"of kind {point.kind or 'unset'} (exponential histograms and summaries are not stored)"
        if not (0 < point.time_ns <= INT64_MAX) or point.time_ns > now + FUTURE_NS or point.start_ns > point.time_ns:
            return "with impossible times (unset, start after time, or far in the future)"
        if point.kind == "histogram":
            if len(point.bucket_counts) > MAX_BUCKETS:
                return f"of histograms over {MAX_BUCKETS} buckets"
            if len(point.bucket_counts) != len(point.bounds) + 1 or sorted(point.bounds) != point.bounds:
                return "of malformed histograms (bucket counts that do not match the bounds)"
            if not _finite(point.sum, point.min, point.max, *point.bounds):
                return "with non-finite numbers"
        elif point.value is None or not _finite(float(point.value)):
            return "with non-finite numbers or no value"
        return None

    def _series(self, point: ReceivedPoint, attributes: str) -> int | None:
        """The row id of the point's series, made if new (None: the cap is reached)."""
        process = self._process(point.resource)
        bounds = json.dumps(point.bounds) if point.kind == "histogram" else ""
        service = point.service[:SERVICE_CHARS]
        key = (
            point.metric,
            point.kind,
            point.unit,
            point.temporality,
            point.monotonic,
            process,
            point.scope,
            attributes,
            bounds,
        )
        digest = hashlib.blake2b(json.dumps(key).encode("utf-8", "surrogatepass"), digest_size=16).digest()
        known = self._series_ids.get(digest)
        if known is not None:
            return known
        row = self._db.execute("SELECT id FROM series WHERE digest = ?", (digest,)).fetchone()
        if row is None:
            if self._series_count >= self.max_series and not self._evict_stale_series():
                return None
            size = 150 + sum(len(str(part).encode("utf-8", "surrogatepass")) for part in key) + len(point.description)
            cursor = self._db.execute(
                "INSERT INTO series VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (digest, point.metric, point.kind, point.unit, point.description, point.temporality,
                 int(point.monotonic), service, process, point.scope, attributes, bounds, size),
            )  # fmt: skip
            self._series_count += 1
            self._held["points"] += size
            series_id = cursor.lastrowid
        else:
            series_id = row[0]
        if len(self._series_ids) >= self.max_series:
            self._series_ids.clear()
        self._series_ids[digest] = series_id
        return series_id

    @staticmethod
    def _log_row(log: ReceivedLog, now: int, rejected: Rejected) -> tuple | None:
        number = log.severity_number if 0 < log.severity_number <= 24 else severity_number(log.severity)
        body = _dumps(log.body)
        attributes = _dumps(log.attributes)
        text = (log.service[:SERVICE_CHARS], log.severity, body, attributes, log.scope)
        size = sum(len(t.encode("utf-8", "surrogatepass")) for t in text) + 150
        if size > LOG_BYTES:
            rejected.add(f"over {LOG_BYTES} bytes")
            return None
        when = next((t for t in (log.time_ns, log.observed_ns) if 0 < t <= INT64_MAX), now)
        observed = log.observed_ns if 0 < log.observed_ns <= INT64_MAX else 0
        trace_id, span_id = _hex_id(log.trace_id, 16), _hex_id(log.span_id, 8)
        return (when, observed, now, text[0], number, log.severity or severity_name(number), body, trace_id,
                span_id if trace_id else "", attributes, log.scope, log.flags & 0xFFFFFFFF, size)  # fmt: skip

    # -- the bounds ----------------------------------------------------------------------------

    def _within_share(self, table: str) -> None:
        """Within the open transaction: evict the oldest rows of ``table`` beyond its share."""
        if self._held[table] > self.share_bytes:
            self._evict_oldest(table, self._held[table] - int(self.share_bytes * 0.9))

    def _evict_oldest(self, table: str, amount: int) -> bool:
        """Delete the oldest received rows of ``table`` holding about ``amount`` bytes; whether any."""
        freed, last = 0, None
        for row_id, size in self._db.execute(f"SELECT id, bytes FROM {table} ORDER BY id"):
            freed += size
            last = row_id
            if freed >= amount:
                break
        if last is None:
            return False
        self._db.execute(f"DELETE FROM {table} WHERE id <= ?", (last,))
        self._held[table] -= freed
        if table == "points":
            self._forget_series()
        return True

    def _evict_stale_series(self) -> bool:
        """At the cap: evict the series (a tenth of the cap at most) no point has reached for
        :data:`STALE_S` seconds, the longest quiet first: those of processes that have ended (a
        reloaded runserver, a recycled worker each start new series). Whether any were; looked
        for at most once a minute. A series with a point in this export is kept: its point may not be
        written yet, and would be left naming a deleted series (or one made later with its id)."""
        if time.monotonic() - self._stale_checked < 60:
            return False
        self._stale_checked = time.monotonic()
        cutoff, most = time.time_ns() - STALE_S * 1_000_000_000, max(1, self.max_series // 10)
        stale = [
            row[0]
            for row in self._db.execute(
                "SELECT series FROM points GROUP BY series HAVING max(received_ns) < ? ORDER BY max(received_ns) "
                "LIMIT ?",
                (cutoff, most + len(self._pending_series)),
            )
            if row[0] not in self._pending_series
        ][:most]
        if not stale:
            return False
        marks = ", ".join("?" * len(stale))
        freed = self._db.execute(f"SELECT coalesce(sum(bytes), 0) FROM points WHERE series IN ({marks})", stale)
        self._held["points"] -= freed.fetchone()[0]
        self._db.execute(f"DELETE FROM points WHERE series IN ({marks})", stale)
        # These series only: a series made earlier in this batch has no point written yet.
        size = self._db.execute(f"SELECT coalesce(sum(bytes), 0) FROM series WHERE id IN ({marks})", stale)
        self._held["points"] -= size.fetchone()[0]
        self._db.execute(f"DELETE FROM series WHERE id IN ({marks})", stale)
        self._series_count -= len(stale)
        self._series_ids.clear()
        self._stale_checked = 0.0 if self._series_count < self.max_series else self._stale_checked
        return self._series_count < self.max_series

    def _forget_series(self) -> None:
        """Delete the series no point names any more."""
        gone = "NOT EXISTS (SELECT 1 FROM points WHERE points.series = series.id)"
        count, size = self._db.execute(f"SELECT count(*), coalesce(sum(bytes), 0) FROM series WHERE {gone}").fetchone()
        if count:
            self._db.execute(f"DELETE FROM series WHERE {gone}")
            self._series_count -= count
            self._held["points"] -= size
            self._series_ids.clear()

    def _evict_others(self, keep: float) -> list[str]:
        evicted = []
        for table in _TABLES:
            held = self._held[table]
            if held > 0 and self._evict_oldest(table, max(1, int(held * (1 - keep)))):
                evicted.append(table)
        return evicted

    def _expire_others(self, cutoff_ns: int) -> bool:
        expired = False
        for table in _TABLES:
            row = self._db.execute(
                f"SELECT max(id), coalesce(sum(bytes), 0) FROM {table} WHERE received_ns < ?", (cutoff_ns,)
            ).fetchone()
            if row[0] is not None:
                self._db.execute(f"DELETE FROM {table} WHERE received_ns < ?", (cutoff_ns,))
                self._held[table] -= row[1]
                expired = True
        if expired:
            self._forget_series()
        return expired

    # -- reading -------------------------------------------------------------------------------

    def metric_names(self, service: str | None = None) -> list[dict[str, Any]]:
        where, params = ("WHERE service = ?", (service,)) if service else ("", ())
        rows = self._read(
            "SELECT name, max(kind) AS kind, max(unit) AS unit, max(description) AS description, "
            "max(monotonic) AS monotonic, json_group_array(DISTINCT service) AS services "
            f"FROM series {where} GROUP BY name ORDER BY name",
            params,
        )
        return [
            {
                "name": row["name"],
                "kind": row["kind"],
                "unit": row["unit"],
                "description": row["description"],
                "monotonic": bool(row["monotonic"]),
                "services": sorted(json.loads(row["services"]))[:100],
            }
            for row in rows
        ]

    def point_rows(
        self, names: Iterable[str], service: str | None, from_ns: int, step_ns: int
    ) -> tuple[dict[int, Any], list[Any]]:
        """The series of the metrics ``names`` (by row id), and their points from ``from_ns`` on, by
        series and time. Of a cumulative series or a gauge, only the last point of each step
        (counted from ``from_ns``) and start time is read: the change over a step is the
        difference of its last points, and a long window costs its steps, not every export."""
        names = list(names)
        where = f"s.name IN ({', '.join('?' * len(names))})" + (" AND s.service = ?" if service else "")
        params: list[Any] = [*names, *([service] if service else [])]
        columns = "p.series, p.start_ns, p.time_ns, p.value, p.count, p.sum, p.counts"
        series, points = self._reads(
            (f"SELECT * FROM series s WHERE {where}", tuple(params)),
            (
                f"SELECT * FROM (SELECT p.series, p.start_ns, max(p.time_ns) AS time_ns, p.value, p.count, p.sum, "
                f"p.counts FROM series s JOIN points p ON p.series = s.id WHERE {where} AND s.temporality != 1 "
                "AND p.time_ns >= ? GROUP BY p.series, p.start_ns, (p.time_ns - ?) / ? "
                f"UNION ALL SELECT {columns} FROM series s JOIN points p ON p.series = s.id WHERE {where} "
                "AND s.temporality = 1 AND p.time_ns >= ?) ORDER BY series, time_ns",
                (*params, from_ns, from_ns, step_ns, *params, from_ns),
            ),
        )
        return {row["id"]: row for row in series}, points

    def logs(
        self,
        service: str | None = None,
        min_severity: int = 0,
        trace_id: str | None = None,
        q: str | None = None,
        limit: int = 200,
    ) -> tuple[list[dict[str, Any]], int]:
        """Log records, the newest first, filtered; and how many the store holds."""
        where, params = [], []
        if service:
            where.append("service = ?")
            params.append(service)
        if min_severity:
            where.append("severity_number >= ?")
            params.append(min_severity)
        if trace_id:
            where.append("trace_id = ?")
            params.append(trace_id)
        if q:
            where.append("body LIKE ? ESCAPE '\\'")
            params.append(_like(q))
        sql = (
            "SELECT * FROM logs"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY time_ns DESC, id DESC LIMIT ?"
        )
        rows, count = self._reads((sql, (*params, min(limit, LOGS_LISTED))), ("SELECT count(*) FROM logs", ()))
        return [self._log(row) for row in rows], count[0][0]

    @staticmethod
    def _log(row: Any) -> dict[str, Any]:
        return {
            "time": row["time_ns"] / 1e6,
            "observed_time": row["observed_ns"] / 1e6 if row["observed_ns"] else None,
            "service": row["service"],
            "severity": row["severity"] or severity_name(row["severity_number"]),
            "severity_number": row["severity_number"],
            "body": json.loads(row["body"]),
            "trace_id": row["trace_id"],
            "span_id": row["span_id"],
            "attributes": json.loads(row["attributes"]),
            "scope": row["scope"],
        }

    def db_spans(self, service: str | None, from_ns: int, limit: int = 10) -> tuple[list[Any], list[Any]]:
        """The slowest SQL statements (each with its slowest span's trace; the systems of
        :data:`NOT_SQL` left out) and the N+1 statements (each with the trace of its most repeated
        run) of the spans started from ``from_ns``. Only the spans whose attributes' text names the
        key are parsed."""
        statement = (
            "coalesce(json_extract(attributes, '$.\"db.statement\"'), json_extract(attributes, '$.\"db.query.text\"'))"
        )
        repeated = "json_extract(attributes, '$.\"otel_launch.n_plus_one.statement\"')"
        count = "json_extract(attributes, '$.\"otel_launch.n_plus_one.count\"')"
        where, params = "start_ns >= ?", [from_ns]
        if service:
            where += " AND service = ?"
            params.append(service)
        system = (
            "coalesce(json_extract(attributes, '$.\"db.system\"'), "
            "json_extract(attributes, '$.\"db.system.name\"'), '')"
        )
        sql_only = f"lower({system}) NOT IN ({', '.join('?' * len(NOT_SQL))})"
        return tuple(  # type: ignore[return-value]
            self._reads(
                (
                    f"SELECT statement, service, max(duration) AS duration, trace_id, count(*) AS runs FROM "
                    f"(SELECT {statement} AS statement, service, end_ns - start_ns AS duration, trace_id "
                    f"FROM spans WHERE {where} AND (instr(attributes, '\"db.statement\"') OR "
                    f"instr(attributes, '\"db.query.text\"')) AND {sql_only}) WHERE statement IS NOT NULL "
                    f"GROUP BY statement, service ORDER BY duration DESC LIMIT {int(limit)}",
                    (*params, *NOT_SQL),
                ),
                (
                    f"SELECT statement, service, max(runs) AS runs, trace_id FROM "
                    f"(SELECT {repeated} AS statement, service, {count} AS runs, trace_id FROM spans WHERE {where} "
                    "AND instr(attributes, '\"otel_launch.n_plus_one.statement\"')) "
                    f"WHERE statement IS NOT NULL GROUP BY statement, service ORDER BY runs DESC LIMIT {int(limit)}",
                    tuple(params),
                ),
            )
        )

    def services(self) -> list[str]:
        """The services seen in spans, metrics and logs, the first :data:`SERVICES_LISTED` by name."""
        return [
            row[0]
            for row in self._read(
                "SELECT service FROM (SELECT DISTINCT service FROM spans UNION SELECT service FROM series "
                f"UNION SELECT DISTINCT service FROM logs) ORDER BY service LIMIT {SERVICES_LISTED}"
            )
        ]

    def held_bytes(self) -> dict[str, int]:
        """The row bytes each signal holds, as the shares count them."""
        with self._write_lock:
            traces = self._db.execute("SELECT coalesce(sum(bytes), 0) FROM traces").fetchone()[0]
            return {"traces": traces, "metrics": self._held["points"], "logs": self._held["logs"]}
