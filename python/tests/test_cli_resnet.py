"""End-to-end: the ResNet family through `normlab train` and `normlab ablate` (issue 14)."""
import json
import os

import pytest

from cli_helpers import ROOT, run


def train_json(args, timeout=300):
    res = run(["train", "--dataset", "digits", "--json", "--quiet", "--threads", "1"] + args, timeout=timeout)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout)


def test_resnet20_trains_on_8x8_digits():
    out = train_json(["--model", "resnet20", "--steps", "3"])
    model = out["model"]
    assert model["name"] == "resnet" and model["depth"] == 20 and model["width"] == 16
    assert model["shortcut"] == "A" and model["preact"] is False and model["zero_init_residual"] is False
    # 1-channel input: the paper's 0.27M minus 2 of the stem's 3 input channels (2 * 16 * 9 = 288).
    assert model["parameters"] == 269722 - 288
    assert out["steps"] == 3 and not out["diverged"]
    # the norm slot after every convolution: stem + 2 per block
    layers = [t["layer"] for t in out["norm_telemetry"]]
    assert len(layers) == 19 and layers[0] == "stem.norm" and layers[-1] == "layer3.2.norm2"


def test_resnet_runs_are_deterministic():
    args = ["--model", "preact-resnet8", "--shortcut", "B", "--zero-init-residual", "--norm", "gn",
            "--norm-set", "num_groups=4", "--steps", "2", "--seed", "5"]
    a, b = train_json(args), train_json(args)
    a.pop("seconds"), b.pop("seconds")
    assert a == b
    assert a["model"]["preact"] is True and a["model"]["shortcut"] == "B"
    assert "layer2.0.shortcut.norm" not in [t["layer"] for t in a["norm_telemetry"]]   # pre-act projection: no norm
    assert a["norm_telemetry"][-1]["layer"] == "final.norm"


def test_python_plugin_fills_resnet_slots():
    plugin = os.path.join(ROOT, "python", "plugins", "rms_norm.py")
    out = train_json(["--plugin", plugin, "--model", "resnet8", "--shortcut", "b", "--norm", "rms_norm_py", "--steps", "2"])
    assert {t["method"] for t in out["norm_telemetry"]} == {"rms_norm_py"}
    assert len(out["norm_telemetry"]) == 1 + 2 * 3 + 2


def test_frozen_stages_on_a_resnet(tmp_path):
    out = train_json(["--model", "resnet8", "--frozen-stages", "2", "--steps", "2"])
    frozen = {t["layer"]: (t["norm_eval"], t["requires_grad"]) for t in out["norm_telemetry"]}
    assert frozen["stem.norm"] == (True, False) and frozen["layer2.0.norm2"] == (True, False)
    assert frozen["layer3.0.norm1"] == (False, True)


@pytest.mark.parametrize("args, message", [
    (["--model", "resnet21"], "6n+2"),
    (["--model", "resnet", "--depth", "10"], "6n+2"),
    (["--model", "vgg16"], "unknown model 'vgg16'"),
    (["--model", "resnet20", "--shortcut", "C"], "--shortcut must be A or B"),
    (["--shortcut", "B"], "apply to resnet models only"),
    (["--zero-init-residual"], "apply to resnet models only"),
    (["--model", "resnet20", "--depth", "32"], "gives depth 20"),
    (["--model", "resnet20", "--downsample", "max"], "plain net only"),
    (["--model", "resnet20", "--head", "flatten"], "plain net only"),
    (["--model", "preact-resnet20", "--norm-position", "after"], "original form (preact false)"),
    (["--model", "resnet8", "--norm", "none", "--zero-init-residual"], "needs a norm layer"),
    (["--model", "resnet8", "--norm", "gn", "--norm-set", "num_groups=4", "--norm-set", "affine=false",
      "--zero-init-residual"], "scale parameter 'weight'"),
    (["--model", "resnet8", "--norm", "gn", "--norm-set", "num_groups=4", "--norm-eval"], "running statistics"),
])
def test_bad_resnet_options_are_one_line_errors(tmp_path, args, message):
    save = tmp_path / "model.npz"
    res = run(["train", "--dataset", "digits", "--steps", "1", "--quiet", "--save", save] + args)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert res.stdout == "" and not save.exists()


SPEC = """
name: resnet-e2e
base:
  model: {name: resnet8, width: 4, shortcut: B, norm: {name: bn}}
  dataset: {name: digits}
  batch_size: 32
  steps: 2
grid:
  model.preact: [false, true]
seeds: 1
report:
  rows: [model.preact]
  metrics: [test_accuracy]
"""


def test_ablation_cells_build_resnets(tmp_path):
    spec = tmp_path / "resnet.yaml"
    spec.write_text(SPEC)
    res = run(["ablate", spec, "--store", tmp_path / "r.sqlite", "--jobs", "1", "--threads", "1"], timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]


@pytest.mark.parametrize("model, message", [
    ("{name: resnet, depth: 9}", "6n+2"),
    ("{name: resnet20, depth: 32}", "model.depth"),
    ("{name: densenet}", "model.name"),
    ("{name: resnet, shortcut: Z}", "model.shortcut"),
    ("{name: preact-resnet20, preact: false}", "model.preact"),
])
def test_ablation_rejects_bad_resnet_specs(tmp_path, model, message):
    spec = tmp_path / "bad.yaml"
    spec.write_text(SPEC.replace("{name: resnet8, width: 4, shortcut: B, norm: {name: bn}}", model))
    res = run(["ablate", spec, "--store", tmp_path / "bad.sqlite"])
    assert res.returncode != 0 and message in res.stderr, res.stderr
    assert not os.path.exists(tmp_path / "bad.sqlite")
