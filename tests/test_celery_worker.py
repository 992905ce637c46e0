from __future__ import annotations

import pytest

from tests.processes import celery_worker
from triage.celery import app


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_process_runs_a_task_through_redis() -> None:
    with celery_worker():
        replies = []
        for _ in range(40):  # the worker needs a moment to connect
            replies = app.control.ping(timeout=0.5)
            if replies:
                break
        assert replies, "the worker never answered a ping through the Redis broker"
        result = app.send_task("celery.accumulate", args=(1, 2, 3), ignore_result=False)
        assert result.get(timeout=20) == [1, 2, 3]  # JSON has no tuples
