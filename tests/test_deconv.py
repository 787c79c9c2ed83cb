"""layers.Deconv: out of training, a transposed convolution to few channels runs as a 3x3
convolution and a pixel shuffle. It must stay the same function as nn.ConvTranspose2d."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from ransform.layers import Deconv, deconv  # noqa: E402


def reference(m: torch.nn.ConvTranspose2d, x: torch.Tensor) -> torch.Tensor:
    return F.conv_transpose2d(x, m.weight, m.bias, m.stride, m.padding, m.output_padding)


@pytest.mark.parametrize("cin,cout", [(192, 3), (128, 3), (24, 16)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_subpixel_path_is_the_transposed_convolution(cin, cout, channels_last):
    torch.manual_seed(cin + cout)
    m = deconv(cin, cout).eval()
    x = torch.randn(2, cin, 9, 14)  # odd sizes: every phase and border
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    assert m.subpixel
    with torch.no_grad():
        want, got = reference(m, x), m(x)
    assert got.shape == want.shape == (2, cout, 18, 28)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


def test_gradients_flow_to_the_weights_in_eval_mode():
    torch.manual_seed(0)
    m = deconv(32, 3).eval()
    x = torch.randn(1, 32, 6, 7)
    m(x).square().sum().backward()
    got = m.weight.grad.clone()
    m.weight.grad = None
    reference(m, x).square().sum().backward()
    torch.testing.assert_close(got, m.weight.grad, rtol=1e-4, atol=1e-4)


def test_training_and_wide_layers_run_the_plain_transposed_convolution():
    torch.manual_seed(1)
    x = torch.randn(1, 48, 5, 6)
    narrow = deconv(48, 3).train()
    assert torch.equal(narrow(x), reference(narrow, x))  # bit for bit
    wide = deconv(48, 48).eval()
    assert not wide.subpixel
    with torch.no_grad():
        assert torch.equal(wide(x), reference(wide, x))
    assert not deconv(48, 3, 3, 1).subpixel  # ELIC's 3x3 stride-1 layers


def test_state_dict_and_reloaded_weights():
    plain = torch.nn.ConvTranspose2d(16, 3, 5, stride=2, padding=2, output_padding=1)
    m = deconv(16, 3).eval()
    assert m.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(1, 16, 4, 4)
    with torch.no_grad():
        m(x)  # caches the rearranged weights
        m.load_state_dict(plain.state_dict())  # new weights must not reuse them
        torch.testing.assert_close(m(x), reference(plain, x), rtol=1e-5, atol=1e-5)
        m.weight.mul_(2)  # nor an in-place change
        torch.testing.assert_close(m(x), reference(m, x), rtol=1e-5, atol=1e-5)
    assert isinstance(m, Deconv) and isinstance(m, torch.nn.ConvTranspose2d)
