"""The HTTP layer: the app factory (app.py), the front gate (gate.py), what routes depend on (deps.py), one router
module per resource (routes/), and the Ray Serve ingress and its router (cluster.py, ray_router.py). Only this
package imports a web framework."""
