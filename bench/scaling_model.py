#!/usr/bin/env python3
"""The scaling model of docs/distributed.md: data-parallel training's
efficiency on N nodes from a measured compute time per image and an
alpha-beta model of ring allreduce.

    bench/scaling_model.py            # prints the Markdown tables

Per step, with b images per node and P parameters (M = 4P bytes):
    compute   T_c = b * t            (t: measured seconds per image)
    allreduce T_a = 2 (N - 1) alpha + 2 (N - 1) / N * M / beta
    efficiency without overlap   E = T_c / (T_c + T_a)
    with overlap                 E = T_c / (T_c + T_a - min(h T_a, T_b))
where h is the share of the exchange's traffic measured as done before
backward ended (clcnn_mpi's report of 2-rank runs) and T_b = 2 T_c / 3 the
backward pass (no more than backward's time can hide). clcnn's exchange (alltoall, rank-order sums,
allgather) moves the same bytes as a ring and sends N - 1 messages per phase,
so the same model applies.
"""
import math

# Measured seconds of kernels per image of a training step on one PoCL
# thread (bench/step_time.c with POCL_MAX_PTHREAD_COUNT=1; the runs are in
# docs/distributed.md): the fastest per-image time of all runs and batches
# (the load of a shared machine only adds time, and a faster node is the
# harder one to scale).
MODELS = [
    # name, parameters, seconds per image, the batch per node the
    # efficiencies are given at, the hidden share h (median of the 2-rank
    # runs; ResNet-18: the residual network's, not measured)
    ("LeNet-5 (examples/lenet5.net)", 61706, 0.0070 / 32, 64, 0.73),
    ("residual network (examples/resnet.net)", 174970, 0.2120 / 32, 64, 0.77),
    ("ResNet-18-sized (bench/resnet18.net)", 11681832, 3.8524 / 16, 32, 0.77),
]

NETWORKS = [
    # name, alpha (s), beta (bytes/s): 90% of the line rate
    ("10 Gbit/s Ethernet (TCP)", 25e-6, 0.9 * 10e9 / 8),
    ("100 Gbit/s (RDMA)", 2e-6, 0.9 * 100e9 / 8),
]

NODES = [1, 2, 4, 8, 16, 32, 64]
TARGET = 0.8


def allreduce_seconds(nodes, parameters, alpha, beta):
    if nodes == 1:
        return 0.0
    return 2 * (nodes - 1) * alpha + 2 * (nodes - 1) / nodes * 4 * parameters / beta


def efficiency(batch, per_image, comm, hidden):
    compute = batch * per_image
    return compute / (compute + comm - min(hidden * comm, 2 * compute / 3))


def batch_needed(per_image, comm, hidden):
    """The smallest batch per node with efficiency >= TARGET (efficiency
    grows with the batch)."""
    low, high = 1, 1
    while efficiency(high, per_image, comm, hidden) < TARGET:
        high *= 2
    while low < high:
        middle = (low + high) // 2
        if efficiency(middle, per_image, comm, hidden) >= TARGET:
            high = middle
        else:
            low = middle + 1
    return low


# Nodes faster than the measured core by these factors (a many-core CPU, a
# GPU): their compute time per image is the measured one divided by it.
SPEEDUPS = [1, 10, 100]


def header():
    return "| | " + " | ".join(f"{n} node{'s' if n > 1 else ''}" for n in NODES) + " |\n" + \
        "|---|" + "---|" * len(NODES)


def tables(models):
    out = []
    for name, parameters, per_image, batch, hidden in models:
        comm64 = ", ".join(f"{1e3 * allreduce_seconds(64, parameters, a, b):.2f} ms at {net}"
                           for net, a, b in NETWORKS)
        out.append(f"**{name}**: {parameters:,} parameters ({4 * parameters / 1e6:.2f} MB of "
                   f"gradient), {1e3 * per_image:.2f} ms of kernels per image on one core, "
                   f"h = {hidden:.0%} hidden; an allreduce on 64 nodes takes {comm64}.\n")
        out.append(f"Efficiency at batch {batch} per node, without / with overlap:\n")
        out.append(header())
        for net, alpha, beta in NETWORKS:
            cells = []
            for n in NODES:
                comm = allreduce_seconds(n, parameters, alpha, beta)
                cells.append(f"{efficiency(batch, per_image, comm, 0.0):.0%} / "
                             f"{efficiency(batch, per_image, comm, hidden):.0%}")
            out.append(f"| {net} | " + " | ".join(cells) + " |")
        out.append("")
        out.append(f"Batch per node for at least {TARGET:.0%} efficiency, without / with overlap, "
                   f"on nodes as fast as the measured core and 10 and 100 times faster:\n")
        out.append(header())
        for net, alpha, beta in NETWORKS:
            for k in SPEEDUPS:
                cells = []
                for n in NODES:
                    comm = allreduce_seconds(n, parameters, alpha, beta)
                    cells.append(f"{batch_needed(per_image / k, comm, 0.0)} / "
                                 f"{batch_needed(per_image / k, comm, hidden)}")
                speed = "measured core" if k == 1 else f"{k}x faster"
                out.append(f"| {net}, {speed} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(tables(MODELS))
