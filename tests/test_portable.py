"""Portable entropy parameters: the integer convolution gives the same bits in every
implementation (native kernels, thread counts, the PyTorch reference, a slow loop written from
docs/FORMAT.md section 11), and the models' coded streams and decoded latents do not change
with the thread count, oneDNN, memory format, batch size or backend."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:TF32 acceleration")

from ransform import _core, models  # noqa: E402
from ransform.portable import IntegerNetwork, get_backend, set_backend  # noqa: E402
from ransform.portable.convert import structure  # noqa: E402
from ransform.portable.ops import conv_native, conv_reference, native_kernels  # noqa: E402

KERNELS = native_kernels()


def slow_conv(x, w, bias, m_pos, m_neg, shift, stride, padding, output_padding, transposed, out_bits):
    """docs/FORMAT.md section 11 as loops over Python integers."""
    x, w = x.astype(np.int64), w.astype(np.int64)
    cin, h, wd = x.shape
    k = w.shape[-1]
    if transposed:
        cout = w.shape[1]
        oh, ow = (h - 1) * stride - 2 * padding + k + output_padding, (wd - 1) * stride - 2 * padding + k + output_padding
        acc = np.zeros((cout, oh, ow), np.int64)
        for iy in range(h):
            for ix in range(wd):
                for ky in range(k):
                    for kx in range(k):
                        oy, ox = iy * stride - padding + ky, ix * stride - padding + kx
                        if 0 <= oy < oh and 0 <= ox < ow:
                            acc[:, oy, ox] += w[:, :, ky, kx].T @ x[:, iy, ix]
    else:
        cout = w.shape[0]
        oh, ow = (h + 2 * padding - k) // stride + 1, (wd + 2 * padding - k) // stride + 1
        xp = np.zeros((cin, h + 2 * padding, wd + 2 * padding), np.int64)
        xp[:, padding:padding + h, padding:padding + wd] = x
        acc = np.zeros((cout, oh, ow), np.int64)
        for oy in range(oh):
            for ox in range(ow):
                patch = xp[:, oy * stride:oy * stride + k, ox * stride:ox * stride + k]
                acc[:, oy, ox] = np.tensordot(w, patch, 3)
    limit = 32767 if out_bits == 16 else 2**31 - 1
    out = np.empty_like(acc)
    for c in range(cout):
        for i, v in np.ndenumerate(acc[c]):
            a = (int(v) + int(bias[c]) + 2**31) % 2**32 - 2**31
            m = int(m_pos[c]) if a >= 0 else int(m_neg[c])
            s = int(shift[c])
            out[(c, *i)] = max(-limit, min(limit, (a * m + ((1 << s) >> 1)) >> s))
    return out


def _random_layer(rng, cin, cout, k, transposed, big):
    lim = 32767 if big else 300
    x = rng.integers(-lim, lim + 1, (cin, 5, 7)).astype(np.int16)
    w = rng.integers(-lim, lim + 1, (cin, cout, k, k) if transposed else (cout, cin, k, k)).astype(np.int16)
    bias = rng.integers(-2**31, 2**31, cout).astype(np.int32)
    m_pos = rng.integers(0, 2**31, cout).astype(np.int32)
    m_neg = rng.integers(0, 2**31, cout).astype(np.int32)
    shift = rng.integers(0, 63, cout).astype(np.int32)
    return x, w, bias, m_pos, m_neg, shift


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("big", [False, True])  # big: accumulators wrap modulo 2^32
def test_native_reference_and_the_spec_loops_agree(transposed, big):
    rng = np.random.default_rng(int(transposed) * 2 + int(big))
    for cin, cout, k, stride, padding in [(3, 5, 3, 1, 1), (6, 9, 5, 2, 2), (1, 1, 1, 1, 0), (7, 4, 3, 2, 0)]:
        x, w, *params = _random_layer(rng, cin, cout, k, transposed, big)
        output_padding = stride - 1 if transposed else 0
        for bits in (16, 32):
            geometry = dict(stride=stride, padding=padding, output_padding=output_padding, transposed=transposed,
                            out_bits=bits)
            expected = slow_conv(x, w, *params, **geometry)
            t = [torch.from_numpy(a) for a in (x, w, *params)]
            assert np.array_equal(conv_reference(*t, **geometry).numpy(), expected)
            for kernel in KERNELS:
                for threads in (1, 2):
                    out = conv_native(*t, **geometry, threads=threads, kernel=kernel).numpy()
                    assert np.array_equal(out, expected), (kernel, threads)


def test_the_most_negative_int16_wraps_like_every_other_sum():
    # (-32768)^2 + (-32768)^2 = 2^31: the pair sum pmaddwd forms wraps modulo 2^32, as the spec's does
    x = np.full((2, 1, 1), -32768, np.int16)
    w = np.full((1, 2, 1, 1), -32768, np.int16)
    one = np.ones(1, np.int32)
    params = (0 * one, one, one, 0 * one)
    expected = slow_conv(x, w, *params, 1, 0, 0, False, 32)
    assert expected.ravel().tolist() == [-(2**31) + 1]   # int32(2^31) = -2^31, clamped to the int32 limit
    for kernel in KERNELS:
        assert np.array_equal(_core.int_conv2d(x, w, *params, out_bits=32, kernel=kernel), expected), kernel
    t = [torch.from_numpy(a) for a in (x, w, *params)]
    assert np.array_equal(conv_reference(*t, out_bits=32).numpy(), expected)


def test_requantization_rounds_half_up_and_floors_negative_values():
    # a = -5: m_neg = 3, s = 1 -> (-15 + 1) >> 1 = -7; a = 5: m_pos = 3 -> (15 + 1) >> 1 = 8
    x = np.array([[[-5]], [[5]]], np.int16).reshape(2, 1, 1)
    w = np.array([[[[1]], [[0]]], [[[0]], [[1]]]], np.int16)
    ones = np.ones(2, np.int32)
    out = _core.int_conv2d(x, w, 0 * ones, 3 * ones, 3 * ones, ones, out_bits=32)
    assert out.ravel().tolist() == [-7, 8]


def test_native_conv_rejects_bad_arguments():
    x = np.zeros((2, 4, 4), np.int16)
    w = np.zeros((3, 2, 3, 3), np.int16)
    z = np.zeros(3, np.int32)
    with pytest.raises(TypeError, match="x must have dtype int16"):
        _core.int_conv2d(x.astype(np.int32), w, z, z, z, z)
    with pytest.raises(ValueError, match="expects 2 input channels, x has 3"):
        _core.int_conv2d(np.zeros((3, 4, 4), np.int16), w, z, z, z, z)
    with pytest.raises(ValueError, match="one int32 per output channel"):
        _core.int_conv2d(x, w, z[:2], z, z, z)
    with pytest.raises(ValueError, match="shift must be in 0..62"):
        _core.int_conv2d(x, w, z, z, z, z + 63)
    with pytest.raises(ValueError, match="smaller than the kernel"):
        _core.int_conv2d(np.zeros((2, 1, 1), np.int16), w, z, z, z, z)


# --------------------------------------------------------------------------- models

PORTABLE_MODELS = ["bmshj2018-hyperprior", "mbt2018-mean", "mbt2018", "cheng2020-anchor", "checkerboard"]


def _small(name):
    sizes = {"N": 16} if name == "cheng2020-anchor" else {"N": 16, "M": 24}
    torch.manual_seed(0)
    net = models.MODELS[name](**sizes)
    with torch.no_grad():
        last = net.g_a[-1]
        (last.conv1 if hasattr(last, "conv1") else last).weight.mul_(4)  # spread latents: many nonzero symbols
    return net.eval()


def _images(n, seed=1, size=(64, 128)):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, size[0] // 8, size[1] // 8, generator=g)
    return torch.nn.functional.interpolate(base, size=size, mode="bilinear", align_corners=False)


@pytest.fixture(scope="module", params=PORTABLE_MODELS)
def portable_net(request):
    net = _small(request.param)
    net.update()
    net.make_portable(list(_images(2, seed=7)))
    return net


def _latent_of_decode(net, strings, shape):
    """(y_hat given to g_s, x_hat) of a decompress."""
    seen = {}
    handle = net.g_s.register_forward_pre_hook(lambda m, args: seen.setdefault("y_hat", args[0].clone()))
    try:
        x_hat = net.decompress(strings, shape)["x_hat"]
    finally:
        handle.remove()
    return seen["y_hat"], x_hat


def _latent_of_forward(net, x):
    """The y_hat the evaluation forward gives g_s (exactly the coded latent)."""
    seen = {}
    handle = net.g_s.register_forward_pre_hook(lambda m, args: seen.setdefault("y_hat", args[0].clone()))
    try:
        with torch.no_grad():
            net(x)
    finally:
        handle.remove()
    return seen["y_hat"]


def test_portable_streams_and_latents_do_not_depend_on_threads_onednn_backend_or_layout(portable_net):
    net = portable_net
    x = _images(1)
    torch.set_num_threads(2)
    c = net.compress(x)
    y_ref, _ = _latent_of_decode(net, c["strings"], c["shape"])
    variants = {
        "1 thread": dict(threads=1),
        "oneDNN off": dict(mkldnn=False),
        "reference backend": dict(backend="reference"),
        "channels_last": dict(channels_last=True),
    }
    for label, v in variants.items():
        torch.set_num_threads(v.get("threads", 2))
        set_backend(v.get("backend", "auto"))
        try:
            with torch.backends.mkldnn.flags(enabled=v.get("mkldnn", True)):
                xi = x.to(memory_format=torch.channels_last) if v.get("channels_last") else x
                y, _ = _latent_of_decode(net, c["strings"], c["shape"])
                # and a round trip made entirely under these settings
                again = net.compress(xi)
                y_again, _ = _latent_of_decode(net, again["strings"], again["shape"])
                y_forward = _latent_of_forward(net, xi)
        finally:
            set_backend("auto")
            torch.set_num_threads(2)
        assert torch.equal(y, y_ref), label
        assert torch.equal(y_again, y_forward), label


def test_a_batch_codes_each_image_as_it_would_alone(portable_net):
    x = _images(4, seed=3)
    batch = portable_net.compress(x)
    for i in range(4):
        alone = portable_net.compress(x[i:i + 1])
        assert [s[i] for s in batch["strings"]] == [s[0] for s in alone["strings"]]


def test_portable_forward_is_what_decompress_returns(portable_net):
    x = _images(1, seed=4)
    c = portable_net.compress(x)
    with torch.no_grad():
        forward = portable_net(x)["x_hat"].clamp(0, 1)
    assert torch.equal(portable_net.decompress(c["strings"], c["shape"])["x_hat"], forward)


def test_state_dict_carries_the_portable_networks(portable_net):
    name = next(n for n, cls in models.MODELS.items() if type(portable_net) is cls)
    copy = models.MODELS[name].from_state_dict(portable_net.state_dict()).eval()
    assert copy.coding_mode == "portable"
    x = _images(1, seed=5)
    c = portable_net.compress(x)
    assert copy.compress(x)["strings"] == c["strings"]
    assert torch.equal(copy.decompress(c["strings"], c["shape"])["x_hat"],
                       portable_net.decompress(c["strings"], c["shape"])["x_hat"])


def test_float_and_portable_coding_cost_about_the_same(portable_net):
    x = _images(2, seed=6)
    portable = sum(len(s) for s in portable_net.compress(x)["strings"][0])
    portable_net.coding_mode = "float"
    try:
        floating = sum(len(s) for s in portable_net.compress(x)["strings"][0])
    finally:
        portable_net.coding_mode = "portable"
    assert abs(portable - floating) <= 0.01 * floating + 8


def test_hyper_synthesis_drift_breaks_float_mode_but_not_portable_mode():
    """What another CPU or a GPU does to the float hyper-synthesis: one part in a million."""
    net = _small("mbt2018-mean")
    net.update()
    x = _images(1, seed=8)
    net.coding_mode = "float"
    c = net.compress(x)
    y_float, _ = _latent_of_decode(net, c["strings"], c["shape"])
    net.make_portable(list(_images(2, seed=7)))
    p = net.compress(x)
    y_portable, _ = _latent_of_decode(net, p["strings"], p["shape"])
    handle = net.h_s.register_forward_hook(lambda m, args, out: out * (1 + 1e-6 * torch.randn_like(out)))
    try:
        net.coding_mode = "float"
        try:
            y_drift, _ = _latent_of_decode(net, c["strings"], c["shape"])
            float_broken = not torch.equal(y_drift, y_float)
        except ValueError:
            float_broken = True
        net.coding_mode = "portable"
        y_again, _ = _latent_of_decode(net, p["strings"], p["shape"])
    finally:
        handle.remove()
    assert float_broken
    assert torch.equal(y_again, y_portable)


def test_integer_network_takes_float32_and_float64_inputs_alike():
    net = _small("mbt2018-mean")
    net.make_portable(list(_images(1, seed=2)))
    z = torch.round(torch.randn(1, 16, 2, 3) * 4) + 0.25
    assert torch.equal(net.portable.h_s(z), net.portable.h_s(z.double()))
    assert torch.equal(net.portable.h_s(z), net.portable.h_s(z.to(memory_format=torch.channels_last)))


def test_coding_mode_needs_a_conversion_first():
    net = _small("mbt2018")
    assert net.coding_mode == "float"
    with pytest.raises(ValueError, match="make_portable"):
        net.coding_mode = "portable"
    with pytest.raises(ValueError, match="coding_mode must be one of"):
        net.coding_mode = "integer"
    factorized = models.get_model("bmshj2018-factorized", 1)
    assert factorized.coding_mode == "portable"  # its rows are channel indexes: exact already


def test_elic_codes_in_float_mode_and_says_it_has_no_portable_form(tmp_path, capsys):
    """ELIC's parameter networks have no integer form yet: it must never claim portable files."""
    import torch
    from ransform import cli, codec
    from ransform.container import unpack
    net = models.Elic2022Chandelier(N=16, M=40).eval()
    net.update()
    assert net.coding_mode == "float" and not net.is_portable
    with pytest.raises(ValueError, match="no portable"):
        net.make_portable([torch.rand(3, 64, 64)])
    with pytest.raises(ValueError, match="no portable"):
        net.coding_mode = "portable"
    loaded = codec.LoadedModel(net, "elic2022-chandelier", 1)
    assert not unpack(codec.compress(loaded, torch.rand(3, 64, 64))).portable
    checkpoint = tmp_path / "elic.pth"
    torch.save({"model": "elic2022-chandelier", "quality": 1, "state_dict": net.state_dict()}, checkpoint)
    status = cli.main(["convert", str(checkpoint), "-o", str(tmp_path / "out.pth"), "--portable"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "no portable" in err[0]


def test_unsupported_layers_are_refused_by_name():
    from ransform.portable.convert import units_of
    with pytest.raises(ValueError, match="cannot make GELU portable"):
        units_of(torch.nn.Sequential(torch.nn.Conv2d(2, 2, 3), torch.nn.GELU()))
    with pytest.raises(ValueError, match="only square"):
        units_of(torch.nn.Conv2d(2, 2, (3, 1)))


def test_backend_names_are_checked():
    with pytest.raises(ValueError, match="backend must be one of"):
        set_backend("fast")
    assert get_backend() == "auto"


def test_integer_network_structure_matches_the_float_network():
    net = _small("cheng2020-anchor")
    integer = structure(net.h_s, 16, float_input=True, float_output=False)
    assert isinstance(integer, IntegerNetwork)
    assert [layer.shuffle for layer in integer.layers] == [1, 2, 1, 2, 1]
    assert [layer.out_bits for layer in integer.layers] == [16] * 5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("backend", ["auto", "cuda"])
@pytest.mark.parametrize("name", PORTABLE_MODELS)
def test_cuda_decodes_cpu_streams_bit_exactly(name, backend):
    net = _small(name)
    net.update()
    net.make_portable(list(_images(2, seed=7)))
    x = _images(1)
    c = net.compress(x)
    y_cpu, _ = _latent_of_decode(net, c["strings"], c["shape"])
    gpu = net.to("cuda")
    set_backend(backend)
    try:
        y_gpu, _ = _latent_of_decode(gpu, c["strings"], c["shape"])
        strings = gpu.compress(x.cuda())["strings"]
    finally:
        set_backend("auto")
    assert torch.equal(y_gpu.cpu(), y_cpu)
    assert strings == c["strings"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("transposed", [False, True])
def test_cuda_kernel_gives_the_reference_bits(transposed):
    from ransform.kernels import conv_cuda
    rng = np.random.default_rng(5)
    for cin, cout, k, stride, padding in [(3, 5, 3, 1, 1), (6, 9, 5, 2, 2), (64, 96, 5, 2, 2)]:
        x, w, *params = _random_layer(rng, cin, cout, k, transposed, big=True)
        geometry = dict(stride=stride, padding=padding, output_padding=stride - 1 if transposed else 0,
                        transposed=transposed)
        for bits in (16, 32):
            t = [torch.from_numpy(a) for a in (x, w, *params)]
            expected = conv_reference(*t, **geometry, out_bits=bits)
            got = conv_cuda(*(a.cuda() for a in t), **geometry, out_bits=bits)
            assert torch.equal(got.cpu(), expected)


@pytest.mark.parametrize("k,stride,padding", [(1, 1, 0), (3, 1, 1), (5, 2, 2)])
def test_large_layers_split_into_blocks_agree_with_the_reference(k, stride, padding):
    """More positions than one column block (256), more work than one thread: every task split."""
    rng = np.random.default_rng(k)
    x = rng.integers(-32768, 32768, (128, 31, 57)).astype(np.int16)
    w = rng.integers(-32768, 32768, (64, 128, k, k)).astype(np.int16)
    params = [rng.integers(-2**31, 2**31, 64).astype(np.int32), rng.integers(0, 2**31, 64).astype(np.int32),
              rng.integers(0, 2**31, 64).astype(np.int32), rng.integers(0, 63, 64).astype(np.int32)]
    t = [torch.from_numpy(a) for a in (x, w, *params)]
    expected = conv_reference(*t, stride=stride, padding=padding, out_bits=32)
    for kernel in KERNELS:
        for threads in (1, 2, 3):
            got = conv_native(*t, stride=stride, padding=padding, out_bits=32, threads=threads, kernel=kernel)
            assert torch.equal(got, expected), (kernel, threads)
