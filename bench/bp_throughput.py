"""Speed of the BP presets (see bench.throughput): `python -m bench.bp_throughput [--presets ...]`."""
from bench import throughput


def main(argv=None) -> None:
    args = throughput.parse(__doc__.splitlines()[0], ["unsupervised_bp/1layer", "unsupervised_bp/2layer"], argv)
    throughput.report([throughput.measure(p, args.samples, args.eval_samples, args.repeats, args.data_dir)
                       for p in args.presets])


if __name__ == "__main__":
    main()
