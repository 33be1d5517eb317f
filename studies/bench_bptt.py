"""Benchmark: BPTT training time per epoch, ours against snnTorch, side by side in one run.

    python studies/bench_bptt.py --n-samples 1000 --repeats 3

The same network (700 -> 128 recurrent LIF with synaptic current -> 20 leaky readout), the same
data (built-in set, 100 steps of 10 ms), batch 64, one thread, Adam, cross-entropy on the maximum
of the readout over time. snnTorch's model is ``RSynaptic`` (same alpha and beta as our exact
integrator, threshold 1 in the same weight units) with a ``Synaptic`` readout without reset. The
two implementations alternate, and the best of ``--repeats`` epochs is kept for each. Target
(issue 4): ours at least 1.3x faster. snnTorch is a benchmark-only dependency
(``requirements-bench.txt``).
"""

from __future__ import annotations

if __name__ == "__main__":  # --help from the cache, before the imports below take seconds
    from studies.quick_help import answer_from_cache

    answer_from_cache(__file__)

import argparse
import time
from pathlib import Path

import torch
import xarray as xr
from brian2 import ms

from datasets import Preprocessing, load_splits, to_dense
from datasets.synthetic_bursts import SyntheticConfig
from learning_rules.bptt import BPTTParams
from models.lif_torch import RecurrentLIFNetwork, lif_constants
from models import files
from studies import results
from studies.cli import run_main
from studies.quick_help import HelpCachingParser


def _snntorch_model(n_in, n_hidden, n_out, k, generator):
    import snntorch as snn
    from snntorch import surrogate

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc_in = torch.nn.Linear(n_in, n_hidden, bias=False)
            self.rsyn = snn.RSynaptic(k.alpha_syn, k.alpha_mem, linear_features=n_hidden, threshold=1.0,
                                      spike_grad=surrogate.fast_sigmoid(slope=10), reset_mechanism="zero")
            self.fc_out = torch.nn.Linear(n_hidden, n_out, bias=False)
            self.readout = snn.Synaptic(k.alpha_syn, k.alpha_mem, reset_mechanism="none")

        def forward(self, x):
            spk, syn, mem = self.rsyn.init_rsynaptic()
            syn_o, mem_o = self.readout.init_synaptic()
            drive = self.fc_in(x)
            outputs = []
            for step in range(x.shape[1]):
                spk, syn, mem = self.rsyn(drive[:, step], spk, syn, mem)
                _, syn_o, mem_o = self.readout(self.fc_out(spk), syn_o, mem_o)
                outputs.append(mem_o)
            return torch.stack(outputs, dim=1)

    return Net()


def _epoch(model, forward, x, y, batch_size, optimizer) -> float:
    start = time.perf_counter()
    for i in range(0, len(x), batch_size):
        logits = forward(model, x[i:i + batch_size]).max(dim=1).values
        loss = torch.nn.functional.cross_entropy(logits, y[i:i + batch_size])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def run(n_samples: int, repeats: int, threads: int) -> xr.Dataset:
    started = results.now()
    torch.set_num_threads(threads)
    p = BPTTParams()
    data = load_splits("synthetic", synthetic=SyntheticConfig(n_train=n_samples + 1, n_test=1),
                       preprocessing=Preprocessing(dt=10 * ms), val_fraction=1 / (n_samples + 1))
    x = torch.from_numpy(to_dense(data.train.samples, 700, 100, 10 * ms))
    y = torch.as_tensor(data.train.labels)
    k = lif_constants(p.lif, 10 * ms)
    gen = torch.Generator().manual_seed(0)
    ours = RecurrentLIFNetwork(700, 128, 20, p.lif, 10 * ms, generator=gen)
    theirs = _snntorch_model(700, 128, 20, k, gen)
    contenders = {
        "ours": (ours, lambda m, xb: m(xb)[0], torch.optim.Adam(ours.parameters(), lr=p.learning_rate)),
        "snntorch": (theirs, lambda m, xb: m(xb), torch.optim.Adam(theirs.parameters(), lr=p.learning_rate)),
    }
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, (model, forward, optimizer) in contenders.items():
            times[name].append(_epoch(model, forward, x, y, p.batch_size, optimizer))
    per_1000 = {name: 1000 * min(t) / len(x) for name, t in times.items()}
    ds = xr.Dataset(
        {
            "epoch_seconds_per_1000": ("implementation", [per_1000["ours"], per_1000["snntorch"]],
                                       {"units": "s", "long_name": "training time per 1,000 samples (best epoch)"}),
            "speedup": results.scalar(per_1000["snntorch"] / per_1000["ours"], "1",
                                     "snnTorch time divided by ours"),
        },
        coords={"implementation": ["ours", "snntorch"]},
    )
    results.benchmark_attrs(ds, "bptt_epoch_time", started, n_samples=len(x), repeats=repeats, threads=threads,
                           network="700 -> 128 recurrent -> 20, 100 steps of 10 ms, batch 64")
    return ds


def main(argv=None) -> Path:
    parser = HelpCachingParser(description=__doc__.splitlines()[0],
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--n-samples", type=int, default=1000, help="training samples per timed epoch")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per implementation")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads")
    parser.add_argument("--out", type=Path, default=Path("results"), help="folder for the results file")
    args = parser.parse_args(argv)
    ds = run(args.n_samples, args.repeats, args.threads)
    path = files.write_netcdf(ds, Path(args.out) / "bench_bptt.nc")
    ours, theirs = ds.epoch_seconds_per_1000.values
    print(f"per 1,000 samples: ours {ours:.2f} s, snnTorch {theirs:.2f} s; speed-up {float(ds.speedup):.2f}x")
    print(f"results: {path}")
    return path


if __name__ == "__main__":
    run_main(main)
