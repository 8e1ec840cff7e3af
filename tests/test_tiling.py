"""Native-resolution tiles: grid geometry, aggregation, the tiled Detector path and its heat map."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TINY_SIZE, encode, make_photo

from detector import Calibration, Detector
from detector.tiling import AGGREGATIONS, TilingConfig, aggregate, grid_shape, image_to_tiles, tile_grid
from detector.visualize import tile_heatmap


def _assert_inside(grid):
    for left, top, right, bottom in grid.boxes:
        assert 0 <= left < right <= grid.width and 0 <= top < bottom <= grid.height
        assert right - left == grid.tile and bottom - top == grid.tile


@pytest.mark.parametrize("width,height", [(64, 64), (65, 200), (256, 256), (1024, 1024), (4000, 3000), (333, 97),
                                          (4096, 256), (97, 4096)])
def test_grid_stays_inside_and_respects_the_budget(width, height):
    grid = tile_grid(width, height, tile=64, max_tiles=16)
    assert len(grid.boxes) == grid.rows * grid.cols <= 16
    assert not grid.enlarged and (grid.width, grid.height) == (width, height)
    _assert_inside(grid)


def test_grid_is_deterministic_and_covers_the_extent():
    a, b = tile_grid(4000, 3000, 64, 16), tile_grid(4000, 3000, 64, 16)
    assert a == b
    lefts = sorted({box[0] for box in a.boxes})
    tops = sorted({box[1] for box in a.boxes})
    assert lefts[0] == 0 and lefts[-1] == 4000 - 64  # spread from edge to edge, not shrunk
    assert tops[0] == 0 and tops[-1] == 3000 - 64
    assert (a.rows, a.cols) == (3, 5)  # the layout follows the aspect ratio


def test_small_images_use_every_non_overlapping_tile():
    grid = tile_grid(256, 256, 64, 16)
    assert (grid.rows, grid.cols) == (4, 4)
    assert sorted({b[0] for b in grid.boxes}) == [0, 64, 128, 192]
    assert grid_shape(200, 100, 64, 16) == (1, 3)
    assert len(tile_grid(100, 70, 64, 16).boxes) == 1


def test_images_smaller_than_a_tile_are_enlarged_and_flagged():
    grid = tile_grid(40, 30, tile=64, max_tiles=16)
    assert grid.enlarged and grid.scale == pytest.approx(64 / 30)
    assert min(grid.width, grid.height) == 64
    _assert_inside(grid)
    tiles, grid = image_to_tiles(make_photo(1, 1), 64, 16)  # a single pixel still gives one tile
    assert tiles.shape == (1, 3, 64, 64) and grid.enlarged


def test_tiles_are_the_native_pixels():
    image = make_photo(300, 200, seed=3)
    tiles, grid = image_to_tiles(image, 64, 6)
    pixels = np.asarray(image)
    for tile, (left, top, right, bottom) in zip(tiles, grid.boxes):
        expected = pixels[top:bottom, left:right].transpose(2, 0, 1) / 127.5 - 1.0
        np.testing.assert_allclose(tile.numpy(), expected, atol=1e-6)


def test_aggregation_rules():
    z = torch.tensor([-4.0, -2.0, 0.0, 2.0, 10.0])
    assert aggregate(z, "mean_logit") == pytest.approx(1.2)
    assert aggregate(z, "median_logit") == pytest.approx(0.0)
    assert aggregate(z, "max_logit") == pytest.approx(10.0)
    assert aggregate(z, "top25_mean") == pytest.approx(6.0)  # ceil(0.25 × 5) = 2 tiles
    p = torch.sigmoid(z.double()).mean()
    assert aggregate(z, "mean_prob") == pytest.approx(float(torch.log(p / (1 - p))), abs=1e-5)
    assert aggregate([3.0], "top50_mean") == 3.0
    for rule in AGGREGATIONS:  # every rule is monotone: raising all tiles raises the image
        assert aggregate(z + 1, rule) > aggregate(z, rule)
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(z, "vote")
    with pytest.raises(ValueError, match="no tile"):
        aggregate([], "mean_logit")


# ------------------------------------------------------------------------------------ tiled Detector
@pytest.fixture(scope="module")
def tiled_weights(tiny_weights, tmp_path_factory):
    """The tiny weights with a card that declares native tiles, a calibration and a threshold."""
    import shutil

    folder = tmp_path_factory.mktemp("tiled") / "weights"
    shutil.copytree(tiny_weights, folder)
    card = json.loads((folder / "card.json").read_text())
    for entry in card["variants"].values():
        entry["preprocessing"] = TilingConfig(TINY_SIZE, 6, "mean_logit").to_card()
        entry["calibration"] = {"temperature": 2.0, "bias": -0.5}
        entry["threshold"] = 0.4
    (folder / "card.json").write_text(json.dumps(card))
    return folder


def test_preprocessing_mode_comes_from_the_card(tiny_weights, tiled_weights):
    plain = Detector.from_pretrained(str(tiny_weights))
    tiled = Detector.from_pretrained(str(tiled_weights))
    assert plain.config.tiling is None and tiled.config.tiling == TilingConfig(TINY_SIZE, 6, "mean_logit")
    assert tiled.threshold == 0.4 and tiled.config.calibration == Calibration(2.0, -0.5)
    assert tiled.describe()["preprocessing"] == {"mode": "tiles", "tile": TINY_SIZE, "max_tiles": 6, "aggregate": "mean_logit"}
    assert plain.describe()["preprocessing"] == {"mode": "resize-center-crop", "size": TINY_SIZE}


def test_tiled_detection_aggregates_calibrated_tile_logits(tiled_weights):
    detector = Detector.from_pretrained(str(tiled_weights))
    image = make_photo(150, 90, seed=5)
    result = detector.detect_one(encode(image))
    tiles, grid = image_to_tiles(image, TINY_SIZE, 6)
    with torch.inference_mode():
        raw = detector.raw_logits(tiles, detector.eps(tiles))
    expected = raw.mean() / 2.0 - 0.5
    assert result.ok and result.grid == grid and len(grid.boxes) == 6
    assert result.logit == pytest.approx(float(expected), abs=1e-4)
    assert result.p_fake == pytest.approx(float(torch.sigmoid(expected)), abs=1e-5)
    assert result.label == ("fake" if result.p_fake >= 0.4 else "real")
    assert result.tile_p_fake.shape == (grid.rows, grid.cols)
    np.testing.assert_allclose(result.tile_p_fake.ravel(), torch.sigmoid(raw / 2.0 - 0.5).numpy(), atol=1e-5)
    assert result.tile_index == int(raw.argmax()) and result.unet_calls == 6
    assert result.image.shape == (TINY_SIZE, TINY_SIZE, 3) and result.eps.shape == (TINY_SIZE, TINY_SIZE, 3)
    assert result.preview.shape == (90, 150, 3) and not result.low_confidence
    report = result.to_dict()["tiles"]
    assert report["rows"] * report["cols"] == 6 and len(report["boxes"]) == 6


def test_tiled_batches_match_single_images_and_keep_errors_in_place(tiled_weights):
    detector = Detector.from_pretrained(str(tiled_weights))
    images = [encode(make_photo(w, h, seed=w)) for w, h in ((150, 90), (40, 40), (300, 64))]
    batch = detector.detect([images[0], b"", images[1], images[2]], batch_size=3)
    assert batch[1].error and "empty" in batch[1].error
    single = [detector.detect_one(img) for img in images]
    for got, want in zip([batch[0], batch[2], batch[3]], single):
        assert got.p_fake == pytest.approx(want.p_fake, abs=1e-5)
        assert got.unet_calls == len(got.grid.boxes)


def test_image_smaller_than_a_tile_is_scored_but_flagged(tiled_weights):
    detector = Detector.from_pretrained(str(tiled_weights))
    result = detector.detect_one(encode(make_photo(8, 8)))
    assert result.ok and result.low_confidence and "far below the model's" in result.warning
    assert result.to_dict()["low_confidence"] is True and result.verdict == "unsure"


def test_tiny_image_flagged_in_resize_mode_too(tiny_weights):
    detector = Detector.from_pretrained(str(tiny_weights))  # resize + centre crop
    tiny, fine = detector.detect([encode(make_photo(2, 2)), encode(make_photo(80, 90))])
    assert tiny.ok and tiny.low_confidence and tiny.verdict == "unsure" and "2×2 px" in tiny.warning
    assert not fine.low_confidence and fine.warning is None


def test_dire_in_tiled_mode_covers_the_shown_tile(tiled_weights):
    detector = Detector.from_pretrained(str(tiled_weights), ddim_steps=2)
    result = detector.detect_one(encode(make_photo(100, 70)), with_dire=True)
    assert result.reconstruction.shape == (TINY_SIZE, TINY_SIZE, 3) and result.dire.dtype == np.uint8
    assert result.unet_calls == len(result.grid.boxes) + 4


def test_heatmap_draws_the_grid_over_the_image(tiled_weights):
    detector = Detector.from_pretrained(str(tiled_weights))
    result = detector.detect_one(encode(make_photo(150, 90)))
    scores = np.zeros_like(result.tile_p_fake)
    scores.flat[0] = 1.0  # the first tile "generated", the others "photo-like"
    result = replace(result, tile_p_fake=scores)
    heat = tile_heatmap(result, legend=False, alpha=1.0)
    factor = heat.shape[1] // result.preview.shape[1]  # a small image is enlarged (pixels kept square)
    assert factor == 3 and heat.shape == (90 * factor, 150 * factor, 3) and heat.dtype == np.uint8
    left, top, right, bottom = (v * factor for v in result.grid.boxes[0])
    red_tile = heat[top + 4 : bottom - 4, left + 4 : left + 12].reshape(-1, 3).mean(0)
    left, top, right, bottom = (v * factor for v in result.grid.boxes[-1])
    blue_tile = heat[top + 4 : bottom - 4, right - 12 : right - 4].reshape(-1, 3).mean(0)
    assert red_tile[0] > red_tile[2] + 60 and blue_tile[2] > blue_tile[0] + 60
    with_legend = tile_heatmap(result, threshold=0.4)
    assert with_legend.shape[0] > heat.shape[0] and with_legend.shape[1] == heat.shape[1]


def test_heatmap_of_a_tiny_image_is_readable(tiled_weights):
    from detector.visualize import HEATMAP_MIN_WIDTH

    result = Detector.from_pretrained(str(tiled_weights)).detect_one(encode(make_photo(8, 8)))
    heat = tile_heatmap(result, threshold=0.5)
    assert heat.shape[1] >= HEATMAP_MIN_WIDTH and heat.shape[0] > heat.shape[1]  # square image + legend below


def test_heatmap_needs_a_tiled_result(tiny_weights):
    result = Detector.from_pretrained(str(tiny_weights)).detect_one(encode(make_photo()))
    with pytest.raises(ValueError, match="tiled model"):
        tile_heatmap(result)
