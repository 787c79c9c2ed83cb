"""``compressai.models.waseda``: the models of Cheng et al. 2020 (ransform's implementations)."""
from ransform.compressai.models import Cheng2020Anchor, Cheng2020Attention

__all__ = ["Cheng2020Anchor", "Cheng2020Attention"]
