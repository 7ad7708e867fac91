"""Every attack by its short name: the one table a new attack is added to.

``audit`` and ``bar audit`` accept the names in :data:`AUDIT_ATTACKS`; the
parametrised tests read :data:`ATTACKS`, so a registered attack is tested
(budgets, early refusals) without a test written for it by hand. The class
says how it reaches the model (``access``: ``"score"``, ``"decision"`` or
``"gradient"``) and which norms it supports (``norms``).

A new attack: one file in ``bar_sdk/attacks/`` with an :class:`~bar_sdk.attacks.base.Attack`
subclass, and one :func:`register` line below.
"""

from __future__ import annotations

from bar_sdk.attacks.base import Attack
from bar_sdk.attacks.carlini_wagner import CarliniWagner
from bar_sdk.attacks.fgsm import FGSM
from bar_sdk.attacks.hopskipjump import HopSkipJump
from bar_sdk.attacks.mifgsm import MIFGSM
from bar_sdk.attacks.nes import NESAttack
from bar_sdk.attacks.pgd import PGD
from bar_sdk.attacks.rays import RayS
from bar_sdk.attacks.simba import SimBA
from bar_sdk.attacks.square import SquareAttack
from bar_sdk.attacks.universal import UniversalPerturbation
from bar_sdk.attacks.zoo import ZOOAttack
from bar_sdk.errors import InvalidInputError

__all__ = ["ATTACKS", "AUDIT_ATTACKS", "register"]

#: short name -> attack class, in the order they are listed to users
ATTACKS: dict[str, type[Attack]] = {}
#: the names ``audit`` runs per image (not the universal perturbation, one perturbation for all images,
#: nor MI-FGSM, a transfer attack crafted on a source model)
AUDIT_ATTACKS: list[str] = []


def register(name: str, cls: type[Attack], *, audit: bool = True) -> type[Attack]:
    """Add ``cls`` under ``name`` (lower case, unique); ``audit=False`` keeps it out of :func:`bar_sdk.audit`."""
    if not (isinstance(cls, type) and issubclass(cls, Attack)):
        raise InvalidInputError(f"cls={cls!r}; expected a subclass of bar_sdk.attacks.Attack")
    if not isinstance(name, str) or not name or name != name.lower() or name in ATTACKS:
        raise InvalidInputError(f"name={name!r}; expected a new lower-case attack name (taken: {list(ATTACKS)})")
    ATTACKS[name] = cls
    if audit:
        AUDIT_ATTACKS.append(name)
    return cls


register("square", SquareAttack)
register("simba", SimBA)
register("nes", NESAttack)
register("zoo", ZOOAttack)
register("hopskipjump", HopSkipJump)
register("rays", RayS)
register("fgsm", FGSM)
register("pgd", PGD)
register("cw", CarliniWagner)
register("universal", UniversalPerturbation, audit=False)
register("mifgsm", MIFGSM, audit=False)
