"""Query-counted adversarial attacks, one per file, all run by one driver.

Score-based: :class:`ZOOAttack`, :class:`NESAttack`, :class:`SquareAttack`,
:class:`SimBA`, :class:`UniversalPerturbation`. Decision-based (label-only
APIs): :class:`HopSkipJump`, :class:`RayS`. White-box, for local models
with gradients: :class:`FGSM`, :class:`PGD`, :class:`CarliniWagner`,
:class:`MIFGSM` (momentum and input diversity, for transfer).

Every attack is registered by its short name in :data:`ATTACKS`
(:mod:`bar_sdk.attacks.registry`).

>>> from bar_sdk.attacks import SquareAttack
>>> result = SquareAttack(model, norm="linf", eps=0.05, max_queries=1000,
...                       random_state=0).run(x, y)                # doctest: +SKIP
"""

from bar_sdk.attacks.base import Attack
from bar_sdk.attacks.carlini_wagner import CarliniWagner
from bar_sdk.attacks.fgsm import FGSM
from bar_sdk.attacks.hopskipjump import HopSkipJump
from bar_sdk.attacks.mifgsm import MIFGSM
from bar_sdk.attacks.nes import NESAttack
from bar_sdk.attacks.pgd import PGD
from bar_sdk.attacks.rays import RayS
from bar_sdk.attacks.registry import ATTACKS, register
from bar_sdk.attacks.result import AttackResult
from bar_sdk.attacks.simba import SimBA
from bar_sdk.attacks.square import SquareAttack
from bar_sdk.attacks.universal import UniversalPerturbation
from bar_sdk.attacks.zoo import ZOOAttack

__all__ = [
    "Attack",
    "AttackResult",
    "ATTACKS",
    "register",
    "ZOOAttack",
    "NESAttack",
    "SquareAttack",
    "SimBA",
    "UniversalPerturbation",
    "HopSkipJump",
    "RayS",
    "FGSM",
    "PGD",
    "CarliniWagner",
    "MIFGSM",
]
