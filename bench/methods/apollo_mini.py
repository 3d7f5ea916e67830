"""APOLLO-Mini (Zhu et al. 2024, the APOLLO paper's extreme setting; apollo-torch): APOLLO with a rank-1 random
projection and one gradient scaling factor per tensor (scale_type=tensor), scale 128: SGD-like optimizer memory.
A delta of APOLLO (bench/methods/apollo.py) with the authors' defaults for APOLLO-Mini."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.methods.apollo import Apollo, ApolloConfig

if TYPE_CHECKING:
    from bench.config import RunConfig
    from bench.methods.interface import Terms


@dataclass
class ApolloMiniConfig(ApolloConfig):
    rank: int = 1
    scale: float = 128.0
    scale_type: str = "tensor"


class ApolloMini(Apollo):
    name = "apollo_mini"
    config = ApolloMiniConfig

    def terms(self, cfg: RunConfig) -> Terms | None:
        return None  # as APOLLO: not modelled


METHOD = ApolloMini()
