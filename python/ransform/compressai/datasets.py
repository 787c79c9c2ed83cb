"""``compressai.datasets``: ``ImageFolder(root, transform=None, split="train")``, the images of
``root/split`` (searched recursively) as RGB PIL images, through ``transform`` if given."""
from __future__ import annotations

from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset

from ransform import imagefile
from ransform.batch import image_files

__all__ = ["ImageFolder"]


class ImageFolder(Dataset):
    def __init__(self, root, transform=None, split: str = "train"):
        folder = Path(root) / split
        if not folder.is_dir():
            raise RuntimeError(f'Missing directory "{folder}"')
        self.samples = image_files(folder)
        self.transform = transform

    def __getitem__(self, index: int):
        # read as ransform reads every image (EXIF rotation, 16-bit scaled), handed over as 8-bit RGB
        pixels = imagefile.read(self.samples[index]).pixels
        image = Image.fromarray(pixels.mul(255).round().byte().permute(1, 2, 0).numpy())
        return self.transform(image) if self.transform is not None else image

    def __len__(self) -> int:
        return len(self.samples)
