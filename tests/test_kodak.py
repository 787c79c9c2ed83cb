"""The container round trip on every Kodak image: the decoded pixels are exactly the model's
own reconstruction (forward in evaluation mode, cropped), and the file is the estimate plus
framing."""
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("PIL")

from conftest import KODAK_IMAGES as IMAGES  # noqa: E402
from ransform import codec, models  # noqa: E402
from ransform.image import crop, pad  # noqa: E402


@pytest.mark.skipif(len(IMAGES) != 24, reason="Kodak is not at ../shared/data/kodak")
@pytest.mark.parametrize("name", ["mbt2018-mean", "mbt2018"])
def test_every_kodak_image_round_trips_to_the_forward_reconstruction(name):
    torch.manual_seed(0)
    net = models.MODELS[name](N=16, M=24)
    with torch.no_grad():
        net.g_a[-1].weight.mul_(3)  # spread latents: many nonzero symbols
    net.eval()
    net.update()
    net.make_portable(codec.calibration_images())  # the default coding mode of converted models
    model = codec.LoadedModel(net, name, 1)
    for path in IMAGES:
        x = codec.read_image(path)
        data = codec.compress(model, x)
        x_hat = codec.decompress(model, data)
        padded, padding = pad(x[None], net.downsampling_factor)
        with torch.no_grad():
            out = net(padded)
        assert torch.equal(x_hat, crop(out["x_hat"].clamp(0, 1), padding)[0]), path.name
        estimate = sum((-torch.log2(lik.double())).sum().item() for lik in out["likelihoods"].values()) / 8
        # Untrained, spread latents escape often, and an escape costs the coder less than the
        # likelihood bound prices it (test_models.py): at most the estimate, plus framing.
        assert 0.5 * estimate <= len(data) <= 1.001 * estimate + 64 + 60, path.name  # + container header
