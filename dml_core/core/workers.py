"""CPU parallelism that holds up on a shared machine: one thread per worker process.

torch's OpenMP threads spin while they wait for each other; when another process takes a
core, a two-thread team spends its time waiting for the descheduled thread, and training
measured 10x slower instead of the 1.5-2x that sharing costs (BENCHMARKS.md, "Speed": the
``contention_slowdown`` figure). A single-threaded process has no team to wait for, so the
build runs independent jobs (one model, one tuning setting) in ``workers`` processes of one
thread each: as fast as two threads on a quiet machine, and it degrades gracefully on a busy
one. Results do not depend on the number of workers: every job runs on one thread, so CPU
runs are bit-for-bit reproducible.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed

#: Thread-count variables of the native libraries (OpenMP, BLAS, numba), set in every worker
#: before they load.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def single_thread_worker() -> None:
    """Initializer of a worker process: one thread everywhere, passive OpenMP waits."""
    for name in THREAD_VARIABLES:
        os.environ[name] = "1"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    one_thread()


def one_thread() -> None:
    """torch and FAISS on one thread in this process: what the web app does, where many sessions
    share the cores and a query is milliseconds of work."""
    import torch

    torch.set_num_threads(1)
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except ImportError:
        pass


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads, restoring the previous count."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def _main_module_hidden(function: Callable) -> Iterator[None]:
    """Spawned workers import the parent's ``__main__`` script before their first job; when that
    script is not a program's entry point but, say, a Streamlit page a test ran in this process
    (AppTest leaves it there), importing it runs the page. Jobs that live in importable modules
    do not need it, so it is hidden while the workers start (they start as jobs are submitted)."""
    if getattr(function, "__module__", "__main__") == "__main__":
        yield
        return
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` single-threaded processes, to share between several ``run_jobs``."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=single_thread_worker)


@contextlib.contextmanager
def stoppable_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """``worker_pool`` for a ``with`` block that, when the block raises (Ctrl-C, SIGTERM turned into
    KeyboardInterrupt, a failed job), kills its workers instead of waiting for their running jobs:
    a model job can run for minutes, and a stopped build should stop now. ProcessPoolExecutor
    has no public way to end a running job; its processes are terminated directly."""
    pool = worker_pool(workers)
    try:
        yield pool
    except BaseException:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def run_jobs(function: Callable, jobs: Iterable[tuple], workers: int,
             on_done: Callable[[tuple, object], None] | None = None, pool: ProcessPoolExecutor | None = None) -> list:
    """``[function(*job) for job in jobs]``, in ``workers`` single-threaded processes (or ``pool``).

    With ``workers <= 1`` and no pool (or a single job) the jobs run here, one torch thread
    each, in order. ``on_done(job, result)`` is called as each job finishes (for progress
    bars). Results come back in the order of ``jobs``; the first exception is re-raised.
    """
    jobs = list(jobs)
    results: list = [None] * len(jobs)
    if pool is None and (workers <= 1 or len(jobs) <= 1):
        with torch_threads(1):
            for index, job in enumerate(jobs):
                results[index] = function(*job)
                if on_done:
                    on_done(job, results[index])
        return results
    with contextlib.nullcontext(pool) if pool is not None else worker_pool(min(workers, len(jobs))) as executor:
        with _main_module_hidden(function):
            futures = {executor.submit(function, *job): index for index, job in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                index = futures[future]
                results[index] = future.result()
                if on_done:
                    on_done(jobs[index], results[index])
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return results
