"""Container names: Docker's validity rule and generated ``adjective_surname`` names."""

from __future__ import annotations

import random
import re

from sampan import errdefs

VALID_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

_ADJECTIVES = (
    "agile", "bold", "brave", "bright", "calm", "clever", "cool", "eager", "fervent", "gentle",
    "happy", "keen", "kind", "lucid", "merry", "nimble", "patient", "quiet", "quirky", "sharp",
    "steady", "swift", "tender", "vivid", "wise", "zealous",
)
_SURNAMES = (
    "curie", "darwin", "euler", "faraday", "fermi", "franklin", "galois", "gauss", "hopper",
    "hypatia", "kepler", "lovelace", "maxwell", "meitner", "newton", "noether", "pascal",
    "ramanujan", "ritchie", "shannon", "tesla", "thompson", "turing", "wozniak", "yonath",
)


def normalize_name(name: str) -> str:
    """Check ``name`` against Docker's rule and return it with its leading ``/``."""
    if not VALID_NAME.match(name):
        raise errdefs.InvalidParameter(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return name if name.startswith("/") else "/" + name


def generate_name(rng: random.Random, retry: int = 0) -> str:
    """A random ``/adjective_surname``; after a collision a digit is appended, as Docker does."""
    name = f"{rng.choice(_ADJECTIVES)}_{rng.choice(_SURNAMES)}"
    if retry > 0:
        name += str(rng.randint(0, 9))
    return "/" + name
