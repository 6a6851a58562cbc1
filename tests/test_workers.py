"""Single-threaded worker processes: results in job order, one thread, and a parent __main__ that
must not be imported (a Streamlit page an AppTest ran)."""
import operator
import sys
import types

import pytest

from dml_core.core.workers import run_jobs, torch_threads


def _threads(_):
    import torch

    return torch.get_num_threads()


def test_jobs_run_in_order_on_one_thread_in_and_out_of_process(tmp_path, monkeypatch):
    page = tmp_path / "page.py"
    page.write_text("raise SystemExit('a worker imported the parent script')\n")
    fake_main = types.ModuleType("__main__")
    fake_main.__file__ = str(page)
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    jobs = [(a, b) for a, b in zip(range(6), range(10, 16))]
    assert run_jobs(operator.add, jobs, workers=2) == [a + b for a, b in jobs]
    assert sys.modules["__main__"] is fake_main                     # put back afterwards
    assert run_jobs(_threads, [(0,), (1,)], workers=2) == [1, 1]
    with torch_threads(2):
        assert run_jobs(_threads, [(0,)], workers=1) == [1]          # in process: one thread for the job
        assert _threads(0) == 2                                       # and the caller's count restored


def test_a_failing_job_raises_its_error():
    with pytest.raises(ZeroDivisionError):
        run_jobs(operator.truediv, [(1, 1), (1, 0), (2, 1)], workers=2)
