"""The verifiers' share of the training problems (tasks/data/holdout.py): the preference split's stable hash of
(seed, id)."""
import pytest
from pydantic import ValidationError

from tasks.data.holdout import HoldoutConfig
from tasks.selection.preferences import heldout


def test_the_split_is_a_pure_function_of_seed_and_id_near_its_share():
    ids = [f"train-{i:06d}" for i in range(4000)]
    half = [heldout(i, 0.5, 0) for i in ids]
    assert 0.47 < sum(half) / len(ids) < 0.53
    assert half == [heldout(i, 0.5, 0) for i in ids]
    other = [heldout(i, 0.5, 1) for i in ids]
    assert other != half  # another seed, another split
    # a larger share keeps every problem a smaller one moved (the same hash, a higher threshold)
    quarter = [heldout(i, 0.25, 0) for i in ids]
    assert all(h for q, h in zip(quarter, half) if q)


def test_a_share_of_one_would_leave_the_policy_nothing_and_is_refused():
    with pytest.raises(ValidationError, match="share"):
        HoldoutConfig(share=1.0)


@pytest.mark.parametrize("share", [0.5, 0.0])
def test_the_stage_splits_train_and_keeps_test(tmp_path, share):
    import tempfile
    from pathlib import Path

    from tasks.core.stage_cache import StageContext
    from tasks.core.store import ArtifactStore, StoreSpec
    from tasks.core.tables import read_rows, write_rows
    from tasks.data.holdout import hold_out_problems

    spec = StoreSpec(url=str(tmp_path / "store"))
    store = ArtifactStore(spec)
    train = [{"id": f"train-{i}", "prompt": f"q{i}"} for i in range(40)]
    with tempfile.TemporaryDirectory() as tmp:
        write_rows(Path(tmp) / "train.parquet", train)
        write_rows(Path(tmp) / "test.parquet", [{"id": "test-0", "prompt": "t"}])
        problems = store.commit("make_tiny_arith", "k", Path(tmp), {"metrics": {}})
    ref = hold_out_problems.fn("v", problems, HoldoutConfig(share=share), StageContext(store=spec, show_progress=False))
    policy, verifier = ({r["id"] for r in read_rows(store, ref, t)} for t in ("train", "verifier"))
    assert read_rows(store, ref, "test") == [{"id": "test-0", "prompt": "t"}]
    if share:  # disjoint halves of train, nothing lost
        assert policy and verifier and not policy & verifier and policy | verifier == {r["id"] for r in train}
    else:  # no holdout: the verifiers read the policy's own problems
        assert policy == verifier == {r["id"] for r in train}
