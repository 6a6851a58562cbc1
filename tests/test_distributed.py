"""DDP training (dml_core.learn.distributed): two gloo processes, each drawing its own batch, give the
gradients of one process on the combined batch, for log-ratio (per-anchor loss) and binary
triplet (mining over the gathered batch)."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import distributed_worker as worker
import numpy as np
import pytest
import torch

from dml_core.learn import train
from dml_core.learn.mining import binary_masks

METHODS = ("log_ratio", "binary_triplet")
WORLD = 2


def free_port() -> int:
    for port in range(19530, 19561):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    pytest.skip("no free port in 19530-19560 for the gloo rendezvous")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": str(WORLD),
           "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    script = Path(worker.__file__)
    procs = [subprocess.Popen([sys.executable, str(script), str(out), *METHODS], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for r in range(WORLD)]
    try:
        outputs = [proc.communicate(timeout=240) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err.decode()[-3000:]
    return out


def load(path: Path) -> dict:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def gradients(loss, model) -> tuple[float, dict]:
    loss.backward()
    return float(loss.detach()), {f"grad:{n}": p.grad.numpy().copy() for n, p in model.named_parameters()}


def single_process(method: str, batches: list[dict]) -> tuple[float, dict]:
    """Loss and gradients of one process given the ranks' batches as one combined batch."""
    cfg = worker.config(method)
    features, labels = worker.problem()
    model, loss_fn = worker.make_model(), train._make_loss(cfg)
    if cfg.sampling == "binary":
        batch = np.concatenate([b["indices"] for b in batches])
        emb = model(torch.from_numpy(features[batch]))
        pos, neg = binary_masks(batch, worker.neighbours(labels), cfg.k_pos)
        return gradients(loss_fn(emb, indices_tuple=worker.miner_for(cfg)(emb, pos, neg)), model)
    anchors, others, label_dist = [], [], []
    for b in batches:  # every anchor with its own others, all anchors in one loss
        emb = model(torch.from_numpy(features[b["indices"]]))
        anchors.append(emb[b["anchor_pos"]])
        others.append(emb[b["other_pos"]])
        label_dist.append(torch.from_numpy(b["label_dist"]))
    return gradients(loss_fn(torch.cat(anchors), torch.cat(others), torch.cat(label_dist)), model)


@pytest.mark.parametrize("method", METHODS)
def test_two_ranks_give_the_gradients_of_the_combined_batch(ranks, method):
    per_rank = [load(ranks / f"{method}-rank{r}.npz") for r in range(WORLD)]
    assert not np.array_equal(per_rank[0]["indices"], per_rank[1]["indices"])  # each rank drew its own anchors
    loss, expected = single_process(method, per_rank)
    _, rank0_alone = single_process(method, per_rank[:1])
    for name, grad in expected.items():
        for rank in per_rank:
            np.testing.assert_allclose(rank[name], grad, rtol=0, atol=1e-5, err_msg=f"{method} {name}")
    # The comparison can fail: one rank's batch alone gives another gradient.
    assert max(np.abs(rank0_alone[n] - expected[n]).max() for n in expected) > 1e-3
    rank_losses = [float(rank["loss"]) for rank in per_rank]
    if method == "binary_triplet":  # every rank computes the loss of the gathered batch
        np.testing.assert_allclose(rank_losses, [loss] * WORLD, rtol=1e-5)
    else:  # per-anchor loss: the combined batch's loss is the mean over ranks
        np.testing.assert_allclose(np.mean(rank_losses), loss, rtol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_fit_keeps_the_replicas_equal(ranks, method):
    rank0, rank1 = (load(ranks / f"fit-{method}-rank{r}.npz") for r in range(WORLD))
    assert len(rank0["loss"]) == 3 and np.all(np.isfinite(rank0["loss"]))
    for name in rank0:  # the same weights after three steps, and the same logged (mean) loss
        np.testing.assert_allclose(rank0[name], rank1[name], rtol=0, atol=1e-6, err_msg=name)
