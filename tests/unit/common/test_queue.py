"""The Celery app is configured for reliability: late acks, requeue on worker loss, prefetch 1."""

from __future__ import annotations

import pytest

from hilum.common.queue import Stage, create_celery_app
from hilum.common.settings import HilumSettings, QueueSection


def test_reliability_settings() -> None:
    conf = create_celery_app(HilumSettings()).conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "msgpack" and conf.accept_content == ["msgpack"]
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.task_routes[Stage.PRIORS.task_name] == {"queue": "priors"}
    # A threads pool cannot cancel a running task on a broker outage: it finishes and is handed out again.
    assert conf.worker_cancel_long_running_tasks_on_connection_loss is False


def test_visibility_timeout_must_exceed_the_longest_task() -> None:
    settings = HilumSettings(queue=QueueSection(visibility_timeout_s=60, task_time_limit_s=600))
    with pytest.raises(ValueError, match="visibility_timeout"):
        create_celery_app(settings)
