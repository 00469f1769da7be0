"""Training progress travels through a small queue actor; a driver keeps an idle one for its next training stage
instead of starting an actor (a worker process) per stage, and never hands a stage another one's leftovers."""
from __future__ import annotations


def test_a_finished_stages_queue_serves_the_next_stage_emptied(ray_local):
    from ray_cluster.trainer import _give_back, _take_queue

    first = _take_queue()
    first.put_nowait({"step": 7, "loss": 1.0})  # say a worker wrote after the stage's last drain
    _give_back(first, finished=True)
    second = _take_queue()
    assert second.actor._actor_id == first.actor._actor_id  # the same actor: no new worker process
    assert second.empty()  # the earlier stage's step is not this one's progress
    busy = _take_queue()  # while `second` is in use, another stage gets its own
    ids = {"second": second.actor._actor_id, "busy": busy.actor._actor_id}
    assert ids["busy"] != ids["second"]
    _give_back(busy, finished=True)
    _give_back(second, finished=False)  # a failed stage: a worker may still write to it, so it is closed
    assert second.actor is None
    assert _take_queue().actor._actor_id == ids["busy"]
    assert _take_queue().actor._actor_id not in set(ids.values())  # none idle: a new one
