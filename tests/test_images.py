"""Loading what people really upload, and refusing the rest with one clear sentence."""

import numpy as np
import pytest
from PIL import Image

from playground.data.images import MAX_PIXELS, ImageError, load_image, prepare_image
from playground.services.photo_noising import load_x0

from image_files import BAD, BLUE, GOOD, RED, write_bad, write_good


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return write_good(tmp_path_factory.mktemp("good"))


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return write_bad(tmp_path_factory.mktemp("bad"))



@pytest.mark.parametrize("name", GOOD)
def test_every_good_upload_loads_as_rgb_and_prepares(good, name):
    image = load_image(good[name])
    assert image.mode == "RGB" and min(image.size) >= 1
    for resolution in (64, 128, 256):
        x0 = load_x0(good[name], resolution)
        assert x0.shape == (1, 3, resolution, resolution)
        assert x0.min() >= -1 and x0.max() <= 1


def _pixel(image: Image.Image, xy) -> np.ndarray:
    return np.asarray(image, dtype=int)[xy[1], xy[0]]


def test_transparency_is_composited_on_white(good):
    for name in ("transparent.png", "palette_transparent.png"):
        image = load_image(good[name])
        assert np.abs(_pixel(image, (30, 20)) - 255).max() <= 1, name  # transparent half
        assert np.abs(_pixel(image, (5, 20)) - np.array(RED)).max() <= 2, name  # opaque red half


def test_gif_gives_its_first_frame(good):
    pixel = _pixel(load_image(good["animated.gif"]), (20, 20))
    assert np.abs(pixel - np.array(RED)).sum() < np.abs(pixel - np.array(BLUE)).sum()


def test_sixteen_bit_is_scaled_not_clipped(good):
    assert abs(_pixel(load_image(good["sixteen_bit.png"]), (5, 5))[0] - 128) <= 1


def test_cmyk_becomes_rgb_red(good):
    r, g, b = _pixel(load_image(good["cmyk.jpg"]), (20, 20))
    assert r > 200 and g < 60 and b < 60


def test_exif_rotation_is_applied(good):
    with Image.open(good["phone_rotated.jpg"]) as raw:
        assert raw.size == (40, 80)
    assert load_image(good["phone_rotated.jpg"]).size == (80, 40)


def test_large_photo_is_reduced_while_decoding(good, monkeypatch):
    from PIL import JpegImagePlugin

    asked = []
    draft = JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft",
                        lambda self, mode, size: asked.append(size) or draft(self, mode, size))
    image = load_image(good["large.jpg"], max_side=256)  # 6000 x 4000
    assert asked == [(256, 256)]  # decoded at a fraction of its size (bench/forward_latency.py times it)
    assert 256 <= min(image.size) <= 512


def test_prepare_centre_crops_wide_images(good):
    assert prepare_image(load_image(good["wide.png"]), 64).size == (64, 64)
    # thirds of red, green and blue, 300 x 100: the centre square is all green; a squashed picture would show the
    # three colours side by side, a crop from the left edge red
    thirds = Image.new("RGB", (300, 100), (220, 30, 30))
    thirds.paste((30, 200, 30), (100, 0, 200, 100))
    thirds.paste((30, 30, 220), (200, 0, 300, 100))
    square = np.asarray(prepare_image(thirds, 50), dtype=int)
    for column in (0, 25, 49):
        assert np.abs(square[:, column] - (30, 200, 30)).max() <= 8, column




@pytest.mark.parametrize("name,message", list(BAD.items()))
def test_bad_uploads_are_refused_with_a_sentence(bad, name, message):
    with pytest.raises(ImageError, match=message) as caught:
        load_image(bad[name])
    sentence = str(caught.value)
    assert name in sentence and sentence.endswith(".") and "\n" not in sentence and "Traceback" not in sentence


def test_bomb_is_refused_before_decoding(bad, monkeypatch):
    from PIL import ImageFile

    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self) or None)
    with pytest.raises(ImageError, match=f"is 10,000 megapixels; the limit is {MAX_PIXELS // 1_000_000} megapixels"):
        load_image(bad["bomb.png"])  # the size it found, said even when Pillow refuses before we read it
    with pytest.raises(ImageError, match="is 45 megapixels; the limit is 40"):
        load_image(bad["huge.png"])
    assert decoded == []  # refused from the header: 10^10 pixels were never decoded


def test_missing_and_oversized_files(tmp_path):
    with pytest.raises(ImageError, match="Could not find"):
        load_image(tmp_path / "nope.png")
    big = tmp_path / "big.jpg"
    with open(big, "wb") as f:
        f.truncate(31 * 1024 * 1024)
    with pytest.raises(ImageError, match="the limit is 30 MB"):
        load_image(big)
