"""Fusion layers, one per file, and the name table that `build_model(fusion=...)` reads."""

from mmkeras.fusion.attention_fusion import AttentionFusion
from mmkeras.fusion.concat_fusion import ConcatFusion
from mmkeras.fusion.gated_fusion import GatedFusion
from mmkeras.fusion.late_fusion import LateFusion
from mmkeras.fusion.low_rank_fusion import LowRankFusion
from mmkeras.fusion.transformer_fusion import TransformerFusion
from mmkeras.fusion.weighted_fusion import WeightedFusion

FUSIONS = {
    "concat": ConcatFusion,
    "attention": AttentionFusion,
    "weighted": WeightedFusion,
    "gated": GatedFusion,
    "transformer": TransformerFusion,
    "late": LateFusion,
    "low_rank": LowRankFusion,
}


def get_fusion(name):
    """The fusion layer class called `name`.

    Example:

    >>> get_fusion("attention").__name__
    'AttentionFusion'
    """
    if name not in FUSIONS:
        raise ValueError(f"Expected one of {sorted(FUSIONS)}. Received: fusion={name!r}")
    return FUSIONS[name]


__all__ = [
    "AttentionFusion",
    "ConcatFusion",
    "FUSIONS",
    "GatedFusion",
    "LateFusion",
    "LowRankFusion",
    "TransformerFusion",
    "WeightedFusion",
    "get_fusion",
]
