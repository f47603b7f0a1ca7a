"""The node: the one composition root of a camera, the runtime over many cameras, worker
processes, health and metrics."""
