"""Running one command on several workers (processes or hosts) with ``MultiWorkerMirroredStrategy``.

Every worker runs the same command on the same inputs. What is split is each batch's images: the
MC scoring calls (``mc_predict``, ``deterministic_predict``, ``Detector.score``) and the gradient
attacks (fgm, bim, mim, pgd) hand each replica its share, and every worker gathers the whole result.
What is not split: the T networks are the same on every worker (their masks depend on the seed
only), and everything else (training, the detector-aware attacks, bootstraps) runs whole on each.

Only the chief writes. The workers share the results folder (one host, or a shared file system):
a non-chief's ``artifacts.atomic_path`` writes to a private temporary file that it discards, and
every worker waits at a barrier after each write, so that all see the chief's file before any reads
it. The reuse rules then decide alike on every worker, and their collectives stay in step.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator

TF_CONFIG = "TF_CONFIG"
# A dead peer fails a collective after this long instead of hanging the others for ever.
COLLECTIVE_TIMEOUT_SECONDS = 600

_ACTIVE = None  # the strategy of the running command, if it runs on several workers


def cluster_spec(text: str | None) -> dict:
    """The parsed ``TF_CONFIG``, checked: a cluster with two or more workers, and this task in it.
    A one-line ValueError otherwise (never a TensorFlow traceback at the first collective)."""
    example = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
    if not text:
        raise ValueError(f"--distribute multi-worker reads {TF_CONFIG}, which is not set; give every worker the "
                         f"same cluster and its own task, e.g. {TF_CONFIG}='{example}'")  # fmt: skip
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        kind, index = task["type"], int(task["index"])
        members = cluster[kind]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise ValueError(f"{TF_CONFIG} is not a cluster and a task, e.g. '{example}'") from None
    if not 0 <= index < len(members):
        raise ValueError(f"{TF_CONFIG}'s task {kind} {index} is not in its cluster ({len(members)} {kind}s)")
    if sum(len(v) for v in cluster.values()) < 2:
        raise ValueError(f"{TF_CONFIG} names one worker: --distribute multi-worker needs two or more")
    return config


def is_chief(config: dict) -> bool:
    """The chief writes: the task of type ``chief``, else worker 0 of a cluster without one."""
    task = config["task"]
    if "chief" in config["cluster"]:
        return task["type"] == "chief"
    return task["type"] == "worker" and int(task["index"]) == 0


def multi_worker():
    """A ``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``, with a collective timeout. Call it before
    TensorFlow runs any op in the process (TensorFlow's rule for this strategy)."""
    config = cluster_spec(os.environ.get(TF_CONFIG))
    import tensorflow as tf

    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    strategy.uncertadv_chief = is_chief(config)
    return strategy


@contextlib.contextmanager
def active(strategy) -> Iterator[None]:
    """Run the block on ``strategy``'s workers: ``current()`` returns it, and only its chief writes."""
    global _ACTIVE
    previous, _ACTIVE = _ACTIVE, strategy
    try:
        yield
    finally:
        _ACTIVE = previous


def worker_name() -> str:
    """``worker 1 of 2``: this process in the running command's cluster (``TF_CONFIG``)."""
    config = cluster_spec(os.environ.get(TF_CONFIG))
    task = config["task"]
    return f"{task['type']} {task['index']} of {sum(len(v) for v in config['cluster'].values())}"


def current(strategy=None):
    """``strategy`` if given, else the running command's strategy (None on one worker)."""
    return strategy if strategy is not None else _ACTIVE


def writes() -> bool:
    """Whether this process writes files: True unless it is a non-chief worker of the running command."""
    return _ACTIVE is None or getattr(_ACTIVE, "uncertadv_chief", True)


def barrier() -> None:
    """Wait until every worker of the running command gets here (a no-op on one worker)."""
    if _ACTIVE is None:
        return
    import tensorflow as tf

    _ACTIVE.reduce(tf.distribute.ReduceOp.SUM, _ACTIVE.run(lambda: tf.ones([])), axis=None)
