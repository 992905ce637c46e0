"""The Celery application shared by the worker, beat and the web process."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun

from triage.logs import task_var

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage.settings")

app = Celery("triage")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _bind_task_context(task_id: str, task: Task[Any, Any], **_: Any) -> None:
    task_var.set((task.name, task_id))


@task_postrun.connect
def _unbind_task_context(**_: Any) -> None:
    task_var.set(None)
