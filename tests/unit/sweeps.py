"""A scaling sweep whose every number is worked out by hand, for the scaling model's tests and
for what a bench does after its sweep (tests/unit/test_finish_bench.py)."""

import json

from tests.helpers import fake_run_record, write_fake_bench

# A sweep measured on a network that behaves as the model says, every number worked out by hand.
# 100 steps of 4096 events per epoch; gradient 754 804 bytes (the 3×300 network's 188 701
# float32 parameters); epoch = 100 × (4096/N · t_event + 2(N−1) · latency + 2(N−1)/N · S / bw).
#   adam: t_event 2 µs on 4 cores, latency 50 µs, 1.25e8 bytes/s (1 Gbit/s)
#     N = 1: 100 × 8.192 ms                                      = 0.8192 s
#     N = 2: 100 × (4.096 + 0.1 + 6.038432) ms                   = 1.0234432 s
#     N = 4: 100 × (2.048 + 0.3 + 1.5 × 6.038432) ms             = 1.1405648 s
#   sgd: t_event 3 µs, latency 20 µs, 2.5e8 bytes/s (a faster network measured in its runs)
#     N = 1: 100 × 12.288 ms                                     = 1.2288 s
#     N = 2: 100 × (6.144 + 0.04 + 3.019216) ms                  = 0.9203216 s
#     N = 4: 100 × (3.072 + 0.12 + 1.5 × 3.019216) ms            = 0.7720824 s
GRADIENT_BYTES = 754_804
MEASURED = {
    "sgd": {1: 1.2288, 2: 0.9203216, 4: 0.7720824},
    "adam": {1: 0.8192, 2: 1.0234432, 4: 1.1405648},
}
NETWORK = {
    "sgd": {"latency_seconds": 20e-6, "bytes_per_second": 2.5e8},
    "adam": {"latency_seconds": 50e-6, "bytes_per_second": 1.25e8},
}


def worked_sweep(tmp_path, cores=4):
    """Runs in the order a sweep makes them (nodes, then optimizers: sgd's come first)."""
    records = []
    for nodes in (1, 2, 4):
        for opt in ("sgd", "adam"):
            allreduce = None
            if nodes > 1:
                allreduce = {"bytes": GRADIENT_BYTES, **NETWORK[opt]}
            records.append(
                fake_run_record(
                    nodes=nodes,
                    optimizer=opt,
                    cores_per_node=cores,
                    epoch_seconds_median=MEASURED[opt][nodes],
                    allreduce=allreduce,
                )
            )
    path = write_fake_bench(tmp_path / "sweep", records)
    return json.loads(path.read_text()), path.parent
