"""Running one command on several workers (processes or hosts) with ``MultiWorkerMirroredStrategy``.

Every worker runs the same command on the same inputs. What is split is each batch's images: the
MC scoring calls (``mc_predict``, ``deterministic_predict``, ``Detector.score``) and the gradient
attacks (fgm, bim, mim, pgd) hand each replica its share, and every worker gathers the whole result.
What is not split: the T networks are the same on every worker (their masks depend on the seed
only), and the bootstraps run whole on each. Training, the detector-aware attacks and the ablation
are refused on several workers: each worker would make its own.

Only the chief writes. The workers share the results folder (one host, or a shared file system):
a non-chief's ``artifacts.atomic_path`` writes to a private temporary file that it discards, and
every worker waits at a barrier after each write, so that all see the chief's file before any reads
it. The reuse rules then decide alike on every worker, and their collectives stay in step. Two
checks refuse what would otherwise go silently wrong: a barrier compares the file each worker has
reached, and a split call compares a checksum of each worker's inputs and weights (``check_same``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator

TF_CONFIG = "TF_CONFIG"

_ACTIVE = None  # the strategy of the running command, if it runs on several workers
_CHIEF = True  # whether this process is that command's chief (the one that writes)


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


def local_tf_configs(workers: int) -> list[str]:
    """One ``TF_CONFIG`` per worker of a cluster on this machine's free localhost ports, to try
    ``--distribute multi-worker`` on one host (the tests and benchmarks/multi_worker.py do)."""
    import socket

    sockets = [socket.socket() for _ in range(workers)]
    for s in sockets:  # all bound at once, so that no two get the same port
        s.bind(("localhost", 0))
    cluster = {"worker": [f"localhost:{s.getsockname()[1]}" for s in sockets]}
    for s in sockets:
        s.close()
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(workers)]


def is_chief(config: dict) -> bool:
    """The chief writes: the task of type ``chief``, else worker 0 of a cluster without one."""
    task = config["task"]
    if "chief" in config["cluster"]:
        return task["type"] == "chief"
    return task["type"] == "worker" and int(task["index"]) == 0


def multi_worker():
    """A ``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``. Call it before TensorFlow runs any op in the
    process (TensorFlow's rule for this strategy). A dead worker is found by the strategy's own health
    check, which fails the others' collectives (no collective timeout here: TensorFlow keeps a thread per
    pending collective for as long as the timeout, and a long stage run whole on each worker could exceed it)."""
    cluster_spec(os.environ.get(TF_CONFIG))
    import tensorflow as tf

    return tf.distribute.MultiWorkerMirroredStrategy()


@contextlib.contextmanager
def active(strategy, chief: bool | None = None) -> Iterator[None]:
    """Run the block on ``strategy``'s workers: ``current()`` returns it, and only the chief writes
    (``chief``: this process is the chief; by default, as ``TF_CONFIG`` says)."""
    global _ACTIVE, _CHIEF
    if chief is None:
        chief = is_chief(cluster_spec(os.environ.get(TF_CONFIG)))
    previous, (_ACTIVE, _CHIEF) = (_ACTIVE, _CHIEF), (strategy, chief)
    try:
        yield
    finally:
        _ACTIVE, _CHIEF = previous


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
    return _ACTIVE is None or _CHIEF


def check_same(strategy, what: str, value: int) -> None:
    """Refuse, in one line on every worker, a ``value`` (e.g. a checksum of the inputs) that differs between
    the workers of a multi-worker ``strategy``: each worker splits and gathers rows of its own inputs, so
    workers that disagree would give rows of different inputs, silently. A no-op on one process."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    local = tf.constant([value], tf.int64)
    every = strategy.gather(strategy.run(lambda: tf.identity(local)), axis=0).numpy()  # each replica's value
    if len(set(every.tolist())) > 1:
        raise ValueError(f"the workers have different {what}; every worker must run the same command on the "
                         "same files (a shared results folder) and the same models")  # fmt: skip


def checksum(*arrays) -> int:
    """crc32 of the arrays' bytes, for ``check_same``."""
    import zlib

    import numpy as np

    total = 0
    for a in arrays:
        total = zlib.crc32(np.ascontiguousarray(a).tobytes(), total)
    return total


def barrier(tag: str = "") -> None:
    """Wait until every worker of the running command gets here (a no-op on one worker). ``tag`` (e.g. the
    file just written) must be the same on all: workers that reach different barriers are refused, not
    paired with each other's."""
    if _ACTIVE is None:
        return
    import zlib

    import tensorflow as tf

    if isinstance(_ACTIVE, tf.distribute.MultiWorkerMirroredStrategy):
        check_same(_ACTIVE, f"next steps (one is at {tag!r})", zlib.crc32(tag.encode()))
    else:
        _ACTIVE.reduce(tf.distribute.ReduceOp.SUM, _ACTIVE.run(lambda: tf.ones([])), axis=None)
