"""The HTTP service: FastAPI app, routes, auth, schemas, the service facade and the web console."""
