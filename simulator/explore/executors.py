"""Where a study's tasks run: in this process, on local worker processes, or on a Dask cluster.

Everything goes through a ``concurrent.futures.Executor``. Work is cut into batches (one task each,
sized to take at least ~0.1 s so scheduling overhead stays small) and results come back in the order
of the inputs, whatever order the tasks finish in: a study's output never depends on the executor.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

from simulator.errors import ConfigError

TARGET_TASK_S = 0.1     # seconds a task should take at least (issue 8)


class InlineExecutor(Executor):
    """Runs each task at submission, in this process (one worker, no pickling, easy to debug)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future, like a pool
            if isinstance(exc, KeyboardInterrupt):
                raise
            future.set_exception(exc)
        return future


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the main process, which cancels the study and keeps its file."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_workers() -> int:
    return os.cpu_count() or 1


def _dask_executor(address: str, timeout_s: float):
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError("a Dask scheduler needs the optional `dask` extra, which is not installed",
                          source="--scheduler", value=address,
                          expected="pip install 'trainsim[dask]' (dask[distributed]) on this machine and the workers") from None
    try:
        client = Client(address, timeout=f"{timeout_s}s")
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"cannot reach the Dask scheduler ({exc})", source="--scheduler", value=address,
                          expected="the address of a running scheduler, e.g. tcp://head:8786") from None
    return client


@contextmanager
def executor_for(workers: int | None = None, scheduler: str | None = None,
                 connect_timeout_s: float = 10.0) -> Iterator[Executor]:
    """An Executor for ``--workers N`` (1: in this process) or ``--scheduler tcp://host:port`` (Dask)."""
    if scheduler:
        client = _dask_executor(scheduler, connect_timeout_s)
        try:
            yield client.get_executor(pure=False)
        finally:
            client.close()
        return
    n = workers or default_workers()
    if n <= 1:
        yield InlineExecutor()
        return
    # fork (where there is one) is fast and needs no `if __name__ == "__main__"` guard in scripts;
    # every worker is started here, before any progress-bar thread exists in this process
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context(method), initializer=_ignore_sigint)
    try:
        for f in [pool.submit(os.getpid) for _ in range(n)]:
            f.result()
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        pool.shutdown(wait=True)


def worker_count(executor: Executor, default: int = 1) -> int:
    """How many tasks the executor runs at once (best effort; used to size batches)."""
    if isinstance(executor, InlineExecutor):
        return 1
    n = getattr(executor, "_max_workers", None)
    if n:
        return int(n)
    client = getattr(executor, "_client", None)
    if client is not None:
        try:
            return max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))
        except Exception:  # noqa: BLE001 - a scheduler that cannot say: fall back
            return default
    return default


def batch_size(seconds_per_item: float, n_items: int, workers: int) -> int:
    """Items per task: enough for TARGET_TASK_S, but no more than an even share per worker."""
    need = math.ceil(TARGET_TASK_S / max(seconds_per_item, 1e-6))
    share = max(1, math.ceil(n_items / max(workers, 1)))
    return max(1, min(need, share))


def timed(fn: Callable, *args):
    """(fn(*args), seconds)."""
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def map_ordered(executor: Executor, fn: Callable, common, items: Sequence, size: int,
                progress: Callable[[int], None] | None = None, window: int | None = None) -> Iterator:
    """Yield ``fn(common, batch)``'s results item by item, in the order of ``items``.

    Batches of ``size`` items are submitted ``window`` at a time (default: two per worker) and their
    results released as soon as every earlier batch is done, so a consumer can stream them to a file.
    ``progress(k)`` is told of each batch of k items finishing, in completion order. Leaving early
    (an exception, Ctrl-C, or closing the generator) cancels what has not started.
    """
    batches = [list(items[i:i + size]) for i in range(0, len(items), size)]
    window = window or 2 * worker_count(executor)
    futures: dict[Future, int] = {}
    done: dict[int, list] = {}
    submitted = nxt = 0
    try:
        while nxt < len(batches):
            while submitted < len(batches) and len(futures) < window:
                futures[executor.submit(fn, common, batches[submitted])] = submitted
                submitted += 1
            finished, _ = wait(list(futures), return_when=FIRST_COMPLETED)
            for f in finished:
                i = futures.pop(f)
                done[i] = f.result()
                if progress:
                    progress(len(batches[i]))
            while nxt in done:
                yield from done.pop(nxt)
                nxt += 1
    finally:
        for f in futures:
            f.cancel()
