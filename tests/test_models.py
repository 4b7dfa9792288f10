"""Tests of robustkit.models: shapes, normalization inside the model, parameter counts, modes."""
import pytest
import torch
import torch.nn.functional as F

from robustkit.models import (CIFAR10_MEAN, CIFAR10_STD, MNIST_MEAN, MNIST_STD, MODELS, DenseMLP,
                              MnistConvNet, Normalize, SmallCifarNet, build_model, count_parameters)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _input_for(name, n=5):
    shape = (3, 32, 32) if name == "cifar_small" else (1, 28, 28)
    return torch.rand(n, *shape)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_return_logits_for_unit_interval_inputs(name):
    model = build_model(name).eval()
    out = model(_input_for(name))
    assert out.shape == (5, 10)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # logits, not log-probabilities: rows do not all log-sum-exp to zero
    assert not torch.allclose(torch.logsumexp(out, 1), torch.zeros(5), atol=1e-3)


def test_mnist_convnet_equals_hand_computation_on_standardized_input():
    model = MnistConvNet().eval()
    x = torch.rand(4, 1, 28, 28)
    z = (x - 0.1307) / 0.3081
    h = F.relu(F.max_pool2d(F.conv2d(z, model.conv1.weight, model.conv1.bias), 2))
    h = F.relu(F.max_pool2d(F.conv2d(h, model.conv2.weight, model.conv2.bias), 2))
    h = F.relu(h.reshape(4, 320) @ model.fc1.weight.T + model.fc1.bias)
    logits = h @ model.fc2.weight.T + model.fc2.bias
    torch.testing.assert_close(model(x), logits, rtol=1e-5, atol=1e-5)


def test_mnist_convnet_parameter_count_matches_hand_count():
    # conv1 1*10*5*5+10, conv2 10*20*5*5+20, fc1 320*50+50, fc2 50*10+10
    hand = (1 * 10 * 25 + 10) + (10 * 20 * 25 + 20) + (320 * 50 + 50) + (50 * 10 + 10)
    assert hand == 21840
    assert count_parameters(MnistConvNet()) == hand
    assert count_parameters(build_model("mnist_conv")) == hand


def test_eval_mode_is_deterministic_and_train_mode_uses_dropout():
    model = MnistConvNet(dropout=0.5)
    x = torch.rand(8, 1, 28, 28)
    model.eval()
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
    model.train()
    assert not torch.allclose(model(x), model(x))
    # dropout=0 makes train mode deterministic too
    model0 = MnistConvNet(dropout=0.0).train()
    torch.testing.assert_close(model0(x), model0(x), rtol=0, atol=0)


def test_dense_mlp_equals_hand_computation():
    model = DenseMLP(in_shape=(1, 6, 6), hidden=(7, 5), num_classes=3, mean=0.5, std=0.2).eval()
    x = torch.rand(4, 1, 6, 6)
    lin = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [tuple(l.weight.shape) for l in lin] == [(7, 36), (5, 7), (3, 5)]
    h = ((x - 0.5) / 0.2).reshape(4, 36)
    h = F.relu(h @ lin[0].weight.T + lin[0].bias)
    h = F.relu(h @ lin[1].weight.T + lin[1].bias)
    torch.testing.assert_close(model(x), h @ lin[2].weight.T + lin[2].bias)
    assert count_parameters(model) == 36 * 7 + 7 + 7 * 5 + 5 + 5 * 3 + 3


def test_dense_mlp_default_is_mnist_and_empty_hidden_is_linear():
    assert count_parameters(DenseMLP()) == 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    lin = DenseMLP(hidden=())
    assert count_parameters(lin) == 784 * 10 + 10


def test_small_cifar_net_normalizes_per_channel():
    model = SmallCifarNet(width=4, hidden=8).eval()
    x = torch.rand(3, 3, 32, 32)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    z = (x - mean) / std
    by_hand = model.fc2(F.relu(model.fc1(model.conv(z).flatten(1))))
    torch.testing.assert_close(model(x), by_hand)
    assert model.features(x).shape == (3, 8)


def test_small_cifar_net_other_sizes():
    model = SmallCifarNet(num_classes=5, width=4, hidden=8, in_channels=1, image_size=16,
                          mean=0.5, std=0.25).eval()
    assert model(torch.rand(2, 1, 16, 16)).shape == (2, 5)
    with pytest.raises(ValueError, match="multiple of 4"):
        SmallCifarNet(image_size=30)


def test_normalize_module_values_buffers_and_errors():
    norm = Normalize((0.1, 0.2, 0.3), (0.5, 0.25, 2.0))
    x = torch.rand(2, 3, 4, 4)
    expected = torch.stack([(x[:, 0] - 0.1) / 0.5, (x[:, 1] - 0.2) / 0.25, (x[:, 2] - 0.3) / 2.0], 1)
    torch.testing.assert_close(norm(x), expected)
    assert set(dict(norm.named_buffers())) == {"mean", "std"}
    assert "mean" in norm.state_dict() and "std" in norm.state_dict()
    assert count_parameters(norm, trainable_only=False) == 0  # buffers, not parameters
    scalar = Normalize(MNIST_MEAN, MNIST_STD)
    torch.testing.assert_close(scalar(x), (x - MNIST_MEAN) / MNIST_STD)  # broadcasts over channels
    with pytest.raises(ValueError, match="3 channels"):
        norm(torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match="positive"):
        Normalize(0.5, 0.0)
    with pytest.raises(ValueError, match="same number of channels"):
        Normalize((0.1, 0.2), (0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        norm(torch.rand(3, 4, 4))


def test_gradients_reach_the_input():
    model = MnistConvNet().eval()
    x = torch.rand(2, 1, 28, 28, requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet9000")
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        MnistConvNet()(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\)"):
        SmallCifarNet()(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match="dropout"):
        MnistConvNet(dropout=1.5)
    with pytest.raises(TypeError):
        count_parameters("not a model")


def test_count_parameters_trainable_only():
    model = MnistConvNet()
    model.conv1.weight.requires_grad_(False)
    assert count_parameters(model) == 21840 - 250
    assert count_parameters(model, trainable_only=False) == 21840
