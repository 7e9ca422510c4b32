"""``fsg eval`` on a tiny registry of micro generators: every mode of a style and Gatys on the
same garments, the Fig. 4 sheet, metrics.json / metrics.md, and the failure paths."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import micro_config
from PIL import Image

from fsg_ray import config
from fsg_ray.app import evaluate, evaluate_fronts, evaluate_styles
from fsg_ray.app.main import main
from fsg_ray.core import algorithm
from fsg_ray.core.models import VGGWeights
from fsg_ray.core.strength import compare_fronts
from fsg_ray.io import registry, synthetic, visualize
from fsg_ray.io.storage import Storage

#: registry entry -> (mode, base style)
ENTRIES = {
    "stripes": ("full", "stripes"),
    "stripes-feeds": ("global_only", "stripes"),
    "stripes-mgan": ("patch_only", "stripes"),
    "dots": ("full", "dots"),
}


@pytest.fixture(scope="module")
def setup(vgg: VGGWeights, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two 48 px held-out garments with masks, style images, and a registry of micro
    generators: stripes in three modes (published in reverse order) and dots."""
    root = tmp_path_factory.mktemp("eval")
    synthetic.write_dataset(
        root / "data", seed=0, n_full=0, n_shop=0, n_heldout=2, full_size=48,
        shop_size=48, style_size=32, styles=("stripes", "dots"),
    )  # fmt: skip
    reg = str(root / "registry")
    for name, (mode, base) in reversed(ENTRIES.items()):
        cfg = config.override(micro_config(), schedule={"mode": mode})
        style = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(len(name)))
        run = algorithm.new_run(cfg, vgg, style, torch.device("cpu"))
        meta = {
            "config": config.to_dict(cfg),
            "style_image": str(root / "data" / "styles" / f"{base}.png"),
            "mode": mode,
            "base_style": base,
        }
        registry.publish(Storage(), reg, name, algorithm.generator_state(run), meta)
    return {
        "registry": reg,
        "images": str(root / "data" / "heldout"),
        "masks": str(root / "data" / "heldout_masks"),
        "root": str(root),
    }


@pytest.fixture(scope="module")
def evaluated(setup: dict[str, str]) -> Path:
    out = Path(setup["root"]) / "out"
    args = ["eval", "--registry", setup["registry"], "--style", "stripes"]
    args += ["--images", setup["images"], "--masks", setup["masks"], "--gatys-iters", "2"]
    assert main([*args, "--out", str(out)]) == 0
    return out


def test_registry_modes_finds_every_mode_of_a_base_style(setup: dict[str, str]) -> None:
    found = registry.modes(Storage(), setup["registry"], "stripes")
    assert [(f.style, registry.mode_of(f)) for f in found] == [
        ("stripes", "full"),
        ("stripes-feeds", "global_only"),
        ("stripes-mgan", "patch_only"),
    ]
    assert [f.style for f in registry.modes(Storage(), setup["registry"], "dots")] == ["dots"]
    with pytest.raises(registry.StyleNotFound, match="known styles: dots, stripes"):
        registry.modes(Storage(), setup["registry"], "waves")


def test_the_sheet_has_a_row_per_garment_and_a_column_per_method(evaluated: Path) -> None:
    sheet = Image.open(evaluated / evaluate.SHEET)
    cell, pad = evaluate.SHEET_CELL, visualize.PAD
    label = visualize.LABEL_HEIGHT + visualize.LINE_HEIGHT  # two-line titles
    columns = 6  # style, input, full, global_only, patch_only, gatys
    assert sheet.size == (columns * (cell + pad) + pad, label + 2 * (cell + pad) + pad)
    below_style = (pad + cell // 2, label + pad + (cell + pad) + cell // 2)
    assert sheet.getpixel(below_style) == (255, 255, 255)  # the style image: first row only


def test_metrics_json_scores_every_method_on_every_garment(evaluated: Path) -> None:
    report = json.loads((evaluated / evaluate.METRICS_JSON).read_text())
    methods = [(m["method"], m["mode"]) for m in report["methods"]]
    assert methods == [
        ("input", "input"),
        ("stripes", "full"),
        ("stripes-feeds", "global_only"),
        ("stripes-mgan", "patch_only"),
        ("gatys", "gatys"),
    ]
    assert report["train_vgg"] == "random:0" and report["eval_vgg"] == "random:1"
    keys = {key for key, _, _ in evaluate.COLUMNS}
    for m in report["methods"]:
        assert [r["image"] for r in m["per_image"]] == ["000000", "000001"]
        assert set(m["mean"]) == keys
        assert all(math.isfinite(v) for v in m["mean"].values())
        assert m["mean"]["style_gram"] == pytest.approx(
            sum(r["style_gram"] for r in m["per_image"]) / 2
        )
    unchanged = report["methods"][0]["mean"]
    assert unchanged["structure"] == pytest.approx(1.0) and unchanged["leakage"] == 0.0
    assert report["methods"][-1]["mean"]["seconds_per_image"] > 0
    for name in ("stripes", "stripes-feeds", "stripes-mgan", "gatys"):
        out = Image.open(evaluated / evaluate.OUTPUTS / name / "000000.png")
        assert out.size == (48, 48)


def test_each_method_has_a_strength_front_and_the_fronts_are_drawn(evaluated: Path) -> None:
    report = json.loads((evaluated / evaluate.METRICS_JSON).read_text())
    assert report["strengths"] == list(config.evaluate.DEFAULT_STRENGTHS)
    unchanged, *methods = report["methods"]
    assert "front" not in unchanged
    for m in methods:
        front = m["front"]
        assert [p["strength"] for p in front] == [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2]
        # Strength 0 is the input, 1 the method as trained: the same means as their rows.
        for p, mean in ((front[0], unchanged["mean"]), (front[4], m["mean"])):
            assert p["style_swd"] == pytest.approx(mean["style_swd"])
            assert p["structure"] == pytest.approx(mean["structure"])
        assert all(math.isfinite(p["style_swd"]) and math.isfinite(p["structure"]) for p in front)
    # Strength 0.5 is scored from the blended outputs themselves.
    full = next(m for m in methods if m["mode"] == "full")
    assert full["front"][2]["style_swd"] != full["front"][4]["style_swd"]
    png = Image.open(evaluated / evaluate_fronts.FRONTS_PNG)
    assert png.format == "PNG" and png.width > 300
    # The full method at each strength: 8 columns (0 to 2), one row per garment.
    strip = Image.open(evaluated / evaluate_fronts.STRENGTHS_PNG)
    cell, pad = evaluate.SHEET_CELL, visualize.PAD
    label = visualize.LABEL_HEIGHT + visualize.LINE_HEIGHT
    assert strip.size == (8 * (cell + pad) + pad, label + 2 * (cell + pad) + pad)


def test_no_strengths_means_no_fronts(setup: dict[str, str], tmp_path: Path) -> None:
    assert main([*_eval_args(setup, tmp_path, "--styles", "stripes"), "--strengths", "none"]) == 0
    report = json.loads((tmp_path / "stripes" / evaluate.METRICS_JSON).read_text())
    assert report["strengths"] == [] and not any("front" in m for m in report["methods"])
    assert not (tmp_path / "stripes" / evaluate_fronts.FRONTS_PNG).exists()
    assert not (tmp_path / "stripes" / evaluate_fronts.STRENGTHS_PNG).exists()
    summary = json.loads((tmp_path / evaluate_styles.SUMMARY_JSON).read_text())
    assert summary["fronts"] == [] and len(summary["verdicts"]) == 2
    assert "Fronts (" not in (tmp_path / evaluate_styles.SUMMARY_MD).read_text()


def test_bad_strengths_fail_with_exit_2(
    setup: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = _eval_args(setup, tmp_path / "out", "--style", "stripes")
    assert main([*args, "--strengths", "0.5,5"]) == 2
    assert "eval.strengths[1]: must be a number in [0, 4], got 5.0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--strengths", "half"])
    assert "expected comma-separated numbers or 'none', got 'half'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_metrics_md_is_the_table_of_means(evaluated: Path) -> None:
    text = (evaluated / evaluate.METRICS_MD).read_text()
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert lines[0].startswith("| method | mode | style Gram ↓ | style SWD ↓ | structure ↑")
    assert len(lines) == 2 + 5  # header, rule, input + four methods
    assert lines[3].startswith("| stripes v1 | full |")
    assert "style Gram under VGG `random:1`" in text


def test_estimated_masks_and_no_gatys(setup: dict[str, str], tmp_path: Path) -> None:
    cfg = config.EvalConfig(
        setup["registry"], "dots", setup["images"], str(tmp_path), gatys_iters=0
    )
    report = evaluate.evaluate(cfg, Storage())
    assert [m["method"] for m in report["methods"]] == ["input", "dots"]
    assert report["masks"] == "estimated (auto_mask)"
    assert report["methods"][0]["mean"]["silhouette_iou"] == 1.0  # same estimator both sides
    assert (
        Image.open(tmp_path / evaluate.SHEET).width == 3 * (evaluate.SHEET_CELL + visualize.PAD) + 4
    )


def test_default_eval_vgg_is_another_network() -> None:
    assert evaluate.default_eval_vgg("random:0") == "random:1"
    assert evaluate.default_eval_vgg("random:41") == "random:42"
    assert evaluate.default_eval_vgg("s3://b/vgg19.pth") == "imagenet"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--style": "waves"}, "no style 'waves' in .*known styles: dots, stripes"),
        ({"--style": "Bad!"}, r"eval\.style: 'Bad!' is not a valid style name"),
        ({"--images": "{tmp}/EMPTY"}, "no images"),
        ({"--masks": "{tmp}/NOMASKS"}, "000000.jpg: no mask 000000.* below"),
        ({"--gatys-iters": "-1"}, r"eval\.gatys_iters: must be >= 0"),
    ],
)
def test_bad_arguments_fail_with_exit_2_and_a_reason(
    setup: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    change: dict[str, str],
    message: str,
) -> None:
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "NOMASKS").mkdir()
    (tmp_path / "NOMASKS" / "other.png").write_bytes(b"")
    args: dict[str, Any] = {
        "--registry": setup["registry"],
        "--style": "stripes",
        "--images": setup["images"],
        "--masks": setup["masks"],
        "--gatys-iters": "0",
        "--out": str(tmp_path / "out"),
    }
    args.update({key: value.format(tmp=tmp_path) for key, value in change.items()})
    assert main(["eval", *[x for kv in args.items() for x in kv]]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out" / evaluate.SHEET).exists()


def _eval_args(setup: dict[str, str], out: Path, *which: str) -> list[str]:
    return [
        "eval", "--registry", setup["registry"], *which, "--images", setup["images"],
        "--masks", setup["masks"], "--gatys-iters", "0", "--out", str(out),
    ]  # fmt: skip


def test_styles_all_evaluates_each_style_into_its_folder_with_one_summary(
    setup: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "all"
    assert main(_eval_args(setup, out, "--styles", "all")) == 0
    printed = capsys.readouterr().out
    for style in ("dots", "stripes"):
        for name in (evaluate.SHEET, evaluate.METRICS_JSON, evaluate.METRICS_MD):
            assert (out / style / name).is_file(), (style, name)
    summary = json.loads((out / evaluate_styles.SUMMARY_JSON).read_text())
    assert summary["styles"] == ["dots", "stripes"]
    assert [(r["style"], r["mode"]) for r in summary["rows"]] == [
        ("dots", "input"), ("dots", "full"), ("stripes", "input"), ("stripes", "full"),
        ("stripes", "global_only"), ("stripes", "patch_only"),
    ]  # fmt: skip
    stripes = json.loads((out / "stripes" / evaluate.METRICS_JSON).read_text())["methods"]
    input_swd = stripes[0]["mean"]["style_swd"]
    for row, method in zip(summary["rows"][2:], stripes, strict=True):
        assert row["method"] == method["method"]
        for key in ("style_swd", "structure", "silhouette_iou"):
            assert row[key] == pytest.approx(method["mean"][key])
        assert row["swd_ratio"] == pytest.approx(method["mean"]["style_swd"] / input_swd)
    # Verdicts: the full method against both ablations, computed from the measured means.
    full = stripes[1]["mean"]
    assert [v["ablation"] for v in summary["verdicts"]] == ["global_only", "patch_only"]
    for verdict, ablation in zip(summary["verdicts"], stripes[2:], strict=True):
        better = (
            full["style_swd"] <= ablation["mean"]["style_swd"]
            and full["structure"] >= ablation["mean"]["structure"]
        )
        assert verdict["pareto_better"] == better
        assert verdict["line"].startswith(f"stripes: full vs {verdict['ablation']}: ")
    text = (out / evaluate_styles.SUMMARY_MD).read_text()
    assert text in printed  # the summary is printed as written
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert table[0] == (
        "| style | method | mode | style SWD ↓ | SWD / input ↓ | structure ↑ | silhouette IoU ↑ |"
    )
    assert len(table) == 2 + 6 and table[2].startswith("| dots | input | input | ")
    assert "- dots: no full method and ablation to compare" in text
    assert sum(line.startswith("- stripes: full vs ") for line in text.splitlines()) == 4
    # Fronts: the full method's against each ablation's, from the fronts in metrics.json.
    assert [f["ablation"] for f in summary["fronts"]] == ["global_only", "patch_only"]
    ours = evaluate_fronts.from_rows(stripes[1]["front"])
    for row, ablation in zip(summary["fronts"], stripes[2:], strict=True):
        c = compare_fronts(ours, evaluate_fronts.from_rows(ablation["front"]))
        assert row["outcome"] == c.outcome and row["min_gap"] == pytest.approx(c.min_gap)
        assert f"- {row['line']}" in text
        assert row["line"].startswith(f"stripes: full vs {row['ablation']}, fronts: ")


def test_styles_list_evaluates_only_those(setup: dict[str, str], tmp_path: Path) -> None:
    assert main(_eval_args(setup, tmp_path, "--styles", "dots")) == 0
    summary = json.loads((tmp_path / evaluate_styles.SUMMARY_JSON).read_text())
    assert summary["styles"] == ["dots"] and not (tmp_path / "stripes").exists()


def test_unknown_styles_fail_before_any_evaluation(
    setup: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    assert main(_eval_args(setup, out, "--styles", "stripes, waves,zig")) == 2
    err = capsys.readouterr().err
    assert "unknown styles 'waves', 'zig'" in err and "known styles: dots, stripes" in err
    assert not out.exists()  # checked before the first style ran
    assert main(_eval_args(setup, out, "--styles", "stripes,Bad!")) == 2
    assert "eval.styles[1]: 'Bad!' is not a valid style name" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --style and --styles are exclusive
        main(_eval_args(setup, out, "--style", "dots", "--styles", "all"))
    assert "not allowed with argument" in capsys.readouterr().err


def test_all_on_an_empty_registry_fails(tmp_path: Path) -> None:
    with pytest.raises(registry.StyleNotFound, match="no styles in"):
        evaluate_styles.resolve_styles(Storage(), str(tmp_path), ["all"])


def _method(name: str, mode: str, swd: float, structure: float) -> dict[str, Any]:
    mean = {"style_swd": swd, "structure": structure, "silhouette_iou": 0.9}
    return {"method": name, "mode": mode, "version": "v1", "mean": mean}


def test_verdicts_from_constructed_rows() -> None:
    methods = [
        _method("input", "input", 0.8, 1.0),
        _method("stripes", "full", 0.41, 0.71),
        _method("stripes-feeds", "global_only", 0.45, 0.66),
        _method("stripes-mgan", "patch_only", 0.30, 0.80),
    ]
    better, worse = evaluate_styles.verdicts("stripes", methods)
    assert better.pareto_better and better.line == (
        "stripes: full vs global_only: Pareto-better (SWD 0.41 ≤ 0.45, structure 0.71 ≥ 0.66)"
    )
    assert not worse.pareto_better and worse.line == (
        "stripes: full vs patch_only: not Pareto-better (SWD 0.41 > 0.3, structure 0.71 < 0.8)"
    )
    # Ties count as no worse; better on one axis only is not Pareto-better.
    tie = [_method("a", "full", 0.5, 0.6), _method("b", "global_only", 0.5, 0.6)]
    assert evaluate_styles.verdicts("s", tie)[0].pareto_better
    trade = [_method("a", "full", 0.4, 0.5), _method("b", "global_only", 0.5, 0.6)]
    (traded,) = evaluate_styles.verdicts("s", trade)
    assert not traded.pareto_better and "(SWD 0.4 ≤ 0.5, structure 0.5 < 0.6)" in traded.line
    # Several entries of one mode are named; no full method, no verdicts.
    two = [*trade, _method("c", "global_only", 0.3, 0.4)]
    assert [v.ablation for v in evaluate_styles.verdicts("s", two)] == [
        "global_only (b)",
        "global_only (c)",
    ]
    assert evaluate_styles.verdicts("s", methods[2:]) == []


def test_summary_table_from_constructed_reports() -> None:
    reports = {
        "stripes": {
            "methods": [
                _method("input", "input", 0.8, 1.0),
                _method("stripes", "full", 0.4, 0.7),
                _method("stripes-feeds", "global_only", 0.5, 0.6),
            ]
        },
        "leopard": {"methods": [_method("leopard", "full", 0.3, 0.5)]},  # no input row
    }
    result = evaluate_styles.summarise(reports)
    assert [r["swd_ratio"] for r in result["rows"]] == [pytest.approx(1.0), 0.5, 0.625, None]
    text = evaluate_styles.format_summary(result)
    assert "| stripes | stripes v1 | full | 0.4 | 0.5 | 0.7 | 0.9 |" in text
    assert "| leopard | leopard v1 | full | 0.3 | - | 0.5 | 0.9 |" in text
    assert text.index("- stripes: full vs global_only: Pareto-better") < text.index(
        "- leopard: no full method and ablation to compare"
    )


def _fronted(name: str, mode: str, *points: tuple[float, float]) -> dict[str, Any]:
    """A method row with a front: (SWD, structure) at strengths 0, 1, 2."""
    m = _method(name, mode, *points[1])
    m["front"] = [{"strength": float(s), "style_swd": p[0], "structure": p[1]}
                  for s, p in enumerate(points)]  # fmt: skip
    return m


def test_front_verdicts_from_constructed_rows() -> None:
    methods = [
        _method("input", "input", 0.4, 1.0),
        _fronted("stripes", "full", (0.4, 1.0), (0.25, 0.85), (0.2, 0.6)),
        _fronted("stripes-feeds", "global_only", (0.4, 1.0), (0.15, 0.45), (0.12, 0.2)),
        _fronted("stripes-mgan", "patch_only", (0.4, 1.0), (0.3, 0.97), (0.27, 0.9)),
    ]
    feeds, mgan = evaluate_styles.front_verdicts("stripes", methods)
    assert feeds["outcome"] == "higher" and feeds["full_reach"] == 0.2
    assert feeds["line"].startswith("stripes: full vs global_only, fronts: full higher (")
    assert feeds["line"].endswith("; only global_only reaches SWD 0.12 (full: 0.2)")
    assert mgan["outcome"] == "lower" and mgan["min_gap"] < 0
    assert mgan["line"].endswith("; only full reaches SWD 0.2 (patch_only: 0.27)")
    text = evaluate_styles.format_summary(
        evaluate_styles.summarise({"stripes": {"methods": methods}})
    )
    assert text.index("Pareto-better") < text.index("Fronts (") < text.index(feeds["line"])
    # Rows without fronts (strengths off, or an older report) give no front verdicts.
    assert evaluate_styles.front_verdicts("s", [_method("a", "full", 0.4, 0.5)]) == []


def test_an_image_key_with_dotdot_cannot_name_an_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 keys may hold ``..``: ``imgs/../x.jpg`` would write ``outputs/<method>/../x.png``."""
    storage = Storage()
    escape = f"{tmp_path}/imgs/../x.jpg"
    monkeypatch.setattr(storage, "list_files", lambda *args, **kw: [escape])
    monkeypatch.setattr(storage, "read_bytes", lambda uri: pytest.fail(f"read {uri}"))
    with pytest.raises(ValueError, match=r"cannot name an output after .*imgs/\.\./x\.jpg"):
        evaluate.load_garments(storage, f"{tmp_path}/imgs", None, 64)
