"""Small subclasses of torchvision's dataset classes, for folders whose files differ from the originals.

Each subclass changes only what it must (file lists, expected checksums, the existence check) and
keeps torchvision's reading code. Integrity is checked by :mod:`ualib.data._store` before these
classes open a file (manifest SHA-256 or published checksums), so the subclasses skip torchvision's
MD5 comparison where the files legitimately differ from the originals' bytes.
"""

from __future__ import annotations

import os
from typing import Any

from torchvision.datasets import CIFAR10, FER2013, MNIST, Omniglot
from torchvision.datasets.utils import list_dir, list_files

__all__ = ["NotMNIST", "OmniglotFolder", "CIFAR10Subset", "CIFAR10Verified", "FER2013Any"]


class NotMNIST(MNIST):
    """notMNIST_small (letters A-J) stored as MNIST IDX files in ``<root>/NotMNIST/raw``.

    Only the test files (``t10k-*``) exist, so ``train`` must be ``False``; there is no download.
    """

    mirrors: list[str] = []
    resources = [("t10k-images-idx3-ubyte.gz", None), ("t10k-labels-idx1-ubyte.gz", None)]
    classes = list("ABCDEFGHIJ")

    def __init__(self, root: str | os.PathLike[str], train: bool = False, **kwargs: Any) -> None:
        if train:
            raise ValueError("notMNIST has only a test split here (t10k-* files); pass train=False")
        super().__init__(root, train=False, **kwargs)

    @property
    def raw_folder(self) -> str:
        return os.path.join(self.root, "NotMNIST", "raw")

    @property
    def processed_folder(self) -> str:
        return os.path.join(self.root, "NotMNIST", "processed")

    def download(self) -> None:  # pragma: no cover - guarded by the loader
        raise RuntimeError("notMNIST cannot be downloaded by torchvision")


class OmniglotFolder(Omniglot):
    """Omniglot read from the extracted ``images_background`` / ``images_evaluation`` folders.

    Two changes to torchvision's class:

    * its integrity check wants the original zip files' MD5; this subclass only requires the extracted
      folder (the mirror's zips were re-encoded, and the data root keeps only the folders);
    * torchvision lists alphabets, characters and files in ``os.listdir`` order, which differs between
      file systems; this subclass sorts them (alphabet, then character, then file name), so labels and
      "the first n images" are the same everywhere.
    """

    def __init__(self, root: str | os.PathLike[str], background: bool = True, **kwargs: Any) -> None:
        super().__init__(root, background=background, **kwargs)
        self._alphabets = sorted(self._alphabets)
        self._characters = [
            os.path.join(a, c) for a in self._alphabets for c in sorted(list_dir(os.path.join(self.target_folder, a)))
        ]
        self._character_images = [
            [(image, idx) for image in sorted(list_files(os.path.join(self.target_folder, character), ".png"))]
            for idx, character in enumerate(self._characters)
        ]
        self._flat_character_images = [item for images in self._character_images for item in images]

    @property
    def characters(self) -> list[str]:
        """Character names ``"<Alphabet>/characterNN"``; label ``k`` is ``characters[k]``."""
        return [c.replace(os.sep, "/") for c in self._characters]

    def _check_integrity(self) -> bool:
        return os.path.isdir(os.path.join(self.root, self._get_target_folder()))

    def download(self) -> None:  # pragma: no cover - guarded by the loader
        if not self._check_integrity():
            raise RuntimeError("OmniglotFolder does not download; use torchvision.datasets.Omniglot")


class CIFAR10Subset(CIFAR10):
    """The mirror's CIFAR-10 subset: first 4,000 images of ``data_batch_1``, first 1,000 of ``test_batch``."""

    base_folder = "cifar-10-subset-batches-py"
    url = ""
    filename = ""
    tgz_md5 = ""
    train_list = [["data_batch_1", None]]
    test_list = [["test_batch", None]]
    meta = {"filename": "batches.meta", "key": "label_names", "md5": None}

    def download(self) -> None:  # pragma: no cover - guarded by the loader
        raise RuntimeError("the CIFAR-10 subset cannot be downloaded; it comes from the offline mirror")


class CIFAR10Verified(CIFAR10):
    """Full CIFAR-10 whose files ``ualib`` has already verified (skips torchvision's second MD5 pass)."""

    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


class FER2013Any(FER2013):
    """FER2013 from any CSV in torchvision's formats, without comparing the file to the Kaggle MD5.

    torchvision accepts ``<root>/fer2013/fer2013.csv`` (columns ``emotion,pixels,Usage``),
    ``icml_face_data.csv`` (``emotion, Usage, pixels``) or ``train.csv`` / ``test.csv``. The original
    class also requires the Kaggle files' exact MD5, which rejects re-exported or cropped copies; this
    subclass reads any well-formed file of those names.
    """

    _RESOURCES = {key: (name, None) for key, (name, _) in FER2013._RESOURCES.items()}
