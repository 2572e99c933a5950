"""Does torch.compile speed up EP's relaxation? Milliseconds per free phase, eager against compiled, as JSON.

    python -m bench.ep_compile [--repeats 50]

Times `EPNetwork.relax` (T steps of the dynamics under dropout) on random
inputs for the 1-layer and 2-layer presets' shapes, batch sizes and T, first
eagerly, then wrapped in torch.compile (after a warm-up that pays the
compilation, reported separately). The answer decides whether the project
offers a compile switch: it does only where this shows a gain.
"""
from __future__ import annotations

import argparse
import time

import torch

from bench.throughput import report
from ep.network import EPNetwork

CASES = [("unsupervised_ep/1layer", [784, 2000], 16, 40), ("unsupervised_ep/2layer", [784, 2000, 2000], 32, 60)]


def ms_per_phase(relax, net, x, masks, steps, repeats) -> float:
    tic = time.perf_counter()
    with torch.no_grad():
        for _ in range(repeats):
            relax(net.zero_state(x), net.clamp_input(x), steps, masks)
    return (time.perf_counter() - tic) / repeats * 1000


def measure(name, sizes, batch, steps, repeats) -> dict:
    torch.manual_seed(0)
    net = EPNetwork(sizes, "hardsigm", 0.2, True)
    x = torch.rand(batch, sizes[0])
    masks = [(torch.rand(batch, n) > 0.2).float() for n in sizes[1:]]
    ms_per_phase(net.relax, net, x, masks, steps, 2)
    eager = ms_per_phase(net.relax, net, x, masks, steps, repeats)
    compiled = torch.compile(net.relax)
    tic = time.perf_counter()
    ms_per_phase(compiled, net, x, masks, steps, 2)
    compile_s = time.perf_counter() - tic
    return {"preset": name, "fcLayers": sizes, "batchSize": batch, "T": steps,
            "eager_ms_per_free_phase": round(eager, 3),
            "compiled_ms_per_free_phase": round(ms_per_phase(compiled, net, x, masks, steps, repeats), 3),
            "compile_seconds": round(compile_s, 1)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report([measure(*case, args.repeats if case[1][1:] == [2000] else max(2, args.repeats // 10))
            for case in CASES])


if __name__ == "__main__":
    main()
