"""Statements of one fixed shape whose SQL the ORM compiles once per connection, then runs again
with new values: the hot path's reads (``CompiledRead``) and its updates of a row's changed
columns (``update_columns``; ``update_rows`` for rows changed alike) and its inserts of new rows
(``insert_rows``).

Building the SQL of a query is most of what the ORM costs per statement here: for the call
timeline's read, 0.3 ms of CPU to compile, 0.4 ms more to run it through ``QuerySet``; compiled
once, the same read costs 0.31 ms (docs/benchmarks.md, "Issue 17: one call per request"). The
hot path's reads (a call write's locked read, its timeline, the conversation's state) have one
shape each and differ only in one id, so ``CompiledRead`` asks the ORM for the SQL once, on the
first run in each thread's connection, and binds the id itself.

The updates are the same: ``Model.save(update_fields=...)`` compiles an UPDATE of the columns
named on every call (0.4 ms of CPU here); ``update_columns`` compiles one per model, set of
columns (and which of them are NULL) and thread. So does ``bulk_create``, for the INSERT of every
new call, its participants and each write's timeline events: ``insert_rows`` compiles one per
model, number of rows and thread.

Inside ``one_round_trip()`` the updates and inserts are not sent one by one: they leave together,
as one statement, when the block ends (PostgreSQL and CockroachDB; elsewhere each is sent at once).
Each statement sent is a round trip's CPU in the service and in the database, about as much again
as a small statement's own work (docs/benchmarks.md, "Issue 17: one round trip per write").

What it keeps of the ORM: the SQL (quoting, joins, ``FOR UPDATE OF``, ``UNION ALL``, each
backend's dialect), the value's conversion for the database (``get_db_prep_value`` of the field
it is compared with), the backend's and fields' converters of each row, and instances built as
``ModelIterable`` builds them (``Model.from_db``, ``select_related`` objects by Django's related
populators). Errors are the ORM's own: the statement runs on the connection's cursor wrapper.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from typing import NamedTuple

from django.db import DatabaseError, connections
from django.db.models import Model, QuerySet
from django.db.models.query import ModelIterable, get_related_populators
from django.db.models.sql import InsertQuery, UpdateQuery
from django.db.transaction import TransactionManagementError

# Two values no row has, to find where the value lands among the compiled parameters.
_MARKERS = (
    uuid.UUID("5ec00000-0000-4000-8000-000000000001"),
    uuid.UUID("5ec00000-0000-4000-8000-000000000002"),
)


_per_thread = threading.local()


def _compiled(using: str, key, make):
    """(the statement compiled for ``key``, the connection) in this thread, for the connection
    Django keeps for this thread, made by ``make(connection)`` the first time. A thread that ends
    takes what it compiled with it."""
    connection = connections[using]
    cache = getattr(_per_thread, using, None)
    if cache is None or cache[0] is not connection:
        cache = (connection, {})
        setattr(_per_thread, using, cache)
    compiled = cache[1].get(key)
    if compiled is None:
        compiled = cache[1][key] = make(connection)
    return compiled, connection


class _Compiled:
    def __init__(self, build: Callable[[object], QuerySet], field, connection, lock=None):
        first, second = (build(marker) for marker in _MARKERS)
        self.models = first._iterable_class is ModelIterable
        self.locks = bool(first.query.select_for_update) and connection.features.has_select_for_update
        self.compiler = first.query.get_compiler(connection=connection)
        self.sql, params = self.compiler.as_sql()
        other_params = second.query.get_compiler(connection=connection).as_sql()[1]
        if lock is not None:  # its statement first, in the same string: one round trip
            lock_first, lock_second = (lock(marker).query.get_compiler(connection=connection) for marker in _MARKERS)
            lock_sql, lock_params = lock_first.as_sql()
            self.sql = f"{lock_sql}; {self.sql}"
            params, other_params = (*lock_params, *params), (*lock_second.as_sql()[1], *other_params)
            self.locks = bool(lock_first.query.select_for_update) and connection.features.has_select_for_update
        self.params = list(params)
        self.slots = [i for i, (a, b) in enumerate(zip(params, other_params, strict=True)) if a != b]
        if not self.slots:
            raise ValueError("the built query does not use the value it is given")
        self.field = field
        self.converters = self.compiler.get_converters(
            [column[0] for column in self.compiler.select[0 : self.compiler.col_count]]
        )
        if self.models:
            klass_info, select = self.compiler.klass_info, self.compiler.select
            fields = klass_info["select_fields"]
            self.model = klass_info["model"]
            self.span = (fields[0], fields[-1] + 1)
            self.init_list = [column[0].target.attname for column in select[self.span[0] : self.span[1]]]
            self.related_populators = get_related_populators(klass_info, select, connection.alias)
            self.annotations = list(self.compiler.annotation_col_map.items())

    def run(self, value, connection) -> list:
        if self.locks and connection.get_autocommit():  # as the ORM refuses it
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        bound = self.field.get_db_prep_value(value, connection, prepared=False)
        params = self.params.copy()
        for slot in self.slots:
            params[slot] = bound
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        # The rows' converters, found once at compile time (QuerySet finds them on every run).
        converted = map(tuple, self.compiler.apply_converters(rows, self.converters)) if self.converters else rows
        if not self.models:
            return list(converted)
        start, end = self.span
        found = []
        for row in converted:
            instance = self.model.from_db(connection.alias, self.init_list, row[start:end])
            for populator in self.related_populators:
                populator.populate(row, instance)
            for name, position in self.annotations:
                setattr(instance, name, row[position])
            found.append(instance)
        return found


class CompiledRead:
    """``build(value)`` -> the queryset (model instances or ``values_list``) for one value,
    compared with ``field``. ``read(value)`` returns what ``list(build(value))`` would.

    ``lock(value)``: a ``select_for_update()`` queryset whose statement is sent first, in the same
    round trip (``batches_statements``: PostgreSQL, CockroachDB; elsewhere in the same string
    too, which SQLite's driver refuses: give no ``lock`` there). The read then sees the rows as
    they were when the lock was granted: under READ COMMITTED each statement reads from its own
    start, so a read in the locking statement itself would see the other tables as they were
    before it waited.

    The SQL is compiled per thread (``_compiled``), so a compiler and its converters are only
    ever used by the thread whose connection made them."""

    def __init__(self, build: Callable[[object], QuerySet], *, field, lock=None, using: str = "default"):
        self.build = build
        self.field = field
        self.lock = lock
        self.using = using

    def __call__(self, value) -> list:
        compiled, connection = _compiled(
            self.using, self, lambda connection: _Compiled(self.build, self.field, connection, self.lock)
        )
        return compiled.run(value, connection)


class _CompiledUpdate:
    """``UPDATE <table> SET <column> = %s, ... WHERE <pk> = %s`` (or ``<pk> IN (%s, ...)`` for
    several rows) as the ORM writes it (a NULL is written into the SQL, so which values are NULL
    is part of the shape)."""

    def __init__(self, instances: list[Model], fields: list, values: list, connection):
        query = UpdateQuery(type(instances[0]))
        query.add_update_fields([(field, None, value) for field, value in zip(fields, values, strict=True)])
        if len(instances) == 1:
            query.add_filter("pk", instances[0].pk)
        else:
            query.add_filter("pk__in", [instance.pk for instance in instances])
        self.sql, params = query.get_compiler(connection=connection).as_sql()
        # The parameters must be the bound values then the keys, in that order, as ``run`` binds
        # them; if the ORM wrote them otherwise, this shape is left to it.
        self.usable = list(params) == _bound(instances, fields, values, connection)

    def run(self, instances: list[Model], fields: list, values: list, connection) -> None:
        _send(
            connection,
            _Statement(
                instances[0]._meta.db_table, self.sql, _bound(instances, fields, values, connection), len(instances)
            ),
        )


def _bound(instances: list[Model], fields: list, values: list, connection) -> list:
    bound = [field.get_db_prep_save(value, connection) for field, value in zip(fields, values, strict=True)]
    pk = instances[0]._meta.pk
    keys = [pk.get_db_prep_value(instance.pk, connection, prepared=False) for instance in instances]
    return [value for value in bound if value is not None] + keys


def update_columns(instance: Model, names: list[str], *, using: str = "default") -> None:
    """``instance.save(update_fields=names)`` for an instance loaded from the database, with the
    UPDATE compiled once per shape and thread: each named field's ``pre_save`` runs (``auto_now``
    times are stamped), no row updated raises ``DatabaseError`` as the ORM does. No model
    signals are sent (the service has no receivers of its own for the models written this way)."""
    update_rows([instance], names, using=using)


def update_rows(instances: list[Model], names: list[str], *, using: str = "default") -> None:
    """``update_columns`` of several instances of one model whose named columns hold the same
    values: one UPDATE for all of them (each row not updated raises ``DatabaseError``). Rows
    whose values differ (an ``auto_now`` time stamps each its own) are updated one by one."""
    meta = instances[0]._meta
    fields = [meta.get_field(name) for name in names]
    values = [field.pre_save(instances[0], False) for field in fields]
    if len(instances) > 1 and any([field.pre_save(i, False) for field in fields] != values for i in instances[1:]):
        for instance in instances:
            update_rows([instance], names, using=using)
        return
    shape = (type(instances[0]), tuple(names), tuple(value is None for value in values), len(instances))
    compiled, connection = _compiled(
        using, shape, lambda connection: _CompiledUpdate(instances, fields, values, connection)
    )
    if not compiled.usable:
        _send_pending(connection)
        for instance in instances:
            instance.save(update_fields=names, using=using)
        return
    compiled.run(instances, fields, values, connection)


class _CompiledInsert:
    """``INSERT INTO <table> (<every column>) ...`` of a number of rows, as ``bulk_create`` writes
    it when every primary key is set and nothing is returned: one statement, its parameters row
    after row (``VALUES (%s, ...), ...``) or, on PostgreSQL, an array per column (``SELECT * FROM
    UNNEST(...)``, Django 5.2's bulk insert there). A shape the ORM writes otherwise (several
    statements, placeholders of its own) is left to it."""

    def __init__(self, instances: list[Model], fields: list, rows: list[list], connection):
        query = InsertQuery(type(instances[0]))
        query.insert_values(fields, instances, raw=True)  # the values as they are: ``rows`` stamped them
        statements = query.get_compiler(connection=connection).as_sql()
        (self.sql, params), one = statements[0], len(statements) == 1
        self.by_column = one and list(params) == self.by_columns(rows)
        self.usable = self.by_column or (one and list(params) == self.by_rows(rows))

    @staticmethod
    def by_rows(rows: list[list]) -> list:
        return [value for row in rows for value in row]

    @staticmethod
    def by_columns(rows: list[list]) -> list:
        return [list(column) for column in zip(*rows, strict=True)]

    def run(self, table: str, rows: list[list], connection) -> None:
        _send(connection, _Statement(table, self.sql, self.by_columns(rows) if self.by_column else self.by_rows(rows)))


def _inserted(instances: list[Model], fields: list, connection) -> list[list]:
    """The INSERT's values, a list per row, as the ORM prepares them (``pre_save`` stamps
    ``auto_now`` and ``auto_now_add`` times on the instances)."""
    return [
        [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
        for instance in instances
    ]


def insert_rows(instances: list[Model], *, using: str = "default") -> None:
    """``bulk_create(instances)`` for new instances of one model whose primary keys are set, with
    the INSERT compiled once per model, number of rows and thread: each field's ``pre_save`` runs,
    the instances are then marked as saved in ``using``, a duplicate key raises the database's
    ``IntegrityError``. No model signals are sent (``bulk_create`` sends none either). Values that
    are expressions, rows without their key and models with parents (one row in several tables,
    which ``bulk_create`` refuses) go through ``bulk_create`` itself."""
    if not instances:
        return
    model = type(instances[0])
    fields = [field for field in model._meta.concrete_fields if not field.generated]
    if (
        model._meta.parents
        or any(instance.pk is None for instance in instances)
        or any(
            hasattr(getattr(instance, field.attname), "resolve_expression")
            for instance in instances
            for field in fields
        )
    ):
        _send_pending(connections[using])
        model._default_manager.using(using).bulk_create(instances)
        return
    for instance in instances:
        instance._prepare_related_fields_for_save(operation_name="bulk_create")
    rows = _inserted(instances, fields, connections[using])
    compiled, connection = _compiled(
        using,
        (model, "insert", len(instances)),
        lambda connection: _CompiledInsert(instances, fields, rows, connection),
    )
    if not compiled.usable:
        _send_pending(connection)
        model._default_manager.using(using).bulk_create(instances)
        return
    compiled.run(model._meta.db_table, rows, connection)
    for instance in instances:
        instance._state.adding = False
        instance._state.db = using


# --- one round trip ------------------------------------------------------------------------------


class _Statement(NamedTuple):
    """An UPDATE or INSERT to send: its table, SQL and parameters, and for an UPDATE how many rows
    it must change (None for an INSERT, which writes every row or raises)."""

    table: str
    sql: str
    params: list
    rows: int | None = None


# The backends that take several statements in one round trip, and data-modifying WITH clauses.
_BATCHING_VENDORS = frozenset({"postgresql", "cockroachdb"})


def batches_statements(using: str = "default") -> bool:
    """Whether the database behind ``using`` takes several statements in one round trip (and
    data-modifying ``WITH`` clauses): PostgreSQL and CockroachDB."""
    return connections[using].vendor in _BATCHING_VENDORS


def _pending(connection) -> list[_Statement] | None:
    batches = getattr(_per_thread, "batches", None)
    if not batches:
        return None
    batch = batches.get(connection.alias)
    return batch[1] if batch is not None and batch[0] is connection else None


def _send(connection, statement: _Statement) -> None:
    pending = _pending(connection)
    if pending is not None:
        pending.append(statement)
    else:
        _execute(connection, [statement])


def _send_pending(connection) -> None:
    """Send what waits (before a statement of the ORM's own, which must come after it)."""
    pending = _pending(connection)
    if pending:
        statements = pending.copy()
        pending.clear()
        _execute(connection, statements)


@contextmanager
def one_round_trip(*, using: str = "default"):
    """The updates and inserts of ``update_rows`` and ``insert_rows`` run inside this block wait,
    then are sent together when it ends: in one round trip on PostgreSQL and CockroachDB, in order
    and each checked as when sent alone (a missing row raises ``DatabaseError``, a duplicate key
    ``IntegrityError``). On other backends each is sent at once. A block left by an exception
    sends nothing. Reads and the ORM's own statements are not held: the ORM's are sent after what
    waits.

    They leave as one statement per run of statements that each touch another table (CockroachDB
    refuses two changes of one table in one statement). A run with an UPDATE is one ``WITH``
    statement (``WITH s0 AS (UPDATE ... RETURNING 1), ... SELECT`` the count of each): its parts
    see the rows as they were before it, so an INSERT in it must not need a row that another part
    of it inserts. A run of INSERTs only (a new call, its participants, its first events) is its
    statements one after another, in one string."""
    connection = connections[using]
    if not batches_statements(using) or _pending(connection) is not None:
        yield  # one at a time; or a block inside another, whose end sends it all
        return
    batches = getattr(_per_thread, "batches", None)
    if batches is None:
        batches = _per_thread.batches = {}
    pending: list[_Statement] = []
    batches[using] = (connection, pending)
    try:
        yield
        statements = pending.copy()
    finally:
        del batches[using]
    _execute(connection, statements)


def statements_in(sql: str) -> list[str]:
    """The statements of one round trip's SQL as ``one_round_trip`` and a ``CompiledRead`` with a
    lock send them, for counting what was sent (the benchmark, the tests): the SQL as Django logs
    it, its values written in, is split at each "; " (a value holding one splits too)."""
    if sql.startswith("WITH s0 AS ("):
        return re.findall(r"s\d+ AS \((.*?) RETURNING 1\)", sql)
    return sql.split("; ")


def _execute(connection, statements: list[_Statement]) -> None:
    """Send ``statements`` in as few round trips as it can: one per run of statements that each
    touch another table (CockroachDB refuses two changes of one table in one statement)."""
    runs: list[list[_Statement]] = []
    for statement in statements:
        if not runs or any(other.table == statement.table for other in runs[-1]):
            runs.append([])
        runs[-1].append(statement)
    with connection.cursor() as cursor:
        for run in runs:
            if len(run) == 1:
                cursor.execute(run[0].sql, run[0].params)
                counts = [cursor.rowcount]
            elif all(statement.rows is None for statement in run):
                cursor.execute("; ".join(s.sql for s in run), [p for s in run for p in s.params])
                counts = [None] * len(run)
            else:
                parts = ", ".join(f"s{i} AS ({s.sql} RETURNING 1)" for i, s in enumerate(run))
                selects = ", ".join(f"(SELECT count(*) FROM s{i})" for i in range(len(run)))  # noqa: S608 (no values)
                sql = f"WITH {parts} SELECT {selects}"
                cursor.execute(sql, [p for s in run for p in s.params])
                counts = list(cursor.fetchone())
            for statement, count in zip(run, counts, strict=True):
                if statement.rows is not None and count != statement.rows:
                    raise DatabaseError("Save with update_fields did not affect any rows.")  # as the ORM says
