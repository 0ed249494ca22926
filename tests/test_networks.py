"""The paper's networks: the SAM's CNN really is a convolution network, and shapes are checked."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from agents.networks import EAMCNN, SAMCNN, LatestMLP, TimeConv


@pytest.mark.parametrize("k, stride", [(3, 1), (3, 2), (5, 1), (26, 1)])
def test_time_conv_equals_conv2d(k, stride):
    torch.manual_seed(0)
    cin, cout, m, n = 5, 7, 2, 30
    tc = TimeConv(cin, cout, k, stride)
    conv = nn.Conv2d(cin, cout, (1, k), stride=(1, stride))
    with torch.no_grad():  # conv weight [o, c, 0, j] = linear weight [o, j * cin + c]
        conv.weight.copy_(tc.linear.weight.view(cout, k, cin).permute(0, 2, 1).unsqueeze(2))
        conv.bias.copy_(tc.linear.bias)
    x = torch.randn(4, cin, m, n)
    want = conv(x).permute(0, 2, 3, 1)  # channels last
    got = tc(x.permute(0, 2, 3, 1))
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [29, 30])
def test_time_conv_aligned_to_the_latest_position(n):
    """With a stride that does not fit the input evenly, align_latest leaves out the oldest
    positions instead of the newest: the convolution of x[..., offset:], whose last window ends on
    the last position."""
    torch.manual_seed(0)
    tc = TimeConv(4, 3, 3, stride=2, align_latest=True)
    assert tc.offset(n) == (n - 3) % 2
    x = torch.randn(2, 2, n, 4)  # channels last
    plain = TimeConv(4, 3, 3, stride=2)
    plain.load_state_dict(tc.state_dict())
    torch.testing.assert_close(tc(x), plain(x[:, :, tc.offset(n) :]))
    assert plain.offset(n) == 0


@pytest.mark.parametrize("align_latest", [True, False])
def test_sam_cnn_reads_the_current_bar(align_latest):
    """The newest position of an even-length window (the current bar) moves the features only
    with align_latest; modules saved before it read up to the bar before."""
    torch.manual_seed(0)
    net = SAMCNN(gym.spaces.Box(-np.inf, np.inf, (6, 2, 30), np.float32), features_dim=32, align_latest=align_latest)
    x = torch.randn(3, 6, 2, 30)
    newest, oldest = x.clone(), x.clone()
    newest[..., -1] += 1.0
    oldest[..., 0] += 1.0
    assert torch.allclose(net(x), net(newest)) is not align_latest
    assert torch.allclose(net(x), net(oldest)) is align_latest


def test_sam_cnn_shapes_and_row_mixing():
    space = gym.spaces.Box(-np.inf, np.inf, (6, 2, 30), np.float32)
    net = SAMCNN(space, features_dim=32)
    x = torch.randn(3, 6, 2, 30)
    assert net(x).shape == (3, 32)
    y = x.clone()
    y[:, :, 1] += 1.0  # the cash row matters: the last convolution mixes the rows
    assert not torch.allclose(net(x), net(y))
    with pytest.raises(ValueError, match="window of at least 7"):
        SAMCNN(gym.spaces.Box(-np.inf, np.inf, (6, 2, 5), np.float32))


def test_latest_mlp_reads_the_current_crypto_row_alone():
    """Every feature of the newest bar's crypto row moves the features; older bars and the cash
    row do not."""
    torch.manual_seed(0)
    net = LatestMLP(gym.spaces.Box(-np.inf, np.inf, (6, 2, 30), np.float32), features_dim=32)
    x = torch.randn(3, 6, 2, 30)
    assert net(x).shape == (3, 32)
    for f in range(6):
        y = x.clone()
        y[:, f, 0, -1] += 5.0
        assert not torch.allclose(net(x), net(y))
    y = x.clone()
    y[..., :-1] = torch.randn(3, 6, 2, 29)  # the older bars
    y[:, :, 1] = torch.randn(3, 6, 30)  # the cash row
    assert torch.equal(net(x), net(y))
    with pytest.raises(ValueError, match="features, assets, window"):
        LatestMLP(gym.spaces.Box(-np.inf, np.inf, (6, 30), np.float32))


def test_eam_cnn_reads_time_series():
    space = gym.spaces.Box(-np.inf, np.inf, (7, 30), np.float32)
    assert EAMCNN(space, features_dim=16)(torch.randn(2, 7, 30)).shape == (2, 16)
