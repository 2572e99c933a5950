"""Why did the full-length EP 100-label run collapse? Facts about a semi-supervised EP network, as text.

    python docs/diagnostics/semi_ep_collapse.py RUN_DIR [WEIGHTS ...] [--data_dir data]

RUN_DIR holds the run's config.json; each WEIGHTS file (default: RUN_DIR/pretrained.pt and
RUN_DIR/model_state_dict.pt) is a state dict of that network. For each it prints, on the first 5,000 test
images: the accuracy of the free phase's read-out, the share of hidden units silent on all of them, the
weight norms; and, for the self-defined targets of 2,048 training images, the read-out's gradient at the free
state (ours) against the mean over both nudging signs of that at the nudged state (the original code's),
and how consistent each is from one mini-batch to the next.
The numbers in simuResults/README.md (section "Table 5 at full length") come from this script.
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from ep import learner as ep_learner  # noqa: E402
from funcs import config, data as data_mod  # noqa: E402
from funcs.target import Target  # noqa: E402


def readout_gradient(net, state, d) -> torch.Tensor:
    """The cross-entropy gradient of the read-out's weights and bias at `state`, flattened."""
    err = torch.softmax(net.readout(state), dim=1) - d
    return torch.cat([(err.t() @ net.act(state[-1])).flatten(), err.sum(0)]) / d.shape[0]


@torch.no_grad()
def describe(cfg, net, test, train) -> list[str]:
    x = net.clamp_input(test.x[:5000].flatten(1))
    free = net.free_phase(x, cfg.T, None)
    hidden = net.act(free[-1])
    accuracy = (net.readout(free).argmax(1) == test.y[:5000]).float().mean().item()
    lines = [f"free-phase read-out accuracy {100 * accuracy:.2f} %, hidden units silent on all images "
             f"{100 * (hidden <= 0).all(0).float().mean().item():.1f} %, mean hidden activity {hidden.mean():.4f}"]
    lines += [f"layer {i}: weight norm {layer.weight.norm():.2f}, largest |w| {layer.weight.abs().max():.3f}"
              for i, layer in enumerate(net.layers)]
    x = net.clamp_input(train.x[:2048].flatten(1))
    free = net.free_phase(x, cfg.T, None)
    d = Target.from_config(cfg, kind="unsupervised")(net.readout(free))
    ours = readout_gradient(net, free, d)
    nudged = [readout_gradient(net, net.nudged_phase(free, x, d, b, cfg.Kmax, None), d)
              for b in (cfg.beta, -cfg.beta)]
    theirs = (nudged[0] + nudged[1]) / 2
    cosine = (ours @ theirs / ours.norm() / theirs.norm()).item()
    lines.append(f"read-out gradient: |free| {ours.norm():.4f}, |nudged, mean over signs| {theirs.norm():.4f}, "
                 f"cosine {cosine:.4f}, |difference| / |free| {(theirs - ours).norm() / ours.norm():.3f}")
    # Per mini-batch of 256 (one-sided nudging, a random sign each, as in training): how much of the read-out
    # gradients' size is their common direction, ||mean g||^2 / mean ||g||^2. Adam divides each step by the
    # root mean square of the gradient, so the less consistent gradient takes the smaller steps.
    signs = torch.tensor([1.0, -1.0]).repeat(4)[torch.randperm(8)]
    per_batch = {"free": [], "nudged": []}
    for b, sign in enumerate(signs.tolist()):
        part = slice(256 * b, 256 * (b + 1))
        xb, fb, db = net.clamp_input(train.x[part].flatten(1)), [s[part] for s in free], d[part]
        per_batch["free"].append(readout_gradient(net, fb, db))
        per_batch["nudged"].append(readout_gradient(net, net.nudged_phase(fb, xb, db, sign * cfg.beta, cfg.Kmax,
                                                                          None), db))
    consistency = {k: (torch.stack(g).mean(0).norm() ** 2 / torch.stack(g).norm(dim=1).pow(2).mean()).item()
                   for k, g in per_batch.items()}
    lines.append(f"read-out gradient over 8 mini-batches of 256, random nudging signs: consistency "
                 f"||mean g||^2 / mean ||g||^2 at the free state {consistency['free']:.3f}, at the nudged state "
                 f"{consistency['nudged']:.3f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("weights", nargs="*")
    parser.add_argument("--data_dir", default="data")
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = config.load(args.run, [f"data_dir={args.data_dir}", "device=-1"])
    data = data_mod.load_dataset(cfg.dataset, args.data_dir)
    for weights in args.weights or [f"{args.run}/pretrained.pt", f"{args.run}/model_state_dict.pt"]:
        learner = ep_learner.build(cfg, "cpu")
        state = torch.load(weights, map_location="cpu")
        learner.net.load_state_dict(state.get("model", state))
        print(weights)
        print("\n".join("  " + line for line in describe(cfg, learner.net, data.test, data.train)))


if __name__ == "__main__":
    main()
