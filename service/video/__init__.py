"""Video files: containers (media.py), the file pipeline (pipeline.py), blend schedules, Ray scale-out, flicker
measurement and the ``livestyle-video`` command line (cli.py)."""
