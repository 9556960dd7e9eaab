"""Bad recipe-feature input through the real binary: one line on stderr, non-zero exit,
nothing written; and a bad .npz named by an ablation spec is refused before any store."""
import os

import numpy as np
import pytest

from cli_helpers import run


@pytest.mark.parametrize("args, message", [
    (["--optimizer", "rmsprop"], "'rmsprop' is invalid for '--optimizer"),
    (["--dropout", "1"], "dropout must be in [0, 1), got 1.0"),
    (["--dropout", "-0.5"], "dropout must be in [0, 1)"),
    (["--label-smoothing", "2"], "label smoothing must be in [0, 1], got 2.0"),
    (["--augment"], "random crops and flips need 2-D images (C, H, W), the data set has samples of shape (1, 32)"),
    (["--crop-padding", "2"], "--crop-padding and --no-flip need --augment"),
    (["--no-flip"], "--crop-padding and --no-flip need --augment"),
    (["--no-augment", "--crop-padding", "2", "--dataset", "digits"], "--crop-padding and --no-flip need --augment"),
    (["--augment", "--crop-padding", "-1", "--dataset", "digits"], "crop padding must be >= 0, got -1"),
])
def test_bad_feature_values_are_one_line(tmp_path, args, message):
    out = tmp_path / "model.npz"
    base = [] if "--dataset" in args else ["--dataset", "synthetic"]
    p = run(["train"] + base + ["--steps", "1", "--json", "--save", out] + args)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], p.stderr
    assert p.stdout == "" and not out.exists()


def test_features_reach_the_report(tmp_path):
    import json
    p = run(["train", "--dataset", "digits", "--steps", "4", "--json", "--quiet", "--width", "4",
             "--optimizer", "adamw", "--augment", "--crop-padding", "1", "--no-flip", "--dropout", "0.2",
             "--label-smoothing", "0.05", "--weight-standardization"])
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["optimizer"] == "adamw" and r["lr"] == 1e-3 and r["weight_decay"] == 1e-2
    assert r["augment"] == {"crop_padding": 1, "flip": False}
    assert r["dropout"] == 0.2 and r["label_smoothing"] == 0.05 and r["weight_standardization"] == 1e-6


def test_no_augment_and_the_default_reach_the_report():
    """digits is not augmented by default; --augment / --no-augment are stated in the report."""
    import json
    for flags, expected in [([], None), (["--augment"], {"crop_padding": 4, "flip": True}), (["--no-augment"], None)]:
        p = run(["train", "--dataset", "digits", "--steps", "1", "--json", "--quiet", "--width", "4"] + flags)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["augment"] == expected, flags


def test_ablation_spec_with_a_bad_npz_is_refused_before_the_store(tmp_path):
    bad = tmp_path / "bad.npz"
    rng = np.random.default_rng(0)
    np.savez(str(bad), x_train=rng.normal(size=(8, 1, 4, 4)).astype(np.float32), y_train=np.arange(8) % 2,
             x_test=rng.normal(size=(4, 1, 4, 4)).astype(np.float32), y_test=np.arange(3) % 2)
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: npz-bad\nbase:\n  dataset: %s\n  model: {depth: 1, width: 4, norm: {name: bn, options: {}}}\n"
                    "  steps: 1\ngrid:\n  model.norm.name: [bn, ln]\nseeds: 1\n" % bad)
    store = tmp_path / "s.sqlite"
    p = run(["ablate", "run", spec, "--store", store])
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "y_test has 3 labels but x_test has 4 samples" in lines[0], p.stderr
    assert not store.exists()
