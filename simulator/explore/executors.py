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
import socket
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

from simulator.errors import ConfigError, clip, short
from simulator.limits import DASK_CONNECT_S, MAX_WORKERS_PER_CPU

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


def _watch_parent(parent: int, period_s: float = 0.5) -> None:
    """A worker thread: exit this process as soon as its parent is gone (SIGKILLed, crashed), so no
    orphan keeps computing or holds the caller's stdout open."""
    while True:
        time.sleep(period_s)
        if os.getppid() != parent:
            os._exit(1)


def _worker_init(parent: int, pdeathsig: bool = True) -> None:
    """Workers leave Ctrl-C to the main process, which cancels the study and keeps its file, and
    die with their parent: on Linux the kernel sends SIGKILL at once (PR_SET_PDEATHSIG); elsewhere,
    and as a fallback, a thread notices within half a second. (The kernel signal fires when the
    *thread* that forked exits, so it is armed only for pools made by the main thread.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if pdeathsig and sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)      # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:      # the parent died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="watch-parent").start()


def default_workers() -> int:
    return os.cpu_count() or 1


def check_workers(n: int) -> int:
    """``--workers`` at most MAX_WORKERS_PER_CPU x the CPUs: more only adds processes and memory."""
    most = MAX_WORKERS_PER_CPU * default_workers()
    if n > most:
        raise ConfigError("too many worker processes", source="--workers", value=n,
                          expected=f"at most {most} ({MAX_WORKERS_PER_CPU} x the {default_workers()} CPUs "
                                   "of this machine); use --scheduler for more machines")
    return n


def _parse_address(address: str) -> tuple[str, int] | None:
    """(host, port) of a tcp:// (or scheme-less host:port) scheduler address; None for other
    schemes (inproc://, ucx://, tls://: left to Dask)."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme != "tcp":
        return None
    host, colon, port = rest.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("not a scheduler address", source="--scheduler", value=address,
                          expected="tcp://HOST:PORT, e.g. tcp://head:8786")
    return host, int(port)


def _probe_scheduler(address: str, timeout_s: float) -> None:
    """Connect to a tcp:// scheduler and wait, at most ``timeout_s``, for the first bytes of its
    handshake (a Dask scheduler speaks first). An address that refuses, never answers, or is
    another kind of server (HTTP waits for a request) is a ConfigError, not a hang."""
    where = _parse_address(address)
    if where is None:
        return
    expected = "the address of a running Dask scheduler, e.g. tcp://head:8786"
    try:
        with socket.create_connection(where, timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            if not sock.recv(1):
                raise ConfigError("the scheduler closed the connection without a handshake", source="--scheduler",
                                  value=address, expected=expected)
    except socket.timeout:
        raise ConfigError(f"no answer within {timeout_s:g} s (not a Dask scheduler, or a stuck one)",
                          source="--scheduler", value=address, expected=expected) from None
    except OSError as exc:
        raise ConfigError(f"cannot reach the Dask scheduler ({exc.strerror or exc})", source="--scheduler",
                          value=address, expected=expected) from None


def _dask_executor(address: str, timeout_s: float):
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError("a Dask scheduler needs the optional `dask` extra, which is not installed",
                          source="--scheduler", value=address,
                          expected="pip install 'trainsim[dask]' (dask[distributed]) on this machine and the workers") from None
    _probe_scheduler(address, timeout_s)
    box: dict = {}

    def connect() -> None:
        try:
            box["client"] = Client(address, timeout=f"{timeout_s}s")
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = exc

    # the Client gets its own thread and a hard deadline: a server that completes the TCP handshake
    # but never finishes Dask's, or answers garbage, must not hang `run` or a study
    thread = threading.Thread(target=connect, daemon=True, name="dask-connect")
    thread.start()
    thread.join(2 * timeout_s + 5)
    if thread.is_alive():
        raise ConfigError(f"the Dask handshake did not finish within {2 * timeout_s + 5:g} s", source="--scheduler",
                          value=address, expected="the address of a running Dask scheduler")
    if "error" in box:
        exc = box["error"]
        if isinstance(exc, KeyboardInterrupt):
            raise exc
        raise ConfigError(f"cannot connect to the Dask scheduler ({type(exc).__name__}: {clip(str(exc), 300)})",
                          source="--scheduler", value=address,
                          expected="the address of a running scheduler, e.g. tcp://head:8786") from None
    return box["client"]


@contextmanager
def executor_for(workers: int | None = None, scheduler: str | None = None,
                 connect_timeout_s: float = DASK_CONNECT_S) -> Iterator[Executor]:
    """An Executor for ``--workers N`` (1: in this process) or ``--scheduler tcp://host:port`` (Dask)."""
    if scheduler:
        client = _dask_executor(scheduler, connect_timeout_s)
        try:
            yield client.get_executor(pure=False)
        finally:
            client.close()
        return
    n = check_workers(workers or default_workers())
    if n <= 1:
        yield InlineExecutor()
        return
    # fork (where there is one) is fast and needs no `if __name__ == "__main__"` guard in scripts;
    # every worker is started here, before any progress-bar thread exists in this process
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context(method), initializer=_worker_init,
                               initargs=(os.getpid(), threading.current_thread() is threading.main_thread()))
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
