"""Learned styles: a picture someone uploads, learned as a new style by a worker process (training/learn.py) and
swapped into the models served. jobs.py queues and runs the learning; store.py keeps the added styles, their
models and the starter photos, and installs a learned model (the routes: service/http/routes/learned.py)."""
