"""The offline tools that optimise an image's pixels through a fixed network: one engine (engine.py) and the methods
that are only objectives for it (Gatys style transfer, Gram texture synthesis, inversion, DeepDream, colour
transfer, the pixel texture baseline), with their command (cli.py, ``livestyle-train gatys|texture|invert|dream``)."""
