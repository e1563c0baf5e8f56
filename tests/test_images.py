"""Image sets: the bundled sample is the default, inside the package; reports say which set ran."""
import pytest

from rsi_core.model.images import ImageSet, bundled_dir, resolve_image_dir


def test_default_is_the_bundled_sample_inside_the_package(monkeypatch):
    monkeypatch.delenv("RSI_IMAGES", raising=False)
    import rsi_core
    root = bundled_dir()
    assert root.is_relative_to(__import__("pathlib").Path(rsi_core.__file__).parent)
    images = ImageSet.from_dir(None)
    assert images.root == root and len(images) == 250
    assert len({f.split("/")[0] for f in images.files}) == 250  # one image per class folder
    assert images.describe()["image_set"].startswith("bundled sample")
    assert images[0].shape == (3, 224, 224)


def test_user_folder_wins_and_is_named_so(monkeypatch, tmp_path):
    (tmp_path / "a").mkdir()
    src = bundled_dir() / ImageSet.from_dir(None).files[0]
    (tmp_path / "a" / "x.JPEG").write_bytes(src.read_bytes())
    monkeypatch.setenv("RSI_IMAGES", str(tmp_path))
    images = ImageSet.from_dir(None)
    assert images.root == tmp_path and images.files == ["a/x.JPEG"]
    assert images.describe()["image_set"] == "user-supplied folder"


def test_missing_folder_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.delenv("RSI_IMAGES", raising=False)
    with pytest.raises(FileNotFoundError, match="--images DIR"):
        resolve_image_dir(tmp_path / "nope")
