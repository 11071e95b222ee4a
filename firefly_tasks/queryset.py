"""``TaskQuerySet``: finding tasks, and the only code that changes a task's state.

Every transition of ``firefly_tasks.states.TRANSITIONS`` is one method here, and each takes
its guard (the states a row must still be in) and its target from that table, so two
processes racing on one row can never both win. A transition of a running task is also
fenced by its ``attempt``: a consumer whose claim was taken over writes nothing. Attempt rows
are written here too, and nowhere else. Vendor SQL is the dialect's (``firefly_tasks.dialects``).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from firefly_tasks import states
from firefly_tasks.attempts import recovery_error, retry_delay
from firefly_tasks.conf import settings
from firefly_tasks.dialects import Claim, Completions, writing
from firefly_tasks.hooks import Hooks
from firefly_tasks.rollups import Tally
from firefly_tasks.rows import Completion, TaskRow, WorkerRow
from firefly_tasks.states import (
    AttemptOutcome,
    Event,
    Isolation,
    RunOutcome,
    source,
    sources,
    target,
)
from firefly_tasks.task_reads import attempt_model
from firefly_tasks.transactions import atomic_retried

CANCEL_NOTICE = "cancel"  # what a consumer's listener hears (firefly_tasks.cancellation)


class TaskQuerySet(Hooks):
    # Scheduling -------------------------------------------------------------------------------

    def insert_calls(self, rows: list[Any], status: str | None = None) -> list[Any]:
        """Insert unsaved rows, as ``schedule()`` builds them, in ``status`` if given (a task
        that waits for others: ``firefly_tasks.dependencies``), and set their ids. One row is
        one ``INSERT``, its text built once per connection: compiling it through ``save()``
        costs more than the insert itself. No ``pre_save``/``post_save`` signals are sent:
        ``task_scheduled`` is Firefly's."""
        for row in rows if status else ():
            row.status = status
        return writing(self).insert_tasks(self.model, rows)

    # A consumer's transitions -----------------------------------------------------------------

    def claim(
        self,
        queues: Sequence[str],
        limit: int,
        worker_id: int | None = None,
        *,
        now: datetime.datetime | None = None,
    ) -> list[Any]:
        """Claim up to ``limit`` ready tasks from ``queues`` for ``worker_id``, in run order
        (``running``, ``attempt`` bumped, ``started`` stamped), in one short transaction."""
        if limit < 1 or not queues:
            return []
        ready, running = source(Event.CLAIM), target(Event.CLAIM)
        now = now or timezone.now()
        claim = Claim(list(queues), limit, worker_id, now, ready, running, states.ENGINE_VERSION)
        queue_model = self.model._meta.apps.get_model("firefly_tasks", "QueueModel")
        if not writing(self).anything_ready(self.model, claim):
            return []
        # Rows past a limit are undone in the claim's transaction. On MariaDB, claims of one
        # full key can deadlock on the ready index's entries: the loser claims again.
        rows = atomic_retried(self.db, lambda: self._claim_within_limits(claim, queue_model))
        rows.sort(key=lambda row: (-row.priority, row.not_before, row.pk))
        return rows

    def claim_row(self, row: TaskRow) -> bool:
        """Claim one given ready row with no worker, to run it in this process now."""
        now = timezone.now()
        claimed = self.filter(pk=row.pk)._move(Event.CLAIM, attempt=F("attempt") + 1, started=now)
        return bool(claimed)

    def start_alone(self, row: TaskRow) -> bool:
        """Record that a task which must run alone starts now: a crash from now on is
        charged to it (see ``Isolation``). False if the row is no longer this attempt's."""
        if started := self._attempt_of(row)._move(Event.START, isolation=Isolation.STARTED_ALONE):
            row.isolation = Isolation.STARTED_ALONE
        return bool(started)

    def complete(
        self, done: list[Completion], worker: WorkerRow | None, tally: Tally | None = None
    ) -> int:
        """Mark ``done`` completed where each row still runs the attempt that finished, insert
        their attempts, add them (and what ``tally`` holds: the failures of the same group
        commit) to the rollups, and return how many rows were completed. Fewer than
        ``len(done)`` means some row moved on to another attempt (it was recovered and
        claimed again): no attempt is inserted, and the caller must roll back."""
        tally = Tally() if tally is None else tally
        if not done:
            tally.write(self.db, worker)
            return 0
        finished = done[-1].finished
        tally.completed(done)
        columns = Completions(
            ids=[d.row.pk for d in done],
            attempts=[d.row.attempt for d in done],
            returned=[d.returned_data for d in done],
            previews=[d.preview for d in done],
            started=[d.row.started for d in done],
            finished=[d.finished for d in done],
            worker_id=worker.pk if worker else None,
            worker_name=worker.name if worker else "",
            running=source(Event.COMPLETE),
            completed=target(Event.COMPLETE),
            outcome=AttemptOutcome.COMPLETED,
            rollup=tally.take(worker),
        )
        attempts = attempt_model(self.model)
        updated = writing(self).complete(self.model, attempts, columns)
        if updated == len(done):
            self._free_slots(d.row for d in done)
            self._finished((d.row for d in done), succeeded=True)
            for d in done:
                d.row.status, d.row.completed = target(Event.COMPLETE), finished
                d.row.returned_data = d.returned_data
        return updated

    def fail_or_retry(
        self,
        row: TaskRow,
        worker: WorkerRow | None,
        error: str,
        tb: str,
        *,
        retryable: bool,
        tally: Tally | None = None,
        outcome: AttemptOutcome = AttemptOutcome.FAILED,
    ) -> RunOutcome:
        """A failed attempt: :meth:`retry` if ``retryable`` and the task has retries left,
        else :meth:`fail`. ``FENCED`` when the row is no longer this attempt's.

        It is added to the rollups now, or to ``tally`` when given: a group commit writes its
        failures with its completions. ``outcome`` is the attempt's: ``FAILED``, or
        ``TIMED_OUT`` for an attempt that ran past its timeout."""
        if retryable and row.retry_attempts < row.max_retries:
            retried = self.retry(row, worker, error, tb, tally=tally, outcome=outcome)
            return RunOutcome.RETRY if retried else RunOutcome.FENCED
        failed = self.fail(row, worker, error, tb, tally=tally, outcome=outcome)
        return RunOutcome.FAILED if failed else RunOutcome.FENCED

    def retry(
        self,
        row: TaskRow,
        worker: WorkerRow | None,
        error: str,
        tb: str,
        *,
        tally: Tally | None = None,
        outcome: AttemptOutcome = AttemptOutcome.FAILED,
    ) -> bool:
        """A failed attempt, and the task back to the queue after its retry delay (inside the
        caller's transaction)."""
        now = timezone.now()
        updated = self._attempt_of(row)._move(
            Event.RETRY,
            not_before=now + retry_delay(row),
            retry_attempts=F("retry_attempts") + 1,
            worker=None,
            # It ran to its end without taking its consumer down: it may share a batch again.
            isolation=Isolation.BATCHED,
            error=error,
            traceback=tb,
        )
        attempt = (outcome, now, error, tb)
        return self._failed_attempt(updated, row, worker, attempt, tally, retried=True)

    def snooze(
        self, row: TaskRow, worker: WorkerRow | None, seconds: float, *, tally: Tally | None = None
    ) -> RunOutcome:
        """The task asked to run again ``seconds`` from now (``Snooze``): back to the queue
        with an attempt ``snoozed``, no retry spent; past ``FIREFLY_MAX_SNOOZES`` it fails."""
        limit = settings.MAX_SNOOZES
        if row.snoozes >= limit:
            error = (
                f"SnoozeLimit: the task snoozed {row.snoozes + 1} times "
                f"(FIREFLY_MAX_SNOOZES = {limit})"
            )
            failed = self.fail(row, worker, error, "", tally=tally)
            return RunOutcome.FAILED if failed else RunOutcome.FENCED
        now = timezone.now()
        moved = self._attempt_of(row)._move(
            Event.SNOOZE,
            not_before=now + datetime.timedelta(seconds=seconds),
            snoozes=F("snoozes") + 1,
            worker=None,
            isolation=Isolation.BATCHED,
        )
        if not moved:
            return RunOutcome.FENCED
        self._free_slots([row])
        note = f"Snooze: runs again in {seconds:g} s"
        self._add_attempt(row, worker, AttemptOutcome.SNOOZED, now, error=note)
        return RunOutcome.SNOOZED

    def fail(
        self,
        row: TaskRow,
        worker: WorkerRow | None,
        error: str,
        tb: str,
        *,
        tally: Tally | None = None,
        outcome: AttemptOutcome = AttemptOutcome.FAILED,
    ) -> bool:
        """A failed attempt, and the task failed for good (inside the caller's transaction)."""
        now = timezone.now()
        updated = self._attempt_of(row)._move(Event.FAIL, failed=now, error=error, traceback=tb)
        attempt = (outcome, now, error, tb)
        return self._failed_attempt(updated, row, worker, attempt, tally, retried=False)

    def _failed_attempt(
        self,
        updated: int,
        row: TaskRow,
        worker: WorkerRow | None,
        attempt: tuple[AttemptOutcome, datetime.datetime, str, str],
        tally: Tally | None,
        *,
        retried: bool,
    ) -> bool:
        if not updated:
            return False
        outcome, now, error, tb = attempt
        self._free_slots([row])
        self._add_attempt(row, worker, outcome, now, error=error, tb=tb)
        row.error, row.traceback = error, tb
        own = Tally() if tally is None else tally
        own.failed(row, now, retried=retried)
        if tally is None:
            own.write(self.db, worker)
        if not retried:  # last, as a completion's: the tasks waiting for it are locked last
            self._finished([row], succeeded=False)
        return True

    def release(self, rows: Sequence[TaskRow]) -> int:
        """Claimed tasks that never started back to ``created``, as if never claimed; each only
        while it holds its claim (attempt and stamp): a second release takes no later claim."""
        released = [r for r in rows if self._attempt_of(r).filter(started=r.started)._unclaim()]
        self._free_slots(released)
        return len(released)

    def release_claim(self, worker_id: int, stamp: datetime.datetime) -> int:
        """Undo a claim whose reply was lost with the connection (it may have committed): a
        claim stamps ``started`` with its own time, which identifies the rows it took."""
        taken = self.filter(worker_id=worker_id, started=stamp)
        rows = list(
            taken.exclude(concurrency_key=None).only("concurrency_key", "concurrency_limit")
        )
        released = taken._unclaim()
        self._free_slots(rows)
        return released

    def _unclaim(self) -> int:
        return self._move(Event.RELEASE, attempt=F("attempt") - 1, worker=None, started=None)

    def recover(
        self,
        row: TaskRow,
        worker: WorkerRow | None,
        outcome: str,
        *,
        error: str = "",
        orphan: bool = False,
        charge: bool = False,
        restarted: bool = False,
    ) -> bool:
        """Record an attempt that never finished and requeue the task, to run alone next time.
        ``lost`` (its worker died) is charged only to a task proven to run alone
        (``Isolation.STARTED_ALONE``) or with ``charge`` (a pool child died running it), never
        if ``restarted`` (its worker fell silent with the database); else it is ``released``.
        ``interrupted`` is never charged. Charged more than ``FIREFLY_MAX_LOST_ATTEMPTS`` times,
        a task fails as poison. False, writing nothing, if the task finished or moved on (to
        another worker too: one given back unrun and taken again has the same attempt)."""
        now = timezone.now()
        lost = outcome == AttemptOutcome.LOST
        charged = lost and not restarted and (charge or row.isolation == Isolation.STARTED_ALONE)
        if lost and not charged:
            outcome = AttemptOutcome.RELEASED
        error = error or recovery_error(outcome, charged, orphan, restarted)
        # A lost task runs alone next time; an interrupted one keeps running alone if it did.
        alone = outcome != AttemptOutcome.INTERRUPTED or row.isolation != Isolation.BATCHED
        changes: dict[str, Any] = {
            "worker": None,
            "error": error,
            "traceback": "",
            "isolation": Isolation.ALONE if alone else Isolation.BATCHED,
        }
        if charged:
            changes["lost_attempts"] = F("lost_attempts") + 1
        poison = charged and row.lost_attempts + 1 > settings.MAX_LOST_ATTEMPTS
        claim = self._attempt_of(row).filter(worker_id=row.worker_id)
        with transaction.atomic(using=self.db):
            if poison:
                changes["error"] = error = (
                    f"PoisonTask: lost with its worker {row.lost_attempts + 1} times while "
                    f"running alone (FIREFLY_MAX_LOST_ATTEMPTS = {settings.MAX_LOST_ATTEMPTS}); "
                    "it may be crashing the consumer, so it is not run again"
                )
                updated = claim._move(Event.FAIL, failed=now, **changes)
            else:
                updated = claim._move(Event.RECOVER, not_before=now, **changes)
            if not updated:
                return False
            self._free_slots([row])
            if poison:
                self._finished([row], succeeded=False)
            self._add_attempt(row, worker, outcome, now, error=error)
        return True

    # An operator's transitions ----------------------------------------------------------------

    def requeue(self, *, skip_held: bool = False) -> int:
        """Failed or cancelled tasks back to ``created``, to run now; attempts are kept. A
        task takes its unique key again: where an unfinished task holds it, nothing is
        requeued (``UniqueKeyHeldError``), or with ``skip_held`` those tasks are left alone."""
        changes: dict[str, Any] = {"not_before": timezone.now(), "worker": None, "error": ""}
        changes |= {"traceback": "", "failed": None, "cancelled": None}
        changes |= {"retry_attempts": 0, "lost_attempts": 0, "snoozes": 0}
        with transaction.atomic(using=self.db):
            waited_for = self._waited_for(sources(Event.REQUEUE))
            requeued = self.filter(unique_key__isnull=True)._move(Event.REQUEUE, **changes)
            requeued += self._requeue_keyed(changes, skip_held=skip_held)
            self._count_again(waited_for)
            return requeued

    def cancel(self, *, running: bool = False) -> int:
        """Tasks still waiting to run become ``cancelled``; running tasks are left alone, unless
        ``running``: then they are cancelled too, their attempt recorded ``cancelled``, and
        their workers stop them (docs/timeouts.md). Returns how many were cancelled."""
        cancelled = self._cancel_unstarted(cancelled=timezone.now())
        if running:
            running_now = self.filter(status__in=sources(Event.ABORT)).select_related("worker")
            stopped = sum(self._abort(row, row.worker) for row in running_now)
            if stopped:
                writing(self).notify(CANCEL_NOTICE)  # their consumers stop them at once
            cancelled += stopped
        return cancelled

    def _abort(self, row: TaskRow, worker: WorkerRow | None) -> bool:
        """Cancel the running attempt ``row``: whichever commits first, this or the attempt's
        own end, wins, and the other finds the row moved on (the attempt fence)."""
        now = timezone.now()
        with transaction.atomic(using=self.db):
            if not self._attempt_of(row)._move(Event.ABORT, cancelled=now):
                return False
            self._free_slots([row])
            self._finished([row], succeeded=False)
            error = "Cancelled: cancelled while it ran, at an operator's request"
            self._add_attempt(row, worker, AttemptOutcome.CANCELLED, now, error=error)
        return True

    def rename(self, func_name: str) -> int:
        """Point tasks that are not running at another task name (e.g. after a move)."""
        return self.filter(status__in=sources(Event.RENAME)).update(func_name=func_name)

    # The one way a state changes --------------------------------------------------------------

    def _move(self, event: Event, **changes: Any) -> int:
        """Move the rows still in ``event``'s source states to its target, with ``changes``."""
        return self.filter(status__in=sources(event)).update(status=target(event), **changes)

    def _attempt_of(self, row: TaskRow) -> TaskQuerySet:
        """``row`` only while it is still the attempt this process holds: the fence."""
        return self.filter(pk=row.pk, attempt=row.attempt)

    def _add_attempt(
        self,
        row: TaskRow,
        worker: WorkerRow | None,
        outcome: str,
        finished: datetime.datetime,
        *,
        error: str = "",
        tb: str = "",
    ) -> None:
        attempt_model(self.model)._default_manager.using(self.db).create(
            task_id=row.pk,
            number=row.attempt,
            worker_id=worker.pk if worker else None,
            worker_name=worker.name if worker else "",
            started=row.started,
            finished=finished,
            outcome=outcome,
            error=error,
            traceback=tb,
        )
