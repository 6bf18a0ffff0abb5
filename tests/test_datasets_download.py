"""Downloads and deepobs-prepare-data with the network replaced by a local HTTP server."""

import hashlib
import http.server
import os
import tarfile
import threading
from pathlib import Path

import pytest

from datafiles import write_cifar10, write_mnist
from deepobs.datasets import prepare
from deepobs.datasets.download import download_file, part_path
from deepobs.datasets.files import OfficialFile
from deepobs.errors import DataError


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (name -> bytes), honouring ``Range: bytes=N-`` if enabled."""

    def do_GET(self):
        content = self.server.files.get(self.path.lstrip("/"))
        self.server.requests.append((self.path, self.headers.get("Range")))
        if content is None:
            self.send_error(404)
            return
        start, status = 0, 200
        header = self.headers.get("Range")
        if header and self.server.ranges:
            start, status = int(header.split("=")[1].rstrip("-")), 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(content) - start))
        self.end_headers()
        self.wfile.write(content[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.files, httpd.requests, httpd.ranges = {}, [], True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def record_of(name, content):
    return OfficialFile(name, hashlib.md5(content).hexdigest(), len(content))


def test_download_verifies_and_resumes_with_range(server, tmp_path):
    content = os.urandom(300_000)
    server.files["blob.bin"] = content
    destination = tmp_path / "blob.bin"
    part_path(destination).write_bytes(content[:120_000])  # an interrupted earlier attempt
    download_file([server.url + "blob.bin"], destination, record_of("blob.bin", content), progress=False)
    assert destination.read_bytes() == content and not part_path(destination).exists()
    assert server.requests == [("/blob.bin", "bytes=120000-")]
    # A verified file is not downloaded again.
    download_file([server.url + "blob.bin"], destination, record_of("blob.bin", content), progress=False)
    assert len(server.requests) == 1


def test_server_without_range_support_restarts_the_download(server, tmp_path):
    content = os.urandom(50_000)
    server.files["blob.bin"], server.ranges = content, False
    destination = tmp_path / "blob.bin"
    part_path(destination).write_bytes(b"x" * 1000)
    download_file([server.url + "blob.bin"], destination, record_of("blob.bin", content), progress=False)
    assert destination.read_bytes() == content


def test_bad_checksum_is_refused_and_the_next_mirror_used(server, tmp_path):
    good = os.urandom(10_000)
    server.files["bad/blob.bin"] = bytes(reversed(good))
    server.files["good/blob.bin"] = good
    destination = tmp_path / "blob.bin"
    with pytest.raises(DataError, match=r"corrupt data file .*blob.bin.part.*md5"):
        download_file([server.url + "bad/blob.bin"], destination, record_of("blob.bin", good), progress=False)
    assert not destination.exists() and not part_path(destination).exists()
    download_file([server.url + "bad/blob.bin", server.url + "good/blob.bin"], destination,
                  record_of("blob.bin", good), progress=False)
    assert destination.read_bytes() == good


def test_file_url_and_unreachable_host(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"hello" * 100)
    destination = tmp_path / "out" / "source.bin"
    destination.parent.mkdir()
    download_file([source.as_uri()], destination, record_of("source.bin", source.read_bytes()), progress=False)
    assert destination.read_bytes() == source.read_bytes()
    with pytest.raises(DataError, match=r"cannot download http://127.0.0.1:9/x.*place the official file"):
        download_file(["http://127.0.0.1:9/x"], tmp_path / "x", record_of("x", b"1"), progress=False)


def fake_sources(monkeypatch, server, files, name, folder, **extra):
    """Point data set ``name`` at the local server, with the served files as 'official'."""
    records = {file_name: record_of(file_name, content) for file_name, content in files.items()}
    server.files.update(files)
    source = prepare.Source(name, folder, {file_name: [server.url + file_name] for file_name in files},
                            **extra)
    monkeypatch.setitem(prepare.SOURCES, name, source)
    monkeypatch.setattr(prepare, "official_file", lambda dataset, file_name: records.get(file_name))
    monkeypatch.setattr("deepobs.datasets.files.official_file", lambda dataset, file_name: records.get(file_name))
    return source


def test_prepare_data_downloads_mnist_into_the_deepobs_layout(server, tmp_path, monkeypatch, capsys):
    written = tmp_path / "served"
    write_mnist(written)
    files = {path.name: path.read_bytes() for path in (written / "mnist").iterdir()}
    fake_sources(monkeypatch, server, files, "mnist", "mnist", ready=tuple(files))
    data_dir = tmp_path / "data"
    assert prepare.main(["--data_dir", str(data_dir), "--only", "mnist", "--quiet"]) == 0
    assert "mnist: ready" in capsys.readouterr().out
    from deepobs.datasets import MNIST

    class TinyMNIST(MNIST):
        valid_size = 10

    assert len(TinyMNIST(4, data_dir=data_dir).splits["train"]) == 50  # checksums pass
    assert prepare.main(["--data_dir", str(data_dir), "--only", "mnist", "-q"]) == 0
    assert "verified" in capsys.readouterr().out
    assert len(server.requests) == 4  # nothing downloaded the second time


def test_prepare_data_unpacks_cifar_tarball(server, tmp_path, monkeypatch):
    write_cifar10(tmp_path / "src", folder="cifar-10-batches-py", per_batch=2, test=2)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    ready = tuple(f"data_batch_{k}" for k in range(1, 6)) + ("test_batch", "batches.meta")
    fake_sources(monkeypatch, server, {archive.name: archive.read_bytes()}, "cifar10", "cifar-10",
                 ready=ready, archive=archive.name)
    assert prepare.main(["--data_dir", str(tmp_path / "data"), "--only", "cifar10", "-q"]) == 0
    folder = tmp_path / "data" / "cifar-10"
    assert sorted(path.name for path in folder.iterdir()) == sorted(ready)


def test_prepare_data_errors_are_one_line_with_exit_status_2(tmp_path, monkeypatch, capsys):
    source = prepare.Source("mnist", "mnist", {"a.gz": ["http://127.0.0.1:9/a.gz"]}, ("a.gz",))
    monkeypatch.setitem(prepare.SOURCES, "mnist", source)
    monkeypatch.setattr(prepare, "official_file", lambda dataset, name: record_of(name, b"1"))
    assert prepare.main(["--data_dir", str(tmp_path / "d"), "--only", "mnist", "-q"]) == 2
    err = capsys.readouterr().err
    assert "cannot download http://127.0.0.1:9/a.gz" in err and "Traceback" not in err
    assert prepare._names(["=mnist,fmnist", "svhn"], "--only") == ["mnist", "fmnist", "svhn"]
    assert prepare.main(["--only", "nonsense"]) == 2
    assert "unknown data set 'nonsense'" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o555)
    try:
        assert prepare.main(["--data_dir", str(locked), "--only", "mnist", "-q"]) == 2
        assert f"data dir {locked} is not writable" in capsys.readouterr().err
        assert not (locked / "mnist").exists()
    finally:
        os.chmod(locked, 0o755)
    assert prepare.main(["--data_dir", str(tmp_path), "--only", "imagenet"]) == 2
    assert "image-net.org" in capsys.readouterr().err


def test_data_dir_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPOBS_DATA_DIR", str(tmp_path / "env"))
    from deepobs.config import get_data_dir

    assert get_data_dir(None) == Path(tmp_path / "env")
    monkeypatch.delenv("DEEPOBS_DATA_DIR")
    assert get_data_dir(None) == Path("data_deepobs")
