"""Speed of the Hebbian presets (see bench.throughput): `python -m bench.hebb_throughput [--presets ...]`."""
from bench import throughput


def main(argv=None) -> None:
    args = throughput.parse(__doc__.splitlines()[0], ["unsupervised_hebb/softhebb", "unsupervised_hebb/hard_wta",
                                                      "unsupervised_hebb/krotov"], argv)
    throughput.report([throughput.measure(p, args.samples, args.eval_samples, args.repeats, args.data_dir,
                                          device=args.device)
                       for p in args.presets])


if __name__ == "__main__":
    main()
