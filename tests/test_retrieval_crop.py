"""Region crops: tight to the mask, background suppressed by default, padding optional."""

import numpy as np
import pytest
from PIL import Image

from pixsearch.retrieval.crop import DEFAULT_FILL, crop, erode_mask, mask_box


def _scene():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    mask = np.zeros((60, 80), bool)
    # a diamond: its box has corners outside the mask
    yy, xx = np.mgrid[:60, :80]
    mask[np.abs(yy - 30) + np.abs(xx - 40) <= 10] = True
    return Image.fromarray(arr), arr, mask


def test_crop_is_tight_to_the_mask():
    image, arr, mask = _scene()
    out, box = crop(image, mask)
    assert box == (30, 20, 51, 41)
    assert out.size == (21, 21)
    got = np.asarray(out)
    inside = mask[20:41, 30:51]
    # pixels inside the mask are the image's, pixels outside are the fill
    assert np.array_equal(got[inside], arr[20:41, 30:51][inside])
    assert (got[~inside] == DEFAULT_FILL).all()


def test_background_kept_when_not_suppressed_and_padding_grows_box():
    image, arr, mask = _scene()
    out, box = crop(image, mask, suppress_background=False)
    assert np.array_equal(np.asarray(out), arr[20:41, 30:51])
    out_p, box_p = crop(image, mask, pad=0.1, suppress_background=False)
    assert box_p == (28, 18, 53, 43)
    assert out_p.size == (25, 25)


def test_padding_is_clipped_to_the_image():
    image, _, _ = _scene()
    mask = np.zeros((60, 80), bool)
    mask[0:6, 70:80] = True
    _, box = crop(image, mask, pad=0.5)
    assert box == (65, 0, 80, 9)


def test_bad_masks_raise():
    image, _, mask = _scene()
    with pytest.raises(ValueError, match="empty mask"):
        crop(image, np.zeros_like(mask))
    with pytest.raises(ValueError, match="does not match"):
        crop(image, mask[:10])
    with pytest.raises(ValueError):
        mask_box(np.zeros((2, 2, 2), bool))


def test_erosion_peels_a_rim_off_before_cropping():
    """A mask with a one-pixel rim of background around a 40×30 entity: eroding by 5% of the
    shorter side (32 px → 2 steps) crops inside the entity, with no rim pixel left."""
    arr = np.zeros((60, 80, 3), np.uint8)
    arr[15:45, 20:60] = (200, 30, 30)  # the entity
    mask = np.zeros((60, 80), bool)
    mask[14:46, 19:61] = True  # the entity and a rim of background
    out, box = crop(Image.fromarray(arr), mask, erode=0.05)
    assert box == (21, 16, 59, 44)
    assert (np.asarray(out) == (200, 30, 30)).all()
    # 4-connected steps: the corners go first, as in scipy's default binary erosion
    e = erode_mask(mask, 0.05)
    assert e.sum() == 38 * 28 and not e[16, 21 - 1] and e[16, 21]


def test_erosion_keeps_a_mask_it_would_erase():
    mask = np.zeros((60, 80), bool)
    mask[10:13, 10:70] = True  # a 3-pixel stripe: all rim
    assert np.array_equal(erode_mask(mask, 0.5), mask)
    assert np.array_equal(erode_mask(mask, 0.0), mask)
    assert not erode_mask(np.zeros_like(mask), 0.1).any()
