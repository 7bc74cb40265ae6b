"""The dispatcher's laws under random steps: submit, place, start, finish, fail, cancel,
lose and drain workers; and every task's events follow its life (tests/lifecycle.py).

A hypothesis state machine drives a real ``Dispatcher`` through fake links (the test plays
each worker).  After every step: no handle is resolved twice, no core is in two live
allocations, and each worker's free capacity plus what its running tasks hold is its total.
At the end, once everything ran out: every handle is resolved exactly once, and every
capacity and pool is back to its fresh self.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import outcome
import trio
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from grainlike import Cores, Counter, Memory, Resources, parse_resources
from grainlike.dispatch import Dispatcher, DispatcherConfig, Event, TaskHandle
from grainlike.dispatch._records import Task, TaskState, runs_now
from grainlike.resource import as_resources
from grainlike.wire import Call

from ..lifecycle import check_lifecycles

CAPACITIES = {"a": "cores:2,mem:4G", "b": "cores:4,mem:8G", "p": "cores:2,mem:4G"}
REQUESTS = [
    as_resources(Cores(1)),
    Cores(2) & Memory(1),
    Cores(1) & Counter("license", 1),
    as_resources(Memory(2)),
    as_resources(Cores(3)),
]


def never_run() -> None:
    """The work of tasks that only the test's fake workers 'run'."""


@attrs.define
class FakeLink:
    pipeline: int = 0
    cancelled: list[int] = attrs.field(factory=list)
    drained: list[str] = attrs.field(factory=list)

    def run_tasks(self, tasks: Sequence[Task]) -> None:
        pass

    def cancel_task(self, task_id: int) -> None:
        self.cancelled.append(task_id)

    def drain(self, reason: str) -> None:
        self.drained.append(reason)


class DispatcherLaws(RuleBasedStateMachine):
    handles = Bundle("handles")

    def __init__(self) -> None:
        super().__init__()
        pools = Resources(Counter("license", 2))
        self.dispatcher = Dispatcher(DispatcherConfig(unsatisfiable_grace=60, pools=pools))
        self.fresh_pools = pools.stat()
        self.resolved: dict[int, int] = {}
        self.inputs: dict[int, list[Task]] = {}
        self.all: list[TaskHandle] = []
        self.links: dict[str, FakeLink] = {}
        self.events: list[Event] = []
        self.dispatcher.events.subscribe(self.events.append)
        for worker in CAPACITIES:
            self._attach(worker)

    def _attach(self, worker: str) -> None:
        link = FakeLink(pipeline=4 if worker == "p" else 0)
        self.links[worker] = link
        capacity = parse_resources(CAPACITIES[worker], capacity=True)
        self.dispatcher.add_worker(worker, capacity, link)

    def _running(self) -> list[Task]:
        return [t for w in self.dispatcher.worker_states() for t in w.running.values()]

    # -- steps --------------------------------------------------------------------------------

    @rule(target=handles, request=st.sampled_from(REQUESTS), retries=st.integers(0, 1))
    def submit(self, request: Resources, retries: int) -> TaskHandle:
        """Submitting queues a task and hands back its handle."""
        handle = self.dispatcher.submit(request, Call(never_run), retries=retries)
        self.resolved[handle.id] = 0

        def count(task: Task) -> None:
            self.resolved[task.id] += 1

        handle.task.listeners = [count]
        self.all.append(handle)
        return handle

    @rule(target=handles, inputs=st.lists(handles, min_size=1, max_size=3))
    def submit_dependent(self, inputs: list[TaskHandle]) -> TaskHandle:
        """A call that takes handles waits for their tasks, and runs with their values."""
        call = Call(never_run, (inputs[0], [handle for handle in inputs[1:]]))
        handle = self.dispatcher.submit(as_resources(Cores(1)), call)
        self.inputs[handle.id] = [input.task for input in inputs]
        self.resolved[handle.id] = int(handle.done())  # an input had already failed

        def count(task: Task) -> None:
            self.resolved[task.id] += 1

        handle.task.listeners = [count]
        self.all.append(handle)
        return handle

    @rule()
    def place(self) -> None:
        """A placement pass places what fits, never more than fits."""
        self.dispatcher._place()

    @rule(data=st.data())
    def begin(self, data: st.DataObject) -> None:
        """A worker's report that a task began is taken only from the worker that holds it."""
        running = [t for t in self._running() if not t.began and runs_now(t)]
        if running:
            task = data.draw(st.sampled_from(running))
            assert task.worker is not None
            self.dispatcher.task_started(task.worker, task.id, task.attempt)

    @rule(data=st.data(), ok=st.booleans())
    def finish(self, data: st.DataObject, ok: bool) -> None:
        """A task that ends on its worker frees what it held (unless its chain goes on)."""
        running = [t for t in self._running() if runs_now(t)]
        if running:
            task = data.draw(st.sampled_from(running))
            assert task.worker is not None
            result: outcome.Outcome[object] = (
                outcome.Value(task.id) if ok else outcome.Error(OSError("failed"))
            )
            self.dispatcher.task_done(task.worker, task.id, task.attempt, result, 0.001)

    @rule(data=st.data())
    def stale_report(self, data: st.DataObject) -> None:
        """A report about an attempt that moved on is ignored."""
        running = self._running()
        if running:
            task = data.draw(st.sampled_from(running))
            assert task.worker is not None
            before = task.result
            self.dispatcher.task_done(task.worker, task.id, task.attempt - 1, outcome.Value(0), 1)
            assert task.result is before

    @rule(handle=handles)
    def cancel(self, handle: TaskHandle) -> None:
        """Cancelling resolves the task at once (once), whatever state it is in."""
        handle.cancel()
        assert handle.done()

    @rule(worker=st.sampled_from(sorted(CAPACITIES)))
    def lose(self, worker: str) -> None:
        """A lost worker's tasks go back to the queue or fail; none is lost silently."""
        self.dispatcher.remove_worker(worker, "lost in the test")

    @rule(worker=st.sampled_from(sorted(CAPACITIES)))
    def rejoin(self, worker: str) -> None:
        """A worker that left may come back as a fresh one."""
        if worker not in self.dispatcher.worker_ids():
            self._attach(worker)

    @precondition(lambda self: len(self.dispatcher.worker_ids()) > 1)
    @rule(worker=st.sampled_from(sorted(CAPACITIES)))
    def drain(self, worker: str) -> None:
        """A draining worker takes nothing new; it leaves once idle."""
        self.dispatcher.drain_worker(worker, "drained in the test")
        state = next((w for w in self.dispatcher.worker_states() if w.id == worker), None)
        if state is not None and not state.running:
            self.dispatcher.remove_worker(worker, "drained", lost=False)

    # -- laws ---------------------------------------------------------------------------------

    @invariant()
    def each_handle_is_resolved_at_most_once(self) -> None:
        assert all(count <= 1 for count in self.resolved.values())

    @invariant()
    def no_core_is_given_twice(self) -> None:
        for worker in self.dispatcher.worker_states():
            seen: list[int] = []
            allocations = {id(t.allocation): t.allocation for t in worker.running.values()}
            for allocation in allocations.values():
                assert allocation is not None
                seen.extend(allocation.c if allocation.get(Cores) is not None else [])
            assert len(seen) == len(set(seen))

    @invariant()
    def capacity_is_conserved(self) -> None:
        for worker in self.dispatcher.worker_states():
            held = {id(t.allocation): t.allocation for t in worker.running.values()}
            cores = sum(a.N for a in held.values() if a is not None and a.get(Cores) is not None)
            free, total = worker.capacity.stat()["cores"]
            assert free + cores == total

    @invariant()
    def a_task_is_waiting_queued_running_or_resolved(self) -> None:
        for handle in self.all:
            task = handle.task
            assert (
                task.state in (TaskState.QUEUED, TaskState.RUNNING)
                or task.result is not None
                or (task.state is TaskState.WAITING and task.id in self.inputs)
            )

    @invariant()
    def a_dependent_runs_only_after_its_inputs_succeeded(self) -> None:
        for handle in self.all:
            task, inputs = handle.task, self.inputs.get(handle.id)
            if inputs is None:
                continue
            if task.attempt > 0 and task.state is TaskState.RUNNING:
                values = [i.result.value for i in inputs if isinstance(i.result, outcome.Value)]
                assert len(values) == len(inputs)
                assert isinstance(task.work, Call)
                assert task.work.args == (values[0], values[1:])
            if any(isinstance(i.result, outcome.Error) for i in inputs):
                assert task.result is not None
            if task.state is TaskState.WAITING:
                assert any(i.result is None for i in inputs)

    def teardown(self) -> None:
        for _ in range(10_000):
            # As real workers do, a draining worker leaves once idle; every worker comes back,
            # so that every request fits somewhere.
            for state in self.dispatcher.worker_states():
                if not state.accepting and not state.running:
                    self.dispatcher.remove_worker(state.id, "drained", lost=False)
            for worker in CAPACITIES:
                if worker not in self.dispatcher.worker_ids():
                    self._attach(worker)
            self.dispatcher._place()
            running = [t for t in self._running() if runs_now(t)]
            if not running and not self.dispatcher.queued():
                break
            for task in running:
                assert task.worker is not None
                self.dispatcher.task_done(task.worker, task.id, task.attempt, outcome.Value(1), 0)
        assert self.dispatcher.queued() == 0
        assert sorted(self.resolved.values()) == [1] * len(self.resolved)
        for state in self.dispatcher.worker_states():
            fresh = parse_resources(CAPACITIES[state.id], capacity=True).stat()
            assert state.capacity.stat() == fresh
        assert self.dispatcher._pools.capacity.stat() == self.fresh_pools
        lifecycles = check_lifecycles(self.events)
        assert sorted(lifecycles) == sorted(self.resolved)


async def test_the_dispatchers_laws_hold_under_random_steps() -> None:
    """Every handle resolves exactly once, no core is given twice, and capacity is conserved,
    whatever the order of submissions, reports, cancels, losses and drains."""
    # The rules are synchronous; they run inside this trio task, so the dispatcher can read
    # trio's clock and make its events.
    await trio.lowlevel.checkpoint()
    run_state_machine_as_test(
        DispatcherLaws, settings=settings(max_examples=150, stateful_step_count=40, deadline=None)
    )
