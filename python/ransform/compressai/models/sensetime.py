"""``compressai.models.sensetime``: Cheng 2020's anchor with He et al.'s checkerboard context
(ransform's implementation; it loads CompressAI's latent-codec checkpoints)."""
from ransform.compressai.models import Cheng2020AnchorCheckerboard

__all__ = ["Cheng2020AnchorCheckerboard"]
