import gzip
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fvlab.data.fashion_mnist import DEBIAN_DIR, FILES, FashionMNIST, find_data_dir
from fvlab.data.idx import iter_idx, read_idx, read_idx_header
from fvlab.errors import CorruptFileError, DatasetNotFoundError


def write_idx(path, array, magic=None, compress=True, extra=b""):
    header = magic if magic is not None else bytes([0, 0, 8, array.ndim])
    header += struct.pack(">" + "I" * array.ndim, *array.shape)
    payload = header + array.astype(np.uint8).tobytes() + extra
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(0, 7),
    h=st.integers(1, 5),
    w=st.integers(1, 5),
    chunk=st.integers(1, 4),
    data=st.data(),
)
def test_idx_round_trip_and_chunked_slices(tmp_path_factory, n, h, w, chunk, data):
    rng = np.random.default_rng(n * 100 + h * 10 + w)
    array = rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)
    path = write_idx(tmp_path_factory.mktemp("idx") / "x.gz", array)
    assert read_idx_header(path).shape == (n, h, w)
    np.testing.assert_array_equal(read_idx(path), array)
    start = data.draw(st.integers(0, n))
    stop = data.draw(st.integers(start, n))
    chunks = list(iter_idx(path, chunk, start, stop))
    assert all(len(c) <= chunk for c in chunks)
    joined = np.concatenate(chunks) if chunks else np.zeros((0, h, w), np.uint8)
    np.testing.assert_array_equal(joined, array[start:stop])


def test_bad_magic_is_reported(tmp_path):
    path = write_idx(tmp_path / "bad.gz", np.zeros((2, 3, 3)), magic=b"\x12\x34\x08\x03")
    with pytest.raises(CorruptFileError, match="magic number 0x12340803"):
        read_idx(path)


def test_wrong_dimension_count_is_reported(tmp_path):
    path = write_idx(tmp_path / "labels.gz", np.zeros((4,)))
    with pytest.raises(CorruptFileError, match="1 dimensions.*expected 3"):
        read_idx(path, expected_ndim=3)


def test_truncated_file_is_reported(tmp_path):
    path = write_idx(tmp_path / "t.gz", np.zeros((3, 2, 2)))
    raw = gzip.decompress(path.read_bytes())[:-3]
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(CorruptFileError, match="truncated"):
        read_idx(path)


def test_trailing_bytes_are_reported(tmp_path):
    path = write_idx(tmp_path / "t.gz", np.zeros((3, 2, 2)), extra=b"xyz")
    with pytest.raises(CorruptFileError, match="more bytes"):
        read_idx(path)


def test_not_gzip_is_reported(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(b"this is not gzip data at all")
    with pytest.raises(CorruptFileError, match="not a readable IDX"):
        read_idx(path)


def test_real_fashion_mnist_headers():
    folder = find_data_dir()
    assert read_idx_header(folder / FILES["train"][0]).shape == (60000, 28, 28)
    assert read_idx_header(folder / FILES["train"][1]).shape == (60000,)
    assert read_idx_header(folder / FILES["test"][0]).shape == (10000, 28, 28)
    assert read_idx_header(folder / FILES["test"][1]).shape == (10000,)


def test_missing_dataset_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("FVLAB_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        len(FashionMNIST("test"))


def test_fvlab_data_and_corrupt_copy(tmp_path, monkeypatch):
    for images, labels in FILES.values():
        for name in (images, labels):
            (tmp_path / name).symlink_to(DEBIAN_DIR / name)
    monkeypatch.setenv("FVLAB_DATA", str(tmp_path))
    assert len(FashionMNIST("test")) == 10000
    (tmp_path / FILES["test"][1]).unlink()
    write_idx(tmp_path / FILES["test"][1], np.zeros((9999,)))
    with pytest.raises(CorruptFileError, match="10000 images but .* 9999 labels"):
        len(FashionMNIST("test"))


def test_streaming_batches_equal_full_load_on_real_data():
    full_x, full_y = FashionMNIST("test", start=100, stop=1100).load()
    parts = list(FashionMNIST("test", start=100, stop=1100).batches(300))
    assert [len(y) for _, y in parts] == [300, 300, 300, 100]
    import torch

    assert torch.equal(torch.cat([x for x, _ in parts]), full_x)
    assert torch.equal(torch.cat([y for _, y in parts]), full_y)
    assert full_x.shape == (1000, 1, 28, 28) and 0 <= full_x.min() and full_x.max() <= 1
    assert set(full_y.tolist()) == set(range(10))
