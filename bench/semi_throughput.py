"""Seconds per phase-2 epoch of the semi-supervised presets (BP and EP), as JSON.

    python -m bench.semi_throughput [--presets semi_bp/600 semi_ep/600] [--samples 2560]

A phase-2 epoch is one unsupervised epoch over the unlabeled examples (batch
`batchSize`), one supervised epoch over the labeled ones (batch
`pre_batchSize`) and two test evaluations (after each half). Each part is timed
on a slice (see bench.throughput) and extrapolated to the full MNIST sizes.
"""
from bench import throughput
from funcs import config


def phase2(preset: str, args) -> dict:
    cfg = config.load(f"configFile/{preset}")
    n_labeled = cfg.train_label_number
    unsup = throughput.measure(preset, args.samples, args.eval_samples, args.repeats, args.data_dir,
                               kind="unsupervised")
    sup = throughput.measure(preset, n_labeled, args.eval_samples, args.repeats, args.data_dir,
                             kind="supervised", batch_size=cfg.pre_batchSize)
    n_train, n_test = 60000, 10000
    unsup_s = (n_train - n_labeled) / unsup["samples_per_second"]
    sup_s = n_labeled / sup["samples_per_second"]
    eval_s = 2 * n_test * unsup["eval_seconds_per_epoch"] / (n_train + n_test)
    return {"preset": preset, "fcLayers": unsup["fcLayers"], "batchSize": cfg.batchSize,
            "pre_batchSize": cfg.pre_batchSize, "unsupervised_samples_per_second": unsup["samples_per_second"],
            "supervised_samples_per_second": sup["samples_per_second"],
            "unsupervised_seconds": round(unsup_s, 2), "supervised_seconds": round(sup_s, 2),
            "evaluation_seconds": round(eval_s, 2), "seconds_per_phase2_epoch": round(unsup_s + sup_s + eval_s, 2)}


def main(argv=None) -> None:
    args = throughput.parse(__doc__.splitlines()[0], ["semi_bp/600", "semi_ep/600"], argv)
    throughput.report([phase2(preset, args) for preset in args.presets])


if __name__ == "__main__":
    main()
