"""Locally built container images for the integration suites, named by a hash of their inputs.

No container registry is reachable on the machines this project is tested on, so the images are made
here: ``meshd-it/base`` (Debian bookworm via debootstrap + ``docker import``), ``meshd-it/zookeeper``
(Debian's ``zookeeper`` package) and ``meshd-it/meshd`` (the project installed into Debian's python3).
A tag is the hash of the recipe files (and, for meshd, of the project sources), so an image is rebuilt
only when something it is made of changed. ``MESHD_IMAGE_SOURCE=registry`` uses the official
``zookeeper:3.8`` and builds meshd on ``python:3.11-slim`` instead.

Modules: :mod:`.recipes` (inputs and tags, pure), :mod:`.base` (debootstrap), :mod:`.build` (docker
builds, caching, pruning). Command line: ``python -m integration.images build|tags|prune``.
"""

from integration.images.recipes import RecipeError, Tags, compute_tags

__all__ = ["RecipeError", "Tags", "compute_tags", "ensure_images"]


def ensure_images(log=print) -> Tags:
    """Build whatever image is missing for the current inputs and return the tags (needs an engine)."""
    from integration.images.build import build
    return build(compute_tags(), log=log).tags
