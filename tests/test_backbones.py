import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import sklearn_resnet
from sklearn_resnet import ResNetClassifier
from sklearn_resnet.backbones import (
    BLOCK_TYPES,
    ResidualCNN,
    ResidualMLP,
    blocks_for_depth,
    build_backbone,
    cnn_output_positions,
    nearest_depths,
)
from sklearn_resnet.backbones.layers import GeneratorDropout, dropout_rate


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_resnet20_has_the_papers_parameter_count():
    net = build_backbone("cnn", (3, 32, 32), 10, depth=20)
    assert n_params(net) == 272_474
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize(
    "depth, block, per_stage",
    [
        (20, "basic", 3),
        (32, "basic", 5),
        (56, "basic", 9),
        (110, "basic", 18),
        (20, "preact", 3),
        (29, "bottleneck", 3),
        (164, "bottleneck", 18),
    ],
)
def test_cnn_depth_formulas(depth, block, per_stage):
    assert blocks_for_depth("cnn", depth, block) == per_stage
    net = build_backbone("cnn", (1, 8, 8), 3, depth=depth, block=block)
    assert [len(stage) for stage in net.stages] == [per_stage] * 3
    projections = {
        id(m)
        for m in net.modules()
        if isinstance(m, torch.nn.Sequential) and len(m) == 2 and isinstance(m[0], torch.nn.Conv2d)
    }
    shortcut_convs = sum(
        1 for m in net.modules() if isinstance(m, torch.nn.Sequential) and id(m) in projections
    )
    convs = sum(1 for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    # He's depth counts the main-path convolutions and the head, not projection shortcuts.
    assert convs - shortcut_convs + 1 == depth


def test_mlp_depth_is_two_per_block_plus_two():
    net = build_backbone("mlp", (7,), 2, depth=10, width=16)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 10
    assert len(net.blocks) == 4


@pytest.mark.parametrize("kind, shape", [("mlp", (7,)), ("cnn", (1, 8, 8))])
def test_every_block_type_builds_and_an_unknown_one_is_refused_by_name(kind, shape):
    for block in BLOCK_TYPES:
        assert build_backbone(kind, shape, 2, depth=8 if kind == "mlp" else 20, block=block)
    network = ResidualMLP if kind == "mlp" else ResidualCNN
    refused = r"Unknown block 'wide'; expected one of \['basic', 'bottleneck', 'preact'\]"
    with pytest.raises(ValueError, match=refused):
        build_backbone(kind, shape, 2, block="wide")
    with pytest.raises(ValueError, match=refused):
        network(shape[0] if kind == "mlp" else shape, 2, 1, 8, "wide")


def test_mlp_block_is_pre_norm_residual():
    net = ResidualMLP(5, 1, n_blocks=1, width=8)
    block = net.blocks[0]
    x = torch.randn(3, 8)
    expected = x + block.drop2(block.linear2(block.drop1(block.act(block.linear1(block.norm(x))))))
    torch.testing.assert_close(block(x), expected)


def test_mlp_bottleneck_narrows_hidden_layer():
    net = ResidualMLP(5, 1, n_blocks=1, width=64, block="bottleneck")
    assert net.blocks[0].linear1.out_features == 16


@pytest.mark.parametrize("shape, conv", [((1, 40), torch.nn.Conv1d), ((2, 8, 8), torch.nn.Conv2d)])
def test_cnn_builds_1d_and_2d(shape, conv):
    net = build_backbone("cnn", shape, 4, depth=8, width=4)
    assert any(isinstance(m, conv) for m in net.modules())
    assert net(torch.zeros(3, *shape)).shape == (3, 4)


def test_cnn_rejects_3d_convolutions():
    with pytest.raises(ValueError, match="1-D and 2-D"):
        ResidualCNN((1, 4, 4, 4), 2, n_blocks=1)


@pytest.mark.parametrize("block", ["basic", "bottleneck", "preact"])
def test_zero_init_last_makes_blocks_start_as_identity_branches(block):
    net = build_backbone(
        "cnn", (1, 8, 8), 2, depth=20 if block != "bottleneck" else 29, block=block
    )
    net.eval()
    block0 = net.stages[0][1]
    x = torch.randn(2, block0.conv1.in_channels, 8, 8)
    relu_x = torch.relu(x)
    out = block0(relu_x if block != "preact" else x)
    torch.testing.assert_close(out, relu_x if block != "preact" else x)


@pytest.mark.parametrize(
    "kind, depth, block, listed",
    [
        ("cnn", 21, "basic", "14, 20, 26, 32"),
        ("cnn", 30, "bottleneck", "29, 38"),
        ("mlp", 7, "basic", "4, 6, 8, 10"),
    ],
)
def test_bad_depth_lists_valid_depths_near_it(kind, depth, block, listed):
    shape = (1, 8, 8) if kind == "cnn" else (4,)
    with pytest.raises(ValueError, match=f"Valid depths near it: .*{listed}"):
        build_backbone(kind, shape, 2, depth=depth, block=block)


@pytest.mark.parametrize(
    "depth, listed",
    [
        (100, r"must be one of \.\.\., 86, 92, 98, 104, 110, \.\.\. \(6n\+2\)"),
        (5, r"must be one of 8, 14, 20, 26, 32, \.\.\. \(6n\+2\)"),
    ],
)
def test_an_invalid_depth_lists_its_neighbours_and_whether_smaller_ones_exist(depth, listed):
    X = np.zeros((8, 1, 8, 8))
    with pytest.raises(ValueError, match=listed + rf".* Got {depth} instead\."):
        ResNetClassifier(depth=depth).fit(X, np.arange(8) % 2)


def test_nearest_depths_are_valid_and_sorted():
    near = nearest_depths("cnn", 100, "basic")
    assert near == sorted(near) and 98 in near and 104 in near and len(near) == 5


def test_unknown_backbone_kind():
    with pytest.raises(ValueError, match="Unknown backbone 'rnn'"):
        build_backbone("rnn", (4,), 2)


def test_backbones_import_neither_sklearn_nor_skorch():
    # The parent package imports the estimators, so load the subpackage on its own, from
    # its folder, in a process that imports nothing of the package before.
    root = Path(sklearn_resnet.__file__).parent
    result = subprocess.run(
        [sys.executable, "-c", _ISOLATED_IMPORT, str(root)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"


_ISOLATED_IMPORT = """
import importlib.util, pathlib, sys, types
root = pathlib.Path(sys.argv[1])
pkg = types.ModuleType("iso"); pkg.__path__ = [str(root)]; sys.modules["iso"] = pkg
spec = importlib.util.spec_from_file_location(
    "iso.backbones", root / "backbones" / "__init__.py",
    submodule_search_locations=[str(root / "backbones")])
module = importlib.util.module_from_spec(spec); sys.modules["iso.backbones"] = module
spec.loader.exec_module(module)
module.build_backbone("cnn", (1, 8, 8), 2)
print([m for m in sys.modules if m.split(".")[0] in ("sklearn", "skorch")])
"""


@pytest.mark.parametrize("norm", ["layer", "batch"])
@pytest.mark.parametrize("activation", ["relu", "gelu", "silu"])
def test_mlp_forward_equals_its_layers_called_one_by_one(norm, activation):
    # The forward pass goes through the submodules, so forward hooks, dynamic
    # quantisation and parametrisations see every layer; the numbers are theirs.
    torch.manual_seed(0)
    net = ResidualMLP(12, 3, n_blocks=2, width=16, norm=norm, activation=activation, dropout=0.2)
    net.eval()
    x = torch.randn(40, 12)
    with torch.no_grad():
        stream = net.stem(net.input_scaler(x))
        for b in net.blocks:
            stream = stream + b.drop2(b.linear2(b.drop1(b.act(b.linear1(b.norm(stream))))))
        expected = net.head(net.head_act(net.head_norm(stream)))
        assert torch.equal(net(x), expected)


def test_mlp_layers_can_be_swapped_by_torch_tools():
    net = ResidualMLP(12, 3, n_blocks=2, width=16).eval()
    seen = []
    net.blocks[0].linear1.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    x = torch.randn(5, 12)
    expected = net(x)
    assert seen == [torch.Size([5, 16])]
    quantised = torch.ao.quantization.quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8)
    torch.testing.assert_close(quantised(x), expected, atol=0.1, rtol=0.1)


def test_linear_path_start_survives_large_offsets_and_autocast():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3)) + 1e5  # no scaling: the offset reaches the closed form
    X = X.astype(np.float32).astype(np.float64)  # the values the network sees
    y = X @ np.array([1.0, 2.0, 3.0]) - 6e5 + rng.normal(scale=0.1, size=500)
    net = ResidualMLP(3, 1, n_blocks=1, width=8, linear_path=True)
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    net.fit_linear_path(Xt, yt, None, alpha=1.0)
    np.testing.assert_allclose(
        net.linear.weight.detach().numpy().ravel(), [1.0, 2.0, 3.0], rtol=1e-2
    )
    # The linear path runs in float32 under autocast (the residual head starts at zero).
    scaled = ResidualMLP(3, 1, n_blocks=1, width=8, scaling="robust", linear_path=True)
    scaled.input_scaler.fit(X)
    scaled.fit_linear_path(Xt, yt, None, alpha=1.0)
    with torch.no_grad():
        full = scaled(Xt)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = scaled(Xt)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, full)


@pytest.mark.parametrize("block", ["basic", "bottleneck", "preact"])
def test_signal_cnn_in_channels_last_is_the_same_network_laid_out_as_height_one_images(block):
    torch.manual_seed(0)
    net = ResidualCNN((2, 50), 3, n_blocks=1, width=8, block=block, zero_init_last=False)
    keys = {k: v.shape for k, v in net.state_dict().items()}
    x = torch.randn(6, 2, 50)
    for mode in ("train", "eval"):
        getattr(net, mode)()
        with torch.no_grad():
            plain_features, plain = net.forward_features(x), net(x)
            net.to(memory_format=torch.channels_last)
            assert net.signal_channels_last
            features, out = net.forward_features(x), net(x)
            net.to(memory_format=torch.contiguous_format)
        assert not net.signal_channels_last
        assert features.shape == plain_features.shape  # (N, C, L) in both layouts
        torch.testing.assert_close(out, plain, rtol=1e-5, atol=1e-5)
    # Same parameters, buffers and saved state: only the computation's layout differs.
    assert {k: v.shape for k, v in net.state_dict().items()} == keys
    conv = net.stages[0][0].conv1
    seen = []
    conv.register_forward_hook(lambda module, args, output: seen.append(args[0].shape))
    net.to(memory_format=torch.channels_last)(x)
    assert seen == [(6, 8, 1, 50)]


def test_signal_layers_take_height_one_images_only_when_told():
    from sklearn_resnet.backbones.cnn import SignalBatchNorm1d, SignalConv1d

    conv = SignalConv1d(3, 5, 3, stride=2, padding=1)
    x = torch.randn(4, 3, 17)
    plain = conv(x)
    with pytest.raises(RuntimeError, match="conv1d"):
        conv(x.unsqueeze(2))  # a 1-D convolution until the network says otherwise
    conv.as_image = True
    torch.testing.assert_close(conv(x.unsqueeze(2)).squeeze(2), plain)
    norm = SignalBatchNorm1d(3)
    torch.testing.assert_close(norm(x.unsqueeze(2)).squeeze(2), norm(x))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("block", ["basic", "bottleneck", "preact"])
def test_signal_cnn_traces_with_fx_and_scripts_in_both_layouts(block):
    torch.manual_seed(0)
    depth = 11 if block == "bottleneck" else 8
    net = build_backbone("cnn", (2, 40), 3, depth=depth, width=8, block=block).eval()
    x = torch.randn(5, 2, 40)
    with torch.no_grad():
        expected = net(x)
        for layout in (torch.channels_last, torch.contiguous_format):
            net.to(memory_format=layout)
            for converted in (torch.fx.symbolic_trace(net), torch.jit.script(net)):
                torch.testing.assert_close(converted(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scaling", ["standard", "robust", "quantile"])
@pytest.mark.parametrize(("kind", "shape"), [("cnn", (2, 40)), ("cnn", (2, 6, 6)), ("mlp", (7,))])
def test_networks_with_fitted_input_scaling_trace_with_fx(kind, shape, scaling):
    torch.manual_seed(0)
    x = torch.randn(50, *shape)
    sizes = {"depth": 8, "width": 8} if kind == "cnn" else {"depth": 4, "width": 16}
    net = build_backbone(kind, shape, 3, scaling=scaling, **sizes).eval()
    net.input_scaler.fit(x.numpy())
    with torch.no_grad():
        torch.testing.assert_close(torch.fx.symbolic_trace(net)(x), net(x), rtol=0, atol=0)


def test_signal_cnn_unpickled_from_before_the_layout_flags_runs_in_its_recorded_layout():
    import pickle

    torch.manual_seed(0)
    net = ResidualCNN((1, 30), 2, n_blocks=1, width=8).eval()
    x = torch.randn(3, 1, 30)
    with torch.no_grad():
        expected = net(x)
    # Saved by an earlier version: the convolutions had no ``as_image`` of their own.
    net.to(memory_format=torch.channels_last)
    for module in net.modules():
        module.__dict__.pop("as_image", None)
    loaded = pickle.loads(pickle.dumps(net))
    assert loaded.signal_channels_last
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected, rtol=1e-5, atol=1e-5)
    # Saved before the network recorded its dimensions or layout at all.
    older = ResidualCNN((1, 30), 2, n_blocks=1, width=8).eval()
    older.load_state_dict(net.state_dict())
    for name in ("n_dims", "signal_channels_last"):
        del older.__dict__[name]
    older = pickle.loads(pickle.dumps(older))
    with torch.no_grad():
        torch.testing.assert_close(older(x), expected, rtol=1e-5, atol=1e-5)
        older.to(memory_format=torch.channels_last)  # no dimensions recorded: stays as is
        torch.testing.assert_close(older(x), expected, rtol=1e-5, atol=1e-5)


# ---- the architecture the docstrings describe ---------------------------------------------
@pytest.mark.parametrize(("kind", "shape"), [("mlp", (3,)), ("cnn", (1, 8))])
def test_a_depth_without_a_residual_block_is_refused(kind, shape):
    with pytest.raises(ValueError, match=r"n\+2"):
        build_backbone(kind, shape, 2, depth=2)


def test_the_mlp_flattens_samples_of_its_input_shape():
    net = build_backbone("mlp", (2, 3), 1, depth=4, width=8)
    assert net.stem.in_features == 6
    assert net(torch.zeros(4, 2, 3)).shape == (4, 1)


def test_each_stage_after_the_first_halves_the_feature_map_and_doubles_the_channels():
    net = ResidualCNN((3, 32, 32), 10, 1)
    assert net.forward_features(torch.zeros(1, 3, 32, 32)).shape == (1, 64, 8, 8)


@pytest.mark.parametrize("length", range(1, 10))
def test_output_positions_count_the_last_stage_of_odd_and_even_lengths(length):
    net = ResidualCNN((1, length), 2, 1)
    positions = net.forward_features(torch.zeros(2, 1, length)).shape[-1]
    assert cnn_output_positions((1, length)) == positions


def test_a_basic_block_applies_relu_after_the_addition():
    torch.manual_seed(0)
    net = ResidualCNN((16, 8, 8), 2, 1, zero_init_last=False)
    block = net.stages[0][0]
    assert (block(torch.randn(4, 16, 8, 8)) >= 0).all()


def test_a_preact_projection_shortcut_takes_the_pre_activated_input():
    torch.manual_seed(0)
    net = ResidualCNN((3, 8, 8), 2, 1, block="preact", zero_init_last=False)
    block = net.stages[1][0]  # stride 2, 16 -> 32 channels: a projection
    x = torch.randn(4, 16, 8, 8)
    pre = block.relu(block.bn1(x))
    branch = block.conv2(block.relu(block.bn2(block.conv1(pre))))
    torch.testing.assert_close(block(x), branch + block.shortcut(pre))


def _down_sampling_strides(net):
    """The strides of the first block of each stage after the first (main path, shortcut)."""
    strides = [(stage[0].conv1.stride, stage[0].shortcut[0].stride) for stage in net.stages[1:]]
    assert all(main == shortcut for main, shortcut in strides)
    return [main for main, _ in strides]


@pytest.mark.parametrize(
    "in_shape, strides",
    [
        ((1, 8, 8), [(2, 2), (2, 2)]),
        ((1, 2), [(2,), (1,)]),  # length 2 -> 1 -> 1
        ((1, 1), [(1,), (1,)]),
        ((1, 4, 1), [(2, 1), (2, 1)]),  # 4 x 1 -> 2 x 1 -> 1 x 1
        ((1, 3, 2), [(2, 2), (2, 1)]),  # 3 x 2 -> 2 x 1 -> 1 x 1
    ],
)
@pytest.mark.parametrize("block", ["basic", "preact"])
def test_an_axis_of_size_one_is_not_strided_and_gives_the_same_outputs(in_shape, strides, block):
    torch.manual_seed(0)
    net = ResidualCNN(in_shape, 3, 1, width=4, block=block, zero_init_last=False).eval()
    assert _down_sampling_strides(net) == strides
    strided = copy.deepcopy(net)  # what a stride of 2 along every axis computes
    for stage in strided.stages[1:]:
        stage[0].conv1.stride = stage[0].shortcut[0].stride = (2,) * (len(in_shape) - 1)
    x = torch.randn(5, *in_shape)
    with torch.no_grad():
        torch.testing.assert_close(net(x), strided(x))
    assert cnn_output_positions(in_shape) == net.forward_features(x)[0, 0].numel()


def test_zero_init_zeroes_the_last_layer_of_each_preact_branch_only():
    net = ResidualCNN((3, 8, 8), 2, 1, block="preact")
    for stage in net.stages:
        for block in stage:
            assert not block.conv2.weight.any() and block.conv1.weight.any()


def test_the_linear_path_starts_at_the_weighted_ridge_solution_with_its_intercept():
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(50, 2, generator=generator, dtype=torch.float64).float() + 5
    y = X.double() @ torch.tensor([1.0, 2.0], dtype=torch.float64) + 3
    net = ResidualMLP(2, 1, 1, 8, linear_path=True)
    net.fit_linear_path(X, y, None, 1e-6)
    torch.testing.assert_close(net(X).squeeze(1).double(), y, atol=1e-3, rtol=0)
    # A weight of 2 on a row is that row twice.
    noisy = y + torch.randn(50, generator=generator, dtype=torch.float64)
    weights = torch.ones(50)
    weights[0] = 2.0
    weighted, repeated = (ResidualMLP(2, 1, 1, 8, linear_path=True) for _ in range(2))
    weighted.fit_linear_path(X, noisy, weights, 1.0)
    repeated.fit_linear_path(torch.cat([X[:1], X]), torch.cat([noisy[:1], noisy]), None, 1.0)
    for name in ("weight", "bias"):
        torch.testing.assert_close(
            getattr(weighted.linear, name), getattr(repeated.linear, name), atol=1e-5, rtol=0
        )


def test_seeded_dropout_keeps_the_expected_value_in_training_and_is_off_in_evaluation():
    layer = GeneratorDropout(0.5).train()
    layer.generator = torch.Generator().manual_seed(0)
    out = layer(torch.ones(1000))
    assert set(out.unique().tolist()) == {0.0, 2.0}
    layer.eval()
    assert torch.equal(layer(torch.ones(1000)), torch.ones(1000))


def test_the_dropout_rate_of_a_network_is_read_from_its_layers():
    assert dropout_rate(ResidualMLP(4, 2, 1, 8, dropout=0.3)) == 0.3
    assert dropout_rate(ResidualMLP(4, 2, 1, 8)) == 0.0
