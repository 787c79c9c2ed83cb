"""``compressai.models.sensetime``: Cheng 2020's anchor with He et al.'s checkerboard context,
and ELIC (ransform's implementations; they load CompressAI's latent-codec checkpoints)."""
from ransform.compressai.models import Cheng2020AnchorCheckerboard, Elic2022Chandelier, Elic2022Official

__all__ = ["Cheng2020AnchorCheckerboard", "Elic2022Chandelier", "Elic2022Official"]
