"""ImageNet streamed from tiny JPEG folders in the standard train/val layout."""

import pytest
import torch

from datafiles import write_jpeg_folders
from deepobs.datasets import ImageNet
from deepobs.datasets.imagenet import resize_and_center
from deepobs.errors import DataError

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")


class TinyImageNet(ImageNet):
    valid_size = 3
    train_eval_size = 4


def test_labels_sizes_and_batches(tmp_path):
    write_jpeg_folders(tmp_path, classes=("n02", "n01", "n03"), train_per_class=4, val_per_class=2)
    data = TinyImageNet(2, data_dir=tmp_path, num_workers=2)
    try:
        assert data.class_names == ["n01", "n02", "n03"]  # label = 1 + sorted position
        assert len(data.splits["train"]) == 9 and len(data.splits["valid"]) == 3
        assert len(data.splits["test"]) == 6
        assert data.splits["test"].targets.tolist() == [1, 1, 2, 2, 3, 3]  # 0 = background, unused
        for split in ("train", "train_eval", "valid", "test"):
            batches = list(data.batches(split))
            assert len(batches) == data.num_batches(split)
            for inputs, targets in batches:
                assert inputs.shape == (2, 3, 224, 224) and inputs.dtype == torch.float32
                assert targets.dtype == torch.int64 and int(targets.min()) >= 1
                flat = inputs.flatten(1)
                assert torch.allclose(flat.mean(1), torch.zeros(2), atol=1e-4)
                assert torch.allclose(flat.std(1, unbiased=False), torch.ones(2), atol=1e-3)
        # Evaluation batches are deterministic, training batches reproducible per seed.
        first, second = list(data.batches("test")), list(data.batches("test"))
        assert all(torch.equal(a[0], b[0]) for a, b in zip(first, second))
        other = TinyImageNet(2, data_dir=tmp_path, num_workers=1)
        same = TinyImageNet(2, data_dir=tmp_path, num_workers=3)
        assert torch.equal(next(other.batches("train"))[0], next(same.batches("train"))[0])
        other.close()
        same.close()
    finally:
        data.close()


def test_resize_preserves_aspect_and_centres():
    image = torch.zeros(1, 100, 200, dtype=torch.uint8)
    image[:, :, 50:150] = 255  # the central square of the wide image is white
    out = resize_and_center(image)
    assert out.shape == (3, 256, 256) and out.dtype == torch.uint8
    assert int(out[:, :, 2:-2].min()) == 255  # short side 256, long side 512 cropped centrally


def test_missing_folders_name_the_path(tmp_path):
    with pytest.raises(DataError, match=r"imagenet.*train.*image-net.org"):
        ImageNet(8, data_dir=tmp_path)
    (tmp_path / "imagenet" / "train" / "n01").mkdir(parents=True)
    with pytest.raises(DataError, match=r"imagenet.*val"):
        ImageNet(8, data_dir=tmp_path)
