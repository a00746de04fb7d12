"""Timer triggers: NCRONTAB schedules (six fields, seconds first), ``%SETTING%`` schedules, ``run_on_startup``.

Why croniter with ``second_at_beginning``: NCRONTAB is cron with a leading seconds field; croniter parses the
same grammar when told the seconds come first. A TimeSpan (``hh:mm:ss``), which Azure accepts on dedicated
plans, runs at that interval. Like the Functions host, invocations of one timer never overlap: occurrences
missed while the previous invocation ran collapse into one invocation with ``past_due`` set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from azure.functions.timer import TimerRequest
from croniter import croniter

from devhost.bindings import TIMER_TRIGGER, FunctionSpec, InvocationFailed, Invoker, finish_tasks
from devhost.settings import ConfigError, resolve

log = logging.getLogger("devhost")

PAST_DUE_AFTER = timedelta(seconds=1)
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$")


@dataclass(frozen=True)
class Schedule:
    """A resolved schedule: an NCRONTAB expression or a fixed interval."""

    expression: str
    interval: timedelta | None = None

    def next_after(self, moment: datetime) -> datetime:
        if self.interval is not None:
            return moment + self.interval
        return croniter(self.expression, moment, second_at_beginning=True).get_next(datetime)

    def latest_until(self, moment: datetime) -> datetime:
        """The last occurrence at or before ``moment``."""
        if self.interval is not None:
            return moment
        return croniter(self.expression, moment + timedelta(seconds=1), second_at_beginning=True).get_prev(datetime)


def parse_schedule(raw: str, environ: MutableMapping[str, str] | None = None) -> Schedule:
    """Resolve ``%SETTING%`` references and parse; errors name the schedule (and setting) at fault."""
    expression = resolve(raw, environ, what="timer schedule").strip()
    shown = raw if raw == expression else f"{raw} (= {expression!r})"
    span = _TIMESPAN.match(expression)
    if span:
        days, hours, minutes, seconds = (int(part or 0) for part in span.groups())
        interval = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if interval <= timedelta(0):
            raise ConfigError(f"timer schedule {shown}: an interval must be longer than zero")
        return Schedule(expression, interval)
    fields = expression.split()
    if len(fields) != 6:
        raise ConfigError(
            f"timer schedule {shown}: NCRONTAB needs 6 fields "
            f"'{{second}} {{minute}} {{hour}} {{day}} {{month}} {{day-of-week}}', got {len(fields)}"
        )
    try:
        croniter(expression, datetime.now(UTC), second_at_beginning=True).get_next(datetime)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"timer schedule {shown}: {exc}") from None
    return Schedule(expression)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def timer_request(past_due: bool, last: datetime | None = None, following: datetime | None = None) -> TimerRequest:
    """The argument of a timer function, shaped like the worker's ``TimerRequest``."""
    now = datetime.now(UTC)
    status = {"Last": _iso(last), "Next": _iso(following), "LastUpdated": _iso(now)}
    return TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})


class Timers:
    """Runs every timer function of the app on its schedule until ``stop``."""

    def __init__(self, specs: list[FunctionSpec], invoker: Invoker) -> None:
        self._invoker = invoker
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.schedules: dict[str, Schedule] = {}
        self.errors: dict[str, str] = {}
        self._specs = [spec for spec in specs if spec.trigger_type == TIMER_TRIGGER]
        for spec in self._specs:
            try:
                self.schedules[spec.name] = parse_schedule(str(spec.trigger.get("schedule", "")))
            except ConfigError as exc:
                # As in Azure: the function with a bad schedule is disabled with an error, the others run.
                self.errors[spec.name] = str(exc)
                log.error("function %s is disabled: %s", spec.name, exc)

    def start(self) -> None:
        for spec in self._specs:
            schedule = self.schedules.get(spec.name)
            if schedule is not None:
                self._tasks.append(asyncio.create_task(self._run(spec, schedule), name=f"timer:{spec.name}"))

    async def _run(self, spec: FunctionSpec, schedule: Schedule) -> None:
        last: datetime | None = None
        if spec.trigger.get("runOnStartup"):
            await self._fire(spec, timer_request(False, None, schedule.next_after(datetime.now(UTC))), "startup")
        scheduled = schedule.next_after(datetime.now(UTC))
        while not await self._sleep_until(scheduled):
            following = schedule.next_after(scheduled)
            past_due = datetime.now(UTC) - scheduled > PAST_DUE_AFTER
            await self._fire(spec, timer_request(past_due, last, following), "timer")
            last = scheduled
            now = datetime.now(UTC)
            if following <= now:  # missed while running: one past-due invocation stands for all of them
                following = max(schedule.latest_until(now), following)
            scheduled = following

    async def _sleep_until(self, moment: datetime) -> bool:
        """Wait until ``moment``; True when the host is stopping instead."""
        delay = (moment - datetime.now(UTC)).total_seconds()
        if delay <= 0:
            return self._stopping.is_set()
        try:
            await asyncio.wait_for(self._stopping.wait(), delay)
        except TimeoutError:
            return False
        return True

    async def _fire(self, spec: FunctionSpec, request: TimerRequest, reason: str) -> None:
        with contextlib.suppress(InvocationFailed):  # logged by the invoker; the timer keeps its schedule
            await self._invoker.invoke(spec, {spec.arg_name: request}, reason)

    async def stop(self, grace: float) -> None:
        """Let running invocations finish (up to ``grace`` seconds), then cancel what is left."""
        self._stopping.set()
        await finish_tasks(self._tasks, grace)
