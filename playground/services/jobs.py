"""Long work that a person can stop: one job per (kind, session) at a time, with a stop flag, in a registry
that forgets a job as soon as it ends.

    jobs = JobRegistry("sampling")
    jobs.prepare(session)            # when the button is pressed, before the work queues (clears an old Stop)
    with jobs.run(session) as job:   # when the work starts; JobBusy if this session already runs one
        for ...:
            if job.stop_requested(): break
    jobs.request_stop(session)       # from another request: the work stops at its next check

A Stop pressed while the work still waits in the queue is kept, so the work stops as soon as it starts.
:meth:`JobRegistry.run_in_thread` also owns a worker thread, for work (training) that reports events while a viewer
polls them. The flag is a file (:class:`StopFile`), so work that runs in another process sees it too: on a ZeroGPU
Space, services.gpu runs GPU work in a forked process, which would never see a threading.Event set after the fork.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

STALE_SECONDS = 3600.0  # a prepared job that never started is forgotten after this


class JobBusy(RuntimeError):
    """This session already runs a job of this kind."""


@dataclass(frozen=True)
class StopFile:
    """A stop flag that another process can read: set means the file exists. Picklable (a path), so it can be
    handed to work that ZeroGPU runs in a forked process."""

    path: str

    def __call__(self) -> bool:
        return os.path.exists(self.path)

    def set(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        Path(self.path).touch()

    def clear(self) -> None:
        Path(self.path).unlink(missing_ok=True)


def _new_stop_file() -> StopFile:
    return StopFile(str(Path(tempfile.gettempdir()) / "playground-stops" / uuid.uuid4().hex))


@dataclass
class Job:
    running: bool = False
    created: float = field(default_factory=time.monotonic)
    events: list = field(default_factory=list)  # what the work reports, newest last (run_in_thread)
    stop_requested: StopFile = field(default_factory=_new_stop_file)  # the work polls it: stop_requested()

    def request_stop(self) -> None:
        self.stop_requested.set()


class JobRegistry:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def prepare(self, key: str) -> None:
        """A fresh job for ``key`` unless one is running; forgets prepared jobs that never started."""
        with self._lock:
            now = time.monotonic()
            for other in [k for k, j in self._jobs.items() if not j.running and now - j.created > STALE_SECONDS]:
                del self._jobs[other]
            if key not in self._jobs or not self._jobs[key].running:
                self._jobs[key] = Job()

    @contextlib.contextmanager
    def run(self, key: str) -> Iterator[Job]:
        """Mark ``key``'s job running for the duration of the block, then forget it."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.running:
                raise JobBusy(f"This session is already {self.kind}; stop it first.")
            if job is None:
                job = self._jobs[key] = Job()
            job.running = True
        try:
            yield job
        finally:
            job.stop_requested.clear()
            with self._lock:
                job.running = False
                if self._jobs.get(key) is job:
                    del self._jobs[key]

    def run_in_thread(self, key: str, work: Callable[[Job], object], poll_s: float = 1.0) -> Iterator[Job]:
        """Run ``work(job)`` in a worker thread as ``key``'s job and yield the job about every ``poll_s`` while it
        runs (``work`` appends to ``job.events`` and polls ``job.stop_requested()``).

        However the loop ends (the work finished, or the viewer went away and closed this generator), the work is
        asked to stop and joined, so whatever it saves is saved. An exception in the work is raised here.
        """
        with self.run(key) as job:
            failures: list[BaseException] = []

            def target() -> None:
                try:
                    work(job)
                except BaseException as error:  # handed to the viewer below
                    failures.append(error)

            # In the request's context, so what the work calls still knows the request (ZeroGPU's quota is per visitor).
            context = contextvars.copy_context()
            thread = threading.Thread(target=context.run, args=(target,), daemon=True, name=f"{self.kind}-{key}")
            thread.start()
            try:
                while thread.is_alive():
                    thread.join(timeout=poll_s)
                    if thread.is_alive():
                        yield job
            finally:
                job.request_stop()
                thread.join()
            if failures:
                raise failures[0]

    def request_stop(self, key: str) -> bool:
        """Ask ``key``'s job to stop; True if one is running or waiting to start."""
        with self._lock:
            job = self._jobs.get(key)
        if job is None:
            return False
        job.request_stop()
        return True

    def is_running(self, key: str) -> bool:
        with self._lock:
            job = self._jobs.get(key)
            return job is not None and job.running

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)
