from __future__ import annotations

from PIL import Image

from fsg_ray.io import visualize


def test_grid_layout_and_single_image_columns() -> None:
    red, blue = Image.new("RGB", (10, 10), "red"), Image.new("RGB", (30, 20), "blue")
    sheet = visualize.grid({"style": [red], "input": [blue, blue, blue]}, cell=16)
    pad, label = visualize.PAD, visualize.LABEL_HEIGHT
    assert sheet.size == (2 * (16 + pad) + pad, label + 3 * (16 + pad) + pad)
    top = label + pad
    assert sheet.getpixel((pad + 8, top + 8)) == (255, 0, 0)  # style, first row
    assert sheet.getpixel((pad + 8, top + 16 + pad + 8)) == (255, 255, 255)  # nothing below it
    assert sheet.getpixel((2 * pad + 16 + 8, top + 2 * (16 + pad) + 8)) == (0, 0, 255)


def test_loss_curves_png_and_atomic_save(tmp_path) -> None:
    history = [{"phase": 0.0, "gan_d": 1.0 / (i + 1)} for i in range(5)]
    history += [{"phase": 1.0, "global": 2.0, "global_style": -1.0} for _ in range(5)]
    img = visualize.loss_curves(history, ["gan", "global"])
    assert img.mode == "RGB" and img.size[0] == 800 and img.size[1] > 300  # 3 panels
    visualize.save_png(img, tmp_path / "sub" / "losses.png")
    assert Image.open(tmp_path / "sub" / "losses.png").size == img.size


def test_grid_titles_of_several_lines_get_a_taller_label_row() -> None:
    red = Image.new("RGB", (10, 10), "red")
    sheet = visualize.grid({"full\nstripes v1": [red], "input": [red, red]}, cell=96)
    label = visualize.LABEL_HEIGHT + visualize.LINE_HEIGHT
    assert sheet.height == label + 2 * (96 + visualize.PAD) + visualize.PAD
    assert sheet.getpixel((visualize.PAD + 8, label + visualize.PAD + 8)) == (255, 0, 0)


def test_grid_titles_wider_than_a_cell_are_broken_into_lines_that_fit() -> None:
    # A sweep's "cand_nz_c22@global_only+recal" ran into the next column's title.
    from PIL import ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title = "cand_nz_c22@global_only+recal"
    fitted = visualize._fit(draw, title, 110)
    assert fitted.split("\n") == ["cand_nz_c22", "@global_only+recal"]
    assert all(draw.textlength(line) <= 110 for line in fitted.split("\n"))
    assert visualize._fit(draw, "input", 110) == "input"
    assert visualize._fit(draw, "x" * 40, 30) == "x" * 40  # no place to break: left whole
    assert visualize._fit(draw, "full method\nstripes v1", 40) == "full\nmethod\nstripes\nv1"
    red = Image.new("RGB", (10, 10), "red")
    sheet = visualize.grid({title: [red], "input": [red]}, cell=112)
    label = visualize.LABEL_HEIGHT + visualize.LINE_HEIGHT
    assert sheet.height == label + (112 + visualize.PAD) + visualize.PAD
